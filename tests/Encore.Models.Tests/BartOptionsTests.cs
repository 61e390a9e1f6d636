using Encore.Autograd;
using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Models.Tests;

/// <summary>
/// The options BART, mBART and Marian need (ScaleEmbeddings, LearnedOffset, a per-stack EmbeddingNorm,
/// SinusoidHalves, FinalLogitsBias): Marian's sinusoid layout against values written out by hand, parameter
/// counts, cached decoding against the full forward, every new parameter's gradient against finite
/// differences, and the validation of the new fields.
/// </summary>
public class BartOptionsTests
{
    // A post-norm LayerNorm encoder–decoder with every option on: BART's shape in miniature.
    static ModelConfig Bart(PositionConfig? positions = null, bool preNorm = false) => Presets.Get("tiny-encdec") with
    {
        Norm = NormKind.LayerNorm,
        NormEps = 1e-5f,
        PostNorm = !preNorm,
        FinalNorm = preNorm,
        QkvBias = true,
        OutputBias = true,
        MlpBias = true,
        EmbeddingNorm = true,
        ScaleEmbeddings = true,
        FinalLogitsBias = true,
        EncoderPositions = positions ?? new PositionConfig { Kind = PositionKind.Learned, LearnedOffset = 2 },
        DecoderPositions = positions ?? new PositionConfig { Kind = PositionKind.Learned, LearnedOffset = 2 },
        MaxPositions = 24,
    };

