using Encore.Tensors.Kernels;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class GemmTests
{
    static readonly int[] Dims = { 0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 64, 65, 100 };
    static readonly KernelPool OneThread = new(1);
    static readonly KernelPool ThreeThreads = new(3);

    static float[] RandomArray(Random rnd, int n)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(rnd.NextDouble() * 2 - 1);
        return v;
    }

    // Tolerance per element: relative to Σ|α·a·b| + |β·c| (the magnitude the rounding errors scale with).
    static void AssertClose(int m, int n, int k, Transpose ta, Transpose tb, float alpha, float[] a, int lda, float[] b, int ldb,
        float beta, float[] c0, float[] expected, float[] actual, int ldc, string what)
    {
        var absA = a.Select(MathF.Abs).ToArray();
        var absB = b.Select(MathF.Abs).ToArray();
        var mag = new float[c0.Length];
        Gemm.Reference(ta, tb, m, n, k, 1, absA, lda, absB, ldb, 0, mag, ldc);
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                int at = i * ldc + j;
                float tol = 1e-5f * (MathF.Abs(alpha) * mag[at] + (beta == 0 ? 0 : MathF.Abs(beta * c0[at]))) + 1e-6f;
                if (!(MathF.Abs(expected[at] - actual[at]) <= tol))
                    Assert.Fail($"{what}: C[{i},{j}] = {actual[at]}, expected {expected[at]} (tol {tol})");
            }
        }
        // Elements between rows (ld padding) are left alone.
        for (int i = 0; i < m; i++)
            for (int j = n; j < ldc && i * ldc + j < c0.Length; j++)
                Assert.Equal(c0[i * ldc + j], actual[i * ldc + j]);
    }

    static void CheckCase(Random rnd, int m, int n, int k, Transpose ta, Transpose tb, float alpha, float beta, int pad, bool allowSmall)
    {
        int aRows = ta == Transpose.No ? m : k, aCols = ta == Transpose.No ? k : m;
        int bRows = tb == Transpose.No ? k : n, bCols = tb == Transpose.No ? n : k;
        int lda = aCols + pad, ldb = bCols + pad, ldc = n + pad;
        var a = RandomArray(rnd, Math.Max(0, aRows * lda));
        var b = RandomArray(rnd, Math.Max(0, bRows * ldb));
        var c0 = RandomArray(rnd, Math.Max(0, m * ldc));
        if (beta == 0 && n > 0) for (int i = 0; i < m; i++) c0[i * ldc] = float.NaN; // β = 0 must not read C
        var expected = (float[])c0.Clone();
        Gemm.Reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, expected, ldc);
        foreach (var w in Simd.Supported)
        {
            var c = (float[])c0.Clone();
            Gemm.Multiply(w, null, allowSmall, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            AssertClose(m, n, k, ta, tb, alpha, a, lda, b, ldb, beta, c0, expected, c, ldc, $"{w} {m}×{n}×{k} {ta}/{tb} α={alpha} β={beta} pad={pad} small={allowSmall}");
        }
    }

    [Fact]
    public void LiteralTwoByThreeTimesThreeByTwo()
    {
        float[] a = { 1, 2, 3, 4, 5, 6 };        // 2×3
        float[] b = { 7, 8, 9, 10, 11, 12 };     // 3×2
        foreach (var w in Simd.Supported)
        {
            using var _ = Simd.Override(w);
            var c = new float[4];
            Gemm.Multiply(Transpose.No, Transpose.No, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2);
            Assert.Equal(new float[] { 58, 64, 139, 154 }, c);
            foreach (var small in new[] { false, true })
            {
                var d = new float[] { 1, 1, 1, 1 };
                Gemm.Multiply(w, null, small, Transpose.No, Transpose.No, 2, 2, 3, 2, a, 3, b, 2, 0.5f, d, 2);
                Assert.Equal(new float[] { 116.5f, 128.5f, 278.5f, 308.5f }, d);
            }
        }
    }

    [Fact]
    public void EveryWidthMatchesReferenceOnSampledShapes()
    {
        var rnd = new Random(1234);
        var trans = new[] { Transpose.No, Transpose.Yes };
        for (int s = 0; s < 48; s++)
        {
            int m = Dims[rnd.Next(Dims.Length)], n = Dims[rnd.Next(Dims.Length)], k = Dims[rnd.Next(Dims.Length)];
            var ta = trans[rnd.Next(2)];
            var tb = trans[rnd.Next(2)];
            float alpha = s % 3 == 0 ? 1 : (float)(rnd.NextDouble() * 4 - 2);
            float beta = (s % 4) switch { 0 => 0, 1 => 1, _ => (float)(rnd.NextDouble() * 2 - 1) };
            foreach (bool small in new[] { false, true })
                CheckCase(new Random(s), m, n, k, ta, tb, alpha, beta, pad: s % 2 == 0 ? 0 : 3, allowSmall: small);
        }
    }

    [Fact]
    public void AllTransposeCombinationsOnALargerShape()
    {
        var rnd = new Random(77);
        foreach (var ta in new[] { Transpose.No, Transpose.Yes })
            foreach (var tb in new[] { Transpose.No, Transpose.Yes })
                CheckCase(rnd, 67, 129, 300, ta, tb, 0.75f, ta == tb ? 0f : -0.5f, pad: 5, allowSmall: true);
    }

    [Theory]
    [InlineData(70, 300, 600, Transpose.No)]    // three K slices; one row chunk, so the column tasks share one packed A
    [InlineData(70, 300, 600, Transpose.Yes)]   // the same with op(A) = Aᵀ (a weight gradient's dYᵀ)
    [InlineData(300, 40, 400, Transpose.No)]    // several row blocks of MC
    [InlineData(300, 40, 400, Transpose.Yes)]
    [InlineData(1800, 64, 300, Transpose.Yes)]  // enough row chunks for every task (up to 12), so no column split: each task packs its own A
    [InlineData(13, 2100, 160, Transpose.No)]   // two column blocks of NC
    [InlineData(450, 40, 2085, Transpose.No)]   // deep and narrow: one task per thread runs every K slice of its rows
    public void ResultsAreBitIdenticalAcrossThreadCountsAndMatchReference(int m, int n, int k, Transpose ta)
    {
        var rnd = new Random(m + n + k);
        var a = RandomArray(rnd, m * k);
        var b = RandomArray(rnd, k * n);
        var c0 = RandomArray(rnd, m * n);
        int lda = ta == Transpose.No ? k : m;
        var expected = (float[])c0.Clone();
        Gemm.Reference(ta, Transpose.Yes, m, n, k, 1.5f, a, lda, b, k, 0.25f, expected, n);
        foreach (var w in Simd.Supported)
        {
            var c1 = (float[])c0.Clone();
            var c3 = (float[])c0.Clone();
            Gemm.Multiply(w, OneThread, true, ta, Transpose.Yes, m, n, k, 1.5f, a, lda, b, k, 0.25f, c1, n);
            Gemm.Multiply(w, ThreeThreads, true, ta, Transpose.Yes, m, n, k, 1.5f, a, lda, b, k, 0.25f, c3, n);
            Assert.Equal(c1, c3);
            AssertClose(m, n, k, ta, Transpose.Yes, 1.5f, a, lda, b, k, 0.25f, c0, expected, c3, n, $"{w} {m}×{n}×{k} {ta}");
        }
    }

    [Fact]
    public void ZeroSizesAndZeroDepth()
    {
        var c = new float[] { 2, float.NaN, 3, 4 };
        Gemm.Multiply(Transpose.No, Transpose.No, 2, 2, 0, 1, ReadOnlySpan<float>.Empty, 1, ReadOnlySpan<float>.Empty, 2, 0, c, 2);
        Assert.Equal(new float[] { 0, 0, 0, 0 }, c);
        c = new float[] { 2, 1, 3, 4 };
        Gemm.Multiply(Transpose.No, Transpose.No, 2, 2, 0, 1, ReadOnlySpan<float>.Empty, 1, ReadOnlySpan<float>.Empty, 2, 2, c, 2);
        Assert.Equal(new float[] { 4, 2, 6, 8 }, c);
        Gemm.Multiply(Transpose.No, Transpose.No, 0, 0, 5, 1, ReadOnlySpan<float>.Empty, 5, ReadOnlySpan<float>.Empty, 1, 0, Span<float>.Empty, 1);
    }

    [Fact]
    public void RejectsShortOperands()
    {
        var a = new float[6];
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(Transpose.No, Transpose.No, 2, 2, 3, 1, a, 3, new float[5], 2, 0, new float[4], 2));
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(Transpose.No, Transpose.No, 2, 2, 3, 1, a, 2, new float[6], 2, 0, new float[4], 2));
    }
}
