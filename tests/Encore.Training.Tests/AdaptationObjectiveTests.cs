using Encore.Training.Data;
using Encore.Training.Objectives;

namespace Encore.Training.Tests;

/// <summary>The adaptation objectives of an encoder–decoder on plain text: prefix LM and UL2's R/S/X mixture.</summary>
public class AdaptationObjectiveTests
{
    const int X = Labels.Ignore, Eos = 1, Start = 0;
    static readonly int[] Sentinels = Enumerable.Range(0, 100).Select(n => 999 - n).ToArray();
    static readonly Ul2ModeTokens Modes = new(5, 6, 7);

    static Ul2Options Options(ulong seed = 0, Ul2ModeTokens? modes = null) =>
        new() { PadId = 0, EosId = Eos, DecoderStartId = Start, Sentinels = Sentinels, ModeTokens = modes, Seed = seed };

    // Documents of ids in [10, 900) (below the sentinels), of 20 … 200 tokens.
    static TokenizedDataset Documents(int count, int seed = 1, int min = 20, int max = 200)
    {
        var r = new Random(seed);
        return TokenizedDataset.FromIds(Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, r.Next(min, max + 1)).Select(_ => r.Next(10, 900)).ToArray()).ToArray());
    }

    [Fact]
    public void EncoderDecoderPrefixLmPutsThePrefixInTheSourceAndTheContinuationInTheTarget()
    {
        var objective = new PrefixLmObjective(new Seq2SeqOptions { PadId = 0, EosId = Eos, DecoderStartId = 2 }, seed: 3);
        Assert.True(objective.HasSource);
        var doc = TokenizedDataset.FromIds([[10, 11, 12, 13, 14, 15, 16, 17]]);
        var cuts = new HashSet<int>();
        for (ulong seed = 0; seed < 200; seed++)
        {
            var o = new PrefixLmObjective(objective.Seq2Seq!, seed);
            var row = o.MakeRow(doc, 0, new DataRng(seed));
            int k = row.Source.Length - 1;
            Assert.InRange(k, 1, 7);
            cuts.Add(k);
            Assert.Equal([.. Enumerable.Range(10, k), Eos], row.Source);
            Assert.Equal([2, .. Enumerable.Range(10 + k, 8 - k)], row.Inputs);
            Assert.Equal([.. Enumerable.Range(10 + k, 8 - k), Eos], row.Targets);
            Assert.Equal((row.Source.Length, row.Inputs.Length), o.RowLengths(doc, 0));
            // Fixed per example (bucketing needs the lengths first): another epoch's stream cuts at the same point.
            Assert.Equal(row.Source, o.MakeRow(doc, 0, new DataRng(seed + 1000)).Source);
        }
        Assert.Equal(7, cuts.Count);
        Assert.Throws<ArgumentException>(() => objective.RowLengths(TokenizedDataset.FromIds([[5]]), 0));
        var e = Assert.Throws<ArgumentException>(() => objective.RowLengths(TokenizedDataset.FromIds([[10, 11]], [[20]]), 0));
        Assert.Contains("use seq2seq", e.Message);
    }

    // The document a row stands for: spans put back in place of their sentinels, or prefix then continuation.
    static int[] Rebuild(TrainingRow row, bool mode)
    {
        Assert.Equal(Eos, row.Source[^1]);
        Assert.Equal(Eos, row.Targets[^1]);
        Assert.DoesNotContain(X, row.Targets);                                   // every target position carries loss
        Assert.Equal([Start, .. row.Targets[..^1]], row.Inputs);                  // teacher forcing
        var source = row.Source[(mode ? 1 : 0)..^1];
        if (!source.Any(Sentinels.Contains)) return [.. source, .. row.Targets[..^1]];   // S: prefix, continuation
        var spans = new Dictionary<int, List<int>>();
        List<int>? current = null;
        foreach (var t in row.Targets[..^1])
        {
            if (Sentinels.Contains(t)) spans[t] = current = [];
            else current!.Add(t);
        }
        Assert.Equal(spans.Count, source.Count(Sentinels.Contains));
        Assert.All(spans.Values, s => Assert.NotEmpty(s));
        return source.SelectMany(t => Sentinels.Contains(t) ? spans[t] : [t]).ToArray();
    }

    [Fact]
    public void Ul2BatchesHaveTheirShapesAndEveryRowReconstructsItsDocument()
    {
        var data = Documents(120);
        var objective = new Ul2Objective(Options(seed: 4, modes: Modes));
        var batches = new TrainingBatches(data, objective, new BucketingOptions { MaxTokens = 1024, Seed = 2 });
        int rows = 0;
        foreach (var epoch in new[] { 0, 1 })
            foreach (var b in batches.Epoch(epoch))
            {
                Assert.Equal(b.Size * b.SourceLength, b.Source.Length);
                Assert.Equal(b.Size * b.InputLength, b.Inputs.Length);
                Assert.Equal(b.Size * b.InputLength, b.Targets.Length);
                Assert.True(b.PaddedTokens <= 1024, $"a batch of {b.PaddedTokens} padded tokens");
                for (int i = 0; i < b.Size; i++)
                {
                    int sl = b.SourceLengths[i], il = b.InputLengths[i];
                    var row = new TrainingRow(b.Source.AsSpan(i * b.SourceLength, sl).ToArray(), b.Inputs.AsSpan(i * b.InputLength, il).ToArray(), b.Targets.AsSpan(i * b.InputLength, il).ToArray());
                    Assert.All(b.Source.AsSpan(i * b.SourceLength + sl, b.SourceLength - sl).ToArray(), t => Assert.Equal(0, t));
                    Assert.All(b.Targets.AsSpan(i * b.InputLength + il, b.InputLength - il).ToArray(), t => Assert.Equal(X, t));
                    var doc = data.Sources[b.ExampleIndices[i]];
                    Assert.Equal(doc, Rebuild(row, mode: true));
                    var (d, _) = objective.Choose(data, b.ExampleIndices[i]);
                    Assert.Equal(Modes.Of(objective.Options.Denoisers[d].Mode), row.Source[0]);
                    rows++;
                }
            }
        Assert.Equal(2 * 120, rows);
    }

    [Fact]
    public void Ul2MixesRSAndXInThirdsWithTheirSpanSettings()
    {
        var data = Documents(600, seed: 2, min: 100, max: 200);
        var objective = new Ul2Objective(Options(seed: 1, modes: Modes));
        var count = new Dictionary<int, int> { [5] = 0, [6] = 0, [7] = 0 };
        double rNoise = 0, rSpans = 0, xLong = 0, xDense = 0;
        int r = 0;
        for (int i = 0; i < data.Count; i++)
        {
            var row = objective.MakeRow(data, i, DataRng.For(9, 0, (ulong)i));
            count[row.Source[0]]++;
            int n = data.Sources[i].Length;
            int spans = row.Source.Count(Sentinels.Contains), noise = row.Targets.Length - 1 - spans;
            if (row.Source[0] == 5) { r++; rNoise += (double)noise / n; rSpans += (double)noise / spans; }
            if (row.Source[0] == 7)
            {
                // X: either mean span 32 at 15% noise, or mean span 3 at 50%.
                if (Math.Abs((double)noise / n - 0.5) < 0.02) { xDense++; Assert.InRange((double)noise / spans, 2.5, 3.6); }
                else { xLong++; Assert.InRange((double)noise / n, 0.13, 0.17); Assert.InRange(spans, 1, 1); }
            }
            if (row.Source[0] == 6) Assert.DoesNotContain(row.Source, Sentinels.Contains);
        }
        foreach (var (mode, c) in count) Assert.InRange(c, 150, 250);
        Assert.InRange(rNoise / r, 0.14, 0.16);            // R: 15% noise …
        Assert.InRange(rSpans / r, 2.7, 3.3);              // … in spans of 3 on average
        Assert.InRange(xLong / (xLong + xDense), 0.35, 0.65);
    }

    [Fact]
    public void Ul2IsDeterministicBySeedWithNewSpansEveryEpoch()
    {
        var data = Documents(80);
        List<Batch> Batches(ulong seed, int epoch) =>
            new TrainingBatches(data, new Ul2Objective(Options(seed)), new BucketingOptions { MaxTokens = 1024, Seed = 3 }).Epoch(epoch).ToList();
        static string Key(IEnumerable<Batch> bs) => string.Join("|", bs.Select(b => string.Join(",", b.Source) + ";" + string.Join(",", b.Targets)));
        Assert.Equal(Key(Batches(7, 0)), Key(Batches(7, 0)));
        Assert.NotEqual(Key(Batches(7, 0)), Key(Batches(8, 0)));
        var objective = new Ul2Objective(Options(seed: 7));
        int moved = 0;
        for (int i = 0; i < data.Count; i++)
        {
            var a = objective.MakeRow(data, i, DataRng.For(3, 0x5EED_0000UL, (ulong)i));
            var b = objective.MakeRow(data, i, DataRng.For(3, 0x5EED_0001UL, (ulong)i));
            Assert.Equal((a.Source.Length, a.Inputs.Length), (b.Source.Length, b.Inputs.Length));   // the denoiser stays with the example
            if (!a.Source.SequenceEqual(b.Source)) moved++;
        }
        Assert.True(moved > data.Count / 2, $"only {moved} of {data.Count} rows masked other tokens in the next epoch");
    }

    [Fact]
    public void Ul2GivesLongDocumentsOnlyTheDenoisersTheirSentinelsAllow()
    {
        // 700 tokens: mean span 3 at 50% noise needs 117 sentinels, mean span 32 at 15% needs 3.
        var data = Documents(40, min: 700, max: 700);
        var xOnly = new Ul2Objective(Options() with { Denoisers = [new(Ul2Mode.X, 1, 32, 0.15), new(Ul2Mode.X, 1, 3, 0.5)] });
        for (int i = 0; i < data.Count; i++)
            Assert.Equal(0, xOnly.Choose(data, i).Denoiser);
        // R alone on 2100 tokens needs 105 sentinels: refused, as span corruption refuses it.
        var rOnly = new Ul2Objective(Options() with { Denoisers = [new(Ul2Mode.R, 1)] });
        var e = Assert.Throws<ArgumentException>(() => rOnly.RowLengths(Documents(1, min: 2100, max: 2100), 0));
        Assert.Contains("needs 105 sentinels for its R denoiser", e.Message);
        Assert.Throws<ArgumentException>(() => rOnly.RowLengths(TokenizedDataset.FromIds([[10, 11]], [[12]]), 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Ul2Objective(Options() with { Denoisers = [new(Ul2Mode.R, -1)] }));
    }
}
