using Encore.Tensors;
using Encore.Tensors.Kernels;

namespace Encore.Autograd.Tests;

/// <summary>
/// Hand-derived gradients, one or more per op: backward from a seed of all ones (so dy = 1
/// everywhere) on inputs small enough to differentiate on paper.
/// </summary>
public class LiteralGradientTests
{
    static Parameter P(string name, float[] v, params int[] shape) => new(name, Tensor.FromArray(v, shape));

    static float[] G(Parameter p) => p.Grad!.ToFloatArray().Select(x => MathF.Round(x, 5)).ToArray();

    static void Backward(Func<Var> f)
    {
        using var tape = Tape.Record();
        tape.Backward(f());
    }

    [Fact]
    public void ScaleAddAndMatMul()
    {
        using var a = P("a", [1, 2], 1, 2);
        using var b = P("b", [3, 4], 2, 1);
        Backward(() => Ops.Scale(Ops.MatMul(Var.Of(a), Var.Of(b)), 3f));   // y = 3·(1·3 + 2·4) = 33
        Assert.Equal(new float[] { 9, 12 }, G(a));                          // 3·Bᵀ
        Assert.Equal(new float[] { 3, 6 }, G(b));                           // 3·Aᵀ
        using var c = P("c", [5, 6], 2);
        using var d = P("d", [7, 8], 2);
        Backward(() => Ops.Add(Var.Of(c), Var.Of(d)));
        Assert.Equal(new float[] { 1, 1 }, G(c));
        Assert.Equal(new float[] { 1, 1 }, G(d));
    }

    [Fact]
    public void EmbeddingScattersRowGradientsByIdWithRepeatsSummed()
    {
        using var table = P("t", [0, 0, 0, 0, 0, 0], 3, 2);
        Backward(() => Ops.Embedding(Var.Of(table), [1, 1, 0], 3));
        Assert.Equal(new float[] { 1, 1, 2, 2, 0, 0 }, G(table));
    }

    [Fact]
    public void SoftmaxOfTwoEqualLogits()
    {
        // y = softmax([0, 0]) = [½, ½]; L = y₀: dx = y ⊙ (e₀ − y₀) = [¼, −¼].
        using var x = P("x", [0, 0], 1, 2);
        using var pick = new Parameter("pick", Tensor.FromArray(new float[] { 1, 0 }, 1, 2)) { Trainable = false };
        Backward(() => Ops.Mul(Ops.Softmax(Var.Of(x)), Var.Of(pick)));
        Assert.Equal(new float[] { 0.25f, -0.25f }, G(x));
    }

    [Fact]
    public void LayerNormOfOneThree()
    {
        // x = [1, 3]: mean 2, var 1, x̂ = [−1, 1]; γ = [2, 5], β = [½, 0]: y = [−1.5, 5].
        // dγ = x̂ = [−1, 1], dβ = [1, 1]; g = γ = [2, 5]: dx = g − mean(g) − x̂·mean(g·x̂) = [0, 0].
        using var x = P("x", [1, 3], 1, 2);
        using var gamma = P("g", [2, 5], 2);
        using var beta = P("b", [0.5f, 0], 2);
        Var? y = null;
        using (var tape = Tape.Record())
        {
            tape.ReleaseActivations = false;
            y = Ops.LayerNorm(Var.Of(x), Var.Of(gamma), Var.Of(beta), 0f);
            Assert.Equal(new float[] { -1.5f, 5 }, y.Value.ToFloatArray());
            tape.Backward(y);
        }
        Assert.Equal(new float[] { -1, 1 }, G(gamma));
        Assert.Equal(new float[] { 1, 1 }, G(beta));
        Assert.Equal(new float[] { 0, 0 }, G(x));
    }

    [Fact]
    public void RopeByAQuarterTurnAndItsInverse()
    {
        // hd = 2: one frequency θ⁰ = 1, so position π/2 turns by 90°: [1, 0] → [0, 1]. L = y₀:
        // dx = R(−90°)·[1, 0] = [cos, −sin] = [0, −1].
        using var x = P("x", [1, 0], 1, 2);
        using var pick = new Parameter("pick", Tensor.FromArray(new float[] { 1, 0 }, 1, 2)) { Trainable = false };
        var cache = new RopeCache(2, 0);
        using (var tape = Tape.Record())
        {
            tape.ReleaseActivations = false;
            var r = Ops.Rope(Var.Of(x), cache, 1, [MathF.PI / 2]);
            var y = r.Value.ToFloatArray();
            Assert.Equal(0f, y[0], 6);
            Assert.Equal(1f, y[1], 6);
            tape.Backward(Ops.Mul(r, Var.Of(pick)));
        }
        var g = x.Grad!.ToFloatArray();
        Assert.Equal(0f, g[0], 6);
        Assert.Equal(-1f, g[1], 6);
    }

    [Fact]
    public void ReluAndSwiGluAtKnownPoints()
    {
        using var x = P("x", [-1, 2], 2);
        Backward(() => Ops.Activation(Var.Of(x), ActivationKind.Relu));
        Assert.Equal(new float[] { 0, 1 }, G(x));
        // SwiGLU at a = 0, b = 3: y = silu(0)·3 = 0; da = silu'(0)·b = ½·3, db = silu(0) = 0.
        using var a = P("a", [0], 1);
        using var b = P("b", [3], 1);
        Backward(() => Ops.Gated(Var.Of(a), Var.Of(b), ActivationKind.Silu));
        Assert.Equal(new float[] { 1.5f }, G(a));
        Assert.Equal(new float[] { 0 }, G(b));
    }

    [Fact]
    public void TrainableAlibiSlopeCollectsSignedDistances()
    {
        // One head, query at position 2 (offset 2), keys 0..2: bias = ½·(s − 2) = [−1, −½, 0];
        // dslope = Σ (s − 2) = −3.
        using var slope = P("s", [0.5f], 1);
        using (var tape = Tape.Record())
        {
            tape.ReleaseActivations = false;
            var bias = Ops.AlibiBias(Var.Of(slope), 1, 3, queryOffset: 2);
            Assert.Equal(new float[] { -1, -0.5f, 0 }, bias.Value.ToFloatArray());
            tape.Backward(bias);
        }
        Assert.Equal(new float[] { -3 }, G(slope));
    }

    [Fact]
    public void RelativePositionBiasGradientLandsInItsBuckets()
    {
        // Table (2 buckets, 1 head); buckets of a 1×3 bias: [0, 1, 1] → d table = [1, 2].
        using var table = P("t", [0, 0], 2, 1);
        Backward(() => Ops.RelativePositionBias(Var.Of(table), [0, 1, 1], 1, 3));
        Assert.Equal(new float[] { 1, 2 }, G(table));
    }

    [Fact]
    public void LastPositionTakesTheLastRowAndScattersItsGradientBack()
    {
        using var x = P("x", [1, 2, 3, 4, 5, 6, 7, 8], 2, 2, 2);
        using (var tape = Tape.Record())
        {
            tape.ReleaseActivations = false;
            var y = Ops.LastPosition(Var.Of(x));
            Assert.Equal(new float[] { 3, 4, 7, 8 }, y.Value.ToFloatArray());
            tape.Backward(y);
        }
        Assert.Equal(new float[] { 0, 0, 1, 1, 0, 0, 1, 1 }, G(x));
    }
}
