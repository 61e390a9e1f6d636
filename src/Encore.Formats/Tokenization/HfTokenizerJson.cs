using System.Text.Json;
using System.Text.RegularExpressions;
using static Encore.Formats.Tokenization.TokenizerFiles;

namespace Encore.Formats.Tokenization;

/// <summary>
/// Reads byte-level BPE models from Hugging Face tokenizers' <c>tokenizer.json</c> (huggingface/tokenizers
/// serialization: model.vocab, model.merges as "a b" strings or [a, b] pairs, added_tokens,
/// pre_tokenizer ByteLevel or Sequence[Split(Regex), ByteLevel], normalizer NFC or none,
/// post_processor TemplateProcessing / RobertaProcessing) and from the older vocab.json + merges.txt.
/// </summary>
internal static class HfTokenizerJson
{
    public static ByteLevelBpeTextTokenizer Load(string path, JsonElement root, HfConfigs cfg)
    {
        var model = Property(root, "model")!.Value;
        var vocabEl = Property(model, "vocab") ?? throw new CheckpointFormatException($"{path}: model has no 'vocab'");
        var vocab = ReadVocab(path, "model.vocab", vocabEl);
        var mergesEl = Property(model, "merges") ?? throw new CheckpointFormatException($"{path}: model has no 'merges'");
        if (mergesEl.ValueKind != JsonValueKind.Array) throw new CheckpointFormatException($"{path}: model.merges is not a list");
        if (mergesEl.GetArrayLength() > MaxVocabSize) throw new CheckpointFormatException($"{path}: {mergesEl.GetArrayLength()} merges exceeds the {MaxVocabSize} limit");
        var merges = new List<(string, string)>(mergesEl.GetArrayLength());
        int k = 0;
        foreach (var m in mergesEl.EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.String)
                merges.Add(SplitMerge(path, $"merge {k}", m.GetString()!));
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
                merges.Add((RequireString(path, $"merge {k}", m[0]), RequireString(path, $"merge {k}", m[1])));
            else
                throw new CheckpointFormatException($"{path}: merge {k} is {m.ValueKind}, neither \"a b\" nor [a, b]");
            k++;
        }
        CheckMerges(path, vocab, merges);

        var added = new List<AddedToken>();
        var lstrip = new List<string>();
        if (Property(root, "added_tokens") is { } at)
        {
            if (at.ValueKind != JsonValueKind.Array) throw new CheckpointFormatException($"{path}: added_tokens is not a list");
            int i = 0;
            foreach (var a in at.EnumerateArray())
            {
                var idEl = Property(a, "id") ?? throw new CheckpointFormatException($"{path}: added_tokens[{i}] has no id");
                var content = Property(a, "content") is { } c ? RequireString(path, $"added_tokens[{i}].content", c) : throw new CheckpointFormatException($"{path}: added_tokens[{i}] has no content");
                if (content.Length == 0) throw new CheckpointFormatException($"{path}: added_tokens[{i}] is empty");
                added.Add(new AddedToken(content, CheckedId(path, $"added_tokens[{i}]", idEl), Bool(Property(a, "special")) ?? false));
                if (Bool(Property(a, "lstrip")) == true) lstrip.Add(content);
                i++;
            }
        }

