using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

// FlashAttention-2 backward (Dao, arXiv 2307.08691, Algorithm 2): with D_t = dO_t·O_t and the
// forward's log-sum-exp, P = exp(S − lse) is recomputed per key block, then
//   dV_j += P_tj·dO_t,   dS_tj = P_tj·(dO_t·V_j − D_t),   dK_j += scale·dS_tj·Q_t,   dQ_t += scale·dS_tj·K_j,
// and dBias_tj = dS_tj (the bias is added after the scale). Key blocks are the outer loop and the
// rows of every query head of the group the inner one, so a K/V block stays in L1. On a GPU dQ is
// summed with atomics; here one task owns a whole kv head (its dK, dV and its query heads' dQ), so
// every sum runs in a fixed order and training is bit-reproducible. With a bias shared by the
// batch, its gradient sums over the batch, so one task also owns every batch item of its kv head.
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
            float* scratch = AttentionScratch.Get((long)P.Group * P.T + 1);
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

    static void BackwardKvHead<TIsa, TV>(in AttentionProblem p, int kvh, int bFirst, int bEnd, float* dRow)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int hd = p.Hd, T = p.T, S = p.S, g0 = kvh * p.Group, bk = p.KeyBlock;
        long biasHead = (long)T * S;
        if (p.DBias != null && p.BiasBatchStride == 0)
            new Span<float>(p.DBias + g0 * biasHead, checked((int)(p.Group * biasHead))).Clear();

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
                for (int t = 0; t < T; t++)
                {
                    new Span<float>(p.Row(p.DQ, p.DQs, b, h, t), hd).Clear();
                    dRow[g * T + t] = AttentionMath.Dot<TIsa, TV>(p.Row(p.DO, p.DOs, b, h, t), p.Row(p.O, p.Os, b, h, t), hd);
                }
                if (p.DBias != null && p.BiasBatchStride != 0)
                    new Span<float>(p.DBias + b * p.BiasBatchStride + h * biasHead, checked((int)biasHead)).Clear();
            }

            int keyLimit = p.KeyLimit(b);
            for (int kb = 0; kb < keyLimit; kb += bk)
            {
                int kbEnd = Math.Min(kb + bk, keyLimit);
                // Causal: rows before kb − offset see none of this block.
                int tStart = p.Causal ? (int)Math.Clamp((long)kb - p.Offset, 0, T) : 0;
                for (int g = 0; g < p.Group; g++)
                {
                    int h = g0 + g;
                    float slope = p.Alibi != null ? p.Alibi[h] : 0;
                    for (int t = tStart; t < T; t++)
                    {
                        float lse = p.Lse[((long)b * p.H + h) * T + t];
                        if (float.IsNegativeInfinity(lse)) continue;   // the row saw no key: its gradients are 0
                        int jEnd = Math.Min(kbEnd, p.KeyEnd(b, t));
                        float* q = p.Row(p.Q, p.Qs, b, h, t);
                        float* dO = p.Row(p.DO, p.DOs, b, h, t);
                        float* dQ = p.Row(p.DQ, p.DQs, b, h, t);
                        float* biasRow = p.Bias != null ? p.BiasRow(b, h, t) : null;
                        float* dBiasRow = p.DBias != null ? p.DBias + b * p.BiasBatchStride + (h * T + t) * (long)S : null;
                        float qPos = (float)((long)t + p.Offset);
                        float dt = dRow[g * T + t];
                        for (int j = kb; j < jEnd; j++)
                        {
                            if (p.KeyMask != null && p.KeyMask[(long)b * S + j] == 0) continue;
                            float* kj = p.Row(p.K, p.Ks, b, kvh, j);
                            float s = AttentionMath.Dot<TIsa, TV>(q, kj, hd) * p.Scale;
                            if (biasRow != null) s += biasRow[j];
                            if (p.Alibi != null) s += slope * ((float)j - qPos);
                            float pr = MathF.Exp(s - lse);
                            if (pr == 0) continue;   // includes −∞ bias entries; their gradients are 0
                            float* vj = p.Row(p.V, p.Vs, b, kvh, j);
                            float ds = pr * (AttentionMath.Dot<TIsa, TV>(dO, vj, hd) - dt);
                            AttentionMath.Axpy<TIsa, TV>(pr, dO, p.Row(p.DV, p.DVs, b, kvh, j), hd);
                            AttentionMath.Axpy<TIsa, TV>(ds * p.Scale, q, p.Row(p.DK, p.DKs, b, kvh, j), hd);
                            AttentionMath.Axpy<TIsa, TV>(ds * p.Scale, kj, dQ, hd);
                            if (dBiasRow != null) dBiasRow[j] += ds;
                        }
                    }
                }
            }
        }
    }
}
