using Encore.Tensors.Numerics;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class ConversionTests
{
    static readonly int[] Lengths = [0, 1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256];

    static float[] Values(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)((rng.NextDouble() - 0.5) * Math.Pow(10, rng.Next(-6, 6)));
        // Specials where they fit.
        float[] specials = [0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, float.Epsilon, 3.3895314e38f, 1.00390625f, 1.01171875f];
        for (int i = 0; i < Math.Min(n, specials.Length); i++) x[i * 7 % n] = specials[i];
        return x;
    }

    [Fact]
    public void BFloat16ScalarRoundsToNearestEven()
    {
        Assert.Equal(0x3F80, BFloat16.FromSingle(1.0f));
        // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties go to even (1.0).
        Assert.Equal(0x3F80, BFloat16.FromSingle(1.00390625f));
        // 1 + 3·2^-8 is halfway between 1.0078125 (odd mantissa) and 1.015625: goes up.
        Assert.Equal(0x3F82, BFloat16.FromSingle(1.01171875f));
        Assert.Equal(0xC040, BFloat16.FromSingle(-3.0f));
        Assert.True(float.IsNaN(BFloat16.ToSingle(BFloat16.FromSingle(float.NaN))));
        Assert.Equal(float.PositiveInfinity, BFloat16.ToSingle(BFloat16.FromSingle(float.PositiveInfinity)));
        // The largest finite float rounds up to infinity in bf16, as in PyTorch.
        Assert.Equal(float.PositiveInfinity, BFloat16.ToSingle(BFloat16.FromSingle(float.MaxValue)));
    }

    [Fact]
    public void BFloat16VectorPathsMatchScalar()
    {
        foreach (var width in Simd.Supported)
        {
            using var _ = Simd.Override(width);
            foreach (int n in Lengths)
            {
                var x = Values(n, n);
                var bf = new ushort[n];
                BFloat16.FromSingle(x, bf);
                for (int i = 0; i < n; i++) Assert.Equal(BFloat16.FromSingle(x[i]), bf[i]);
                var back = new float[n];
                BFloat16.ToSingle(bf, back);
                for (int i = 0; i < n; i++) Assert.Equal(BitConverter.SingleToInt32Bits(BFloat16.ToSingle(bf[i])), BitConverter.SingleToInt32Bits(back[i]));
            }
        }
    }

    [Fact]
    public void Q8RoundTripErrorIsWithinHalfAStep()
    {
        var rng = new Random(11);
        var x = new float[32 * 64];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * (1 + i / 32);
        var blocks = new BlockQ8_0[64];
        Q8.Quantize(x, blocks);
        var back = new float[x.Length];
        Q8.Dequantize(blocks, back);
        for (int b = 0; b < 64; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[b * 32 + j]));
            float d = amax / 127;
            for (int j = 0; j < 32; j++)
            {
                // Half a quantization step, plus the f16 rounding of the scale applied to |q| ≤ 127.
                float bound = d / 2 + 127 * d * MathF.Pow(2, -11) + 1e-7f;
                Assert.True(Math.Abs(back[b * 32 + j] - x[b * 32 + j]) <= bound, $"block {b}, value {j}");
            }
        }
    }

    [Fact]
    public unsafe void Q8MatchesGgmlLiterally()
    {
        // Block of 0, 1, ..., 31 (amax 31): d = 31/127, quants round(i·127/31) half away from zero.
        var x = Enumerable.Range(0, 32).Select(i => (float)i).ToArray();
        var b = new BlockQ8_0[1];
        Q8.Quantize(x, b);
        Assert.Equal(BitConverter.HalfToUInt16Bits((Half)(31f / 127f)), b[0].D);
        Assert.Equal(127, b[0].Qs[31]);
        Assert.Equal(4, b[0].Qs[1]);   // 4.0968 -> 4
        Assert.Equal(8, b[0].Qs[2]);   // 8.1935 -> 8
        // An all-zero block has scale 0 and zero quants.
        Q8.Quantize(new float[32], b);
        Assert.Equal(0, b[0].D);
        Assert.Equal(0, b[0].Qs[5]);
    }
}
