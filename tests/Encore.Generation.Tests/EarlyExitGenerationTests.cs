using Encore.Models;

namespace Encore.Generation.Tests;

/// <summary>
/// Early exit through <see cref="GenerationOptions.EarlyExit"/>: τ = 1 is plain generation with the layers
/// counted, τ ≤ 0 is the generation of the model cut to its first encoder and decoder layers (parameters
/// copied), over many prompts, batched and alone.
/// </summary>
public class EarlyExitGenerationTests
{
    const int Vocab = 48;

    internal static EncoderDecoderModel DeepEncDec()
    {
        var m = new EncoderDecoderModel(Presets.Get("tiny-encdec") with { VocabSize = Vocab, EncoderLayers = 3, DecoderLayers = 3, TieEmbeddings = false }, 21);
        // As TinyModels.EncDec: larger projections so the source steers the output.
        foreach (var p in m.Parameters.All)
            if (p.Name.Contains("_proj.weight"))
                foreach (ref float x in p.Value.AsSpan<float>()) x *= TinyModels.ProjectionScale;
        return m;
    }

    static T Cut<T>(T source, ModelConfig config) where T : LanguageModel
    {
        var cut = (T)LanguageModel.Create(config, 99);
        foreach (var p in cut.Parameters.All.ToArray()) cut.Parameters.Assign(p.Name, source.Parameters[p.Name].Value.Clone());
        return cut;
    }

