// Speculative decoding (Leviathan, Kalman and Matias 2023, "Fast Inference from Transformers via
// Speculative Decoding", arXiv 2211.17192; Chen et al. 2023, arXiv 2302.01318): a cheap source drafts K
// tokens, the model checks them all in one decoder pass over K + 1 positions, keeps the longest prefix
// it agrees with and then adds a token of its own, so one pass of the model yields 1 to K + 1 tokens.
//
// Greedy: a draft is kept when it is the model's choice, so the output is plain greedy decoding's.
// Sampling: a draft x drawn from q is kept with probability min(1, p(x)/q(x)); after a rejection the next
// token is drawn from normalize(max(0, p − q)), and together the two give exactly p (Leviathan et al.,
// Appendix A.1). A prompt-lookup draft is a point mass, q(x) = 1: it is kept with probability p(x), and a
// rejection draws from p without x. p and q are the distributions plain decoding draws from: the
// processors see the sequence as it is when the token is chosen (drafts before it included), then the
// warpers reshape the scores. Every processor and warper is a function of the tokens so far and the
// scores, so each applies to p and q exactly as it does in plain decoding.
using Encore.Models;

namespace Encore.Generation;

/// <summary>What speculative decoding did for one request.</summary>
/// <param name="Tokens">Tokens generated.</param>
/// <param name="TargetPasses">
/// Decoder passes of the model, counting the one that gave the first token's logits (after the encoder
/// or the prefill): plain decoding makes one pass per token.
/// </param>
/// <param name="Drafted">Draft tokens proposed for verification.</param>
/// <param name="Accepted">Draft tokens the model kept.</param>
public readonly record struct SpeculativeStats(int Tokens, int TargetPasses, int Drafted, int Accepted)
{
    /// <summary>Tokens per pass of the model (1 for plain decoding).</summary>
    public double TokensPerPass => TargetPasses == 0 ? 0 : (double)Tokens / TargetPasses;

    /// <summary>Accepted ÷ drafted; null when nothing was drafted.</summary>
    public double? AcceptanceRate => Drafted == 0 ? null : (double)Accepted / Drafted;

    /// <summary>The sums of two requests' counts.</summary>
    public static SpeculativeStats operator +(SpeculativeStats a, SpeculativeStats b) =>
        new(a.Tokens + b.Tokens, a.TargetPasses + b.TargetPasses, a.Drafted + b.Drafted, a.Accepted + b.Accepted);
}

/// <summary>The model side of one speculatively decoded sequence: a decoder that takes several tokens per pass and forgets the last ones.</summary>
internal interface ISpeculativeTarget
{
    /// <summary>Feeds <paramref name="tokens"/> in one pass; returns the logits after each, (t, V), valid until the next call.</summary>
    ReadOnlySpan<float> Feed(ReadOnlySpan<int> tokens);

    /// <summary>Forgets the last <paramref name="count"/> tokens fed.</summary>
    void Forget(int count);
}

/// <summary>A one-row <see cref="GenerationSession"/> as the model side of speculative decoding.</summary>
internal sealed class SessionTarget(GenerationSession session) : ISpeculativeTarget
{
    float[] _logits = [];

    public ReadOnlySpan<float> Feed(ReadOnlySpan<int> tokens)
    {
        int n = tokens.Length * session.VocabSize;
        if (_logits.Length < n) _logits = new float[n];
        session.Extend(tokens, _logits);
        return _logits.AsSpan(0, n);
    }

    public void Forget(int count) => session.Truncate(session.Cache.Length - count);
}

