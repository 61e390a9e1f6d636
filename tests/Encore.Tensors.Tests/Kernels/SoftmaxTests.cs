using Encore.Tensors;
using Encore.Tensors.Kernels;
using static Encore.Tensors.Tests.Kernels.OpsTesting;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class SoftmaxTests
{
    const double Abs = 2e-7, Rel = 2e-6;

    static float[] Run(SimdWidth w, float[] x, int rows, int cols, SoftmaxOptions o = default, float[]? bias = null, int[]? valid = null, bool[]? key = null)
    {
        var y = new float[x.Length];
        using (Simd.Override(w)) Softmax.Forward(x, y, rows, cols, o, bias, valid, key);
        return y;
    }

    static float[] Ref(float[] x, int rows, int cols, SoftmaxOptions o = default, float[]? bias = null, int[]? valid = null, bool[]? key = null)
    {
        var y = new float[x.Length];
        Softmax.Reference(x, y, rows, cols, o, bias, valid, key);
        return y;
    }

    [Fact]
    public void SoftmaxOfOneTwoThreeMatchesHandComputedValues()
    {
        // e^k / (e + e² + e³) for k = 1, 2, 3
        double s = Math.E + Math.Exp(2) + Math.Exp(3);
        var expected = new[] { (float)(Math.E / s), (float)(Math.Exp(2) / s), (float)(Math.Exp(3) / s) };
        Assert.Equal(0.09003057f, expected[0], 6);
        foreach (var w in Simd.Supported)
            Near(expected, Run(w, new float[] { 1, 2, 3 }, 1, 3), 1e-7, 1e-6, $"{w}");
    }

    [Fact]
    public void LargeLogitsDoNotOverflowAndAllNegativeInfinityRowIsZeros()
    {
        foreach (var w in Simd.Supported)
        {
            Near(new[] { 0.5f, 0.5f }, Run(w, new[] { 1000f, 1000f }, 1, 2), 0, 0, $"{w} [1000,1000]");
            Near(new[] { 0f, 1f }, Run(w, new[] { -1000f, 1000f }, 1, 2), 0, 0, $"{w} [-1000,1000]");
            var inf = Enumerable.Repeat(float.NegativeInfinity, 37).ToArray();
            Assert.All(Run(w, inf, 1, 37), v => Assert.Equal(0f, v));
            var log = new float[37];
            using (Simd.Override(w)) Softmax.LogForward(inf, log, 1, 37);
            Assert.All(log, v => Assert.Equal(float.NegativeInfinity, v));
            // one finite logit among −∞ takes all the mass
            var one = (float[])inf.Clone();
            one[20] = -5;
            var y = Run(w, one, 1, 37);
            Assert.Equal(1f, y[20]);
            Assert.Equal(1f, y.Sum());
        }
    }

    [Fact]
    public void EveryWidthMatchesTheReferenceWithScaleAndBias()
    {
        var rng = new Random(1);
        foreach (int cols in Lengths.Append(4099))
        {
            int rows = 3;
            var x = Random(rng, rows * cols, 8);
            var bias = Random(rng, cols, 2);         // one row, broadcast to all
            var o = new SoftmaxOptions { Scale = 0.125f };
            var expected = Ref(x, rows, cols, o, bias);
            foreach (var w in Simd.Supported)
                Near(expected, Run(w, x, rows, cols, o, bias), Abs, Rel, $"{w} cols={cols}");
            var plain = Ref(x, rows, cols);
            foreach (var w in Simd.Supported)
                Near(plain, Run(w, x, rows, cols), Abs, Rel, $"{w} plain cols={cols}");
        }
    }

    [Fact]
    public void ScaleAndGroupedBiasAreAppliedBeforeNormalizing()
    {
        // rows = B·H·T with B = 2, H·T = 2: a (H·T, S) bias repeats over the batch.
        const int cols = 3;
        var x = new float[] { 2, 4, 6, 0, 0, 0, 2, 4, 6, 0, 0, 0 };
        var bias = new float[] { 0, 0, 0, 1, 2, 3 };
        var expected = new float[12];
        for (int r = 0; r < 4; r++)
        {
            // scale 0.5 turns (2, 4, 6) into (1, 2, 3), the bias adds (1, 2, 3) to the zero rows: both softmax([1,2,3])
            double s = Math.E + Math.Exp(2) + Math.Exp(3);
            for (int j = 0; j < 3; j++) expected[r * 3 + j] = (float)(Math.Exp(j + 1) / s);
        }
        var o = new SoftmaxOptions { Scale = 0.5f };
        foreach (var w in Simd.Supported)
            Near(expected, Run(w, x, 4, cols, o, bias), 1e-7, 1e-6, $"{w}");
    }

    [Fact]
    public void CausalMaskWithKvCacheOffsetAndBlocks()
    {
        // T = 3 queries over S = 5 keys: offset S − T = 2, so query r sees keys 0..r+2.
        var x = new float[2 * 3 * 5];                // two (T, S) blocks, all logits 0
        var o = new SoftmaxOptions { Causal = true, QueryLength = 3 };
        foreach (var w in Simd.Supported)
        {
            var y = Run(w, x, 6, 5, o);
            for (int b = 0; b < 2; b++)
            {
                Near(new[] { 1 / 3f, 1 / 3f, 1 / 3f, 0, 0 }, y.AsSpan(b * 15, 5), 1e-7, 1e-6, $"{w} row 0");
                Near(new[] { 0.25f, 0.25f, 0.25f, 0.25f, 0 }, y.AsSpan(b * 15 + 5, 5), 1e-7, 1e-6, $"{w} row 1");
                Near(new[] { 0.2f, 0.2f, 0.2f, 0.2f, 0.2f }, y.AsSpan(b * 15 + 10, 5), 1e-7, 1e-6, $"{w} row 2");
            }
            // explicit offset 0 (training, no cache): row r sees keys 0..r
            var y0 = Run(w, x, 6, 5, o with { CausalOffset = 0 });
            Near(new[] { 1f, 0, 0, 0, 0 }, y0.AsSpan(15, 5), 0, 0, $"{w} offset 0 row 0");
            Near(new[] { 0.5f, 0.5f, 0, 0, 0 }, y0.AsSpan(20, 5), 1e-7, 0, $"{w} offset 0 row 1");
            // a negative offset hides everything from row 0: defined as zeros
            var yn = Run(w, x, 6, 5, o with { CausalOffset = -1 });
            Assert.All(yn.AsSpan(0, 5).ToArray(), v => Assert.Equal(0f, v));
        }
        var rng = new Random(2);
        foreach (int s in new[] { 1, 17, 33, 64, 129 })
        {
            int t = Math.Max(1, s / 3);
            var xr = Random(rng, 4 * t * s, 4);
            var oc = new SoftmaxOptions { Causal = true, QueryLength = t, Scale = 0.7f };
            var expected = Ref(xr, 4 * t, s, oc);
            foreach (var w in VectorWidths) Near(expected, Run(w, xr, 4 * t, s, oc), Abs, Rel, $"{w} S={s}");
        }
    }

    [Fact]
    public void PaddingMasksAsLengthsAndAsFlags()
    {
        // two batch items × 2 rows each; item 0 has 2 valid keys of 4, item 1 has 3
        var x = new float[16];
        var valid = new[] { 2, 3 };
        var key = new[] { true, true, false, false, true, true, true, false };
        foreach (var w in Simd.Supported)
        {
            foreach (var y in new[] { Run(w, x, 4, 4, valid: valid), Run(w, x, 4, 4, key: key) })
            {
                Near(new[] { 0.5f, 0.5f, 0, 0, 0.5f, 0.5f, 0, 0 }, y.AsSpan(0, 8), 1e-7, 0, $"{w} item 0");
                Near(new[] { 1 / 3f, 1 / 3f, 1 / 3f, 0, 1 / 3f, 1 / 3f, 1 / 3f, 0 }, y.AsSpan(8, 8), 1e-7, 0, $"{w} item 1");
            }
            // a key mask that is not a prefix
            var y2 = Run(w, new float[] { 5, 1, 5, 1 }, 1, 4, key: new[] { true, false, true, false });
            Near(new[] { 0.5f, 0, 0.5f, 0 }, y2, 1e-7, 0, $"{w} gaps");
        }
        var rng = new Random(3);
        foreach (int cols in new[] { 5, 16, 33, 100 })
        {
            var xr = Random(rng, 6 * cols, 5);
            var vl = new[] { cols, cols / 2, 0 };
            var km = Enumerable.Range(0, 2 * cols).Select(i => rng.Next(3) != 0).ToArray();
            var o = new SoftmaxOptions { Causal = true, QueryLength = 2, CausalOffset = cols - 4 };
            var expected = Ref(xr, 6, cols, o, valid: vl, key: km.Concat(km).Take(2 * cols).ToArray());
            foreach (var w in VectorWidths)
                Near(expected, Run(w, xr, 6, cols, o, valid: vl, key: km.Take(2 * cols).ToArray()), Abs, Rel, $"{w} cols={cols}");
        }
    }

    [Fact]
    public void InPlaceParallelAndDeterministic()
    {
        var rng = new Random(4);
        const int rows = 300, cols = 255;              // 76,500 values: above the parallel threshold
        var x = Random(rng, rows * cols, 10);
        var expected = Ref(x, rows, cols);
        foreach (var w in Simd.Supported)
        {
            var a = Run(w, x, rows, cols);
            var b = (float[])x.Clone();
            using (Simd.Override(w)) Softmax.Forward(b, b, rows, cols);
            Assert.Equal(a, b);                        // bit-identical: in place and repeated
            Near(expected, a, Abs, Rel, $"{w}");
        }
    }

    [Fact]
    public void ExpNonPositiveVectorsGiveTheScalarTwinsBitsWithinTwoUlpOfExp()
    {
        var xs = new List<float> { 0f, -0f, float.NegativeInfinity, float.NaN, -87f, MathF.BitDecrement(-87f), MathF.BitIncrement(-87f), -1e-30f, -0.34657359f, -0.34657362f };
        for (int i = 0; i <= 90_000; i++) xs.Add(-i * 0.001f);
        var rng = new Random(11);
        for (int i = 0; i < 20_000; i++) xs.Add(-(float)(rng.NextDouble() * 88));
        while (xs.Count % 16 != 0) xs.Add(-1f);
        var x = xs.ToArray();
        var scalar = x.Select(VectorMath.ExpNonPositive).ToArray();
        for (int i = 0; i < x.Length; i++)
        {
            float y = scalar[i];
            if (float.IsNaN(x[i])) { Assert.True(float.IsNaN(y)); continue; }
            if (x[i] < -87f) { Assert.Equal(0f, y); continue; }
            double exact = Math.Exp(x[i]);
            double ulp = MathF.BitIncrement((float)exact) - (float)exact;
            Assert.True(Math.Abs(y - exact) <= 2 * ulp, $"exp({x[i]:R}) = {exact:R}, got {y:R}");
        }
        for (int i = 0; i < x.Length; i += 16)
        {
            var v512 = VectorMath.ExpNonPositive(System.Runtime.Intrinsics.Vector512.Create(x, i));
            var v256 = VectorMath.ExpNonPositive(System.Runtime.Intrinsics.Vector256.Create(x, i));
            var v128 = VectorMath.ExpNonPositive(System.Runtime.Intrinsics.Vector128.Create(x, i));
            for (int l = 0; l < 16; l++)
            {
                int bits = BitConverter.SingleToInt32Bits(scalar[i + l]);
                Assert.True(float.IsNaN(scalar[i + l]) ? float.IsNaN(v512[l]) : bits == BitConverter.SingleToInt32Bits(v512[l]), $"512-bit lane at x = {x[i + l]:R}");
                if (l < 8) Assert.True(float.IsNaN(scalar[i + l]) ? float.IsNaN(v256[l]) : bits == BitConverter.SingleToInt32Bits(v256[l]), $"256-bit lane at x = {x[i + l]:R}");
                if (l < 4) Assert.True(float.IsNaN(scalar[i + l]) ? float.IsNaN(v128[l]) : bits == BitConverter.SingleToInt32Bits(v128[l]), $"128-bit lane at x = {x[i + l]:R}");
            }
        }
    }

    [Fact]
    public void LogSumExpIsWithinAMicroOfTheBinary64SumOnEveryWidth()
    {
        var rng = new Random(13);
        foreach (int cols in new[] { 0, 1, 7, 16, 17, 257, 4099, 32128 })
        {
            int rows = 4;
            var x = Random(rng, rows * cols, 20);
            if (cols > 2) x[2] = float.NegativeInfinity;                                   // row 0 keeps a −∞ term
            for (int j = 0; j < cols; j++) x[cols + j] = float.NegativeInfinity;            // row 1: all −∞
            if (cols > 0) x[2 * cols + cols / 2] = float.NaN;                                // row 2: a NaN
            var want = new double[rows];
            for (int r = 0; r < rows; r++)
            {
                var row = x.AsSpan(r * cols, cols).ToArray();
                double max = row.Length == 0 ? double.NegativeInfinity : row.Max(v => (double)v);
                want[r] = row.Any(float.IsNaN) ? double.NaN
                    : double.IsNegativeInfinity(max) ? max : max + Math.Log(row.Sum(v => Math.Exp(v - max)));
            }
            foreach (var w in Simd.Supported)
            {
                var got = new double[rows];
                using (Simd.Override(w)) Softmax.LogSumExp(x, got, rows, cols);
                for (int r = 0; r < rows; r++)
                {
                    if (double.IsNaN(want[r]) || double.IsInfinity(want[r])) { Assert.Equal(want[r], got[r]); continue; }
                    Assert.True(Math.Abs(got[r] - want[r]) <= 1e-6 * Math.Max(1, Math.Abs(want[r])), $"{w} cols={cols} row {r}: {got[r]:R} against {want[r]:R}");
                }
            }
        }
        Assert.Throws<ArgumentException>(() => Softmax.LogSumExp(new float[5], new double[2], 2, 3));
    }

    [Fact]
    public void LogSoftmaxMatchesReferenceAndLiteral()
    {
        double lse = Math.Log(Math.E + Math.Exp(2) + Math.Exp(3));
        var lit = new[] { (float)(1 - lse), (float)(2 - lse), (float)(3 - lse) };
        var rng = new Random(5);
        foreach (var w in Simd.Supported)
        {
            var y = new float[3];
            using (Simd.Override(w)) Softmax.LogForward(new float[] { 1, 2, 3 }, y, 1, 3);
            Near(lit, y, 1e-6, 1e-6, $"{w} literal");
        }
        foreach (int cols in Lengths.Append(32003))
        {
            var x = Random(rng, 2 * cols, 20);
            var expected = new float[x.Length];
            Softmax.LogReference(x, expected, 2, cols);
            foreach (var w in VectorWidths)
            {
                var y = new float[x.Length];
                using (Simd.Override(w)) Softmax.LogForward(x, y, 2, cols);
                Near(expected, y, 2e-6, 1e-6, $"{w} cols={cols}");
            }
        }
    }

    [Fact]
    public void BackwardMatchesReferenceAndFiniteDifferences()
    {
        var rng = new Random(6);
        foreach (int cols in Lengths)
        {
            var x = Random(rng, 2 * cols, 3);
            var dy = Random(rng, 2 * cols);
            var y = Ref(x, 2, cols, new SoftmaxOptions { Scale = 0.5f });
            var ly = new float[x.Length];
            Softmax.LogReference(x, ly, 2, cols);
            var e1 = new float[x.Length];
            var e2 = new float[x.Length];
            Softmax.BackwardReference(y, dy, e1, 2, cols, 0.5f);
            Softmax.LogBackwardReference(ly, dy, e2, 2, cols);
            foreach (var w in VectorWidths)
            {
                var g1 = new float[x.Length];
                var g2 = (float[])dy.Clone();
                using (Simd.Override(w))
                {
                    Softmax.Backward(y, dy, g1, 2, cols, 0.5f);
                    Softmax.LogBackward(ly, g2, g2, 2, cols);   // in place over dy
                }
                Near(e1, g1, 1e-6, 1e-5, $"{w} softmax cols={cols}");
                Near(e2, g2, 1e-6, 1e-5, $"{w} log-softmax cols={cols}");
            }
        }
        // d/dx Σ dy·softmax(s·x) and Σ dy·logsoftmax(x) by central differences in double
        var xs = new double[] { 0.3, -1.2, 2.0, 0.7, -0.1 };
        var g = new double[] { 0.5, -1, 0.25, 2, -0.75 };
        double scale = 0.5;
        Func<double[], double> loss = v => SoftmaxD(v.Select(t => t * scale).ToArray()).Zip(g, (a, b) => a * b).Sum();
        Func<double[], double> logLoss = v => SoftmaxD(v).Select(t => Math.Log(t)).Zip(g, (a, b) => a * b).Sum();
        var yf = SoftmaxD(xs.Select(t => t * scale).ToArray()).Select(v => (float)v).ToArray();
        var lyf = SoftmaxD(xs).Select(v => (float)Math.Log(v)).ToArray();
        var gf = g.Select(v => (float)v).ToArray();
        foreach (var w in Simd.Supported)
        {
            var dx = new float[5];
            var dlx = new float[5];
            using (Simd.Override(w))
            {
                Softmax.Backward(yf, gf, dx, 1, 5, (float)scale);
                Softmax.LogBackward(lyf, gf, dlx, 1, 5);
            }
            for (int i = 0; i < 5; i++)
            {
                Assert.Equal(CentralDifference(loss, xs, i), dx[i], 5);
                Assert.Equal(CentralDifference(logLoss, xs, i), dlx[i], 5);
            }
        }
    }

    [Fact]
    public void BadArgumentsThrowWithClearMessages()
    {
        var x = new float[12];
        var e = Assert.Throws<ArgumentException>(() => Softmax.Forward(x, x, 4, 3, bias: new float[5]));
        Assert.Contains("bias", e.Message);
        e = Assert.Throws<ArgumentException>(() => Softmax.Forward(x, x, 4, 3, bias: new float[9]));
        Assert.Contains("does not divide", e.Message);
        e = Assert.Throws<ArgumentException>(() => Softmax.Forward(x, x, 4, 3, validLengths: new[] { 4 }));
        Assert.Contains("valid length 4", e.Message);
        e = Assert.Throws<ArgumentException>(() => Softmax.Forward(x, x, 4, 3, new SoftmaxOptions { Causal = true, QueryLength = 3 }));
        Assert.Contains("QueryLength", e.Message);
        Assert.Throws<ArgumentException>(() => Softmax.Forward(x, new float[11], 4, 3));
    }

    static double[] SoftmaxD(double[] v)
    {
        double m = v.Max();
        var e = v.Select(t => Math.Exp(t - m)).ToArray();
        double s = e.Sum();
        return e.Select(t => t / s).ToArray();
    }

    internal static double CentralDifference(Func<double[], double> f, double[] x, int i, double h = 1e-5)
    {
        var p = (double[])x.Clone();
        var m = (double[])x.Clone();
        p[i] += h;
        m[i] -= h;
        return (f(p) - f(m)) / (2 * h);
    }
}
