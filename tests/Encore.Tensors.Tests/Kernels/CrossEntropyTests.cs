using Encore.Tensors.Kernels;
using static Encore.Tensors.Tests.Kernels.OpsTesting;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class CrossEntropyTests
{
    [Fact]
    public void OneRowMatchesHandComputedValues()
    {
        // logits [1, 2, 3], target 2: lse = log(e + e² + e³), nll = lse − 3; dx = softmax − onehot.
        double s = Math.E + Math.Exp(2) + Math.Exp(3), lse = Math.Log(s);
        foreach (var w in Simd.Supported)
        {
            var l = new float[1];
            var nll = new float[1];
            var dx = new float[3];
            using (Simd.Override(w))
            {
                CrossEntropy.Forward([1f, 2f, 3f], [2], 1, 3, -100, 0f, l, nll);
                CrossEntropy.Backward([1f, 2f, 3f], [2], l, 1, 3, -100, 0f, 1f, dx, accumulate: false);
            }
            Near([(float)lse], l, 1e-6, 1e-6, $"{w} lse");
            Near([(float)(lse - 3)], nll, 1e-6, 1e-6, $"{w} nll");
            Near([(float)(Math.E / s), (float)(Math.Exp(2) / s), (float)(Math.Exp(3) / s - 1)], dx, 1e-7, 1e-6, $"{w} dx");
        }
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(0.1f)]
    public void EveryWidthMatchesTheReference(float smoothing)
    {
        var rng = new Random(7);
        foreach (int cols in new[] { 1, 3, 16, 17, 63, 64, 65, 1000 })
        {
            int rows = 9;
            var x = Random(rng, rows * cols, 4f);
            var t = Enumerable.Range(0, rows).Select(r => r % 4 == 3 ? -1 : rng.Next(cols)).ToArray();
            var refLse = new float[rows];
            var refNll = new float[rows];
            CrossEntropy.ForwardReference(x, t, rows, cols, -1, smoothing, refLse, refNll);
            // The gradient's reference, in double from the reference log-sum-exp.
            var refDx = new float[rows * cols];
            const float g = 0.37f;
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < cols && t[r] != -1; j++)
                    refDx[r * cols + j] = (float)(g * (Math.Exp(x[r * cols + j] - (double)refLse[r]) - smoothing / cols - (j == t[r] ? 1 - smoothing : 0)));
            foreach (var w in Simd.Supported)
            {
                var lse = new float[rows];
                var nll = new float[rows];
                var dx = Enumerable.Repeat(float.NaN, rows * cols).ToArray();
                var acc = Enumerable.Repeat(2f, rows * cols).ToArray();
                using (Simd.Override(w))
                {
                    CrossEntropy.Forward(x, t, rows, cols, -1, smoothing, lse, nll);
                    CrossEntropy.Backward(x, t, refLse, rows, cols, -1, smoothing, g, dx, accumulate: false);
                    CrossEntropy.Backward(x, t, refLse, rows, cols, -1, smoothing, g, acc, accumulate: true);
                }
                Near(refLse, lse, 2e-6, 2e-6, $"{w} lse, {cols} columns");
                Near(refNll, nll, 1e-5, 1e-5, $"{w} nll, {cols} columns");
                Near(refDx, dx, 1e-7, 1e-5, $"{w} dx, {cols} columns");
                Near(refDx.Select(v => v + 2f).ToArray(), acc, 1e-6, 1e-6, $"{w} accumulated dx, {cols} columns");
            }
        }
    }
}
