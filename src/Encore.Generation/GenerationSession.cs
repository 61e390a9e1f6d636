// One inference session: the model state of a batch of requests while they decode. Rows are
// request-major (request r, beam or sample k → row r·K + k). Every Var the model returns outside a
// Tape belongs to us, so each step copies what it needs and disposes it.
using Encore.Autograd;
using Encore.Models;
using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Generation;

/// <summary>
/// The decoder state of a batch: its KV caches and the next-token logits of every row. Created with
/// the prompt already consumed (encoded and the start token decoded, or the prompt prefilled), so
/// <see cref="Logits"/> holds the scores of the first new token.
/// </summary>
public abstract class GenerationSession : IDisposable
{
    float[] _logits = [];
    int[] _tokens = [];
    // Every step has the same shapes, so the model's outputs and scratch arrays are reused: a
    // steady-state step allocates nothing.
    readonly Workspace _workspace = new();

    private protected GenerationSession(int rows, int vocabSize)
    {
        Rows = rows;
        VocabSize = vocabSize;
    }

    /// <summary>Rows decoded together (requests × sequences per request).</summary>
    public int Rows { get; }

    /// <summary>V.</summary>
    public int VocabSize { get; }

    /// <summary>Next-token logits, (Rows, V) row-major.</summary>
    public float[] Logits => _logits;

    /// <summary>The decoder's caches.</summary>
    public abstract DecoderCache Cache { get; }

    /// <summary>The tokens each row's decoder has seen before its first new token (the prompt, or the decoder start token).</summary>
    public abstract int[] InitialTokens(int row);

    /// <summary>The prompt ids of a row: an encoder–decoder's source, a decoder-only model's prompt.</summary>
    public abstract int[] Prompt(int row);

    /// <summary>
    /// Feeds several tokens to a one-row session in one decoder pass (each sees the cache and the tokens
    /// before it) and writes the logits after each, (t, V) row-major, into <paramref name="logits"/>;
    /// <see cref="Logits"/> becomes the last of them. Speculative decoding verifies its drafts this way.
    /// </summary>
    public void Extend(ReadOnlySpan<int> tokens, Span<float> logits)
    {
        if (Rows != 1) throw new InvalidOperationException($"Extend feeds a session of one row; this one has {Rows}");
        int t = tokens.Length, v = VocabSize;
        if (t == 0) throw new ArgumentException("no tokens to feed");
        if (logits.Length < t * v) throw new ArgumentException($"{logits.Length} logits for {t} tokens of {v}");
        if (Cache.Length + t > Cache.Capacity) throw new ArgumentException($"{t} tokens do not fit: the cache holds {Cache.Length} of {Cache.Capacity} positions");
        foreach (int id in tokens)
            if ((uint)id >= (uint)v) throw new ArgumentException($"token {id} is outside the vocabulary [0, {v})");
        var ids = t <= WorkspacesByLength.MaxLength ? _extendTokens[t] ??= new int[t] : new int[t];
        tokens.CopyTo(ids);
        using (_extendWorkspaces.For(t).Use())
        {
            var output = Step(ids);                                               // (1, t, V)
            output.Value.AsReadOnlySpan<float>()[..(t * v)].CopyTo(logits);
        }
        if (_logits.Length != v) _logits = new float[v];
        logits.Slice((t - 1) * v, v).CopyTo(_logits);
    }

    /// <summary>
    /// Forgets the positions of a one-row session from <paramref name="length"/> on (see
    /// <see cref="DecoderCache.Truncate"/>); <see cref="Logits"/> is stale until the next token is fed.
    /// </summary>
    public void Truncate(int length) => Cache.Truncate(length);

    // Verification passes of every length keep their own workspace, so none reallocates in steady state.
    readonly WorkspacesByLength _extendWorkspaces = new();
    readonly int[]?[] _extendTokens = new int[]?[WorkspacesByLength.MaxLength + 1];

    /// <summary>Feeds one token per row (Rows) and computes the next logits.</summary>
    public void Advance(ReadOnlySpan<int> tokens)
    {
        if (tokens.Length != Rows) throw new ArgumentException($"{tokens.Length} tokens for {Rows} rows");
        if (_tokens.Length != Rows) _tokens = new int[Rows];
        tokens.CopyTo(_tokens);
        using (_workspace.Use())
            TakeLastPosition(Step(_tokens));                                  // (Rows, 1, V)
    }

