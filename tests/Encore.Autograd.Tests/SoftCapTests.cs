using Encore.Tensors;

namespace Encore.Autograd.Tests;

/// <summary>Ops.SoftCap (c·tanh(x/c), Gemma 2's logit cap) and Ops.AddScalar against hand values and finite differences.</summary>
public class SoftCapTests
{
    [Fact]
    public void SoftCapOfHandValues()
    {
        // cap 3: x = [−6, 0, 1.5] → 3·tanh([−2, 0, 0.5]) = [−2.8920827, 0, 1.3863515]; dy = 1: dx = 1 − tanh² = [0.0706508, 1, 0.7864477].
        using var x = new Parameter("x", Tensor.FromArray(new float[] { -6, 0, 1.5f }, 3));
        float[] values;
        using (var tape = Tape.Record())
        {
            var y = Ops.SoftCap(Var.Of(x), 3);
            values = y.Value.ToFloatArray();
            tape.Backward(y);
        }
        Assert.Equal(-2.8920827f, values[0], 1e-6f);
        Assert.Equal(0f, values[1]);
        Assert.Equal(1.3863515f, values[2], 1e-6f);
        var g = x.Grad!.ToFloatArray();
        Assert.Equal(0.0706508f, g[0], 1e-6f);
        Assert.Equal(1f, g[1], 1e-6f);
        Assert.Equal(0.7864477f, g[2], 1e-6f);
        Assert.Throws<ArgumentException>(() => Ops.SoftCap(Var.Of(x), 0));
    }

    [Fact]
    public void SoftCapAndAddScalarMatchFiniteDifferences()
    {
        var rng = new Random(3);
        using var x = GradCheck.Random("x", rng, 4, 5);
        using var w = GradCheck.Random("w", rng, 5);
        // A norm scaled by 1 + w (Gemma's RMSNorm), then soft-capped at 0.7, weighted so every entry counts.
        GradCheck.Check([x, w], v => Ops.Mul(Ops.SoftCap(Ops.RmsNorm(v[0], Ops.AddScalar(v[1], 1), 1e-6f), 0.7f), Ops.Scale(v[0], 0.5f)));
    }
}
