using Encore.Autograd;
using Encore.Tensors;

namespace Encore.Models.Tests;

/// <summary>
/// The options Gemma 2 and T5Gemma need (NormUnitOffset, SandwichNorms, AttentionSoftCap, FinalLogitSoftCap,
/// SlidingWindow with GlobalLayerEvery): parameter counts, cached decoding past the window against the full
/// forward (also on a batch cache, rows at their own lengths), the gradients through the soft caps and the
/// sandwich norms against finite differences, and the validation of the new fields.
/// </summary>
public class GemmaOptionsTests
{
    // Gemma 2 in miniature: GQA, GeGLU, unit-offset RMSNorm, sandwich norms, both caps, a window of 3 on even layers.
    static ModelConfig Gemma(ModelFamily family = ModelFamily.DecoderOnly) => Presets.Get(family == ModelFamily.DecoderOnly ? "tiny-decoder" : "tiny-encdec") with
    {
        DecoderLayers = family == ModelFamily.DecoderOnly ? 3 : 2,
        Heads = 4,
        KvHeads = 2,
        HeadDim = 8,
        GatedFfn = true,
        Activation = Encore.Tensors.Kernels.ActivationKind.GeluTanh,
        NormUnitOffset = true,
        SandwichNorms = true,
        ScaleEmbeddings = true,
        AttentionSoftCap = 2f,
        FinalLogitSoftCap = 1.5f,
        SlidingWindow = 3,
        GlobalLayerEvery = 2,
        AttentionScale = 0.3f,
        EncoderPositions = family == ModelFamily.DecoderOnly ? new PositionConfig { Kind = PositionKind.None } : new PositionConfig { Kind = PositionKind.Rope },
        DecoderPositions = new PositionConfig { Kind = PositionKind.Rope },
    };

    [Theory]
    [InlineData(ModelFamily.DecoderOnly)]
    [InlineData(ModelFamily.EncoderDecoder)]
    public void ParameterCounterAgreesWithABuiltModel(ModelFamily family)
    {
        using var m = LanguageModel.Create(Gemma(family) with { EncoderEmbeddings = family == ModelFamily.EncoderDecoder });
        Assert.Equal(ParameterCounter.Count(m.Config), m.ParameterCount);
        Assert.Equal(family == ModelFamily.EncoderDecoder, m.Parameters.Contains(EncoderDecoderModel.EncoderEmbedTokens));
        Assert.True(m.Parameters.Contains("decoder.layers.0.self_attn_post_norm.weight") && m.Parameters.Contains("decoder.layers.1.mlp_post_norm.weight"));
        Assert.Equal(family == ModelFamily.EncoderDecoder, m.Parameters.Contains("decoder.layers.0.cross_attn_post_norm.weight"));
        // Unit-offset norms start at w = 0, i.e. a scale of 1.
        Assert.All(m.Parameters["decoder.final_norm.weight"].Value.ToFloatArray(), w => Assert.Equal(0f, w));
    }

    [Fact]
    public void LayersAlternateBetweenTheWindowAndGlobalAttention()
    {
        var c = Gemma() with { DecoderLayers = 4 };
        Assert.Equal([3, 0, 3, 0], Enumerable.Range(0, 4).Select(c.WindowOfLayer).ToArray());
        Assert.Equal([3, 3, 3, 3], Enumerable.Range(0, 4).Select((c with { GlobalLayerEvery = 0 }).WindowOfLayer).ToArray());
        Assert.Equal([0, 0, 0, 0], Enumerable.Range(0, 4).Select((c with { SlidingWindow = 0 }).WindowOfLayer).ToArray());
    }

