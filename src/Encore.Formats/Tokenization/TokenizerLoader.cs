using System.Text.Json;
using static Encore.Formats.Tokenization.TokenizerFiles;

namespace Encore.Formats.Tokenization;

/// <summary>
/// Loads the tokenizer a Hugging Face checkpoint directory ships. Looked for in this order:
/// <list type="number">
/// <item><c>tokenizer.json</c> holding a byte-level BPE model (GPT-2, Qwen2, Llama 3);</item>
/// <item><c>spiece.model</c> (T5) or <c>tokenizer.model</c> (Llama 2), SentencePiece;</item>
/// <item><c>source.spm</c> + <c>target.spm</c> + <c>vocab.json</c>, Marian's pair (<see cref="MarianTokenizer"/>);</item>
/// <item><c>sentencepiece.bpe.model</c> of an mBART or mBART-50 checkpoint, fairseq's ids with language codes (<see cref="MBartTokenizer"/>);</item>
/// <item><c>vocab.json</c> + <c>merges.txt</c>, byte-level BPE in the older layout (BART's, with its special tokens, when config.json says "bart");</item>
/// <item><c>vocab.txt</c>, BERT WordPiece.</item>
/// </list>
/// Special tokens come from <c>tokenizer_config.json</c>, then <c>special_tokens_map.json</c>, then
/// <c>config.json</c>'s *_token_id, then the model file itself. Every file is size-checked before
/// it is read and every failure is a <see cref="CheckpointFormatException"/> naming the file.
/// </summary>
public static class TokenizerLoader
{
    /// <summary>T5's SentencePiece file.</summary>
    public const string SpieceModel = "spiece.model";
    /// <summary>Llama's SentencePiece file.</summary>
    public const string TokenizerModel = "tokenizer.model";
    /// <summary>The Hugging Face tokenizers file.</summary>
    public const string TokenizerJson = "tokenizer.json";
    /// <summary>Byte-level BPE vocabulary (older layout).</summary>
    public const string VocabJson = "vocab.json";
    /// <summary>Byte-level BPE merges (older layout).</summary>
    public const string MergesTxt = "merges.txt";
    /// <summary>WordPiece vocabulary.</summary>
    public const string VocabTxt = "vocab.txt";
    /// <summary>Tokenizer settings and special tokens.</summary>
    public const string TokenizerConfigJson = "tokenizer_config.json";
    /// <summary>Special-token names.</summary>
    public const string SpecialTokensMapJson = "special_tokens_map.json";
    /// <summary>The model configuration (token ids, decoder_start_token_id).</summary>
    public const string ConfigJson = "config.json";
    /// <summary>Added tokens of the older layout ({token: id}).</summary>
    public const string AddedTokensJson = "added_tokens.json";

    /// <summary>Loads the tokenizer in checkpoint directory <paramref name="dir"/>, with the chat template the directory ships (<see cref="TextTokenizer.ChatTemplate"/>).</summary>
    public static TextTokenizer FromDirectory(string dir)
    {
        var tokenizer = Load(dir);
        tokenizer.ChatTemplate = ChatTemplateFiles.Read(dir);
        return tokenizer;
    }

    static TextTokenizer Load(string dir)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: no such directory");
        var cfg = new HfConfigs(dir);
        string Find(string name) => Path.Combine(dir, name);
        bool Has(string name) => File.Exists(Find(name));

