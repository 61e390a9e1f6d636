using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Testing;
using Encore.Tensors;

namespace Encore.Formats.Tests;

/// <summary>
/// LoRA adapters in PEFT's layout: the save → load round trip, PEFT's tensor names and config fields for
/// the T5 and Llama fixtures, and adapters refused because their base does not fit.
/// </summary>
public class PeftAdapterTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-peft-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    string SaveAdapter(LanguageModel model, LoraOptions options, string name, string modelType = "encore", int seed = 1)
    {
        using var adapter = LoraAdapter.Create(model, options, (ulong)seed);
        LoraTesting.Randomize(adapter, seed);
        var dir = Path.Combine(_dir, name);
        PeftAdapter.Save(adapter, model, dir, modelType, "some/base");
        return dir;
    }

    [Fact]
    public void SavedAdaptersLoadBackIdentically()
    {
        using var model = LanguageModel.Create(Presets.Get("tiny-encdec"), seed: 2);
        using var adapter = LoraAdapter.Create(model, new LoraOptions { Rank = 3, Alpha = 7.5f, Dropout = 0.1f, Targets = LoraTargets.Q | LoraTargets.O | LoraTargets.Ffn }, seed: 3);
        LoraTesting.Randomize(adapter, 4);
        var dir = Path.Combine(_dir, "round-trip");
        PeftAdapter.Save(adapter, model, dir, "encore", "runs/base");
        using var back = PeftAdapter.Load(dir, model, "encore");
        // The targets read back are those of the layers found (a plain FFN has no gate for Ffn's Gate).
        Assert.Equal(adapter.Options with { Targets = LoraTargets.Q | LoraTargets.O | LoraTargets.Up | LoraTargets.Down }, back.Options);
        Assert.Equal(adapter.Modules.Select(m => m.Scope), back.Modules.Select(m => m.Scope));
        foreach (var p in adapter.Parameters.All)
            Assert.Equal(p.Value.ToFloatArray(), back.Parameters[p.Name].Value.ToFloatArray());
        Assert.Equal("round-trip", back.Name);

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, PeftAdapter.ConfigFile)))!.AsObject();
        Assert.Equal("LORA", (string?)config["peft_type"]);
        Assert.Equal(3, (int)config["r"]!);
        Assert.Equal(7.5, (double)config["lora_alpha"]!, 6);
        Assert.Equal("runs/base", (string?)config["base_model_name_or_path"]);
        Assert.Equal("SEQ_2_SEQ_LM", (string?)config["task_type"]);
        Assert.Equal(adapter.Modules.Select(m => m.Leaf).Distinct().Order(), config["target_modules"]!.AsArray().Select(n => (string)n!).Order());
        Assert.Contains("o_proj", adapter.Modules.Select(m => m.Leaf));
        using var file = SafetensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFile));
        Assert.Contains("base_model.model.decoder.layers.0.cross_attn.q_proj.lora_A.weight", file.Names);
        Assert.Equal([model.Config.FfnDim, 3], file["base_model.model.encoder.layers.0.mlp.up_proj.lora_B.weight"].Shape);
    }

    [Fact]
    public void T5AndLlamaAdaptersCarryPeftsModuleNames()
    {
        using var t5 = Checkpoint.Load(Fixture("t5_v1_1"));
        var t5Dir = SaveAdapter(t5, new LoraOptions { Rank = 2, Targets = LoraTargets.Q | LoraTargets.V | LoraTargets.Ffn }, "t5", "t5");
        using (var file = SafetensorsFile.Open(Path.Combine(t5Dir, PeftAdapter.WeightsFile)))
        {
            Assert.Contains("base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight", file.Names);
            Assert.Contains("base_model.model.decoder.block.0.layer.1.EncDecAttention.v.lora_B.weight", file.Names);
            Assert.Contains("base_model.model.decoder.block.0.layer.2.DenseReluDense.wi_0.lora_A.weight", file.Names);
        }
        var t5Targets = JsonNode.Parse(File.ReadAllText(Path.Combine(t5Dir, PeftAdapter.ConfigFile)))!["target_modules"]!.AsArray().Select(n => (string)n!).Order().ToArray();
        Assert.Equal(["q", "v", "wi_0", "wi_1", "wo"], t5Targets);
        using (var back = PeftAdapter.Load(t5Dir, t5, "t5")) Assert.Equal(LoraTargets.Q | LoraTargets.V | LoraTargets.Ffn, back.Options.Targets);

        using var llama = Checkpoint.Load(Fixture("llama"));
        var llamaDir = SaveAdapter(llama, new LoraOptions { Rank = 2, Targets = LoraTargets.K | LoraTargets.Down }, "llama", "llama");
        using (var file = SafetensorsFile.Open(Path.Combine(llamaDir, PeftAdapter.WeightsFile)))
            Assert.Contains("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight", file.Names);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(llamaDir, PeftAdapter.ConfigFile)))!;
        Assert.Equal("CAUSAL_LM", (string?)config["task_type"]);
        Assert.Equal(["down_proj", "k_proj"], config["target_modules"]!.AsArray().Select(n => (string)n!).Order().ToArray());
    }

    [Fact]
    public void AnAdapterForADeeperBaseIsRefusedNamingTheLayer()
    {
        var cfg = Presets.Get("tiny-encdec");
        using var deep = LanguageModel.Create(cfg with { EncoderLayers = cfg.EncoderLayers + 1 }, seed: 1);
        var dir = SaveAdapter(deep, new LoraOptions(), "deep");
        using var shallow = LanguageModel.Create(cfg, seed: 1);
        var e = Assert.Throws<CheckpointFormatException>(() => PeftAdapter.Load(dir, shallow, "encore"));
        Assert.Contains($"encoder.layers.{cfg.EncoderLayers}.self_attn.q_proj", e.Message);
        Assert.Contains("not a linear layer of the base", e.Message);
    }

    [Fact]
    public void AnAdapterForAShallowerBaseIsRefused()
    {
        var cfg = Presets.Get("tiny-encdec");
        using var shallow = LanguageModel.Create(cfg with { DecoderLayers = 1 }, seed: 1);
        var dir = SaveAdapter(shallow, new LoraOptions(), "shallow");
        using var deep = LanguageModel.Create(cfg with { DecoderLayers = 2 }, seed: 1);
        var e = Assert.Throws<CheckpointFormatException>(() => PeftAdapter.Load(dir, deep, "encore"));
        Assert.Contains("decoder.layers.1.", e.Message);
        Assert.Contains("another base", e.Message);
    }

    [Fact]
    public void AnAdapterForAnotherWidthIsRefusedNamingTheShapes()
    {
        var cfg = Presets.Get("tiny-encdec");
        using var wide = LanguageModel.Create(cfg with { FfnDim = cfg.FfnDim * 2 }, seed: 1);
        var dir = SaveAdapter(wide, new LoraOptions { Targets = LoraTargets.Ffn }, "wide");
        using var narrow = LanguageModel.Create(cfg, seed: 1);
        var e = Assert.Throws<CheckpointFormatException>(() => PeftAdapter.Load(dir, narrow, "encore"));
        Assert.Contains("mlp.", e.Message);
        Assert.Contains($"{cfg.FfnDim * 2}", e.Message);
    }

    [Fact]
    public void ARankThatDisagreesWithTheTensorsIsRefused()
    {
        using var model = LanguageModel.Create(Presets.Get("tiny-encdec"), seed: 1);
        var dir = SaveAdapter(model, new LoraOptions { Rank = 4 }, "rank");
        Rewrite(dir, c => c["r"] = 8);
        var e = Assert.Throws<CheckpointFormatException>(() => PeftAdapter.Load(dir, model, "encore"));
        Assert.Contains("r = 8", e.Message);
        Assert.Contains("(4,", e.Message);
    }

    [Theory]
    [InlineData("peft_type", "\"IA3\"", "not LoRA")]
    [InlineData("use_dora", "true", "DoRA")]
    [InlineData("fan_in_fan_out", "true", "fan_in_fan_out")]
    [InlineData("bias", "\"all\"", "bias")]
    [InlineData("rank_pattern", "{\"q_proj\": 16}", "rank_pattern")]
    [InlineData("modules_to_save", "[\"lm_head\"]", "modules_to_save")]
    [InlineData("target_modules", "[\"k_proj\"]", "not among target_modules")]
    [InlineData("target_modules", "[\"q_proj\", \"v_proj\", \"o_proj\"]", "no matrices")]
    [InlineData("r", "0", "r = 0")]
    [InlineData("lora_alpha", "\"big\"", "lora_alpha")]
    public void UnsupportedOrInconsistentConfigsAreRefused(string field, string value, string message)
    {
        using var model = LanguageModel.Create(Presets.Get("tiny-encdec"), seed: 1);
        var dir = SaveAdapter(model, new LoraOptions(), "config-" + field + value.Length);
        Rewrite(dir, c => c[field] = JsonNode.Parse(value));
        var e = Assert.Throws<CheckpointFormatException>(() => PeftAdapter.Load(dir, model, "encore"));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void AMissingHalfOrAForeignTensorIsRefused()
    {
        using var model = LanguageModel.Create(Presets.Get("tiny-encdec"), seed: 1);
        var dir = SaveAdapter(model, new LoraOptions(), "halves");
        var path = Path.Combine(dir, PeftAdapter.WeightsFile);
        Dictionary<string, Tensor> tensors;
        using (var f = SafetensorsFile.Open(path)) tensors = f.Names.ToDictionary(n => n, n => { using var t = f.Read(n); return t.Clone(); });
        var dropped = tensors.Keys.First(n => n.EndsWith(".lora_B.weight", StringComparison.Ordinal));
        SafetensorsFile.Write(path, tensors.Where(kv => kv.Key != dropped));
        var e = Assert.Throws<CheckpointFormatException>(() => PeftAdapter.Load(dir, model, "encore"));
        Assert.Contains("no lora_B", e.Message);

        using var extra = Tensor.Zeros(DType.F32, 4);
        SafetensorsFile.Write(path, tensors.Append(new("base_model.model.decoder.layers.0.self_attn.q_proj.lora_magnitude_vector", extra)));
        e = Assert.Throws<CheckpointFormatException>(() => PeftAdapter.Load(dir, model, "encore"));
        Assert.Contains("lora_magnitude_vector", e.Message);
        foreach (var t in tensors.Values) t.Dispose();
    }

    static void Rewrite(string dir, Action<JsonObject> change)
    {
        var path = Path.Combine(dir, PeftAdapter.ConfigFile);
        var c = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        change(c);
        File.WriteAllText(path, c.ToJsonString());
    }
}
