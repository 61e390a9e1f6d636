using System.Text;

namespace Encore.Formats.Tokenization;

/// <summary>Which algorithm a <see cref="TextTokenizer"/> runs.</summary>
public enum TokenizerKind
{
    /// <summary>SentencePiece unigram model (T5's <c>spiece.model</c>).</summary>
    SentencePieceUnigram,
    /// <summary>SentencePiece BPE model (Llama's <c>tokenizer.model</c>), usually with byte fallback.</summary>
    SentencePieceBpe,
    /// <summary>GPT-2-style byte-level BPE (<c>tokenizer.json</c> or <c>vocab.json</c> + <c>merges.txt</c>).</summary>
    ByteLevelBpe,
    /// <summary>BERT WordPiece (<c>vocab.txt</c>).</summary>
    WordPiece,
}

/// <summary>
/// Encore's tokenizer: text to ids and back, with the special-token ids models need and an
/// incremental decoder for streaming. Encoding runs on Microsoft.ML.Tokenizers; decoding goes
/// through one per-token byte table (<see cref="AppendTokenBytes"/>) shared by
/// <see cref="Decode"/> and <see cref="StreamingDecoder"/>, so streamed pieces always add up to the
/// full decode.
/// </summary>
public abstract class TextTokenizer
{
    private protected TextTokenizer(SpecialTokenIds special)
    {
        Special = special;
    }

    private protected SpecialTokenIds Special { get; }

    /// <summary>The algorithm.</summary>
    public abstract TokenizerKind Kind { get; }

    /// <summary>Number of ids, added tokens included (largest id + 1).</summary>
    public abstract int VocabSize { get; }

    /// <summary>Padding id, or null when the model has none.</summary>
    public int? PadId => Special.Pad;

    /// <summary>End-of-sequence id, or null.</summary>
    public int? EosId => Special.Eos;

    /// <summary>Beginning-of-sequence id, or null (T5 has none).</summary>
    public int? BosId => Special.Bos;

    /// <summary>Unknown-token id, or null (byte-level BPE never needs one).</summary>
    public int? UnkId => Special.Unk;

    /// <summary>
    /// The id an encoder–decoder's decoder starts from: config.json's decoder_start_token_id when
    /// given, else BOS, else PAD (T5 starts from pad=0), else EOS; null when the model has none of these.
    /// </summary>
    public int? DecoderStartId => Special.DecoderStart ?? Special.Bos ?? Special.Pad ?? Special.Eos;

    /// <summary>True when <see cref="Encode"/> with special tokens prepends BOS.</summary>
    public bool AddsBos => Special.Prefix is { } p ? p.Length > 0 && p[0] == Special.Bos : Special.AddBos && Special.Bos is not null;

    /// <summary>True when <see cref="Encode"/> with special tokens appends EOS (T5).</summary>
    public bool AddsEos => Special.Suffix is { } s ? s.Length > 0 && s[^1] == Special.Eos : Special.AddEos && Special.Eos is not null;

    /// <summary>
    /// The chat template the tokenizer's checkpoint ships (chat_template.jinja, or tokenizer_config.json's
    /// chat_template; see <see cref="ChatTemplateFiles"/>), or null; set by <see cref="TokenizerLoader.FromDirectory"/>.
    /// </summary>
    public ChatTemplateSource? ChatTemplate { get; internal set; }

    /// <summary>Added tokens matched whole in the text before the model runs (sentinels, chat markers), with their ids.</summary>
    public IReadOnlyDictionary<string, int> AddedTokens => Special.Added;

    /// <summary>True when <paramref name="id"/> is a special token (control piece, special added token, role token), skipped by default when decoding.</summary>
    public bool IsSpecial(int id) => Special.SpecialIds.Contains(id) || IsModelControl(id);

    /// <summary>
    /// The id of T5's sentinel <c>&lt;extra_id_n&gt;</c> (n from 0): <c>VocabSize - 1 - n</c> for T5's
    /// layout, looked up by name so any vocabulary that holds the sentinels works.
    /// </summary>
    public int SentinelId(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        return TokenToId($"<extra_id_{n}>")
            ?? throw new ArgumentOutOfRangeException(nameof(n), $"the vocabulary has no sentinel <extra_id_{n}>");
    }

