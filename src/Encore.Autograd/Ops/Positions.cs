using Encore.Tensors;
using Encore.Tensors.Kernels;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

public static partial class Ops
{
    /// <summary>
    /// ComRoPE-LD rotations R(p) = exp(p·λ·(P − Pᵀ)) (see <see cref="ComRope"/>): basis P (G, nb, b, b) and
    /// scale λ (G, nb) → (positions, G, nb, b, b), one slot per entry of <paramref name="positions"/>.
    /// Backward: the adjoint Fréchet derivative of the exponential, into P and λ.
    /// </summary>
    public static Var ComRopeRotations(Var basis, Var scale, ReadOnlySpan<float> positions)
    {
        if (basis.Value.Rank != 4 || basis.Shape[2] != basis.Shape[3] || scale.Value.Rank != 2
            || scale.Shape[0] != basis.Shape[0] || scale.Shape[1] != basis.Shape[1])
            throw new ArgumentException($"ComRopeRotations: basis {basis.Value.Describe()} must be (G, nb, b, b) and scale {scale.Value.Describe()} (G, nb)");
        int g = basis.Shape[0], nb = basis.Shape[1], b = basis.Shape[2];
        var y = NewOutput([positions.Length, g, nb, b, b], Grad(basis, scale));
        Tensors.Kernels.ComRope.Rotations(basis.Data(), scale.Data(), g, nb, b, positions, y.Value.AsSpan<float>());
        if (y.RequiresGrad) RecordComRopeRotations(y, basis, scale, positions.ToArray());
        return y;
    }

    static void RecordComRopeRotations(Var y, Var basis, Var scale, float[] positions) => Record(y, o =>
    {
        int g = basis.Shape[0], nb = basis.Shape[1], b = basis.Shape[2];
        Tensors.Kernels.ComRope.RotationsBackward(basis.Data(), scale.Data(), g, nb, b, positions, o.OutGrad(), basis.GradSpan(), scale.GradSpan());
    });

    /// <summary>
    /// Applies ComRoPE rotations (positions, G, nb, b, b) to x (B, T, heads·hd): row r = b·T + t turns by
    /// the rotations of slot <paramref name="slots"/>[r]; head h reads kv head h / (heads / G), so queries
    /// and their keys turn alike under grouped-query attention. Backward: dx = Rᵀ·dy and dR = dy·xᵀ.
    /// </summary>
    public static Var ComRope(Var x, Var rotations, int heads, ReadOnlySpan<int> slots)
    {
        if (rotations.Value.Rank != 5) throw new ArgumentException($"ComRope: rotations {rotations.Value.Describe()} must be (positions, G, nb, b, b)");
        int width = x.Shape[^1];
        int rows = (int)(x.Value.Length / Math.Max(1, width));
        if (heads < 1 || width % heads != 0) throw new ArgumentException($"ComRope: {heads} heads do not split {x.Value.Describe()}");
        int hd = width / heads, g = rotations.Shape[1], b = rotations.Shape[3];
        if (rotations.Shape[2] * b != hd) throw new ArgumentException($"ComRope: {rotations.Shape[2]} blocks of {b} do not cover head_dim {hd}");
        var y = NewOutput(x, Grad(x, rotations));
        Tensors.Kernels.ComRope.Apply(x.Data(), y.Value.AsSpan<float>(), rows, heads, hd, g, b, rotations.Data(), slots);
        if (y.RequiresGrad) RecordComRope(y, x, rotations, rows, heads, hd, g, b, slots.ToArray());
        return y;
    }

    static void RecordComRope(Var y, Var x, Var rotations, int rows, int heads, int hd, int g, int b, int[] slots) => Record(y, o =>
    {
        if (x.RequiresGrad)
        {
            var dx = x.BeginGrad();
            Tensors.Kernels.ComRope.Apply(o.OutGrad(), dx.Span, rows, heads, hd, g, b, rotations.Data(), slots, transpose: true);
            dx.Commit();
        }
        if (rotations.RequiresGrad)
            Tensors.Kernels.ComRope.ApplyBackwardRotations(x.Data(), o.OutGrad(), rows, heads, hd, g, b, rotations.GradSpan(), slots);
    });

