using System.Text.Json;
using static Encore.Formats.Tokenization.TokenizerFiles;

namespace Encore.Formats.Tokenization;

/// <summary>A checkpoint's Jinja chat template and the special tokens it may print.</summary>
/// <param name="Template">The Jinja source.</param>
/// <param name="Path">The file it was read from.</param>
/// <param name="BosToken">tokenizer_config.json's bos_token, or null.</param>
/// <param name="EosToken">tokenizer_config.json's eos_token, or null.</param>
public sealed record ChatTemplateSource(string Template, string Path, string? BosToken, string? EosToken);

/// <summary>
/// Reads the chat template a Hugging Face checkpoint ships: <c>chat_template.jinja</c> when present
/// (the file newer transformers versions save), else tokenizer_config.json's <c>chat_template</c>, a
/// string or a list of named templates of which the one named "default" is used. bos_token and eos_token
/// (a string or an AddedToken object with "content") come from tokenizer_config.json, else
/// special_tokens_map.json. Every file is size-checked before it is read; every problem is a
/// <see cref="CheckpointFormatException"/> naming the file.
/// </summary>
public static class ChatTemplateFiles
{
    /// <summary>The template file transformers writes beside tokenizer_config.json.</summary>
    public const string ChatTemplateJinja = "chat_template.jinja";

    /// <summary>The chat template of checkpoint directory <paramref name="dir"/>, or null when it has none.</summary>
    public static ChatTemplateSource? Read(string dir)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: no such directory");
        var (bos, eos) = ReadSpecialTokens(dir);
        string jinja = System.IO.Path.Combine(dir, ChatTemplateJinja);
        if (File.Exists(jinja)) return new ChatTemplateSource(ReadText(jinja), jinja, bos, eos);
        string config = System.IO.Path.Combine(dir, TokenizerLoader.TokenizerConfigJson);
        if (!File.Exists(config)) return null;
        using var doc = ReadJson(config);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{config}: not a JSON object");
        if (Property(doc.RootElement, "chat_template") is not { } t) return null;
        return new ChatTemplateSource(TemplateString(config, t), config, bos, eos);
    }

    /// <summary>bos_token and eos_token of <paramref name="dir"/>'s tokenizer_config.json, else its special_tokens_map.json (null where neither names one).</summary>
    public static (string? Bos, string? Eos) ReadSpecialTokens(string dir)
    {
        string? bos = null, eos = null;
        foreach (var name in new[] { TokenizerLoader.TokenizerConfigJson, TokenizerLoader.SpecialTokensMapJson })
        {
            string path = System.IO.Path.Combine(dir, name);
            if (!File.Exists(path)) continue;
            using var doc = ReadJson(path);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: not a JSON object");
            bos ??= TokenString(Property(doc.RootElement, "bos_token"));
            eos ??= TokenString(Property(doc.RootElement, "eos_token"));
        }
        return (bos, eos);
    }

    /// <summary>The text of a template file (UTF-8, size-checked, a leading byte-order mark dropped).</summary>
    public static string ReadText(string path)
    {
        var bytes = ReadBytes(path);
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw new CheckpointFormatException($"{path}: not valid UTF-8 text");
        var text = System.Text.Encoding.UTF8.GetString(bytes);
        return text.Length > 0 && text[0] == '\uFEFF' ? text[1..] : text;
    }

    static string TemplateString(string path, JsonElement t)
    {
        if (t.ValueKind == JsonValueKind.String) return t.GetString()!;
        if (t.ValueKind != JsonValueKind.Array)
            throw new CheckpointFormatException($"{path}: chat_template must be a string or a list of {{\"name\", \"template\"}} objects, got {t.ValueKind}");
        var names = new List<string>();
        foreach (var entry in t.EnumerateArray())
        {
            if (entry.ValueKind != JsonValueKind.Object
                || Property(entry, "name") is not { ValueKind: JsonValueKind.String } name
                || Property(entry, "template") is not { ValueKind: JsonValueKind.String } template)
                throw new CheckpointFormatException($"{path}: each chat_template entry must be an object with string 'name' and 'template'");
            if (name.GetString() == "default") return template.GetString()!;
            names.Add(name.GetString()!);
        }
        throw new CheckpointFormatException($"{path}: chat_template lists templates named {string.Join(", ", names.Select(n => $"'{n}'"))} but none named 'default'");
    }
}
