using System.Numerics.Tensors;
using Encore.Tensors;
using Encore.Tensors.Kernels;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

/// <summary>
/// The masks of <see cref="Ops.Attention"/>, none differentiable and all optional, held as arrays so a
/// decoding session keeps one across steps; each call views them as the kernel's <see cref="AttentionMask"/>.
/// </summary>
public sealed record AttentionMaskOptions
{
    /// <summary>No masks.</summary>
    public static AttentionMaskOptions None { get; } = new();

    /// <summary>(B): valid key count per batch item (right padding). Null: all keys valid.</summary>
    public int[]? KeyLengths { get; init; }

    /// <summary>(B, S): 1 where a key is visible. Null: all visible.</summary>
    public byte[]? KeyMask { get; init; }

    /// <summary>(H): ALiBi slopes. Null: no ALiBi.</summary>
    public float[]? AlibiSlopes { get; init; }

    /// <summary>
    /// (H, T + S − 1): a bias by query–key distance (<see cref="AttentionMask.DistanceBias"/>), for inference
    /// passes only: an op that records a gradient refuses it. Null: none.
    /// </summary>
    public float[]? DistanceBias { get; init; }
}

public static partial class Ops
{
    /// <summary>
    /// Checks q (B, T, H·hd), k and v (B, S, Hkv·hd) and a bias (H, T, S) for an attention op named
    /// <paramref name="op"/>, and gives the kernel's shape and the position-major strides of q and k/v.
    /// </summary>
    internal static (AttentionShape Shape, AttentionStrides Queries, AttentionStrides Keys) Layout(string op, Var q, Var k, Var v, int heads, int kvHeads, Var? bias)
    {
        if (q.Value.Rank != 3 || k.Value.Rank != 3 || v.Value.Rank != 3)
            throw new ArgumentException($"{op}: q, k, v must be (B, L, heads·hd); got {q.Value.Describe()}, {k.Value.Describe()}, {v.Value.Describe()}");
        int b = q.Shape[0], t = q.Shape[1], s = k.Shape[1];
        if (heads < 1 || kvHeads < 1 || heads % kvHeads != 0 || q.Shape[2] % heads != 0)
            throw new ArgumentException($"{op}: {heads} heads and {kvHeads} kv heads do not split q {q.Value.Describe()}");
        int hd = q.Shape[2] / heads;
        if (k.Shape[0] != b || v.Shape[0] != b || k.Shape[2] != kvHeads * hd || !v.Shape.SequenceEqual(k.Shape))
            throw new ArgumentException($"{op}: k {k.Value.Describe()} and v {v.Value.Describe()} must be (B={b}, S, {kvHeads}·{hd})");
        if (bias != null && (bias.Value.Rank != 3 || bias.Shape[0] != heads || bias.Shape[1] != t || bias.Shape[2] != s))
            throw new ArgumentException($"{op}: bias {bias.Value.Describe()} must be (H={heads}, T={t}, S={s})");
        return (new AttentionShape(b, heads, kvHeads, t, s, hd), AttentionStrides.PositionMajor(heads, t, hd), AttentionStrides.PositionMajor(kvHeads, s, hd));
    }

    /// <summary>
    /// Multi-head scaled dot-product attention on projection outputs, with no transposes:
    /// q (B, T, H·hd), k and v (B, S, Hkv·hd) → (B, T, H·hd). <paramref name="bias"/> is an optional
    /// additive bias (H, T, S) shared by the batch — e.g. T5's relative position bias — and gets a
    /// gradient. The forward keeps the log-sum-exp per row; the backward is FlashAttention-2's,
    /// recomputing the probabilities from it (see <see cref="Tensors.Kernels.Attention"/>).
    /// </summary>
    public static Var Attention(Var q, Var k, Var v, int heads, int kvHeads, AttentionOptions options = default, AttentionMaskOptions? masks = null, Var? bias = null)
    {
        var (shape, qs, ks) = Layout("Attention", q, k, v, heads, kvHeads, bias);
        int b = shape.Batch, t = shape.QueryLength;
        var y = NewOutput(q, Grad(q, k, v, bias));
        masks ??= AttentionMaskOptions.None;
        if (y.RequiresGrad && masks.DistanceBias != null)
            throw new InvalidOperationException("Attention: a distance bias is for inference passes; a recorded pass takes the (H, T, S) bias");
        float[]? lse = y.RequiresGrad ? new float[b * heads * t] : null;
        Tensors.Kernels.Attention.Forward(shape, new(q.Data(), qs, k.Data(), ks, v.Data(), ks), y.Value.AsSpan<float>(), qs, options, Mask(masks, bias), lse);
        if (y.RequiresGrad) RecordAttention(y, q, k, v, bias, shape, options, masks, lse!);
        return y;
    }