    /// <summary>
    /// Feeds each row a mixture of <paramref name="perRow"/> token embeddings, Σ_j weights[r·M + j] · E[ids[r·M + j]]
    /// (Superposed Decoding; see <see cref="TokenMixture"/>), and computes the next logits.
    /// </summary>
    public void AdvanceMixed(ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, int perRow)
    {
        if (perRow < 1) throw new ArgumentOutOfRangeException(nameof(perRow), perRow, "a mixture needs ≥ 1 token per row");
        int n = Rows * perRow;
        if (ids.Length != n || weights.Length != n) throw new ArgumentException($"{ids.Length} ids and {weights.Length} weights for {Rows} rows of {perRow}");
        foreach (int id in ids)
            if ((uint)id >= (uint)VocabSize) throw new ArgumentException($"token {id} is outside the vocabulary [0, {VocabSize})");
        if (_mixIds.Length != n)
        {
            _mixIds = new int[n];
            _mixWeights = new float[n];
        }
        ids.CopyTo(_mixIds);
        weights.CopyTo(_mixWeights);
        using (_workspace.Use())
            TakeLastPosition(StepMixed(new TokenMixture(_mixIds, _mixWeights, perRow)));   // (Rows, 1, V)
    }

    int[] _mixIds = [];
    float[] _mixWeights = [];

    /// <summary>The encoder's early-exit rule and counts (encoder–decoder sessions with early exit), one row per prompt; else null.</summary>
    public virtual StackExit? EncoderExit => null;

    /// <summary>
    /// The layers prompt <paramref name="request"/>'s rows (rows request·K … request·K + K − 1, K =
    /// <paramref name="rowsPerRequest"/>) ran under early exit; null when the session was created without it.
    /// </summary>
    public EarlyExitStats? ExitStats(int request, int rowsPerRequest)
    {
        if (Cache.Exit is not { } decoder) return null;
        int encoderDepth = this is EncoderDecoderSession ed ? ed.EncoderDepth : 0;
        return EarlyExitStats.From(EncoderExit, request, encoderDepth, decoder, request * rowsPerRequest, rowsPerRequest, Cache.Self.Length);
    }

    /// <summary>Makes row i continue from row <paramref name="parents"/>[i] (beam search); see <see cref="KvCacheRows.Select"/>.</summary>
    public void Reorder(ReadOnlySpan<int> parents) => KvCacheRows.Select(Cache.Self, parents);

    private protected abstract Var Step(int[] tokens);

    private protected abstract Var StepMixed(TokenMixture inputs);

    /// <summary>Copies the logits of the last position of each row from (Rows, T, V).</summary>
    private protected void TakeLastPosition(Var logits)
    {
        int t = logits.Shape[1], v = logits.Shape[2];
        if (v != VocabSize) throw new InvalidOperationException($"the model returned {v} logits per position, expected {VocabSize}");
        if (_logits.Length != Rows * v) _logits = new float[Rows * v];
        var src = logits.Value.AsReadOnlySpan<float>();
        for (int r = 0; r < Rows; r++) src.Slice((r * t + t - 1) * v, v).CopyTo(_logits.AsSpan(r * v, v));
    }