    static int[][] Prompts(int count, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, r.Next(2, 12)).Select(_ => r.Next(3, Vocab)).Append(1).ToArray()).ToArray();
    }

    static GenerationOptions Options(EarlyExitOptions? exit) => new() { MaxNewTokens = 12, EosTokenIds = [1], EarlyExit = exit };

    [Fact]
    public void ThresholdOneIsPlainGenerationWithEveryLayerCounted()
    {
        using var m = DeepEncDec();
        var g = new Generator(m);
        var prompts = Prompts(40, 1);
        var plain = g.GenerateIds(prompts, Options(null));
        var exit = g.GenerateIds(prompts, Options(EarlyExitOptions.Both(1f)));
        Assert.True(plain.Select(r => string.Join(',', r.Tokens)).Distinct().Count() > 5, "the prompts give too few distinct outputs to compare");
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(plain[i].Tokens, exit[i].Tokens);
            Assert.Null(plain[i].EarlyExit);
            var s = exit[i].EarlyExit!.Value;
            Assert.Equal((3L, 1L, 3), (s.EncoderLayers, s.EncoderExamples, s.EncoderDepth));
            // One decoder pass per step of the batch, whose rows step together until the longest ends.
            Assert.Equal(exit.Max(r => r.Tokens.Length), s.DecoderTokens);
            Assert.Equal(3 * s.DecoderTokens, s.DecoderLayers);
            Assert.Equal(1.0, s.LayerFraction);
        }
        // Alone, as in a batch; alone, one decoder pass per generated token (the start token's gives the
        // first, and the last is not fed back).
        foreach (int i in new[] { 0, 7, 19 })
        {
            var alone = g.GenerateIds([prompts[i]], Options(EarlyExitOptions.Both(1f)))[0];
            Assert.Equal(plain[i].Tokens, alone.Tokens);
            Assert.Equal(alone.Tokens.Length, alone.EarlyExit!.Value.DecoderTokens);
        }
    }

    [Fact]
    public void ThresholdZeroIsTheGenerationOfTheFirstLayers()
    {
        using var m = DeepEncDec();
        using var cut = Cut(m, m.Config with { EncoderLayers = 1, DecoderLayers = 1 });
        var prompts = Prompts(30, 2);
        var expected = new Generator(cut).GenerateIds(prompts, Options(null));
        foreach (float tau in new[] { 0f, -1f })
        {
            var got = new Generator(m).GenerateIds(prompts, Options(EarlyExitOptions.Both(tau)));
            for (int i = 0; i < prompts.Length; i++)
            {
                Assert.Equal(expected[i].Tokens, got[i].Tokens);
                var s = got[i].EarlyExit!.Value;
                Assert.Equal(1, s.EncoderLayers);
                Assert.Equal(s.DecoderTokens, s.DecoderLayers);
                Assert.Equal(1.0 / 3, s.DecoderFraction, 12);
            }
        }
        // The full model answers otherwise: the cut is not a no-op.
        var plain = new Generator(m).GenerateIds(prompts, Options(null));
        Assert.Contains(Enumerable.Range(0, prompts.Length), i => !plain[i].Tokens.SequenceEqual(expected[i].Tokens));
    }

    [Fact]
    public void ADecoderOnlyModelExitsPerTokenPromptIncluded()
    {
        using var m = TinyModels.Decoder(vocab: Vocab);
        using var cut = Cut(m, m.Config with { DecoderLayers = 1 });
        int[] prompt = [2, 9, 14, 30, 7];
        var expected = new Generator(cut).GenerateIds([prompt], Options(null))[0];
        var got = new Generator(m).GenerateIds([prompt], Options(new EarlyExitOptions { DecoderThreshold = 0 }))[0];
        Assert.Equal(expected.Tokens, got.Tokens);
        var s = got.EarlyExit!.Value;
        Assert.Equal(0, s.EncoderDepth);
        Assert.True(double.IsNaN(s.EncoderFraction));
        Assert.Equal(prompt.Length + got.Tokens.Length - 1, s.DecoderTokens);
        Assert.Equal(s.DecoderTokens, s.DecoderLayers);
    }

    [Fact]
    public void IntermediateThresholdsCountBetweenTheExtremesAndBeamsAndTimingReportThem()
    {
        using var m = DeepEncDec();
        var g = new Generator(m);
        var prompts = Prompts(12, 3);
        var fractions = new[] { 0f, 0.5f, 0.8f, 0.9f, 0.95f, 0.99f, 1f }.Select(tau =>
        {
            var results = g.GenerateIds(prompts, Options(EarlyExitOptions.Both(tau)));
            var sum = results.Select(r => r.EarlyExit!.Value).Aggregate((a, b) => a + b);
            return sum.LayerFraction;
        }).ToArray();
        // A higher threshold never runs fewer layers on average here, and the sweep spans both extremes.
        Assert.Equal(1.0 / 3, fractions[0], 12);
        Assert.Equal(1.0, fractions[^1], 12);
        Assert.Contains(fractions, f => f > 1.0 / 3 + 1e-9 && f < 1 - 1e-9);

        var beams = g.GenerateIds([prompts[0]], Options(EarlyExitOptions.Both(1f)) with { NumBeams = 3 })[0];
        Assert.Equal(g.GenerateIds([prompts[0]], Options(null) with { NumBeams = 3 })[0].Tokens, beams.Tokens);
        Assert.Equal(3, beams.EarlyExit!.Value.EncoderLayers);

        var timing = GenerationTiming.Measure(g, prompts[0], Options(EarlyExitOptions.Both(0f)));
        Assert.Equal(1, timing.EarlyExit!.Value.EncoderLayers);
    }

    [Fact]
    public void ABatchDecoderWithRowsJoiningAtTheirOwnTimesDecodesAsEachAlone()
    {
        using var m = DeepEncDec();
        var g = new Generator(m);
        var prompts = Prompts(6, 4);
        var options = new GenerationOptions { MaxNewTokens = 10, BadWordsIds = [1] };
        // A threshold at which some tokens leave the decoder early and others run it whole.
        GenerationResult[] Alone(EarlyExitOptions e) => prompts.Select(p => g.GenerateIds([p], options with { EarlyExit = e })[0]).ToArray();
        var exit = Enumerable.Range(0, 40).Select(i => new EarlyExitOptions { EncoderThreshold = 0.9f, DecoderThreshold = 0.2f + i * 0.02f })
            .First(e => Alone(e).Select(r => r.EarlyExit!.Value).Aggregate((a, b) => a + b).DecoderFraction is > 0.4 and < 0.9);
        var alone = Alone(exit);

        using var batch = new BatchDecoder(g, 3, 32) { EarlyExit = exit };
        var seqs = prompts.Select(p => new BatchSequence(p, options)).ToArray();
        var events = new List<BatchEvent>();
        int next = 0, steps = 0;
        while (next < seqs.Length || batch.ActiveCount > 0)
        {
            int joining = Math.Min(Math.Min(steps % 3 == 0 ? 2 : 0, batch.FreeRows), seqs.Length - next);
            if (joining > 0)
            {
                batch.Add(seqs.Skip(next).Take(joining).ToArray());
                next += joining;
            }
            batch.Step(events);
            Assert.True(++steps < 200);
        }
        for (int i = 0; i < seqs.Length; i++) Assert.Equal(alone[i].Tokens, seqs[i].Tokens);
        var counts = batch.ExitCounts!.Value;
        Assert.Equal(prompts.Length, counts.EncoderExamples);
        Assert.Equal(alone.Sum(r => r.EarlyExit!.Value.EncoderLayers), counts.EncoderLayers);
        // Every sequence runs alone as in the batch, one decoder pass per token but its last.
        Assert.Equal(alone.Sum(r => r.EarlyExit!.Value.DecoderLayers), counts.DecoderLayers);
    }

    [Fact]
    public void ThresholdsThatAreNotNumbersAreRefusedByName()
    {
        var e = Assert.Throws<ArgumentException>(() => new GenerationOptions { EarlyExit = new EarlyExitOptions { DecoderThreshold = float.NaN } }.Validate());
        Assert.Contains("decoder exit threshold", e.Message);
        e = Assert.Throws<ArgumentException>(() => new GenerationOptions { EarlyExit = new EarlyExitOptions { EncoderThreshold = float.PositiveInfinity } }.Validate());
        Assert.Contains("encoder exit threshold", e.Message);
    }
}
