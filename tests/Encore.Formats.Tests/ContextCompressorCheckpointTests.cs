using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Models;

namespace Encore.Formats.Tests;

public class ContextCompressorCheckpointTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-arc-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static DecoderOnlyModel Decoder() => new(Presets.Get("tiny-decoder") with { DecoderPositions = new PositionConfig { Kind = PositionKind.Rope } }, seed: 5);

    [Fact]
    public void ASavedCompressorLoadsBackIdentically()
    {
        using var decoder = Decoder();
        using var c = ContextCompressor.FromDecoder(decoder, decoder, pooling: 3, dropLayers: 1, projectorHidden: 40, seed: 2);
        // Make every tensor differ from its initial value, so a tensor that is not read back shows.
        foreach (var p in c.Parameters.All)
        {
            var w = p.Value.AsSpan<float>();
            for (int i = 0; i < w.Length; i++) w[i] += 0.01f * MathF.Sin(i + p.Name.Length);
        }
        var dir = Path.Combine(_dir, "c");
        ContextCompressorCheckpoint.Save(c, dir, "/models/decoder");
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
        Assert.True(ContextCompressorCheckpoint.IsCompressorDirectory(dir));
        var (back, recorded) = ContextCompressorCheckpoint.Load(dir);
        using (back)
        {
            Assert.Equal("/models/decoder", recorded);
            Assert.Equal(c.Config.Encoder, back.Config.Encoder);
            Assert.Equal((3, 40, 32, 2), (back.Config.Pooling, back.Config.ProjectorHidden, back.Config.DecoderDModel, back.Encoder.Layers));
            foreach (var p in c.Parameters.All)
                Assert.Equal(p.Value.ToFloatArray(), back.Parameters[p.Name].Value.ToFloatArray());
            int[] ids = [5, 9, 12, 7, 30, 41, 8];
            using var a = c.Compress(ids, 1);
            using var b = back.Compress(ids, 1);
            Assert.Equal(a.Value.ToFloatArray(), b.Value.ToFloatArray());
        }
    }

    [Fact]
    public void BrokenCompressorDirectoriesFailNamingTheFileAndField()
    {
        using var decoder = Decoder();
        using var c = ContextCompressor.FromDecoder(decoder, decoder, pooling: 4);
        var dir = Path.Combine(_dir, "broken");
        ContextCompressorCheckpoint.Save(c, dir, null);
        var config = Path.Combine(dir, "config.json");
        var good = File.ReadAllText(config);

        void Expect(Func<JsonObject, JsonObject> edit, string fragment)
        {
            File.WriteAllText(config, edit(JsonNode.Parse(good)!.AsObject()).ToJsonString());
            var e = Assert.Throws<CheckpointFormatException>(() => ContextCompressorCheckpoint.Load(dir));
            Assert.Contains(config, e.Message);
            Assert.Contains(fragment, e.Message);
        }
        Expect(j => { j["pooling"] = 0; return j; }, "pooling");
        Expect(j => { j["pooling"] = "four"; return j; }, "'pooling' must be an integer");
        Expect(j => { j["extra"] = 1; return j; }, "unknown key 'extra'");
        Expect(j => { j["model_type"] = "encore"; return j; }, "model_type");
        Expect(j => { j.Remove("encoder"); return j; }, "'encoder'");
        File.WriteAllText(config, JsonNode.Parse(good)!.AsObject().Also(j => j["decoder_d_model"] = 48).ToJsonString());
        var shape = Assert.Throws<CheckpointFormatException>(() => ContextCompressorCheckpoint.Load(dir)).Message;
        Assert.Contains(dir, shape);
        Assert.Contains("projector.1.weight", shape);

        File.WriteAllText(config, "{ not json");
        Assert.Contains("not valid JSON", Assert.Throws<CheckpointFormatException>(() => ContextCompressorCheckpoint.Load(dir)).Message);
        Assert.False(ContextCompressorCheckpoint.IsCompressorDirectory(dir));
    }
}

static class JsonObjectEdits
{
    public static JsonObject Also(this JsonObject j, Action<JsonObject> edit)
    {
        edit(j);
        return j;
    }
}
