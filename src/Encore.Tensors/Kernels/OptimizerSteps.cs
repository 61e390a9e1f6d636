using System.Runtime.CompilerServices;

namespace Encore.Tensors.Kernels;

/// <summary>The per-step constants of one AdamW update (torch.optim.AdamW's single-tensor path, in binary32).</summary>
/// <param name="Decay">1 − lr·λ, the decoupled weight decay factor.</param>
/// <param name="Beta1">β₁.</param>
/// <param name="Beta2">β₂.</param>
/// <param name="OneMinusBeta1">1 − β₁.</param>
/// <param name="OneMinusBeta2">1 − β₂.</param>
/// <param name="StepSize">lr ÷ (1 − β₁ᵗ).</param>
/// <param name="Bc2Sqrt">√(1 − β₂ᵗ).</param>
/// <param name="Eps">ε.</param>
public readonly record struct AdamWConstants(float Decay, float Beta1, float Beta2, float OneMinusBeta1, float OneMinusBeta2,
    float StepSize, float Bc2Sqrt, float Eps);

/// <summary>
/// Optimizer updates over a parameter's values, vectorized and split across the kernel pool. Each
/// element goes through the same binary32 operations in the same order at every width (no fused
/// multiply-adds), so the vector paths equal the scalar twin bit for bit and a step does not depend
/// on the thread count.
/// </summary>
public static unsafe class OptimizerSteps
{
    const int MinPerTask = 16 * 1024;

    /// <summary>
    /// One AdamW step in place: w ← w·decay − stepSize·m/(√v/√bc₂ + ε) with m ← β₁m + (1−β₁)g and
    /// v ← β₂v + (1−β₂)g², where m and v are the moments after this step.
    /// </summary>
    public static void AdamW(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamWConstants k)
        => AdamW(w, g, m, v, k, Simd.Current);

    /// <summary><see cref="AdamW(Span{float}, ReadOnlySpan{float}, Span{float}, Span{float}, in AdamWConstants)"/> at an explicit width (<see cref="SimdWidth.Scalar"/>: the twin that specifies it).</summary>
    internal static void AdamW(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamWConstants k, SimdWidth width)
    {
        int n = w.Length;
        if (g.Length != n || m.Length != n || v.Length != n)
            throw new ArgumentException($"AdamW: weights ({n}), gradient ({g.Length}) and moments ({m.Length}, {v.Length}) must have one length");
        fixed (float* pw = w, pg = g, pm = m, pv = v)
            RowDriver.RunFlat(new AdamWOp { W = pw, G = pg, M = pm, V = pv, K = k }, n, MinPerTask, width);
    }

