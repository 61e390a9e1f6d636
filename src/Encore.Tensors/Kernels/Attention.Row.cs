using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Encore.Tensors.Kernels;

// The forward's row path, for decoding (few query rows): each row is a GEMV-like pass over the
// keys, dot products along hd against four keys at once, then p·V accumulated along hd, with the
// same online softmax as the tile path. RowAccumulate also serves the backward's dK and dV sums.
// A decoding step reads a whole KV cache once for a handful of FMAs per key: it streams memory,
// and both loops prefetch the keys RowPrefetch positions ahead (measured: with head-major caches,
// where one head's keys are contiguous, this doubles the rate at which a step reads the cache; with
// every head of a position in one row, one head's keys lie a row apart, each on a new page, and
// neither the hardware prefetchers nor these keep up).
public static unsafe partial class Attention
{
    const int RowPrefetch = 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    // The cache lines of n bytes at p into L1 (x86 only).
    static void PrefetchBytes(byte* p, int n)
    {
        if (!Sse.IsSupported) return;
        for (int o = 0; o < n; o += 64) Sse.Prefetch0(p + o);
    }

    // ForwardRow at a vector width.
    static void ForwardRowAt<TE, TL>(SimdWidth width, in AttentionProblem p, int b, int h, int t, float* scratch)
        where TE : unmanaged where TL : struct, IRowElement<TE>
    {
        switch (width)
        {
            case SimdWidth.V512: ForwardRow<AttentionV512, System.Runtime.Intrinsics.Vector512<float>, TE, TL>(p, b, h, t, scratch); break;
            case SimdWidth.V256: ForwardRow<AttentionV256, System.Runtime.Intrinsics.Vector256<float>, TE, TL>(p, b, h, t, scratch); break;
            case SimdWidth.V128: ForwardRow<AttentionV128, System.Runtime.Intrinsics.Vector128<float>, TE, TL>(p, b, h, t, scratch); break;
            default: ForwardRow<AttentionScalar, float, TE, TL>(p, b, h, t, scratch); break;
        }
    }

    /// <summary>
    /// One query row against its keys, a block at a time with an online softmax. Keys and values are binary32
    /// or int8 quants (<typeparamref name="TL"/>); int8 rows carry one scale per position, applied to the
    /// scores and folded into the probabilities before the values are summed, so the cache is never widened
    /// as a whole.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ForwardRow<TIsa, TV, TE, TL>(in AttentionProblem p, int b, int h, int t, float* scratch)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct where TE : unmanaged where TL : struct, IRowElement<TE>
    {
        int c = TIsa.Count, hd = p.Hd, bk = p.KeyBlock;
        int kvh = h / p.Group;
        float* sc = scratch;                          // (bk rounded up to c) scores, then probabilities
        float* acc = scratch + RoundUp(bk, c);        // (hd) output accumulator
        new Span<float>(acc, hd).Clear();

        float* q = p.Row(p.Q, p.Qs, b, h, t);
        TE* kBase = TL.Keys(p) + (long)b * p.Ks.Batch + (long)kvh * p.Ks.Head;
        TE* vBase = TL.Values(p) + (long)b * p.Vs.Batch + (long)kvh * p.Vs.Head;
        bool scaled = typeof(TE) != typeof(float);
        float* kScale = scaled ? p.KScale + (long)b * p.KScales.Batch + (long)kvh * p.KScales.Head : null;
        float* vScale = scaled ? p.VScale + (long)b * p.VScales.Batch + (long)kvh * p.VScales.Head : null;
        long ksp = p.Ks.Position, vsp = p.Vs.Position, kss = scaled ? p.KScales.Position : 0, vss = scaled ? p.VScales.Position : 0;
        int keyEnd = p.KeyEnd(b, t);
        float m = float.NegativeInfinity, l = 0;

        for (int kb = p.KeyStart(b, t); kb < keyEnd; kb += bk)
        {
            int nk = Math.Min(bk, keyEnd - kb);
            if (p.BlockMasked(b, kb, nk)) continue;
            RowScores<TIsa, TV, TE, TL>(q, kBase + kb * ksp, ksp, scaled ? kScale + kb * kss : null, kss, nk, hd, sc, p.Scale);
            float alpha = RowWeights<TIsa, TV>(p, b, h, t, kb, nk, sc, ref m, ref l);
            if (scaled)
            {
                // The denominator took the probabilities; the values take them times each value's scale.
                float* vs = vScale + kb * vss;
                for (int j = 0; j < nk; j++) sc[j] *= vs[j * vss];
            }
            RowAccumulate<TIsa, TV, TE, TL>(acc, sc, vBase + kb * vsp, vsp, nk, hd, alpha);
        }

        float inv = l > 0 ? 1 / l : 0;
        float* orow = p.Row(p.O, p.Os, b, h, t);
        for (int d = 0; d < hd; d++) orow[d] = acc[d] * inv;
        if (p.Lse != null) p.Lse[((long)b * p.H + h) * p.T + t] = LogSumExp(m, l);
    }

