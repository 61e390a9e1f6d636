// Decoding strategies: small swappable types behind one interface (candle's Sampling, CTranslate2's
// SearchStrategy). Each drives a session step by step, applies the processors, chooses tokens and
// reports them as they are fixed, so the same loop serves batched and streaming generation.
namespace Encore.Generation;

/// <summary>A token fixed for a request's sequence (streaming reports these as they come).</summary>
/// <param name="Request">Index of the request in the session.</param>
/// <param name="Sequence">Index of the sequence within the request (a sample; beams report none until the end).</param>
/// <param name="Token">The token.</param>
public readonly record struct TokenEvent(int Request, int Sequence, int Token);

/// <summary>What a strategy works with: the session, the processors and the stop criteria of a batch.</summary>
public sealed class DecodingContext
{
    /// <summary>A context for <paramref name="requests"/> requests of <paramref name="session"/>.</summary>
    public DecodingContext(GenerationSession session, int requests, IReadOnlyList<ILogitsProcessor> processors, StopCriteria stop, int padTokenId)
    {
        if (session.Rows % requests != 0) throw new ArgumentException($"{session.Rows} rows do not split into {requests} requests");
        Session = session;
        Requests = requests;
        Processors = processors;
        Stop = stop;
        PadTokenId = padTokenId;
        Results = new GeneratedSequence[requests][];
    }

    /// <summary>The model state.</summary>
    public GenerationSession Session { get; }

    /// <summary>Requests in the session (each owns Rows / Requests consecutive rows).</summary>
    public int Requests { get; }

    /// <summary>Processors applied to every row's scores, in order.</summary>
    public IReadOnlyList<ILogitsProcessor> Processors { get; }

    /// <summary>When sequences end.</summary>
    public StopCriteria Stop { get; }

    /// <summary>Fed to rows that have finished while others go on.</summary>
    public int PadTokenId { get; }

    /// <summary>Per request, its sequences best first; filled when the strategy's run completes.</summary>
    public GeneratedSequence[][] Results { get; }

    /// <summary>Runs every processor over one row.</summary>
    public void Process(SequenceState s, Span<float> scores)
    {
        foreach (var p in Processors) p.Process(s.Tokens, s.GeneratedCount, scores);
    }
}

/// <summary>A decoding strategy.</summary>
public interface IDecodingStrategy
{
    /// <summary>Session rows per request: 1, the number of samples, or the number of beams.</summary>
    int RowsPerRequest { get; }

    /// <summary>
    /// Decodes the context's requests until every one finishes, yielding tokens as they are fixed;
    /// fills <see cref="DecodingContext.Results"/> at the end. Checks <paramref name="cancellationToken"/>
    /// before every model step.
    /// </summary>
    IEnumerable<TokenEvent> Run(DecodingContext context, CancellationToken cancellationToken);
}

/// <summary>Builds the strategy a <see cref="GenerationOptions"/> asks for.</summary>
public static class DecodingStrategies
{
    /// <summary>Superposed decoding when set, beam search when num_beams &gt; 1, sampling when do_sample with temperature &gt; 0, else greedy.</summary>
    public static IDecodingStrategy FromOptions(GenerationOptions options)
    {
        if (options.Superposed is { } superposed) return new SuperposedStrategy(superposed);
        if (options.NumBeams > 1) return new BeamSearchStrategy(options.NumBeams, options.LengthPenalty, options.EarlyStopping, options.NumReturnSequences);
        if (options.Samples)
            return new SamplingStrategy(LogitsProcessors.WarpersFromOptions(options), options.Seed ?? (ulong)Random.Shared.NextInt64(), options.NumReturnSequences);
        return new GreedyStrategy();
    }
}

/// <summary>
/// The loop shared by strategies that extend each row independently: process the scores, choose a
/// token, stop the rows that ended, feed padding to finished rows until every row has ended.
/// </summary>
public abstract class TokenByTokenStrategy : IDecodingStrategy
{
    /// <inheritdoc />
    public abstract int RowsPerRequest { get; }

