using System.Text.Json.Nodes;
using Encore.Autograd;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Xunit.Abstractions;

namespace Encore.Formats.Tests.Parity;

/// <summary>
/// A tiny random Gemma 2 (4 layers, the even ones sliding over 8 positions, GQA 4 heads over 2 kv heads of
/// 16, scores scaled by 24^−½, soft caps 5 and 3, sandwich norms, tied head) written in the published
/// layout by tools/reference/gemma2_reference.py, which also computed its logits over 24 tokens and 32
/// greedy ids by full recomputation in plain torch following modeling_gemma2.py.
/// </summary>
public class Gemma2ParityTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-gemma2-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ConfigMapsOntoADecoderOnlyModel()
    {
        var (c, arch) = Checkpoint.ReadConfig(ParityFixtures.Dir("gemma2"));
        Assert.IsType<Gemma2Architecture>(arch);
        Assert.Equal(ModelFamily.DecoderOnly, c.Family);
        Assert.Equal((96, 64, 4, 4, 2, 16, 96), (c.VocabSize, c.DModel, c.DecoderLayers, c.Heads, c.KvHeads, c.HeadDim, c.FfnDim));
        Assert.Equal((Encore.Tensors.Kernels.ActivationKind.GeluTanh, true, true, true, true), (c.Activation, c.GatedFfn, c.NormUnitOffset, c.SandwichNorms, c.ScaleEmbeddings));
        Assert.Equal((5f, 3f, 8, 2, true), (c.AttentionSoftCap, c.FinalLogitSoftCap, c.SlidingWindow, c.GlobalLayerEvery, c.TieEmbeddings));
        Assert.Equal(1 / MathF.Sqrt(24), c.AttentionScale!.Value, 1e-7f);
        Assert.Equal((2, 1, 0, 128), (c.BosTokenId, c.EosTokenId, c.PadTokenId, c.MaxPositions));
        Assert.Equal([8, 0, 8, 0], Enumerable.Range(0, 4).Select(c.WindowOfLayer).ToArray());
    }

    [Fact]
    public void LogitsMatchTheReference() => ParityFixtures.AssertDecoderLogits("gemma2", output);

    [Fact]
    public void CachedGreedyDecodingPastTheWindowMatchesTheReference() => ParityFixtures.AssertGreedy("gemma2");

    [Fact]
    public void SavedGemma2LoadsBackIdenticallyUnderThePublishedNames() => ParityFixtures.AssertRoundTrip("gemma2", _dir);

    [Fact]
    public void TrainingStepsLowerTheLossAndTheResultSavesAndReloads()
    {
        using var model = (DecoderOnlyModel)Checkpoint.Load(ParityFixtures.Dir("gemma2"));
        var (inputs, labels) = ParityFixtures.Shifted(ParityFixtures.Ints(ParityFixtures.Expected("gemma2")["input_ids"]), 2);
        ParityFixtures.AssertTrainsAndSavesBack(model, () => Ops.CrossEntropy(model.Forward(inputs, 2), labels), "gemma2", _dir, output);
    }

    [Theory]
    [InlineData("hidden_size", null, "field 'hidden_size' is required")]
    [InlineData("num_key_value_heads", "3", "field 'num_key_value_heads' 3 does not divide")]
    [InlineData("head_dim", "15", "field 'head_dim' RoPE needs an even head dimension")]
    [InlineData("attn_logit_softcapping", "-5", "field 'attn_logit_softcapping' must be positive")]
    [InlineData("final_logit_softcapping", "\"big\"", "field 'final_logit_softcapping'")]
    [InlineData("sliding_window", "0", "field 'sliding_window' must be positive")]
    [InlineData("layer_types", """["sliding_attention", "full_attention", "full_attention", "sliding_attention"]""", "field 'layer_types' must repeat 1 sliding layer(s) then one full layer; layer 2 breaks the pattern")]
    [InlineData("layer_types", """["sliding_attention", "full_attention"]""", "field 'layer_types' has 2 entries for 4 layers")]
    [InlineData("layer_types", """["sliding_attention", "local", "sliding_attention", "full_attention"]""", "field 'layer_types' entry 1 'local' is neither")]
    [InlineData("rope_scaling", """{"type": "linear", "factor": 2.0}""", "field 'rope_scaling' is not supported")]
    [InlineData("use_bidirectional_attention", "true", "field 'use_bidirectional_attention' true is not supported")]
    [InlineData("hidden_activation", "\"gelu_foo\"", "field 'hidden_activation' 'gelu_foo' is not a supported activation")]
    public void BadConfigsFailNamingTheFileAndField(string field, string? value, string expected)
    {
        var dir = ParityFixtures.WithConfig("gemma2", _dir, json => json[field] = value is null ? null : JsonNode.Parse(value), remove: value is null ? field : null);
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir));
        Assert.StartsWith(Path.Combine(dir, "config.json") + ":", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void LayerTypesNullCapsAndNewerRopeParametersRead()
    {
        var dir = ParityFixtures.WithConfig("gemma2", _dir, json =>
        {
            json["layer_types"] = JsonNode.Parse("""["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"]""");
            json["attn_logit_softcapping"] = null;
            json["rope_parameters"] = JsonNode.Parse("""{"rope_type": "default", "rope_theta": 500.0}""");
        });
        var (c, _) = Checkpoint.ReadConfig(dir);
        Assert.Equal((4, 0f, 3f, 500.0), (c.GlobalLayerEvery, c.AttentionSoftCap, c.FinalLogitSoftCap, c.DecoderPositions.RopeTheta));
        var all = ParityFixtures.WithConfig("gemma2", _dir, json => json["sliding_window"] = null);
        Assert.Equal((0, 0), (Checkpoint.ReadConfig(all).Config.SlidingWindow, Checkpoint.ReadConfig(all).Config.GlobalLayerEvery));
    }

    [Fact]
    public void UnexpressibleModelsFailClearly()
    {
        using var llama = LanguageModel.Create(Presets.Get("tiny-decoder"));
        Assert.Contains("cannot be written as model_type 'gemma2'",
            Assert.Throws<ArgumentException>(() => Checkpoint.Save(llama, Path.Combine(_dir, "x"), "gemma2")).Message);
    }
}

