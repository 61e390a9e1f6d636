using Encore.Autograd;
using Encore.Tensors;
using Encore.Tensors.Kernels;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Models;

/// <summary>The self- and cross-attention caches of a decoder stack for one batch of requests.</summary>
public sealed class DecoderCache : IDisposable
{
    internal DecoderCache(LayerCache[] self, LayerCache[]? cross)
    {
        Self = self;
        Cross = cross;
    }

    /// <summary>Per layer: keys and values of the positions decoded so far.</summary>
    public LayerCache[] Self { get; }

    /// <summary>Per layer: cross-attention keys and values of the encoder output (encoder–decoder only).</summary>
    public LayerCache[]? Cross { get; }

    /// <summary>Positions decoded so far (a batch cache: 0; see <see cref="RowLengths"/>).</summary>
    public int Length => Self.Length == 0 ? 0 : Self[0].Length;

    /// <summary>
    /// A batch cache for continuous batching: per row, the positions decoded so far; null for a
    /// uniform cache, where every row has <see cref="Length"/>. Rows of a batch cache join and leave
    /// independently (<see cref="LoadRow"/>, <see cref="MoveRow"/>) and a step feeds one token to each
    /// of the first <see cref="ActiveRows"/> rows, at that row's own position.
    /// </summary>
    public int[]? RowLengths { get; private init; }

    /// <summary>A batch cache of an encoder–decoder: per row, the valid source positions in <see cref="Cross"/>.</summary>
    public int[]? CrossLengths { get; private init; }

