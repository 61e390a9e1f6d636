using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Tensors.Kernels;
using Xunit.Abstractions;

namespace Encore.Formats.Tests.Parity;

/// <summary>
/// Checks an encoder–decoder checkpoint fixture against the reference that wrote it: teacher-forced
/// logits, and a greedy loop on the incremental path (encode once, then one token per
/// <see cref="EncoderDecoderModel.Decode(Encore.Autograd.Var, int[], int[], int, DecoderCache, ulong)"/> with a <see cref="DecoderCache"/>) whose step logits and ids
/// must equal the reference's full recomputation.
/// </summary>
internal static class Seq2SeqParity
{
    public const float Tolerance = 1e-4f;

    public static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    /// <summary>Loads <paramref name="dir"/> with <see cref="Checkpoint.Load"/> and returns the max abs logit error (teacher-forced, greedy steps).</summary>
    public static (float Logits, float Greedy) Check(string dir)
    {
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")))!;
        int[] source = expected["input_ids"]!.Deserialize<int[]>()!;
        int[] target = expected["decoder_input_ids"]!.Deserialize<int[]>()!;
        int[] greedyIds = expected["greedy_ids"]!.Deserialize<int[]>()!;
        float[] wantLogits, wantSteps;
        using (var file = SafetensorsFile.Open(Path.Combine(dir, "expected.safetensors")))
        using (var l = file.Read("logits"))
        using (var g = file.Read("greedy_logits"))
        {
            wantLogits = l.ToFloatArray();
            wantSteps = g.ToFloatArray();
        }

        using var loaded = Checkpoint.Load(dir);
        var model = Assert.IsType<EncoderDecoderModel>(loaded);
        int v = model.Config.VocabSize;

        using var memory = model.Encode(source, 1);                                     // (1, S, D)
        float logitsError;
        using (var logits = model.Decode(memory, null, target, 1))                      // (1, T, V)
        {
            Assert.Equal([1, target.Length, v], logits.Shape.ToArray());
            logitsError = MaxAbsError(wantLogits, logits.Value.ToFloatArray(), "teacher-forced logits");
        }

        int steps = greedyIds.Length;
        using var cache = model.CreateCache(1, steps, source.Length);
        var ids = new List<int>();
        int next = model.Config.DecoderStartTokenId;
        float greedyError = 0;
        for (int step = 0; step < steps; step++)
        {
            using var logits = model.Decode(memory, null, [next], 1, cache);            // (1, 1, V)
            var row = logits.Value.ToFloatArray();
            greedyError = Math.Max(greedyError, MaxAbsError(wantSteps.AsSpan(step * v, v), row, $"greedy step {step}"));
            next = ArgMax(row);
            ids.Add(next);
        }
        Assert.Equal(greedyIds, ids);
        Assert.Equal(steps, cache.Length);
        return (logitsError, greedyError);
    }

    static float MaxAbsError(ReadOnlySpan<float> want, float[] got, string what)
    {
        Assert.Equal(want.Length, got.Length);
        float max = 0;
        int at = 0;
        for (int i = 0; i < got.Length; i++)
        {
            float e = Math.Abs(want[i] - got[i]);
            if (!(e <= max)) (max, at) = (e, i);
        }
        Assert.True(max <= Tolerance, $"{what}: max abs error {max} at {at} (want {want[at]}, got {got[at]})");
        return max;
    }

    static int ArgMax(float[] row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }
}

