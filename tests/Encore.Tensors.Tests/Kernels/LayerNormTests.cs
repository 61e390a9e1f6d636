using Encore.Tensors;
using Encore.Tensors.Kernels;
using static Encore.Tensors.Tests.Kernels.OpsTesting;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class LayerNormTests
{
    [Fact]
    public void OneToFourWithZeroEpsilon()
    {
        // mean 2.5, biased variance 1.25
        float s = (float)Math.Sqrt(1.25);
        var expected = new[] { -1.5f / s, -0.5f / s, 0.5f / s, 1.5f / s };
        foreach (var w in Simd.Supported)
        {
            var y = new float[4];
            var mean = new float[1];
            var rstd = new float[1];
            using (Simd.Override(w)) LayerNorm.Forward(new float[] { 1, 2, 3, 4 }, default, default, y, 1, 4, 0f, mean, rstd);
            Near(expected, y, 1e-7, 1e-6, $"{w}");
            Assert.Equal(2.5f, mean[0]);
            using (Simd.Override(w)) LayerNorm.Forward(new float[] { 1, 2, 3, 4 }, new float[] { 2, 2, 2, 2 }, new float[] { 1, 1, 1, 1 }, y, 1, 4, 0f);
            Near(expected.Select(v => 2 * v + 1).ToArray(), y, 1e-7, 1e-6, $"{w} affine");
        }
    }

    [Fact]
    public void EveryWidthMatchesTheReferenceIncludingLargeMeans()
    {
        var rng = new Random(21);
        foreach (int cols in Lengths.Append(4099))
        {
            foreach (float offset in new[] { 0f, 1e4f })
            {
                const int rows = 3;
                var x = Random(rng, rows * cols, 3).Select(v => v + offset).ToArray();
                var g = Random(rng, cols, 2);
                var b = Random(rng, cols, 2);
                var expected = new float[x.Length];
                var em = new float[rows];
                var er = new float[rows];
                LayerNorm.Reference(x, g, b, expected, rows, cols, 1e-5f, em, er);
                foreach (var w in Simd.Supported)
                {
                    var y = (float[])x.Clone();
                    var m = new float[rows];
                    var r = new float[rows];
                    using (Simd.Override(w)) LayerNorm.Forward(y, g, b, y, rows, cols, 1e-5f, m, r);
                    Near(expected, y, 2e-6, 2e-6, $"{w} cols={cols} offset={offset}");
                    Near(em, m, 1e-6, 1e-6, $"{w} mean");
                    Near(er, r, 1e-6, 2e-6, $"{w} rstd");
                }
            }
        }
    }

    [Fact]
    public void ParallelRowsMatchTheReference()
    {
        var rng = new Random(22);
        const int rows = 130, cols = 513;
        var x = Random(rng, rows * cols, 5);
        var expected = new float[x.Length];
        LayerNorm.Reference(x, default, default, expected, rows, cols, 1e-5f);
        foreach (var w in Simd.Supported)
        {
            var y = new float[x.Length];
            using (Simd.Override(w)) LayerNorm.Forward(x, default, default, y, rows, cols, 1e-5f);
            Near(expected, y, 1e-6, 4e-6, $"{w}");
        }
    }

    [Fact]
    public void BackwardMatchesReferenceAndFiniteDifferences()
    {
        var rng = new Random(23);
        foreach (int cols in new[] { 1, 3, 16, 17, 33, 64, 129, 256 })
        {
            int rows = cols == 129 ? 600 : 3;        // 77,400 values: the parallel row and column passes
            var x = Random(rng, rows * cols, 2);
            var g = Random(rng, cols, 2);
            var dy = Random(rng, rows * cols);
            var mean = new float[rows];
            var rstd = new float[rows];
            LayerNorm.Reference(x, g, default, new float[x.Length], rows, cols, 1e-5f, mean, rstd);
            var edx = new float[x.Length];
            var edg = new float[cols];
            var edb = new float[cols];
            LayerNorm.BackwardReference(x, g, mean, rstd, dy, edx, edg, edb, rows, cols);
            foreach (var w in Simd.Supported)
            {
                var dx = (float[])dy.Clone();
                var dg = new float[cols];
                var db = new float[cols];
                using (Simd.Override(w)) LayerNorm.Backward(x, g, mean, rstd, dx, dx, dg, db, rows, cols);
                Near(edx, dx, 2e-5, 1e-5, $"{w} dx cols={cols}");
                Near(edg, dg, 1e-4, 1e-4, $"{w} dgamma cols={cols}");
                Near(edb, db, 1e-4, 1e-4, $"{w} dbeta cols={cols}");
            }
        }
        double[] xs = { 0.5, -1.5, 2.0, 0.25, 1 }, gs = { 1.5, -0.5, 0.75, 2, 1 }, bs = { 0.1, 0.2, 0.3, 0.4, 0.5 }, up = { 1, -2, 0.5, 0.3, 0.7 };
        const double eps = 1e-5;
        Func<double[], double[], double[], double> loss = (xv, gv, bv) =>
        {
            double m = xv.Average(), rs = 1 / Math.Sqrt(xv.Sum(t => (t - m) * (t - m)) / xv.Length + eps);
            return xv.Select((t, i) => ((t - m) * rs * gv[i] + bv[i]) * up[i]).Sum();
        };
        float[] F(double[] a) => a.Select(v => (float)v).ToArray();
        var mf = new float[1];
        var rf = new float[1];
        LayerNorm.Reference(F(xs), F(gs), F(bs), new float[5], 1, 5, (float)eps, mf, rf);
        foreach (var w in Simd.Supported)
        {
            var dx = new float[5];
            var dg = new float[5];
            var db = new float[5];
            using (Simd.Override(w)) LayerNorm.Backward(F(xs), F(gs), mf, rf, F(up), dx, dg, db, 1, 5);
            for (int i = 0; i < 5; i++)
            {
                Assert.Equal(SoftmaxTests.CentralDifference(v => loss(v, gs, bs), xs, i), dx[i], 4);
                Assert.Equal(SoftmaxTests.CentralDifference(v => loss(xs, v, bs), gs, i), dg[i], 4);
                Assert.Equal(SoftmaxTests.CentralDifference(v => loss(xs, gs, v), bs, i), db[i], 4);
            }
        }
    }
}
