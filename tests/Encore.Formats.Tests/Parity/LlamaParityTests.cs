using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Tensors;
using Xunit.Abstractions;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Formats.Tests.Parity;

/// <summary>
/// A tiny random Llama (GQA 4 heads over 2 kv heads, untied head, linear RoPE scaling ×2) written in
/// the published layout by tools/reference/llama_reference.py, which also computed its logits and 32
/// greedy ids by full recomputation in plain torch following modeling_llama.py.
/// </summary>
public class LlamaParityTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-llama-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ConfigMapsOntoADecoderOnlyModel()
    {
        var (c, arch) = Checkpoint.ReadConfig(ParityFixtures.Dir("llama"));
        Assert.IsType<LlamaArchitecture>(arch);
        Assert.Equal(ModelFamily.DecoderOnly, c.Family);
        Assert.Equal((64, 32, 2, 4, 2, 8, 48), (c.VocabSize, c.DModel, c.DecoderLayers, c.Heads, c.KvHeads, c.HeadDim, c.FfnDim));
        Assert.Equal((Encore.Tensors.Kernels.ActivationKind.Silu, true, NormKind.RmsNorm, 1e-5f), (c.Activation, c.GatedFfn, c.Norm, c.NormEps));
        Assert.Equal((false, false, false, false), (c.QkvBias, c.OutputBias, c.MlpBias, c.TieEmbeddings));
        Assert.Equal((PositionKind.Rope, 10000.0, 2.0), (c.DecoderPositions.Kind, c.DecoderPositions.RopeTheta, c.DecoderPositions.RopeLinearScale));
        // pad_token_id is null in the file: padding falls back to eos, as generate() does.
        Assert.Equal((1, 2, 2, 64), (c.BosTokenId, c.EosTokenId, c.PadTokenId, c.MaxPositions));
    }

    [Fact]
    public void LogitsMatchTheReference() => ParityFixtures.AssertDecoderLogits("llama", output);

    [Fact]
    public void CachedGreedyDecodingMatchesTheReference() => ParityFixtures.AssertGreedy("llama");

    [Fact]
    public void SavedLlamaLoadsBackIdenticallyUnderThePublishedNames() => ParityFixtures.AssertRoundTrip("llama", _dir);

    [Theory]
    [InlineData("hidden_size", null, "field 'hidden_size' is required")]
    [InlineData("hidden_size", "\"wide\"", "field 'hidden_size' must be an integer")]
    [InlineData("hidden_act", "\"gelu_foo\"", "field 'hidden_act' 'gelu_foo' is not a supported activation")]
    [InlineData("num_attention_heads", "5", "field 'num_attention_heads' 5 does not divide hidden_size 32, and there is no head_dim")]
    [InlineData("num_key_value_heads", "3", "field 'num_key_value_heads' 3 does not divide")]
    [InlineData("rope_scaling", """{"type": "yarn", "factor": 4.0}""", "field 'rope_scaling' type 'yarn' is not supported")]
    [InlineData("rope_scaling", """{"rope_type": "llama3", "factor": 8.0}""", "field 'rope_scaling' type 'llama3' is not supported")]
    [InlineData("rope_scaling", """{"type": "linear"}""", "field 'rope_scaling.factor' is required")]
    [InlineData("rope_scaling", """{"type": "linear", "factor": -2}""", "field 'rope_scaling.factor' must be positive")]
    [InlineData("eos_token_id", "64", "field 'eos_token_id' 64 is outside the vocabulary")]
    public void BadConfigsFailNamingTheFileAndField(string field, string? value, string expected)
    {
        var dir = ParityFixtures.WithConfig("llama", _dir, json => json[field] = value is null ? null : JsonNode.Parse(value), remove: value is null ? field : null);
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir));
        Assert.StartsWith(Path.Combine(dir, "config.json") + ":", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void HeadDimFromTheFileAllowsHeadsThatDoNotDivideTheWidth()
    {
        var dir = ParityFixtures.WithConfig("llama", _dir, json =>
        {
            json["num_attention_heads"] = 6;
            json["num_key_value_heads"] = 3;
            json["head_dim"] = 8;
            json["rope_scaling"] = JsonNode.Parse("""{"rope_type": "default"}""");
            json["hidden_act"] = "gelu_pytorch_tanh";
            json["eos_token_id"] = new JsonArray(5, 7);
            json["attention_bias"] = true;
            json["mlp_bias"] = true;
        });
        var (c, _) = Checkpoint.ReadConfig(dir);
        Assert.Equal((6, 3, 8, 1.0, 5), (c.Heads, c.KvHeads, c.HeadDim, c.DecoderPositions.RopeLinearScale, c.EosTokenId));
        Assert.Equal(Encore.Tensors.Kernels.ActivationKind.GeluTanh, c.Activation);
        // attention_bias covers all four projections in LlamaAttention; mlp_bias the three in LlamaMLP.
        Assert.Equal((true, true, true), (c.QkvBias, c.OutputBias, c.MlpBias));
        // 6 heads of 8 need a 48-wide q_proj: the file's 32-wide one is named, not silently misread.
        Assert.Contains("tensor 'model.layers.0.self_attn.q_proj.weight' is f32[32, 32], but the configuration needs f32[48, 32]",
            Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir)).Message);
    }

    [Fact]
    public void MissingHeadAndUnexpressibleModelsFailClearly()
    {
        var dir = Path.Combine(_dir, "nohead");
        ParityFixtures.CopyWithout("llama", dir, "lm_head.weight");
        Assert.Contains("no tensor for parameter 'lm_head.weight' (looked for lm_head.weight)",
            Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir)).Message);
        using var encdec = LanguageModel.Create(Presets.Get("tiny-encdec"));
        Assert.Contains("cannot be written as model_type 'llama'",
            Assert.Throws<ArgumentException>(() => Checkpoint.Save(encdec, Path.Combine(_dir, "x"), "llama")).Message);
    }
}

