using Encore.Formats.Tokenization;
using Encore.Models;

namespace Encore.Generation.Tests;

/// <summary>
/// Swift/super routing: the energy and max-softmax signals against hand-computed literals and a naive twin,
/// the traced energies against a teacher-forced forward pass, routing decisions against the threshold,
/// calibration on literal scores, the router's outputs against each model's plain output, and the refusal
/// of models that do not share a tokenizer.
/// </summary>
public class RoutingTests
{
    static readonly string[] Prompts = ["the lazy dog", "Encoder–decoder models encode", "naïve café", "one token at a time", "The quick brown fox", "Ça coûte 5 €"];

    // The definition, term by term in double with no shift: the specification the shifted code must match.
    static double NaiveEnergy(float[] logits, double t) => -t * Math.Log(logits.Sum(x => Math.Exp(x / t)));

    [Fact]
    public void EnergyMatchesHandComputedValues()
    {
        // E([1, 2, 3]) = −ln(e + e² + e³) = −(3 + ln(1 + e⁻¹ + e⁻²)) = −(3 + ln 1.5032147…) = −3.4076059644…
        Assert.Equal(-3.40760596444438, RoutingScores.Energy([1f, 2f, 3f]), 12);
        // T = 2: −2·ln(e^0.5 + e^1 + e^1.5) = −2·(1.5 + ln(1 + e^−0.5 + e^−1)) = −4.3605393…
        Assert.Equal(-4.360539341283469, RoutingScores.Energy([1f, 2f, 3f], 2), 12);
        // A flat row of V equal logits c: E = −c − T·ln V; a peaked row has lower energy than a flat one at the same maximum.
        Assert.Equal(-0.5 - Math.Log(8), RoutingScores.Energy(Enumerable.Repeat(0.5f, 8).ToArray()), 12);
        Assert.True(RoutingScores.Energy([5f, 0f, 0f, 0f]) > RoutingScores.Energy([5f, 5f, 5f, 5f]));
        // max p of [1, 2, 3] = e³ / (e + e² + e³) = 1 / 1.5032147… = 0.66524…
        Assert.Equal(0.6652409557748219, RoutingScores.MaxProbability([1f, 2f, 3f]), 12);
        Assert.Equal(1 - 0.6652409557748219, RoutingScores.Uncertainty(RoutingSignal.MaxProbability, [1f, 2f, 3f]), 12);
        Assert.Equal(-3.40760596444438, RoutingScores.Uncertainty(RoutingSignal.Energy, [1f, 2f, 3f]), 12);
        // Banned tokens add nothing; a row of nothing but banned tokens is infinitely uncertain.
        Assert.Equal(-3.40760596444438, RoutingScores.Energy([1f, float.NegativeInfinity, 2f, 3f]), 12);
        Assert.Equal(double.PositiveInfinity, RoutingScores.Energy([float.NegativeInfinity, float.NegativeInfinity]));
    }

    [Theory]
    [InlineData(1, 1.0)]
    [InlineData(7, 1.0)]
    [InlineData(2048, 1.0)]
    [InlineData(33, 0.5)]
    [InlineData(331, 2.5)]
    public void EnergyMatchesTheNaiveDefinition(int v, double t)
    {
        var rng = new Random(v);
        var logits = Enumerable.Range(0, v).Select(_ => (float)(rng.NextDouble() * 16 - 8)).ToArray();
        double naive = NaiveEnergy(logits, t);
        Assert.Equal(naive, RoutingScores.Energy(logits, t), 9);
        double maxP = logits.Max(x => Math.Exp(x)) / logits.Sum(x => Math.Exp(x));
        Assert.Equal(maxP, RoutingScores.MaxProbability(logits), 12);
        // Shifting every logit by c shifts E by −c and leaves the probabilities alone; far past where exp overflows.
        var shifted = logits.Select(x => x + 1000f).ToArray();
        Assert.Equal(naive - 1000, RoutingScores.Energy(shifted, t), 3);
        Assert.Equal(maxP, RoutingScores.MaxProbability(shifted), 4);
    }