    [Fact]
    public void IncrementalDecodingPastTheWindowEqualsTheFullForward()
    {
        var cfg = Gemma();
        using var m = new DecoderOnlyModel(cfg, seed: 5);
        Randomize(m, 9);
        var r = new Random(2);
        int b = 2, t = 10, v = cfg.VocabSize;
        var ids = Enumerable.Range(0, b * t).Select(_ => r.Next(v)).ToArray();
        float[] full = m.Forward(ids, b).Value.ToFloatArray();
        // The window matters: the same model without it gives other logits.
        using (var global = new DecoderOnlyModel(cfg with { SlidingWindow = 0 }, seed: 5))
        {
            Randomize(global, 9);
            var other = global.Forward(ids, b).Value.ToFloatArray();
            Assert.True(Enumerable.Range(0, full.Length).Max(i => Math.Abs(full[i] - other[i])) > 1e-3);
        }
        using var cache = m.CreateCache(b, 16);
        for (int i = 0; i < t; i++)
        {
            using var step = m.Forward([ids[i], ids[t + i]], b, cache: cache);
            var got = step.Value.ToFloatArray();
            for (int bi = 0; bi < b; bi++)
                for (int j = 0; j < v; j++)
                    Assert.True(Math.Abs(full[(bi * t + i) * v + j] - got[bi * v + j]) < 1e-4, $"row {bi}, position {i}, logit {j}");
        }
        // A batch cache whose rows sit at different lengths keeps each row's own window.
        using var batch = m.CreateBatchCache(2, 16);
        batch.ActiveRows = 1;
        for (int i = 0; i < 3; i++) m.DecodeStep([ids[i]], batch);
        batch.ActiveRows = 2;
        using (var solo = m.CreateCache(1, 16))
        {
            m.Forward(ids[t..(t + 1)], 1, cache: solo);
            batch.LoadRow(1, solo, 0);
        }
        for (int i = 3; i < t; i++)
        {
            int second = i - 2;
            var got = m.DecodeStep([ids[i], ids[t + second]], batch).Value.ToFloatArray();
            for (int j = 0; j < v; j++)
            {
                Assert.True(Math.Abs(full[i * v + j] - got[j]) < 1e-4, $"batch row 0, position {i}, logit {j}");
                Assert.True(Math.Abs(full[(t + second) * v + j] - got[v + j]) < 1e-4, $"batch row 1, position {second}, logit {j}");
            }
        }
    }

    [Fact]
    public void EncoderDecoderDecodingEqualsTheFullForward()
    {
        var cfg = Gemma(ModelFamily.EncoderDecoder);
        using var m = new EncoderDecoderModel(cfg, seed: 5);
        Randomize(m, 4);
        var r = new Random(3);
        int b = 2, s = 9, t = 7, v = cfg.VocabSize;
        var src = Enumerable.Range(0, b * s).Select(_ => r.Next(v)).ToArray();
        var tgt = Enumerable.Range(0, b * t).Select(_ => r.Next(v)).ToArray();
        int[] lengths = [9, 5];
        float[] full = m.Forward(src, lengths, tgt, b).Value.ToFloatArray();
        using var memory = m.Encode(src, b, lengths);
        using var cache = m.CreateCache(b, 8, s);
        for (int i = 0; i < t; i++)
        {
            var got = m.Decode(memory, lengths, [tgt[i], tgt[t + i]], b, cache).Value.ToFloatArray();
            for (int bi = 0; bi < b; bi++)
                for (int j = 0; j < v; j++)
                    Assert.True(Math.Abs(full[(bi * t + i) * v + j] - got[bi * v + j]) < 1e-4, $"row {bi}, position {i}, logit {j}");
        }
    }