        var (pattern, addPrefixSpace) = ReadPreTokenizer(path, Property(root, "pre_tokenizer"));
        bool nfc = ReadNormalizer(path, Property(root, "normalizer"));
        var data = new ByteLevelBpeData(vocab, merges, added, pattern, nfc, addPrefixSpace, lstrip);
        int? Lookup(string s) => added.FirstOrDefault(a => a.Content == s) is { Content: not null } a ? a.Id : vocab.TryGetValue(s, out int id) ? id : null;
        var (prefix, suffix) = ReadPostProcessor(path, Property(root, "post_processor"), Lookup);
        return new ByteLevelBpeTextTokenizer(path, data, Roles(cfg, added, Lookup, prefix, suffix));
    }

    public static ByteLevelBpeTextTokenizer LoadVocabMerges(string vocabPath, string mergesPath, HfConfigs cfg)
    {
        Dictionary<string, int> vocab;
        using (var doc = ReadJson(vocabPath)) vocab = ReadVocab(vocabPath, "the vocabulary", doc.RootElement);
        var lines = ReadLines(mergesPath, MaxVocabSize);
        var merges = new List<(string, string)>(lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0 || (i == 0 && lines[i].StartsWith("#version", StringComparison.Ordinal))) continue;
            merges.Add(SplitMerge(mergesPath, $"line {i + 1}", lines[i]));
        }
        CheckMerges(mergesPath, vocab, merges);
        // BartTokenizer's tokens when its files do not name them: <s> <pad> </s> <unk>, and <mask> for infilling.
        bool bart = cfg.ModelType == "bart";
        string? Name(string role) => cfg.TokenString(role) ?? (bart ? BartRoleToken(role) : null);
        // Role and additional tokens present in the vocabulary are matched whole, as the slow GPT2Tokenizer does.
        var added = new List<AddedToken>(cfg.AddedTokensDecoder);
        foreach (var name in new[] { "bos", "eos", "pad", "unk", "mask" }.Select(Name).Concat(cfg.AdditionalSpecialTokens))
            if (name is not null && vocab.TryGetValue(name, out int id) && !added.Any(a => a.Content == name))
                added.Add(new AddedToken(name, id, true));
        // BartTokenizer's <mask> is AddedToken("<mask>", lstrip=True).
        var data = new ByteLevelBpeData(vocab, merges, added, ByteLevel.Gpt2Pattern, false, cfg.Flag("add_prefix_space") ?? false,
            bart && Name("mask") is { } mask && vocab.ContainsKey(mask) ? [mask] : null);
        int? Lookup(string s) => added.FirstOrDefault(a => a.Content == s) is { Content: not null } a ? a.Id : vocab.TryGetValue(s, out int v) ? v : null;
        int? Role(string role) => Name(role) is { } n && Lookup(n) is int id ? id : null;
        // BartTokenizer.build_inputs_with_special_tokens: <s> text </s> (its cls and sep tokens).
        int[]? prefix = bart && Role("bos") is int b ? [b] : null, suffix = bart && Role("eos") is int e ? [e] : null;
        var roles = Roles(cfg, added, Lookup, prefix, suffix);
        if (bart) roles = roles with { Bos = roles.Bos ?? Role("bos"), Eos = roles.Eos ?? Role("eos"), Pad = roles.Pad ?? Role("pad"), Unk = roles.Unk ?? Role("unk") };
        return new ByteLevelBpeTextTokenizer(vocabPath, data, roles);
    }

    static string? BartRoleToken(string role) => role switch
    {
        "bos" or "cls" => "<s>",
        "eos" or "sep" => "</s>",
        "pad" => "<pad>",
        "unk" => "<unk>",
        "mask" => "<mask>",
        _ => null,
    };

    static SpecialTokenIds Roles(HfConfigs cfg, List<AddedToken> added, Func<string, int?> lookup, int[]? prefix, int[]? suffix)
    {
        int? bos = cfg.Role("bos", lookup), eos = cfg.Role("eos", lookup), pad = cfg.Role("pad", lookup), unk = cfg.Role("unk", lookup);
        var specialIds = new HashSet<int>(added.Where(a => a.Special).Select(a => a.Id));
        foreach (var r in new[] { bos, eos, pad })
            if (r is { } id) specialIds.Add(id);
        return new SpecialTokenIds
        {
            Bos = bos, Eos = eos, Pad = pad, Unk = unk,
            DecoderStart = cfg.DecoderStartId,
            AddBos = cfg.AddBosToken ?? false,
            AddEos = cfg.AddEosToken ?? false,
            Prefix = cfg.AddBosToken is null && cfg.AddEosToken is null ? prefix : null,
            Suffix = cfg.AddBosToken is null && cfg.AddEosToken is null ? suffix : null,
            Added = added.GroupBy(a => a.Content).ToDictionary(g => g.Key, g => g.Last().Id, StringComparer.Ordinal),
            SpecialIds = specialIds,
        };
    }

    static Dictionary<string, int> ReadVocab(string path, string what, JsonElement v)
    {
        if (v.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: {what} is not an object of token: id");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var seen = new HashSet<int>();
        foreach (var p in v.EnumerateObject())
        {
            if (vocab.Count >= MaxVocabSize) throw new CheckpointFormatException($"{path}: {what} has more than {MaxVocabSize} entries");
            int id = CheckedId(path, $"token '{p.Name}'", p.Value);
            if (!seen.Add(id)) throw new CheckpointFormatException($"{path}: id {id} is given to two tokens (second: '{p.Name}')");
            vocab[p.Name] = id;
        }
        if (vocab.Count == 0) throw new CheckpointFormatException($"{path}: {what} is empty");
        return vocab;
    }

    static (string, string) SplitMerge(string path, string where, string s)
    {
        int sp = s.IndexOf(' ');
        if (sp <= 0 || sp == s.Length - 1 || s.IndexOf(' ', sp + 1) >= 0)
            throw new CheckpointFormatException($"{path}: {where} '{s}' is not two tokens separated by one space");
        return (s[..sp], s[(sp + 1)..]);
    }

    static void CheckMerges(string path, Dictionary<string, int> vocab, List<(string Left, string Right)> merges)
    {
        for (int i = 0; i < merges.Count; i++)
        {
            var (l, r) = merges[i];
            if (l.Contains(' ') || r.Contains(' '))
                throw new CheckpointFormatException($"{path}: merge {i} ('{l}', '{r}') holds a space, which byte-level BPE never has");
            if (!vocab.ContainsKey(l) || !vocab.ContainsKey(r) || !vocab.ContainsKey(l + r))
                throw new CheckpointFormatException($"{path}: merge {i} ('{l}', '{r}') uses or makes a token missing from the vocabulary");
        }
    }

    static (string Pattern, bool AddPrefixSpace) ReadPreTokenizer(string path, JsonElement? pre)
    {
        string? pattern = null;
        bool prefix = false, sawByteLevel = false;
        void Visit(JsonElement e)
        {
            string type = Property(e, "type") is { ValueKind: JsonValueKind.String } t ? t.GetString()! : "";
            switch (type)
            {
                case "Sequence":
                    if (Property(e, "pretokenizers") is not { ValueKind: JsonValueKind.Array } list)
                        throw new CheckpointFormatException($"{path}: a Sequence pre-tokenizer has no 'pretokenizers' list");
                    foreach (var p in list.EnumerateArray()) Visit(p);
                    break;
                case "ByteLevel":
                    sawByteLevel = true;
                    prefix = Bool(Property(e, "add_prefix_space")) ?? false;
                    if (Bool(Property(e, "use_regex")) ?? true)
                    {
                        if (pattern is not null) throw new CheckpointFormatException($"{path}: a Split regex and ByteLevel use_regex together are not supported");
                        pattern = ByteLevel.Gpt2Pattern;
                    }
                    break;
                case "Split":
                    if (pattern is not null) throw new CheckpointFormatException($"{path}: more than one Split pre-tokenizer is not supported");
                    var behavior = Property(e, "behavior") is { ValueKind: JsonValueKind.String } b ? b.GetString() : "Isolated";
                    if (behavior != "Isolated" || (Bool(Property(e, "invert")) ?? false))
                        throw new CheckpointFormatException($"{path}: Split behavior '{behavior}' (invert {Bool(Property(e, "invert"))}) is not supported; only Isolated");
                    var pat = Property(e, "pattern");
                    if (pat is { } pp && Property(pp, "Regex") is { ValueKind: JsonValueKind.String } rx) pattern = rx.GetString()!;
                    else if (pat is { } ps && Property(ps, "String") is { ValueKind: JsonValueKind.String } st) pattern = Regex.Escape(st.GetString()!);
                    else throw new CheckpointFormatException($"{path}: a Split pre-tokenizer has no Regex or String pattern");
                    break;
                default:
                    throw new CheckpointFormatException($"{path}: pre-tokenizer '{type}' is not supported with byte-level BPE");
            }
        }
        if (pre is { } p0) Visit(p0);
        if (!sawByteLevel && pre is not null) throw new CheckpointFormatException($"{path}: the pre-tokenizer has no ByteLevel step");
        return (pattern ?? ByteLevel.Gpt2Pattern, prefix);
    }

    static bool ReadNormalizer(string path, JsonElement? norm)
    {
        if (norm is not { } n) return false;
        string type = Property(n, "type") is { ValueKind: JsonValueKind.String } t ? t.GetString()! : "";
        if (type == "NFC") return true;
        if (type == "Sequence" && Property(n, "normalizers") is { ValueKind: JsonValueKind.Array } list)
        {
            bool nfc = false;
            foreach (var x in list.EnumerateArray()) nfc |= ReadNormalizer(path, x);
            return nfc;
        }
        throw new CheckpointFormatException($"{path}: normalizer '{type}' is not supported with byte-level BPE (only NFC)");
    }

    static (int[]? Prefix, int[]? Suffix) ReadPostProcessor(string path, JsonElement? post, Func<string, int?> lookup)
    {
        if (post is not { } p) return (null, null);
        string type = Property(p, "type") is { ValueKind: JsonValueKind.String } t ? t.GetString()! : "";
        int Id(string name) => lookup(name) ?? throw new CheckpointFormatException($"{path}: post_processor token '{name}' is not in the vocabulary");
        switch (type)
        {
            case "ByteLevel":
                return (null, null);
            case "RobertaProcessing" or "BertProcessing":
                // {"cls": ["<s>", 0], "sep": ["</s>", 2]}
                string Name(string key) => Property(p, key) is { ValueKind: JsonValueKind.Array } a && a.GetArrayLength() == 2 && a[0].ValueKind == JsonValueKind.String
                    ? a[0].GetString()! : throw new CheckpointFormatException($"{path}: {type} has no '{key}' [token, id]");
                return ([Id(Name("cls"))], [Id(Name("sep"))]);
            case "TemplateProcessing":
                if (Property(p, "single") is not { ValueKind: JsonValueKind.Array } single)
                    throw new CheckpointFormatException($"{path}: TemplateProcessing has no 'single' template");
                var before = new List<int>();
                var after = new List<int>();
                bool seenSequence = false;
                foreach (var item in single.EnumerateArray())
                {
                    if (Property(item, "Sequence") is not null) { seenSequence = true; continue; }
                    if (Property(item, "SpecialToken") is { } st && Property(st, "id") is { ValueKind: JsonValueKind.String } id)
                        (seenSequence ? after : before).Add(Id(id.GetString()!));
                    else
                        throw new CheckpointFormatException($"{path}: TemplateProcessing item {item} is neither Sequence nor SpecialToken");
                }
                return (before.ToArray(), after.ToArray());
            case "Sequence":
                (int[]? Prefix, int[]? Suffix) result = (null, null);
                if (Property(p, "processors") is { ValueKind: JsonValueKind.Array } procs)
                    foreach (var x in procs.EnumerateArray())
                    {
                        var r = ReadPostProcessor(path, x, lookup);
                        result = (r.Prefix ?? result.Prefix, r.Suffix ?? result.Suffix);
                    }
                return result;
            default:
                throw new CheckpointFormatException($"{path}: post_processor '{type}' is not supported");
        }
    }
}