        // Marian (opus-mt): source.spm and target.spm over a shared vocab.json.
        if (MarianTokenizer.IsPresent(dir)) return MarianTokenizer.Load(dir);
        // mBART and mBART-50: fairseq's sentencepiece.bpe.model with language codes (before tokenizer.json, whose
        // Metaspace BPE Encore reads through the SentencePiece model).
        if (MBartTokenizer.IsPresent(dir, cfg)) return MBartTokenizer.Load(dir, cfg);
        string? sp = Has(SpieceModel) ? Find(SpieceModel) : Has(TokenizerModel) ? Find(TokenizerModel) : null;
        if (Has(TokenizerJson))
        {
            var path = Find(TokenizerJson);
            using var doc = ReadJson(path);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: not a JSON object");
            var model = Property(root, "model") ?? throw new CheckpointFormatException($"{path}: no 'model' object");
            string type = Property(model, "type") is { ValueKind: JsonValueKind.String } t ? t.GetString()! : "";
            if (type == "BPE" && IsByteLevel(root)) return HfTokenizerJson.Load(path, root, cfg);
            if (sp is null && !Has(VocabTxt))
                throw new CheckpointFormatException($"{path}: model type '{type}'{(type == "BPE" ? " without a ByteLevel pre-tokenizer" : "")} is not supported without {SpieceModel}, {TokenizerModel} or {VocabTxt} beside it");
        }
        if (sp is not null) return LoadSentencePiece(sp, cfg);
        if (Has(VocabJson) && Has(MergesTxt)) return HfTokenizerJson.LoadVocabMerges(Find(VocabJson), Find(MergesTxt), cfg);
        if (Has(VocabTxt)) return LoadWordPiece(Find(VocabTxt), cfg);
        throw new FileNotFoundException($"{dir}: no tokenizer found (looked for {TokenizerJson}, {SpieceModel}, {TokenizerModel}, {VocabJson} + {MergesTxt}, {VocabTxt})");
    }

    static bool IsByteLevel(JsonElement root)
    {
        static bool Has(JsonElement? e)
        {
            if (e is not { } v || v.ValueKind != JsonValueKind.Object) return false;
            if (Property(v, "type") is { ValueKind: JsonValueKind.String } t && t.GetString() == "ByteLevel") return true;
            if (Property(v, "pretokenizers") is { ValueKind: JsonValueKind.Array } list)
                foreach (var p in list.EnumerateArray()) if (Has(p)) return true;
            return false;
        }
        return Has(Property(root, "pre_tokenizer")) || Has(Property(root, "decoder"));
    }

    static SentencePieceTextTokenizer LoadSentencePiece(string path, HfConfigs cfg)
    {
        var bytes = ReadBytes(path);
        var proto = SentencePieceModelProto.Parse(path, bytes);
        int pieces = proto.Pieces.Count;
        if (pieces > MaxVocabSize) throw new CheckpointFormatException($"{path}: {pieces} pieces exceeds the {MaxVocabSize} limit");
        var pieceIds = new Dictionary<string, int>(pieces, StringComparer.Ordinal);
        for (int i = 0; i < pieces; i++) pieceIds.TryAdd(proto.Pieces[i].Text, i);
        int? PieceId(string s) => pieceIds.TryGetValue(s, out int id) ? id : null;

        // Hugging Face's T5Tokenizer appends extra_ids sentinels after the pieces, <extra_id_0> last.
        int extra = cfg.ExtraIds;
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        var specialIds = new HashSet<int>();
        foreach (var a in cfg.AddedTokensDecoder)
        {
            added[a.Content] = a.Id;
            if (a.Special) specialIds.Add(a.Id);
        }
        for (int k = 0; k < extra; k++)
        {
            var name = $"<extra_id_{k}>";
            if (added.ContainsKey(name)) continue;
            added[name] = PieceId(name) ?? pieces + extra - 1 - k;
            specialIds.Add(added[name]);
        }
        int next = Math.Max(pieces + extra, added.Count == 0 ? 0 : added.Values.Max() + 1);
        foreach (var s in cfg.AdditionalSpecialTokens)
        {
            if (added.ContainsKey(s)) continue;
            int id = PieceId(s) ?? next++;
            added[s] = id;
            specialIds.Add(id);
        }
        if (next > MaxVocabSize) throw new CheckpointFormatException($"{cfg.TokenizerConfigPath}: {next} tokens exceeds the {MaxVocabSize} limit");

        int? Lookup(string s) => added.TryGetValue(s, out int id) ? id : PieceId(s);
        int? Intrinsic(int id) => id >= 0 ? id : null;
        int? bos = cfg.Role("bos", Lookup) ?? Intrinsic(proto.BosId);
        int? eos = cfg.Role("eos", Lookup) ?? Intrinsic(proto.EosId);
        int? pad = cfg.Role("pad", Lookup) ?? Intrinsic(proto.PadId);
        int? unk = cfg.Role("unk", Lookup) ?? Intrinsic(proto.UnkId);
        foreach (var r in new[] { bos, eos, pad })
            if (r is { } id) specialIds.Add(id);
        // Role tokens written in the text ("</s>") are matched whole, as Hugging Face's slow tokenizers do.
        foreach (var r in new[] { bos, eos, pad, unk })
            if (r is { } id && id < pieces && proto.Pieces[id].Type is SentencePieceModelProto.PieceType.Control or SentencePieceModelProto.PieceType.Unknown)
                added.TryAdd(proto.Pieces[id].Text, id);
        var special = new SpecialTokenIds
        {
            Bos = bos, Eos = eos, Pad = pad, Unk = unk,
            DecoderStart = cfg.DecoderStartId,
            // Llama adds BOS; T5 (no BOS) appends EOS.
            AddBos = cfg.AddBosToken ?? bos is not null,
            AddEos = cfg.AddEosToken ?? (bos is null && eos is not null),
            Added = added,
            SpecialIds = specialIds,
        };
        return new SentencePieceTextTokenizer(path, bytes, proto, special);
    }

    static WordPieceTextTokenizer LoadWordPiece(string path, HfConfigs cfg)
    {
        var vocab = ReadLines(path, MaxVocabSize);
        if (vocab.Length == 0) throw new CheckpointFormatException($"{path}: the vocabulary is empty");
        var ids = new Dictionary<string, int>(vocab.Length, StringComparer.Ordinal);
        for (int i = 0; i < vocab.Length; i++) ids.TryAdd(vocab[i], i);
        int Need(string role, string fallback)
        {
            var name = cfg.TokenString(role) ?? fallback;
            return ids.TryGetValue(name, out int id) ? id
                : throw new CheckpointFormatException($"{path}: the {role} token '{name}' is not in the vocabulary");
        }
        int unk = Need("unk", "[UNK]"), cls = Need("cls", "[CLS]"), sep = Need("sep", "[SEP]"), pad = Need("pad", "[PAD]"), mask = Need("mask", "[MASK]");
        bool lower = cfg.Flag("do_lower_case") ?? true;
        // BERT: strip_accents follows do_lower_case unless set.
        bool strip = cfg.Flag("strip_accents") ?? lower;
        bool cjk = cfg.Flag("tokenize_chinese_chars") ?? true;
        int? Lookup(string s) => ids.TryGetValue(s, out int id) ? id : null;
        var special = new SpecialTokenIds
        {
            Pad = pad, Unk = unk,
            Bos = cfg.Role("bos", Lookup),
            Eos = cfg.Role("eos", Lookup),
            DecoderStart = cfg.DecoderStartId,
            Added = new Dictionary<string, int> { [vocab[cls]] = cls, [vocab[sep]] = sep, [vocab[pad]] = pad, [vocab[mask]] = mask, [vocab[unk]] = unk },
            SpecialIds = new HashSet<int> { cls, sep, pad, mask },
        };
        return new WordPieceTextTokenizer(path, vocab, cls, sep, special, lower, strip, cjk);
    }
}