    /// <summary>Frees the caches and what the session holds.</summary>
    public virtual void Dispose()
    {
        Cache.Dispose();
        _workspace.Dispose();
        _extendWorkspaces.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// A session for <paramref name="prompts"/>, each repeated <paramref name="rowsPerPrompt"/> times,
    /// with room for <paramref name="maxNewTokens"/> new tokens. Decoder-only prompts must share one length
    /// (the cache has one length for all rows and the API has no left-padding mask); see <see cref="Generator"/>.
    /// The KV caches store keys and values as <paramref name="kvCacheDType"/>. With <paramref name="earlyExit"/>,
    /// the encoder and the decoder exit early (see <see cref="EarlyExitOptions"/>) and count their layers
    /// (<see cref="ExitStats"/>); the prompt pass counts too.
    /// </summary>
    public static GenerationSession Create(LanguageModel model, IReadOnlyList<int[]> prompts, int rowsPerPrompt, int maxNewTokens, int decoderStartTokenId,
        KvCacheDType kvCacheDType = KvCacheDType.F32, EarlyExitOptions? earlyExit = null)
    {
        earlyExit?.Validate();
        ArgumentNullException.ThrowIfNull(model);
        if (prompts.Count == 0) throw new ArgumentException("no prompts");
        if (rowsPerPrompt < 1) throw new ArgumentOutOfRangeException(nameof(rowsPerPrompt));
        foreach (var p in prompts)
            foreach (int id in p)
                if ((uint)id >= (uint)model.Config.VocabSize) throw new ArgumentException($"prompt token {id} is outside the vocabulary [0, {model.Config.VocabSize})");
        // The prompt pass releases its largest intermediates layer by layer (FeedForward); with the
        // buffer pool open they come back to the next layer instead of as freshly faulted pages.
        using var pooled = Encore.Tensors.Storage.BufferPool.Enable();
        return model switch
        {
            EncoderDecoderModel ed => new EncoderDecoderSession(ed, prompts, rowsPerPrompt, maxNewTokens, decoderStartTokenId, kvCacheDType, earlyExit),
            DecoderOnlyModel dec => new DecoderOnlySession(dec, prompts, rowsPerPrompt, maxNewTokens, kvCacheDType, earlyExit),
            _ => throw new ArgumentException($"{model.GetType().Name} does not generate text (it has no decoder)"),
        };
    }
}

/// <summary>
/// Encoder–decoder session: the sources are encoded once, cross-attention K/V computed at the first
/// decoder step, then the decoder steps one token at a time against a cache of max_new_tokens + 1.
/// </summary>
internal sealed class EncoderDecoderSession : GenerationSession
{
    readonly EncoderDecoderModel _model;
    readonly Var _memory;                  // (Rows, S, D) encoder output, rows repeated per beam
    readonly int[] _lengths;               // (Rows) valid source lengths
    readonly DecoderCache _cache;
    readonly int _start;
    readonly int[][] _sources;
    readonly int _k;
    readonly StackExit? _encoderExit;

