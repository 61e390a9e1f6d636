using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Formats.Tests;

public class CheckpointTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-ck-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("tiny-encdec")]
    [InlineData("tiny-decoder")]
    [InlineData("tiny-encoder")]
    public void SavedEncoreCheckpointsLoadBackIdentically(string preset)
    {
        using var model = LanguageModel.Create(Presets.Get(preset), seed: 9);
        var dir = Path.Combine(_dir, preset);
        Checkpoint.Save(model, dir);
        using var back = Checkpoint.Load(dir);
        Assert.Equal(model.Config, back.Config);
        foreach (var p in model.Parameters.All)
            Assert.Equal(p.Value.ToFloatArray(), back.Parameters[p.Name].Value.ToFloatArray());
        // Mapped loading keeps the file's dtype, read-only, for inference.
        Checkpoint.Save(model, dir + "-bf16", dtype: DType.BF16);
        using var mapped = Checkpoint.Load(dir + "-bf16", new CheckpointLoadOptions { MapWeights = true });
        var w = mapped.Parameters[LanguageModel.EmbedTokens];
        Assert.Equal(DType.BF16, w.Value.DType);
        Assert.False(w.Trainable);
    }

    [Fact]
    public void MissingOrMismatchedTensorsAndUnknownTypesFailClearly()
    {
        var dir = Path.Combine(_dir, "m");
        using (var model = LanguageModel.Create(Presets.Get("tiny-decoder")))
            Checkpoint.Save(model, dir);
        var config = File.ReadAllText(Path.Combine(dir, "config.json"));
        File.WriteAllText(Path.Combine(dir, "config.json"), config.Replace("\"d_model\": 32", "\"d_model\": 16"));
        Assert.Contains("needs f32[64, 16]", Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir)).Message);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.Replace("\"encore\"", "\"gpt-j\""));
        Assert.Contains("model_type 'gpt-j' is not supported", Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir)).Message);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{");
        Assert.Contains("not valid JSON", Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir)).Message);
        Assert.Throws<FileNotFoundException>(() => Checkpoint.Load(Path.Combine(_dir, "nowhere")));
    }
}