    [Fact]
    public void TracedEnergiesAreThoseOfATeacherForcedPass()
    {
        using var swift = TinyModels.EncDec(seed: 3);
        using var super = TinyModels.Decoder(seed: 5);
        var router = new RoutedGenerator(new Generator(swift, TinyModels.Tokenizer), new Generator(super, TinyModels.Tokenizer), new RoutingOptions { Temperature = 1.5 });
        foreach (var prompt in Prompts.Take(3))
        {
            var ids = router.Swift.EncodePrompt(prompt);
            var pass = router.RunSwift(ids, new GenerationOptions { MaxNewTokens = 9 });
            var tokens = pass.Result.Tokens;
            Assert.Equal(tokens, router.Swift.Generate(prompt, new GenerationOptions { MaxNewTokens = 9 }).Tokens);
            Assert.Equal(tokens.Length, pass.Trace.Steps);
            // The decoder's inputs: the start token, then every generated token but the last; no cache.
            int[] inputs = [swift.Config.DecoderStartTokenId, .. tokens[..^1]];
            using var logits = swift.Forward(ids, null, inputs, 1);                      // (1, T, V)
            int v = swift.Config.VocabSize;
            var all = logits.Value.AsReadOnlySpan<float>().ToArray();
            for (int i = 0; i < tokens.Length; i++)
            {
                var row = all.AsSpan(i * v, v).ToArray();
                Assert.Equal(NaiveEnergy(row, 1.5), pass.Trace.Energies[i], 4);
                Assert.Equal(row.Max(x => Math.Exp(x)) / row.Sum(x => Math.Exp(x)), pass.Trace.MaxProbabilities[i], 5);
            }
            Assert.Equal(pass.Trace.Energies.Average(), pass.Trace.Score(RoutingSignal.Energy, RoutingSpan.Mean), 12);
            Assert.Equal(pass.Trace.Energies[0], pass.Trace.Score(RoutingSignal.Energy, RoutingSpan.FirstStep));
            Assert.Equal(1 - pass.Trace.MaxProbabilities.Average(), pass.Trace.Score(RoutingSignal.MaxProbability, RoutingSpan.Mean), 12);
            Assert.Equal(pass.Trace.Energies[0], router.ScorePrompt(ids), 9);
        }
    }

    [Fact]
    public void RoutesExactlyTheScoresAboveTheThreshold()
    {
        var o = new RoutingOptions { Threshold = 0.5 };
        Assert.False(o.Routes(0.5));
        Assert.True(o.Routes(Math.BitIncrement(0.5)));
        Assert.False(o.Routes(-3));
        Assert.False(new RoutingOptions().Routes(1e300));                                  // +∞ by default: nothing is routed
        Assert.True(new RoutingOptions { Threshold = double.NegativeInfinity }.Routes(-1e300));
    }

    [Fact]
    public void CalibrationRoutesTheRequestedFraction()
    {
        double[] scores = [0.5, 0.1, 0.9, 0.3, 0.7];
        // 40% of 5 = 2 routed, the two largest (0.9, 0.7): the threshold is halfway between 0.5 and 0.7.
        Assert.Equal(0.6, RoutingCalibration.ThresholdForFraction(scores, 0.4), 12);
        Assert.Equal(0.2, RoutingCalibration.ThresholdForFraction(scores, 0.8), 12);
        Assert.Equal(0.4, RoutingCalibration.RoutedFraction(scores, 0.6), 12);
        Assert.Equal(double.PositiveInfinity, RoutingCalibration.ThresholdForFraction(scores, 0));
        Assert.Equal(double.NegativeInfinity, RoutingCalibration.ThresholdForFraction(scores, 1));
        foreach (double f in new[] { 0.0, 0.2, 0.4, 0.6, 0.8, 1.0 })
            Assert.Equal(f, RoutingCalibration.RoutedFraction(scores, RoutingCalibration.ThresholdForFraction(scores, f)), 12);

        // Ties at the cut: [1, 2, 2, 2, 3]. 40% (2) cannot be routed exactly: routing only the 3 (1) is nearer than
        // routing every 2 as well (4). 60% (3): routing every 2 (4) is nearer than the 3 alone (1).
        double[] tied = [2, 1, 2, 3, 2];
        Assert.Equal(2.5, RoutingCalibration.ThresholdForFraction(tied, 0.4), 12);
        Assert.Equal(1.5, RoutingCalibration.ThresholdForFraction(tied, 0.6), 12);
        Assert.Equal(0.8, RoutingCalibration.RoutedFraction(tied, 1.5), 12);

        Assert.Throws<ArgumentOutOfRangeException>(() => RoutingCalibration.ThresholdForFraction(scores, 1.5));
        Assert.Throws<ArgumentException>(() => RoutingCalibration.ThresholdForFraction([], 0.5));
        Assert.Throws<ArgumentException>(() => RoutingCalibration.ThresholdForFraction([double.NaN], 0.5));
    }

    [Fact]
    public void CalibrationForQualityRoutesTheFewestThatReachIt()
    {
        // Routed in order of score: #0 (0.9, +10), #3 (0.7, +5), #2 (0.5, −10), #1 (0.1, 0); the swift mean is 25/4.
        double[] scores = [0.9, 0.1, 0.5, 0.7], swift = [0, 10, 10, 5], super = [10, 10, 0, 10];
        Assert.Equal(double.PositiveInfinity, RoutingCalibration.ThresholdForQuality(scores, swift, super, 6));
        Assert.Equal(0.8, RoutingCalibration.ThresholdForQuality(scores, swift, super, 8.75)!.Value, 12);   // #0: 35/4
        Assert.Equal(0.6, RoutingCalibration.ThresholdForQuality(scores, swift, super, 10)!.Value, 12);     // #0, #3: 40/4
        Assert.Null(RoutingCalibration.ThresholdForQuality(scores, swift, super, 10.5));
        Assert.Throws<ArgumentException>(() => RoutingCalibration.ThresholdForQuality(scores, swift, [1], 5));
    }

