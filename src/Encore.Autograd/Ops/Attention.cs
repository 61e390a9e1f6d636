using System.Numerics.Tensors;
using Encore.Tensors;
using Encore.Tensors.Kernels;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

/// <summary>Masks of <see cref="Ops.Attention"/> that are not differentiable; all optional.</summary>
public sealed record AttentionMasks
{
    /// <summary>(B): valid key count per batch item (right padding). Null: all keys valid.</summary>
    public int[]? KeyLengths { get; init; }

    /// <summary>(B, S): 1 where a key is visible. Null: all visible.</summary>
    public byte[]? KeyMask { get; init; }

    /// <summary>(H): ALiBi slopes. Null: no ALiBi.</summary>
    public float[]? AlibiSlopes { get; init; }
}

public static partial class Ops
{
    /// <summary>
    /// Multi-head scaled dot-product attention on projection outputs, with no transposes:
    /// q (B, T, H·hd), k and v (B, S, Hkv·hd) → (B, T, H·hd). <paramref name="bias"/> is an optional
    /// additive bias (H, T, S) shared by the batch — e.g. T5's relative position bias — and gets a
    /// gradient. The forward keeps the log-sum-exp per row; the backward is FlashAttention-2's,
    /// recomputing the probabilities from it (see <see cref="Tensors.Kernels.Attention"/>).
    /// </summary>
    public static Var Attention(Var q, Var k, Var v, int heads, int kvHeads, AttentionOptions options = default, AttentionMasks? masks = null, Var? bias = null)
    {
        if (q.Value.Rank != 3 || k.Value.Rank != 3 || v.Value.Rank != 3)
            throw new ArgumentException($"Attention: q, k, v must be (B, L, heads·hd); got {q.Value.Describe()}, {k.Value.Describe()}, {v.Value.Describe()}");
        int b = q.Shape[0], t = q.Shape[1], s = k.Shape[1];
        if (heads < 1 || kvHeads < 1 || heads % kvHeads != 0 || q.Shape[2] % heads != 0)
            throw new ArgumentException($"Attention: {heads} heads and {kvHeads} kv heads do not split q {q.Value.Describe()}");
        int hd = q.Shape[2] / heads;
        if (k.Shape[0] != b || v.Shape[0] != b || k.Shape[2] != kvHeads * hd || !v.Shape.SequenceEqual(k.Shape))
            throw new ArgumentException($"Attention: k {k.Value.Describe()} and v {v.Value.Describe()} must be (B={b}, S, {kvHeads}·{hd})");
        if (bias != null && (bias.Value.Rank != 3 || bias.Shape[0] != heads || bias.Shape[1] != t || bias.Shape[2] != s))
            throw new ArgumentException($"Attention: bias {bias.Value.Describe()} must be (H={heads}, T={t}, S={s})");
        var shape = new AttentionShape(b, heads, kvHeads, t, s, hd);
        var qs = AttentionStrides.PositionMajor(heads, t, hd);
        var ks = AttentionStrides.PositionMajor(kvHeads, s, hd);
        var y = Tensor.Empty(DType.F32, b, t, heads * hd);
        var lse = new float[b * heads * t];
        masks ??= new AttentionMasks();
        var m = new AttentionMask
        {
            KeyLengths = masks.KeyLengths,
            KeyMask = masks.KeyMask,
            AlibiSlopes = masks.AlibiSlopes,
            Bias = bias is null ? default : bias.Data(),
        };
        Tensors.Kernels.Attention.Forward(shape, q.Data(), qs, k.Data(), ks, v.Data(), ks, y.AsSpan<float>(), qs, options, m, lse);
        Var[] inputs = bias is null ? [q, k, v] : [q, k, v, bias];
        return Tape.Output(y, inputs, o =>
        {
            var dq = new float[q.Value.Length];
            var dk = new float[k.Value.Length];
            var dv = new float[v.Value.Length];
            var dBias = bias is { RequiresGrad: true } ? new float[bias.Value.Length] : null;
            var mb = new AttentionMask
            {
                KeyLengths = masks.KeyLengths,
                KeyMask = masks.KeyMask,
                AlibiSlopes = masks.AlibiSlopes,
                Bias = bias is null ? default : bias.Data(),
            };
            Tensors.Kernels.Attention.Backward(shape, q.Data(), qs, k.Data(), ks, v.Data(), ks, o.Data(), qs, o.OutGrad(), qs, lse,
                dq, qs, dk, ks, dv, ks, options, mb, dBias);
            if (q.RequiresGrad) TensorPrimitives.Add(q.GradSpan(), dq, q.GradSpan());
            if (k.RequiresGrad) TensorPrimitives.Add(k.GradSpan(), dk, k.GradSpan());
            if (v.RequiresGrad) TensorPrimitives.Add(v.GradSpan(), dv, v.GradSpan());
            if (dBias != null && bias != null) TensorPrimitives.Add(bias.GradSpan(), dBias, bias.GradSpan());
        });
    }

    /// <summary>
    /// T5's learned relative position bias: gathers (H, T, S) from a table (numBuckets, H) by
    /// bucket ids (T, S) (see <see cref="PositionBias.T5Buckets"/>). Backward: scatter-add into the table.
    /// </summary>
    public static Var RelativePositionBias(Var table, int[] buckets, int queryLength, int keyLength)
    {
        if (table.Value.Rank != 2) throw new ArgumentException($"RelativePositionBias: table {table.Value.Describe()} must be (buckets, H)");
        int nb = table.Shape[0], h = table.Shape[1];
        if (buckets.Length != queryLength * keyLength) throw new ArgumentException($"RelativePositionBias: {buckets.Length} buckets for {queryLength}×{keyLength}");
        var y = Tensor.Empty(DType.F32, h, queryLength, keyLength);
        PositionBias.GatherBias(table.Data(), nb, h, buckets, queryLength, keyLength, y.AsSpan<float>());
        return Tape.Output(y, [table], o =>
        {
            if (table.RequiresGrad) PositionBias.GatherBiasBackward(o.OutGrad(), h, buckets, queryLength, keyLength, table.GradSpan());
        });
    }
}
