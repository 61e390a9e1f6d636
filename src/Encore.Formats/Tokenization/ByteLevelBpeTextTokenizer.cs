using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Encore.Formats.Tokenization;

/// <summary>One entry of tokenizer.json's added_tokens: matched whole in the text before pre-tokenization.</summary>
/// <param name="Content">The literal text.</param>
/// <param name="Id">Its id.</param>
/// <param name="Special">True for control tokens (dropped when decoding with skipSpecialTokens).</param>
public readonly record struct AddedToken(string Content, int Id, bool Special);

/// <summary>The data of a byte-level BPE model, as tokenizer.json holds it.</summary>
internal sealed record ByteLevelBpeData(
    Dictionary<string, int> Vocab,
    List<(string Left, string Right)> Merges,
    List<AddedToken> Added,
    string Pattern,
    bool Nfc,
    bool AddPrefixSpace,
    IReadOnlyList<string>? LStrip = null);

/// <summary>
/// GPT-2-style byte-level BPE (GPT-2, Qwen2, Llama 3): the text is split by a regex, each piece's
/// UTF-8 bytes are spelled in <see cref="ByteLevel"/>'s alphabet and merged by rank. Encoding runs on
/// Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>; decoding maps token characters back to bytes.
/// </summary>
public sealed class ByteLevelBpeTextTokenizer : TextTokenizer
{
    readonly BpeTokenizer _inner;
    readonly ByteLevelBpeData _data;
    readonly string?[] _idToToken;
    readonly byte[]?[] _bytes;
    readonly Dictionary<string, int> _tokenToId;
    readonly int _vocabSize;

    internal ByteLevelBpeTextTokenizer(string source, ByteLevelBpeData data, SpecialTokenIds special) : base(special)
    {
        _data = data;
        int max = -1;
        foreach (var id in data.Vocab.Values) max = Math.Max(max, id);
        foreach (var a in data.Added) max = Math.Max(max, a.Id);
        _vocabSize = max + 1;
        _idToToken = new string?[_vocabSize];
        _bytes = new byte[]?[_vocabSize];
        _tokenToId = new Dictionary<string, int>(data.Vocab.Count + data.Added.Count, StringComparer.Ordinal);
        foreach (var (tok, id) in data.Vocab)
        {
            _idToToken[id] = tok;
            _tokenToId[tok] = id;
            _bytes[id] = TokenBytes(tok);
        }
        foreach (var a in data.Added)
        {
            _idToToken[a.Id] = a.Content;
            _tokenToId[a.Content] = a.Id;
            _bytes[a.Id] = Encoding.UTF8.GetBytes(a.Content);
        }

        var added = data.Added.ToDictionary(a => a.Content, a => a.Id, StringComparer.Ordinal);
        Regex regex;
        try
        {
            regex = new Regex(data.Pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(10));
        }
        catch (ArgumentException e)
        {
            throw new CheckpointFormatException($"{source}: the pre-tokenizer regex is not valid for .NET ({e.Message})", e);
        }
        // Tokens that merge to no vocabulary entry would make the library throw; they are checked here.
        var vocabForLib = new Dictionary<string, int>(data.Vocab, StringComparer.Ordinal);
        foreach (var a in data.Added) vocabForLib.Remove(a.Content);
        var options = new BpeOptions(vocabForLib)
        {
            Merges = data.Merges.Select(m => m.Left + " " + m.Right),
            ByteLevel = true,
            PreTokenizer = new SplitPreTokenizer(regex, added.Keys),
            // An empty added token can never be cut out of the text (see SplitPreTokenizer).
            SpecialTokens = added.Count == 0 ? null : added.Where(a => a.Key.Length > 0).ToDictionary(StringComparer.Ordinal),
            Normalizer = data.Nfc ? NfcNormalizer.Instance : null,
        };
        try
        {
            _inner = BpeTokenizer.Create(options);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw new CheckpointFormatException($"{source}: the BPE model could not be built ({e.Message})", e);
        }
        Source = source;
    }

    /// <summary>Where the model came from (a file, or "trainer").</summary>
    public string Source { get; }

    /// <summary>The Microsoft.ML.Tokenizers model doing the encoding.</summary>
    public BpeTokenizer Inner => _inner;

    /// <summary>The merges, highest priority first, in byte-level spelling.</summary>
    public IReadOnlyList<(string Left, string Right)> Merges => _data.Merges;

    /// <summary>The added tokens.</summary>
    public IReadOnlyList<AddedToken> Added => _data.Added;

    /// <summary>The pre-tokenizer regex.</summary>
    public string Pattern => _data.Pattern;

    /// <inheritdoc/>
    public override TokenizerKind Kind => TokenizerKind.ByteLevelBpe;

    /// <inheritdoc/>
    public override int VocabSize => _vocabSize;

    /// <inheritdoc/>
    public override int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;

    /// <inheritdoc/>
    public override string? IdToToken(int id) => (uint)id < (uint)_vocabSize ? _idToToken[id] : null;

    private protected override int[] EncodeText(string text)
    {
        if (text.Length == 0) return [];
        // Added tokens with lstrip (BART's and RoBERTa's <mask>) take the whitespace before them: "a <mask>" is a, <mask>.
        if (_data.LStrip is { Count: > 0 } strip) text = StripBefore(text, strip);
        if (text.Length == 0) return [];
        // ByteLevel(add_prefix_space): a leading space so the first word is spelled as mid-sentence (RoBERTa).
        if (_data.AddPrefixSpace && !char.IsWhiteSpace(text[0])) text = " " + text;
        return _inner.EncodeToIds(text).ToArray();
    }

