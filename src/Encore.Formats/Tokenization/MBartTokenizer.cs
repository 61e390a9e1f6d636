using static Encore.Formats.Tokenization.TokenizerFiles;

namespace Encore.Formats.Tokenization;

/// <summary>
/// The tokenizer of mBART and mBART-50 checkpoints (transformers' tokenization_mbart.py and tokenization_mbart50.py):
/// fairseq's <c>sentencepiece.bpe.model</c> under fairseq's ids. Ids 0–3 are <c>&lt;s&gt;</c>, <c>&lt;pad&gt;</c>,
/// <c>&lt;/s&gt;</c>, <c>&lt;unk&gt;</c>; SentencePiece piece p is id p + 1 (a piece the model maps to its unknown piece
/// is <c>&lt;unk&gt;</c>); the language codes follow the pieces (code i is pieces + 1 + i: fairseq's 25 for mBART,
/// 52 for mBART-50) and <c>&lt;mask&gt;</c> comes last. Codes and special tokens written in the text are split out
/// (<c>&lt;mask&gt;</c> taking the whitespace before it). With special tokens, mBART wraps a text as
/// <c>X &lt;/s&gt; src_lang</c> and mBART-50 as <c>src_lang X &lt;/s&gt;</c>; the source language is tokenizer_config.json's
/// <c>src_lang</c> (default en_XX) and can be set (<see cref="SourceLanguage"/>). A translation's target language is
/// forced as the first generated token (<see cref="LanguageId"/> of <c>tgt_lang</c>, as the translation pipeline's
/// forced_bos_token_id does) or is the config's decoder start (mBART fine-tuned on one pair).
/// </summary>
public sealed class MBartTokenizer : TextTokenizer
{
    /// <summary>fairseq's SentencePiece file in mBART checkpoints.</summary>
    public const string ModelFile = "sentencepiece.bpe.model";

    /// <summary>mBART's language codes in id order (FAIRSEQ_LANGUAGE_CODES of tokenization_mbart.py).</summary>
    public static IReadOnlyList<string> MBartLanguages { get; } =
    [
        "ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN", "it_IT", "ja_XX", "kk_KZ",
        "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN",
    ];

    /// <summary>mBART-50's language codes in id order: mBART's, then 27 more (tokenization_mbart50.py).</summary>
    public static IReadOnlyList<string> MBart50Languages { get; } =
    [
        .. MBartLanguages, "af_ZA", "az_AZ", "bn_IN", "fa_IR", "he_IL", "hr_HR", "id_ID", "ka_GE", "km_KH", "mk_MK", "ml_IN",
        "mn_MN", "mr_IN", "pl_PL", "ps_AF", "pt_XX", "sv_SE", "sw_KE", "ta_IN", "te_IN", "th_TH", "tl_XX", "uk_UA", "ur_PK",
        "xh_ZA", "gl_ES", "sl_SI",
    ];

    // fairseq's fixed ids.
    const int FairseqOffset = 1, FsBos = 0, FsPad = 1, FsEos = 2, FsUnk = 3;

    readonly SentencePieceTextTokenizer _pieces;
    readonly Dictionary<string, int> _languages;
    readonly string[] _languageOf;           // code by (id − first code id)
    readonly int _firstLanguage, _mask;
    readonly string[] _splitTokens;          // special tokens split out of text, longest first

