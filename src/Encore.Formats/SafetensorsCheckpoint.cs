using System.Text.Json;
using Encore.Tensors;

namespace Encore.Formats;

/// <summary>
/// The weights of a checkpoint directory: one <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c> ({"metadata": {...}, "weight_map": {name: file}}), as
/// Hugging Face writes them.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    /// <summary>The single-file name.</summary>
    public const string SingleFile = "model.safetensors";

    /// <summary>The shard index name.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    readonly Dictionary<string, SafetensorsFile> _byName;
    readonly List<SafetensorsFile> _files;

    SafetensorsCheckpoint(Dictionary<string, SafetensorsFile> byName, List<SafetensorsFile> files)
    {
        _byName = byName;
        _files = files;
    }

    /// <summary>Every tensor name.</summary>
    public IEnumerable<string> Names => _byName.Keys;

    /// <summary>True when the checkpoint holds <paramref name="name"/>.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The header record of <paramref name="name"/>.</summary>
    public SafetensorsFile.Entry Entry(string name) => File(name)[name];

    /// <summary>Reads tensor <paramref name="name"/> (zero-copy where the dtype allows); dispose it.</summary>
    public Tensor Read(string name) => File(name).Read(name);

    SafetensorsFile File(string name) => _byName.TryGetValue(name, out var f) ? f
        : throw new KeyNotFoundException($"the checkpoint has no tensor named '{name}'");

    /// <summary>Opens the weights in <paramref name="dir"/> (or a single .safetensors file path).</summary>
    public static SafetensorsCheckpoint Open(string dir)
    {
        if (System.IO.File.Exists(dir) && dir.EndsWith(".safetensors", StringComparison.Ordinal))
            return FromFiles([SafetensorsFile.Open(dir)]);
        var single = Path.Combine(dir, SingleFile);
        var index = Path.Combine(dir, IndexFile);
        if (System.IO.File.Exists(index)) return OpenSharded(dir, index);
        if (System.IO.File.Exists(single)) return FromFiles([SafetensorsFile.Open(single)]);
        throw new FileNotFoundException($"{dir}: no {SingleFile} or {IndexFile}");
    }

    static SafetensorsCheckpoint OpenSharded(string dir, string index)
    {
        var info = new FileInfo(index);
        if (info.Length > 64 << 20) throw new CheckpointFormatException($"{index}: {info.Length} bytes is too large for a shard index");
        Dictionary<string, string> map;
        try
        {
            var bytes = System.IO.File.ReadAllBytes(index);
            if (bytes.Length > 64 << 20) throw new CheckpointFormatException($"{index}: grew past 64 MiB while being read");
            JsonText.Check(bytes, index);
            using var doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 16, AllowDuplicateProperties = false });
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{index}: not a JSON object");
            if (!doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException($"{index}: no 'weight_map' object");
            map = new(StringComparer.Ordinal);
            foreach (var p in wm.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String) throw new CheckpointFormatException($"{index}: weight_map['{p.Name}'] is not a file name");
                var file = p.Value.GetString()!;
                if (file.Length == 0 || file.Contains('/') || file.Contains('\\') || file is "." or ".." || file.Any(char.IsControl))
                    throw new CheckpointFormatException($"{index}: shard '{file}' must be a file name in the checkpoint directory");
                map[p.Name] = file;
            }
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{index}: not valid JSON ({e.Message})", e);
        }
        var files = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var shard in map.Values.Distinct())
                files[shard] = SafetensorsFile.Open(Path.Combine(dir, shard));
            var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (var (name, shard) in map)
            {
                if (!files[shard].Contains(name)) throw new CheckpointFormatException($"{index}: '{name}' is mapped to {shard}, which does not hold it");
                byName[name] = files[shard];
            }
            return new SafetensorsCheckpoint(byName, files.Values.ToList());
        }
        catch
        {
            foreach (var f in files.Values) f.Dispose();
            throw;
        }
    }

    static SafetensorsCheckpoint FromFiles(List<SafetensorsFile> files)
    {
        var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        foreach (var f in files)
            foreach (var n in f.Names) byName[n] = f;
        return new SafetensorsCheckpoint(byName, files);
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> into <paramref name="dir"/> as one file, or as shards of at
    /// most <paramref name="maxShardBytes"/> with an index, each file written atomically (the index last).
    /// </summary>
    public static void Write(string dir, IReadOnlyList<KeyValuePair<string, Tensor>> tensors, long maxShardBytes = long.MaxValue)
    {
        Directory.CreateDirectory(dir);
        var shards = new List<List<KeyValuePair<string, Tensor>>> { new() };
        long size = 0;
        foreach (var kv in tensors)
        {
            if (size > 0 && size + kv.Value.ByteLength > maxShardBytes)
            {
                shards.Add([]);
                size = 0;
            }
            shards[^1].Add(kv);
            size += kv.Value.ByteLength;
        }
        if (shards.Count == 1)
        {
            SafetensorsFile.Write(Path.Combine(dir, SingleFile), shards[0]);
            return;
        }
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
        {
            var name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafetensorsFile.Write(Path.Combine(dir, name), shards[i]);
            foreach (var kv in shards[i]) map[kv.Key] = name;
        }
        long total = tensors.Sum(t => t.Value.ByteLength);
        var json = JsonSerializer.Serialize(new { metadata = new { total_size = total }, weight_map = map }, new JsonSerializerOptions { WriteIndented = true });
        AtomicFile.WriteAllText(Path.Combine(dir, IndexFile), json);
    }

    /// <summary>Unmaps every shard (tensors already read stay valid until disposed).</summary>
    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
