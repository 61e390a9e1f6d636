using System.Runtime.InteropServices;
using Encore.Formats.Tokenization;

namespace Encore.Generation;

/// <summary>Why a sequence ended.</summary>
public enum FinishReason
{
    /// <summary>It produced an EOS / stop token.</summary>
    Eos,
    /// <summary>Its text reached a stop string.</summary>
    StopString,
    /// <summary>It reached max_new_tokens.</summary>
    Length,
}

/// <summary>Names of <see cref="FinishReason"/> values as clients read them.</summary>
public static class FinishReasons
{
    /// <summary>OpenAI's finish_reason: "stop" for EOS and stop strings, "length" at max_new_tokens.</summary>
    public static string OpenAiName(this FinishReason reason) => reason == FinishReason.Length ? "length" : "stop";

    /// <summary>The same for a sequence that may have none: one cancelled before it ended reads as "stop".</summary>
    public static string OpenAiName(this FinishReason? reason) => (reason ?? FinishReason.Eos).OpenAiName();
}

/// <summary>One generated sequence.</summary>
/// <param name="Tokens">The new tokens (a final EOS included).</param>
/// <param name="Text">Their text (special tokens dropped unless asked; cut before a stop string).</param>
/// <param name="Finish">Why it ended.</param>
/// <param name="Score">
/// Beam search: HF's sequence score, sum log p / length^α. Greedy and sampling: the sum of the
/// model's log-probabilities of the tokens (before processors and warpers). Superposed decoding: the draft's
/// ℓ, the sum of its tokens' log q (tempered top-n probabilities interpolated with the n-gram table).
/// </param>
public sealed record GeneratedSequence(int[] Tokens, string Text, FinishReason Finish, double Score);

/// <summary>What one input produced: its sequences, best first.</summary>
public sealed record GenerationResult(IReadOnlyList<GeneratedSequence> Sequences)
{
    /// <summary>With speculative decoding, what it did over the input's sequences: passes of the model, tokens drafted and accepted; else null.</summary>
    public SpeculativeStats? Speculative { get; init; }

    /// <summary>
    /// With superposed decoding, the decoder passes that produced the input's drafts (the one after the encoder or
    /// the prefill included): one per step for all k drafts. Else null.
    /// </summary>
    public int? SuperposedPasses { get; init; }

    /// <summary>With <see cref="GenerationOptions.EarlyExit"/>, the encoder and decoder layers the input's generation ran; else null.</summary>
    public EarlyExitStats? EarlyExit { get; init; }

    /// <summary>The best sequence's text.</summary>
    public string Text => Sequences[0].Text;

    /// <summary>The best sequence's tokens.</summary>
    public int[] Tokens => Sequences[0].Tokens;
}

/// <summary>
/// A piece of streamed output: one token and the text it completed (empty while a character or a
/// possible stop string is pending). A last chunk with <see cref="Token"/> −1 carries the text held
/// back until the end.
/// </summary>
public readonly record struct GenerationChunk(int Token, string Text)
{
    /// <summary>With speculative decoding, its counts up to this chunk (the last token's chunk has the final ones); else null.</summary>
    public SpeculativeStats? Speculative { get; init; }
}

/// <summary>The tokens of one row while it decodes.</summary>
public sealed class SequenceState
{
    readonly List<int> _tokens;

    /// <summary>A sequence that has seen <paramref name="initial"/> (prompt or decoder start).</summary>
    public SequenceState(IEnumerable<int> initial, int capacity = 0)
    {
        _tokens = [.. initial];
        _tokens.EnsureCapacity(_tokens.Count + capacity);
        InitialLength = _tokens.Count;
    }

    SequenceState(SequenceState other)
    {
        _tokens = new List<int>(other._tokens.Capacity);   // the original's room to grow, so a copy appends without growing either
        _tokens.AddRange(other._tokens);
        InitialLength = other.InitialLength;
        LogProb = other.LogProb;
        Finish = other.Finish;
    }

    /// <summary>Tokens before the first new one.</summary>
    public int InitialLength { get; }

    /// <summary>Every token: the initial ones then the new ones.</summary>
    public ReadOnlySpan<int> Tokens => CollectionsMarshal.AsSpan(_tokens);

    /// <summary>The new tokens.</summary>
    public ReadOnlySpan<int> Generated => Tokens[InitialLength..];

