using Encore.Training.Data;
using Encore.Training.Objectives;

namespace Encore.Training.Tests;

public class ObjectiveTests
{
    const int X = Labels.Ignore;
    static readonly TokenizedDataset Pair = TokenizedDataset.FromIds([[10, 11, 12]], [[20, 21]]);
    static readonly TokenizedDataset Doc = TokenizedDataset.FromIds([[10, 11, 12, 13, 14, 15, 16, 17]]);

    [Fact]
    public void Seq2SeqShiftsTheTargetBehindTheStartId()
    {
        var row = new Seq2SeqObjective(new Seq2SeqOptions { PadId = 0, EosId = 1, DecoderStartId = 2 }).MakeRow(Pair, 0, new DataRng(0));
        Assert.Equal([10, 11, 12, 1], row.Source);
        Assert.Equal([2, 20, 21], row.Inputs);
        Assert.Equal([20, 21, 1], row.Targets);
        var noEos = new Seq2SeqObjective(new Seq2SeqOptions { SourceEos = false }).MakeRow(Pair, 0, new DataRng(0));
        Assert.Equal([10, 11, 12], noEos.Source);
        Assert.Throws<ArgumentException>(() => new Seq2SeqObjective(new Seq2SeqOptions()).RowLengths(Doc, 0));
    }

    [Fact]
    public void CausalLmMasksThePrompt()
    {
        var row = new CausalLmObjective(new CausalLmOptions { EosId = 1, BosId = 2 }).MakeRow(Pair, 0, new DataRng(0));
        // sequence: 2 10 11 12 20 21 1
        Assert.Empty(row.Source);
        Assert.Equal([2, 10, 11, 12, 20, 21], row.Inputs);
        Assert.Equal([X, X, X, 20, 21, 1], row.Targets);
        var noBos = new CausalLmObjective(new CausalLmOptions { EosId = 1 }).MakeRow(Pair, 0, new DataRng(0));
        Assert.Equal([10, 11, 12, 20, 21], noBos.Inputs);
        Assert.Equal([X, X, 20, 21, 1], noBos.Targets);
    }

    [Fact]
    public void CausalLmOnPlainTextTakesLossEverywhere()
    {
        var data = TokenizedDataset.FromIds([[10, 11, 12]]);
        var row = new CausalLmObjective(new CausalLmOptions { EosId = 1, BosId = 2 }).MakeRow(data, 0, new DataRng(0));
        Assert.Equal([2, 10, 11, 12], row.Inputs);
        Assert.Equal([10, 11, 12, 1], row.Targets);
    }

    [Fact]
    public void PrefixLmTakesLossOnTheContinuationOnly()
    {
        var objective = new PrefixLmObjective(new CausalLmOptions { EosId = 1, BosId = 2 });
        var splits = new HashSet<int>();
        for (ulong seed = 0; seed < 200; seed++)
        {
            var row = objective.MakeRow(Doc, 0, new DataRng(seed));
            Assert.Equal([2, 10, 11, 12, 13, 14, 15, 16, 17], row.Inputs);
            int k = Array.FindIndex(row.Targets, t => t != X); // first loss position predicts d[k]
            Assert.InRange(k, 1, 7);
            splits.Add(k);
            var expected = new int[9];
            for (int i = 0; i < 9; i++) expected[i] = i < k ? X : i == 8 ? 1 : 10 + i;
            Assert.Equal(expected, row.Targets);
        }
        Assert.Equal(7, splits.Count); // every split point 1 … 7 occurs
        Assert.Throws<ArgumentException>(() => objective.RowLengths(TokenizedDataset.FromIds([[5]]), 0));
        Assert.Throws<ArgumentException>(() => objective.RowLengths(Pair, 0));
    }

    static SpanCorruptionObjective Span(int sentinels = 100) =>
        new(new SpanCorruptionOptions { PadId = 0, EosId = 1, DecoderStartId = 0, Sentinels = Enumerable.Range(0, sentinels).Select(n => 999 - n).ToArray() });

    [Fact]
    public void SpanCorruptionReplacesSpansWithSentinels()
    {
        // Document a..h = 10..17, noise {12 13} and {17}.
        bool[] mask = [false, false, true, true, false, false, false, true];
        var row = Span().Apply(Doc.Sources[0], mask);
        Assert.Equal([10, 11, 999, 14, 15, 16, 998, 1], row.Source);
        Assert.Equal([0, 999, 12, 13, 998, 17], row.Inputs);
        Assert.Equal([999, 12, 13, 998, 17, 1], row.Targets);
    }