    /// <summary>Rows a batch-cache step decodes: rows [0, ActiveRows). Set by the caller between steps.</summary>
    public int ActiveRows
    {
        get => _activeRows;
        set
        {
            if (RowLengths is null) throw new InvalidOperationException("only a batch cache has active rows");
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, RowLengths.Length);
            _activeRows = value;
        }
    }
    int _activeRows;

    /// <summary>Rows of the cache (B).</summary>
    public int Rows => Self.Length == 0 ? 0 : Self[0].Rows;

    /// <summary>How the caches store keys and values.</summary>
    public KvCacheDType DType => Self.Length == 0 ? KvCacheDType.F32 : Self[0].DType;

    /// <summary>Positions each row's self-attention cache holds at most.</summary>
    public int Capacity => Self.Length == 0 ? 0 : Self[0].Capacity;

    /// <summary>Source positions each row's cross-attention cache holds at most (0 without one).</summary>
    public int SourceCapacity => Cross is { Length: > 0 } c ? c[0].Capacity : 0;

    /// <summary>An empty batch cache over per-layer caches (see <see cref="RowLengths"/>).</summary>
    internal static DecoderCache Batch(LayerCache[] self, LayerCache[]? cross)
    {
        // Cross caches count as filled so the attention layer never recomputes them from a memory;
        // each row's valid source length masks the rest.
        if (cross != null) foreach (var c in cross) c.Length = c.Capacity;
        int rows = self.Length == 0 ? 0 : self[0].Rows;
        return new DecoderCache(self, cross) { RowLengths = new int[rows], CrossLengths = cross is null ? null : new int[rows] };
    }

    /// <summary>
    /// Puts row <paramref name="sourceRow"/> of a uniform cache (a request just prefilled) into row
    /// <paramref name="row"/> of this batch cache: its self-attention positions and, for an
    /// encoder–decoder, its cross-attention keys over <paramref name="sourceLength"/> source positions.
    /// </summary>
    public void LoadRow(int row, DecoderCache source, int sourceRow, int sourceLength = 0)
    {
        ArgumentNullException.ThrowIfNull(source);
        var lengths = RowLengths ?? throw new InvalidOperationException("only a batch cache loads rows");
        if (source.RowLengths != null) throw new ArgumentException("the source must be a uniform cache");
        if (source.Self.Length != Self.Length || (source.Cross is null) != (Cross is null)) throw new ArgumentException("the caches come from different models");
        int n = source.Length;
        if (n >= Capacity) throw new ArgumentException($"{n} positions leave no room in a cache of capacity {Capacity}");
        for (int i = 0; i < Self.Length; i++) Self[i].CopyRow(row, source.Self[i], sourceRow, n);
        lengths[row] = n;
        if (Cross != null)
        {
            if (sourceLength < 1 || sourceLength > source.Cross![0].Length || sourceLength > SourceCapacity)
                throw new ArgumentOutOfRangeException(nameof(sourceLength), $"source length {sourceLength} is outside [1, {Math.Min(source.Cross![0].Length, SourceCapacity)}]");
            for (int i = 0; i < Cross.Length; i++) Cross[i].CopyRow(row, source.Cross![i], sourceRow, sourceLength);
            CrossLengths![row] = sourceLength;
        }
    }

    /// <summary>Moves batch row <paramref name="from"/> into row <paramref name="to"/> (keeps the active rows packed when one leaves).</summary>
    public void MoveRow(int to, int from)
    {
        var lengths = RowLengths ?? throw new InvalidOperationException("only a batch cache moves rows");
        if (to == from) return;
        for (int i = 0; i < Self.Length; i++) Self[i].CopyRow(to, Self[i], from, lengths[from]);
        lengths[to] = lengths[from];
        if (Cross != null)
        {
            for (int i = 0; i < Cross.Length; i++) Cross[i].CopyRow(to, Cross[i], from, CrossLengths![from]);
            CrossLengths![to] = CrossLengths[from];
        }
    }

    /// <summary>
    /// Forgets the self-attention positions from <paramref name="length"/> on, in every layer of a uniform
    /// cache: the next step writes there again. Speculative decoding uses it to drop the keys and values
    /// of rejected draft tokens; the cross-attention keys stay.
    /// </summary>
    public void Truncate(int length)
    {
        if (RowLengths != null) throw new InvalidOperationException("a batch cache truncates one row at a time (TruncateRow)");
        if (length < 0 || length > Length) throw new ArgumentOutOfRangeException(nameof(length), $"cannot truncate a cache of {Length} positions to {length}");
        foreach (var c in Self) c.Length = length;
    }

    /// <summary>Forgets the self-attention positions of batch row <paramref name="row"/> from <paramref name="length"/> on (see <see cref="Truncate"/>).</summary>
    public void TruncateRow(int row, int length)
    {
        var lengths = RowLengths ?? throw new InvalidOperationException("only a batch cache truncates rows; a uniform cache truncates all of them (Truncate)");
        if ((uint)row >= (uint)lengths.Length) throw new ArgumentOutOfRangeException(nameof(row), $"row {row} is outside [0, {lengths.Length})");
        if (length < 0 || length > lengths[row]) throw new ArgumentOutOfRangeException(nameof(length), $"cannot truncate row {row} of {lengths[row]} positions to {length}");
        lengths[row] = length;
    }

    /// <summary>
    /// The decoder's early-exit rule for the passes over this cache (see <see cref="StackExit"/>), which
    /// also counts the layers they run; null: every token runs every layer. Inference only.
    /// </summary>
    public StackExit? Exit { get; set; }

    /// <summary>The per-pass context the decoder stack reuses across this session's steps.</summary>
    internal StackContext Context { get; } = new();

    /// <summary>Bytes held by the self-attention caches.</summary>
    public long SelfBytes => Self.Sum(c => c.Bytes);

    /// <summary>Bytes held by the cross-attention caches.</summary>
    public long CrossBytes => Cross?.Sum(c => c.Bytes) ?? 0;

    /// <summary>Frees every cache.</summary>
    public void Dispose()
    {
        foreach (var c in Self) c.Dispose();
        if (Cross != null) foreach (var c in Cross) c.Dispose();
        Context.Sinusoids?.Dispose();
    }
}