    public EncoderDecoderSession(EncoderDecoderModel model, IReadOnlyList<int[]> sources, int rowsPerPrompt, int maxNewTokens, int start, KvCacheDType kvCacheDType,
        EarlyExitOptions? earlyExit = null)
        : base(sources.Count * rowsPerPrompt, model.Config.VocabSize)
    {
        _model = model;
        _start = start;
        _sources = sources.ToArray();
        _k = rowsPerPrompt;
        if (sources.Any(s => s.Length == 0)) throw new ArgumentException("an encoder–decoder needs a non-empty source");
        if (earlyExit != null) _encoderExit = new StackExit(earlyExit.EncoderThreshold, sources.Count);
        (_memory, _lengths) = EncodePadded(model, sources, rowsPerPrompt, _encoderExit);
        _cache = model.CreateCache(Rows, maxNewTokens + 1, _memory.Shape[1], kvCacheDType);
        if (earlyExit != null) _cache.Exit = new StackExit(earlyExit.DecoderThreshold, Rows);
        try
        {
            using var logits = Step(Enumerable.Repeat(start, Rows).ToArray());
            TakeLastPosition(logits);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override DecoderCache Cache => _cache;

    public override StackExit? EncoderExit => _encoderExit;

    public int EncoderDepth => _model.Encoder.Layers;

    public override int[] InitialTokens(int row) => [_start];

    public override int[] Prompt(int row) => _sources[row / _k];

    private protected override Var Step(int[] tokens) => _model.Decode(_memory, _lengths, tokens, Rows, _cache);

    private protected override Var StepMixed(TokenMixture inputs) => _model.Decode(_memory, _lengths, inputs, Rows, _cache);

    /// <summary>
    /// Encodes the sources right-padded to S_max in one pass with their lengths (padding keys are
    /// masked; RoPE, ALiBi and T5 buckets depend on offsets only, and absolute positions start at 0 in
    /// every row, so each row equals its batch-of-one encoding), then repeats each row for its beams.
    /// </summary>
    static (Var Memory, int[] Lengths) EncodePadded(EncoderDecoderModel model, IReadOnlyList<int[]> sources, int k, StackExit? exit)
    {
        int b = sources.Count, d = model.Config.EncoderDModel;
        int smax = sources.Max(s => s.Length);
        var ids = new int[b * smax];
        var sourceLengths = new int[b];
        for (int i = 0; i < b; i++)
        {
            sources[i].CopyTo(ids, i * smax);
            ids.AsSpan(i * smax + sources[i].Length, smax - sources[i].Length).Fill(model.Config.PadTokenId);
            sourceLengths[i] = sources[i].Length;
        }
        var enc = exit is null ? model.Encode(ids, b, sourceLengths) : model.Encode(ids, b, sourceLengths, exit);   // (B, S_max, D)
        if (k == 1) return (enc, sourceLengths);
        using (enc)
        {
            var memory = Tensor.Empty(DType.F32, b * k, smax, d);           // (B·K, S_max, D_enc)
            var src = enc.Value.AsReadOnlySpan<float>();
            var dst = memory.AsSpan<float>();
            var lengths = new int[b * k];
            for (int row = 0; row < b * k; row++)
            {
                src.Slice(row / k * smax * d, smax * d).CopyTo(dst.Slice(row * smax * d, smax * d));
                lengths[row] = sourceLengths[row / k];
            }
            return (Var.Constant(memory), lengths);
        }
    }

    public override void Dispose()
    {
        _memory.Dispose();
        base.Dispose();
    }
}

/// <summary>Decoder-only session: equal-length prompts prefilled into one cache, then one token per step.</summary>
internal sealed class DecoderOnlySession : GenerationSession
{
    readonly DecoderOnlyModel _model;
    readonly DecoderCache _cache;
    readonly int[][] _prompts;
    readonly int _k;

    public DecoderOnlySession(DecoderOnlyModel model, IReadOnlyList<int[]> prompts, int rowsPerPrompt, int maxNewTokens, KvCacheDType kvCacheDType, EarlyExitOptions? earlyExit = null)
        : base(prompts.Count * rowsPerPrompt, model.Config.VocabSize)
    {
        _model = model;
        _k = rowsPerPrompt;
        _prompts = prompts.ToArray();
        int length = prompts[0].Length;
        if (length == 0) throw new ArgumentException("a decoder-only model needs a non-empty prompt (add a BOS token)");
        if (prompts.Any(p => p.Length != length))
            throw new ArgumentException("a decoder-only session needs prompts of one length; Generator groups them by length");
        _cache = model.CreateCache(Rows, length + maxNewTokens, kvCacheDType);
        if (earlyExit != null) _cache.Exit = new StackExit(earlyExit.DecoderThreshold, Rows);
        try
        {
            var ids = new int[Rows * length];
            for (int r = 0; r < Rows; r++) prompts[r / _k].CopyTo(ids, r * length);
            using var logits = _model.Prefill(ids, Rows, _cache);           // (Rows, 1, V)
            TakeLastPosition(logits);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override DecoderCache Cache => _cache;

    public override int[] InitialTokens(int row) => _prompts[row / _k];

    public override int[] Prompt(int row) => _prompts[row / _k];

    private protected override Var Step(int[] tokens) => _model.Forward(tokens, Rows, null, _cache);

    private protected override Var StepMixed(TokenMixture inputs) => _model.Forward(inputs, Rows, _cache);
}

/// <summary>Row operations on self-attention caches.</summary>
public static class KvCacheRows
{
    /// <summary>
    /// Makes row i of every cache a copy of row <paramref name="parents"/>[i] (beam search keeps the
    /// beams that survived and duplicates the ones that branched); see <see cref="LayerCache.SelectRows"/>.
    /// Cross-attention caches need no reordering: a request's beams share one source.
    /// </summary>
    public static void Select(IReadOnlyList<LayerCache> caches, ReadOnlySpan<int> parents)
    {
        bool identity = true;
        for (int i = 0; i < parents.Length; i++) identity &= parents[i] == i;
        if (identity) return;
        foreach (var c in caches) c.SelectRows(parents);
    }
}