    // Removes the whitespace right before each occurrence of the tokens (tokenizers' AddedToken lstrip).
    static string StripBefore(string text, IReadOnlyList<string> tokens)
    {
        StringBuilder? sb = null;
        int copied = 0;
        for (int i = 0; i < text.Length; i++)
        {
            foreach (var token in tokens)
            {
                if (token.Length == 0 || !text.AsSpan(i).StartsWith(token, StringComparison.Ordinal)) continue;
                int start = i;
                while (start > copied && char.IsWhiteSpace(text[start - 1])) start--;
                if (start < i)
                {
                    sb ??= new StringBuilder(text.Length);
                    sb.Append(text, copied, start - copied);
                    copied = i;
                }
                i += token.Length - 1;
                break;
            }
        }
        if (sb is null) return text;
        sb.Append(text, copied, text.Length - copied);
        return sb.ToString();
    }

    internal override void AppendTokenBytes(int id, bool skipSpecialTokens, ref DecodeState state, List<byte> output)
    {
        if (skipSpecialTokens && Special.SpecialIds.Contains(id)) return;
        var b = _bytes[id];
        if (b is null) return; // a hole in the id range: no token has it
        output.AddRange(b);
        state.Started = true;
    }

    static byte[] TokenBytes(string token)
    {
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            // A character outside the alphabet (hand-edited vocabularies have them) decodes as itself.
            if (!ByteLevel.TryCharToByte(token[i], out bytes[i])) return Encoding.UTF8.GetBytes(token);
        }
        return bytes;
    }

    /// <summary>
    /// Writes <c>tokenizer.json</c> (Hugging Face tokenizers layout: BPE model with vocab and merges,
    /// added_tokens, a Split + ByteLevel pre-tokenizer and a ByteLevel decoder) and
    /// <c>tokenizer_config.json</c> with the special-token roles into <paramref name="dir"/>, each atomically.
    /// </summary>
    public void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.Write(Path.Combine(dir, TokenizerLoader.TokenizerJson), s =>
        {
            using var w = new Utf8JsonWriter(s, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            foreach (var a in _data.Added)
            {
                w.WriteStartObject();
                w.WriteNumber("id", a.Id);
                w.WriteString("content", a.Content);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", _data.LStrip?.Contains(a.Content) == true);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", false);
                w.WriteBoolean("special", a.Special);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (_data.Nfc)
            {
                w.WriteStartObject("normalizer");
                w.WriteString("type", "NFC");
                w.WriteEndObject();
            }
            else
            {
                w.WriteNull("normalizer");
            }
            w.WriteStartObject("pre_tokenizer");
            w.WriteString("type", "Sequence");
            w.WriteStartArray("pretokenizers");
            w.WriteStartObject();
            w.WriteString("type", "Split");
            w.WriteStartObject("pattern");
            w.WriteString("Regex", _data.Pattern);
            w.WriteEndObject();
            w.WriteString("behavior", "Isolated");
            w.WriteBoolean("invert", false);
            w.WriteEndObject();
            w.WriteStartObject();
            w.WriteString("type", "ByteLevel");
            w.WriteBoolean("add_prefix_space", _data.AddPrefixSpace);
            w.WriteBoolean("trim_offsets", false);
            w.WriteBoolean("use_regex", false);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteNull("post_processor");
            w.WriteStartObject("decoder");
            w.WriteString("type", "ByteLevel");
            w.WriteBoolean("add_prefix_space", true);
            w.WriteBoolean("trim_offsets", true);
            w.WriteBoolean("use_regex", true);
            w.WriteEndObject();
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            w.WriteNull("unk_token");
            w.WriteBoolean("fuse_unk", false);
            w.WriteBoolean("byte_fallback", false);
            w.WriteStartObject("vocab");
            foreach (var (tok, id) in _data.Vocab.OrderBy(kv => kv.Value)) w.WriteNumber(tok, id);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var (l, r) in _data.Merges)
            {
                w.WriteStartArray();
                w.WriteStringValue(l);
                w.WriteStringValue(r);
                w.WriteEndArray();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        });
        AtomicFile.Write(Path.Combine(dir, TokenizerLoader.TokenizerConfigJson), s =>
        {
            using var w = new Utf8JsonWriter(s, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
            w.WriteStartObject();
            foreach (var (key, id) in new[] { ("bos_token", BosId), ("eos_token", EosId), ("pad_token", PadId), ("unk_token", UnkId) })
            {
                if (id is { } i) w.WriteString(key, _idToToken[i]);
                else w.WriteNull(key);
            }
            w.WriteBoolean("add_bos_token", Special.AddBos);
            w.WriteBoolean("add_eos_token", Special.AddEos);
            w.WriteEndObject();
        });
    }

    /// <summary>Unicode NFC, as tokenizer.json's {"type": "NFC"} normalizer (Qwen2).</summary>
    sealed class NfcNormalizer : Normalizer
    {
        public static readonly NfcNormalizer Instance = new();

        public override string Normalize(string original) => UnicodeNormalization.Nfc(original);

        public override string Normalize(ReadOnlySpan<char> original) => UnicodeNormalization.Nfc(original.ToString());
    }
}