    [Theory]
    [InlineData(RoutingSpan.FirstStep, RoutingSignal.Energy)]
    [InlineData(RoutingSpan.Mean, RoutingSignal.Energy)]
    [InlineData(RoutingSpan.FirstStep, RoutingSignal.MaxProbability)]
    [InlineData(RoutingSpan.Mean, RoutingSignal.MaxProbability)]
    public void EachInputGetsTheChosenModelsPlainOutput(RoutingSpan span, RoutingSignal signal)
    {
        // A decoder-only swift model and an encoder–decoder super model: the prompt is laid out for each.
        using var swiftModel = TinyModels.Decoder(seed: 7);
        using var superModel = TinyModels.EncDec(seed: 11);
        var swift = new Generator(swiftModel, TinyModels.Tokenizer);
        var super = new Generator(superModel, TinyModels.Tokenizer);
        var options = new GenerationOptions { MaxNewTokens = 8 };
        var swiftPlain = Prompts.Select(p => swift.Generate(p, options)).ToArray();
        var superPlain = Prompts.Select(p => super.Generate(p, options)).ToArray();
        var probe = new RoutedGenerator(swift, super, new RoutingOptions { Span = span, Signal = signal });
        var scores = Prompts.Select(p => probe.Options.Score(probe.RunSwift(swift.EncodePrompt(p), options).Trace)).ToArray();
        Assert.True(scores.Distinct().Count() > 1, "the prompts need different scores");
        Assert.True(Enumerable.Range(0, Prompts.Length).Any(i => swiftPlain[i].Text != superPlain[i].Text), "the models must answer differently");
        double threshold = RoutingCalibration.ThresholdForFraction(scores, 0.5);

        foreach (double t in new[] { double.PositiveInfinity, double.NegativeInfinity, threshold })
        {
            var router = new RoutedGenerator(swift, super, new RoutingOptions { Span = span, Signal = signal, Threshold = t });
            var routed = router.Generate(Prompts, options);
            for (int i = 0; i < Prompts.Length; i++)
            {
                bool toSuper = scores[i] > t;
                Assert.Equal(toSuper ? RoutedModel.Super : RoutedModel.Swift, routed[i].AnsweredBy);
                Assert.Equal(scores[i], routed[i].Score, 9);
                var plain = toSuper ? superPlain[i] : swiftPlain[i];
                Assert.Equal(plain.Tokens, routed[i].Result.Tokens);
                Assert.Equal(plain.Text, routed[i].Text);
            }
            if (t == threshold) Assert.Equal(Prompts.Length / 2, routed.Count(r => r.AnsweredBy == RoutedModel.Super));
        }
    }

    [Fact]
    public void SampledSwiftOutputIsThePlainSample()
    {
        using var swiftModel = TinyModels.EncDec(seed: 7);
        using var superModel = TinyModels.EncDec(seed: 11);
        var swift = new Generator(swiftModel, TinyModels.Tokenizer);
        var router = new RoutedGenerator(swift, new Generator(superModel, TinyModels.Tokenizer));
        var options = new GenerationOptions { MaxNewTokens = 10, DoSample = true, Temperature = 0.9f, TopK = 20, Seed = 42 };
        foreach (var p in Prompts)
        {
            var r = router.Generate(p, options);
            Assert.Equal(RoutedModel.Swift, r.AnsweredBy);
            Assert.Equal(swift.Generate(p, options).Tokens, r.Result.Tokens);
        }
    }

    [Fact]
    public void ModelsWithDifferentTokenizersAreRefused()
    {
        var other = BpeTrainer.Train(["Entirely different sentences make entirely different merges.", "Zebras zigzag through the zoo."],
            TinyModels.Tokenizer.VocabSize, ["<pad>", "</s>", "<s>"], new SpecialTokenRoles(Bos: "<s>", Eos: "</s>", Pad: "<pad>"));
        using var a = TinyModels.EncDec(seed: 1);
        using var b = TinyModels.EncDec(seed: 2);
        var e = Assert.Throws<ArgumentException>(() => new RoutedGenerator(new Generator(a, TinyModels.Tokenizer), new Generator(b, other), null, "swift runs/small", "super runs/large"));
        Assert.Contains("swift runs/small and super runs/large have different tokenizers", e.Message);
        Assert.Matches("token \\d+ is '|\\d+ tokens against \\d+", e.Message);

        using var wider = TinyModels.EncDec(seed: 2, vocab: TinyModels.Tokenizer.VocabSize + 8);
        e = Assert.Throws<ArgumentException>(() => new RoutedGenerator(new Generator(a, TinyModels.Tokenizer), new Generator(wider, TinyModels.Tokenizer)));
        Assert.Contains($"the swift model has a vocabulary of {TinyModels.Tokenizer.VocabSize} tokens and the super model one of {TinyModels.Tokenizer.VocabSize + 8}", e.Message);

        e = Assert.Throws<ArgumentException>(() => new RoutedGenerator(new Generator(a), new Generator(b, other)));
        Assert.Contains("the swift model has no tokenizer", e.Message);
        Assert.Throws<ArgumentException>(() => new RoutingOptions { Temperature = 0 }.Validate());
        Assert.Throws<ArgumentException>(() => new RoutingOptions { Threshold = double.NaN }.Validate());
    }
}
