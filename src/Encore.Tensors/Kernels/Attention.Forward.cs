using System.Runtime.CompilerServices;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

// The forward pass has two shapes of work.
// Tile path (prefill, training): a tile is one register of query rows (16 at Vector512). Q is
// transposed once per tile into (hd, rows), so scores of one key against all the tile's rows are a
// register: S[j, rows] = Σ_d K[j, d]·Qᵀ[d, rows], a broadcast-FMA loop with no horizontal sums.
// The running max, denominator and rescale are registers too, and the accumulator is kept as
// Oᵀ (hd, rows) so O·α + Pᵀ·V is the same broadcast-FMA loop. This is FlashAttention-2's loop
// nest (query tile outer, key blocks inner) with the tile turned on its side to suit SIMD on CPU.
// Row path (decoding, T small, Attention.Row.cs): with fewer query rows than half a register a
// tile would waste most of its lanes, so each row is a GEMV-like pass of its own.
// Int8 keys and values (Attention.Int8.cs) take the row path with their own kernels, and the tile
// path with each key and value block widened into scratch (IAttentionBlocks).
public static unsafe partial class Attention
{
    static void RunForward(ref AttentionProblem p, SimdWidth width, bool int8 = false)
    {
        if ((long)p.B * p.H * p.T == 0) return;
        int lanes = Lanes(width);
        // Int8 keys and values take the row path at the scalar width too, so its scalar path is the
        // twin of the vector row kernels that decoding runs.
        bool rowPath = 2 * p.T < lanes || (int8 && width == SimdWidth.Scalar);
        int tilesPerHead = rowPath ? p.T : (p.T + lanes - 1) / lanes;
        int units = p.B * p.H * tilesPerHead;
        long work = (long)p.B * p.H * p.T * Math.Max(p.S, 1) * p.Hd;
        int tasks = Math.Min(units, Partition.Tasks(work, 1 << 16, KernelPool.Default));
        var task = new ForwardTask { P = p, Width = width, RowPath = rowPath, Int8 = int8, TilesPerHead = tilesPerHead, Units = units, Tasks = tasks };
        KernelPool.Default.Run(tasks, ref task);
    }

    internal static int Lanes(SimdWidth width) => width switch
    {
        SimdWidth.V512 => 16,
        SimdWidth.V256 => 8,
        SimdWidth.V128 => 4,
        _ => 1,
    };

    struct ForwardTask : IParallelTask
    {
        public AttentionProblem P;
        public SimdWidth Width;
        public bool RowPath, Int8;
        public int TilesPerHead, Units, Tasks;

        public void Execute(int index)
        {
            var (start, end) = Partition.Range(Units, Tasks, index);
            int lanes = Lanes(Width);
            int bk = P.KeyBlock;
            long scratchFloats = RowPath
                ? RoundUp(bk, lanes) + P.Hd
                : 2L * P.Hd * lanes + (long)bk * lanes + 3L * lanes + (Int8 ? 2L * bk * P.Hd : 0);
            float* scratch = AttentionScratch.Get(scratchFloats);
            for (int u = start; u < end; u++)
            {
                int tile = u % TilesPerHead;
                int bh = u / TilesPerHead;
                int b = bh / P.H, h = bh % P.H;
                if (RowPath && Int8) ForwardRowAt<sbyte, Int8Row>(Width, P, b, h, tile, scratch);
                else if (RowPath) ForwardRowAt<float, F32Row>(Width, P, b, h, tile, scratch);
                else
                {
                    int i0 = tile * lanes;
                    if (Int8)
                    {
                        switch (Width)
                        {
                            case SimdWidth.V512: ForwardTile<AttentionV512, System.Runtime.Intrinsics.Vector512<float>, Int8Blocks>(P, b, h, i0, scratch); break;
                            case SimdWidth.V256: ForwardTile<AttentionV256, System.Runtime.Intrinsics.Vector256<float>, Int8Blocks>(P, b, h, i0, scratch); break;
                            case SimdWidth.V128: ForwardTile<AttentionV128, System.Runtime.Intrinsics.Vector128<float>, Int8Blocks>(P, b, h, i0, scratch); break;
                            default: ForwardTile<AttentionScalar, float, Int8Blocks>(P, b, h, i0, scratch); break;
                        }
                    }
                    else
                    {
                        switch (Width)
                        {
                            case SimdWidth.V512: ForwardTile<AttentionV512, System.Runtime.Intrinsics.Vector512<float>, F32Blocks>(P, b, h, i0, scratch); break;
                            case SimdWidth.V256: ForwardTile<AttentionV256, System.Runtime.Intrinsics.Vector256<float>, F32Blocks>(P, b, h, i0, scratch); break;
                            case SimdWidth.V128: ForwardTile<AttentionV128, System.Runtime.Intrinsics.Vector128<float>, F32Blocks>(P, b, h, i0, scratch); break;
                            default: ForwardTile<AttentionScalar, float, F32Blocks>(P, b, h, i0, scratch); break;
                        }
                    }
                }
            }
        }
    }