    MBartTokenizer(string path, SentencePieceTextTokenizer pieces, IReadOnlyList<string> languages, bool fifty, string sourceLanguage, string? targetLanguage, int? decoderStart)
        : base(Specials(pieces, languages.Count, decoderStart))
    {
        Path = path;
        _pieces = pieces;
        IsMBart50 = fifty;
        _firstLanguage = pieces.VocabSize + FairseqOffset;
        _languageOf = [.. languages];
        _languages = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < languages.Count; i++) _languages[languages[i]] = _firstLanguage + i;
        _mask = _firstLanguage + languages.Count;
        _splitTokens = [.. new[] { "<s>", "<pad>", "</s>", "<unk>", "<mask>" }.Concat(languages).OrderByDescending(t => t.Length)];
        TargetLanguage = targetLanguage;
        SourceLanguage = sourceLanguage;
    }

    static SpecialTokenIds Specials(SentencePieceTextTokenizer pieces, int languages, int? decoderStart)
    {
        int mask = pieces.VocabSize + FairseqOffset + languages;
        var special = new HashSet<int> { FsBos, FsPad, FsEos, FsUnk, mask };
        for (int i = 0; i < languages; i++) special.Add(pieces.VocabSize + FairseqOffset + i);
        // MBartForConditionalGeneration starts decoding from config.json's decoder_start_token_id (</s> by default).
        return new SpecialTokenIds { Bos = FsBos, Pad = FsPad, Eos = FsEos, Unk = FsUnk, DecoderStart = decoderStart ?? FsEos, AddEos = true, SpecialIds = special };
    }

    /// <summary>The SentencePiece file read.</summary>
    public string Path { get; }

    /// <summary>True for mBART-50's layout (<c>src_lang X &lt;/s&gt;</c>, 52 codes), false for mBART's (<c>X &lt;/s&gt; src_lang</c>, 25 codes).</summary>
    public bool IsMBart50 { get; }

    /// <summary>The language codes, in id order.</summary>
    public IReadOnlyList<string> Languages => _languageOf;

    /// <summary>The language whose code wraps encoded text (tokenizer_config.json's src_lang, default en_XX).</summary>
    public string SourceLanguage
    {
        get => _source;
        set
        {
            int code = LanguageId(value);
            _source = value;
            _wrapping = IsMBart50 ? ([code], [FsEos]) : ([], [FsEos, code]);
        }
    }
    string _source = "en_XX";
    (int[] Prefix, int[] Suffix) _wrapping;

    /// <summary>tokenizer_config.json's tgt_lang, or null.</summary>
    public string? TargetLanguage { get; }

    /// <summary>The id of language code <paramref name="code"/> (en_XX, ro_RO, …); an unknown code throws, listing the codes.</summary>
    public int LanguageId(string code) => _languages.TryGetValue(code, out int id) ? id
        : throw new ArgumentException($"'{code}' is not a language code of this tokenizer; codes: {string.Join(", ", _languageOf)}");

    /// <summary>True when <paramref name="dir"/> holds an mBART tokenizer: sentencepiece.bpe.model in an mbart checkpoint (config.json's model_type) or beside an MBart tokenizer_class.</summary>
    internal static bool IsPresent(string dir, HfConfigs cfg) =>
        File.Exists(System.IO.Path.Combine(dir, ModelFile))
        && (cfg.ModelType == "mbart" || cfg.Setting("tokenizer_class") is { } c && c.StartsWith("MBart", StringComparison.Ordinal));

    /// <summary>Loads sentencepiece.bpe.model from <paramref name="dir"/>; tokenizer_config.json's tokenizer_class chooses mBART-50 (MBart50Tokenizer) or mBART.</summary>
    internal static MBartTokenizer Load(string dir, HfConfigs cfg)
    {
        var path = System.IO.Path.Combine(dir, ModelFile);
        var bytes = ReadBytes(path);
        var proto = SentencePieceModelProto.Parse(path, bytes);
        if (proto.Pieces.Count > MaxVocabSize) throw new CheckpointFormatException($"{path}: {proto.Pieces.Count} pieces exceeds the {MaxVocabSize} limit");
        var pieces = new SentencePieceTextTokenizer(path, bytes, proto, new SpecialTokenIds { Unk = proto.UnkId >= 0 ? proto.UnkId : null });
        bool fifty = cfg.Setting("tokenizer_class")?.StartsWith("MBart50", StringComparison.Ordinal) == true;
        var languages = fifty ? MBart50Languages : MBartLanguages;
        string Language(string field, string value) => languages.Contains(value) ? value
            : throw new CheckpointFormatException($"{cfg.TokenizerConfigPath}: {field} '{value}' is not one of the {languages.Count} language codes of {(fifty ? "mBART-50" : "mBART")}");
        string source = Language("src_lang", cfg.Setting("src_lang") ?? "en_XX");
        string? target = cfg.Setting("tgt_lang") is { } t ? Language("tgt_lang", t) : null;
        int vocab = pieces.VocabSize + FairseqOffset + languages.Count + 1;
        if (cfg.DecoderStartId is int start && start >= vocab)
            throw new CheckpointFormatException($"{cfg.ConfigPath}: decoder_start_token_id {start} is outside the vocabulary of {path} ({vocab} ids)");
        return new MBartTokenizer(path, pieces, languages, fifty, source, target, cfg.DecoderStartId);
    }

    /// <inheritdoc/>
    public override TokenizerKind Kind => _pieces.Kind;

    /// <inheritdoc/>
    public override int VocabSize => _mask + 1;

    /// <inheritdoc/>
    public override int? TokenToId(string token) => token switch
    {
        "<s>" => FsBos,
        "<pad>" => FsPad,
        "</s>" => FsEos,
        "<unk>" => FsUnk,
        "<mask>" => _mask,
        _ when _languages.TryGetValue(token, out int code) => code,
        // _convert_token_to_id: the piece's id + 1, or <unk> where SentencePiece gives its unknown piece.
        _ => _pieces.TokenToId(token) is int p && p != _pieces.UnkId ? p + FairseqOffset : null,
    };

    /// <inheritdoc/>
    public override string? IdToToken(int id) => id switch
    {
        FsBos => "<s>",
        FsPad => "<pad>",
        FsEos => "</s>",
        FsUnk => "<unk>",
        _ when id == _mask => "<mask>",
        _ when id >= _firstLanguage && id < _mask => _languageOf[id - _firstLanguage],
        _ when id > FsUnk && id < _firstLanguage => _pieces.IdToToken(id - FairseqOffset),
        _ => null,
    };

    private protected override (int[] Prefix, int[] Suffix) SpecialWrapping() => _wrapping;

    private protected override int[] EncodeText(string text)
    {
        // The slow tokenizer's split on added tokens, then sp_model.encode(chunk, out_type=str) per chunk.
        var ids = new List<int>();
        var next = new int[_splitTokens.Length];   // per special token: its next occurrence at or after the cursor, −1 when none
        for (int k = 0; k < next.Length; k++) next[k] = text.IndexOf(_splitTokens[k], StringComparison.Ordinal);
        int start = 0;
        while (start <= text.Length)
        {
            var (at, token) = NextToken(text, start, next);
            var chunk = text[start..at];
            if (token == "<mask>") chunk = chunk.TrimEnd();   // <mask> is AddedToken(lstrip=True)
            foreach (int p in _pieces.Encode(chunk, addSpecialTokens: false))
                ids.Add(p == _pieces.UnkId ? FsUnk : p + FairseqOffset);
            if (token is null) break;
            ids.Add(TokenToId(token)!.Value);
            start = at + token.Length;
        }
        return [.. ids];
    }

    // The earliest special token at or after `from` (the longest where several start there), or (length, null). Each
    // token's next occurrence is searched again only once the cursor has passed it, so a text is scanned about once
    // per special token rather than once per split.
    (int At, string? Token) NextToken(string text, int from, int[] next)
    {
        int best = text.Length;
        string? token = null;
        for (int k = 0; k < _splitTokens.Length; k++)
        {
            if (next[k] >= 0 && next[k] < from) next[k] = text.IndexOf(_splitTokens[k], from, StringComparison.Ordinal);
            if (next[k] >= 0 && next[k] < best) (best, token) = (next[k], _splitTokens[k]);
        }
        return (best, token);
    }

    internal override void AppendTokenBytes(int id, bool skipSpecialTokens, ref DecodeState state, List<byte> output)
    {
        if (Special.SpecialIds.Contains(id))
        {
            if (skipSpecialTokens) return;
            AppendUtf8(IdToToken(id)!, output);
            state.Started = true;
            return;
        }
        _pieces.AppendTokenBytes(id - FairseqOffset, skipSpecialTokens: false, ref state, output);
    }
}