    /// <summary>Count of new tokens.</summary>
    public int GeneratedCount => _tokens.Count - InitialLength;

    /// <summary>Sum of the tokens' log-probabilities.</summary>
    public double LogProb { get; set; }

    /// <summary>Why it ended, or null while running.</summary>
    public FinishReason? Finish { get; set; }

    /// <summary>Appends a new token.</summary>
    public void Append(int token) => _tokens.Add(token);

    /// <summary>A copy (beam search branches).</summary>
    public SequenceState Clone() => new(this);

    /// <summary>Makes this sequence a copy of <paramref name="other"/>, which has as many initial tokens, reusing its storage.</summary>
    internal void CopyFrom(SequenceState other)
    {
        if (other.InitialLength != InitialLength) throw new ArgumentException($"sequences with {InitialLength} and {other.InitialLength} initial tokens", nameof(other));
        _tokens.Clear();
        _tokens.AddRange(CollectionsMarshal.AsSpan(other._tokens));
        LogProb = other.LogProb;
        Finish = other.Finish;
    }
}

/// <summary>When sequences end, and their final text: EOS ids, stop strings, max_new_tokens.</summary>
public sealed class StopCriteria
{
    readonly HashSet<int> _eos;
    readonly string[] _stops;
    readonly TextTokenizer? _tokenizer;
    readonly bool _skipSpecial;

    /// <summary>Criteria for <paramref name="eosTokenIds"/>, <paramref name="stopStrings"/> (need a tokenizer) and <paramref name="maxNewTokens"/>.</summary>
    public StopCriteria(IEnumerable<int> eosTokenIds, IReadOnlyList<string> stopStrings, int maxNewTokens, TextTokenizer? tokenizer, bool skipSpecialTokens = true)
    {
        _eos = [.. eosTokenIds];
        _stops = [.. stopStrings];
        if (_stops.Length > 0 && tokenizer is null) throw new ArgumentException("stop strings need a tokenizer");
        MaxNewTokens = maxNewTokens;
        _tokenizer = tokenizer;
        _skipSpecial = skipSpecialTokens;
        MaxStopLength = _stops.Length == 0 ? 0 : _stops.Max(s => s.Length);
    }

    /// <summary>The EOS ids.</summary>
    public IReadOnlyCollection<int> EosTokenIds => _eos;

    /// <summary>max_new_tokens.</summary>
    public int MaxNewTokens { get; }

    /// <summary>Length of the longest stop string (0 when none): streaming holds back this many characters minus one.</summary>
    public int MaxStopLength { get; }

    /// <summary>True when <paramref name="token"/> ends a sequence.</summary>
    public bool IsEos(int token) => _eos.Contains(token);

    /// <summary>Sets <see cref="SequenceState.Finish"/> when the last token ended the sequence; returns true then.</summary>
    public bool Update(SequenceState s)
    {
        if (s.Finish != null) return true;
        var gen = s.Generated;
        if (gen.Length > 0 && _eos.Contains(gen[^1])) s.Finish = FinishReason.Eos;
        else if (_stops.Length > 0 && StopIndex(DecodeRaw(gen)) >= 0) s.Finish = FinishReason.StopString;
        else if (gen.Length >= MaxNewTokens) s.Finish = FinishReason.Length;
        return s.Finish != null;
    }

    /// <summary>The final text of <paramref name="generated"/>: a trailing EOS dropped, cut before the first stop string.</summary>
    public string Text(ReadOnlySpan<int> generated)
    {
        string text = DecodeRaw(generated);
        int stop = StopIndex(text);
        return stop >= 0 ? text[..stop] : text;
    }

    /// <summary>Where the earliest stop string starts in <paramref name="text"/>, or −1.</summary>
    public int StopIndex(string text)
    {
        int best = -1;
        foreach (var s in _stops)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (best < 0 || i < best)) best = i;
        }
        return best;
    }

    string DecodeRaw(ReadOnlySpan<int> generated)
    {
        if (_tokenizer is null) return string.Empty;
        if (generated.Length > 0 && _eos.Contains(generated[^1])) generated = generated[..^1];
        return _tokenizer.Decode(generated, _skipSpecial);
    }

    /// <summary>The result record of a finished sequence.</summary>
    public GeneratedSequence ToResult(SequenceState s, double score) =>
        new(s.Generated.ToArray(), Text(s.Generated), s.Finish ?? FinishReason.Length, score);
}