    [Theory]
    [InlineData(ModelFamily.DecoderOnly)]
    [InlineData(ModelFamily.EncoderDecoder)]
    public void GradientsThroughTheCapsAndTheSandwichNormsMatchFiniteDifferences(ModelFamily family)
    {
        var cfg = Gemma(family) with { DModel = 16, FfnDim = 24, VocabSize = 20, EncoderLayers = 1, DecoderLayers = 2, AttentionSoftCap = 0.8f, FinalLogitSoftCap = 1.2f, SlidingWindow = 2 };
        using var m = LanguageModel.Create(cfg, seed: 7);
        Randomize(m, 3);
        int[] src = [3, 7, 1, 12, 4], tgt = [0, 5, 9, 11, 2], labels = [5, 9, 2, 3, 8];
        Var Loss() => Ops.CrossEntropy(m is EncoderDecoderModel ed ? ed.Forward(src, null, tgt, 1) : ((DecoderOnlyModel)m).Forward(tgt, 1), labels);

        foreach (var p in m.Parameters.All) p.ZeroGrad();
        using (var tape = Tape.Record()) tape.Backward(Loss());
        var checks = new List<(string Name, int[] Indices)>
        {
            ("decoder.layers.0.self_attn_post_norm.weight", [0, 7, 15]),
            ("decoder.layers.1.mlp_post_norm.weight", [1, 8]),
            ("decoder.layers.0.self_attn_norm.weight", [3, 12]),
            ("decoder.final_norm.weight", [0, 15]),
            ("decoder.layers.0.self_attn.q_proj.weight", [5, 77, 200]),   // through the score cap (sliding layer)
            ("decoder.layers.1.self_attn.k_proj.weight", [9, 100]),        // through the score cap (global layer)
            (LanguageModel.EmbedTokens, [7 * 16 + 2, 5 * 16 + 11]),        // through the final cap
        };
        if (family == ModelFamily.EncoderDecoder)
        {
            checks.Add(("decoder.layers.0.cross_attn_post_norm.weight", [2, 9]));
            checks.Add(("decoder.layers.1.cross_attn.q_proj.weight", [4, 150]));
            checks.Add(("encoder.layers.0.self_attn.q_proj.weight", [6, 90]));
        }
        FiniteDifferences.AssertGradients(m.Parameters, checks, Loss);
    }

    [Fact]
    public void TheNewFieldsAreValidatedNamingTheField()
    {
        var c = Gemma();
        Assert.Contains("attention_soft_cap", Assert.Throws<ArgumentException>(() => (c with { AttentionSoftCap = -1 }).Validate()).Message);
        Assert.Contains("final_logit_soft_cap", Assert.Throws<ArgumentException>(() => (c with { FinalLogitSoftCap = float.NaN }).Validate()).Message);
        Assert.Contains("sliding_window", Assert.Throws<ArgumentException>(() => (c with { SlidingWindow = -2 }).Validate()).Message);
        Assert.Contains("global_layer_every", Assert.Throws<ArgumentException>(() => (c with { GlobalLayerEvery = -1 }).Validate()).Message);
        Assert.Contains("sandwich_norms", Assert.Throws<ArgumentException>(() => (c with { PostNorm = true }).Validate()).Message);
        Assert.Contains("norm_unit_offset", Assert.Throws<ArgumentException>(() => (c with { Norm = NormKind.LayerNorm }).Validate()).Message);
        Assert.Contains("encoder_embeddings", Assert.Throws<ArgumentException>(() => (c with { EncoderEmbeddings = true }).Validate()).Message);
    }

    [Fact]
    public void TheNewFieldsRoundTripThroughConfigJsonAndStayOutOfItAtTheirDefaults()
    {
        var c = Gemma();
        Assert.Equal(c, ModelConfigJson.Deserialize(ModelConfigJson.Serialize(c)));
        var plain = ModelConfigJson.Serialize(Presets.Get("tiny-decoder"));
        foreach (var field in new[] { "norm_unit_offset", "sandwich_norms", "attention_soft_cap", "final_logit_soft_cap", "sliding_window", "global_layer_every" })
        {
            Assert.Contains(field, ModelConfigJson.Serialize(c));
            Assert.DoesNotContain(field, plain);
        }
    }

    // Non-zero norms, so the unit offset and every post norm take part (fresh ones are 0).
    static void Randomize(LanguageModel m, int seed)
    {
        var r = new Random(seed);
        foreach (var p in m.Parameters.All)
        {
            var w = p.Value.AsSpan<float>();
            if (p.Value.Rank == 1)
                for (int i = 0; i < w.Length; i++) w[i] += (float)(r.NextDouble() - 0.5) * 0.4f;
        }
    }
}