    /// <summary>Encodes <paramref name="text"/>; with <paramref name="addSpecialTokens"/> adds what the model expects (BOS for Llama, EOS for T5, [CLS] … [SEP] for BERT).</summary>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var body = EncodeText(text);
        if (!addSpecialTokens) return body;
        var (prefix, suffix) = SpecialWrapping();
        if (prefix.Length == 0 && suffix.Length == 0) return body;
        var ids = new int[prefix.Length + body.Length + suffix.Length];
        prefix.CopyTo(ids, 0);
        body.CopyTo(ids, prefix.Length);
        suffix.CopyTo(ids, prefix.Length + body.Length);
        return ids;
    }

    /// <summary>
    /// The ids <see cref="Encode"/> places before and after the text when it adds special tokens
    /// ([CLS] and [SEP] for BERT, BOS for Llama, EOS for T5), for callers that wrap ids of their own
    /// (truncated text, ids given by a client) as the model expects.
    /// </summary>
    public (int[] Prefix, int[] Suffix) SpecialTokensAround()
    {
        var (prefix, suffix) = SpecialWrapping();
        return (prefix.ToArray(), suffix.ToArray());
    }

    /// <summary>Decodes <paramref name="ids"/>; special tokens are dropped unless <paramref name="skipSpecialTokens"/> is false. Ids outside the vocabulary throw.</summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = true)
    {
        var bytes = new List<byte>(ids.Length * 4);
        var state = new DecodeState();
        foreach (int id in ids)
        {
            CheckId(id);
            AppendTokenBytes(id, skipSpecialTokens, ref state, bytes);
        }
        return Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
    }

    /// <summary>A streaming decoder: feed ids one at a time, get the text that is complete so far.</summary>
    public StreamingDecoder CreateStreamingDecoder(bool skipSpecialTokens = true) => new(this, skipSpecialTokens);

    /// <summary>The id of <paramref name="token"/> (a vocabulary string, e.g. "▁the", "Ġthe", "##s" or an added token), or null.</summary>
    public abstract int? TokenToId(string token);

    /// <summary>The vocabulary string of <paramref name="id"/>, or null when out of range.</summary>
    public abstract string? IdToToken(int id);

    /// <summary>Encodes without BOS/EOS/[CLS]/[SEP].</summary>
    private protected abstract int[] EncodeText(string text);

    /// <summary>Ids placed before and after the text when special tokens are added.</summary>
    private protected virtual (int[] Prefix, int[] Suffix) SpecialWrapping() =>
        (Special.Prefix ?? (AddsBos ? [Special.Bos!.Value] : []), Special.Suffix ?? (AddsEos ? [Special.Eos!.Value] : []));

    /// <summary>True for ids the model itself treats as control (SentencePiece control pieces).</summary>
    private protected virtual bool IsModelControl(int id) => false;

    /// <summary>Decoding state carried from token to token.</summary>
    internal struct DecodeState
    {
        /// <summary>True once any text has been produced (SentencePiece drops the dummy-prefix space only before that; WordPiece puts spaces only after it).</summary>
        public bool Started;
    }

    /// <summary>Appends the UTF-8 bytes <paramref name="id"/> contributes to the decoded text.</summary>
    internal abstract void AppendTokenBytes(int id, bool skipSpecialTokens, ref DecodeState state, List<byte> output);

    internal void CheckId(int id)
    {
        if ((uint)id >= (uint)VocabSize)
            throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} is outside the vocabulary [0, {VocabSize})");
    }

    private protected static void AppendUtf8(string s, List<byte> output)
    {
        Span<byte> buf = s.Length <= 64 ? stackalloc byte[s.Length * 3] : new byte[Encoding.UTF8.GetMaxByteCount(s.Length)];
        int n = Encoding.UTF8.GetBytes(s, buf);
        for (int i = 0; i < n; i++) output.Add(buf[i]);
    }
}

/// <summary>
/// Special-token ids and how encoding wraps text, resolved by <see cref="TokenizerLoader"/> from the
/// model file and tokenizer_config.json / special_tokens_map.json / config.json.
/// </summary>
internal sealed record SpecialTokenIds
{
    public int? Pad { get; init; }
    public int? Eos { get; init; }
    public int? Bos { get; init; }
    public int? Unk { get; init; }
    public int? DecoderStart { get; init; }
    public bool AddBos { get; init; }
    public bool AddEos { get; init; }
    /// <summary>Added tokens split out of the text before the model runs.</summary>
    public IReadOnlyDictionary<string, int> Added { get; init; } = new Dictionary<string, int>();
    /// <summary>Ids placed before the text instead of BOS (tokenizer.json's TemplateProcessing), or null.</summary>
    public int[]? Prefix { get; init; }
    /// <summary>Ids placed after the text instead of EOS, or null.</summary>
    public int[]? Suffix { get; init; }
    /// <summary>Ids skipped when decoding with skipSpecialTokens.</summary>
    public IReadOnlySet<int> SpecialIds { get; init; } = new HashSet<int>();
}
