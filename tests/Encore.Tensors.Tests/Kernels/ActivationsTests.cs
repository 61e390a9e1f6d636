using Encore.Tensors;
using Encore.Tensors.Kernels;
using static Encore.Tensors.Tests.Kernels.OpsTesting;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class ActivationsTests
{
    static readonly ActivationKind[] Kinds = Enum.GetValues<ActivationKind>();

    /// <summary>erf in double: 2/√π·e^(−x²)·Σ 2ⁿx^(2n+1)/(2n+1)!!, a series of positive terms (no cancellation).</summary>
    internal static double ErfSeries(double x)
    {
        double ax = Math.Abs(x);
        if (ax > 6) return Math.Sign(x);
        double term = ax, sum = ax;
        for (int n = 0; n < 500 && term > sum * 1e-18; n++)
        {
            term *= 2 * ax * ax / (2 * n + 3);
            sum += term;
        }
        return Math.Sign(x) * 2 / Math.Sqrt(Math.PI) * Math.Exp(-ax * ax) * sum;
    }

    internal static double FDouble(ActivationKind kind, double x) => kind switch
    {
        ActivationKind.Relu => Math.Max(x, 0),
        ActivationKind.GeluTanh => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
        ActivationKind.GeluErf => 0.5 * x * (1 + ErfSeries(x / Math.Sqrt(2))),
        ActivationKind.Silu => x / (1 + Math.Exp(-x)),
        ActivationKind.Identity => x,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    static float[] Inputs(Random rng, int n)
    {
        var x = Random(rng, n, 8);
        float[] special = { 0, -0f, 1, -1, 1e-4f, -1e-4f, 3.9f, 4.1f, -4.1f, 10, -10, 100, -100, 1e4f, -1e4f };
        for (int i = 0; i < Math.Min(n, special.Length); i++) x[(i * 7) % n] = special[i];
        return x;
    }

    [Fact]
    public void ErfApproximationIsWithinOneTenthOfAMicroOfTheSeries()
    {
        double max = 0;
        for (int i = -6000; i <= 6000; i++)
        {
            float x = i * 1e-3f;
            max = Math.Max(max, Math.Abs(Activations.Erf(x) - ErfSeries(x)));
        }
        Assert.Equal(0.8427007929497149, ErfSeries(1), 15);      // erf(1), tabulated
        Assert.True(max < 1e-7, $"max |erf error| = {max:E3}");
    }

    [Fact]
    public void HandComputedValues()
    {
        var x = new float[] { -1, 0, 1, 2 };
        var expected = new Dictionary<ActivationKind, double[]>
        {
            [ActivationKind.Relu] = new double[] { 0, 0, 1, 2 },
            // Φ(−1) = 0.15865525393145707, Φ(1) = 0.8413447460685429, Φ(2) = 0.9772498680518208
            [ActivationKind.GeluErf] = new[] { -0.15865525393145707, 0, 0.8413447460685429, 2 * 0.9772498680518208 },
            [ActivationKind.GeluTanh] = new[] { -0.15880800939172324, 0, 0.8411919906082768, 1.9545976940871754 },
            // σ(1) = 0.7310585786300049, σ(2) = 0.8807970779778823
            [ActivationKind.Silu] = new[] { -(1 - 0.7310585786300049), 0, 0.7310585786300049, 2 * 0.8807970779778823 },
            [ActivationKind.Identity] = new double[] { -1, 0, 1, 2 },
        };
        foreach (var (kind, e) in expected)
        {
            foreach (var w in Simd.Supported)
            {
                var y = new float[4];
                using (Simd.Override(w)) Activations.Forward(kind, x, y);
                Near(e.Select(v => (float)v).ToArray(), y, 3e-7, 1e-6, $"{w} {kind}");
            }
        }
    }

    [Fact]
    public void EveryWidthMatchesTheScalarReference()
    {
        var rng = new Random(41);
        foreach (int n in Lengths.Append(1000))
        {
            var x = Inputs(rng, n);
            var dy = Random(rng, n, 2);
            foreach (var kind in Kinds)
            {
                var ef = x.Select(v => Activations.Reference(kind, v)).ToArray();
                var eb = x.Select((v, i) => Activations.DerivativeReference(kind, v) * dy[i]).ToArray();
                foreach (var w in Simd.Supported)
                {
                    var y = new float[n];
                    var dx = (float[])dy.Clone();
                    using (Simd.Override(w))
                    {
                        Activations.Forward(kind, x, y);
                        Activations.Backward(kind, x, dx, dx);      // in place over dy
                    }
                    Near(ef, y, 5e-7, 1e-6, $"{w} {kind} n={n}");
                    Near(eb, dx, 5e-7, 1e-6, $"{w} {kind}' n={n}");
                }
            }
        }
    }

    [Fact]
    public void ReferencesMatchDoublePrecisionAndDerivativesMatchCentralDifferences()
    {
        foreach (var kind in Kinds)
        {
            for (double x = -6; x <= 6; x += 0.0625)
            {
                Assert.True(Math.Abs(Activations.Reference(kind, (float)x) - FDouble(kind, x)) < 1e-6 + 1e-6 * Math.Abs(x), $"{kind}({x})");
                if (kind == ActivationKind.Relu && x == 0) continue;   // not differentiable there
                double fd = SoftmaxTests.CentralDifference(v => FDouble(kind, v[0]), new[] { x }, 0, 1e-5);
                float d = Activations.DerivativeReference(kind, (float)x);
                Assert.True(Math.Abs(d - fd) < 2e-6, $"{kind}'({x}) = {d}, central difference {fd}");
            }
        }
        Assert.Equal(0f, Activations.DerivativeReference(ActivationKind.Relu, 0));
        Assert.True(float.IsNaN(Activations.Reference(ActivationKind.Relu, float.NaN)));
    }

    [Fact]
    public void LargeInputsAreParallelAndMatchTheReference()
    {
        var rng = new Random(42);
        const int n = 70_001;
        var x = Inputs(rng, n);
        foreach (var kind in new[] { ActivationKind.GeluTanh, ActivationKind.Silu })
        {
            var e = x.Select(v => Activations.Reference(kind, v)).ToArray();
            foreach (var w in Simd.Supported)
            {
                var y = (float[])x.Clone();
                using (Simd.Override(w)) Activations.Forward(kind, y, y);
                Near(e, y, 5e-7, 1e-6, $"{w} {kind}");
            }
        }
    }

    [Fact]
    public void NamedEntryPointsAreTheKinds()
    {
        var x = new float[] { -2, -0.5f, 0.5f, 3 };
        var dy = new float[] { 1, 2, 3, 4 };
        var y = new float[4];
        var dx = new float[4];
        Activations.GeluTanh(x, y);
        Assert.Equal(x.Select(v => Activations.Reference(ActivationKind.GeluTanh, v)).ToArray(), y, (a, b) => Math.Abs(a - b) < 1e-6);
        Activations.SiluBackward(x, dy, dx);
        Assert.Equal(x.Select((v, i) => Activations.DerivativeReference(ActivationKind.Silu, v) * dy[i]).ToArray(), dx, (a, b) => Math.Abs(a - b) < 1e-5);
        Activations.Relu(x, y);
        Assert.Equal(new float[] { 0, 0, 0.5f, 3 }, y);
        Activations.ReluBackward(x, dy, dx);
        Assert.Equal(new float[] { 0, 0, 3, 4 }, dx);
        Assert.Throws<ArgumentException>(() => Activations.Forward(ActivationKind.Silu, x, new float[3]));
    }
}

[Trait("Category", "Kernels")]
public class GatedActivationsTests
{
    [Fact]
    public void SwiGluAndGeGluOfHandPickedValues()
    {
        // silu(1)·2 = 2σ(1); gelu(2)·(−1) = −2Φ(2); gelu(0)·5 = 0
        var a = new float[] { 1, 2, 0 };
        var b = new float[] { 2, -1, 5 };
        foreach (var w in Simd.Supported)
        {
            var y = new float[3];
            using (Simd.Override(w)) GatedActivations.SwiGlu(a, b, y);
            Assert.Equal(2 * 0.7310585786300049, y[0], 6);
            using (Simd.Override(w)) GatedActivations.GeGlu(a, b, y);
            Assert.Equal(-2 * 0.9772498680518208, y[1], 6);
            Assert.Equal(0f, y[2]);
        }
    }

    [Fact]
    public void SeparateAndPackedLayoutsMatchTheReferenceForwardAndBackward()
    {
        var rng = new Random(43);
        foreach (int f in new[] { 1, 3, 7, 15, 16, 17, 31, 33, 64, 65, 127, 128, 129, 255, 256 })
        {
            const int rows = 3;
            var ab = Random(rng, rows * 2 * f, 6);
            var dy = Random(rng, rows * f, 2);
            var a = new float[rows * f];
            var b = new float[rows * f];
            for (int r = 0; r < rows; r++)
            {
                Array.Copy(ab, r * 2 * f, a, r * f, f);
                Array.Copy(ab, r * 2 * f + f, b, r * f, f);
            }
            foreach (var kind in Enum.GetValues<ActivationKind>())
            {
                var ey = a.Select((v, i) => GatedActivations.Reference(kind, v, b[i])).ToArray();
                var eda = a.Select((v, i) => Activations.DerivativeReference(kind, v) * b[i] * dy[i]).ToArray();
                var edb = a.Select((v, i) => Activations.Reference(kind, v) * dy[i]).ToArray();
                var edab = new float[ab.Length];
                for (int r = 0; r < rows; r++)
                {
                    Array.Copy(eda, r * f, edab, r * 2 * f, f);
                    Array.Copy(edb, r * f, edab, r * 2 * f + f, f);
                }
                foreach (var w in Simd.Supported)
                {
                    var y = new float[rows * f];
                    var yp = new float[rows * f];
                    var da = new float[a.Length];
                    var db = (float[])b.Clone();
                    var dab = (float[])ab.Clone();
                    using (Simd.Override(w))
                    {
                        GatedActivations.Forward(kind, a, b, y);
                        GatedActivations.ForwardPacked(kind, ab, yp, rows, f);
                        GatedActivations.Backward(kind, a, db, dy, da, db);           // db over b
                        GatedActivations.BackwardPacked(kind, dab, dy, dab, rows, f); // in place
                    }
                    string what = $"{w} {kind} F={f}";
                    Near(ey, y, 1e-6, 2e-6, what + " y");
                    Near(ey, yp, 1e-6, 2e-6, what + " packed y");
                    Near(eda, da, 1e-6, 2e-6, what + " da");
                    Near(edb, db, 1e-6, 2e-6, what + " db");
                    Near(edab, dab, 1e-6, 2e-6, what + " d(ab)");
                }
            }
        }
    }

    [Fact]
    public void GatedBackwardMatchesCentralDifferences()
    {
        foreach (var kind in new[] { ActivationKind.GeluTanh, ActivationKind.GeluErf, ActivationKind.Silu })
        {
            double[] ab = { 0.7, -1.3, 2.1, 0.4 };   // a = (0.7, −1.3), b = (2.1, 0.4)
            double[] g = { 1.5, -0.5 };
            Func<double[], double> loss = v => ActivationsTests.FDouble(kind, v[0]) * v[2] * g[0] + ActivationsTests.FDouble(kind, v[1]) * v[3] * g[1];
            var dab = new float[4];
            GatedActivations.BackwardPacked(kind, ab.Select(v => (float)v).ToArray(), g.Select(v => (float)v).ToArray(), dab, 1, 2);
            for (int i = 0; i < 4; i++)
                Assert.Equal(SoftmaxTests.CentralDifference(loss, ab, i), dab[i], 5);
        }
    }
}
