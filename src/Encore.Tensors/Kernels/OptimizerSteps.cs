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

    struct AdamWOp : IRangeOperator
    {
        public float* W, G, M, V;
        public AdamWConstants K;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Range<TV>(int first, int end) where TV : unmanaged, IVec<TV>
        {
            TV decay = TV.Splat(K.Decay), b1 = TV.Splat(K.Beta1), b2 = TV.Splat(K.Beta2);
            TV c1 = TV.Splat(K.OneMinusBeta1), c2 = TV.Splat(K.OneMinusBeta2);
            TV step = TV.Splat(K.StepSize), bc2 = TV.Splat(K.Bc2Sqrt), eps = TV.Splat(K.Eps);
            int i = first;
            for (; i + TV.Count <= end; i += TV.Count)
            {
                TV gi = TV.Load(G + i);
                TV wi = TV.Load(W + i) * decay;
                TV mi = TV.Load(M + i) * b1 + gi * c1;
                TV vi = TV.Load(V + i) * b2 + gi * gi * c2;
                TV denom = TV.Sqrt(vi) / bc2 + eps;
                TV.Store(mi, M + i);
                TV.Store(vi, V + i);
                TV.Store(wi - step * (mi / denom), W + i);
            }
            if (i < end) RangeScalar(i, end);
        }

        public readonly void RangeScalar(int first, int end)
        {
            for (int i = first; i < end; i++)
            {
                float gi = G[i];
                float wi = W[i] * K.Decay;
                float mi = M[i] * K.Beta1 + gi * K.OneMinusBeta1;
                float vi = V[i] * K.Beta2 + gi * gi * K.OneMinusBeta2;
                float denom = MathF.Sqrt(vi) / K.Bc2Sqrt + K.Eps;
                M[i] = mi;
                V[i] = vi;
                W[i] = wi - K.StepSize * (mi / denom);
            }
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
            TV decay = TV.Splat(K.Decay), b1 = TV.Splat(K.Beta1), b2 = TV.Splat(K.Beta2);
            TV c1 = TV.Splat(K.OneMinusBeta1), c2 = TV.Splat(K.OneMinusBeta2);
            TV step = TV.Splat(K.StepSize), bc2 = TV.Splat(K.Bc2Sqrt), eps = TV.Splat(K.Eps);
            uint seedLo = (uint)Seed, seedHi = (uint)(Seed >> 32);
            int i = first;
            for (; i + TV.Count <= end; i += TV.Count)
            {
                TV gi = TV.Load(G + i);
                TV wi = TV.Load(W + i) * decay;
                TV mi = TV.LoadBFloat16(M + i) * b1 + gi * c1;
                TV vi = TV.LoadBFloat16(V + i) * b2 + gi * gi * c2;
                TV denom = TV.Sqrt(vi) / bc2 + eps;
                TV r = TV.RoundingBits(seedLo, seedHi, i);
                TV.StoreBFloat16Stochastic(mi, r, 0, M + i);
                TV.StoreBFloat16Stochastic(vi, r, 16, V + i);
                TV.Store(wi - step * (mi / denom), W + i);
            }
            if (i < end) RangeScalar(i, end);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void RangeScalar(int first, int end)
        {
            for (int i = first; i < end; i++)
            {
                float gi = G[i];
                float wi = W[i] * K.Decay;
                float mi = BitConverter.UInt32BitsToSingle((uint)M[i] << 16) * K.Beta1 + gi * K.OneMinusBeta1;
                float vi = BitConverter.UInt32BitsToSingle((uint)V[i] << 16) * K.Beta2 + gi * gi * K.OneMinusBeta2;
                float denom = MathF.Sqrt(vi) / K.Bc2Sqrt + K.Eps;
                uint r = RoundingBits(Seed, i);
                M[i] = RoundStochastic(mi, r);
                V[i] = RoundStochastic(vi, r >> 16);
                W[i] = wi - K.StepSize * (mi / denom);
            }
        }
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
