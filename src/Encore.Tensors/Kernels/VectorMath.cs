using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

/// <summary>
/// Transcendental functions shared by the activation kernels, each as a scalar function and a
/// vector function evaluating the same formula, so the widths differ only by FMA contraction.
/// </summary>
internal static unsafe class VectorMath
{
    // Eigen's generic_fast_erf_float (also in XLA and TVM): erf(x) ≈ x·P(x²)/Q(x²) on [-4, 4], where
    // erf is ±1 to float precision outside. Its approximation error is 6.5e-8, but evaluated in float the
    // rounding of P and Q brings the error to 3.3e-7; evaluated in double lanes (half the throughput, and
    // GELU is far from the FFN's cost, which is the GEMMs) it stays within 1e-7 after the final rounding,
    // and the scalar and vector forms give identical results.
    const double ErfA13 = -2.72614225801306e-10, ErfA11 = 2.77068142495902e-08, ErfA9 = -2.10102402082508e-06,
        ErfA7 = -5.69250639462346e-05, ErfA5 = -7.34990630326855e-04, ErfA3 = -2.95459980854025e-03,
        ErfA1 = -1.60960333262415e-02;
    const double ErfB8 = -1.45660718464996e-05, ErfB6 = -2.13374055278905e-04, ErfB4 = -1.68282697438203e-03,
        ErfB2 = -7.37332916720468e-03, ErfB0 = -1.42647390514189e-02;

    /// <summary>erf(x) by the rational approximation above (the scalar specification of the vector ones).</summary>
    public static float Erf(float x) => (float)Erf((double)x);

