using Encore.Tensors;
using Encore.Tensors.Kernels;

namespace Encore.Autograd.Tests;

public class AttentionEntropyOpsTests
{
    [Fact]
    public void EntropyOfACausalGqaLayerWithRelativeBiasMatchesFiniteDifferences()
    {
        var rng = new Random(7);
        // B=2, T=4, S=4, H=4, Hkv=2, hd=3; the second item padded to 3 keys.
        var q = GradCheck.Random("q", rng, 2, 4, 12);
        var k = GradCheck.Random("k", rng, 2, 4, 6);
        var table = GradCheck.Random("rel", rng, 8, 4);
        var buckets = new int[16];
        PositionBias.T5Buckets(buckets, 4, 4, bidirectional: false, numBuckets: 8, maxDistance: 16);
        var weights = Enumerable.Range(0, 2 * 4 * 4).Select(i => (float)Math.Cos(1.3 * i)).ToArray();
        GradCheck.Check([q, k, table], x =>
        {
            var bias = Ops.RelativePositionBias(x[2], buckets, 4, 4);
            var h = Ops.AttentionEntropy(x[0], x[1], 4, 2, new AttentionOptions { Causal = true }, new AttentionMaskOptions { KeyLengths = [4, 3] }, bias);
            return Ops.Mul(h, Var.Constant(Tensor.FromArray(weights, 2, 4, 4)));
        });
    }

    [Fact]
    public void EntropyGivesNoGradientToValuesAndCountsVisibleKeys()
    {
        // Cross-attention shape (T = 2 queries, S = 3 keys, one padded): uniform scores (q = 0) give log 3 and log 2.
        using var q = Var.Constant(Tensor.FromArray(new float[2 * 2 * 2], 2, 2, 2));
        using var k = Var.Constant(Tensor.FromArray(new float[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, 2, 3, 2));
        var visible = new float[4];
        using var h = Ops.AttentionEntropy(q, k, 1, 1, default, new AttentionMaskOptions { KeyLengths = [3, 2] }, visibleKeys: visible);
        Assert.Equal(new[] { 2, 1, 2 }, h.Shape.ToArray());
        var e = h.Value.ToFloatArray();
        Assert.Equal(Math.Log(3), e[0], 5);
        Assert.Equal(Math.Log(3), e[1], 5);
        Assert.Equal(Math.Log(2), e[2], 5);
        Assert.Equal(new float[] { 3, 3, 2, 2 }, visible);
    }

    [Fact]
    public void ThePenaltyIsThePapersThresholdedSquareAndMatchesFiniteDifferences()
    {
        // Hand-computed: Hmax = 2, margin = 0.4, θ = [0.5, 0.25] → thresholds 1 and 0.5.
        // b=0 (3 rows): head 0 H = 1.5, 1.2, 0.1 → δ = 0.5 (in), 0.2 (out), −0.9 (in); head 1 H = 0.5, 1.0, 2.0 → δ = 0, 0.5, 1.5.
        // b=1 (length 1): head 0 H = 3 → δ = 2; head 1 H = 0 → δ = −0.5; its rows 1–2 are padding (large values, left out).
        // Σ = 0.25 + 0.81 + 0.25 + 2.25 + 4 + 0.25 = 7.81; over H = 2: 3.905.
        float[] e = [1.5f, 1.2f, 0.1f, 0.5f, 1.0f, 2.0f, 3f, 9f, 9f, 0f, 9f, 9f];
        using var entropy = Var.Constant(Tensor.FromArray(e, 2, 2, 3));
        using var theta = Var.Constant(Tensor.FromArray(new float[] { 0.5f, 0.25f }, 2));
        using var y = Ops.EntropyPenalty(entropy, theta, 2f, 0.4f, [3, 1]);
        Assert.Equal(3.905, y.Value.ToFloatArray()[0], 5);

        var rng = new Random(2);
        var h = GradCheck.Random("h", rng, 2, 3, 5);
        var th = GradCheck.Random("theta", rng, 3);
        // Values away from the ±margin edges, where the penalty jumps and no difference quotient holds.
        var hv = h.Value.AsSpan<float>();
        for (int i = 0; i < hv.Length; i++) hv[i] = 1.5f * hv[i] + 1f;
        th.Value.AsSpan<float>().Fill(0.3f);
        for (int i = 0; i < hv.Length; i++)
            if (Math.Abs(Math.Abs(hv[i] - 0.3f * 2.5f) - 0.5f) < 0.05f) hv[i] += 0.2f;
        GradCheck.Check([h, th], x => Ops.EntropyPenalty(x[0], x[1], 2.5f, 0.5f, [5, 3]), h: 1e-3, tol: 5e-3);
    }
}