/// <summary>
/// Hugging Face T5 checkpoints (v1.0 and v1.1 / Flan-T5) against tools/reference/t5_reference.py,
/// the config.json mapping, saving in T5's layout, and the errors of damaged files.
/// </summary>
public class T5ParityTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-t5-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("t5_v1_0")]
    [InlineData("t5_v1_1")]
    public void LogitsAndGreedyIdsMatchTheReference(string fixture)
    {
        var (logits, greedy) = Seq2SeqParity.Check(Seq2SeqParity.Fixture(fixture));
        output.WriteLine($"{fixture}: max abs error {logits:E2} (teacher-forced logits), {greedy:E2} (32 greedy steps)");
    }

    [Fact]
    public void V10ConfigMapsToReluTiedRescaledUnscaledRelativeAttention()
    {
        var (c, arch) = Checkpoint.ReadConfig(Seq2SeqParity.Fixture("t5_v1_0"));
        Assert.IsType<T5Architecture>(arch);
        Assert.Equal(ModelFamily.EncoderDecoder, c.Family);
        Assert.Equal((64, 16, 6, 32, 2, 2, 2, 2), (c.VocabSize, c.DModel, c.HeadDim, c.FfnDim, c.Heads, c.KvHeads, c.EncoderLayers, c.DecoderLayers));
        Assert.Equal(12, c.AttentionDim);
        Assert.Equal((ActivationKind.Relu, false), (c.Activation, c.GatedFfn));
        Assert.True(c.TieEmbeddings && c.ScaleTiedLogits);
        Assert.Equal(1f, c.AttentionScale);
        Assert.Equal(NormKind.RmsNorm, c.Norm);
        Assert.Equal(1e-6f, c.NormEps);
        Assert.Equal(0.1f, c.Dropout);
        // relative_attention_max_distance is absent from this config: HF's default 128.
        var relative = new PositionConfig { Kind = PositionKind.T5Relative, RelativeBuckets = 16, RelativeMaxDistance = 128 };
        Assert.Equal(relative, c.EncoderPositions);
        Assert.Equal(relative, c.DecoderPositions);
        Assert.Equal((0, 1, 0), (c.PadTokenId, c.EosTokenId, c.DecoderStartTokenId));
    }

    [Fact]
    public void V11ConfigMapsToGatedGeluNewAndASeparateHead()
    {
        var (c, _) = Checkpoint.ReadConfig(Seq2SeqParity.Fixture("t5_v1_1"));
        Assert.Equal((ActivationKind.GeluTanh, true), (c.Activation, c.GatedFfn));
        Assert.False(c.TieEmbeddings || c.ScaleTiedLogits);
        Assert.Equal((2, 3), (c.EncoderLayers, c.DecoderLayers));
        Assert.Equal((8, 20), (c.EncoderPositions.RelativeBuckets, c.EncoderPositions.RelativeMaxDistance));
        using var model = Checkpoint.Load(Seq2SeqParity.Fixture("t5_v1_1"));
        Assert.True(model.Parameters.Contains(LanguageModel.LmHead));
        Assert.True(model.Parameters.Contains("decoder.layers.2.mlp.gate_proj.weight"));
    }

    [Theory]
    [InlineData("relu", ActivationKind.Relu, false)]
    [InlineData("gelu", ActivationKind.GeluErf, false)]
    [InlineData("gelu_new", ActivationKind.GeluTanh, false)]
    [InlineData("gated-gelu", ActivationKind.GeluTanh, true)]
    [InlineData("gated-gelu_new", ActivationKind.GeluTanh, true)]
    [InlineData("gated-gelu_pytorch_tanh", ActivationKind.GeluTanh, true)]
    [InlineData("gated-silu", ActivationKind.Silu, true)]
    [InlineData("gated-swish", ActivationKind.Silu, true)]
    [InlineData("gated-relu", ActivationKind.Relu, true)]
    [InlineData("silu", ActivationKind.Silu, false)]
    public void FeedForwardProjMapsAsHuggingFaceDoes(string proj, ActivationKind activation, bool gated)
    {
        var json = Config("t5_v1_0");
        json["feed_forward_proj"] = proj;
        var c = new T5Architecture().ReadConfig(json, "config.json");
        Assert.Equal((activation, gated), (c.Activation, c.GatedFfn));
    }

    [Theory]
    [InlineData("gated-gelu", "\"gelu_new\"", "true", ActivationKind.GeluTanh, true)]   // as Flan-T5's config.json states it
    [InlineData("gated-gelu", "\"gelu\"", null, ActivationKind.GeluErf, true)]
    [InlineData("relu", null, "true", ActivationKind.Relu, true)]
    [InlineData("gated-silu", "\"relu\"", "false", ActivationKind.Relu, false)]
    public void StoredDenseActFnAndIsGatedActDecideAsInTransformers(string proj, string? denseActFn, string? isGatedAct, ActivationKind activation, bool gated)
    {
        var json = Config("t5_v1_0");
        json["feed_forward_proj"] = proj;
        if (denseActFn != null) json["dense_act_fn"] = JsonNode.Parse(denseActFn);
        if (isGatedAct != null) json["is_gated_act"] = JsonNode.Parse(isGatedAct);
        var c = new T5Architecture().ReadConfig(json, "config.json");
        Assert.Equal((activation, gated), (c.Activation, c.GatedFfn));
    }

    [Theory]
    [InlineData("t5_v1_0")]
    [InlineData("t5_v1_1")]
    public void SavedT5DirectoriesLoadBackIdentically(string fixture)
    {
        using var model = Checkpoint.Load(Seq2SeqParity.Fixture(fixture));
        var dir = Path.Combine(_dir, fixture);
        Checkpoint.Save(model, dir, "t5");

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        Assert.Equal("t5", (string?)json["model_type"]);
        Assert.Equal(1e-6, (double)json["layer_norm_epsilon"]!);
        Assert.Equal(model.Config.GatedFfn ? "gated-gelu" : "relu", (string?)json["feed_forward_proj"]);
        Assert.Equal(model.Config.GatedFfn, (bool)json["is_gated_act"]!);
        using (var file = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors")))
        {
            var names = file.Names.ToHashSet();
            string[] published =
            [
                "shared.weight",
                "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                "encoder.block.1.layer.0.SelfAttention.q.weight", "encoder.block.1.layer.0.layer_norm.weight",
                "encoder.block.1.layer.1.layer_norm.weight", "encoder.final_layer_norm.weight",
                "decoder.block.1.layer.1.EncDecAttention.o.weight", "decoder.block.1.layer.1.layer_norm.weight",
                "decoder.block.1.layer.2.DenseReluDense.wo.weight", "decoder.final_layer_norm.weight",
            ];
            foreach (var n in published) Assert.Contains(n, names);
            if (model.Config.GatedFfn)
            {
                Assert.Contains("encoder.block.0.layer.1.DenseReluDense.wi_0.weight", names);
                Assert.Contains("decoder.block.0.layer.2.DenseReluDense.wi_1.weight", names);
                Assert.Contains("lm_head.weight", names);
            }
            else
            {
                Assert.Contains("encoder.block.0.layer.1.DenseReluDense.wi.weight", names);
                Assert.DoesNotContain("lm_head.weight", names);
            }
            // Exactly the parameters, under the same names as the fixture HF-style file.
            using var original = SafetensorsFile.Open(Path.Combine(Seq2SeqParity.Fixture(fixture), "model.safetensors"));
            Assert.Equal(original.Names.Order(), file.Names.Order());
        }

        using var back = Checkpoint.Load(dir);
        Assert.Equal(model.Config, back.Config);
        foreach (var p in model.Parameters.All)
            Assert.Equal(p.Value.ToFloatArray(), back.Parameters[p.Name].Value.ToFloatArray());
    }

    [Fact]
    public void PerStackEmbeddingCopiesAreAcceptedInsteadOfShared()
    {
        // Rewrite the v1.0 fixture with encoder.embed_tokens.weight in place of shared.weight.
        var src = Seq2SeqParity.Fixture("t5_v1_0");
        var dir = Path.Combine(_dir, "embed");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(src, "config.json"), Path.Combine(dir, "config.json"));
        float[] shared;
        using (var file = SafetensorsFile.Open(Path.Combine(src, "model.safetensors")))
        {
            var tensors = file.Names.Select(n => new KeyValuePair<string, Encore.Tensors.Tensor>(n == "shared.weight" ? "encoder.embed_tokens.weight" : n, file.Read(n))).ToList();
            shared = tensors.First(t => t.Key == "encoder.embed_tokens.weight").Value.ToFloatArray();
            SafetensorsFile.Write(Path.Combine(dir, "model.safetensors"), tensors);
            foreach (var t in tensors) t.Value.Dispose();
        }
        using var model = Checkpoint.Load(dir);
        Assert.Equal(shared, model.Parameters[LanguageModel.EmbedTokens].Value.ToFloatArray());
    }

    [Theory]
    [InlineData("d_model", null, "'d_model' is missing")]
    [InlineData("num_heads", null, "'num_heads' is missing")]
    [InlineData("d_kv", "\"64\"", "'d_kv' must be an integer")]
    [InlineData("d_ff", "0", "'d_ff' 0 is outside")]
    [InlineData("feed_forward_proj", "\"gated-mish\"", "'feed_forward_proj' activation 'mish' of 'gated-mish' is not supported")]
    [InlineData("feed_forward_proj", "\"swiglu\"", "'feed_forward_proj' activation 'swiglu'")]
    [InlineData("feed_forward_proj", "\"gelu-gated\"", "'feed_forward_proj' 'gelu-gated' is not of the form")]
    [InlineData("dense_act_fn", "\"mish\"", "'dense_act_fn' activation 'mish' is not supported")]
    [InlineData("is_gated_act", "\"yes\"", "'is_gated_act' must be true or false")]
    [InlineData("layer_norm_epsilon", "-1", "'layer_norm_epsilon' must be in (0, 1]")]
    [InlineData("tie_word_embeddings", "1", "'tie_word_embeddings' must be true or false")]
    [InlineData("eos_token_id", "64", "'eos_token_id' 64 is outside [0, 63]")]
    [InlineData("relative_attention_num_buckets", "1", "'relative_attention_num_buckets' must be at least 2")]
    public void BadConfigFieldsFailNamingFileAndField(string field, string? value, string message)
    {
        var dir = CopyFixture("t5_v1_0", field);
        var path = Path.Combine(dir, "config.json");
        var json = Config("t5_v1_0");
        if (value is null) json.Remove(field);
        else json[field] = JsonNode.Parse(value);
        File.WriteAllText(path, json.ToJsonString());
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir));
        Assert.Contains(path, e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void ATensorOfTheWrongShapeFailsNamingTheDirectoryAndTensor()
    {
        // d_ff 32 → 40 in config.json: the stored wi (32, 16) no longer fits.
        var dir = CopyFixture("t5_v1_0", "shape");
        var json = Config("t5_v1_0");
        json["d_ff"] = 40;
        File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString());
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir));
        Assert.Contains(dir, e.Message);
        Assert.Contains("'encoder.block.0.layer.1.DenseReluDense.wi.weight' is f32[32, 16]", e.Message);
        Assert.Contains("needs f32[40, 16]", e.Message);
    }

    [Fact]
    public void AMissingTensorFailsNamingThePublishedNames()
    {
        // A v1.1 config over v1.0 weights: the gated FFN's wi_0 is not there.
        var dir = CopyFixture("t5_v1_0", "missing");
        var json = Config("t5_v1_0");
        json["feed_forward_proj"] = "gated-gelu";
        File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString());
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir));
        Assert.Contains("encoder.block.0.layer.1.DenseReluDense.wi_0.weight", e.Message);
    }

    [Fact]
    public void ModelsT5CannotExpressAreNotSavedAsT5()
    {
        using var mu = LanguageModel.Create(Presets.Get("tiny-encdec"));
        var dir = Path.Combine(_dir, "mu-as-t5");
        var e = Assert.Throws<ArgumentException>(() => Checkpoint.Save(mu, dir, "t5"));
        Assert.Contains("cannot be written as model_type t5", e.Message);
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));
    }

    static JsonObject Config(string fixture) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Seq2SeqParity.Fixture(fixture), "config.json")))!.AsObject();

    string CopyFixture(string fixture, string name)
    {
        var dir = Path.Combine(_dir, name);
        Directory.CreateDirectory(dir);
        foreach (var f in new[] { "config.json", "model.safetensors" })
            File.Copy(Path.Combine(Seq2SeqParity.Fixture(fixture), f), Path.Combine(dir, f));
        return dir;
    }
}
