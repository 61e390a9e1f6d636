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

    /// <summary>Positions decoded so far.</summary>
    public int Length => Self.Length == 0 ? 0 : Self[0].Length;

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
    readonly string? _relTable;
    readonly string? _learned;
    readonly float[]? _alibi;
    readonly RopeCache? _rope;

    internal TransformerStack(ParameterSet ps, string scope, ModelConfig c, int layers, bool causal, bool cross)
    {
        _c = c;
        _ps = ps;
        Causal = causal;
        _pos = causal ? c.DecoderPositions : c.EncoderPositions;
        if (_pos.Kind == PositionKind.Learned)
        {
            _learned = scope + ".embed_positions.weight";
            ps.Create(_learned, [c.MaxPositions, c.DModel], ParameterSet.Init.Normal);
        }
        if (_pos.Kind == PositionKind.T5Relative)
        {
            // T5 keeps one table per stack (in block 0) and shares it across the layers.
            _relTable = scope + ".relative_attention_bias.weight";
            ps.Create(_relTable, [_pos.RelativeBuckets, c.Heads], ParameterSet.Init.Normal);
        }
        if (_pos.Kind == PositionKind.Alibi) _alibi = PositionBias.AlibiSlopes(c.Heads);
        if (_pos.Kind == PositionKind.Rope) _rope = new RopeCache(c.HeadDim, 0, _pos.Rope);
        _blocks = new Block[layers];
        for (int i = 0; i < layers; i++) _blocks[i] = new Block(ps, $"{scope}.layers.{i}", c, cross, i);
        if (c.FinalNorm && !c.PostNorm) _final = new NormLayer(ps, scope + ".final_norm", c.DModel, c.Norm, c.NormEps);
    }

    /// <summary>True for the decoder (causal self-attention).</summary>
    public bool Causal { get; }

    /// <summary>Number of blocks.</summary>
    public int Layers => _blocks.Length;

    /// <summary>
    /// Runs the blocks over embedded inputs x (B, T, D). <paramref name="lengths"/> (B) are the valid
    /// lengths of right-padded inputs (null: none padded); <paramref name="cache"/> makes a decoder
    /// step incremental (its length is the position offset).
    /// </summary>
    internal Var Forward(Var x, int[]? lengths, Var? memory, int[]? memoryLengths, DecoderCache? cache, ulong dropoutSeed, bool absoluteAdded = false)
    {
        int b = x.Shape[0], t = x.Shape[1];
        int offset = cache?.Length ?? 0;
        int keys = offset + t;
        // A decoding session reuses one context (and the workspace reuses the arrays), so a step allocates nothing.
        var ctx = cache?.Context ?? new StackContext();
        ctx.Batch = b;
        ctx.Length = t;
        ctx.Offset = offset;
        ctx.Memory = memory;
        ctx.DropoutSeed = dropoutSeed;
        ctx.Rope = null;
        ctx.RopePositions = null;
        ctx.SelfBias = null;
        float? scale = _c.AttentionScale;
        ctx.SelfOptions = new AttentionOptions { Scale = scale, Causal = Causal, QueryOffset = offset };
        ctx.CrossOptions = new AttentionOptions { Scale = scale };
        // Right padding hides keys past each length; a causal decoder step over a cache sees all it holds.
        var selfLengths = cache == null ? lengths : null;
        var alibi = _pos.Kind == PositionKind.Alibi && Causal ? _alibi : null;
        if (ctx.SelfMasks.KeyLengths != selfLengths || ctx.SelfMasks.AlibiSlopes != alibi)
            ctx.SelfMasks = new AttentionMasks { KeyLengths = selfLengths, AlibiSlopes = alibi };
        if (ctx.CrossMasks.KeyLengths != memoryLengths)
            ctx.CrossMasks = new AttentionMasks { KeyLengths = memoryLengths };

        switch (_pos.Kind)
        {
            case PositionKind.Rope:
                ctx.Rope = _rope;
                var positions = Workspace.RentFloats(b * t);                                          // (B·T)
                if (_pos.RopeCentered) Rope.CenteredPositions(t, positions.AsSpan(0, t));
                else for (int i = 0; i < t; i++) positions[i] = offset + i;
                for (int i = 1; i < b; i++) positions.AsSpan(0, t).CopyTo(positions.AsSpan(i * t, t));
                ctx.RopePositions = positions;
                break;
            case PositionKind.T5Relative:
                var buckets = Workspace.RentInts(t * keys);                                           // (T, keys)
                PositionBias.T5Buckets(buckets, t, keys, bidirectional: !Causal, _pos.RelativeBuckets, _pos.RelativeMaxDistance, offset);
                ctx.SelfBias = Ops.RelativePositionBias(Var.Of(_ps[_relTable!]), buckets, t, keys);   // (H, T, keys)
                break;
            case PositionKind.Alibi:
                if (!Causal) ctx.SelfBias = SymmetricAlibi(t);                                        // (H, T, T)
                break;
        }

        if (!absoluteAdded) x = AddAbsolutePositions(x, offset);
        for (int i = 0; i < _blocks.Length; i++)
            x = _blocks[i].Forward(x, ctx, cache?.Self[i], cache?.Cross?[i]);
        return _final is null ? x : _final.Forward(x);
    }

    /// <summary>Adds learned or sinusoidal absolute positions [offset, offset + T) to x (B, T, D); other schemes return x.</summary>
    internal Var AddAbsolutePositions(Var x, int offset)
    {
        int b = x.Shape[0], t = x.Shape[1];
        switch (_pos.Kind)
        {
            case PositionKind.Learned:
                if (offset + t > _c.MaxPositions) throw new ArgumentException($"sequence of {offset + t} positions exceeds max_positions {_c.MaxPositions}");
                var ids = Workspace.RentInts(b * t);
                for (int i = 0; i < ids.Length; i++) ids[i] = offset + i % t;
                return Ops.Add(x, Ops.Embedding(Var.Of(_ps[_learned!]), ids, b, t));
            case PositionKind.Sinusoidal:
                return Ops.Add(x, Var.Constant(Sinusoids(b, t, offset)));
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

    // Vaswani et al. 2017: PE(p, 2i) = sin(p/10000^(2i/D)), PE(p, 2i+1) = cos(·); (B, T, D).
    Tensor Sinusoids(int b, int t, int offset)
    {
        int d = _c.DModel;
        var pe = Tensor.Empty(DType.F32, b, t, d);
        var s = pe.AsSpan<float>();
        for (int p = 0; p < t; p++)
            for (int i = 0; i < d; i++)
            {
                double angle = (offset + p) / Math.Pow(10000, 2 * (i / 2) / (double)d);
                s[p * d + i] = (float)(i % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle));
            }
        for (int j = 1; j < b; j++) s[..(t * d)].CopyTo(s.Slice(j * t * d, t * d));
        return pe;
    }

    /// <summary>Empty per-layer caches for <paramref name="batch"/> sequences of up to <paramref name="capacity"/> positions.</summary>
    internal LayerCache[] CreateCaches(int batch, int capacity) =>
        Enumerable.Range(0, _blocks.Length).Select(_ => new LayerCache(batch, capacity, _c.KvHeads * _c.HeadDim)).ToArray();
}
