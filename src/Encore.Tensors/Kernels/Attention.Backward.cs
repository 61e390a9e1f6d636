using System.Runtime.CompilerServices;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

// FlashAttention-2 backward (Dao, arXiv 2307.08691, Algorithm 2): with D_t = dO_t·O_t and the
// forward's log-sum-exp, P = exp(S − lse) is recomputed per key block, then
//   dV_j += P_tj·dO_t,   dS_tj = P_tj·(dO_t·V_j − D_t),   dK_j += scale·dS_tj·Q_t,   dQ_t += scale·dS_tj·K_j,
// and dBias_tj = dS_tj (the bias is added after the scale). A soft cap s → c·tanh(s/c) multiplies the
// score gradient reaching Q and K by 1 − tanh²(s/c); the bias, added after the cap, takes dS as it is. On a GPU dQ (or dK, dV) is summed with
// atomics; here one task owns a whole kv head (its dK, dV and its query heads' dQ) and walks query
// tiles, then key blocks, in a fixed order, so training is bit-reproducible. With a bias shared by
// the batch its gradient sums over the batch, so one task then owns every batch item of its kv head.
public static unsafe partial class Attention
{
    static void RunBackward(ref AttentionProblem p, SimdWidth width)
    {
        bool wholeBatch = p.DBias != null && p.BiasBatchStride == 0 && p.B > 1;
        int units = wholeBatch ? p.Hkv : p.B * p.Hkv;
        if (units == 0) return;
        long work = (long)p.B * p.H * Math.Max(p.T, 1) * Math.Max(p.S, 1) * p.Hd;
        int tasks = Math.Min(units, Partition.Tasks(work, 1 << 15, KernelPool.Default));
        var task = new BackwardTask { P = p, Width = width, WholeBatch = wholeBatch, Units = units, Tasks = tasks };
        KernelPool.Default.Run(tasks, ref task);
    }

    struct BackwardTask : IParallelTask
    {
        public AttentionProblem P;
        public SimdWidth Width;
        public bool WholeBatch;
        public int Units, Tasks;