    [Fact]
    public void SpanCorruptionRowsHaveTheAnnouncedLengthsAndRebuildTheDocument()
    {
        var rng = new DataRng(3);
        var docs = Enumerable.Range(0, 50).Select(i => Enumerable.Range(100, 2 + rng.NextInt(300)).ToArray()).ToList();
        var data = TokenizedDataset.FromIds(docs);
        var objective = Span();
        for (int i = 0; i < docs.Count; i++)
        {
            var row = objective.MakeRow(data, i, DataRng.For(1, (ulong)i));
            Assert.Equal(objective.RowLengths(data, i), (row.Source.Length, row.Inputs.Length));
            // Filling each sentinel in the source with its span from the targets gives the document back.
            var spans = new Dictionary<int, List<int>>();
            List<int>? cur = null;
            foreach (int t in row.Targets[..^1])
                if (t >= 900) spans[t] = cur = [];
                else cur!.Add(t);
            var rebuilt = row.Source[..^1].SelectMany(t => t >= 900 ? spans[t] : [t]).ToArray();
            Assert.Equal(docs[i], rebuilt);
        }
    }

    [Fact]
    public void SpanCorruptionFollowsT5NoiseDensityAndSpanStatistics()
    {
        var objective = Span();
        Assert.Equal((15, 5), objective.Counts(100));
        Assert.Equal((1, 1), objective.Counts(2));
        Assert.Equal((77, 26), objective.Counts(512)); // T5: round(76.8) = 77 noise tokens, round(25.67) = 26 spans
        const int Draws = 4000, L = 100;
        var rng = new DataRng(17);
        long noise = 0, spans = 0;
        int firstSpanOfLengthOne = 0;
        var positionNoise = new int[L];
        for (int d = 0; d < Draws; d++)
        {
            var mask = objective.NoiseMask(L, rng);
            Assert.False(mask[0]); // T5's spans start with non-noise …
            Assert.True(mask[^1]); // … and end with noise
            var runs = Runs(mask);
            Assert.Equal(5, runs.Count);
            Assert.Equal(15, runs.Sum());
            noise += runs.Sum();
            spans += runs.Count;
            if (runs[0] == 1) firstSpanOfLengthOne++;
            for (int i = 0; i < L; i++) if (mask[i]) positionNoise[i]++;
        }
        Assert.Equal(0.15, (double)noise / (Draws * L), 12);
        Assert.Equal(3.0, (double)noise / spans, 12);
        // Uniform segmentation of 15 noise tokens into 5 spans: P(span length 1) = C(13,3)/C(14,4) = 286/1001.
        Assert.InRange(firstSpanOfLengthOne / (double)Draws, 286.0 / 1001 - 0.03, 286.0 / 1001 + 0.03);
        // Noise is spread over the document, not piled at one end: each decile holds 15% ± 3% noise
        // (the first decile less, as position 0 is never noise).
        for (int dec = 1; dec < 9; dec++)
            Assert.InRange(positionNoise.Skip(dec * 10).Take(10).Sum() / (double)(Draws * 10), 0.12, 0.18);
    }

    static List<int> Runs(bool[] mask)
    {
        var runs = new List<int>();
        for (int i = 0; i < mask.Length; i++)
        {
            if (!mask[i]) continue;
            if (i == 0 || !mask[i - 1]) runs.Add(0);
            runs[^1]++;
        }
        return runs;
    }

    [Fact]
    public void SpanCorruptionIsDeterministicBySeedAndRejectsTooFewSentinels()
    {
        var objective = Span();
        Assert.Equal(objective.NoiseMask(200, new DataRng(5)), objective.NoiseMask(200, new DataRng(5)));
        Assert.NotEqual(objective.NoiseMask(200, new DataRng(5)), objective.NoiseMask(200, new DataRng(6)));
        var e = Assert.Throws<ArgumentException>(() => Span(sentinels: 4).RowLengths(TokenizedDataset.FromIds([Enumerable.Range(0, 100).ToArray()]), 0));
        Assert.Contains("needs 5 sentinels but 4 are given", e.Message);
    }

