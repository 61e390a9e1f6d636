using Encore.Tensors;

namespace Encore.Tensors.Tests.Kernels;

/// <summary>Shapes, random data and tolerant comparison shared by the element-wise and normalization kernel tests.</summary>
internal static class OpsTesting
{
    /// <summary>Row lengths around every vector width's boundaries, 0..256.</summary>
    public static readonly int[] Lengths = { 0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256 };

    /// <summary>The vector widths to compare with the scalar reference (every supported one but Scalar).</summary>
    public static IEnumerable<SimdWidth> VectorWidths => Simd.Supported.Where(w => w != SimdWidth.Scalar);

    public static float[] Random(Random rng, int n, float scale = 1f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Asserts |actual − expected| ≤ abs + rel·|expected| element-wise (infinities must match exactly).</summary>
    public static void Near(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double abs, double rel, string what)
    {
        Assert.True(expected.Length <= actual.Length, $"{what}: length {actual.Length} < {expected.Length}");
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (float.IsInfinity(e) || float.IsNaN(e))
            {
                if (!e.Equals(a)) Assert.Fail($"{what}: [{i}] expected {e}, got {a}");
                continue;
            }
            double tol = abs + rel * Math.Abs(e);
            if (!(Math.Abs((double)a - e) <= tol))
                Assert.Fail($"{what}: [{i}] expected {e:R}, got {a:R} (diff {Math.Abs((double)a - e):E2} > {tol:E2})");
        }
    }
}