    static AttentionMask Mask(AttentionMaskOptions masks, Var? bias) => new()
    {
        KeyLengths = masks.KeyLengths,
        KeyMask = masks.KeyMask,
        AlibiSlopes = masks.AlibiSlopes,
        DistanceBias = masks.DistanceBias,
        Bias = bias is null ? default : bias.Data(),
    };

    static void RecordAttention(Var y, Var q, Var k, Var v, Var? bias, AttentionShape shape, AttentionOptions options, AttentionMaskOptions masks, float[] lse) => Record(y, o =>
    {
        var qs = AttentionStrides.PositionMajor(shape.Heads, shape.QueryLength, shape.HeadDim);
        var ks = AttentionStrides.PositionMajor(shape.KvHeads, shape.KeyLength, shape.HeadDim);
        // The kernel overwrites dq, dk, dv and dBias whole.
        var dq = q.BeginGrad();
        var dk = k.BeginGrad();
        var dv = v.BeginGrad();
        var dBias = bias is { RequiresGrad: true } ? bias.BeginGrad() : default;
        Tensors.Kernels.Attention.Backward(shape, new(q.Data(), qs, k.Data(), ks, v.Data(), ks), o.Data(), qs, o.OutGrad(), qs, lse,
            new(dq.Span, qs, dk.Span, ks, dv.Span, ks), options, Mask(masks, bias), bias is { RequiresGrad: true } ? dBias.Span : default);
        dq.Commit();
        dk.Commit();
        dv.Commit();
        if (bias is { RequiresGrad: true }) dBias.Commit();
    });

    /// <summary>
    /// T5's learned relative position bias: gathers (H, T, S) from a table (numBuckets, H) by
    /// bucket ids (T, S) (see <see cref="PositionBias.T5Buckets"/>). Backward: scatter-add into the table.
    /// </summary>
    public static Var RelativePositionBias(Var table, int[] buckets, int queryLength, int keyLength)
    {
        if (table.Value.Rank != 2) throw new ArgumentException($"RelativePositionBias: table {table.Value.Describe()} must be (buckets, H)");
        int nb = table.Shape[0], h = table.Shape[1];
        if (buckets.Length != queryLength * keyLength) throw new ArgumentException($"RelativePositionBias: {buckets.Length} buckets for {queryLength}×{keyLength}");
        var y = NewOutput([h, queryLength, keyLength], Grad(table));
        PositionBias.GatherBias(table.Data(), nb, h, buckets, queryLength, keyLength, y.Value.AsSpan<float>());
        if (y.RequiresGrad) RecordRelativeBias(y, table, buckets, h, queryLength, keyLength);
        return y;
    }

    static void RecordRelativeBias(Var y, Var table, int[] buckets, int h, int queryLength, int keyLength) => Record(y, o =>
        PositionBias.GatherBiasBackward(o.OutGrad(), h, buckets, queryLength, keyLength, table.GradSpan()));

    /// <summary>
    /// Checks head-major key/value caches (B, Hkv, capacity, hd) against queries q (B, T, H·hd) and a
    /// used <paramref name="length"/>, and gives the kernel's shape and strides for reading them in
    /// place. With <paramref name="exactRows"/> false the caches may hold more rows than q (the first B are read).
    /// </summary>
    internal static (AttentionShape Shape, AttentionStrides Queries, AttentionStrides Keys) CachedLayout(string op, Var q, Tensor kCache, Tensor vCache,
        int length, int heads, int kvHeads, bool exactRows)
    {
        int b = q.Shape[0], t = q.Shape[1], hd = q.Shape[2] / heads;
        if (kCache.Rank != 4 || (exactRows ? kCache.Shape[0] != b : kCache.Shape[0] < b) || kCache.Shape[1] != kvHeads || kCache.Shape[3] != hd || !kCache.IsContiguous
            || !vCache.Shape.SequenceEqual(kCache.Shape) || !vCache.IsContiguous)
            throw new ArgumentException($"{op}: caches {kCache.Describe()}, {vCache.Describe()} must be contiguous ({(exactRows ? "" : "≥ ")}B={b}, Hkv={kvHeads}, capacity, hd={hd})");
        int capacity = kCache.Shape[2];
        if (length < 0 || length > capacity) throw new ArgumentOutOfRangeException(nameof(length), $"cache length {length} is outside [0, {capacity}]");
        return (new AttentionShape(b, heads, kvHeads, t, length, hd), AttentionStrides.PositionMajor(heads, t, hd),
            new AttentionStrides(checked(kvHeads * capacity * hd), capacity * hd, hd));
    }

