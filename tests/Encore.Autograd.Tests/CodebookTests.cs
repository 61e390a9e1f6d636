using Encore.Tensors;

namespace Encore.Autograd.Tests;

/// <summary>
/// Ops.Codebook (the codebook snap of arXiv 2310.17230) and Ops.KeyValueFetch (the value read of arXiv 2207.11240):
/// the GEMM snap against its scalar specification, hand values with their hand-derived gradients, and finite differences.
/// </summary>
public class CodebookTests
{
    static float[] RandomValues(Random rng, int n)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        return v;
    }

    [Theory]
    [InlineData(1, 1, 1, 1)]
    [InlineData(3, 5, 7, 2)]
    [InlineData(65, 16, 64, 4)]
    [InlineData(130, 33, 40, 40)]
    [InlineData(7, 64, 512, 4)]
    public void SnapMatchesTheScalarReference(int n, int d, int f, int k)
    {
        var rng = new Random(n * 1000 + d * 10 + f);
        var x = RandomValues(rng, n * d);
        var codebook = RandomValues(rng, f * d);
        // One row of zeros: every cosine is 0, so the lowest k indices win in both paths.
        Array.Clear(x, 0, d);
        var codes = new int[n * k];
        var expectedCodes = new int[n * k];
        var output = new float[n * d];
        var expected = new float[n * d];
        CodebookKernel.Snap(x, codebook, n, d, f, k, codes, output);
        CodebookKernel.SnapReference(x, codebook, n, d, f, k, expectedCodes, expected);
        Assert.Equal(expectedCodes, codes);
        Assert.Equal(expected, output);
        Assert.Equal(Enumerable.Range(0, k).ToArray(), codes[..k]);
        for (int r = 0; r < n; r++) Assert.Equal(k, codes.Skip(r * k).Take(k).Distinct().Count());
    }

    [Fact]
    public void SnapRejectsBadShapes()
    {
        var x = new float[6];
        var c = new float[8];
        Assert.Throws<ArgumentOutOfRangeException>(() => CodebookKernel.Snap(x, c, 3, 2, 4, 5, new int[15], new float[6]));
        Assert.Throws<ArgumentException>(() => CodebookKernel.Snap(x, c, 3, 2, 4, 2, new int[5], new float[6]));
        Assert.Throws<ArgumentException>(() => CodebookKernel.Snap(x, c, 3, 2, 5, 2, new int[6], new float[6]));
        using var xv = new Parameter("x", Tensor.FromArray(x, 3, 2));
        using var cv = new Parameter("c", Tensor.FromArray(c, 2, 4));
        var e = Assert.Throws<ArgumentException>(() => Ops.Codebook(Var.Of(xv), Var.Of(cv), 1));
        Assert.Contains("width 4", e.Message);
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(0.5f)]
    public void SnapOfHandValuesAndItsStraightThroughGradient(float beta)
    {
        // Codes c0 = (1, 0), c1 = (0, 1), c2 = (−1, 0), c3 = (0.7, 0.7); k = 2.
        // x0 = (2, 0.1): cosines 0.999, 0.050, −0.999, 0.742 → codes 0, 3 → out (1.7, 0.7).
        // x1 = (0, −3): cosines 0, −1, 0, −0.707 → codes 0 and 2 tie at 0, the lower first → out (0, 0).
        using var x = new Parameter("x", Tensor.FromArray(new float[] { 2, 0.1f, 0, -3 }, 2, 2));
        using var c = new Parameter("c", Tensor.FromArray(new float[] { 1, 0, 0, 1, -1, 0, 0.7f, 0.7f }, 4, 2));
        using var weights = new Parameter("w", Tensor.FromArray(new float[] { 1, 2, 3, 4 }, 2, 2)) { Trainable = false };
        var codes = new int[4];
        using (var tape = Tape.Record())
        {
            var y = Ops.Codebook(Var.Of(x), Var.Of(c), 2, beta, codes);
            var values = y.Value.ToFloatArray();
            Assert.Equal(1.7f, values[0], 1e-6f);
            Assert.Equal(0.7f, values[1], 1e-6f);
            Assert.Equal(new float[] { 0, 0 }, values[2..]);
            tape.Backward(Ops.Mul(y, Var.Of(weights)));
        }
        Assert.Equal(new[] { 0, 3, 0, 2 }, codes);
        // dC[j] = Σ dy of the rows that chose j: c0 ← rows 0 and 1, c3 ← row 0, c2 ← row 1, c1 ← none.
        Assert.Equal(new float[] { 4, 6, 0, 0, 3, 4, 1, 2 }, c.Grad!.ToFloatArray());
        // dx = dy (straight-through) + (2β/N)(x − out), N = 2.
        var dx = x.Grad!.ToFloatArray();
        float s = beta;
        float[] expected = [1 + s * 0.3f, 2 + s * -0.6f, 3 + s * 0, 4 + s * -3];
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], dx[i], 1e-6f);
    }

    [Fact]
    public void CodebookGradientMatchesFiniteDifferences()
    {
        // The snap is piecewise constant in x (its input gradient is the straight-through estimate, checked above), and
        // linear in the chosen codes: finite differences see exactly ∂out/∂codebook while no choice flips.
        var rng = new Random(5);
        using var x = GradCheck.Random("x", rng, 2, 3, 4);
        x.Trainable = false;
        using var c = GradCheck.Random("c", rng, 9, 4);
        using var w = GradCheck.Random("w", rng, 2, 3, 4);
        w.Trainable = false;
        GradCheck.Check([c, x, w], v => Ops.Mul(Ops.Codebook(v[1], v[0], 3), v[2]), h: 1e-3, tol: 5e-3);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void KeyValueFetchReadsTheChosenValuesAndOnlyTheyGetGradients(bool average)
    {
        // C = 2 codebooks of K = 3 values of width 2: values[c, i] = (10c + i, −(10c + i)).
        var data = new float[2 * 3 * 2];
        for (int cb = 0; cb < 2; cb++)
            for (int i = 0; i < 3; i++)
            {
                data[(cb * 3 + i) * 2] = 10 * cb + i;
                data[(cb * 3 + i) * 2 + 1] = -(10 * cb + i);
            }
        using var values = new Parameter("v", Tensor.FromArray(data, 2, 3, 2));
        int[] slots = [2, 0, 1, 1];                  // row 0: (c0, 2), (c1, 0); row 1: (c0, 1), (c1, 1)
        using (var tape = Tape.Record())
        {
            var y = Ops.KeyValueFetch(Var.Of(values), slots, average);
            if (average) Assert.Equal(new float[] { 6, -6, 6, -6 }, y.Value.ToFloatArray());
            else Assert.Equal(new float[] { 2, -2, 10, -10, 1, -1, 11, -11 }, y.Value.ToFloatArray());
            tape.Backward(y);
        }
        float g = average ? 0.5f : 1f;
        // Fetched: (c0, 2), (c0, 1), (c1, 0), (c1, 1); (c0, 0) and (c1, 2) get nothing.
        Assert.Equal(new float[] { 0, 0, g, g, g, g, g, g, g, g, 0, 0 }, values.Grad!.ToFloatArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => Ops.KeyValueFetch(Var.Of(values), [0, 3], average));
        Assert.Throws<ArgumentException>(() => Ops.KeyValueFetch(Var.Of(values), [0, 1, 2], average));
    }

    [Fact]
    public void KeyValueFetchMatchesFiniteDifferences()
    {
        var rng = new Random(11);
        using var values = GradCheck.Random("v", rng, 3, 4, 2);
        using var w = GradCheck.Random("w", rng, 5, 2);
        w.Trainable = false;
        using var wc = GradCheck.Random("wc", rng, 5, 6);
        wc.Trainable = false;
        int[] slots = [.. Enumerable.Range(0, 15).Select(i => i * 7 % 4)];
        GradCheck.Check([values, w], v => Ops.Mul(Ops.KeyValueFetch(v[0], slots, average: true), v[1]));
        GradCheck.Check([values, wc], v => Ops.Mul(Ops.KeyValueFetch(v[0], slots, average: false), v[1]));
    }
}