    [Fact]
    public void MarianSinusoidsPutEverySineFirstAndEveryCosineSecond()
    {
        // D = 4: frequencies 1 and 10000^(-2/4) = 1/100. Interleaved: [sin p, cos p, sin p/100, cos p/100];
        // Marian: [sin p, sin p/100, cos p, cos p/100].
        var row = new float[4];
        TransformerStack.SinusoidRow(3, row, halves: true);
        Assert.Equal([MathF.Sin(3), MathF.Sin(0.03f), MathF.Cos(3), MathF.Cos(0.03f)], row, new Close(1e-6f));
        TransformerStack.SinusoidRow(3, row, halves: false);
        Assert.Equal([MathF.Sin(3), MathF.Cos(3), MathF.Sin(0.03f), MathF.Cos(0.03f)], row, new Close(1e-6f));
        // D = 5 (odd): three sines (exponents 0, 2/5, 4/5), then two cosines (0, 2/5).
        var odd = new float[5];
        TransformerStack.SinusoidRow(2, odd, halves: true);
        double f1 = Math.Pow(10000, -0.4), f2 = Math.Pow(10000, -0.8);
        Assert.Equal([(float)Math.Sin(2), (float)Math.Sin(2 * f1), (float)Math.Sin(2 * f2), (float)Math.Cos(2), (float)Math.Cos(2 * f1)], odd, new Close(1e-6f));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ParameterCounterAgreesWithABuiltModel(bool preNorm)
    {
        using var m = LanguageModel.Create(Bart(preNorm: preNorm));
        Assert.Equal(ParameterCounter.Count(m.Config), m.ParameterCount);
        Assert.Equal([24 + 2, m.Config.DModel], m.Parameters["decoder.embed_positions.weight"].Value.Shape.ToArray());
        Assert.True(m.Parameters.Contains("encoder.embed_norm.bias") && m.Parameters.Contains("decoder.embed_norm.weight"));
        Assert.Equal(preNorm, m.Parameters.Contains("encoder.final_norm.weight"));
    }

    [Theory]
    [InlineData(PositionKind.Learned)]
    [InlineData(PositionKind.Sinusoidal)]
    public void IncrementalDecodingEqualsTheFullForward(PositionKind kind)
    {
        var positions = kind == PositionKind.Learned
            ? new PositionConfig { Kind = kind, LearnedOffset = 2 }
            : new PositionConfig { Kind = kind, SinusoidHalves = true };
        var cfg = Bart(positions);
        using var m = new EncoderDecoderModel(cfg, seed: 5);
        Randomize(m, 9);
        var r = new Random(2);
        int b = 2, s = 6, t = 5, v = cfg.VocabSize;
        var src = Enumerable.Range(0, b * s).Select(_ => r.Next(v)).ToArray();
        var tgt = Enumerable.Range(0, b * t).Select(_ => r.Next(v)).ToArray();
        int[] lengths = [6, 3];
        float[] full;
        using (Tape.Record()) full = m.Forward(src, lengths, tgt, b).Value.ToFloatArray();
        using var memory = m.Encode(src, b, lengths);
        using var cache = m.CreateCache(b, 8, s);
        for (int i = 0; i < t; i++)
        {
            using var step = m.Decode(memory, lengths, [tgt[i], tgt[t + i]], b, cache);
            var got = step.Value.ToFloatArray();
            for (int bi = 0; bi < b; bi++)
                for (int j = 0; j < v; j++)
                    Assert.True(Math.Abs(full[(bi * t + i) * v + j] - got[bi * v + j]) < 1e-4, $"row {bi}, position {i}, logit {j}");
        }
    }

    [Fact]
    public void GradientsOfTheNewParametersMatchFiniteDifferences()
    {
        var cfg = Bart() with { DModel = 16, HeadDim = 8, Heads = 2, KvHeads = 2, FfnDim = 24, VocabSize = 20, EncoderLayers = 1, DecoderLayers = 1 };
        using var m = new EncoderDecoderModel(cfg, seed: 7);
        Randomize(m, 3);
        int[] src = [3, 7, 1, 12], tgt = [0, 5, 9], labels = [5, 9, 2];
        Var Loss() => Ops.CrossEntropy(m.Forward(src, null, tgt, 1), labels);

        foreach (var p in m.Parameters.All) p.ZeroGrad();
        using (var tape = Tape.Record()) tape.Backward(Loss());
        // Entries read through the new options: the logits bias, both embedding norms, the position rows
        // actually read (offset 2 on), the scaled token embeddings.
        var checks = new (string Name, int[] Indices)[]
        {
            (LanguageModel.LogitsBias, [0, 2, 5, 9, 19]),
            ("encoder.embed_norm.weight", [0, 7, 15]),
            ("encoder.embed_norm.bias", [1, 8]),
            ("decoder.embed_norm.weight", [3, 12]),
            ("decoder.embed_norm.bias", [0, 15]),
            ("encoder.embed_positions.weight", [2 * 16 + 1, 5 * 16 + 4]),
            ("decoder.embed_positions.weight", [2 * 16 + 3, 4 * 16 + 10]),
            (LanguageModel.EmbedTokens, [7 * 16 + 2, 5 * 16 + 11]),
        };
        FiniteDifferences.AssertGradients(m.Parameters, checks, Loss);
        // The two rows before the offset are never read: no gradient reaches them.
        var positions = m.Parameters["encoder.embed_positions.weight"].Grad!.ToFloatArray();
        Assert.All(positions[..(2 * 16)], g => Assert.Equal(0f, g));
        Assert.Contains(positions[(2 * 16)..(6 * 16)], g => g != 0);
    }

    [Fact]
    public void TheNewFieldsAreValidatedNamingTheField()
    {
        var learned = Bart();
        Assert.Contains("learned_offset", Assert.Throws<ArgumentException>(() => (learned with { EncoderPositions = new PositionConfig { Kind = PositionKind.Rope, LearnedOffset = 2 } }).Validate()).Message);
        Assert.Contains("learned_offset", Assert.Throws<ArgumentException>(() => (learned with { DecoderPositions = new PositionConfig { Kind = PositionKind.Learned, LearnedOffset = -1 } }).Validate()).Message);
        Assert.Contains("sinusoid_halves", Assert.Throws<ArgumentException>(() => (learned with { EncoderPositions = new PositionConfig { Kind = PositionKind.Learned, SinusoidHalves = true } }).Validate()).Message);
        Assert.Contains("final_logits_bias", Assert.Throws<ArgumentException>(() => (Presets.Get("tiny-encoder") with { FinalLogitsBias = true }).Validate()).Message);
        Assert.Contains("exceeds", Assert.Throws<ArgumentException>(() => (learned with { MaxPositions = ModelConfig.MaxSequence }).Validate()).Message);
    }

    [Fact]
    public void TheNewFieldsRoundTripThroughConfigJsonAndStayOutOfItAtTheirDefaults()
    {
        var c = Bart();
        Assert.Equal(c, ModelConfigJson.Deserialize(ModelConfigJson.Serialize(c)));
        var marian = Bart(new PositionConfig { Kind = PositionKind.Sinusoidal, SinusoidHalves = true });
        Assert.Equal(marian, ModelConfigJson.Deserialize(ModelConfigJson.Serialize(marian)));
        var plain = ModelConfigJson.Serialize(Presets.Get("tiny-encdec"));
        foreach (var field in new[] { "scale_embeddings", "final_logits_bias", "learned_offset", "sinusoid_halves" })
        {
            Assert.Contains(field, ModelConfigJson.Serialize(field == "sinusoid_halves" ? marian : c));
            Assert.DoesNotContain(field, plain);
        }
    }

    // Non-zero biases and norms, so every parameter takes part (fresh ones are 0 or 1).
    static void Randomize(LanguageModel m, int seed)
    {
        var r = new Random(seed);
        foreach (var p in m.Parameters.All)
        {
            var w = p.Value.AsSpan<float>();
            if (p.Value.Rank == 1 || p.Name == LanguageModel.LogitsBias)
                for (int i = 0; i < w.Length; i++) w[i] += (float)(r.NextDouble() - 0.5) * 0.4f;
        }
    }

    sealed class Close(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) <= tolerance;
        public int GetHashCode(float x) => 0;
    }
}