    /// <summary>The generator <paramref name="row"/> draws its tokens from; null chooses greedily.</summary>
    protected abstract Xoshiro256? Generator(int row);

    /// <summary>Processors that reshape the scores before a draw (temperature, top-k, …); none by default.</summary>
    protected virtual IReadOnlyList<ILogitsProcessor> Warpers => [];

    static bool AllFinished(SequenceState[] seqs)
    {
        foreach (var s in seqs)
            if (s.Finish == null) return false;
        return true;
    }

    /// <summary>Called once per run before the first step (e.g. to seed per-row generators).</summary>
    protected virtual void Begin(int rows) { }

    /// <inheritdoc />
    public IEnumerable<TokenEvent> Run(DecodingContext context, CancellationToken cancellationToken)
    {
        var session = context.Session;
        int rows = session.Rows, k = rows / context.Requests, v = session.VocabSize;
        if (k != RowsPerRequest) throw new ArgumentException($"the session has {k} rows per request, the strategy needs {RowsPerRequest}");
        var seqs = new SequenceState[rows];
        for (int r = 0; r < rows; r++) seqs[r] = new SequenceState(session.InitialTokens(r), context.Stop.MaxNewTokens + 1);
        Begin(rows);
        var next = new int[rows];
        var scores = new float[v];
        var events = new List<TokenEvent>(rows);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            events.Clear();
            for (int r = 0; r < rows; r++)
            {
                var s = seqs[r];
                if (s.Finish != null)
                {
                    next[r] = context.PadTokenId;
                    continue;
                }
                int token = DecodeStep.Next(session.Logits.AsSpan(r * v, v), scores, s, context.Processors, Warpers, Generator(r));
                context.Stop.Update(s);
                next[r] = token;
                events.Add(new TokenEvent(r / k, r % k, token));
            }
            foreach (var e in events) yield return e;
            if (AllFinished(seqs)) break;
            cancellationToken.ThrowIfCancellationRequested();
            session.Advance(next);
        }
        for (int q = 0; q < context.Requests; q++)
            context.Results[q] = Enumerable.Range(q * k, k).Select(r => context.Stop.ToResult(seqs[r], seqs[r].LogProb)).ToArray();
    }
}

/// <summary>Greedy decoding: always the highest-scoring token (ties to the smaller id, as torch.argmax).</summary>
public sealed class GreedyStrategy : TokenByTokenStrategy
{
    /// <inheritdoc />
    public override int RowsPerRequest => 1;

    /// <inheritdoc />
    protected override Xoshiro256? Generator(int row) => null;
}

/// <summary>
/// Ancestral sampling: the warpers (temperature, top-k, top-p, min-p) reshape the processed scores,
/// then one token is drawn from their softmax. Each returned sequence k of a request draws from its
/// own xoshiro256** stream seeded by (seed, k), so a seed reproduces the same samples whatever the
/// batch around it, and different seeds differ.
/// </summary>
public sealed class SamplingStrategy : TokenByTokenStrategy
{
    readonly IReadOnlyList<ILogitsProcessor> _warpers;
    readonly ulong _seed;
    readonly int _samples;
    Xoshiro256[] _rngs = [];

    /// <summary>Samples <paramref name="samples"/> sequences per request with <paramref name="warpers"/> applied, from <paramref name="seed"/>.</summary>
    public SamplingStrategy(IReadOnlyList<ILogitsProcessor> warpers, ulong seed, int samples = 1)
    {
        _warpers = warpers;
        _seed = seed;
        _samples = samples;
    }

    /// <inheritdoc />
    public override int RowsPerRequest => _samples;

    /// <inheritdoc />
    protected override void Begin(int rows)
    {
        _rngs = new Xoshiro256[rows];
        for (int r = 0; r < rows; r++) _rngs[r] = new Xoshiro256(Xoshiro256.Derive(_seed, r % _samples));
    }

    /// <inheritdoc />
    protected override Xoshiro256? Generator(int row) => _rngs[row];

    /// <inheritdoc />
    protected override IReadOnlyList<ILogitsProcessor> Warpers => _warpers;
}