/// <summary>
/// A decoder that may fix several tokens of one sequence per pass of the model: speculative decoding
/// (<see cref="SpeculativeDecoder"/>) or lexical-unit decoding (<see cref="LexicalUnitDecoder"/>). A round
/// chooses the next token from the logits at hand as plain decoding does, then fixes what it can after it
/// in one pass; between rounds every fixed token is fed and the logits after the last one are at hand.
/// </summary>
internal abstract class MultiTokenDecoder(int vocabSize, IReadOnlyList<ILogitsProcessor> processors, IReadOnlyList<ILogitsProcessor> warpers,
    Xoshiro256? rng, StopCriteria stop) : IDisposable
{
    /// <summary>The sequence's stop criteria.</summary>
    protected StopCriteria Stop { get; } = stop;
    /// <summary>V.</summary>
    protected readonly int Vocab = vocabSize;
    /// <summary>The processors plain decoding applies before a choice.</summary>
    protected readonly IReadOnlyList<ILogitsProcessor> Processors = processors;
    /// <summary>The warpers of sampling (none when greedy).</summary>
    protected readonly IReadOnlyList<ILogitsProcessor> Warpers = rng is null ? [] : warpers;
    /// <summary>The sample stream; null when greedy.</summary>
    protected readonly Xoshiro256? Rng = rng;
    /// <summary>(V) scratch scores.</summary>
    protected readonly float[] Scores = new float[vocabSize];
    /// <summary>(V) scratch probabilities.</summary>
    protected readonly double[] P = new double[vocabSize];

    /// <summary>The counts so far.</summary>
    public abstract SpeculativeStats Stats { get; }

    /// <summary>Counts a pass of the model made outside a round (a plain batched step).</summary>
    public abstract void CountPass();

    /// <summary>Chooses and appends the next token from <paramref name="logits"/> (V).</summary>
    public abstract int Choose(SequenceState state, ReadOnlySpan<float> logits);

    /// <summary>
    /// The rest of a round after its first token (the last of <paramref name="state"/>, not yet fed): fixes
    /// what follows in one pass of <paramref name="target"/>, appending it to <paramref name="state"/> and to
    /// <paramref name="fixedTokens"/>. On return the sequence has finished, or every token is fed and
    /// <paramref name="next"/> holds the logits after the last one.
    /// </summary>
    public abstract void DraftAndVerify(SequenceState state, Span<float> next, ISpeculativeTarget target, List<int> fixedTokens);

    /// <summary>
    /// One round: chooses the next token from <paramref name="next"/> (the logits after every token fed),
    /// then <see cref="DraftAndVerify"/>. <paramref name="fixedTokens"/> receives the tokens appended to
    /// <paramref name="state"/>.
    /// </summary>
    public void Round(SequenceState state, Span<float> next, ISpeculativeTarget target, List<int> fixedTokens)
    {
        fixedTokens.Clear();
        fixedTokens.Add(Choose(state, next));
        if (Stop.Update(state)) return;
        DraftAndVerify(state, next, target, fixedTokens);
    }

    /// <inheritdoc/>
    public abstract void Dispose();
}

/// <summary>
/// The speculative state of one sequence and its rounds: choose the next token from the model's
/// logits, draft after it, verify the drafts in one pass, keep the accepted ones (see the file header).
/// Between rounds the sequence is always at the same point as in plain decoding: every token fed, the
/// logits after the last one at hand, so a round and a plain step can alternate (see <see cref="BatchDecoder"/>).
/// </summary>
internal sealed class SpeculativeDecoder : MultiTokenDecoder
{
    readonly IDrafter _drafter;
    readonly int _draftTokens;
    readonly int[] _drafts, _feed;
    readonly double[][]? _q;             // (K, V): the drafts' distributions, when drawn from one
    readonly double[] _residualQ;        // (V): q of the draft rejected last, when it had one
    bool _residual;                      // the next choice draws from normalize(max(0, p − q)) …
    int _rejectedToken = -1;             // … or, after a rejected point-mass draft, from p without it
    SpeculativeStats _stats;

    public SpeculativeDecoder(IDrafter drafter, int draftTokens, int vocabSize, IReadOnlyList<ILogitsProcessor> processors,
        IReadOnlyList<ILogitsProcessor> warpers, Xoshiro256? rng, StopCriteria stop) : base(vocabSize, processors, warpers, rng, stop)
    {
        _drafter = drafter;
        _draftTokens = draftTokens;
        _drafts = new int[draftTokens];
        _feed = new int[draftTokens + 1];
        _residualQ = rng != null && drafter.DrawsFromDistributions ? new double[vocabSize] : [];
        if (rng != null && drafter.DrawsFromDistributions) _q = Enumerable.Range(0, draftTokens).Select(_ => new double[vocabSize]).ToArray();
        // The pass that gave the first token's logits (encoder and first step, or prefill).
        _stats = new SpeculativeStats(0, 1, 0, 0);
    }

    /// <inheritdoc/>
    public override SpeculativeStats Stats => _stats;

    /// <inheritdoc/>
    public override void CountPass() => _stats = _stats with { TargetPasses = _stats.TargetPasses + 1 };