    /// <summary>
    /// URPE attention (arXiv 2205.13401): (softmax(scale·q·kᵀ + bias + masks) ⊙ C)·v with C_ij = c[i − j] from
    /// the per-head Toeplitz table <paramref name="weights"/> (H, width) (see <see cref="ToeplitzWeights"/>).
    /// q (B, T, H·hd), k and v (B, S, Hkv·hd) → (B, T, H·hd). Query t of row b sits at
    /// <paramref name="queryOffsets"/>[b] + t (null: the options' QueryOffset + t). q, k, v, the bias
    /// (H, T, S) and the table get gradients.
    /// </summary>
    public static Var ToeplitzAttention(Var q, Var k, Var v, Var weights, bool bidirectional, int heads, int kvHeads,
        AttentionOptions options = default, AttentionMaskOptions? masks = null, Var? bias = null, int[]? queryOffsets = null)
    {
        var (shape, qs, ks) = Layout("ToeplitzAttention", q, k, v, heads, kvHeads, bias);
        int b = shape.Batch, t = shape.QueryLength;
        if (weights.Value.Rank != 2 || weights.Shape[0] != heads) throw new ArgumentException($"ToeplitzAttention: weights {weights.Value.Describe()} must be (H={heads}, width)");
        bool grad = Tape.Current != null && (q.RequiresGrad || k.RequiresGrad || v.RequiresGrad || weights.RequiresGrad || bias is { RequiresGrad: true });
        var y = NewOutput(q, grad);
        masks ??= AttentionMaskOptions.None;
        float[]? lse = y.RequiresGrad ? new float[b * heads * t] : null;
        var tw = new ToeplitzWeights(weights.Data(), weights.Shape[1], bidirectional);
        Tensors.Kernels.ToeplitzAttention.Forward(shape, new(q.Data(), qs, k.Data(), ks, v.Data(), ks), y.Value.AsSpan<float>(), qs, tw,
            options, Mask(masks, bias), queryOffsets, lse);
        if (y.RequiresGrad) RecordToeplitzAttention(y, q, k, v, weights, bidirectional, bias, shape, options, masks, lse!, queryOffsets?.ToArray());
        return y;
    }

    static void RecordToeplitzAttention(Var y, Var q, Var k, Var v, Var weights, bool bidirectional, Var? bias, AttentionShape shape,
        AttentionOptions options, AttentionMaskOptions masks, float[] lse, int[]? queryOffsets) => Record(y, o =>
    {
        var qs = AttentionStrides.PositionMajor(shape.Heads, shape.QueryLength, shape.HeadDim);
        var ks = AttentionStrides.PositionMajor(shape.KvHeads, shape.KeyLength, shape.HeadDim);
        var dq = q.BeginGrad();
        var dk = k.BeginGrad();
        var dv = v.BeginGrad();
        var dc = weights.BeginGrad();
        var dBias = bias is { RequiresGrad: true } ? bias.BeginGrad() : default;
        Tensors.Kernels.ToeplitzAttention.Backward(shape, new(q.Data(), qs, k.Data(), ks, v.Data(), ks), o.OutGrad(), qs, lse,
            new(dq.Span, qs, dk.Span, ks, dv.Span, ks), new ToeplitzWeights(weights.Data(), weights.Shape[1], bidirectional), dc.Span,
            options, Mask(masks, bias), queryOffsets, bias is { RequiresGrad: true } ? dBias.Span : default);
        dq.Commit();
        dk.Commit();
        dv.Commit();
        dc.Commit();
        if (bias is { RequiresGrad: true }) dBias.Commit();
    });

    /// <summary>
    /// Inference URPE attention of new queries q (B, T, H·hd) over the first <paramref name="length"/>
    /// positions of head-major f32 key/value caches (B', Hkv, capacity, hd), B' ≥ B, read in place.
    /// No gradient.
    /// </summary>
    public static Var ToeplitzAttentionCached(Var q, Tensor kCache, Tensor vCache, int length, Var weights, bool bidirectional, int heads, int kvHeads,
        AttentionOptions options = default, AttentionMaskOptions? masks = null, Var? bias = null, int[]? queryOffsets = null)
    {
        if (Tape.Current != null && q.RequiresGrad) throw new InvalidOperationException("ToeplitzAttentionCached is for inference; record training steps with ToeplitzAttention");
        var (shape, qs, ks) = CachedLayout("ToeplitzAttentionCached", q, kCache, vCache, length, heads, kvHeads, exactRows: false);
        var y = NewOutput(q, requiresGrad: false);
        Tensors.Kernels.ToeplitzAttention.Forward(shape, new(q.Data(), qs, kCache.AsReadOnlySpan<float>(), ks, vCache.AsReadOnlySpan<float>(), ks),
            y.Value.AsSpan<float>(), qs, new ToeplitzWeights(weights.Data(), weights.Shape[1], bidirectional),
            options, Mask(masks ?? AttentionMaskOptions.None, bias), queryOffsets);
        return y;
    }
}
