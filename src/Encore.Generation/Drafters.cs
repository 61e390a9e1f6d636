// The sources of draft tokens for speculative decoding (see Speculation.cs): prompt lookup, which
// copies what followed the sequence's last few tokens in the prompt, and a small draft model.
using Encore.Models;

namespace Encore.Generation;

/// <summary>Proposes the tokens a speculative round verifies.</summary>
internal interface IDrafter : IDisposable
{
    /// <summary>True when each draft is drawn from a distribution q the drafter writes (a draft model while sampling); false for point-mass drafts.</summary>
    bool DrawsFromDistributions { get; }

    /// <summary>
    /// Writes up to <paramref name="count"/> tokens to follow <paramref name="state"/>'s tokens into
    /// <paramref name="drafts"/> and, when <paramref name="q"/> is given, each one's distribution into
    /// q[i] (V); returns how many. A draft equal to an EOS id is the last.
    /// </summary>
    int Propose(SequenceState state, int count, Span<int> drafts, double[][]? q);

    /// <summary>After verification: the first <paramref name="accepted"/> of the <paramref name="proposed"/> drafts were kept.</summary>
    void Verified(int proposed, int accepted);
}

/// <summary>
/// Prompt-lookup drafts (Saxena 2023, github.com/apoorvumang/prompt-lookup-decoding; HF
/// PromptLookupCandidateGenerator): for n = max, …, 1, the last n tokens of the decoder are looked up
/// first in the source (an encoder–decoder's encoder input) and then in the decoder's own tokens (a
/// decoder-only model's prompt and output, where the n-gram's own place does not count); the first
/// occurrence followed by at least one token gives the draft, the tokens that follow it there, up to the
/// count asked and up to the end of the text it was found in. No match, no draft.
/// </summary>
internal sealed class PromptLookupDrafter(int[]? source, int maxNgram, IReadOnlyCollection<int> eos) : IDrafter
{
    public bool DrawsFromDistributions => false;

    public int Propose(SequenceState state, int count, Span<int> drafts, double[][]? q)
    {
        var tokens = state.Tokens;
        for (int n = Math.Min(maxNgram, tokens.Length); n >= 1; n--)
        {
            var suffix = tokens[^n..];
            int found = source is null ? -1 : Find(source, suffix, source.Length);
            ReadOnlySpan<int> follow;
            if (found >= 0) follow = source.AsSpan(found + n);
            else
            {
                // The n-gram's own occurrence ends the tokens; an earlier one must leave a token after it.
                found = Find(tokens, suffix, tokens.Length - 1);
                if (found < 0) continue;
                follow = tokens[(found + n)..];
            }
            int m = Math.Min(count, follow.Length);
            for (int i = 0; i < m; i++)
            {
                drafts[i] = follow[i];
                if (eos.Contains(follow[i])) return i + 1;
            }
            return m;
        }
        return 0;
    }

    static int Find(ReadOnlySpan<int> text, ReadOnlySpan<int> ngram, int end)
    {
        // First start i with text[i .. i + n) = ngram and i + n < end (a token follows it before end).
        for (int i = 0; i + ngram.Length < end; i++)
            if (text.Slice(i, ngram.Length).SequenceEqual(ngram)) return i;
        return -1;
    }

    public void Verified(int proposed, int accepted) { }

    public void Dispose() { }
}

/// <summary>
/// Drafts from a smaller model with the same tokenizer, decoding greedily or sampling exactly as the
/// sequence does (its processors and warpers, its generator). Its one-row session is created at the
/// first proposal and follows the sequence: each proposal first feeds, in one pass, the tokens the
/// sequence gained since the draft last saw it, and after verification the draft forgets its rejected tokens.
/// </summary>
internal sealed class DraftModelDrafter : IDrafter
{
    readonly LanguageModel _draft;
    readonly int[] _prompt;
    readonly int _start, _maxNewTokens;
    readonly KvCacheDType _kvCacheDType;
    readonly IReadOnlyList<ILogitsProcessor> _processors, _warpers;
    readonly Xoshiro256? _rng;
    readonly IReadOnlyCollection<int> _eos;
    readonly float[] _scores;
    int[] _history = [];
    readonly int[] _one = new int[1];
    GenerationSession? _session;
    SessionTarget? _target;
    int _fedAtProposal;

    public DraftModelDrafter(LanguageModel draft, int[] prompt, int decoderStartTokenId, int maxNewTokens, KvCacheDType kvCacheDType,
        IReadOnlyList<ILogitsProcessor> processors, IReadOnlyList<ILogitsProcessor> warpers, Xoshiro256? rng, IReadOnlyCollection<int> eos)
    {
        _draft = draft;
        _prompt = prompt;
        _start = decoderStartTokenId;
        _maxNewTokens = maxNewTokens;
        _kvCacheDType = kvCacheDType;
        _processors = processors;
        _warpers = rng is null ? [] : warpers;
        _rng = rng;
        _eos = eos;
        _scores = new float[draft.Config.VocabSize];
    }

    public bool DrawsFromDistributions => _rng != null;

    public int Propose(SequenceState state, int count, Span<int> drafts, double[][]? q)
    {
        _session ??= GenerationSession.Create(_draft, [_prompt], 1, _maxNewTokens, _start, _kvCacheDType);
        _target ??= new SessionTarget(_session);
        var tokens = state.Tokens;
        int fed = _session.Cache.Length;
        if (fed >= tokens.Length) throw new InvalidOperationException($"the draft has seen {fed} tokens of a sequence of {tokens.Length}");
        int v = _scores.Length;
        var logits = _target.Feed(tokens[fed..]);
        logits = logits[^v..];
        _fedAtProposal = tokens.Length;
        // The processors see the drafts as the sequence would hold them.
        if (_history.Length < tokens.Length + count) _history = new int[Math.Max(2 * _history.Length, tokens.Length + count + _maxNewTokens)];
        tokens.CopyTo(_history);
        for (int i = 0; i < count; i++)
        {
            logits.CopyTo(_scores);
            var history = _history.AsSpan(0, tokens.Length + i);
            for (int j = 0; j < _processors.Count; j++) _processors[j].Process(history, state.GeneratedCount + i, _scores);
            int token;
            if (_rng is null) token = Sampling.ArgMax(_scores);
            else
            {
                for (int j = 0; j < _warpers.Count; j++) _warpers[j].Process([], 0, _scores);
                Sampling.Softmax(_scores, q![i]);
                token = Sampling.DrawWeighted(q[i], _rng);
                if (token < 0) throw new InvalidOperationException("the draft's processed scores leave no token to draw");
            }
            drafts[i] = token;
            _history[tokens.Length + i] = token;
            if (_eos.Contains(token) || i == count - 1) return i + 1;
            _one[0] = token;
            logits = _target.Feed(_one);
        }
        return count;
    }

    public void Verified(int proposed, int accepted)
    {
        // The draft fed every draft but the last; it keeps the accepted ones among them.
        if (_session is null || proposed == 0) return;
        int keep = _fedAtProposal + Math.Min(accepted, proposed - 1);
        if (keep < _session.Cache.Length) _session.Truncate(keep);
    }

    public void Dispose() => _session?.Dispose();
}