/// <summary>Fixture access and the checks shared by the parity tests.</summary>
static class ParityFixtures
{
    public static string Dir(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    public static JsonObject Expected(string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Dir(name), "expected.json")))!.AsObject();

    public static int[] Ints(JsonNode? n) =>
        n!.AsArray().SelectMany(x => x is JsonArray a ? a.Select(y => y!.GetValue<int>()) : [x!.GetValue<int>()]).ToArray();

    public static float[] Floats(JsonNode? n) => n!.AsArray().Select(x => (float)x!.GetValue<double>()).ToArray();

    public static float MaxAbsError(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        float max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        return max;
    }

    /// <summary>
    /// Next-token rows of a batch of <paramref name="rows"/> equal-length sequences <paramref name="ids"/>: each row's
    /// inputs are its tokens but the last, its labels its tokens but the first.
    /// </summary>
    public static (int[] Inputs, int[] Labels) Shifted(int[] ids, int rows)
    {
        int t = ids.Length / rows;
        var inputs = new int[rows * (t - 1)];
        var labels = new int[rows * (t - 1)];
        for (int b = 0; b < rows; b++)
            for (int i = 0; i < t - 1; i++)
            {
                inputs[b * (t - 1) + i] = ids[b * t + i];
                labels[b * (t - 1) + i] = ids[b * t + i + 1];
            }
        return (inputs, labels);
    }

    /// <summary>
    /// Eight AdamW steps (lr 3e-3) on <paramref name="loss"/> must lower it by more than 0.1 nats; then
    /// <paramref name="model"/> saved as <paramref name="modelType"/> must load back with the same configuration and weights.
    /// </summary>
    public static void AssertTrainsAndSavesBack(LanguageModel model, Func<Encore.Autograd.Var> loss, string modelType, string tmp, ITestOutputHelper output)
    {
        using var optimizer = new Encore.Autograd.Optim.AdamW(model.Parameters.All.ToList()) { LearningRate = 3e-3 };
        float first = 0, last = 0;
        for (int step = 0; step < 8; step++)
        {
            using var tape = Encore.Autograd.Tape.Record();
            var l = loss();
            last = l.Value.AsReadOnlySpan<float>()[0];
            if (step == 0) first = last;
            tape.Backward(l);
            optimizer.Update();
            optimizer.ZeroGrad();
        }
        output.WriteLine($"loss {first:F4} → {last:F4}");
        Assert.True(last < first - 0.1f, $"loss {first} → {last}");
        var dir = Path.Combine(tmp, "trained");
        Checkpoint.Save(model, dir, modelType);
        using var back = Checkpoint.Load(dir);
        Assert.Equal(model.Config, back.Config);
        foreach (var p in model.Parameters.All)
            Assert.Equal(p.Value.ToFloatArray(), back.Parameters[p.Name].Value.ToFloatArray());
    }

    static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    /// <summary>Logits of the fixture's batch of two against the reference, ≤ 1e-4 in F32.</summary>
    public static void AssertDecoderLogits(string name, ITestOutputHelper output)
    {
        var e = Expected(name);
        using var model = (DecoderOnlyModel)Checkpoint.Load(Dir(name));
        using var logits = model.Forward(Ints(e["input_ids"]), batch: 2);
        var expected = Floats(e["logits"]);
        float err = MaxAbsError(expected, logits.Value.ToFloatArray());
        output.WriteLine($"{name}: max abs logit error {err:E2} over {expected.Length} logits");
        Assert.InRange(err, 0, 1e-4f);
    }

    /// <summary>
    /// Greedy decoding through the incremental path — the prompt once, then one token per step over a
    /// DecoderCache — against the reference's full recomputation at every step.
    /// </summary>
    public static void AssertGreedy(string name)
    {
        var e = Expected(name);
        var prompt = Ints(e["prompt"]);
        var expected = Ints(e["greedy"]);
        using var model = (DecoderOnlyModel)Checkpoint.Load(Dir(name));
        using var cache = model.CreateCache(1, prompt.Length + expected.Length);
        int v = model.Config.VocabSize;
        var ids = new List<int>();
        int[] input = prompt;
        while (ids.Count < expected.Length)
        {
            using var logits = model.Forward(input, batch: 1, cache: cache);             // (1, t, V)
            var last = logits.Value.ToFloatArray().AsSpan()[^v..];
            ids.Add(ArgMax(last));
            input = [ids[^1]];
        }
        Assert.Equal(prompt.Length + expected.Length - 1, cache.Length);
        Assert.Equal(expected, ids);
    }

    /// <summary>Saving as the fixture's model_type writes its names and config; loading that back is identical.</summary>
    public static void AssertRoundTrip(string name, string tmp)
    {
        var dir = Path.Combine(tmp, "saved-" + name);
        using var model = Checkpoint.Load(Dir(name));
        string type = Checkpoint.ReadConfig(Dir(name)).Architecture.ModelType;
        Checkpoint.Save(model, dir, type);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        Assert.Equal(type, json["model_type"]!.GetValue<string>());
        using (var saved = SafetensorsCheckpoint.Open(dir))
        using (var original = SafetensorsCheckpoint.Open(Dir(name)))
            Assert.Equal(original.Names.Order(), saved.Names.Order());
        using var back = Checkpoint.Load(dir);
        Assert.Equal(model.Config, back.Config);
        Assert.Equal(model.Parameters.All.Select(p => p.Name), back.Parameters.All.Select(p => p.Name));
        foreach (var p in model.Parameters.All)
            Assert.Equal(p.Value.ToFloatArray(), back.Parameters[p.Name].Value.ToFloatArray());
    }

    /// <summary>A copy of the fixture whose config.json is edited by <paramref name="edit"/>.</summary>
    public static string WithConfig(string name, string tmp, Action<JsonObject> edit, string? remove = null)
    {
        var dir = Path.Combine(tmp, $"{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(Dir(name), "model.safetensors"), Path.Combine(dir, "model.safetensors"));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir(name), "config.json")))!.AsObject();
        edit(json);
        if (remove != null) json.Remove(remove);
        File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString());
        return dir;
    }

    /// <summary>A copy of the fixture with tensors renamed by <paramref name="rename"/> (null drops one) and <paramref name="extra"/> added.</summary>
    public static void CopyRenamed(string name, string dir, Func<string, string?> rename, IEnumerable<(string Name, string From)>? extra = null)
    {
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(Dir(name), "config.json"), Path.Combine(dir, "config.json"));
        var tensors = new List<KeyValuePair<string, Tensor>>();
        try
        {
            using (var src = SafetensorsCheckpoint.Open(Dir(name)))
            {
                void Add(string to, string from)
                {
                    using var mapped = src.Read(from);
                    tensors.Add(new(to, mapped.Clone()));
                }
                foreach (var n in src.Names)
                    if (rename(n) is string to) Add(to, n);
                foreach (var (to, from) in extra ?? []) Add(to, from);
            }
            SafetensorsCheckpoint.Write(dir, tensors);
        }
        finally
        {
            foreach (var t in tensors) t.Value.Dispose();
        }
    }

    /// <summary>A copy of the fixture without tensor <paramref name="drop"/>.</summary>
    public static void CopyWithout(string name, string dir, string drop) => CopyRenamed(name, dir, n => n == drop ? null : n);
}