    static int RoundUp(int n, int m) => (n + m - 1) / m * m;

    // ---- tile path ---------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ForwardTile<TIsa, TV, TKv>(in AttentionProblem p, int b, int h, int i0, float* scratch)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct where TKv : struct, IAttentionBlocks
    {
        int c = TIsa.Count, hd = p.Hd, bk = p.KeyBlock;
        int n = Math.Min(c, p.T - i0);
        int kvh = h / p.Group;
        float* qt = scratch;                      // (hd, c)  Qᵀ of the tile
        float* ot = qt + (long)hd * c;            // (hd, c)  Oᵀ accumulator
        float* st = ot + (long)hd * c;            // (bk, c)  scores, then probabilities
        float* pos = st + (long)bk * c;           // (c)      absolute query positions
        float* mOut = pos + c, lOut = mOut + c;   // (c)      final max and denominator
        float* kDq = lOut + c;                    // (bk, hd) a block of keys widened to binary32 (int8 only)
        float* vDq = kDq + (long)bk * hd;         // (bk, hd) the block's values, likewise

        for (int r = 0; r < c; r++)
        {
            if (r < n)
            {
                float* qr = p.Row(p.Q, p.Qs, b, h, i0 + r);
                for (int d = 0; d < hd; d++) qt[d * c + r] = qr[d];
            }
            else
            {
                for (int d = 0; d < hd; d++) qt[d * c + r] = 0;
            }
            pos[r] = (float)((long)i0 + r + p.Offset);
        }
        new Span<float>(ot, hd * c).Clear();

        int keyEnd = p.KeyEnd(b, i0 + n - 1);   // the tile's last row sees the most keys
        TV negInf = TIsa.Splat(float.NegativeInfinity);
        TV scale = TIsa.Splat(p.Scale);
        TV posV = TIsa.Load(pos);
        TV m = negInf, l = TIsa.Zero;

        for (int kb = p.KeyStart(b, i0); kb < keyEnd; kb += bk)   // the tile's first row sees the earliest key
        {
            int nk = Math.Min(bk, keyEnd - kb);
            if (p.BlockMasked(b, kb, nk)) continue;
            float* kBlock = TKv.Keys<TIsa, TV>(p, b, kvh, kb, nk, kDq, out long ksp);
            TileScores<TIsa, TV>(qt, kBlock, ksp, nk, hd, st, scale);
            if (p.SoftCap > 0) TileSoftCap<TIsa, TV>(st, nk, p.SoftCap, null);
            TileScoreTerms<TIsa, TV>(p, b, h, i0, n, kb, nk, st, posV);
            TV blockMax = negInf;
            for (int j = 0; j < nk; j++) blockMax = TIsa.Max(blockMax, TIsa.Load(st + j * c));
            TV mNew = TIsa.Max(m, blockMax);
            TV origin = TIsa.Origin(mNew);
            TV alpha = TIsa.Exp(TIsa.Sub(m, origin));
            TV rowSum = TIsa.Zero;
            for (int j = 0; j < nk; j++)
            {
                TV e = TIsa.Exp(TIsa.Sub(TIsa.Load(st + j * c), origin));
                TIsa.Store(st + j * c, e);
                rowSum = TIsa.Add(rowSum, e);
            }
            l = TIsa.MulAdd(l, alpha, rowSum);
            m = mNew;
            float* vBlock = TKv.Values<TIsa, TV>(p, b, kvh, kb, nk, vDq, out long vsp);
            TileAccumulate<TIsa, TV>(ot, st, vBlock, vsp, nk, hd, alpha);
        }

        TV inv = TIsa.ReciprocalOrZero(l);
        for (int d = 0; d < hd; d++) TIsa.Store(ot + d * c, TIsa.Mul(TIsa.Load(ot + d * c), inv));
        for (int r = 0; r < n; r++)
        {
            float* orow = p.Row(p.O, p.Os, b, h, i0 + r);
            for (int d = 0; d < hd; d++) orow[d] = ot[d * c + r];
        }
        if (p.Lse != null)
        {
            TIsa.Store(mOut, m);
            TIsa.Store(lOut, l);
            float* lse = p.Lse + ((long)b * p.H + h) * p.T + i0;
            for (int r = 0; r < n; r++) lse[r] = LogSumExp(mOut[r], lOut[r]);
        }
    }

