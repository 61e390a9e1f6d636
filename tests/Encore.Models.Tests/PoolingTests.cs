namespace Encore.Models.Tests;

/// <summary>
/// Pooling and normalization against a scalar re-computation in double precision of what
/// sentence-transformers' Pooling.py and Normalize.py compute, on a padded batch whose padding holds
/// large values (so pooling any of it would show).
/// </summary>
public class PoolingTests
{
    static (float[] Hidden, int[] Lengths) Batch(int b, int s, int d, int seed)
    {
        var r = new Random(seed);
        var lengths = Enumerable.Range(0, b).Select(i => i == 0 ? s : 1 + r.Next(s)).ToArray();
        var h = new float[b * s * d];
        for (int i = 0; i < b; i++)
            for (int p = 0; p < s; p++)
                for (int k = 0; k < d; k++)
                    h[(i * s + p) * d + k] = p < lengths[i] ? (float)(r.NextDouble() * 4 - 2) : 1000f + k;
        return (h, lengths);
    }

    static double[] Reference(float[] h, int s, int d, int row, int length, PoolingMode mode)
    {
        var o = new double[d];
        for (int k = 0; k < d; k++)
        {
            double acc = mode == PoolingMode.Max ? double.NegativeInfinity : 0;
            int first = mode == PoolingMode.Last ? length - 1 : 0, count = mode == PoolingMode.Cls ? 1 : length;
            for (int p = first; p < count; p++)
            {
                double x = h[(row * s + p) * d + k];
                acc = mode == PoolingMode.Max ? Math.Max(acc, x) : acc + x;
            }
            o[k] = mode == PoolingMode.Mean ? acc / length : acc;
        }
        return o;
    }

    [Theory]
    [InlineData(PoolingMode.Mean, 3, 7, 5)]
    [InlineData(PoolingMode.Mean, 4, 9, 384)]
    [InlineData(PoolingMode.Cls, 3, 7, 5)]
    [InlineData(PoolingMode.Max, 3, 7, 5)]
    [InlineData(PoolingMode.Max, 5, 2, 33)]
    [InlineData(PoolingMode.Last, 3, 7, 5)]
    [InlineData(PoolingMode.Last, 5, 2, 33)]
    public void PoolingUsesTheValidPositionsOnly(PoolingMode mode, int b, int s, int d)
    {
        var (h, lengths) = Batch(b, s, d, seed: b * 100 + d);
        var pooled = new float[b * d];
        Pooling.Pool(h, b, s, d, lengths, mode, pooled);
        for (int i = 0; i < b; i++)
        {
            var expected = Reference(h, s, d, i, lengths[i], mode);
            for (int k = 0; k < d; k++) Assert.Equal(expected[k], pooled[i * d + k], 1e-5);
        }

        Pooling.Normalize(pooled, d);
        for (int i = 0; i < b; i++)
        {
            var expected = Reference(h, s, d, i, lengths[i], mode);
            double norm = Math.Sqrt(expected.Sum(x => x * x));
            for (int k = 0; k < d; k++) Assert.Equal(expected[k] / norm, pooled[i * d + k], 1e-6);
        }
    }

    [Fact]
    public void AZeroVectorStaysZeroWhenNormalized()
    {
        var v = new float[8];
        Pooling.Normalize(v, 4);
        Assert.All(v, x => Assert.Equal(0f, x));
    }

    [Fact]
    public void BadShapesAndLengthsAreRefused()
    {
        var pooled = new float[4];
        Assert.Throws<ArgumentOutOfRangeException>(() => Pooling.Pool(new float[2 * 3 * 2], 2, 3, 2, [3, 0], PoolingMode.Mean, pooled));
        Assert.Throws<ArgumentOutOfRangeException>(() => Pooling.Pool(new float[2 * 3 * 2], 2, 3, 2, [4, 1], PoolingMode.Mean, pooled));
        Assert.Throws<ArgumentException>(() => Pooling.Pool(new float[11], 2, 3, 2, [3, 1], PoolingMode.Mean, pooled));
        Assert.Throws<ArgumentException>(() => Pooling.Pool(new float[12], 2, 3, 2, [3], PoolingMode.Mean, pooled));
        Assert.Equal(PoolingMode.Cls, Pooling.Parse("CLS", "--pooling"));
        Assert.Contains("--pooling 'first' is not one of mean, cls, max", Assert.Throws<ArgumentException>(() => Pooling.Parse("first", "--pooling")).Message);
    }
}