    /// <summary>
    /// Chooses and appends the next token from <paramref name="logits"/> (V), as plain decoding would,
    /// except right after a rejected draft, when sampling draws from the residual distribution instead.
    /// </summary>
    public override int Choose(SequenceState state, ReadOnlySpan<float> logits)
    {
        int token;
        if (Rng is null || (!_residual && _rejectedToken < 0))
            token = DecodeStep.Next(logits, Scores, state, Processors, Warpers, Rng);
        else
        {
            Distribution(state, logits);
            if (_rejectedToken >= 0) P[_rejectedToken] = 0;
            else for (int i = 0; i < Vocab; i++) P[i] = Math.Max(0, P[i] - _residualQ[i]);
            token = Sampling.DrawWeighted(P, Rng);
            // p ≤ q everywhere means p = q, when a rejection cannot happen (but for rounding): draw from p.
            if (token < 0)
            {
                Distribution(state, logits);
                token = Sampling.DrawWeighted(P, Rng);
            }
            Append(state, logits, token);
        }
        _residual = false;
        _rejectedToken = -1;
        _stats = _stats with { Tokens = _stats.Tokens + 1 };
        return token;
    }

    /// <summary>
    /// The rest of a round after its first token (the last of <paramref name="state"/>, not yet fed):
    /// drafts after it, feeds it and the drafts in one pass, appends the accepted drafts to
    /// <paramref name="state"/> and to <paramref name="fixedTokens"/>. On return the sequence has
    /// finished, or every token is fed and <paramref name="next"/> holds the logits after the last one.
    /// </summary>
    public override void DraftAndVerify(SequenceState state, Span<float> next, ISpeculativeTarget target, List<int> fixedTokens)
    {
        int first = state.Tokens[^1];
        // Never draft past max_new_tokens: the pass then fits the cache, which holds one position per token.
        int n = Math.Min(_draftTokens, Stop.MaxNewTokens - state.GeneratedCount);
        n = n > 0 ? _drafter.Propose(state, n, _drafts, _q) : 0;
        _feed[0] = first;
        _drafts.AsSpan(0, n).CopyTo(_feed.AsSpan(1));
        var rows = target.Feed(_feed.AsSpan(0, n + 1));                                 // (n + 1, V)
        _stats = _stats with { TargetPasses = _stats.TargetPasses + 1, Drafted = _stats.Drafted + n };
        int kept = 0;
        for (; kept < n; kept++)
        {
            var row = rows.Slice(kept * Vocab, Vocab);
            int draft = _drafts[kept];
            if (!Accepts(state, row, draft, kept)) break;
            Append(state, row, draft);
            fixedTokens.Add(draft);
            _stats = _stats with { Tokens = _stats.Tokens + 1, Accepted = _stats.Accepted + 1 };
            if (Stop.Update(state)) return;
        }
        _drafter.Verified(n, kept);
        if (kept < n) target.Forget(n - kept);
        rows.Slice(kept * Vocab, Vocab).CopyTo(next);
    }

    // Whether the model keeps `draft` given the logits before it; after a rejection the residual is set for the next choice.
    bool Accepts(SequenceState state, ReadOnlySpan<float> logits, int draft, int index)
    {
        if (Rng is null)
        {
            logits.CopyTo(Scores);
            for (int i = 0; i < Processors.Count; i++) Processors[i].Process(state.Tokens, state.GeneratedCount, Scores);
            return Sampling.ArgMax(Scores) == draft;
        }
        Distribution(state, logits);
        double u = Rng.NextDouble();
        if (_q is null)
        {
            if (u < P[draft]) return true;
            _rejectedToken = draft;
            return false;
        }
        var q = _q[index];
        if (u * q[draft] < P[draft]) return true;
        q.CopyTo(_residualQ, 0);
        _residual = true;
        return false;
    }

    // p: the processed and warped scores of `logits` as probabilities, in P.
    void Distribution(SequenceState state, ReadOnlySpan<float> logits)
    {
        logits.CopyTo(Scores);
        for (int i = 0; i < Processors.Count; i++) Processors[i].Process(state.Tokens, state.GeneratedCount, Scores);
        for (int i = 0; i < Warpers.Count; i++) Warpers[i].Process([], 0, Scores);
        Sampling.Softmax(Scores, P);
    }

    // The score plain decoding keeps: the token's log-probability under the raw logits.
    static void Append(SequenceState state, ReadOnlySpan<float> logits, int token)
    {
        state.LogProb += logits[token] - Sampling.StepLogSumExp(logits);
        state.Append(token);
    }

    public override void Dispose() => _drafter.Dispose();
}