/// <summary>
/// A stack of blocks — the encoder (bidirectional) or the decoder (causal, with cross-attention in an
/// encoder–decoder) — with its positional encoding and final norm. One type with flags, not two copies.
/// </summary>
public sealed class TransformerStack
{
    readonly ModelConfig _c;
    readonly ParameterSet _ps;
    readonly PositionConfig _pos;
    readonly Block[] _blocks;
    readonly NormLayer? _final;
    readonly NormLayer? _embedNorm;
    readonly string? _relTable;
    readonly string? _learned;
    readonly float[]? _alibi;
    readonly RopeCache? _rope;

    /// <summary>Whether blocks are checkpointed while a tape records (see <see cref="LanguageModel.CheckpointActivations"/>).</summary>
    public bool CheckpointActivations { get; set; }

    /// <remarks>
    /// <paramref name="c"/> gives this stack's widths (an encoder's <see cref="ModelConfig.ForEncoder"/>);
    /// <paramref name="memoryWidth"/> is the width of the memory its cross-attention reads (0: its own D).
    /// </remarks>
    internal TransformerStack(ParameterSet ps, string scope, ModelConfig c, int layers, bool causal, bool cross, bool embeddingNorm = false, int memoryWidth = 0)
    {
        _c = c;
        _ps = ps;
        Causal = causal;
        _pos = causal ? c.DecoderPositions : c.EncoderPositions;
        if (_pos.Kind == PositionKind.Learned)
        {
            _learned = scope + ".embed_positions.weight";
            ps.Create(_learned, [c.MaxPositions + _pos.LearnedOffset, c.DModel], ParameterSet.Init.Normal);
        }
        // BART / mBART layernorm_embedding: the stack's own norm of token + position embeddings.
        if (embeddingNorm) _embedNorm = NormLayer.Of(ps, scope + ".embed_norm", c);
        if (_pos.Kind is PositionKind.T5Relative or PositionKind.Urpe)
        {
            // T5 keeps one table per stack (in block 0) and shares it across the layers.
            _relTable = scope + ".relative_attention_bias.weight";
            ps.CreateF32Table(_relTable, [_pos.RelativeBuckets, c.Heads], ParameterSet.Init.Normal);
        }
        if (_pos.Kind == PositionKind.Alibi) _alibi = PositionBias.AlibiSlopes(c.Heads);
        if (_pos.Kind == PositionKind.Rope) _rope = new RopeCache(c.HeadDim, 0, _pos.Rope);
        _blocks = new Block[layers];
        for (int i = 0; i < layers; i++) _blocks[i] = new Block(ps, $"{scope}.layers.{i}", c, cross, i, _pos, causal, memoryWidth);
        if (c.FinalNorm && !c.PostNorm) _final = NormLayer.Of(ps, scope + ".final_norm", c);
    }

    /// <summary>Collects the attention entropy of this stack's layers in passes without a cache (see <see cref="LanguageModel.AttentionEntropy"/>); null: none.</summary>
    public AttentionEntropyProbe? EntropyProbe { get; set; }

    /// <summary>Collects which codes this stack's codebooks choose (see <see cref="LanguageModel.Codebooks"/>); null: none.</summary>
    public CodebookProbe? CodebookProbe { get; set; }

    /// <summary>True for the decoder (causal self-attention).</summary>
    public bool Causal { get; }

    /// <summary>Number of blocks.</summary>
    public int Layers => _blocks.Length;

