using Encore.Tensors;
using Encore.Tensors.Kernels;
using static Encore.Tensors.Tests.Kernels.OpsTesting;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class RopeTests
{
    static float[] Rotate(SimdWidth w, RopeCache cache, float[] x, int rows, int heads, int[] pos, bool inverse = false)
    {
        var y = (float[])x.Clone();
        using (Simd.Override(w))
        {
            if (inverse) Rope.ApplyInverse(cache, y, rows, heads, pos);
            else Rope.Apply(cache, y, rows, heads, pos);
        }
        return y;
    }

    static float[] Rotate(SimdWidth w, RopeCache cache, float[] x, int rows, int heads, float[] pos, bool inverse = false)
    {
        var y = (float[])x.Clone();
        using (Simd.Override(w))
        {
            if (inverse) Rope.ApplyInverse(cache, y, rows, heads, pos);
            else Rope.Apply(cache, y, rows, heads, pos);
        }
        return y;
    }

    [Fact]
    public void QuarterTurnsSwapAndNegate()
    {
        // Linear scale 2/π makes position 1 an angle of π/2 for pair 0; θ = 4 gives pair 1 of d = 4 a
        // frequency of 4^(−1/2) = 1/2, so an angle of π/4.
        float r = MathF.Sqrt(0.5f);
        var x = new float[] { 1, 2, 3, 4 };
        var half = new RopeCache(4, 2, new RopeOptions { Theta = 4, LinearScale = 2 / Math.PI });
        var pairs = new RopeCache(4, 2, new RopeOptions { Theta = 4, LinearScale = 2 / Math.PI, Layout = RopeLayout.Interleaved });
        var partial = new RopeCache(4, 2, new RopeOptions { Theta = 4, LinearScale = 2 / Math.PI, RotaryDims = 2 });
        foreach (var w in Simd.Supported)
        {
            // (x0, x2) turn by 90°: (1, 3) → (−3, 1); (x1, x3) by 45°: (2, 4) → (−2r, 6r)
            Near(new[] { -3f, -2 * r, 1, 6 * r }, Rotate(w, half, x, 1, 1, new[] { 1 }), 1e-6, 1e-6, $"{w} half-split");
            // (x0, x1) by 90°: (1, 2) → (−2, 1); (x2, x3) by 45°: (3, 4) → (−r, 7r)
            Near(new[] { -2f, 1, -r, 7 * r }, Rotate(w, pairs, x, 1, 1, new[] { 1 }), 1e-6, 1e-6, $"{w} interleaved");
            // only the first two dims rotate
            Near(new[] { -2f, 1, 3, 4 }, Rotate(w, partial, x, 1, 1, new[] { 1 }), 1e-6, 1e-6, $"{w} partial");
            // the inverse turns the other way: (1, 2) by −90° → (2, −1)
            Near(new[] { 2f, -1, 3, 4 }, Rotate(w, partial, x, 1, 1, new[] { 1 }, inverse: true), 1e-6, 1e-6, $"{w} inverse");
            // position 0 is the identity
            Assert.Equal(x, Rotate(w, half, x, 1, 1, new[] { 0 }));
        }
    }

    [Fact]
    public void EveryWidthIsBitIdenticalToScalarAndCloseToTheReference()
    {
        var rng = new Random(31);
        foreach (int headDim in new[] { 2, 4, 6, 8, 14, 16, 18, 32, 34, 64, 66, 128, 130, 256 })
        {
            foreach (var layout in new[] { RopeLayout.HalfSplit, RopeLayout.Interleaved })
            {
                int rot = headDim >= 8 && headDim % 4 == 0 ? headDim / 2 : 0;   // partial rotary on some shapes
                var o = new RopeOptions { Layout = layout, RotaryDims = rot, Theta = headDim % 3 == 0 ? 500000 : 10000 };
                var cache = new RopeCache(headDim, 300, o);
                int rows = 1 + headDim % 5, heads = 1 + headDim % 3;
                var x = Random(rng, rows * heads * headDim, 3);
                var pos = Enumerable.Range(0, rows).Select(_ => rng.Next(300)).ToArray();
                var scalar = Rotate(SimdWidth.Scalar, cache, x, rows, heads, pos);
                var expected = (float[])x.Clone();
                Rope.Reference(o, headDim, expected, rows, heads, pos.Select(p => (float)p).ToArray(), inverse: false);
                Near(expected, scalar, 2e-6, 2e-6, $"scalar vs reference hd={headDim} {layout}");
                var fpos = pos.Select(p => (float)p).ToArray();
                foreach (var w in Simd.Supported)
                {
                    Assert.Equal(scalar, Rotate(w, cache, x, rows, heads, pos));
                    // fractional-position path at integer positions: the same tables, computed per row
                    Assert.Equal(scalar, Rotate(w, cache, x, rows, heads, fpos));
                    var back = Rotate(w, cache, Rotate(w, cache, x, rows, heads, pos), rows, heads, pos, inverse: true);
                    Near(x, back, 2e-6, 2e-6, $"{w} inverse∘forward hd={headDim} {layout}");
                }
            }
        }
    }

    [Fact]
    public void CenteredFractionalPositionsAndScalingsMatchTheReference()
    {
        var p4 = new float[4];
        Rope.CenteredPositions(4, p4);
        Assert.Equal(new[] { -1.5f, -0.5f, 0.5f, 1.5f }, p4);
        var p3 = new float[3];
        Rope.CenteredPositions(3, p3);
        Assert.Equal(new[] { -1f, 0f, 1f }, p3);

        var rng = new Random(32);
        foreach (var o in new[]
        {
            new RopeOptions(),
            new RopeOptions { NtkScale = 4, Layout = RopeLayout.Interleaved },
            new RopeOptions { LinearScale = 8, RotaryDims = 32 },
        })
        {
            const int headDim = 64, rows = 17, heads = 2;
            var cache = new RopeCache(headDim, 0, o);
            var pos = new float[rows];
            Rope.CenteredPositions(rows, pos);
            var x = Random(rng, rows * heads * headDim);
            var expected = (float[])x.Clone();
            Rope.Reference(o, headDim, expected, rows, heads, pos, inverse: false);
            var expectedInv = (float[])x.Clone();
            Rope.Reference(o, headDim, expectedInv, rows, heads, pos, inverse: true);
            foreach (var w in Simd.Supported)
            {
                Near(expected, Rotate(w, cache, x, rows, heads, pos), 2e-6, 2e-6, $"{w} {o}");
                Near(expectedInv, Rotate(w, cache, x, rows, heads, pos, inverse: true), 2e-6, 2e-6, $"{w} inverse {o}");
            }
        }
        // a cache of the centered positions themselves, indexed by row, gives the fractional path's bits
        {
            var o = new RopeOptions { Layout = RopeLayout.Interleaved, NtkScale = 2 };
            var pos = new float[10];
            Rope.CenteredPositions(10, pos);
            var byRow = new RopeCache(32, pos, o);
            var onTheFly = new RopeCache(32, 0, o);
            var x = Random(rng, 10 * 3 * 32);
            var rowsIdx = Enumerable.Range(0, 10).ToArray();
            foreach (var w in Simd.Supported)
                Assert.Equal(Rotate(w, onTheFly, x, 10, 3, pos), Rotate(w, byRow, x, 10, 3, rowsIdx));
        }
        // a batch repeats positions (each sequence's centered positions; zero with both signs): each
        // distinct one's tables are computed once per call and must serve every row that has it
        {
            var o = new RopeOptions();
            var pos = new float[5 + 5 + 4 + 2];
            Rope.CenteredPositions(5, pos.AsSpan(0, 5));
            Rope.CenteredPositions(5, pos.AsSpan(5, 5));
            Rope.CenteredPositions(4, pos.AsSpan(10, 4));
            pos[14] = -0f;
            pos[15] = 0f;
            var cache = new RopeCache(64, 0, o);
            var x = Random(rng, pos.Length * 2 * 64);
            var expected = (float[])x.Clone();
            Rope.Reference(o, 64, expected, pos.Length, 2, pos, inverse: false);
            foreach (var w in Simd.Supported)
                Near(expected, Rotate(w, cache, x, pos.Length, 2, pos), 2e-6, 2e-6, $"{w} repeated positions");
        }
        // NTK: θ' = θ·s^(d/(d−2)); the last pair's frequency is θ'^(−(d−2)/d) = θ^(−(d−2)/d)/s
        var f = RopeCache.InverseFrequencies(new RopeOptions { NtkScale = 4 }, 64);
        Assert.Equal(Math.Pow(10000, -62.0 / 64) / 4, f[31], 12);
        Assert.Equal(1.0, f[0]);
    }

    [Fact]
    public void KeptHalfIntegerTablesGiveTheBitsOfTablesComputedPerRow()
    {
        // Half-integer positions in [FirstKept, EndKept) read the cache's kept tables; others (quarters,
        // far positions) are computed per call. Either way a row's bits are those of a cache built for
        // exactly that row's position.
        var rng = new Random(41);
        var o = new RopeOptions { Layout = RopeLayout.Interleaved };
        const int headDim = 8, heads = 2;
        float[] pos = [0f, -0f, 0.5f, -1023.5f, RopeCache.FirstKept, RopeCache.EndKept - 0.5f, RopeCache.EndKept, RopeCache.FirstKept - 0.5f, 3.25f, 5000f, 17f, 17f];
        var x = Random(rng, pos.Length * heads * headDim);
        var cache = new RopeCache(headDim, 0, o);
        var expected = Rotate(SimdWidth.Scalar, new RopeCache(headDim, pos, o), x, pos.Length, heads, Enumerable.Range(0, pos.Length).ToArray());
        foreach (var w in Simd.Supported)
        {
            Assert.Equal(expected, Rotate(w, cache, x, pos.Length, heads, pos));
            Assert.Equal(expected, Rotate(w, cache, x, pos.Length, heads, pos));
        }
    }

    [Fact]
    public void ParallelRowsAreBitIdenticalToScalar()
    {
        var rng = new Random(33);
        var cache = new RopeCache(128, 512);
        const int rows = 70, heads = 8;                      // 71,680 values
        var x = Random(rng, rows * heads * 128);
        var pos = Enumerable.Range(0, rows).Select(i => i * 7).ToArray();
        var scalar = Rotate(SimdWidth.Scalar, cache, x, rows, heads, pos);
        foreach (var w in VectorWidths) Assert.Equal(scalar, Rotate(w, cache, x, rows, heads, pos));
        Assert.NotEqual(x, scalar);
    }

    [Fact]
    public void BadArgumentsThrow()
    {
        var cache = new RopeCache(8, 16);
        var x = new float[16];
        var e = Assert.Throws<ArgumentException>(() => Rope.Apply(cache, x, 2, 1, new[] { 3, 16 }));
        Assert.Contains("position 16 (row 1)", e.Message);
        Assert.Contains("[0, 16)", e.Message);
        Assert.Throws<ArgumentException>(() => Rope.Apply(cache, x, 2, 2, new[] { 0, 1 }));
        Assert.Throws<ArgumentException>(() => Rope.Apply(cache, x, 2, 1, new[] { 0 }));
        Assert.Throws<ArgumentException>(() => new RopeCache(8, 16, new RopeOptions { RotaryDims = 3 }));
        Assert.Throws<ArgumentException>(() => Rope.Apply(cache, x, 1, 1, new[] { float.NaN }));
    }
}
