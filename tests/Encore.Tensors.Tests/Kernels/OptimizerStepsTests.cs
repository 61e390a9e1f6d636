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
}