    /// <summary>
    /// Runs the blocks over embedded inputs x (B, T, D). <paramref name="lengths"/> (B) are the valid
    /// lengths of right-padded inputs (null: none padded); <paramref name="cache"/> makes a decoder
    /// step incremental. Every row starts at its own offset, the positions it already holds: 0
    /// without a cache, the cache's length for a uniform cache, and RowLengths[i] for a batch cache,
    /// whose step feeds one token per active row. A row sees only its own keys, and its positions are
    /// its own, so it decodes as it would alone.
    /// </summary>
    /// <remarks>
    /// <paramref name="exit"/> (or, when null, the cache's <see cref="DecoderCache.Exit"/>) lets units leave
    /// the stack early (see <see cref="StackExit"/>); inference only. <paramref name="layerOutputs"/>, when
    /// given, receives the final norm of every block's output in order (the last is the returned value):
    /// the states an early-exit loss reads. <paramref name="pooling"/> ≥ 1 makes the last block pool its queries over
    /// groups of about that many positions (<see cref="PoolingGroups"/>; ARC-Encoder): the output is (B, G, D), G = ⌈T/PF⌉
    /// (bidirectional stacks without a cache only).
    /// </remarks>
    internal Var Forward(Var x, int[]? lengths, Var? memory, int[]? memoryLengths, DecoderCache? cache, ulong dropoutSeed, bool absoluteAdded = false,
        StackExit? exit = null, List<Var>? layerOutputs = null, int pooling = 0)
    {
        int b = x.Shape[0], t = x.Shape[1];
        if (pooling > 0 && (Causal || cache != null || exit != null || layerOutputs != null || _blocks.Length == 0))
            throw new ArgumentException("pooled queries apply to the last block of a bidirectional stack run whole, without a cache or early exit");
        if (pooling > 0 && _pos.Kind is not (PositionKind.Rope or PositionKind.Learned or PositionKind.Sinusoidal or PositionKind.None))
            throw new NotSupportedException($"pooled queries need RoPE or absolute positions, not {_pos.Kind}");
        var rowLengths = cache?.RowLengths;
        if (rowLengths != null)
        {
            // Several tokens need one causal offset for all rows; rows at their own offsets would see
            // each other's future keys, so only a lone active row takes them (speculative verification).
            if (t != 1 && b != 1) throw new ArgumentException($"a batch-cache step feeds one token per row, or several to a lone active row; got {t} tokens for each of {b} rows");
            if (b != cache!.ActiveRows) throw new ArgumentException($"{b} rows of tokens for {cache.ActiveRows} active rows");
        }
        // A decoding session reuses one context (and the workspace reuses the arrays), so a step allocates nothing.
        var ctx = cache?.Context ?? new StackContext();
        var offsets = Workspace.RentInts(b);                                                         // (B)
        int longest = 0;
        for (int i = 0; i < b; i++)
        {
            offsets[i] = rowLengths?[i] ?? cache?.Length ?? 0;
            longest = Math.Max(longest, offsets[i]);
        }
        int keys = longest + t;
        Reset(ctx, b, t, longest, memory, dropoutSeed, rowLengths is null ? null : offsets);
        ctx.Entropy = cache == null ? EntropyProbe : null;
        ctx.Codes = CodebookProbe;

        // Keys each row may see: right padding hides keys past each length; a uniform cache step sees
        // all it holds; a batch-cache row sees its own positions and its own source.
        var selfLengths = cache == null ? lengths : null;
        if (rowLengths != null)
        {
            selfLengths = Workspace.RentInts(b);                                                     // (B)
            for (int i = 0; i < b; i++) selfLengths[i] = offsets[i] + t;
        }
        var alibi = _pos.Kind == PositionKind.Alibi && Causal ? _alibi : null;
        if (ctx.SelfMasks.KeyLengths != selfLengths || ctx.SelfMasks.AlibiSlopes != alibi || ctx.SelfMasks.DistanceBias != null)
            ctx.SelfMasks = new AttentionMaskOptions { KeyLengths = selfLengths, AlibiSlopes = alibi };
        if (rowLengths != null && cache!.CrossLengths is { } sources)
        {
            memoryLengths = Workspace.RentInts(b);                                                   // (B)
            for (int i = 0; i < b; i++)
            {
                memoryLengths[i] = sources[i];
                ctx.CrossKeys = Math.Max(ctx.CrossKeys, sources[i]);
            }
        }
        if (ctx.CrossMasks.KeyLengths != memoryLengths)
            ctx.CrossMasks = new AttentionMaskOptions { KeyLengths = memoryLengths };

        switch (_pos.Kind)
        {
            case PositionKind.Rope:
                ctx.Rope = _rope;
                var positions = Workspace.RentFloats(b * t);                                         // (B·T)
                if (_pos.RopeCentered) for (int i = 0; i < b; i++) Rope.CenteredPositions(t, positions.AsSpan(i * t, t));
                else for (int i = 0; i < b * t; i++) positions[i] = offsets[i / t] + i % t;
                ctx.RopePositions = positions;
                break;
            case PositionKind.ComRope:
                ComRopePositions(ctx, offsets, b, t);
                break;
            case PositionKind.T5Relative when cache == null && Tape.Current == null && ctx.Entropy == null && t > 0:
                // An inference pass over a whole sequence (an encoder, a scored text) reads the bias by distance,
                // H·(2T − 1) values instead of the H·T·T of the gathered one.
                ctx.SelfMasks = ctx.SelfMasks with { DistanceBias = DistanceBias(t) };
                break;
            case PositionKind.T5Relative:
            case PositionKind.Urpe:
                ctx.SelfBias = RelativeBias(offsets, b, t, keys, perRow: rowLengths != null && b > 1);
                break;
            case PositionKind.Alibi:
                // A causal stack's slope·(j − i) differs between rows by a per-row constant only,
                // which softmax ignores, so the shared query offset serves every row.
                if (!Causal) ctx.SelfBias = SymmetricAlibi(t);                                       // (H, T, T)
                break;
        }

        if (!absoluteAdded)
        {
            x = AddAbsolutePositions(x, offsets, ctx);
            if (_embedNorm != null) x = _embedNorm.Forward(x);
        }
        bool checkpoint = CheckpointActivations && cache == null && Tape.Current != null;
        exit ??= cache?.Exit;
        if (exit != null && Tape.Current != null) throw new InvalidOperationException("early exit is an inference rule; a recorded pass trains every layer");
        if (exit != null && !exit.Never) x = ForwardExiting(x, lengths, ctx, cache, exit, b, t);
        else
            for (int i = 0; i < _blocks.Length; i++)
            {
                if (pooling > 0 && i == _blocks.Length - 1)
                {
                    x = _blocks[i].ForwardPooled(x, PoolingGroups(t, pooling), PooledQueries(ctx, b, t, pooling));
                    break;
                }
                using (Ops.KeepOutputs()) // the block's intermediates live until it ends (see KeepOutputs)
                    x = checkpoint ? CheckpointedBlock(_blocks[i], x, ctx) : _blocks[i].Forward(x, ctx, cache?.Self[i], cache?.Cross?[i]);
                if (layerOutputs != null && i < _blocks.Length - 1) layerOutputs.Add(_final is null ? x : _final.Forward(x));
            }
        if (exit is { Never: true })
        {
            // The stack ran whole: every unit counts every layer.
            var whole = Workspace.RentInts(Causal ? b * t : b);
            Array.Clear(whole);
            exit.Count(whole, whole.Length, Causal ? t : 1, _blocks.Length);
        }
        if (rowLengths != null) for (int i = 0; i < b; i++) rowLengths[i] += t;
        var output = _final is null ? x : _final.Forward(x);
        layerOutputs?.Add(output);
        return output;
    }