        public void Execute(int index)
        {
            var (start, end) = Partition.Range(Units, Tasks, index);
            int lanes = Lanes(Width);
            float* scratch = AttentionScratch.Get(3L * P.Hd * lanes + 3L * P.KeyBlock * lanes + 3L * lanes);
            for (int u = start; u < end; u++)
            {
                int kvh = u % P.Hkv;
                int bFirst = WholeBatch ? 0 : u / P.Hkv;
                int bEnd = WholeBatch ? P.B : bFirst + 1;
                switch (Width)
                {
                    case SimdWidth.V512: BackwardKvHead<AttentionV512, System.Runtime.Intrinsics.Vector512<float>>(P, kvh, bFirst, bEnd, scratch); break;
                    case SimdWidth.V256: BackwardKvHead<AttentionV256, System.Runtime.Intrinsics.Vector256<float>>(P, kvh, bFirst, bEnd, scratch); break;
                    case SimdWidth.V128: BackwardKvHead<AttentionV128, System.Runtime.Intrinsics.Vector128<float>>(P, kvh, bFirst, bEnd, scratch); break;
                    default: BackwardKvHead<AttentionScalar, float>(P, kvh, bFirst, bEnd, scratch); break;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void BackwardKvHead<TIsa, TV>(in AttentionProblem p, int kvh, int bFirst, int bEnd, float* scratch)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int hd = p.Hd, T = p.T, S = p.S, g0 = kvh * p.Group;
        long biasHead = (long)T * S;
        if (p.DBias != null && p.BiasBatchStride == 0)
            new Span<float>(p.DBias + g0 * biasHead, checked((int)(p.Group * biasHead))).Clear();
        int c = TIsa.Count;
        for (int b = bFirst; b < bEnd; b++)
        {
            for (int j = 0; j < S; j++)
            {
                new Span<float>(p.Row(p.DK, p.DKs, b, kvh, j), hd).Clear();
                new Span<float>(p.Row(p.DV, p.DVs, b, kvh, j), hd).Clear();
            }
            for (int g = 0; g < p.Group; g++)
            {
                int h = g0 + g;
                if (p.DBias != null && p.BiasBatchStride != 0)
                    new Span<float>(p.DBias + b * p.BiasBatchStride + h * biasHead, checked((int)biasHead)).Clear();
                for (int i0 = 0; i0 < T; i0 += c)
                    BackwardTile<TIsa, TV>(p, b, h, kvh, i0, scratch);
            }
        }
    }

    /// <summary>
    /// One tile of query rows against every key block it sees. As in the forward tile, Q and dO are
    /// held transposed (hd, rows) so the scores S, dP = dO·Vᵀ and dQ += dS·K are broadcast-FMA loops
    /// over registers of rows; dV += Pᵀ·dO and dK += dSᵀ·Q are, per key, sums of the tile's rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void BackwardTile<TIsa, TV>(in AttentionProblem p, int b, int h, int kvh, int i0, float* scratch)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count, hd = p.Hd, bk = p.KeyBlock, T = p.T, S = p.S;
        int n = Math.Min(c, T - i0);
        float* qt = scratch;                          // (hd, c)  Qᵀ
        float* dot = qt + (long)hd * c;               // (hd, c)  dOᵀ
        float* dqt = dot + (long)hd * c;              // (hd, c)  dQᵀ accumulator
        float* st = dqt + (long)hd * c;               // (bk, c)  scores, then P
        float* dpt = st + (long)bk * c;               // (bk, c)  dP, then scale·dS
        float* pos = dpt + (long)bk * c;              // (c)      absolute query positions
        float* lseRow = pos + c;                      // (c)      log-sum-exp, +∞ for rows that saw nothing
        float* dRow = lseRow + c;                     // (c)      D = rowsum(dO∘O)
        float* capT = dRow + c;                       // (bk, c)  tanh(s/cap) of a soft-capped block

        long qsp = p.Qs.Position, dosp = p.DOs.Position;
        float* q0 = p.Row(p.Q, p.Qs, b, h, i0);
        float* do0 = p.Row(p.DO, p.DOs, b, h, i0);
        for (int r = 0; r < c; r++)
        {
            if (r < n)
            {
                float* qr = q0 + r * qsp, dr = do0 + r * dosp;
                for (int d = 0; d < hd; d++) { qt[d * c + r] = qr[d]; dot[d * c + r] = dr[d]; }
                float lse = p.Lse[((long)b * p.H + h) * T + i0 + r];
                // exp(s − (+∞)) = 0: a row that saw no key contributes nothing, without NaNs.
                lseRow[r] = float.IsNegativeInfinity(lse) ? float.PositiveInfinity : lse;
                dRow[r] = AttentionMath.Dot<TIsa, TV>(dr, p.Row(p.O, p.Os, b, h, i0 + r), hd);
            }
            else
            {
                for (int d = 0; d < hd; d++) { qt[d * c + r] = 0; dot[d * c + r] = 0; }
                lseRow[r] = float.PositiveInfinity;
                dRow[r] = 0;
            }
            pos[r] = (float)((long)i0 + r + p.Offset);
        }
        new Span<float>(dqt, hd * c).Clear();

        float* kBase = p.K + (long)b * p.Ks.Batch + (long)kvh * p.Ks.Head;
        float* vBase = p.V + (long)b * p.Vs.Batch + (long)kvh * p.Vs.Head;
        float* dkBase = p.DK + (long)b * p.DKs.Batch + (long)kvh * p.DKs.Head;
        float* dvBase = p.DV + (long)b * p.DVs.Batch + (long)kvh * p.DVs.Head;
        long ksp = p.Ks.Position, vsp = p.Vs.Position, dksp = p.DKs.Position, dvsp = p.DVs.Position;
        int keyEnd = p.KeyEnd(b, i0 + n - 1);
        float scaleF = p.Scale;
        TV scale = TIsa.Splat(scaleF), one = TIsa.Splat(1);
        TV posV = TIsa.Load(pos), lseV = TIsa.Load(lseRow), dV = TIsa.Load(dRow);

        for (int kb = p.KeyStart(b, i0); kb < keyEnd; kb += bk)
        {
            int nk = Math.Min(bk, keyEnd - kb);
            if (p.BlockMasked(b, kb, nk)) continue;
            TileScores<TIsa, TV>(qt, kBase + kb * ksp, ksp, nk, hd, st, scale);
            if (p.SoftCap > 0) TileSoftCap<TIsa, TV>(st, nk, p.SoftCap, capT);
            TileScoreTerms<TIsa, TV>(p, b, h, i0, n, kb, nk, st, posV);
            TileScores<TIsa, TV>(dot, vBase + kb * vsp, vsp, nk, hd, dpt, one);
            for (int j = 0; j < nk; j++)
            {
                TV pj = TIsa.Exp(TIsa.Sub(TIsa.Load(st + j * c), lseV));
                TIsa.Store(st + j * c, pj);
                TIsa.Store(dpt + j * c, TIsa.Mul(pj, TIsa.Sub(TIsa.Load(dpt + j * c), dV)));
            }
            if (p.DBias != null)
            {
                for (int r = 0; r < n; r++)
                {
                    float* gb = p.DBias + b * p.BiasBatchStride + ((long)h * T + i0 + r) * S + kb;
                    for (int j = 0; j < nk; j++) gb[j] += dpt[j * c + r];
                }
            }
            if (p.SoftCap > 0)
            {
                // d(cap·tanh(s/cap))/ds = 1 − tanh²(s/cap).
                for (int j = 0; j < nk; j++)
                {
                    TV t = TIsa.Load(capT + j * c);
                    TIsa.Store(dpt + j * c, TIsa.Mul(TIsa.Load(dpt + j * c), TIsa.Mul(scale, TIsa.Sub(one, TIsa.Mul(t, t)))));
                }
            }
            else for (int j = 0; j < nk; j++) TIsa.Store(dpt + j * c, TIsa.Mul(TIsa.Load(dpt + j * c), scale));
            // dQᵀ += Kᵀ·(scale·dS)ᵀ; per key, dV_j += Σ_r P[j, r]·dO_r and dK_j += Σ_r scale·dS[j, r]·Q_r.
            TileAccumulate<TIsa, TV>(dqt, dpt, kBase + kb * ksp, ksp, nk, hd, one);
            for (int j = 0; j < nk; j++)
                KeyGradients<TIsa, TV>(dvBase + (kb + j) * dvsp, st + j * c, do0, dosp, dkBase + (kb + j) * dksp, dpt + j * c, q0, qsp, n, hd);
        }

        for (int r = 0; r < n; r++)
        {
            float* dq = p.Row(p.DQ, p.DQs, b, h, i0 + r);
            for (int d = 0; d < hd; d++) dq[d] = dqt[d * c + r];
        }
    }

    /// <summary>
    /// One key's gradients from a tile of n query rows: dV += Σ_r p[r]·dO_r and dK += Σ_r ds[r]·Q_r,
    /// each element summed in r order exactly as <c>RowAccumulate</c> sums it, but both in one pass:
    /// eight independent chains of multiply-adds instead of four per call, which a 16-row tile leaves
    /// bound by the multiply-add latency.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void KeyGradients<TIsa, TV>(float* dv, float* p, float* dO, long dosp, float* dk, float* ds, float* q, long qsp, int n, int hd)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count, d = 0;
        if (c > 1)
        {
            for (; d + 4 * c <= hd; d += 4 * c)
            {
                TV v0 = TIsa.Load(dv + d), v1 = TIsa.Load(dv + d + c), v2 = TIsa.Load(dv + d + 2 * c), v3 = TIsa.Load(dv + d + 3 * c);
                TV k0 = TIsa.Load(dk + d), k1 = TIsa.Load(dk + d + c), k2 = TIsa.Load(dk + d + 2 * c), k3 = TIsa.Load(dk + d + 3 * c);
                float* orow = dO + d, qrow = q + d;
                for (int r = 0; r < n; r++, orow += dosp, qrow += qsp)
                {
                    TV pr = TIsa.Splat(p[r]), sr = TIsa.Splat(ds[r]);
                    v0 = TIsa.MulAdd(pr, TIsa.Load(orow), v0);
                    k0 = TIsa.MulAdd(sr, TIsa.Load(qrow), k0);
                    v1 = TIsa.MulAdd(pr, TIsa.Load(orow + c), v1);
                    k1 = TIsa.MulAdd(sr, TIsa.Load(qrow + c), k1);
                    v2 = TIsa.MulAdd(pr, TIsa.Load(orow + 2 * c), v2);
                    k2 = TIsa.MulAdd(sr, TIsa.Load(qrow + 2 * c), k2);
                    v3 = TIsa.MulAdd(pr, TIsa.Load(orow + 3 * c), v3);
                    k3 = TIsa.MulAdd(sr, TIsa.Load(qrow + 3 * c), k3);
                }
                TIsa.Store(dv + d, v0); TIsa.Store(dv + d + c, v1); TIsa.Store(dv + d + 2 * c, v2); TIsa.Store(dv + d + 3 * c, v3);
                TIsa.Store(dk + d, k0); TIsa.Store(dk + d + c, k1); TIsa.Store(dk + d + 2 * c, k2); TIsa.Store(dk + d + 3 * c, k3);
            }
            for (; d + c <= hd; d += c)
            {
                TV v0 = TIsa.Load(dv + d), k0 = TIsa.Load(dk + d);
                float* orow = dO + d, qrow = q + d;
                for (int r = 0; r < n; r++, orow += dosp, qrow += qsp)
                {
                    v0 = TIsa.MulAdd(TIsa.Splat(p[r]), TIsa.Load(orow), v0);
                    k0 = TIsa.MulAdd(TIsa.Splat(ds[r]), TIsa.Load(qrow), k0);
                }
                TIsa.Store(dv + d, v0);
                TIsa.Store(dk + d, k0);
            }
        }
        for (; d < hd; d++)
        {
            float v = dv[d], k = dk[d];
            float* orow = dO + d, qrow = q + d;
            for (int r = 0; r < n; r++, orow += dosp, qrow += qsp)
            {
                v += p[r] * *orow;
                k += ds[r] * *qrow;
            }
            dv[d] = v;
            dk[d] = k;
        }
    }
}