    /// <summary>
    /// Adds the bias and ALiBi terms to a tile's scores st (nk keys from kb, rows i0..i0+n) and
    /// sets masked ones to −∞. Causality only hides keys past the tile's first row's position, at
    /// most one register's worth, so that loop is short.
    /// </summary>
    static void TileScoreTerms<TIsa, TV>(in AttentionProblem p, int b, int h, int i0, int n, int kb, int nk, float* st, TV posV)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count;
        if (p.Bias != null)
        {
            if (n == c && c > 1 && (long)p.S * c <= int.MaxValue)
            {
                // A full tile: key j's biases for the tile's rows lie S apart, one strided load each.
                float* br = p.BiasRow(b, h, i0) + kb;
                for (int j = 0; j < nk; j++) TIsa.Store(st + j * c, TIsa.Add(TIsa.Load(st + j * c), TIsa.LoadStrided(br + j, p.S)));
            }
            else
            {
                for (int r = 0; r < n; r++)
                {
                    float* br = p.BiasRow(b, h, i0 + r) + kb;
                    for (int j = 0; j < nk; j++) st[j * c + r] += br[j];
                }
            }
        }
        if (p.DistBias != null)
        {
            // Row r, key kb + j reads dr[r − j]: the tile's rows are contiguous, one plain load per key.
            float* dr = p.DistanceRow(h, i0) - kb;
            if (n == c && c > 1)
                for (int j = 0; j < nk; j++) TIsa.Store(st + j * c, TIsa.Add(TIsa.Load(st + j * c), TIsa.Load(dr - j)));
            else
                for (int r = 0; r < n; r++)
                    for (int j = 0; j < nk; j++) st[j * c + r] += dr[r - j];
        }
        if (p.Alibi != null)
        {
            TV slope = TIsa.Splat(p.Alibi[h]);
            for (int j = 0; j < nk; j++)
            {
                float* sj = st + j * c;
                TIsa.Store(sj, TIsa.Add(TIsa.Load(sj), TIsa.Mul(slope, TIsa.Sub(TIsa.Splat(kb + j), posV))));
            }
        }
        if (p.KeyMask != null)
        {
            byte* km = p.KeyMask + (long)b * p.S + kb;
            for (int j = 0; j < nk; j++)
                if (km[j] == 0) TIsa.Store(st + j * c, TIsa.Splat(float.NegativeInfinity));
        }
        if (p.Window > 0)
        {
            // Rows whose window begins after kb, or (bidirectional) ends before kb + nk, lose those keys.
            for (int r = 0; r < n; r++)
            {
                int start = p.KeyStart(b, i0 + r), end = p.Causal ? kb + nk : p.KeyEnd(b, i0 + r);
                for (int j = 0; j < nk; j++)
                    if (kb + j < start || kb + j >= end) st[j * c + r] = float.NegativeInfinity;
            }
        }
        if (p.Causal)
        {
            long firstPos = (long)i0 + p.Offset;
            for (long j = Math.Max(0, firstPos + 1 - kb); j < nk; j++)
            {
                long key = kb + j;
                for (int r = 0; r < n; r++)
                    if (key > firstPos + r) st[j * c + r] = float.NegativeInfinity;
            }
        }
    }

    /// <summary>
    /// Soft-caps a tile's scaled scores in place, st = cap·tanh(st/cap); <paramref name="keep"/>, when given,
    /// receives tanh(st/cap) for the backward's factor 1 − tanh².
    /// </summary>
    static void TileSoftCap<TIsa, TV>(float* st, int nk, float cap, float* keep)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count;
        TV capV = TIsa.Splat(cap), inv = TIsa.Splat(1 / cap);
        for (int j = 0; j < nk; j++)
        {
            TV t = TIsa.Tanh(TIsa.Mul(TIsa.Load(st + j * c), inv));
            TIsa.Store(st + j * c, TIsa.Mul(t, capV));
            if (keep != null) TIsa.Store(keep + j * c, t);
        }
    }

    static float LogSumExp(float m, float l) => l > 0 ? m + MathF.Log(l) : float.NegativeInfinity;

    /// <summary>st[j, :] = scale · Σ_d K[j, d]·Qᵀ[d, :], eight keys per pass so each Qᵀ load feeds eight FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void TileScores<TIsa, TV>(float* qt, float* k, long ksp, int nk, int hd, float* st, TV scale)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count, j = 0;
        for (; j + 8 <= nk; j += 8)
        {
            float* k0 = k + j * ksp, k1 = k0 + ksp, k2 = k1 + ksp, k3 = k2 + ksp;
            float* k4 = k3 + ksp, k5 = k4 + ksp, k6 = k5 + ksp, k7 = k6 + ksp;
            TV a0 = TIsa.Zero, a1 = TIsa.Zero, a2 = TIsa.Zero, a3 = TIsa.Zero;
            TV a4 = TIsa.Zero, a5 = TIsa.Zero, a6 = TIsa.Zero, a7 = TIsa.Zero;
            for (int d = 0; d < hd; d++)
            {
                TV qv = TIsa.Load(qt + d * c);
                a0 = TIsa.MulAdd(TIsa.Splat(k0[d]), qv, a0);
                a1 = TIsa.MulAdd(TIsa.Splat(k1[d]), qv, a1);
                a2 = TIsa.MulAdd(TIsa.Splat(k2[d]), qv, a2);
                a3 = TIsa.MulAdd(TIsa.Splat(k3[d]), qv, a3);
                a4 = TIsa.MulAdd(TIsa.Splat(k4[d]), qv, a4);
                a5 = TIsa.MulAdd(TIsa.Splat(k5[d]), qv, a5);
                a6 = TIsa.MulAdd(TIsa.Splat(k6[d]), qv, a6);
                a7 = TIsa.MulAdd(TIsa.Splat(k7[d]), qv, a7);
            }
            float* sj = st + j * c;
            TIsa.Store(sj, TIsa.Mul(a0, scale));
            TIsa.Store(sj + c, TIsa.Mul(a1, scale));
            TIsa.Store(sj + 2 * c, TIsa.Mul(a2, scale));
            TIsa.Store(sj + 3 * c, TIsa.Mul(a3, scale));
            TIsa.Store(sj + 4 * c, TIsa.Mul(a4, scale));
            TIsa.Store(sj + 5 * c, TIsa.Mul(a5, scale));
            TIsa.Store(sj + 6 * c, TIsa.Mul(a6, scale));
            TIsa.Store(sj + 7 * c, TIsa.Mul(a7, scale));
        }
        for (; j < nk; j++)
        {
            float* k0 = k + j * ksp;
            TV a0 = TIsa.Zero;
            for (int d = 0; d < hd; d++) a0 = TIsa.MulAdd(TIsa.Splat(k0[d]), TIsa.Load(qt + d * c), a0);
            TIsa.Store(st + j * c, TIsa.Mul(a0, scale));
        }
    }

    /// <summary>Oᵀ[d, :] = α·Oᵀ[d, :] + Σ_j V[j, d]·P[j, :], eight head-dim rows per pass so each P load feeds eight FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void TileAccumulate<TIsa, TV>(float* ot, float* pt, float* v, long vsp, int nk, int hd, TV alpha)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count, d = 0;
        for (; d + 8 <= hd; d += 8)
        {
            float* od = ot + d * c;
            TV o0 = TIsa.Mul(TIsa.Load(od), alpha);
            TV o1 = TIsa.Mul(TIsa.Load(od + c), alpha);
            TV o2 = TIsa.Mul(TIsa.Load(od + 2 * c), alpha);
            TV o3 = TIsa.Mul(TIsa.Load(od + 3 * c), alpha);
            TV o4 = TIsa.Mul(TIsa.Load(od + 4 * c), alpha);
            TV o5 = TIsa.Mul(TIsa.Load(od + 5 * c), alpha);
            TV o6 = TIsa.Mul(TIsa.Load(od + 6 * c), alpha);
            TV o7 = TIsa.Mul(TIsa.Load(od + 7 * c), alpha);
            float* vr = v + d;
            for (int j = 0; j < nk; j++, vr += vsp)
            {
                TV pj = TIsa.Load(pt + j * c);
                o0 = TIsa.MulAdd(TIsa.Splat(vr[0]), pj, o0);
                o1 = TIsa.MulAdd(TIsa.Splat(vr[1]), pj, o1);
                o2 = TIsa.MulAdd(TIsa.Splat(vr[2]), pj, o2);
                o3 = TIsa.MulAdd(TIsa.Splat(vr[3]), pj, o3);
                o4 = TIsa.MulAdd(TIsa.Splat(vr[4]), pj, o4);
                o5 = TIsa.MulAdd(TIsa.Splat(vr[5]), pj, o5);
                o6 = TIsa.MulAdd(TIsa.Splat(vr[6]), pj, o6);
                o7 = TIsa.MulAdd(TIsa.Splat(vr[7]), pj, o7);
            }
            TIsa.Store(od, o0);
            TIsa.Store(od + c, o1);
            TIsa.Store(od + 2 * c, o2);
            TIsa.Store(od + 3 * c, o3);
            TIsa.Store(od + 4 * c, o4);
            TIsa.Store(od + 5 * c, o5);
            TIsa.Store(od + 6 * c, o6);
            TIsa.Store(od + 7 * c, o7);
        }
        for (; d < hd; d++)
        {
            TV o0 = TIsa.Mul(TIsa.Load(ot + d * c), alpha);
            float* vr = v + d;
            for (int j = 0; j < nk; j++, vr += vsp) o0 = TIsa.MulAdd(TIsa.Splat(vr[0]), TIsa.Load(pt + j * c), o0);
            TIsa.Store(ot + d * c, o0);
        }
    }
}