    /// <summary>
    /// The blocks under an early-exit rule (see <see cref="StackExit"/>): after each block but the last,
    /// units (examples in a bidirectional stack, tokens in a causal one) whose state barely changed stop;
    /// they keep their state through the later blocks, whose self-attention caches get its keys and
    /// values. Once every unit has stopped, the later blocks only write those cache entries (or, without a
    /// cache, are skipped).
    /// </summary>
    Var ForwardExiting(Var x, int[]? lengths, StackContext ctx, DecoderCache? cache, StackExit exit, int b, int t)
    {
        int d = _c.DModel;
        int units = Causal ? b * t : b, unitLength = Causal ? 1 : t;
        var depth = Workspace.RentInts(units);                                                       // (units) 0 while running, else blocks run
        Array.Clear(depth);
        int running = units;
        for (int i = 0; i < _blocks.Length; i++)
        {
            if (running == 0)
            {
                if (cache is null) break;
                _blocks[i].AppendKeys(x, ctx, cache.Self[i]);
                continue;
            }
            using (Ops.KeepOutputs()) // the block's intermediates live until it ends (see KeepOutputs)
            {
                var y = _blocks[i].Forward(x, ctx, cache?.Self[i], cache?.Cross?[i]);               // (B, T, D)
                running = exit.Decide(x.Value.AsReadOnlySpan<float>(), y.Value.AsSpan<float>(), i, i < _blocks.Length - 1, units, unitLength, d, Causal ? null : lengths, depth);
                GC.KeepAlive(x); // Decide read it through a span, which does not keep it alive
                x = y;
            }
        }
        exit.Count(depth, units, Causal ? t : 1, _blocks.Length);
        return x;
    }