/// <summary>
/// T5Gemma's recipe on the Gemma 2 fixture (Encore's adaptation, <c>encore adapt --from</c>): the encoder–decoder
/// carries Gemma 2's options, its blocks are the source's, and a second Gemma 2 that differs in a Gemma option
/// cannot be its decoder.
/// </summary>
public class Gemma2AdaptationTests
{
    [Fact]
    public void AnAdaptedGemma2KeepsItsOptionsAndBlocks()
    {
        using var source = (DecoderOnlyModel)Checkpoint.Load(ParityFixtures.Dir("gemma2"));
        var (model, report) = ModelAdaptation.Adapt(source);
        using (model)
        {
            var c = model.Config;
            Assert.Equal(ModelFamily.EncoderDecoder, c.Family);
            Assert.Equal((true, true, true, 5f, 3f, 8, 2), (c.NormUnitOffset, c.SandwichNorms, c.ScaleEmbeddings, c.AttentionSoftCap, c.FinalLogitSoftCap, c.SlidingWindow, c.GlobalLayerEvery));
            Assert.Empty(report.Fresh);
            // Sandwich norms of the cross-attention start from the self-attention's.
            Assert.Equal(source.Parameters["decoder.layers.1.self_attn_post_norm.weight"].Value.ToFloatArray(), model.Parameters["decoder.layers.1.cross_attn_post_norm.weight"].Value.ToFloatArray());
            Assert.Equal(source.Parameters["decoder.layers.3.mlp_post_norm.weight"].Value.ToFloatArray(), model.Parameters["encoder.layers.3.mlp_post_norm.weight"].Value.ToFloatArray());
            using var logits = model.Forward([5, 17, 3, 88, 41, 9, 60, 22, 71, 14], null, [2, 40, 41], 1);
            Assert.All(logits.Value.ToFloatArray(), x => Assert.True(float.IsFinite(x) && Math.Abs(x) < 3));   // soft-capped by 3
        }
        var other = source.Config with { AttentionSoftCap = 7 };
        Assert.Contains("attention_soft_cap (5 vs 7)", Assert.Throws<ArgumentException>(() => ModelAdaptation.AdaptedConfig(source.Config, other)).Message);
    }
}
