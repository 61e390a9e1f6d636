using Encore.Formats.Tokenization;

namespace Encore.Generation;

/// <summary>
/// The text of one sequence as its tokens arrive: the tokenizer's <see cref="StreamingDecoder"/>
/// never splits a multi-byte character, and with stop strings the text that could still become one
/// is held back (a stop string completed by a later token starts at most longest − 1 characters
/// before the current end). The pieces plus <see cref="Finish"/> concatenate to the sequence's final
/// text (<see cref="StopCriteria.Text"/>), so streamed and non-streamed output agree.
/// </summary>
public sealed class StreamingText
{
    readonly StopCriteria _stop;
    readonly StreamingDecoder? _decoder;
    readonly System.Text.StringBuilder _text = new();
    readonly int _holdBack;
    int _emitted;

    /// <summary>Text for a sequence ending by <paramref name="stop"/>; without a tokenizer every piece is empty.</summary>
    public StreamingText(StopCriteria stop, TextTokenizer? tokenizer, bool skipSpecialTokens)
    {
        _stop = stop;
        _decoder = tokenizer?.CreateStreamingDecoder(skipSpecialTokens);
        _holdBack = Math.Max(0, stop.MaxStopLength - 1);
    }

    /// <summary>Adds a token; returns the text that is now final (possibly empty).</summary>
    public string Push(int token)
    {
        if (_decoder != null && !_stop.IsEos(token)) _text.Append(_decoder.Push(token));
        int safe = _text.Length - _holdBack;
        if (_stop.MaxStopLength > 0 && _stop.StopIndex(_text.ToString()) is int stop and >= 0) safe = Math.Min(safe, stop);
        safe = Math.Max(_emitted, safe);
        // Never end a piece between the halves of a surrogate pair.
        if (safe > _emitted && safe < _text.Length && char.IsHighSurrogate(_text[safe - 1])) safe--;
        string piece = _text.ToString(_emitted, safe - _emitted);
        _emitted = safe;
        return piece;
    }

    /// <summary>The rest of <paramref name="finalText"/> not yet returned (text held back until the end).</summary>
    public string Finish(string finalText) => finalText.Length > _emitted ? finalText[_emitted..] : string.Empty;
}
