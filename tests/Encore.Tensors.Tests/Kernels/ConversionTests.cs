using Encore.Tensors.Kernels;
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

    [Fact]
    public void Q4RoundTripErrorIsWithinOneStep()
    {
        var rng = new Random(12);
        var x = new float[32 * 64];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * (1 + i / 32);
        var blocks = new BlockQ4_0[64];
        Q4.Quantize(x, blocks);
        var back = new float[x.Length];
        Q4.Dequantize(blocks, back);
        for (int b = 0; b < 64; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[b * 32 + j]));
            float d = amax / 8;
            for (int j = 0; j < 32; j++)
            {
                // Half a step on the side of the largest value; up to a whole step on the other side,
                // where +8·d does not exist and values clamp to 7·d; plus the f16 rounding of d on |q| ≤ 8.
                float bound = d + 8 * d * MathF.Pow(2, -11) + 1e-7f;
                Assert.True(Math.Abs(back[b * 32 + j] - x[b * 32 + j]) <= bound, $"block {b}, value {j}");
                Assert.Equal(back[b * 32 + j], Q4.Value(blocks[b], j));
            }
        }
    }

    [Fact]
    public unsafe void Q4MatchesGgmlLiterally()
    {
        // ggml's quantize_row_q4_0_ref on 0, 1, ..., 31: the largest magnitude is +31, so d = 31/−8 and
        // id = −8/31; value i goes to min(15, trunc(−8i/31 + 8.5)): 0 → 8, 1 → 8 (8.24), 2 → 7 (7.98),
        // 31 → 0 (0.5); value j sits in the low nibble of byte j, value j + 16 in the high one.
        var x = Enumerable.Range(0, 32).Select(i => (float)i).ToArray();
        var b = new BlockQ4_0[1];
        Q4.Quantize(x, b);
        Assert.Equal(BitConverter.HalfToUInt16Bits((Half)(-31f / 8f)), b[0].D);
        int Nibble(int i) => i < 16 ? b[0].Qs[i] & 15 : b[0].Qs[i - 16] >> 4;
        for (int i = 0; i < 32; i++) Assert.Equal(Math.Min(15, (int)MathF.Truncate(i * (1f / (31f / -8f)) + 8.5f)), Nibble(i));
        Assert.Equal(8, Nibble(0));
        Assert.Equal(8, Nibble(1));
        Assert.Equal(7, Nibble(2));
        Assert.Equal(0, Nibble(31));
        Assert.Equal(0x48, b[0].Qs[0]); // value 0 → 8 (low nibble), value 16 → trunc(−128/31 + 8.5) = 4 (high)
        // A negative extreme gives a positive d: −16 at value 5 → d = 2, −16 → 0, +15.9 → min(15, 16) = 15.
        var y = new float[32];
        y[5] = -16f; y[6] = 15.9f;
        Q4.Quantize(y, b);
        Assert.Equal(BitConverter.HalfToUInt16Bits((Half)2f), b[0].D);
        Assert.Equal(0, Nibble(5));
        Assert.Equal(15, Nibble(6));
        Assert.Equal(8, Nibble(0));
        // An all-zero block has scale 0/−8 = −0 (as in ggml) and every nibble 8 (value 0).
        Q4.Quantize(new float[32], b);
        Assert.Equal(0x8000, b[0].D);
        Assert.Equal(0x88, b[0].Qs[5]);
    }

    [Fact]
    public unsafe void Q4UnpackMatchesItsScalarTwinOnEveryByte()
    {
        var blk = new BlockQ4_0();
        var got = stackalloc sbyte[32];
        var want = stackalloc sbyte[32];
        for (int start = 0; start < 256; start += 16)
        {
            for (int j = 0; j < 16; j++) blk.Qs[j] = (byte)(start + j);
            Q4.Unpack(&blk, got);
            Q4.UnpackReference(&blk, want);
            for (int j = 0; j < 32; j++) Assert.Equal(want[j], got[j]);
            Assert.Equal((start & 15) - 8, want[0]);
            Assert.Equal((start >> 4) - 8, want[16]);
        }
    }

    [Fact]
    public unsafe void Q4WideningIsExactAtEveryWidth()
    {
        var rng = new Random(13);
        int k = 32 * 9;
        var x = new float[k];
        for (int i = 0; i < k; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var blocks = new BlockQ4_0[9];
        Q4.Quantize(x, blocks);
        var want = new float[k];
        Q4.Dequantize(blocks, want);
        fixed (BlockQ4_0* p = blocks)
        {
            var w = new WeightMatrix(DType.Q4_0, p, 1, k);
            foreach (var width in Simd.Supported)
            {
                var got = new float[k - 64];
                fixed (float* g = got) Widen.Row(w, 0, 32, k - 64, g, width);
                Assert.Equal(want.AsSpan(32, k - 64).ToArray(), got);
            }
        }
    }
}