    // One AdamW update of an element, the moments' storage aside: m and v after the step, and the new
    // weight. Both storages run exactly these operations (vector lanes as the scalar twin).
    readonly struct AdamWVectors<TV> where TV : unmanaged, IVec<TV>
    {
        readonly TV _decay, _b1, _b2, _c1, _c2, _step, _bc2, _eps;

        public AdamWVectors(in AdamWConstants k)
        {
            _decay = TV.Splat(k.Decay); _b1 = TV.Splat(k.Beta1); _b2 = TV.Splat(k.Beta2);
            _c1 = TV.Splat(k.OneMinusBeta1); _c2 = TV.Splat(k.OneMinusBeta2);
            _step = TV.Splat(k.StepSize); _bc2 = TV.Splat(k.Bc2Sqrt); _eps = TV.Splat(k.Eps);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Update(TV g, TV w, TV mPrev, TV vPrev, out TV m, out TV v)
        {
            m = mPrev * _b1 + g * _c1;
            v = vPrev * _b2 + g * g * _c2;
            return w * _decay - _step * (m / (TV.Sqrt(v) / _bc2 + _eps));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Update(in AdamWConstants k, float g, float w, float mPrev, float vPrev, out float m, out float v)
    {
        m = mPrev * k.Beta1 + g * k.OneMinusBeta1;
        v = vPrev * k.Beta2 + g * g * k.OneMinusBeta2;
        return w * k.Decay - k.StepSize * (m / (MathF.Sqrt(v) / k.Bc2Sqrt + k.Eps));
    }

    struct AdamWOp : IRangeOperator
    {
        public float* W, G, M, V;
        public AdamWConstants K;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Range<TV>(int first, int end) where TV : unmanaged, IVec<TV>
        {
            var adam = new AdamWVectors<TV>(K);
            int i = first;
            for (; i + TV.Count <= end; i += TV.Count)
            {
                TV w = adam.Update(TV.Load(G + i), TV.Load(W + i), TV.Load(M + i), TV.Load(V + i), out TV m, out TV v);
                TV.Store(m, M + i);
                TV.Store(v, V + i);
                TV.Store(w, W + i);
            }
            if (i < end) RangeScalar(i, end);
        }

        public readonly void RangeScalar(int first, int end)
        {
            for (int i = first; i < end; i++) W[i] = Update(K, G[i], W[i], M[i], V[i], out M[i], out V[i]);
        }
    }

    /// <summary>
    /// One AdamW step with the moments stored as bfloat16 (their bits, <paramref name="m"/> and
    /// <paramref name="v"/>): each moment is widened, updated and used for the weight in binary32 exactly
    /// as <see cref="AdamW(Span{float}, ReadOnlySpan{float}, Span{float}, Span{float}, in AdamWConstants)"/>
    /// does, then stored back by stochastic rounding (<see cref="RoundStochastic"/>). Rounding to nearest
    /// would lose v's updates: (1 − β₂)·g² is a thousandth of v, below half a bfloat16 ulp (2⁻⁹), so v
    /// would stop following g². The rounding bits come from a hash of <paramref name="seed"/> and the
    /// element's index, so the result does not depend on the thread count and a resumed run repeats it.
    /// </summary>
    public static void AdamWBf16(Span<float> w, ReadOnlySpan<float> g, Span<ushort> m, Span<ushort> v, in AdamWConstants k, ulong seed)
        => AdamWBf16(w, g, m, v, k, seed, Simd.Current);

    /// <summary><see cref="AdamWBf16(Span{float}, ReadOnlySpan{float}, Span{ushort}, Span{ushort}, in AdamWConstants, ulong)"/> at an explicit width (<see cref="SimdWidth.Scalar"/>: the twin that specifies it).</summary>
    internal static void AdamWBf16(Span<float> w, ReadOnlySpan<float> g, Span<ushort> m, Span<ushort> v, in AdamWConstants k, ulong seed, SimdWidth width)
    {
        int n = w.Length;
        if (g.Length != n || m.Length != n || v.Length != n)
            throw new ArgumentException($"AdamW: weights ({n}), gradient ({g.Length}) and moments ({m.Length}, {v.Length}) must have one length");
        fixed (float* pw = w, pg = g)
        fixed (ushort* pm = m, pv = v)
            RowDriver.RunFlat(new AdamWBf16Op { W = pw, G = pg, M = pm, V = pv, K = k, Seed = seed }, n, MinPerTask, width);
    }

    /// <summary>
    /// x rounded to a bfloat16 (its bits) stochastically: up with probability equal to the fraction of
    /// an ulp that x lies above the value below, using the low 16 bits of <paramref name="random"/>, so the
    /// expected value is x. Infinities stay; a NaN stays a NaN.
    /// </summary>
    public static ushort RoundStochastic(float x, uint random)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        if ((bits & 0x7F800000u) == 0x7F800000u)
            return (ushort)((bits >> 16) | ((bits & 0x007FFFFFu) != 0 ? 0x0040u : 0u));
        return (ushort)((bits + (random & 0xFFFFu)) >> 16);
    }

    internal const uint HashStep = 0x9E3779B1u, HashMix1 = 0x7FEB352Du, HashMix2 = 0x846CA68Bu;

    /// <summary>
    /// The 32 random bits of element <paramref name="index"/> under <paramref name="seed"/>: the index spread by a
    /// golden-ratio multiply, the seed's halves mixed in, then a fixed 32-bit finalizer (xor-shift-multiply).
    /// 32-bit lanes throughout, so every vector width computes the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint RoundingBits(ulong seed, long index)
    {
        uint x = (uint)index * HashStep + (uint)seed;
        x ^= (uint)(seed >> 32);
        x ^= x >> 16; x *= HashMix1;
        x ^= x >> 15; x *= HashMix2;
        return x ^ (x >> 16);
    }

    struct AdamWBf16Op : IRangeOperator
    {
        public float* W, G;
        public ushort* M, V;
        public AdamWConstants K;
        public ulong Seed;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Range<TV>(int first, int end) where TV : unmanaged, IVec<TV>
        {
            var adam = new AdamWVectors<TV>(K);
            uint seedLo = (uint)Seed, seedHi = (uint)(Seed >> 32);
            int i = first;
            for (; i + TV.Count <= end; i += TV.Count)
            {
                TV w = adam.Update(TV.Load(G + i), TV.Load(W + i), TV.LoadBFloat16(M + i), TV.LoadBFloat16(V + i), out TV m, out TV v);
                TV r = TV.RoundingBits(seedLo, seedHi, i);
                TV.StoreBFloat16Stochastic(m, r, 0, M + i);
                TV.StoreBFloat16Stochastic(v, r, 16, V + i);
                TV.Store(w, W + i);
            }
            if (i < end) RangeScalar(i, end);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void RangeScalar(int first, int end)
        {
            for (int i = first; i < end; i++)
            {
                W[i] = Update(K, G[i], W[i], Widen(M[i]), Widen(V[i]), out float m, out float v);
                uint r = RoundingBits(Seed, i);
                M[i] = RoundStochastic(m, r);
                V[i] = RoundStochastic(v, r >> 16);
            }
        }

        static float Widen(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
    }

    /// <summary>Values summed by one sequence of partial sums in <see cref="SquaredNorm"/> (fixed: the result depends on it).</summary>
    public const int NormBlock = 4096;

    /// <summary>
    /// Σ x², accumulated in binary64 in a fixed order: each block of <see cref="NormBlock"/> values by four
    /// interleaved partial sums (value i into sum i mod 4, then (s₀ + s₁) + (s₂ + s₃)), the blocks' sums
    /// added in block order. Blocks run on the kernel pool, so the result does not depend on the thread
    /// count, and the four chains keep the adds off one latency-bound chain.
    /// </summary>
    public static double SquaredNorm(ReadOnlySpan<float> x)
    {
        int blocks = (x.Length + NormBlock - 1) / NormBlock;
        if (blocks == 0) return 0;
        double[] partial = System.Buffers.ArrayPool<double>.Shared.Rent(blocks);
        try
        {
            fixed (float* px = x)
            fixed (double* pp = partial)
                RowDriver.RunRows(new SquaredNormOp { X = px, N = x.Length, Partial = pp }, blocks, NormBlock, SimdWidth.Scalar);
            double sum = 0;
            for (int b = 0; b < blocks; b++) sum += partial[b];
            return sum;
        }
        finally
        {
            System.Buffers.ArrayPool<double>.Shared.Return(partial);
        }
    }

    struct SquaredNormOp : IRangeOperator
    {
        public float* X;
        public int N;
        public double* Partial;

        public readonly void Range<TV>(int first, int end) where TV : unmanaged, IVec<TV> => RangeScalar(first, end);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void RangeScalar(int first, int end)
        {
            for (int b = first; b < end; b++)
            {
                int i = b * NormBlock, stop = Math.Min(N, i + NormBlock);
                double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                for (; i + 4 <= stop; i += 4)
                {
                    double a = X[i], c = X[i + 1], d = X[i + 2], e = X[i + 3];
                    s0 += a * a;
                    s1 += c * c;
                    s2 += d * d;
                    s3 += e * e;
                }
                for (int lane = 0; i < stop; i++, lane++)
                {
                    double a = X[i];
                    if (lane == 0) s0 += a * a; else if (lane == 1) s1 += a * a; else s2 += a * a;
                }
                Partial[b] = (s0 + s1) + (s2 + s3);
            }
        }
    }
}
