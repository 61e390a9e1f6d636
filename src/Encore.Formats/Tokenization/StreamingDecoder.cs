using System.Text;

namespace Encore.Formats.Tokenization;

/// <summary>
/// Incremental detokenizer for streaming generation. Each id's bytes go through a stateful UTF-8
/// decoder, which holds back a multi-byte character (a byte-fallback or byte-level token may carry
/// only part of one) until its last byte arrives, and never splits a surrogate pair. Concatenating
/// every <see cref="Push"/> result and the final <see cref="Flush"/> equals
/// <see cref="TextTokenizer.Decode"/> of all the ids.
/// </summary>
public sealed class StreamingDecoder
{
    readonly TextTokenizer _tokenizer;
    readonly bool _skipSpecialTokens;
    readonly Decoder _utf8 = new UTF8Encoding(false, false).GetDecoder();
    readonly List<byte> _bytes = new(16);
    char[] _chars = new char[32];
    TextTokenizer.DecodeState _state;

    internal StreamingDecoder(TextTokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Feeds one id; returns the text completed by it (often empty while a character is still partial).</summary>
    public string Push(int id)
    {
        _tokenizer.CheckId(id);
        _bytes.Clear();
        _tokenizer.AppendTokenBytes(id, _skipSpecialTokens, ref _state, _bytes);
        return Convert(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_bytes), flush: false);
    }

    /// <summary>Ends the stream: returns what is still held back (a truncated character becomes U+FFFD, as in <see cref="TextTokenizer.Decode"/>) and resets the decoder.</summary>
    public string Flush()
    {
        var s = Convert([], flush: true);
        _state = default;
        return s;
    }

    string Convert(ReadOnlySpan<byte> bytes, bool flush)
    {
        int max = _utf8.GetCharCount(bytes, flush: false) + 4;
        if (_chars.Length < max) _chars = new char[Math.Max(max, _chars.Length * 2)];
        int n = _utf8.GetChars(bytes, _chars, flush);
        return n == 0 ? string.Empty : new string(_chars, 0, n);
    }
}