/// <summary>The Hugging Face side files that name special tokens; each optional.</summary>
internal sealed class HfConfigs
{
    readonly JsonElement? _tok, _map, _model;

    public HfConfigs(string dir)
    {
        TokenizerConfigPath = Path.Combine(dir, TokenizerLoader.TokenizerConfigJson);
        SpecialTokensMapPath = Path.Combine(dir, TokenizerLoader.SpecialTokensMapJson);
        ConfigPath = Path.Combine(dir, TokenizerLoader.ConfigJson);
        _tok = ReadObject(TokenizerConfigPath);
        _map = ReadObject(SpecialTokensMapPath);
        _model = ReadObject(ConfigPath);
        AddedTokensJsonPath = Path.Combine(dir, TokenizerLoader.AddedTokensJson);

        ExtraIds = 0;
        if (Property(_tok ?? default, "extra_ids") is { } e)
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int n) || n < 0 || n > 100_000)
                throw new CheckpointFormatException($"{TokenizerConfigPath}: extra_ids is {e}, not a count in [0, 100000]");
            ExtraIds = n;
        }
        foreach (var src in new[] { (_tok, TokenizerConfigPath), (_map, SpecialTokensMapPath) })
        {
            if (src.Item1 is not { } o || Property(o, "additional_special_tokens") is not { } list) continue;
            if (list.ValueKind != JsonValueKind.Array) throw new CheckpointFormatException($"{src.Item2}: additional_special_tokens is not a list");
            foreach (var t in list.EnumerateArray())
                if (TokenizerFiles.TokenString(t) is { } s && !AdditionalSpecialTokens.Contains(s)) AdditionalSpecialTokens.Add(s);
        }
        if (Property(_tok ?? default, "added_tokens_decoder") is { } dec)
        {
            if (dec.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{TokenizerConfigPath}: added_tokens_decoder is not an object");
            foreach (var p in dec.EnumerateObject())
            {
                if (!int.TryParse(p.Name, out int id) || id < 0 || id >= MaxVocabSize)
                    throw new CheckpointFormatException($"{TokenizerConfigPath}: added_tokens_decoder key '{p.Name}' is not a token id");
                var content = TokenizerFiles.TokenString(p.Value) ?? throw new CheckpointFormatException($"{TokenizerConfigPath}: added_tokens_decoder['{p.Name}'] has no content");
                AddedTokensDecoder.Add(new AddedToken(content, id, Bool(Property(p.Value, "special")) ?? false));
            }
        }
        if (File.Exists(AddedTokensJsonPath))
        {
            using var doc = ReadJson(AddedTokensJsonPath);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{AddedTokensJsonPath}: not a JSON object");
            foreach (var p in doc.RootElement.EnumerateObject())
                if (!AddedTokensDecoder.Any(a => a.Content == p.Name))
                    AddedTokensDecoder.Add(new AddedToken(p.Name, CheckedId(AddedTokensJsonPath, $"'{p.Name}'", p.Value), true));
        }
        DecoderStartId = Id(ConfigPath, "decoder_start_token_id", Property(_model ?? default, "decoder_start_token_id"));
        ModelType = Property(_model ?? default, "model_type") is { ValueKind: JsonValueKind.String } type ? type.GetString() : null;
    }

    /// <summary>config.json's model_type, or null.</summary>
    public string? ModelType { get; }

    public string TokenizerConfigPath { get; }
    public string SpecialTokensMapPath { get; }
    public string ConfigPath { get; }
    public string AddedTokensJsonPath { get; }
    public int ExtraIds { get; }
    public List<string> AdditionalSpecialTokens { get; } = [];
    public List<AddedToken> AddedTokensDecoder { get; } = [];
    public int? DecoderStartId { get; }
    public bool? AddBosToken => Flag("add_bos_token");
    public bool? AddEosToken => Flag("add_eos_token");

    public bool? Flag(string name) => _tok is { } t ? Bool(Property(t, name)) : null;

    /// <summary>tokenizer_config.json's string <paramref name="name"/> (tokenizer_class, src_lang, tgt_lang), or null.</summary>
    public string? Setting(string name) => _tok is { } t && Property(t, name) is { ValueKind: JsonValueKind.String } v ? v.GetString() : null;

    /// <summary>The name given for role <paramref name="role"/> ("bos", "eos", "pad", "unk", "cls", ...).</summary>
    public string? TokenString(string role) =>
        (_tok is { } t ? TokenFiles(t, role) : null) ?? (_map is { } m ? TokenFiles(m, role) : null);

    static string? TokenFiles(JsonElement o, string role) => TokenizerFiles.TokenString(Property(o, role + "_token"));

    /// <summary>The id of role <paramref name="role"/>: by name through <paramref name="lookup"/>, else config.json's id.</summary>
    public int? Role(string role, Func<string, int?> lookup)
    {
        if (TokenString(role) is { } s && lookup(s) is { } id) return id;
        return _model is { } m ? Id(ConfigPath, role + "_token_id", Property(m, role + "_token_id")) : null;
    }

    static JsonElement? ReadObject(string path)
    {
        if (!File.Exists(path)) return null;
        using var doc = ReadJson(path);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: not a JSON object");
        return doc.RootElement.Clone();
    }
}