    /// <summary>
    /// Near-equal sizes of the ⌈n/PF⌉ consecutive groups that pool n positions at factor PF, the larger ones
    /// first, summing to n (ARC-Encoder's <c>split_integer(n, −PF)</c>): 64 at PF 4 is 16 groups of 4, 10 at
    /// PF 4 is 4, 3, 3.
    /// </summary>
    public static int[] PoolingGroups(int n, int pooling)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(pooling, 1);
        int g = (n + pooling - 1) / pooling;
        var sizes = new int[g];
        for (int i = 0; i < g; i++) sizes[i] = n / g + (i < n % g ? 1 : 0);
        return sizes;
    }

    // The pooled block's query positions: compact, 0..G−1 (or centered), while the keys keep theirs.
    StackContext PooledQueries(StackContext ctx, int b, int t, int pooling)
    {
        if (ctx.Rope is null) return ctx;
        int g = (t + pooling - 1) / pooling;
        var positions = new float[b * g];                                                            // (B·G)
        for (int i = 0; i < b; i++)
            if (_pos.RopeCentered) Rope.CenteredPositions(g, positions.AsSpan(i * g, g));
            else for (int p = 0; p < g; p++) positions[i * g + p] = p;
        ctx.QueryRopePositions = positions;
        return ctx;
    }

    // A block under activation checkpointing. Its own method: a lambda capturing ctx in Forward would
    // allocate its closure on every call, decode steps included.
    static Var CheckpointedBlock(Block block, Var x, StackContext ctx) => Ops.Checkpoint(x, xi => block.Forward(xi, ctx, null, null));

    /// <summary>T5's relative-position bias of a cacheless pass of T positions, by distance (<see cref="AttentionMaskOptions.DistanceBias"/>).</summary>
    float[] DistanceBias(int t)
    {
        var table = _ps[_relTable!];                                                                 // (buckets, H)
        int h = _c.Heads;
        var bias = Workspace.RentFloats(h * (2 * t - 1));                                           // (H, 2T − 1)
        PositionBias.DistanceBias(table.Value.AsReadOnlySpan<float>(), _pos.RelativeBuckets, h, t, t, bidirectional: !Causal, _pos.RelativeMaxDistance, 0, bias);
        return bias;
    }

    /// <summary>
    /// T5's relative-position bias for queries [offset_i, offset_i + T) over <paramref name="keys"/>
    /// keys. Rows at one offset (and a lone row) share one (H, T, keys) bias. Rows at their own offsets (a batch-cache
    /// step, T = 1) gather per row, (b, H, 1, keys), through the same op: the table (buckets, H) is read
    /// as (buckets·H, 1) and query row (i·H + h) looks up bucket(j − offset_i)·H + h.
    /// </summary>
    Var RelativeBias(int[] offsets, int b, int t, int keys, bool perRow)
    {
        var table = Var.Of(_ps[_relTable!]);                                                         // (buckets, H)
        if (!perRow)
        {
            var shared = Workspace.RentInts(t * keys);                                               // (T, keys)
            PositionBias.T5Buckets(shared, t, keys, bidirectional: !Causal, _pos.RelativeBuckets, _pos.RelativeMaxDistance, b == 0 ? 0 : offsets[0]);
            return Ops.RelativePositionBias(table, shared, t, keys);                                 // (H, T, keys)
        }
        int h = _c.Heads, nb = _pos.RelativeBuckets;
        var buckets = Workspace.RentInts(b * h * keys);                                              // (b·H, keys)
        for (int i = 0; i < b; i++)
        {
            var row = buckets.AsSpan(i * h * keys, keys);
            PositionBias.T5Buckets(row, 1, keys, bidirectional: !Causal, nb, _pos.RelativeMaxDistance, offsets[i]);
            for (int j = 0; j < keys; j++) row[j] *= h;
            for (int k = 1; k < h; k++)
                for (int j = 0; j < keys; j++) buckets[(i * h + k) * keys + j] = row[j] + k;
        }
        return Ops.RelativePositionBias(Ops.Reshape(table, nb * h, 1), buckets, b * h, keys);       // (1, b·H, keys) = (b, H, 1, keys)
    }

    /// <summary>
    /// ComRoPE's positions for this pass, as RoPE's (from each row's offset, or centered): the distinct
    /// positions get one rotation each, so rows at one offset (training, a uniform cache) share T
    /// rotations, and rows at their own offsets (a batch-cache step) get their own.
    /// </summary>
    void ComRopePositions(StackContext ctx, int[] offsets, int b, int t)
    {
        var slots = Workspace.RentInts(b * t);                                                      // (B·T)
        bool shared = true;
        for (int i = 1; i < b && shared; i++) shared = offsets[i] == offsets[0];
        int distinct = shared || _pos.RopeCentered ? t : b * t;
        var positions = Workspace.RentFloats(distinct);                                              // (P)
        if (_pos.RopeCentered) Rope.CenteredPositions(t, positions);
        else for (int i = 0; i < distinct; i++) positions[i] = offsets[i / t] + i % t;
        for (int i = 0; i < b * t; i++) slots[i] = distinct == t ? i % t : i;
        ctx.ComRopePositions = positions;
        ctx.ComRopeSlots = slots;
    }

    // The per-pass fields of a (possibly reused) context: shape, offsets, and the attention options.
    void Reset(StackContext ctx, int batch, int length, int offset, Var? memory, ulong dropoutSeed, int[]? rowOffsets)
    {
        ctx.Batch = batch;
        ctx.Length = length;
        ctx.Offset = offset;
        ctx.Memory = memory;
        ctx.DropoutSeed = dropoutSeed;
        ctx.Rope = null;
        ctx.RopePositions = null;
        ctx.QueryRopePositions = null;
        ctx.ComRopePositions = null;
        ctx.ComRopeSlots = null;
        ctx.SelfBias = null;
        ctx.RowOffsets = rowOffsets;
        ctx.CrossKeys = 0;
        ctx.SelfOptions = new AttentionOptions { Scale = _c.AttentionScale, Causal = Causal, QueryOffset = offset, SoftCap = _c.AttentionSoftCap };
        ctx.CrossOptions = new AttentionOptions { Scale = _c.AttentionScale, SoftCap = _c.AttentionSoftCap };
    }

    /// <summary>
    /// Adds learned or sinusoidal absolute positions to x (B, T, D), row i at [offsets[i], offsets[i] + T)
    /// (null: every row from 0); other schemes return x. A decoding session's context keeps the
    /// sinusoid buffer, so a step allocates none.
    /// </summary>
    internal Var AddAbsolutePositions(Var x, int[]? offsets, StackContext? ctx = null)
    {
        int b = x.Shape[0], t = x.Shape[1];
        switch (_pos.Kind)
        {
            case PositionKind.Learned:
                var ids = Workspace.RentInts(b * t);                                                 // (B·T)
                for (int i = 0; i < b; i++)
                {
                    int offset = offsets?[i] ?? 0;
                    if (offset + t > _c.MaxPositions) throw new ArgumentException($"sequence of {offset + t} positions exceeds max_positions {_c.MaxPositions}");
                    for (int p = 0; p < t; p++) ids[i * t + p] = offset + p + _pos.LearnedOffset;
                }
                return Ops.Add(x, Ops.Embedding(Var.Of(_ps[_learned!]), ids, b, t));
            case PositionKind.Sinusoidal:
                int d = _c.DModel;
                var kept = ctx?.Sinusoids;
                var pe = kept != null && kept.Shape[0] == b && kept.Shape[1] == t ? kept : Tensor.Empty(DType.F32, b, t, d);   // (B, T, D)
                var s = pe.AsSpan<float>();
                for (int i = 0; i < b; i++)
                {
                    if (i > 0 && offsets?[i] == offsets?[0]) s[..(t * d)].CopyTo(s.Slice(i * t * d, t * d));
                    else for (int p = 0; p < t; p++) SinusoidRow((offsets?[i] ?? 0) + p, s.Slice((i * t + p) * d, d), _pos.SinusoidHalves);
                }
                if (ctx is null) return Ops.Add(x, Var.Constant(pe));
                // The context owns its buffer; the constant only borrows it.
                ctx.Sinusoids = pe;
                return Ops.Add(x, Var.Constant(pe, owned: false));
            default:
                return x;
        }
    }

    // A bidirectional stack penalizes distance either way: bias = −slope·|s − t|.
    Var SymmetricAlibi(int t)
    {
        int h = _alibi!.Length;
        var bias = Tensor.Empty(DType.F32, h, t, t);
        var s = bias.AsSpan<float>();
        for (int i = 0; i < h; i++)
            for (int q = 0; q < t; q++)
                for (int k = 0; k < t; k++)
                    s[(i * t + q) * t + k] = -_alibi[i] * Math.Abs(k - q);
        return Var.Constant(bias);
    }

    // Vaswani et al. 2017: PE(p, 2i) = sin(p/10000^(2i/D)), PE(p, 2i+1) = cos(·). Marian's layout (halves)
    // puts the same values as [sin of every frequency | cos of every frequency]: column k < ⌈D/2⌉ holds
    // sin(p/10000^(2k/D)), column ⌈D/2⌉ + k holds cos(p/10000^(2k/D)) (MarianSinusoidalPositionalEmbedding,
    // computed in float64 as there).
    internal static void SinusoidRow(int position, Span<float> row, bool halves = false)
    {
        int d = row.Length;
        for (int i = 0; i < d; i++)
        {
            double angle = position / Math.Pow(10000, 2 * (i / 2) / (double)d);
            float value = (float)(i % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle));
            row[halves ? (i % 2 == 0 ? i / 2 : (d + 1) / 2 + i / 2) : i] = value;
        }
    }

    /// <summary>Empty per-layer caches for <paramref name="batch"/> sequences of up to <paramref name="capacity"/> positions, stored as <paramref name="dtype"/>.</summary>
    internal LayerCache[] CreateCaches(int batch, int capacity, KvCacheDType dtype = KvCacheDType.F32) =>
        Enumerable.Range(0, _blocks.Length).Select(_ => new LayerCache(batch, capacity, _c.KvHeads, _c.HeadDim, dtype)).ToArray();
}
