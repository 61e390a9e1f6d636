using System.Globalization;
using System.Text;

namespace Encore.Formats.Tokenization;

/// <summary>
/// BERT's WordPiece (google-research/bert tokenization.py): basic tokenization (optional lowercasing
/// and accent stripping, CJK characters and punctuation split apart), then greedy longest-match
/// subwords with "##" continuations. Written here rather than on Microsoft.ML.Tokenizers'
/// BertTokenizer because 2.0.1 drops symbol characters BERT keeps as punctuation ('$', '+', '^' …)
/// and strips accents through string.Normalize, a no-op under InvariantGlobalization. Decoding
/// joins tokens with spaces and glues "##" pieces on, as Hugging Face's convert_tokens_to_string
/// does (without its optional clean-up of spaces before punctuation, which depends on the next
/// token and so cannot stream).
/// </summary>
public sealed class WordPieceTextTokenizer : TextTokenizer
{
    readonly string[] _idToToken;
    readonly Dictionary<string, int> _tokenToId;
    readonly int _cls, _sep;
    readonly bool _lower, _stripAccents, _cjk;

    internal WordPieceTextTokenizer(string path, string[] vocab, int cls, int sep, SpecialTokenIds special, bool lower, bool stripAccents, bool cjk) : base(special)
    {
        _cjk = cjk;
        _lower = lower;
        _stripAccents = stripAccents;
        Path = path;
        _idToToken = vocab;
        _tokenToId = new Dictionary<string, int>(vocab.Length, StringComparer.Ordinal);
        for (int i = 0; i < vocab.Length; i++) _tokenToId.TryAdd(vocab[i], i);
        _cls = cls;
        _sep = sep;
    }

    /// <summary>The vocab.txt read.</summary>
    public string Path { get; }

    /// <summary>The [CLS] id placed first by <see cref="TextTokenizer.Encode"/>.</summary>
    public int ClsId => _cls;

    /// <summary>The [SEP] id placed last by <see cref="TextTokenizer.Encode"/>.</summary>
    public int SepId => _sep;

    /// <inheritdoc/>
    public override TokenizerKind Kind => TokenizerKind.WordPiece;

    /// <inheritdoc/>
    public override int VocabSize => _idToToken.Length;

    /// <inheritdoc/>
    public override int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;

    /// <inheritdoc/>
    public override string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    private protected override int[] EncodeText(string text)
    {
        if (text.Length == 0) return [];
        var ids = new List<int>();
        // Special tokens written in the text are kept whole (Hugging Face's never_split).
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] != '[') continue;
            int close = text.IndexOf(']', i);
            if (close < 0) break;
            var name = text[i..(close + 1)];
            if (!Special.Added.TryGetValue(name, out int sid)) continue;
            EncodePlain(text[start..i], ids);
            ids.Add(sid);
            start = i = close + 1;
            i--;
        }
        EncodePlain(text[start..], ids);
        return ids.ToArray();
    }

    void EncodePlain(string text, List<int> ids)
    {
        if (text.Length == 0) return;
        // Microsoft.ML.Tokenizers 2.0.1's BertTokenizer drops symbol characters such as '$', '+', '^'
        // that BERT splits off as punctuation, so the basic tokenizer and WordPiece run here.
        if (_lower) text = text.ToLowerInvariant();
        if (_stripAccents) text = UnicodeNormalization.StripAccents(text);
        foreach (var word in BasicTokenize(text)) WordPiece(word, ids);
    }

    /// <summary>tokenization.py BasicTokenizer after casing: drop controls, split on whitespace, isolate CJK ideographs and punctuation.</summary>
    IEnumerable<string> BasicTokenize(string text)
    {
        var cur = new StringBuilder();
        for (int i = 0; i < text.Length; i++)
        {
            // By code point: tokenization.py sees astral characters whole, not as surrogates.
            int n = char.IsSurrogatePair(text, i) ? 2 : 1;
            int cp = n == 2 ? char.ConvertToUtf32(text[i], text[i + 1]) : text[i];
            var cat = n == 2 || !char.IsSurrogate(text[i]) ? CharUnicodeInfo.GetUnicodeCategory(cp) : UnicodeCategory.Surrogate;
            bool space = cp is ' ' or '\t' or '\n' or '\r' || cat == UnicodeCategory.SpaceSeparator;
            // _clean_text drops NUL, U+FFFD and control characters (categories C*: Cc, Cf, Co, Cn; a lone surrogate too).
            if (!space && (cp is 0 or 0xFFFD || cat is UnicodeCategory.Control or UnicodeCategory.Format
                    or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned or UnicodeCategory.Surrogate))
            {
                i += n - 1;
                continue;
            }
            if (space)
            {
                if (cur.Length > 0) { yield return cur.ToString(); cur.Clear(); }
                continue;
            }
            if ((_cjk && IsCjk(cp)) || IsPunctuation(cp, cat))
            {
                if (cur.Length > 0) { yield return cur.ToString(); cur.Clear(); }
                yield return text.Substring(i, n);
            }
            else
            {
                cur.Append(text, i, n);
            }
            i += n - 1;
        }
        if (cur.Length > 0) yield return cur.ToString();
    }

    // _is_punctuation: every non-alphanumeric ASCII symbol, plus Unicode categories P*.
    static bool IsPunctuation(int cp, UnicodeCategory cat) =>
        cp is >= '!' and <= '/' or >= ':' and <= '@' or >= '[' and <= '`' or >= '{' and <= '~'
        || cat is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
            or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;

    // tokenization.py _is_chinese_char: the CJK Unified Ideographs blocks.
    static bool IsCjk(int cp) => cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF
        or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;

    /// <summary>Greedy longest-match-first WordPiece; a word with no segmentation (or over 100 characters) is one [UNK].</summary>
    void WordPiece(string word, List<int> ids)
    {
        if (word.Length > 100)
        {
            ids.Add(Special.Unk!.Value);
            return;
        }
        int mark = ids.Count, start = 0;
        while (start < word.Length)
        {
            int end = word.Length, found = -1;
            while (start < end)
            {
                var sub = start == 0 ? word[..end] : "##" + word[start..end];
                if (_tokenToId.TryGetValue(sub, out found)) break;
                found = -1;
                end--;
            }
            if (found < 0)
            {
                ids.RemoveRange(mark, ids.Count - mark);
                ids.Add(Special.Unk!.Value);
                return;
            }
            ids.Add(found);
            start = end;
        }
    }

    private protected override (int[] Prefix, int[] Suffix) SpecialWrapping() => ([_cls], [_sep]);

    internal override void AppendTokenBytes(int id, bool skipSpecialTokens, ref DecodeState state, List<byte> output)
    {
        if (skipSpecialTokens && Special.SpecialIds.Contains(id)) return;
        var tok = _idToToken[id];
        if (tok.StartsWith("##", StringComparison.Ordinal) && state.Started)
        {
            AppendUtf8(tok[2..], output);
            return;
        }
        if (state.Started) output.Add((byte)' ');
        AppendUtf8(tok, output);
        state.Started = true;
    }
}
