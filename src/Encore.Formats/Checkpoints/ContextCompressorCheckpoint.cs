using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Models;
using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// A <see cref="ContextCompressor"/> directory: <c>config.json</c> (<c>"model_type": "encore-context-compressor"</c>,
/// the pooling factor, projector and decoder widths, the decoder it was trained for, and the encoder stack's own
/// Encore configuration under <c>"encoder"</c>) and <c>model.safetensors</c>, each written atomically.
/// </summary>
public static class ContextCompressorCheckpoint
{
    /// <summary>The model_type of a compressor's config.json.</summary>
    public const string ModelType = "encore-context-compressor";

    const long MaxConfigBytes = 1 << 20;
    static readonly HashSet<string> s_keys = ["model_type", "pooling", "projector_hidden", "decoder_d_model", "decoder", "encoder"];

    /// <summary>
    /// Writes <paramref name="compressor"/> to <paramref name="dir"/>; <paramref name="decoder"/> (the frozen decoder's
    /// directory, or null) is recorded so evaluation finds it.
    /// </summary>
    public static void Save(ContextCompressor compressor, string dir, string? decoder)
    {
        ArgumentNullException.ThrowIfNull(compressor);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        try
        {
            foreach (var p in compressor.Parameters.All) tensors.Add(new(p.Name, p.Value.To(DType.F32)));
            Directory.CreateDirectory(dir);
            SafetensorsCheckpoint.Write(dir, tensors);
            var c = compressor.Config;
            var json = new JsonObject
            {
                ["model_type"] = ModelType,
                ["pooling"] = c.Pooling,
                ["projector_hidden"] = c.ProjectorHidden,
                ["decoder_d_model"] = c.DecoderDModel,
                ["decoder"] = decoder,
                ["encoder"] = JsonNode.Parse(ModelConfigJson.Serialize(c.Encoder)),
            };
            AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        finally
        {
            foreach (var t in tensors) t.Value.Dispose();
        }
    }

    /// <summary>True when <paramref name="dir"/> holds a compressor's config.json.</summary>
    public static bool IsCompressorDirectory(string dir)
    {
        try
        {
            return ReadJson(dir)["model_type"]?.GetValue<string>() == ModelType;
        }
        catch (Exception e) when (e is IOException or CheckpointFormatException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Reads the configuration in <paramref name="dir"/> and the decoder directory it records (null when none).</summary>
    public static (ContextCompressorConfig Config, string? Decoder) ReadConfig(string dir)
    {
        var json = ReadJson(dir);
        var path = Path.Combine(dir, "config.json");
        string? type = json["model_type"] is JsonValue tv && tv.TryGetValue(out string? ts) ? ts : null;
        if (type != ModelType) throw new CheckpointFormatException($"{path}: model_type is '{type}', expected '{ModelType}' (is this a context compressor?)");
        foreach (var (k, _) in json)
            if (!s_keys.Contains(k)) throw new CheckpointFormatException($"{path}: unknown key '{k}'");
        int Int(string key, bool required)
        {
            var node = json[key];
            if (node is null)
                return required ? throw new CheckpointFormatException($"{path}: no '{key}'") : 0;
            if (node is not JsonValue v || !v.TryGetValue(out int value)) throw new CheckpointFormatException($"{path}: '{key}' must be an integer");
            return value;
        }
        string? decoder = null;
        if (json["decoder"] is { } dn)
        {
            if (dn is not JsonValue dv || !dv.TryGetValue(out decoder)) throw new CheckpointFormatException($"{path}: 'decoder' must be a string");
        }
        if (json["encoder"] is not JsonObject enc) throw new CheckpointFormatException($"{path}: no 'encoder' object");
        try
        {
            var encoder = ModelConfigJson.Deserialize(enc.ToJsonString(), path + " (encoder)");
            var config = new ContextCompressorConfig
            {
                Encoder = encoder,
                Pooling = Int("pooling", true),
                ProjectorHidden = Int("projector_hidden", false),
                DecoderDModel = Int("decoder_d_model", true),
            }.Validate();
            return (config, decoder);
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw new CheckpointFormatException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Loads the compressor in <paramref name="dir"/> (F32, trainable) and the decoder directory it records. A
    /// <paramref name="pooling"/> above 0 replaces the recorded factor: no weight depends on it, and ARC-Encoder
    /// fine-tunes at PF 4 an encoder pretrained at PF 8.
    /// </summary>
    public static (ContextCompressor Compressor, string? Decoder) Load(string dir, int pooling = 0)
    {
        var (config, decoder) = ReadConfig(dir);
        if (pooling > 0) config = (config with { Pooling = pooling }).Validate();
        using var weights = SafetensorsCheckpoint.Open(dir);
        var compressor = new ContextCompressor(config);
        try
        {
            foreach (var p in compressor.Parameters.All)
            {
                if (!weights.Contains(p.Name)) throw new CheckpointFormatException($"{dir}: the checkpoint has no tensor '{p.Name}'");
                using var t = weights.Read(p.Name);
                if (!t.Shape.SequenceEqual(p.Value.Shape))
                    throw new CheckpointFormatException($"{dir}: tensor '{p.Name}' is {t.Describe()}, but the configuration needs {p.Value.Describe()}");
                using var f32 = t.To(DType.F32);
                f32.AsReadOnlySpan<float>().CopyTo(p.Value.AsSpan<float>());
            }
            return (compressor, decoder);
        }
        catch
        {
            compressor.Dispose();
            throw;
        }
    }

    static JsonObject ReadJson(string dir)
    {
        var path = Path.Combine(dir, "config.json");
        if (!File.Exists(path)) throw new CheckpointFormatException($"{dir}: no config.json (is this a context compressor directory?)");
        var size = new FileInfo(path).Length;
        if (size > MaxConfigBytes) throw new CheckpointFormatException($"{path}: {size} bytes is too large for a config.json");
        try
        {
            var bytes = File.ReadAllBytes(path);
            JsonText.Check(bytes, path, maxDepth: 32);
            return JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = 32, AllowDuplicateProperties = false }) as JsonObject
                ?? throw new CheckpointFormatException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{path}: not valid JSON ({e.Message})", e);
        }
    }
}
