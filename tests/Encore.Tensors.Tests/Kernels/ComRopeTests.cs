using Encore.Tensors.Kernels;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class ComRopeTests
{
    static float[] Random(Random r, int n, double scale = 1) => Enumerable.Range(0, n).Select(_ => (float)((r.NextDouble() * 2 - 1) * scale)).ToArray();

    static double[] Exp(double[] a, int n)
    {
        var r = new double[n * n];
        ComRope.MatrixExp(a, r, n);
        return r;
    }

    static double[] MulTransposed(double[] a, double[] b, int n)   // aᵀ·b
    {
        var c = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                for (int k = 0; k < n; k++) c[i * n + j] += a[k * n + i] * b[k * n + j];
        return c;
    }

    static double MaxDiff(IReadOnlyList<double> a, IReadOnlyList<double> b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max();

    static double[] Skew(Random r, int n, double scale)
    {
        var s = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
            {
                s[i * n + j] = (r.NextDouble() * 2 - 1) * scale;
                s[j * n + i] = -s[i * n + j];
            }
        return s;
    }

    [Theory]
    [InlineData(0.3)]
    [InlineData(7.0)]
    [InlineData(1000.0)]
    public void TheExponentialOfATwoByTwoGeneratorIsTheRotation(double angle)
    {
        var r = Exp([0, -angle, angle, 0], 2);
        Assert.True(MaxDiff(r, [Math.Cos(angle), -Math.Sin(angle), Math.Sin(angle), Math.Cos(angle)]) < 1e-9);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(8)]
    public void TheExponentialOfASkewSymmetricMatrixIsOrthogonalAndInvertedByItsNegative(int n)
    {
        var rng = new Random(n);
        var s = Skew(rng, n, 3);
        var e = Exp(s, n);
        var identity = new double[n * n];
        for (int i = 0; i < n; i++) identity[i * n + i] = 1;
        Assert.True(MaxDiff(MulTransposed(e, e, n), identity) < 1e-12);
        // exp(S)·exp(−S) = I, with exp(−S) = exp(S)ᵀ
        var minus = Exp(s.Select(x => -x).ToArray(), n);
        var t = new double[n * n];
        for (int i = 0; i < n * n; i++) t[i] = e[(i % n) * n + i / n];
        Assert.True(MaxDiff(minus, t) < 1e-12);
    }

    // The RoPE equation R(x)ᵀR(y) = R(y − x) for 2-D positions x, with generators A_1, A_2 (ComRoPE §3).
    static double RopeEquationError(double[] a1, double[] a2, int n, Random rng)
    {
        double worst = 0;
        for (int trial = 0; trial < 5; trial++)
        {
            double x1 = rng.NextDouble() * 10 - 5, x2 = rng.NextDouble() * 10 - 5, y1 = rng.NextDouble() * 10 - 5, y2 = rng.NextDouble() * 10 - 5;
            double[] R(double p1, double p2) => Exp(a1.Zip(a2, (u, v) => p1 * u + p2 * v).ToArray(), n);
            worst = Math.Max(worst, MaxDiff(MulTransposed(R(x1, x2), R(y1, y2), n), R(y1 - x1, y2 - x2)));
        }
        return worst;
    }

    [Fact]
    public void TheRopeEquationHoldsForCommutingGeneratorsAndFailsForIndependentOnes()
    {
        var rng = new Random(1);
        int n = 4;
        var s = Skew(rng, n, 1);
        // LD: A_i = λ_i·S, multiples of one matrix.
        Assert.True(RopeEquationError(s.Select(x => 0.7 * x).ToArray(), s.Select(x => -1.3 * x).ToArray(), n, rng) < 1e-5);
        // AP: disjoint blocks, axis 1 on dims {0, 1}, axis 2 on {2, 3}.
        var ap1 = new double[n * n];
        var ap2 = new double[n * n];
        ap1[0 * n + 1] = -0.9; ap1[1 * n + 0] = 0.9;
        ap2[2 * n + 3] = -0.4; ap2[3 * n + 2] = 0.4;
        Assert.True(RopeEquationError(ap1, ap2, n, rng) < 1e-5);
        // Independent skew-symmetric generators (LieRE) do not commute, and the equation fails.
        Assert.True(RopeEquationError(s, Skew(rng, n, 1), n, rng) > 0.1);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void TheKernelsRotationsSatisfyTheRopeEquationAndScoresIgnoreAGlobalShift(int b)
    {
        var rng = new Random(b);
        int groups = 2, hd = 8, blocks = hd / b, heads = 4;
        var basis = Random(rng, groups * blocks * b * b);
        var scale = Random(rng, groups * blocks);
        float[] positions = [0, 3, 5, 2, 17, 20, 22, 19];            // the second half is the first shifted by 17
        int bb = b * b, per = groups * blocks * bb;
        var rot = new float[positions.Length * per];
        ComRope.Rotations(basis, scale, groups, blocks, b, positions, rot);
        float[] difference = [2];                                     // y − x = 5 − 3
        var rd = new float[per];
        ComRope.Rotations(basis, scale, groups, blocks, b, difference, rd);
        for (int blk = 0; blk < groups * blocks; blk++)
        {
            var rx = rot.AsSpan(1 * per + blk * bb, bb).ToArray().Select(x => (double)x).ToArray();
            var ry = rot.AsSpan(2 * per + blk * bb, bb).ToArray().Select(x => (double)x).ToArray();
            Assert.True(MaxDiff(MulTransposed(rx, ry, b), rd.AsSpan(blk * bb, bb).ToArray().Select(x => (double)x).ToArray()) < 1e-5);
        }
        // Scores q'ᵀk' of rotated queries and keys depend on the offset only: rows 0–3 and 4–7 agree.
        var q = Random(rng, 4 * heads * hd);
        var k = Random(rng, 4 * groups * hd);
        var qq = q.Concat(q).ToArray();
        var kk = k.Concat(k).ToArray();
        var qr = new float[qq.Length];
        var kr = new float[kk.Length];
        int[] slots = [0, 1, 2, 3, 4, 5, 6, 7];
        ComRope.Apply(qq, qr, 8, heads, hd, groups, b, rot, slots);
        ComRope.Apply(kk, kr, 8, groups, hd, groups, b, rot, slots);
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                {
                    double Score(int shift)
                    {
                        double s = 0;
                        for (int d = 0; d < hd; d++) s += qr[((i + shift) * heads + h) * hd + d] * kr[((j + shift) * groups + h / 2) * hd + d];
                        return s;
                    }
                    Assert.True(Math.Abs(Score(0) - Score(4)) < 1e-4, $"head {h}, query {i}, key {j}: {Score(0)} vs {Score(4)}");
                }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void StartedAtRopesAnglesItIsRope(int b)
    {
        // b = 2 with RoPE's fixed angles is RoPE itself; a larger block started there is RoPE too.
        var rng = new Random(3);
        int hd = 16, heads = 3, rows = 40;
        var cache = new RopeCache(hd, rows, new RopeOptions { Theta = 10000 });
        var basis = new float[heads * (hd / b) * b * b];
        ComRope.RopeBasis(basis, heads, hd, b, RopeCache.InverseFrequencies(new RopeOptions { Theta = 10000 }, hd));
        var scale = Enumerable.Repeat(1f, heads * (hd / b)).ToArray();
        var positions = Enumerable.Range(0, rows).Select(p => (float)p).ToArray();
        var rot = new float[rows * heads * (hd / b) * b * b];
        ComRope.Rotations(basis, scale, heads, hd / b, b, positions, rot);
        var x = Random(rng, rows * heads * hd);
        var expected = (float[])x.Clone();
        Rope.Apply(cache, expected, rows, heads, Enumerable.Range(0, rows).ToArray());
        var y = new float[x.Length];
        ComRope.Apply(x, y, rows, heads, hd, heads, b, rot, Enumerable.Range(0, rows).ToArray());
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(expected[i] - y[i]) < 1e-5, $"value {i}: RoPE {expected[i]}, ComRoPE {y[i]}");
    }

    [Fact]
    public void TheTransposeUndoesTheRotation()
    {
        var rng = new Random(5);
        int b = 4, hd = 8, g = 1, heads = 2, rows = 3;
        var basis = Random(rng, g * 2 * b * b);
        var scale = Random(rng, g * 2);
        var rot = new float[rows * g * 2 * b * b];
        ComRope.Rotations(basis, scale, g, 2, b, [0.5f, -2, 9], rot);
        var x = Random(rng, rows * heads * hd);
        var y = new float[x.Length];
        var back = new float[x.Length];
        ComRope.Apply(x, y, rows, heads, hd, g, b, rot, [0, 1, 2]);
        ComRope.Apply(y, back, rows, heads, hd, g, b, rot, [0, 1, 2], transpose: true);
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(x[i] - back[i]) < 1e-5, $"value {i}: {x[i]} vs {back[i]}");
        Assert.Throws<ArgumentException>(() => ComRope.Apply(x, y, rows, heads, hd, g, 3, rot, [0, 1, 2]));
        Assert.Throws<ArgumentException>(() => ComRope.Apply(x, y, rows, heads, hd, g, b, rot, [0, 1, 3]));
    }
}
