using Encore.Formats.Checkpoints;
using Encore.Models;

namespace Encore.Formats.Tests;

public class PositionCheckpointTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-pos-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(PositionKind.ComRope, "tiny-encdec")]
    [InlineData(PositionKind.ComRope, "tiny-decoder")]
    [InlineData(PositionKind.Urpe, "tiny-encdec")]
    [InlineData(PositionKind.Urpe, "tiny-encoder")]
    public void TrainedPositionParametersSaveAndLoadBack(PositionKind kind, string preset)
    {
        var pos = new PositionConfig { Kind = kind, ComRopeBlock = 4, UrpeMaxDistance = 5 };
        using var model = LanguageModel.Create(Presets.Get(preset) with { EncoderPositions = pos, DecoderPositions = pos }, seed: 2);
        var positional = model.Parameters.All.Where(p => p.Name.Contains(".comrope.") || p.Name.Contains(".urpe.")).ToArray();
        Assert.NotEmpty(positional);
        var r = new Random(1);
        foreach (var p in positional)
        {
            var s = p.Value.AsSpan<float>();
            for (int i = 0; i < s.Length; i++) s[i] += (float)(r.NextDouble() - 0.5);
        }
        var dir = Path.Combine(_dir, kind + preset);
        Checkpoint.Save(model, dir);
        using var back = Checkpoint.Load(dir);
        Assert.Equal(model.Config, back.Config);
        foreach (var p in model.Parameters.All)
            Assert.Equal(p.Value.ToFloatArray(), back.Parameters[p.Name].Value.ToFloatArray());
        Assert.All(positional, p => Assert.False(back.Parameters[p.Name].Decay));
        // A checkpoint without the position parameters (saved with the kind they extend) is refused, naming the parameter.
        var basePos = new PositionConfig { Kind = kind == PositionKind.Urpe ? PositionKind.T5Relative : PositionKind.Rope };
        using var plain = LanguageModel.Create(Presets.Get(preset) with { EncoderPositions = basePos, DecoderPositions = basePos }, seed: 2);
        var plainDir = Path.Combine(_dir, "plain" + kind + preset);
        Checkpoint.Save(plain, plainDir);
        var config = Path.Combine(plainDir, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace($"\"{basePos.Kind}\"", $"\"{kind}\""));
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(plainDir));
        Assert.Contains(kind == PositionKind.Urpe ? ".urpe." : ".comrope.", e.Message);
    }
}
