using Encore.Tensors;
using Encore.Tensors.Kernels;
using static Encore.Tensors.Tests.Kernels.OpsTesting;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class ElementwiseTests
{
    [Fact]
    public void HandComputedValues()
    {
        var x = new float[] { 1, 2, 3 };
        var y = new float[] { 10, 20, 30 };
        var d = new float[3];
        Elementwise.Add(x, y, d);
        Assert.Equal(new float[] { 11, 22, 33 }, d);
        Elementwise.Multiply(x, y, d);
        Assert.Equal(new float[] { 10, 40, 90 }, d);
        Elementwise.Scale(x, -2, d);
        Assert.Equal(new float[] { -2, -4, -6 }, d);
        Elementwise.AddScaled(x, 0.5f, y);
        Assert.Equal(new float[] { 10.5f, 21, 31.5f }, y);
        var m = new float[6];
        Elementwise.AddRowBroadcast(new float[] { 1, 2, 3, 4, 5, 6 }, new float[] { 100, 200, 300 }, m, 2, 3);
        Assert.Equal(new float[] { 101, 202, 303, 104, 205, 306 }, m);
    }

    [Fact]
    public void EveryPathIsBitIdenticalToTheReference()
    {
        var rng = new Random(61);
        foreach (int n in Lengths.Append(1000).Append(70_001))     // the last is parallel
        {
            var x = Random(rng, n, 100);
            var y = Random(rng, n, 100);
            const float alpha = 0.3f;
            var eAdd = new float[n];
            var eMul = new float[n];
            var eScale = new float[n];
            var eAxpy = (float[])y.Clone();
            Elementwise.AddReference(x, y, eAdd);
            Elementwise.MultiplyReference(x, y, eMul);
            Elementwise.ScaleReference(x, alpha, eScale);
            Elementwise.AddScaledReference(x, alpha, eAxpy);
            foreach (var w in Simd.Supported)
            {
                foreach (bool primitives in new[] { false, true })
                {
                    string what = $"{w} primitives={primitives} n={n}";
                    var d = new float[n];
                    Elementwise.AddCore(x, y, d, w, primitives);
                    Assert.True(eAdd.AsSpan().SequenceEqual(d), what + " add");
                    d = (float[])x.Clone();
                    Elementwise.MultiplyCore(d, y, d, w, primitives);            // in place
                    Assert.True(eMul.AsSpan().SequenceEqual(d), what + " multiply");
                    Elementwise.ScaleCore(x, alpha, d, w, primitives);
                    Assert.True(eScale.AsSpan().SequenceEqual(d), what + " scale");
                    d = (float[])y.Clone();
                    Elementwise.AddScaledCore(x, alpha, d, w, primitives);
                    Assert.True(eAxpy.AsSpan().SequenceEqual(d), what + " axpy");
                }
            }
        }
    }

    [Fact]
    public void RowBroadcastMatchesTheReference()
    {
        var rng = new Random(62);
        foreach (var (rows, cols) in new[] { (1, 1), (3, 7), (5, 16), (2, 33), (4, 129), (300, 255) })
        {
            var x = Random(rng, rows * cols);
            var b = Random(rng, cols);
            var expected = new float[x.Length];
            Elementwise.AddRowBroadcastReference(x, b, expected, rows, cols);
            foreach (var w in Simd.Supported)
            {
                foreach (bool primitives in new[] { false, true })
                {
                    var d = (float[])x.Clone();
                    Elementwise.AddRowBroadcastCore(d, b, d, rows, cols, w, primitives);
                    Assert.True(expected.AsSpan().SequenceEqual(d), $"{w} primitives={primitives} {rows}×{cols}");
                }
            }
        }
    }

    [Fact]
    public void SumRowsIsTheBiasGradientBitForBit()
    {
        var lit = new float[] { 0.5f, -1, 0 };
        Elementwise.SumRows(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3, lit);
        Assert.Equal(new float[] { 5.5f, 6, 9 }, lit);
        var rng = new Random(63);
        foreach (var (rows, cols) in new[] { (1, 1), (3, 7), (5, 16), (2, 33), (4, 129), (300, 255) })
        {
            var x = Random(rng, rows * cols, 10);
            var expected = Random(rng, cols);
            var initial = (float[])expected.Clone();
            Elementwise.SumRowsReference(x, rows, cols, expected);
            foreach (var w in Simd.Supported)
            {
                var d = (float[])initial.Clone();
                using (Simd.Override(w)) Elementwise.SumRows(x, rows, cols, d);
                Assert.True(expected.AsSpan().SequenceEqual(d), $"{w} {rows}×{cols}");
            }
        }
    }

    [Fact]
    public void MismatchedLengthsThrow()
    {
        Assert.Throws<ArgumentException>(() => Elementwise.Add(new float[3], new float[4], new float[4]));
        Assert.Throws<ArgumentException>(() => Elementwise.Multiply(new float[3], new float[3], new float[2]));
        var e = Assert.Throws<ArgumentException>(() => Elementwise.AddRowBroadcast(new float[6], new float[2], new float[6], 2, 3));
        Assert.Contains("bias has 2 values for 3 columns", e.Message);
    }
}
