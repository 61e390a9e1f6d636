using System.Text.Json;
using static Encore.Formats.Tokenization.TokenizerFiles;

namespace Encore.Formats.Tokenization;

/// <summary>
/// The tokenizer of Marian / opus-mt checkpoints (transformers' tokenization_marian.py): two SentencePiece
/// models, <c>source.spm</c> for the input language and <c>target.spm</c> for the output, over one shared
/// vocabulary <c>vocab.json</c> whose ids are the model's. Encoding splits the text into source.spm pieces
/// and maps each through vocab.json (a piece it lacks becomes <c>&lt;unk&gt;</c>), then appends
/// <c>&lt;/s&gt;</c>. Decoding maps ids back to vocab.json tokens and spells them as target.spm's
/// DecodePieces does: "▁" becomes a space, the first piece's dummy-prefix space is dropped, and a token the
/// target model lacks is written as it is. <c>&lt;/s&gt;</c>, <c>&lt;unk&gt;</c> and <c>&lt;pad&gt;</c> are special.
/// A language code of a multi-target model (<c>&gt;&gt;de&lt;&lt;</c>, as opus-mt-en-mul reads it) at the start of
/// the text is one token, as tokenization_marian.py's remove_language_code has it: the greedy pattern
/// <c>&gt;&gt;.+&lt;&lt;</c> matched at the start gives the code token (looked up in vocab.json, <c>&lt;unk&gt;</c> when
/// absent), and every match of the pattern is removed from the text the source model splits.
/// </summary>
public sealed class MarianTokenizer : TextTokenizer
{
    /// <summary>The source-language SentencePiece model.</summary>
    public const string SourceSpm = "source.spm";
    /// <summary>The target-language SentencePiece model.</summary>
    public const string TargetSpm = "target.spm";

    readonly SentencePieceTextTokenizer _source, _target;
    readonly Dictionary<string, int> _vocab;
    readonly string[] _idToToken;
    readonly int[] _targetIdOf;   // (V) vocab id → target.spm piece id, or −1 when target.spm lacks the token

    MarianTokenizer(string path, SentencePieceTextTokenizer source, SentencePieceTextTokenizer target, Dictionary<string, int> vocab, string[] idToToken, SpecialTokenIds special)
        : base(special)
    {
        Path = path;
        _source = source;
        _target = target;
        _vocab = vocab;
        _idToToken = idToToken;
        _targetIdOf = new int[idToToken.Length];
        for (int i = 0; i < idToToken.Length; i++)
            _targetIdOf[i] = target.TokenToId(idToToken[i]) is int t && t != target.UnkId ? t : -1;
    }

    /// <summary>The vocabulary file read (vocab.json).</summary>
    public string Path { get; }

    /// <summary>True when <paramref name="dir"/> holds Marian's tokenizer files.</summary>
    public static bool IsPresent(string dir) =>
        File.Exists(System.IO.Path.Combine(dir, SourceSpm)) && File.Exists(System.IO.Path.Combine(dir, TargetSpm)) && File.Exists(System.IO.Path.Combine(dir, TokenizerLoader.VocabJson));