/// <summary>Checks and builds the parts of speculative decoding.</summary>
public static class SpeculativeDecoding
{
    /// <summary>
    /// Throws <see cref="ArgumentException"/> unless <paramref name="draft"/> can draft for
    /// <paramref name="model"/>: the same family (encoder–decoder for encoder–decoder, decoder-only for
    /// decoder-only) and the same vocabulary size. <paramref name="modelName"/> and
    /// <paramref name="draftName"/> name the two in the message (e.g. their directories).
    /// </summary>
    public static void CheckDraft(LanguageModel model, LanguageModel draft, string modelName = "the model", string draftName = "the draft model")
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(draft);
        static string Family(LanguageModel m) => m switch
        {
            EncoderDecoderModel => "an encoder–decoder",
            DecoderOnlyModel => "a decoder-only model",
            _ => "an encoder-only model",
        };
        if (draft is not (EncoderDecoderModel or DecoderOnlyModel) || draft.GetType() != model.GetType())
            throw new ArgumentException($"{draftName} is {Family(draft)} and {modelName} is {Family(model)}: " +
                "an encoder–decoder drafts for an encoder–decoder and a decoder-only model for a decoder-only one");
        if (draft.Config.VocabSize != model.Config.VocabSize)
            throw new ArgumentException($"{draftName} has a vocabulary of {draft.Config.VocabSize} tokens and {modelName} one of {model.Config.VocabSize}: " +
                "a draft model must share the model's tokenizer");
    }

    /// <summary>
    /// The speculative (or lexical-unit) decoder of one sequence of <paramref name="model"/> with <paramref name="options"/>
    /// (which must speculate): its drafter, processors, warpers and, when sampling, the generator of
    /// <paramref name="sampleIndex"/>'s stream of the seed (the stream plain sampling uses).
    /// </summary>
    internal static MultiTokenDecoder Create(LanguageModel model, GenerationOptions options, int[] prompt, int decoderStartTokenId,
        IReadOnlyCollection<int> eos, StopCriteria stop, int sampleIndex, ulong seed)
    {
        var rng = options.Samples ? new Xoshiro256(Xoshiro256.Derive(seed, sampleIndex)) : null;
        var processors = LogitsProcessors.FromOptions(options, eos);
        var warpers = LogitsProcessors.WarpersFromOptions(options);
        if (options.LexicalUnits is { } units) return new LexicalUnitDecoder(units, model.Config.VocabSize, processors, warpers, rng, stop);
        IDrafter drafter = options.DraftModel is { } draft
            ? new DraftModelDrafter(draft, prompt, decoderStartTokenId, options.MaxNewTokens, options.KvCacheDType, processors, warpers, rng, eos)
            : new PromptLookupDrafter(model is EncoderDecoderModel ? prompt : null, options.PromptLookupMaxNgram, eos);
        return new SpeculativeDecoder(drafter, options.DraftTokens, model.Config.VocabSize, processors, warpers, rng, stop);
    }
}

/// <summary>
/// Speculative decoding of one sequence through a one-row session: rounds of <see cref="SpeculativeDecoder"/>
/// until the sequence ends, each token reported as it is fixed.
/// </summary>
internal sealed class SpeculativeStrategy(LanguageModel model, GenerationOptions options, int decoderStartTokenId, IReadOnlyCollection<int> eos, int sampleIndex, ulong seed)
    : IDecodingStrategy
{
    /// <inheritdoc />
    public int RowsPerRequest => 1;

    /// <summary>The counts of the last run.</summary>
    public SpeculativeStats Stats { get; private set; }

    /// <inheritdoc />
    public IEnumerable<TokenEvent> Run(DecodingContext context, CancellationToken cancellationToken)
    {
        var session = context.Session;
        if (session.Rows != 1 || context.Requests != 1) throw new ArgumentException($"speculative decoding runs one sequence, the session has {session.Rows} rows");
        using var decoder = SpeculativeDecoding.Create(model, options, session.Prompt(0), decoderStartTokenId, eos, context.Stop, sampleIndex, seed);
        var state = new SequenceState(session.InitialTokens(0), context.Stop.MaxNewTokens + 1);
        var next = session.Logits.ToArray();
        var target = new SessionTarget(session);
        var fixedTokens = new List<int>(options.DraftTokens);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // A round's first token is reported before its drafts are made and verified.
            int token = decoder.Choose(state, next);
            Stats = decoder.Stats;
            yield return new TokenEvent(0, 0, token);
            if (context.Stop.Update(state)) break;
            cancellationToken.ThrowIfCancellationRequested();
            fixedTokens.Clear();
            decoder.DraftAndVerify(state, next, target, fixedTokens);
            Stats = decoder.Stats;
            foreach (int t in fixedTokens) yield return new TokenEvent(0, 0, t);
            if (state.Finish != null) break;
        }
        context.Results[0] = [context.Stop.ToResult(state, state.LogProb)];
    }
}
