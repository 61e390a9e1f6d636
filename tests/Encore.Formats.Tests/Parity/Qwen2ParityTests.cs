using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Xunit.Abstractions;

namespace Encore.Formats.Tests.Parity;

/// <summary>
/// A tiny random Qwen2 (multi-query: 4 heads over 1 kv head, q/k/v biases, tied head, θ = 1e6)
/// written in the published layout by tools/reference/llama_reference.py, with logits and 32 greedy
/// ids from plain torch following modeling_qwen2.py.
/// </summary>
public class Qwen2ParityTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-qwen2-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ConfigMapsOntoADecoderOnlyModelWithQkvBiases()
    {
        var (c, arch) = Checkpoint.ReadConfig(ParityFixtures.Dir("qwen2"));
        Assert.IsType<Qwen2Architecture>(arch);
        Assert.Equal(ModelFamily.DecoderOnly, c.Family);
        Assert.Equal((4, 1, 8), (c.Heads, c.KvHeads, c.HeadDim));
        Assert.Equal((true, false, false, true), (c.QkvBias, c.OutputBias, c.MlpBias, c.TieEmbeddings));
        Assert.Equal((1e6, 1.0, 1e-6f), (c.DecoderPositions.RopeTheta, c.DecoderPositions.RopeLinearScale, c.NormEps));
        Assert.Equal((60, 61, 61), (c.BosTokenId, c.EosTokenId, c.PadTokenId));
        using var model = LanguageModel.Create(c);
        Assert.False(model.Parameters.Contains(LanguageModel.LmHead));
        Assert.True(model.Parameters.Contains("decoder.layers.1.self_attn.k_proj.bias"));
        Assert.False(model.Parameters.Contains("decoder.layers.1.self_attn.o_proj.bias"));
    }

    [Fact]
    public void LogitsMatchTheReference() => ParityFixtures.AssertDecoderLogits("qwen2", output);

    [Fact]
    public void CachedGreedyDecodingMatchesTheReference() => ParityFixtures.AssertGreedy("qwen2");

    [Fact]
    public void SavedQwen2LoadsBackIdenticallyUnderThePublishedNames()
    {
        ParityFixtures.AssertRoundTrip("qwen2", _dir);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "saved-qwen2", "config.json")))!.AsObject();
        Assert.Equal("Qwen2ForCausalLM", json["architectures"]![0]!.GetValue<string>());
        Assert.False(json["use_sliding_window"]!.GetValue<bool>());
        Assert.True(json["tie_word_embeddings"]!.GetValue<bool>());
    }

    [Theory]
    [InlineData("use_sliding_window", "true", "field 'use_sliding_window' true is not supported")]
    [InlineData("rope_scaling", """{"type": "dynamic", "factor": 2.0}""", "field 'rope_scaling' type 'dynamic' is not supported")]
    [InlineData("rope_scaling", "4", "field 'rope_scaling' must be null or an object")]
    [InlineData("tie_word_embeddings", "\"yes\"", "field 'tie_word_embeddings' must be true or false")]
    [InlineData("intermediate_size", "0", "field 'intermediate_size' must be positive")]
    public void BadConfigsFailNamingTheFileAndField(string field, string value, string expected)
    {
        var dir = ParityFixtures.WithConfig("qwen2", _dir, json => json[field] = JsonNode.Parse(value));
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir));
        Assert.StartsWith(Path.Combine(dir, "config.json") + ":", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AMissingBiasIsNamed()
    {
        var dir = Path.Combine(_dir, "nobias");
        ParityFixtures.CopyWithout("qwen2", dir, "model.layers.1.self_attn.v_proj.bias");
        Assert.Contains("'decoder.layers.1.self_attn.v_proj.bias' (looked for model.layers.1.self_attn.v_proj.bias)",
            Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir)).Message);
    }
}
