using Encore.Tensors.Kernels;

namespace Encore.Autograd;

public static partial class Ops
{
    /// <summary>
    /// The entropy (nats) of each query row's attention probabilities, (B, H, T), for the queries q (B, T, H·hd),
    /// keys k (B, S, Hkv·hd), options, masks and bias that <see cref="Attention"/> takes (see
    /// <see cref="Tensors.Kernels.Attention.Entropy"/>). <paramref name="visibleKeys"/>, when given (B·H·T), receives
    /// the number of keys each row sees. Backward: into q, k and the bias (∂H/∂s_j = −p_j·(s_j − Σ p s)); values play no part.
    /// </summary>
    public static Var AttentionEntropy(Var q, Var k, int heads, int kvHeads, AttentionOptions options = default, AttentionMaskOptions? masks = null,
        Var? bias = null, float[]? visibleKeys = null)
    {
        var (shape, qs, ks) = Layout("AttentionEntropy", q, k, k, heads, kvHeads, bias);
        masks ??= AttentionMaskOptions.None;
        var y = NewOutput([shape.Batch, heads, shape.QueryLength], Grad(q, k, bias));     // (B, H, T)
        Tensors.Kernels.Attention.Entropy(shape, q.Data(), qs, k.Data(), ks, y.Value.AsSpan<float>(), options, Mask(masks, bias), visibleKeys);
        if (y.RequiresGrad) RecordAttentionEntropy(y, q, k, bias, shape, options, masks);
        return y;
    }

    static void RecordAttentionEntropy(Var y, Var q, Var k, Var? bias, AttentionShape shape, AttentionOptions options, AttentionMaskOptions masks) => Record(y, o =>
    {
        var qs = AttentionStrides.PositionMajor(shape.Heads, shape.QueryLength, shape.HeadDim);
        var ks = AttentionStrides.PositionMajor(shape.KvHeads, shape.KeyLength, shape.HeadDim);
        var dq = q.BeginGrad();
        var dk = k.BeginGrad();
        var dBias = bias is { RequiresGrad: true } ? bias.BeginGrad() : default;
        Tensors.Kernels.Attention.EntropyBackward(shape, q.Data(), qs, k.Data(), ks, o.OutGrad(), dq.Span, qs, dk.Span, ks, options, Mask(masks, bias),
            bias is { RequiresGrad: true } ? dBias.Span : default);
        dq.Commit();
        dk.Commit();
        if (bias is { RequiresGrad: true }) dBias.Commit();
    });

    /// <summary>
    /// The entropy penalty of Entropy-Guided Attention (arXiv 2501.03489, <c>EntropyRegularization.compute_loss</c>) for
    /// one attention layer: with δ = H[b, h, t] − θ[h]·maxEntropy,
    /// <c>Σ_h Σ_{b,t} (|δ| &gt; margin ? δ : 0)² / H</c>, a scalar. <paramref name="entropy"/> is (B, H, T),
    /// <paramref name="thresholds"/> θ is (H); rows t ≥ queryLengths[b] (padding) are left out (null: none).
    /// Backward into both: ∂/∂H = 2δ/H and ∂/∂θ[h] = −2δ·maxEntropy/H where |δ| &gt; margin, else 0.
    /// </summary>
    public static Var EntropyPenalty(Var entropy, Var thresholds, float maxEntropy, float margin, int[]? queryLengths = null)
    {
        if (entropy.Value.Rank != 3) throw new ArgumentException($"EntropyPenalty: entropy {entropy.Value.Describe()} must be (B, H, T)");
        int b = entropy.Shape[0], h = entropy.Shape[1], t = entropy.Shape[2];
        if (thresholds.Value.Rank != 1 || thresholds.Shape[0] != h) throw new ArgumentException($"EntropyPenalty: thresholds {thresholds.Value.Describe()} must be (H={h})");
        if (queryLengths != null && queryLengths.Length != b) throw new ArgumentException($"EntropyPenalty: {queryLengths.Length} query lengths for B = {b}");
        if (!float.IsFinite(maxEntropy) || !(margin >= 0)) throw new ArgumentException($"EntropyPenalty: max entropy {maxEntropy} and margin {margin} must be finite, the margin ≥ 0");
        var e = entropy.Data();
        var theta = thresholds.Data();
        double total = 0;
        for (int bi = 0; bi < b; bi++)
        {
            int rows = queryLengths == null ? t : Math.Clamp(queryLengths[bi], 0, t);
            for (int hi = 0; hi < h; hi++)
                for (int ti = 0; ti < rows; ti++)
                {
                    double delta = e[(bi * h + hi) * t + ti] - (double)theta[hi] * maxEntropy;
                    if (Math.Abs(delta) > margin) total += delta * delta;
                }
        }
        var y = NewOutput([1], Grad(entropy, thresholds));
        y.Value.AsSpan<float>()[0] = (float)(total / Math.Max(h, 1));
        if (y.RequiresGrad) RecordEntropyPenalty(y, entropy, thresholds, maxEntropy, margin, queryLengths);
        return y;
    }

    static void RecordEntropyPenalty(Var y, Var entropy, Var thresholds, float maxEntropy, float margin, int[]? queryLengths) => Record(y, o =>
    {
        int b = entropy.Shape[0], h = entropy.Shape[1], t = entropy.Shape[2];
        float g = o.OutGrad()[0] * 2f / h;
        var e = entropy.Data();
        var theta = thresholds.Data();
        var dEntropy = entropy.RequiresGrad ? new float[e.Length] : null;
        var dTheta = thresholds.RequiresGrad ? new float[h] : null;
        for (int bi = 0; bi < b; bi++)
        {
            int rows = queryLengths == null ? t : Math.Clamp(queryLengths[bi], 0, t);
            for (int hi = 0; hi < h; hi++)
                for (int ti = 0; ti < rows; ti++)
                {
                    int i = (bi * h + hi) * t + ti;
                    double delta = e[i] - (double)theta[hi] * maxEntropy;
                    if (!(Math.Abs(delta) > margin)) continue;
                    if (dEntropy != null) dEntropy[i] = (float)(g * delta);
                    if (dTheta != null) dTheta[hi] -= (float)(g * delta * maxEntropy);
                }
        }
        if (dEntropy != null) entropy.AddGrad(dEntropy);
        if (dTheta != null) thresholds.AddGrad(dTheta);
    });
}
