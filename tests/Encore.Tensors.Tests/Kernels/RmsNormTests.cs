using Encore.Tensors;
using Encore.Tensors.Kernels;
using static Encore.Tensors.Tests.Kernels.OpsTesting;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class RmsNormTests
{
    [Fact]
    public void ThreeFourWithZeroEpsilon()
    {
        // mean(x²) = (9 + 16)/2 = 12.5
        float s = (float)Math.Sqrt(12.5);
        foreach (var w in Simd.Supported)
        {
            var y = new float[2];
            var rstd = new float[1];
            using (Simd.Override(w)) RmsNorm.Forward(new float[] { 3, 4 }, default, y, 1, 2, 0f, rstd);
            Near(new[] { 3 / s, 4 / s }, y, 0, 1e-7, $"{w}");
            Near(new[] { 1 / s }, rstd, 0, 1e-7, $"{w} rstd");
            using (Simd.Override(w)) RmsNorm.Forward(new float[] { 3, 4 }, new float[] { 2, 0.5f }, y, 1, 2, 0f);
            Near(new[] { 6 / s, 2 / s }, y, 0, 1e-7, $"{w} weighted");
        }
    }

    [Fact]
    public void EveryWidthMatchesTheReference()
    {
        var rng = new Random(11);
        foreach (int cols in Lengths.Append(4099))
        {
            foreach (int rows in new[] { 1, 3 })
            {
                var x = Random(rng, rows * cols, 3);
                var wt = Random(rng, cols, 2);
                var expected = new float[x.Length];
                var er = new float[rows];
                RmsNorm.Reference(x, wt, expected, rows, cols, 1e-6f, er);
                var en = new float[x.Length];
                RmsNorm.Reference(x, default, en, rows, cols, 1e-6f);
                foreach (var w in Simd.Supported)
                {
                    var y = new float[x.Length];
                    var r = new float[rows];
                    using (Simd.Override(w)) RmsNorm.Forward(x, wt, y, rows, cols, 1e-6f, r);
                    Near(expected, y, 1e-6, 2e-6, $"{w} cols={cols}");
                    Near(er, r, 0, 2e-6, $"{w} rstd cols={cols}");
                    var inPlace = (float[])x.Clone();
                    using (Simd.Override(w)) RmsNorm.Forward(inPlace, default, inPlace, rows, cols, 1e-6f);
                    Near(en, inPlace, 1e-6, 2e-6, $"{w} unweighted in place cols={cols}");
                }
            }
        }
    }

    [Fact]
    public void ParallelRowsMatchTheReference()
    {
        var rng = new Random(12);
        const int rows = 130, cols = 513;            // 66,690 values: parallel
        var x = Random(rng, rows * cols, 50);
        var wt = Random(rng, cols);
        var expected = new float[x.Length];
        RmsNorm.Reference(x, wt, expected, rows, cols, 1e-5f);
        foreach (var w in Simd.Supported)
        {
            var y = new float[x.Length];
            using (Simd.Override(w)) RmsNorm.Forward(x, wt, y, rows, cols, 1e-5f);
            Near(expected, y, 1e-6, 4e-6, $"{w}");
        }
    }

    [Fact]
    public void BackwardMatchesReferenceAndFiniteDifferences()
    {
        var rng = new Random(13);
        foreach (int cols in new[] { 1, 3, 16, 17, 33, 64, 129, 256 })
        {
            const int rows = 3;
            var x = Random(rng, rows * cols, 2);
            var wt = Random(rng, cols, 2);
            var dy = Random(rng, rows * cols);
            var y = new float[x.Length];
            var rstd = new float[rows];
            RmsNorm.Reference(x, wt, y, rows, cols, 1e-5f, rstd);
            var edx = new float[x.Length];
            var edw = Enumerable.Repeat(0.5f, cols).ToArray();
            RmsNorm.BackwardReference(x, wt, rstd, dy, edx, edw, rows, cols);
            foreach (var w in Simd.Supported)
            {
                var dx = new float[x.Length];
                var dw = Enumerable.Repeat(0.5f, cols).ToArray();
                using (Simd.Override(w)) RmsNorm.Backward(x, wt, rstd, dy, dx, dw, rows, cols);
                Near(edx, dx, 1e-5, 1e-5, $"{w} dx cols={cols}");
                Near(edw, dw, 1e-5, 1e-5, $"{w} dw cols={cols}");
            }
        }
        // L = Σ g·rmsnorm(x; w), differentiated numerically in double
        double[] xs = { 0.5, -1.5, 2.0, 0.25 }, ws = { 1.5, -0.5, 0.75, 2 }, g = { 1, -2, 0.5, 0.3 };
        const double eps = 1e-5;
        Func<double[], double[], double> loss = (xv, wv) =>
        {
            double rs = 1 / Math.Sqrt(xv.Sum(t => t * t) / xv.Length + eps);
            return xv.Select((t, i) => t * rs * wv[i] * g[i]).Sum();
        };
        var xf = xs.Select(v => (float)v).ToArray();
        var wf = ws.Select(v => (float)v).ToArray();
        var gf = g.Select(v => (float)v).ToArray();
        var rf = new float[1];
        RmsNorm.Reference(xf, wf, new float[4], 1, 4, (float)eps, rf);
        foreach (var w in Simd.Supported)
        {
            var dx = new float[4];
            var dw = new float[4];
            using (Simd.Override(w)) RmsNorm.Backward(xf, wf, rf, gf, dx, dw, 1, 4);
            for (int i = 0; i < 4; i++)
            {
                Assert.Equal(SoftmaxTests.CentralDifference(v => loss(v, ws), xs, i), dx[i], 4);
                Assert.Equal(SoftmaxTests.CentralDifference(v => loss(xs, v), ws, i), dw[i], 4);
            }
        }
    }

    [Fact]
    public void BadArgumentsThrow()
    {
        var x = new float[6];
        var e = Assert.Throws<ArgumentException>(() => RmsNorm.Forward(x, new float[2], x, 2, 3, 1e-6f));
        Assert.Contains("weight has 2 values for 3 columns", e.Message);
        Assert.Throws<ArgumentException>(() => RmsNorm.Forward(x, default, x, 3, 3, 1e-6f));
        Assert.Throws<ArgumentException>(() => RmsNorm.Forward(x, default, x, 2, 3, -1f));
    }
}