    /// <summary>
    /// Inference attention of new queries q (B, T, H·hd) against the first <paramref name="length"/>
    /// positions of head-major key/value caches (B, Hkv, capacity, hd), read in place through
    /// strides. No gradient (a cache is an inference structure). Causal masking uses
    /// <see cref="AttentionOptions.QueryOffset"/> = length − T for self-attention over a growing cache.
    /// </summary>
    public static Var AttentionCached(Var q, Tensor kCache, Tensor vCache, int length, int heads, int kvHeads,
        AttentionOptions options = default, AttentionMaskOptions? masks = null, Var? bias = null)
    {
        if (Tape.Current != null && q.RequiresGrad) throw new InvalidOperationException("AttentionCached is for inference; record training steps with Attention");
        var (shape, qs, ks) = CachedLayout("AttentionCached", q, kCache, vCache, length, heads, kvHeads, exactRows: true);
        var y = NewOutput(q, requiresGrad: false);
        Tensors.Kernels.Attention.Forward(shape, new(q.Data(), qs, kCache.AsReadOnlySpan<float>(), ks, vCache.AsReadOnlySpan<float>(), ks),
            y.Value.AsSpan<float>(), qs, options, Mask(masks ?? AttentionMaskOptions.None, bias));
        return y;
    }
    /// <summary>
    /// <see cref="AttentionCached(Var, Tensor, Tensor, int, int, int, AttentionOptions, AttentionMaskOptions?, Var?)"/> over int8
    /// key/value caches (B', Hkv, capacity, hd) with B' ≥ B, whose first B rows are read, in place:
    /// the keys and values are never dequantized as a whole (see <see cref="Tensors.Kernels.Attention.ForwardInt8"/>).
    /// </summary>
    public static Var AttentionCached(Var q, Int8Heads kCache, Int8Heads vCache, int length, int heads, int kvHeads,
        AttentionOptions options = default, AttentionMaskOptions? masks = null, Var? bias = null)
    {
        ArgumentNullException.ThrowIfNull(kCache);
        ArgumentNullException.ThrowIfNull(vCache);
        if (Tape.Current != null && q.RequiresGrad) throw new InvalidOperationException("AttentionCached is for inference; record training steps with Attention");
        int b = q.Shape[0], t = q.Shape[1], hd = q.Shape[2] / heads;
        if (kCache.Batch < b || kCache.Heads != kvHeads || kCache.HeadDim != hd
            || vCache.Batch != kCache.Batch || vCache.Heads != kvHeads || vCache.Length != kCache.Length || vCache.HeadDim != hd)
            throw new ArgumentException($"AttentionCached: int8 caches ({kCache.Batch}, {kCache.Heads}, {kCache.Length}, {kCache.HeadDim}) and ({vCache.Batch}, {vCache.Heads}, {vCache.Length}, {vCache.HeadDim}) must be (≥ B={b}, Hkv={kvHeads}, capacity, hd={hd})");
        int capacity = kCache.Length;
        if (length < 0 || length > capacity) throw new ArgumentOutOfRangeException(nameof(length), $"cache length {length} is outside [0, {capacity}]");
        var shape = new AttentionShape(b, heads, kvHeads, t, length, hd);
        var qs = AttentionStrides.PositionMajor(heads, t, hd);
        var y = NewOutput(q, requiresGrad: false);
        Tensors.Kernels.Attention.ForwardInt8(shape, q.Data(), qs, kCache.Operand, vCache.Operand,
            y.Value.AsSpan<float>(), qs, options, Mask(masks ?? AttentionMaskOptions.None, bias));
        return y;
    }
}
