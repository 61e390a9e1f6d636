using Encore.Tensors.Kernels;
using static Encore.Tensors.Tests.Kernels.OpsTesting;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class OptimizerStepsTests
{
    static readonly AdamWConstants Step3 = new(Decay: 1 - 1e-3f * 0.01f, Beta1: 0.9f, Beta2: 0.999f, OneMinusBeta1: 0.1f,
        OneMinusBeta2: 1 - 0.999f, StepSize: (float)(1e-3 / (1 - Math.Pow(0.9, 3))), Bc2Sqrt: (float)Math.Sqrt(1 - Math.Pow(0.999, 3)), Eps: 1e-8f);

    // torch.optim.AdamW's single-tensor update, written out per element in binary32 (the specification).
    static void AdamWReference(float[] w, float[] g, float[] m, float[] v, AdamWConstants k)
    {
        for (int i = 0; i < w.Length; i++)
        {
            float wi = w[i] * k.Decay;
            float mi = m[i] * k.Beta1 + g[i] * k.OneMinusBeta1;
            float vi = v[i] * k.Beta2 + g[i] * g[i] * k.OneMinusBeta2;
            float denom = MathF.Sqrt(vi) / k.Bc2Sqrt + k.Eps;
            m[i] = mi;
            v[i] = vi;
            w[i] = wi - k.StepSize * (mi / denom);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(17)]
    [InlineData(64 * 3 + 7)]
    [InlineData(300_001)]   // split across the kernel pool, with a tail
    public void AdamWEqualsTheScalarSpecificationBitForBitAtEveryWidth(int n)
    {
        var rng = new Random(n + 5);
        var w0 = Random(rng, n);
        var g = Random(rng, n, 0.1f);
        var m0 = Random(rng, n, 0.01f);
        var v0 = Random(rng, n, 0.001f).Select(MathF.Abs).ToArray();
        if (n > 3) { g[1] = 0; v0[1] = 0; m0[1] = 0; g[2] = 1e-30f; }   // ε carries the denominator
        var (we, me, ve) = ((float[])w0.Clone(), (float[])m0.Clone(), (float[])v0.Clone());
        AdamWReference(we, g, me, ve, Step3);
        foreach (var width in Simd.Supported.Append(SimdWidth.Scalar).Distinct())
        {
            var (w, m, v) = ((float[])w0.Clone(), (float[])m0.Clone(), (float[])v0.Clone());
            OptimizerSteps.AdamW(w, g, m, v, Step3, width);
            Assert.Equal(me, m);
            Assert.Equal(ve, v);
            Assert.Equal(we, w);
        }
    }

    [Fact]
    public void AdamWRefusesSpansOfDifferentLengths()
    {
        var ex = Assert.Throws<ArgumentException>(() => OptimizerSteps.AdamW(new float[4], new float[4], new float[3], new float[4], Step3));
        Assert.Contains("AdamW", ex.Message);
    }

    static float Widen(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    [Fact]
    public void StochasticRoundingAveragesExactlyToTheValueOverEveryRandomDraw()
    {
        // Over all 65,536 values of the random bits, x rounds up exactly as often as the fraction of an
        // ulp it lies above the bfloat16 below it: the mean of the outcomes is x itself.
        float[] xs = { 1f, 1.00390625f, 1.001f, -3.14159f, 0.1f, 1e-3f, -2.5e-7f, 6.0e-39f, 123456.7f, 3.0e38f };
        foreach (float x in xs)
        {
            double sum = 0;
            var seen = new HashSet<ushort>();
            for (uint r = 0; r < 65536; r++)
            {
                ushort b = OptimizerSteps.RoundStochastic(x, r);
                seen.Add(b);
                sum += Widen(b);
            }
            Assert.Equal((double)x, sum / 65536, 0);
            Assert.True(seen.Count <= 2, $"{x}: {seen.Count} outcomes");
            if ((BitConverter.SingleToUInt32Bits(x) & 0xFFFF) == 0) Assert.Single(seen);   // already a bfloat16
        }
        Assert.True(float.IsNaN(Widen(OptimizerSteps.RoundStochastic(float.NaN, 0xFFFF))));
        Assert.True(float.IsNaN(Widen(OptimizerSteps.RoundStochastic(BitConverter.UInt32BitsToSingle(0x7F800001), 0xFFFF))));
        Assert.Equal(float.PositiveInfinity, Widen(OptimizerSteps.RoundStochastic(float.PositiveInfinity, 0xFFFF)));
        Assert.Equal(float.NegativeInfinity, Widen(OptimizerSteps.RoundStochastic(float.NegativeInfinity, 0xFFFF)));
    }

    [Theory]
    [InlineData(37)]
    [InlineData(300_001)]   // split across the kernel pool
    public void AdamWWithBFloat16MomentsFollowsItsSpecificationElementByElement(int n)
    {
        var rng = new Random(n);
        var w0 = Random(rng, n);
        var g = Random(rng, n, 0.1f);
        var m0 = Random(rng, n, 0.01f).Select(x => OptimizerSteps.RoundStochastic(x, 0)).ToArray();
        var v0 = Random(rng, n, 0.001f).Select(x => OptimizerSteps.RoundStochastic(MathF.Abs(x), 0)).ToArray();
        if (n > 20) { g[3] = float.PositiveInfinity; g[5] = float.NaN; g[7] = 0; v0[7] = 0; m0[7] = 0; }   // non-finite moments stay non-finite in every lane
        const ulong seed = 0xABCDEF12345ul;
        var k = Step3;
        foreach (var width in Simd.Supported.Append(SimdWidth.Scalar).Distinct())
        {
            var (w, m, v) = ((float[])w0.Clone(), (ushort[])m0.Clone(), (ushort[])v0.Clone());
            OptimizerSteps.AdamWBf16(w, g, m, v, k, seed, width);
            for (int i = 0; i < n; i++)
            {
                float mi = Widen(m0[i]) * k.Beta1 + g[i] * k.OneMinusBeta1;
                float vi = Widen(v0[i]) * k.Beta2 + g[i] * g[i] * k.OneMinusBeta2;
                float wi = w0[i] * k.Decay - k.StepSize * (mi / (MathF.Sqrt(vi) / k.Bc2Sqrt + k.Eps));
                uint r = OptimizerSteps.RoundingBits(seed, i);
                Assert.True((wi == w[i] || (float.IsNaN(wi) && float.IsNaN(w[i]))) && OptimizerSteps.RoundStochastic(mi, r) == m[i] && OptimizerSteps.RoundStochastic(vi, r >> 16) == v[i],
                    $"{width} element {i}: w {w[i]} (expected {wi}), m {m[i]:X4} (expected {OptimizerSteps.RoundStochastic(mi, r):X4}), v {v[i]:X4} (expected {OptimizerSteps.RoundStochastic(vi, r >> 16):X4})");
            }
        }
    }

    [Fact]
    public void RoundingBitsDifferBetweenElementsAndSeeds()
    {
        // Neighbouring elements and consecutive steps draw unrelated bits: over 65,536 elements each of the
        // 16 low bits is set about half the time, and a seed one step later changes most draws.
        int[] ones = new int[16];
        int same = 0;
        for (int i = 0; i < 65536; i++)
        {
            uint r = OptimizerSteps.RoundingBits(7, i);
            for (int b = 0; b < 16; b++) ones[b] += (int)((r >> b) & 1);
            if ((OptimizerSteps.RoundingBits(8, i) & 0xFFFF) == (r & 0xFFFF)) same++;
        }
        Assert.All(ones, c => Assert.InRange(c, 32768 - 1024, 32768 + 1024));
        Assert.True(same < 16, $"{same} equal draws");
    }

    [Fact]
    public void BFloat16SecondMomentKeepsFollowingTheSquaredGradient()
    {
        // A constant gradient of 1: v_t = 1 − β₂ᵗ. Each step adds a thousandth of what is missing, less
        // than half a bfloat16 ulp once v is past ~0.5, so rounding to nearest stops v there for good;
        // stochastic rounding keeps its expected value on the binary32 track.
        const int n = 4096, steps = 3000;
        var w = new float[n];
        var g = Enumerable.Repeat(1f, n).ToArray();
        var m = new ushort[n];
        var v = new ushort[n];
        for (int t = 1; t <= steps; t++)
        {
            var k = new AdamWConstants(1, 0.9f, 0.999f, 0.1f, 1 - 0.999f, (float)(1e-3 / (1 - Math.Pow(0.9, t))), (float)Math.Sqrt(1 - Math.Pow(0.999, t)), 1e-8f);
            OptimizerSteps.AdamWBf16(w, g, m, v, k, (ulong)t);
        }
        double expected = 1 - Math.Pow(0.999, steps);   // 0.9503
        double mean = v.Average(b => (double)Widen(b));
        Assert.InRange(mean, expected - 0.01, expected + 0.01);
        Assert.InRange(m.Average(b => (double)Widen(b)), 0.99, 1.01);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(4097)]
    [InlineData(300_003)]   // many blocks, split across the kernel pool, a tail of 3
    public void SquaredNormMatchesACompensatedSum(int n)
    {
        var rng = new Random(n + 1);
        var x = Random(rng, n);
        if (n > 2) x[n - 1] = 40f;   // the last value counts
        double sum = 0, c = 0;
        foreach (float v in x)
        {
            double y = (double)v * v - c, t = sum + y;
            c = (t - sum) - y;
            sum = t;
        }
        double got = OptimizerSteps.SquaredNorm(x);
        Assert.True(Math.Abs(got - sum) <= 1e-12 * Math.Max(1, sum), $"{got} vs {sum}");
        Assert.Equal(got, OptimizerSteps.SquaredNorm(x));
    }
}