    /// <summary>The rational approximation evaluated in double (its own error, 6.5e-8, dominates).</summary>
    public static double Erf(double x)
    {
        x = Math.Clamp(x, -4.0, 4.0);
        double x2 = x * x;
        double p = Math.FusedMultiplyAdd(x2, ErfA13, ErfA11);
        p = Math.FusedMultiplyAdd(x2, p, ErfA9);
        p = Math.FusedMultiplyAdd(x2, p, ErfA7);
        p = Math.FusedMultiplyAdd(x2, p, ErfA5);
        p = Math.FusedMultiplyAdd(x2, p, ErfA3);
        p = Math.FusedMultiplyAdd(x2, p, ErfA1);
        double q = Math.FusedMultiplyAdd(x2, ErfB8, ErfB6);
        q = Math.FusedMultiplyAdd(x2, q, ErfB4);
        q = Math.FusedMultiplyAdd(x2, q, ErfB2);
        q = Math.FusedMultiplyAdd(x2, q, ErfB0);
        return x * p / q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> Erf(Vector512<double> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(-4.0)), Vector512.Create(4.0));
        var x2 = x * x;
        var p = Vector512.FusedMultiplyAdd(x2, Vector512.Create(ErfA13), Vector512.Create(ErfA11));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(ErfA9));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(ErfA7));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(ErfA5));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(ErfA3));
        p = Vector512.FusedMultiplyAdd(x2, p, Vector512.Create(ErfA1));
        var q = Vector512.FusedMultiplyAdd(x2, Vector512.Create(ErfB8), Vector512.Create(ErfB6));
        q = Vector512.FusedMultiplyAdd(x2, q, Vector512.Create(ErfB4));
        q = Vector512.FusedMultiplyAdd(x2, q, Vector512.Create(ErfB2));
        q = Vector512.FusedMultiplyAdd(x2, q, Vector512.Create(ErfB0));
        return x * p / q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> Erf(Vector256<double> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(-4.0)), Vector256.Create(4.0));
        var x2 = x * x;
        var p = Vector256.FusedMultiplyAdd(x2, Vector256.Create(ErfA13), Vector256.Create(ErfA11));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(ErfA9));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(ErfA7));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(ErfA5));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(ErfA3));
        p = Vector256.FusedMultiplyAdd(x2, p, Vector256.Create(ErfA1));
        var q = Vector256.FusedMultiplyAdd(x2, Vector256.Create(ErfB8), Vector256.Create(ErfB6));
        q = Vector256.FusedMultiplyAdd(x2, q, Vector256.Create(ErfB4));
        q = Vector256.FusedMultiplyAdd(x2, q, Vector256.Create(ErfB2));
        q = Vector256.FusedMultiplyAdd(x2, q, Vector256.Create(ErfB0));
        return x * p / q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<double> Erf(Vector128<double> x)
    {
        x = Vector128.Min(Vector128.Max(x, Vector128.Create(-4.0)), Vector128.Create(4.0));
        var x2 = x * x;
        var p = Vector128.FusedMultiplyAdd(x2, Vector128.Create(ErfA13), Vector128.Create(ErfA11));
        p = Vector128.FusedMultiplyAdd(x2, p, Vector128.Create(ErfA9));
        p = Vector128.FusedMultiplyAdd(x2, p, Vector128.Create(ErfA7));
        p = Vector128.FusedMultiplyAdd(x2, p, Vector128.Create(ErfA5));
        p = Vector128.FusedMultiplyAdd(x2, p, Vector128.Create(ErfA3));
        p = Vector128.FusedMultiplyAdd(x2, p, Vector128.Create(ErfA1));
        var q = Vector128.FusedMultiplyAdd(x2, Vector128.Create(ErfB8), Vector128.Create(ErfB6));
        q = Vector128.FusedMultiplyAdd(x2, q, Vector128.Create(ErfB4));
        q = Vector128.FusedMultiplyAdd(x2, q, Vector128.Create(ErfB2));
        q = Vector128.FusedMultiplyAdd(x2, q, Vector128.Create(ErfB0));
        return x * p / q;
    }

    // exp(x) for x ≤ 0 in binary32, Cephes' expf: n = round(x·log₂e), r = x − n·ln 2 in two FMA steps
    // (ln 2 split as 0.693359375 − 2.12194440e-4, the first part with a short mantissa so n·C1 is exact),
    // e^r ≈ 1 + r + r²·P(r) on |r| ≤ ½·ln 2 (P of degree 5, minimax), times 2ⁿ built in the exponent field.
    // Below −87, where e^x leaves the normal range, the result is 0 (e^−87 ≈ 1.6e-38, nothing beside a
    // term of 1 in a sum). Within 2 ulp of exp in the normal range; every width gives the scalar twin's bits.
    const float ExpLog2E = 1.44269504088896341f, ExpC1 = 0.693359375f, ExpC2 = -2.12194440e-4f, ExpFloor = -87f;
    const float ExpP0 = 1.9875691500e-4f, ExpP1 = 1.3981999507e-3f, ExpP2 = 8.3334519073e-3f, ExpP3 = 4.1665795894e-2f,
        ExpP4 = 1.6666665459e-1f, ExpP5 = 5.0000001201e-1f;

    /// <summary>e^x for x ≤ 0 (the scalar specification of the vector forms); 0 below −87, NaN for NaN.</summary>
    public static float ExpNonPositive(float x)
    {
        if (x < ExpFloor) return 0f;
        float n = MathF.Round(x * ExpLog2E);
        float r = MathF.FusedMultiplyAdd(n, -ExpC1, x);
        r = MathF.FusedMultiplyAdd(n, -ExpC2, r);
        float y = MathF.FusedMultiplyAdd(ExpP0, r, ExpP1);
        y = MathF.FusedMultiplyAdd(y, r, ExpP2);
        y = MathF.FusedMultiplyAdd(y, r, ExpP3);
        y = MathF.FusedMultiplyAdd(y, r, ExpP4);
        y = MathF.FusedMultiplyAdd(y, r, ExpP5);
        y = MathF.FusedMultiplyAdd(y, r * r, r) + 1f;
        return y * BitConverter.Int32BitsToSingle(unchecked(((int)n + 127) << 23));
    }

    /// <summary>
    /// [Σa, Σb, Σc, Σd] into dst[0..4) with the bits of four <see cref="Vector512.Sum{T}(Vector512{T})"/> calls, in one
    /// reduction: Vector512.Sum adds each 128-bit quarter as (x0 + x1) + (x2 + x3), then (Q0 + Q1) + (Q2 + Q3); two
    /// rounds of horizontal adds leave the four vectors' quarters side by side in that order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d, float* dst)
    {
        if (!Avx.IsSupported)
        {
            dst[0] = Vector512.Sum(a); dst[1] = Vector512.Sum(b); dst[2] = Vector512.Sum(c); dst[3] = Vector512.Sum(d);
            return;
        }
        var lo = Avx.HorizontalAdd(Avx.HorizontalAdd(a.GetLower(), b.GetLower()), Avx.HorizontalAdd(c.GetLower(), d.GetLower()));
        var hi = Avx.HorizontalAdd(Avx.HorizontalAdd(a.GetUpper(), b.GetUpper()), Avx.HorizontalAdd(c.GetUpper(), d.GetUpper()));
        ((lo.GetLower() + lo.GetUpper()) + (hi.GetLower() + hi.GetUpper())).Store(dst);
    }

    /// <summary>The 256-bit form of <see cref="Sum4(Vector512{float}, Vector512{float}, Vector512{float}, Vector512{float}, float*)"/>: Vector256.Sum's order, each 128-bit half as (x0 + x1) + (x2 + x3), then the halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d, float* dst)
    {
        if (!Avx.IsSupported)
        {
            dst[0] = Vector256.Sum(a); dst[1] = Vector256.Sum(b); dst[2] = Vector256.Sum(c); dst[3] = Vector256.Sum(d);
            return;
        }
        var h = Avx.HorizontalAdd(Avx.HorizontalAdd(a, b), Avx.HorizontalAdd(c, d));
        (h.GetLower() + h.GetUpper()).Store(dst);
    }

    /// <summary>The vector form of <see cref="ExpNonPositive(float)"/>: the same operations lane by lane, so the scalar form's bits at every width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV ExpNonPositive<TV>(TV x) where TV : unmanaged, IVec<TV>
    {
        var n = TV.Round(x * TV.Splat(ExpLog2E));
        var r = TV.Fma(n, TV.Splat(-ExpC1), x);
        r = TV.Fma(n, TV.Splat(-ExpC2), r);
        var y = TV.Fma(TV.Splat(ExpP0), r, TV.Splat(ExpP1));
        y = TV.Fma(y, r, TV.Splat(ExpP2));
        y = TV.Fma(y, r, TV.Splat(ExpP3));
        y = TV.Fma(y, r, TV.Splat(ExpP4));
        y = TV.Fma(y, r, TV.Splat(ExpP5));
        y = TV.Fma(y, r * r, r) + TV.Splat(1f);
        return TV.Select(TV.LessThan(x, TV.Splat(ExpFloor)), TV.Splat(0f), y * TV.Pow2(n));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ExpNonPositive(Vector512<float> x) => V512.ExpNonPositive(x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ExpNonPositive(Vector256<float> x) => V256.ExpNonPositive(x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ExpNonPositive(Vector128<float> x) => V128.ExpNonPositive(x);

    /// <summary>
    /// (σ(x), 1 − σ(x)) with both halves accurate in relative terms: with e = exp(−x), σ = 1/(1 + e) and
    /// 1 − σ = e·σ, so neither is computed as a difference of numbers near 1. The exponent is capped
    /// at 80 (e^80 is finite in float) so e·σ never becomes ∞·0; below x = −80, σ is then e^−80 instead
    /// of something smaller, an absolute error under 2e-35.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (float S, float C) SigmoidPair(float x)
    {
        float e = MathF.Exp(MathF.Min(-x, 80f));
        float s = 1f / (1f + e);
        return (s, e * s);
    }

    /// <summary>Vector form of <see cref="SigmoidPair(float)"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (TV S, TV C) SigmoidPair<TV>(TV x) where TV : unmanaged, IVec<TV>
    {
        var e = TV.Exp(TV.Min(TV.Splat(0f) - x, TV.Splat(80f)));
        var s = TV.Splat(1f) / (TV.Splat(1f) + e);
        return (s, e * s);
    }

    /// <summary>σ(x) = 1/(1 + e^−x); e^−x = +∞ for x &lt; −88 gives exactly 0, as it should.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Sigmoid<TV>(TV x) where TV : unmanaged, IVec<TV>
    {
        var one = TV.Splat(1f);
        return one / (one + TV.Exp(TV.Splat(0f) - x));
    }

    /// <summary>Scalar σ(x), the reference of <see cref="Sigmoid{TV}"/>.</summary>
    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));
}

/// <summary>How row kernels split their rows over <see cref="KernelPool"/>.</summary>
internal static class RowSplit
{
    /// <summary>Below this many elements a kernel runs on the calling thread: a dispatch costs more than it saves.</summary>
    public const long ParallelThreshold = 1 << 16;

    /// <summary>Tasks for <paramref name="rows"/> rows of <paramref name="rowWork"/> elements each (1: run inline).</summary>
    public static int Tasks(int rows, long rowWork, KernelPool pool)
    {
        if (rows <= 1 || (long)rows * rowWork <= ParallelThreshold || pool.ThreadCount == 1) return 1;
        return Partition.Tasks(rows, Math.Max(1, (1 << 14) / Math.Max(1, rowWork)), pool);
    }
}