    [Fact]
    public void MlmWithEverySelectedTokenMaskedTakesLossOnTextOnly()
    {
        var objective = new MaskedLmObjective(new MaskedLmOptions { MaskId = 3, VocabSize = 50, Prefix = [4], Suffix = [5], SelectProbability = 1, MaskShare = 1, RandomShare = 0 });
        var row = objective.MakeRow(TokenizedDataset.FromIds([[10, 11, 12]]), 0, new DataRng(0));
        Assert.Equal([4, 3, 3, 3, 5], row.Inputs);
        Assert.Equal([X, 10, 11, 12, X], row.Targets);
        var keep = new MaskedLmObjective(objective.Options with { MaskShare = 0 }).MakeRow(TokenizedDataset.FromIds([[10, 11, 12]]), 0, new DataRng(0));
        Assert.Equal([4, 10, 11, 12, 5], keep.Inputs);
        Assert.Equal([X, 10, 11, 12, X], keep.Targets);
        // Random replacements avoid the excluded ids: with 0 … 48 excluded only 49 is left.
        var random = new MaskedLmObjective(objective.Options with { MaskShare = 0, RandomShare = 1, NoRandom = Enumerable.Range(0, 49).ToArray() })
            .MakeRow(TokenizedDataset.FromIds([[10, 11, 12]]), 0, new DataRng(0));
        Assert.Equal([4, 49, 49, 49, 5], random.Inputs);
        Assert.Equal([X, 10, 11, 12, X], random.Targets);
    }

    [Fact]
    public void MlmSelectsFifteenPercentSplitEightyTenTen()
    {
        var objective = new MaskedLmObjective(new MaskedLmOptions { MaskId = 1, VocabSize = 1000, NoRandom = [0, 1] });
        var doc = Enumerable.Range(500, 400).ToArray(); // ids 500 … 899
        var data = TokenizedDataset.FromIds([doc]);
        int selected = 0, masked = 0, random = 0, kept = 0, total = 0;
        for (ulong seed = 0; seed < 100; seed++)
        {
            var row = objective.MakeRow(data, 0, new DataRng(seed));
            for (int i = 0; i < doc.Length; i++)
            {
                total++;
                if (row.Targets[i] == X)
                {
                    Assert.Equal(doc[i], row.Inputs[i]); // unselected positions are untouched and carry no loss
                    continue;
                }
                Assert.Equal(doc[i], row.Targets[i]);
                selected++;
                if (row.Inputs[i] == 1) masked++;
                else if (row.Inputs[i] == doc[i]) kept++;
                else random++;
            }
        }
        Assert.InRange(selected / (double)total, 0.14, 0.16);
        Assert.InRange(masked / (double)selected, 0.77, 0.83);
        Assert.InRange(random / (double)selected, 0.08, 0.12); // a random draw equal to the original (p = 1/998) counts as kept
        Assert.InRange(kept / (double)selected, 0.08, 0.12);
    }

    [Fact]
    public void AnMlmRunMasksAtTheRateItIsGiven()
    {
        // Ettin's and ModernBERT's 30%, through the factory a training run uses; the default stays BERT's 15%.
        var tok = BundledData.TrainTokenizer([new TextPair("one two three four five six", "seven")], 400);
        using var model = new Encore.Models.EncoderOnlyModel(Encore.Models.Presets.Get("tiny-encoder") with { VocabSize = tok.VocabSize });
        var mlm = (MaskedLmObjective)Encore.Training.Runs.TrainingRun.MakeObjective(Encore.Training.Runs.ObjectiveKind.MaskedLm, model, tok, plainText: true, maskedLmProbability: 0.3);
        Assert.Equal(0.15, ((MaskedLmObjective)Encore.Training.Runs.TrainingRun.MakeObjective(Encore.Training.Runs.ObjectiveKind.MaskedLm, model, tok, plainText: true)).Options.SelectProbability);
        var doc = Enumerable.Range(200, 100).ToArray();
        int selected = 0;
        for (ulong seed = 0; seed < 100; seed++)
            selected += mlm.MakeRow(TokenizedDataset.FromIds([doc]), 0, new DataRng(seed)).Targets.Count(t => t != X);
        Assert.InRange(selected / 10_000.0, 0.28, 0.32);
    }

    [Fact]
    public void TrainingBatchesDrawTheSameRowsWhateverTheBatch()
    {
        var docs = Enumerable.Range(0, 40).Select(i => Enumerable.Range(10, 20 + i).ToArray()).ToList();
        var batches = new TrainingBatches(TokenizedDataset.FromIds(docs), Span(), new BucketingOptions { MaxTokens = 300, Seed = 3 });
        // Example 39 has 59 tokens: 9 noise tokens in 3 spans, so its mask is random (a 1-span mask is not: T5 puts it at the end).
        var alone = batches.MakeBatch([39], 0);
        var together = batches.MakeBatch([39, 3], 0);
        Assert.Equal(alone.Source, together.Source[..alone.SourceLength]);
        Assert.NotEqual(alone.Source, batches.MakeBatch([39], 1).Source); // a new epoch draws a new mask
        int rows = 0;
        foreach (var b in batches.Epoch(0))
        {
            Assert.True(b.PaddedTokens <= 300);
            rows += b.Size;
        }
        Assert.Equal(40, rows);
    }
}
