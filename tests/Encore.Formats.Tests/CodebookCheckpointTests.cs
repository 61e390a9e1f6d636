using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Formats.Tests;

/// <summary>Models with codebooks (<see cref="ModelConfig.Codebook"/>) through a checkpoint directory: config, codebooks and logits back as saved.</summary>
public sealed class CodebookCheckpointTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-ck-codebook-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("tiny-decoder")]
    [InlineData("tiny-encdec")]
    public void CodebooksRoundTripAndStayF32WhenMatricesGoCompact(string preset)
    {
        var cfg = Presets.Get(preset) with { Codebook = new CodebookConfig { Size = 16, TopK = 3, Mlp = preset == "tiny-decoder", Commitment = 0.5f } };
        using var model = LanguageModel.Create(cfg, seed: 9);
        var dir = Path.Combine(_dir, preset);
        Checkpoint.Save(model, dir);
        Assert.Contains("\"codebook\"", File.ReadAllText(Path.Combine(dir, "config.json")), StringComparison.Ordinal);
        using var back = Checkpoint.Load(dir);
        Assert.Equal(cfg, back.Config);
        var names = model.Parameters.All.Select(p => p.Name).Where(n => n.Contains(".codebook.", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(names);
        foreach (var p in model.Parameters.All)
            Assert.Equal(p.Value.ToFloatArray(), back.Parameters[p.Name].Value.ToFloatArray());
        int[] ids = [5, 9, 2, 7];
        float[] Logits(LanguageModel m) => m is EncoderDecoderModel ed ? ed.Forward(ids, null, [0, 5, 9], 1).Value.ToFloatArray() : ((DecoderOnlyModel)m).Forward(ids, 1).Value.ToFloatArray();
        Assert.Equal(Logits(model), Logits(back));

        Checkpoint.Save(model, dir + "-bf16", dtype: DType.BF16);
        using var mapped = Checkpoint.Load(dir + "-bf16", new CheckpointLoadOptions { MapWeights = true });
        Assert.Equal(DType.BF16, mapped.Parameters[LanguageModel.EmbedTokens].Value.DType);
        foreach (var n in names)
        {
            Assert.Equal(DType.F32, mapped.Parameters[n].Value.DType);
            // Written as bf16 with the rest and widened back: equal to 8 bits of mantissa.
            var a = model.Parameters[n].Value.ToFloatArray();
            var b = mapped.Parameters[n].Value.ToFloatArray();
            for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-2f * Math.Abs(a[i]), $"{n}[{i}]: {a[i]} saved, {b[i]} read");
        }
    }
}