    /// <summary>
    /// Turns a block's scores sc[0, nk) (keys from kb, query row t) into unnormalized probabilities
    /// against the running max m, updating m and the denominator l; returns the factor α that
    /// rescales what was accumulated before. Adds the bias and ALiBi terms and applies the key mask first.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float RowWeights<TIsa, TV>(in AttentionProblem p, int b, int h, int t, int kb, int nk, float* sc, ref float m, ref float l)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count;
        int nkPad = RowScoreTerms<TIsa, TV>(p, b, h, t, kb, nk, sc);

        TV mv = TIsa.Splat(float.NegativeInfinity);
        for (int j = 0; j < nkPad; j += c) mv = TIsa.Max(mv, TIsa.Load(sc + j));
        float mNew = Math.Max(m, TIsa.MaxAcross(mv));
        float origin = float.IsNegativeInfinity(mNew) ? 0 : mNew;
        float alpha = VectorMath.ExpNonPositive(m - origin);
        TV originV = TIsa.Splat(origin);
        TV sum = TIsa.Zero;
        for (int j = 0; j < nkPad; j += c)
        {
            TV e = TIsa.Exp(TIsa.Sub(TIsa.Load(sc + j), originV));
            TIsa.Store(sc + j, e);
            sum = TIsa.Add(sum, e);
        }
        l = l * alpha + TIsa.Sum(sum);
        m = mNew;
        return alpha;
    }

    /// <summary>
    /// Adds the bias and ALiBi terms to a block's scores sc[0, nk) (keys from kb, query row t), sets masked ones
    /// to −∞, and pads them with −∞ to a whole number of registers; returns that padded count.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int RowScoreTerms<TIsa, TV>(in AttentionProblem p, int b, int h, int t, int kb, int nk, float* sc)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count;
        float qPos = (float)((long)t + p.Offset);
        if (p.SoftCap > 0)
        {
            TV capV = TIsa.Splat(p.SoftCap), inv = TIsa.Splat(1 / p.SoftCap);
            int j = 0;
            for (; j + c <= nk; j += c) TIsa.Store(sc + j, TIsa.Mul(TIsa.Tanh(TIsa.Mul(TIsa.Load(sc + j), inv)), capV));
            for (; j < nk; j++) sc[j] = p.SoftCap * MathF.Tanh(sc[j] / p.SoftCap);
        }
        if (p.Bias != null)
        {
            float* br = p.BiasRow(b, h, t) + kb;
            for (int j = 0; j < nk; j++) sc[j] += br[j];
        }
        if (p.DistBias != null)
        {
            float* dr = p.DistanceRow(h, t) - kb;
            for (int j = 0; j < nk; j++) sc[j] += dr[-j];
        }
        if (p.Alibi != null)
        {
            float slope = p.Alibi[h];
            for (int j = 0; j < nk; j++) sc[j] += slope * ((float)(kb + j) - qPos);
        }
        if (p.KeyMask != null)
        {
            byte* km = p.KeyMask + (long)b * p.S + kb;
            for (int j = 0; j < nk; j++)
                if (km[j] == 0) sc[j] = float.NegativeInfinity;
        }
        int nkPad = RoundUp(nk, c);
        for (int j = nk; j < nkPad; j++) sc[j] = float.NegativeInfinity;
        return nkPad;
    }

    /// <summary>
    /// sc[j] = scale · q·K[j], four keys per pass so each q load feeds four FMAs; K's rows are binary32 or
    /// int8 quants (<typeparamref name="TL"/>), the latter with one scale per key (kScale[j·kss]; null for binary32).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void RowScores<TIsa, TV, TE, TL>(float* q, TE* k, long ksp, float* kScale, long kss, int nk, int hd, float* sc, float scale)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct where TE : unmanaged where TL : struct, IRowElement<TE>
    {
        int c = TIsa.Count, j = 0;
        float* sums = stackalloc float[4];
        for (; j + 4 <= nk; j += 4)
        {
            TE* k0 = k + j * ksp, k1 = k0 + ksp, k2 = k1 + ksp, k3 = k2 + ksp;
            // Past the block's end these touch the next block or nothing: prefetches do not fault.
            TE* ahead = k0 + RowPrefetch * ksp;
            int bytes = hd * sizeof(TE);
            PrefetchBytes((byte*)ahead, bytes); PrefetchBytes((byte*)(ahead + ksp), bytes); PrefetchBytes((byte*)(ahead + 2 * ksp), bytes); PrefetchBytes((byte*)(ahead + 3 * ksp), bytes);
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            int d = 0;
            if (c > 1)
            {
                TV a0 = TIsa.Zero, a1 = TIsa.Zero, a2 = TIsa.Zero, a3 = TIsa.Zero;
                for (; d + c <= hd; d += c)
                {
                    TV qv = TIsa.Load(q + d);
                    a0 = TIsa.MulAdd(TL.Load<TIsa, TV>(k0 + d), qv, a0);
                    a1 = TIsa.MulAdd(TL.Load<TIsa, TV>(k1 + d), qv, a1);
                    a2 = TIsa.MulAdd(TL.Load<TIsa, TV>(k2 + d), qv, a2);
                    a3 = TIsa.MulAdd(TL.Load<TIsa, TV>(k3 + d), qv, a3);
                }
                TIsa.Sum4(a0, a1, a2, a3, sums);
                s0 = sums[0]; s1 = sums[1]; s2 = sums[2]; s3 = sums[3];
            }
            for (; d < hd; d++)
            {
                float qd = q[d];
                s0 += qd * TL.Value(k0 + d); s1 += qd * TL.Value(k1 + d); s2 += qd * TL.Value(k2 + d); s3 += qd * TL.Value(k3 + d);
            }
            sc[j] = s0 * KeyScale(kScale, j, kss, scale);
            sc[j + 1] = s1 * KeyScale(kScale, j + 1, kss, scale);
            sc[j + 2] = s2 * KeyScale(kScale, j + 2, kss, scale);
            sc[j + 3] = s3 * KeyScale(kScale, j + 3, kss, scale);
        }
        for (; j < nk; j++)
        {
            TE* kj = k + j * ksp;
            float s0;
            if (typeof(TE) == typeof(float)) s0 = AttentionMath.Dot<TIsa, TV>(q, (float*)kj, hd);
            else
            {
                s0 = 0;
                int d = 0;
                if (c > 1)
                {
                    TV a0 = TIsa.Zero;
                    for (; d + c <= hd; d += c) a0 = TIsa.MulAdd(TL.Load<TIsa, TV>(kj + d), TIsa.Load(q + d), a0);
                    s0 = TIsa.Sum(a0);
                }
                for (; d < hd; d++) s0 += q[d] * TL.Value(kj + d);
            }
            sc[j] = s0 * KeyScale(kScale, j, kss, scale);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float KeyScale(float* kScale, int j, long kss, float scale) => kScale == null ? scale : scale * kScale[j * kss];

    /// <summary>
    /// acc = α·acc + Σ_j p[j]·V[j], four registers of hd per pass; V's rows are binary32 or int8 quants
    /// (<typeparamref name="TL"/>; the quants' scales are folded into p by the caller).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void RowAccumulate<TIsa, TV, TE, TL>(float* acc, float* pj, TE* v, long vsp, int nk, int hd, float alpha)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct where TE : unmanaged where TL : struct, IRowElement<TE>
    {
        int c = TIsa.Count, d = 0;
        TV al = TIsa.Splat(alpha);
        if (c > 1)
        {
            for (; d + 4 * c <= hd; d += 4 * c)
            {
                TV o0 = TIsa.Mul(TIsa.Load(acc + d), al);
                TV o1 = TIsa.Mul(TIsa.Load(acc + d + c), al);
                TV o2 = TIsa.Mul(TIsa.Load(acc + d + 2 * c), al);
                TV o3 = TIsa.Mul(TIsa.Load(acc + d + 3 * c), al);
                TE* vr = v + d;
                for (int j = 0; j < nk; j++, vr += vsp)
                {
                    if (d == 0) PrefetchBytes((byte*)(vr + RowPrefetch * vsp), hd * sizeof(TE));
                    TV pv = TIsa.Splat(pj[j]);
                    o0 = TIsa.MulAdd(pv, TL.Load<TIsa, TV>(vr), o0);
                    o1 = TIsa.MulAdd(pv, TL.Load<TIsa, TV>(vr + c), o1);
                    o2 = TIsa.MulAdd(pv, TL.Load<TIsa, TV>(vr + 2 * c), o2);
                    o3 = TIsa.MulAdd(pv, TL.Load<TIsa, TV>(vr + 3 * c), o3);
                }
                TIsa.Store(acc + d, o0);
                TIsa.Store(acc + d + c, o1);
                TIsa.Store(acc + d + 2 * c, o2);
                TIsa.Store(acc + d + 3 * c, o3);
            }
            for (; d + c <= hd; d += c)
            {
                TV o0 = TIsa.Mul(TIsa.Load(acc + d), al);
                TE* vr = v + d;
                for (int j = 0; j < nk; j++, vr += vsp) o0 = TIsa.MulAdd(TIsa.Splat(pj[j]), TL.Load<TIsa, TV>(vr), o0);
                TIsa.Store(acc + d, o0);
            }
        }
        for (; d < hd; d++)
        {
            float o = acc[d] * alpha;
            TE* vr = v + d;
            for (int j = 0; j < nk; j++, vr += vsp) o += pj[j] * TL.Value(vr);
            acc[d] = o;
        }
    }
}

/// <summary>An element type of the rows the attention row kernels read: binary32, or int8 quants widened in registers.</summary>
internal unsafe interface IRowElement<TE> where TE : unmanaged
{
    static abstract TE* Keys(in AttentionProblem p);
    static abstract TE* Values(in AttentionProblem p);
    static abstract TV Load<TIsa, TV>(TE* p) where TIsa : struct, IAttentionIsa<TV> where TV : struct;
    static abstract float Value(TE* p);
}

internal readonly unsafe struct F32Row : IRowElement<float>
{
    public static float* Keys(in AttentionProblem p) => p.K;
    public static float* Values(in AttentionProblem p) => p.V;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Load<TIsa, TV>(float* p) where TIsa : struct, IAttentionIsa<TV> where TV : struct => TIsa.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Value(float* p) => *p;
}

internal readonly unsafe struct Int8Row : IRowElement<sbyte>
{
    public static sbyte* Keys(in AttentionProblem p) => p.K8;
    public static sbyte* Values(in AttentionProblem p) => p.V8;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Load<TIsa, TV>(sbyte* p) where TIsa : struct, IAttentionIsa<TV> where TV : struct => TIsa.LoadInt8(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Value(sbyte* p) => *p;
}