    /// <summary>Loads source.spm, target.spm and vocab.json from <paramref name="dir"/>; config.json gives the decoder start id.</summary>
    public static MarianTokenizer Load(string dir)
    {
        var vocabPath = System.IO.Path.Combine(dir, TokenizerLoader.VocabJson);
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        int largest = -1;
        using (var doc = ReadJson(vocabPath))
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{vocabPath}: not an object of token: id");
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (vocab.Count >= MaxVocabSize) throw new CheckpointFormatException($"{vocabPath}: more than {MaxVocabSize} tokens");
                int id = CheckedId(vocabPath, $"token '{p.Name}'", p.Value);
                if (!vocab.TryAdd(p.Name, id)) throw new CheckpointFormatException($"{vocabPath}: token '{p.Name}' is given twice");
                largest = Math.Max(largest, id);
            }
        }
        if (vocab.Count == 0) throw new CheckpointFormatException($"{vocabPath}: the vocabulary is empty");
        var idToToken = new string?[largest + 1];
        foreach (var (token, id) in vocab)
        {
            if (idToToken[id] != null) throw new CheckpointFormatException($"{vocabPath}: id {id} is given to '{idToToken[id]}' and '{token}'");
            idToToken[id] = token;
        }
        for (int i = 0; i < idToToken.Length; i++)
            if (idToToken[i] is null) throw new CheckpointFormatException($"{vocabPath}: no token has id {i} (ids must run from 0 to {largest} without gaps)");
        int Need(string token) => vocab.TryGetValue(token, out int id) ? id
            : throw new CheckpointFormatException($"{vocabPath}: the token '{token}' is not in the vocabulary");
        int eos = Need("</s>"), unk = Need("<unk>"), pad = Need("<pad>");
        var cfg = new HfConfigs(dir);
        if (cfg.DecoderStartId is int start && start > largest)
            throw new CheckpointFormatException($"{cfg.ConfigPath}: decoder_start_token_id {start} is outside the vocabulary of {vocabPath} ({largest + 1} tokens)");
        var special = new SpecialTokenIds
        {
            Eos = eos, Unk = unk, Pad = pad,
            // MarianMTModel starts decoding from the pad token.
            DecoderStart = cfg.DecoderStartId ?? pad,
            AddEos = true,
            Added = new Dictionary<string, int>(StringComparer.Ordinal) { ["</s>"] = eos, ["<pad>"] = pad },
            SpecialIds = new HashSet<int> { eos, unk, pad },
        };
        return new MarianTokenizer(vocabPath, LoadPieces(System.IO.Path.Combine(dir, SourceSpm)), LoadPieces(System.IO.Path.Combine(dir, TargetSpm)), vocab, idToToken!, special);
    }

    // A SentencePiece model used for its pieces only: no special tokens of its own are added.
    static SentencePieceTextTokenizer LoadPieces(string path)
    {
        var bytes = ReadBytes(path);
        var proto = SentencePieceModelProto.Parse(path, bytes);
        if (proto.Pieces.Count > MaxVocabSize) throw new CheckpointFormatException($"{path}: {proto.Pieces.Count} pieces exceeds the {MaxVocabSize} limit");
        var special = new SpecialTokenIds { Unk = proto.UnkId >= 0 ? proto.UnkId : null };
        return new SentencePieceTextTokenizer(path, bytes, proto, special);
    }

    /// <summary>The source-language model.</summary>
    public SentencePieceTextTokenizer Source => _source;

    /// <summary>The target-language model.</summary>
    public SentencePieceTextTokenizer Target => _target;

    /// <inheritdoc/>
    public override TokenizerKind Kind => _source.Kind;

    /// <inheritdoc/>
    public override int VocabSize => _idToToken.Length;

    /// <inheritdoc/>
    public override int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    /// <inheritdoc/>
    public override string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    // tokenization_marian.py's language_code_re: greedy, and as Python's '.' it stops at a line feed. Non-backtracking:
    // a text of many ">>" and no "<<" would otherwise cost quadratic time.
    static readonly System.Text.RegularExpressions.Regex s_languageCode = new(">>.+<<",
        System.Text.RegularExpressions.RegexOptions.CultureInvariant | System.Text.RegularExpressions.RegexOptions.NonBacktracking);

    private protected override int[] EncodeText(string text)
    {
        // MarianTokenizer._tokenize: the leading language code as a token, then spm_source.encode(text without
        // any code, out_type=str); _convert_token_to_id: vocab or <unk>.
        int unk = Special.Unk!.Value;
        var code = s_languageCode.Match(text);
        bool leading = code.Success && code.Index == 0;
        var pieces = _source.Encode(code.Success ? s_languageCode.Replace(text, "") : text, addSpecialTokens: false);
        var ids = new int[pieces.Length + (leading ? 1 : 0)];
        int n = 0;
        if (leading) ids[n++] = _vocab.TryGetValue(code.Value, out int codeId) ? codeId : unk;
        foreach (int p in pieces)
            ids[n++] = _source.IdToToken(p) is { } piece && _vocab.TryGetValue(piece, out int id) ? id : unk;
        return ids;
    }

    internal override void AppendTokenBytes(int id, bool skipSpecialTokens, ref DecodeState state, List<byte> output)
    {
        if (Special.SpecialIds.Contains(id))
        {
            if (skipSpecialTokens) return;
            AppendUtf8(_idToToken[id], output);
            state.Started = true;
            return;
        }
        int piece = _targetIdOf[id];
        if (piece >= 0)
        {
            _target.AppendTokenBytes(piece, skipSpecialTokens: false, ref state, output);
            return;
        }
        // sentencepiece DecodePieces: a piece the model does not know is written as it is.
        AppendUtf8(_idToToken[id], output);
        state.Started = true;
    }
}
