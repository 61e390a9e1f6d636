using System.Text.Json;

namespace Encore.Formats.Tokenization;

/// <summary>Bounded reading of tokenizer files: sizes are checked before anything is allocated, and every failure names the file.</summary>
internal static class TokenizerFiles
{
    /// <summary>Largest tokenizer file read (the largest published tokenizer.json files are ~20 MB).</summary>
    public const long MaxFileBytes = 256L << 20;

    /// <summary>Largest vocabulary accepted (published models stay under 300,000).</summary>
    public const int MaxVocabSize = 1 << 22;

    public static byte[] ReadBytes(string path)
    {
        FileInfo info;
        try
        {
            info = new FileInfo(path);
            if (!info.Exists) throw new FileNotFoundException($"{path}: no such file", path);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or PathTooLongException or NotSupportedException)
        {
            throw new CheckpointFormatException($"{path}: cannot be read ({e.Message})", e);
        }
        if (info.Length > MaxFileBytes)
            throw new CheckpointFormatException($"{path}: {info.Length} bytes exceeds the {MaxFileBytes >> 20} MB limit for tokenizer files");
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length > MaxFileBytes)
            throw new CheckpointFormatException($"{path}: grew past the {MaxFileBytes >> 20} MB limit while being read");
        return bytes;
    }

    public static JsonDocument ReadJson(string path)
    {
        var bytes = ReadBytes(path);
        // Checked up front: JsonDocument defers string validation to GetString, which would throw later.
        JsonText.Check(bytes, path);
        try
        {
            return JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 64, CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    /// <summary>The lines of a UTF-8 text file (trailing "\r" removed), refusing more than <paramref name="maxLines"/>.</summary>
    public static string[] ReadLines(string path, int maxLines)
    {
        var bytes = ReadBytes(path);
        int lines = 0;
        foreach (byte b in bytes) if (b == (byte)'\n') lines++;
        if (lines > maxLines)
            throw new CheckpointFormatException($"{path}: {lines} lines exceeds the {maxLines}-entry limit");
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new CheckpointFormatException($"{path}: not valid UTF-8 text");
        var text = System.Text.Encoding.UTF8.GetString(bytes);
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        var result = text.Split('\n');
        for (int i = 0; i < result.Length; i++)
            if (result[i].EndsWith('\r')) result[i] = result[i][..^1];
        // A final newline ends the last line; it does not start an empty one.
        return result.Length > 0 && result[^1].Length == 0 ? result[..^1] : result;
    }

    public static JsonElement? Property(JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    /// <summary>A token given as a string or as a serialized AddedToken {"content": ...}.</summary>
    public static string? TokenString(JsonElement? e) => e switch
    {
        { ValueKind: JsonValueKind.String } s => s.GetString(),
        { ValueKind: JsonValueKind.Object } o when o.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
        _ => null,
    };

    public static bool? Bool(JsonElement? e) => e switch
    {
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        _ => null,
    };

    /// <summary>An id given as an integer, or the first of a list (Llama 3 lists several EOS ids).</summary>
    public static int? Id(string path, string name, JsonElement? e)
    {
        if (e is not { } v) return null;
        if (v.ValueKind == JsonValueKind.Array)
        {
            if (v.GetArrayLength() == 0) return null;
            v = v[0];
        }
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int id) || id < 0 || id >= MaxVocabSize)
            throw new CheckpointFormatException($"{path}: '{name}' is {v}, not a token id");
        return id;
    }

    public static int CheckedId(string path, string what, JsonElement v)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int id) || id < 0 || id >= MaxVocabSize)
            throw new CheckpointFormatException($"{path}: {what} has id {v}, which is not in [0, {MaxVocabSize})");
        return id;
    }

    public static string RequireString(string path, string what, JsonElement v) =>
        v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new CheckpointFormatException($"{path}: {what} is {v.ValueKind}, not a string");
}
