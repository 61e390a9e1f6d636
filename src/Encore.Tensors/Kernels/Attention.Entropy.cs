using System.Runtime.CompilerServices;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

// Attention entropy per query row, H = −Σ_j p_j·log p_j with p = softmax(scale·q·kᵀ + bias + masks) exactly as
// Forward forms it (the diagnostic and regularizer of Entropy-Guided Attention, arXiv 2501.03489). The flash
// kernels never hold a row's probabilities, so this is a pass of its own, one query row at a time with the row's
// scores in scratch (S floats, never T·S). With d_j = s_j − max, e_j = exp(d_j), l = Σ e, u = Σ e·d:
//   H = log l − u/l,
// a difference of small numbers whatever the size of the scores. Its gradient, from ∂p_i/∂s_j = p_i(δ_ij − p_j):
//   ∂H/∂s_j = −p_j·(s_j − Σ_i p_i s_i) = −p_j·(d_j − u/l),
// which reaches q and k through s = scale·q·k (and a bias as it is), never v. The paper's code takes
// −Σ p·log(p + 1e-9); per key that differs from −p·log p by at most 1e-9.
public static unsafe partial class Attention
{
    // Masked keys have d = −∞; flooring d keeps e·d = 0 there (exp(−1e4) is 0 in binary32, as is its product).
    const float EntropyFloor = -1e4f;

    // The entropy kernels read rows from key 0 and differentiate plain scores: soft-capped scores and sliding windows
    // (Gemma 2) are refused rather than measured wrong.
    static void CheckEntropyOptions(in AttentionOptions options)
    {
        if (options.SoftCap > 0 || options.Window > 0)
            throw new ArgumentException($"attention entropy is not measured for soft-capped or sliding-window attention (soft cap {options.SoftCap}, window {options.Window})");
    }

    /// <summary>
    /// The entropy of every query row's attention probabilities, (B, H, T) packed into <paramref name="entropy"/>
    /// (nats), for the scores, masks and options <see cref="Forward"/> takes (values are not read). A row that sees
    /// no key has entropy 0. <paramref name="visibleKeys"/>, when not empty, receives (B, H, T) the number of keys
    /// each row sees (its maximum entropy is the log of that).
    /// </summary>
    public static void Entropy(in AttentionShape shape, ReadOnlySpan<float> q, AttentionStrides qStrides, ReadOnlySpan<float> k, AttentionStrides kStrides,
        Span<float> entropy, in AttentionOptions options = default, in AttentionMask mask = default, Span<float> visibleKeys = default)
    {
        CheckForward(shape, q, qStrides, k, kStrides, k, kStrides, default, default, options, mask, default, checkOutput: false);
        RefuseDistanceBias(mask, "Entropy");
        CheckEntropyOptions(options);
        long rows = (long)shape.Batch * shape.Heads * shape.QueryLength;
        CheckLength("entropy", entropy.Length, rows, allowEmpty: false);
        CheckLength("visible keys", visibleKeys.Length, rows, allowEmpty: true);
        var width = Simd.Current;
        fixed (float* pq = q, pk = k, pe = entropy, pvis = visibleKeys, pbias = mask.Bias, palibi = mask.AlibiSlopes)
        fixed (int* plen = mask.KeyLengths)
        fixed (byte* pmask = mask.KeyMask)
        {
            var p = MakeProblem(shape, options, mask, plen, pmask, pbias, palibi);
            p.Q = pq; p.Qs = qStrides;
            p.K = pk; p.Ks = kStrides;
            if (rows == 0) return;
            int units = p.B * p.H;
            long work = rows * Math.Max(p.S, 1) * p.Hd;
            int tasks = Math.Min(units, Partition.Tasks(work, 1 << 16, KernelPool.Default));
            var task = new EntropyTask { P = p, Entropy = pe, Visible = pvis, Width = width, Units = units, Tasks = tasks };
            KernelPool.Default.Run(tasks, ref task);
        }
    }

    /// <summary>
    /// Gradients of Σ dEntropy·H for <see cref="Entropy"/>: writes dQ (B, H, T, hd) and dK (B, Hkv, S, hd)
    /// (overwritten, not accumulated) and, when <paramref name="dBias"/> is not empty, dBias in the layout of
    /// <see cref="AttentionMask.Bias"/> (summed over the batch for a (H, T, S) bias). Masks, bias and options must
    /// be the forward's. Deterministic: one task owns a kv head's dK and its query heads' dQ and dBias.
    /// </summary>
    public static void EntropyBackward(in AttentionShape shape, ReadOnlySpan<float> q, AttentionStrides qStrides, ReadOnlySpan<float> k, AttentionStrides kStrides,
        ReadOnlySpan<float> dEntropy, Span<float> dq, AttentionStrides dqStrides, Span<float> dk, AttentionStrides dkStrides,
        in AttentionOptions options = default, in AttentionMask mask = default, Span<float> dBias = default)
    {
        var s = shape;
        CheckForward(s, q, qStrides, k, kStrides, k, kStrides, default, default, options, mask, default, checkOutput: false);
        RefuseDistanceBias(mask, "EntropyBackward");
        CheckEntropyOptions(options);
        CheckLength("dEntropy", dEntropy.Length, (long)s.Batch * s.Heads * s.QueryLength, allowEmpty: false);
        CheckOperand("dQ", dq.Length, dqStrides, s.Batch, s.Heads, s.QueryLength, s.HeadDim, written: true);
        CheckOperand("dK", dk.Length, dkStrides, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim, written: true);
        if (!dBias.IsEmpty && dBias.Length != mask.Bias.Length)
            throw new ArgumentException($"Attention: dBias has {dBias.Length} values, the bias has {mask.Bias.Length}");
        var width = Simd.Current;
        fixed (float* pq = q, pk = k, pde = dEntropy, pbias = mask.Bias, palibi = mask.AlibiSlopes, pdq = dq, pdk = dk, pdb = dBias)
        fixed (int* plen = mask.KeyLengths)
        fixed (byte* pmask = mask.KeyMask)
        {
            var p = MakeProblem(s, options, mask, plen, pmask, pbias, palibi);
            p.Q = pq; p.Qs = qStrides;
            p.K = pk; p.Ks = kStrides;
            p.DO = pde;
            p.DQ = pdq; p.DQs = dqStrides;
            p.DK = pdk; p.DKs = dkStrides;
            p.DBias = pdb;
            bool wholeBatch = p.DBias != null && p.BiasBatchStride == 0;
            int units = wholeBatch ? p.Hkv : p.B * p.Hkv;
            if (units == 0 || p.B == 0) return;
            long work = (long)p.B * p.H * Math.Max(p.T, 1) * Math.Max(p.S, 1) * p.Hd;
            int tasks = Math.Min(units, Partition.Tasks(work, 1 << 15, KernelPool.Default));
            var task = new EntropyBackwardTask { P = p, Width = width, WholeBatch = wholeBatch, Units = units, Tasks = tasks };
            KernelPool.Default.Run(tasks, ref task);
        }
    }

    struct EntropyTask : IParallelTask
    {
        public AttentionProblem P;
        public float* Entropy, Visible;
        public SimdWidth Width;
        public int Units, Tasks;

        public void Execute(int index)
        {
            var (start, end) = Partition.Range(Units, Tasks, index);
            float* sc = AttentionScratch.Get(RoundUp(Math.Max(P.S, 1), Lanes(Width)));
            for (int u = start; u < end; u++)
            {
                int b = u / P.H, h = u % P.H;
                for (int t = 0; t < P.T; t++)
                {
                    long row = ((long)b * P.H + h) * P.T + t;
                    float e = Width switch
                    {
                        SimdWidth.V512 => EntropyRow<AttentionV512, System.Runtime.Intrinsics.Vector512<float>>(P, b, h, t, sc, out _, out _, out _),
                        SimdWidth.V256 => EntropyRow<AttentionV256, System.Runtime.Intrinsics.Vector256<float>>(P, b, h, t, sc, out _, out _, out _),
                        SimdWidth.V128 => EntropyRow<AttentionV128, System.Runtime.Intrinsics.Vector128<float>>(P, b, h, t, sc, out _, out _, out _),
                        _ => EntropyRow<AttentionScalar, float>(P, b, h, t, sc, out _, out _, out _),
                    };
                    Entropy[row] = e;
                    if (Visible != null) Visible[row] = VisibleKeys(P, b, h, t, sc);
                }
            }
        }
    }

    struct EntropyBackwardTask : IParallelTask
    {
        public AttentionProblem P;
        public SimdWidth Width;
        public bool WholeBatch;
        public int Units, Tasks;

        public void Execute(int index)
        {
            var (start, end) = Partition.Range(Units, Tasks, index);
            float* sc = AttentionScratch.Get(RoundUp(Math.Max(P.S, 1), Lanes(Width)));
            for (int u = start; u < end; u++)
            {
                int kvh = u % P.Hkv;
                int bFirst = WholeBatch ? 0 : u / P.Hkv;
                int bEnd = WholeBatch ? P.B : bFirst + 1;
                switch (Width)
                {
                    case SimdWidth.V512: EntropyBackwardKvHead<AttentionV512, System.Runtime.Intrinsics.Vector512<float>>(P, kvh, bFirst, bEnd, sc); break;
                    case SimdWidth.V256: EntropyBackwardKvHead<AttentionV256, System.Runtime.Intrinsics.Vector256<float>>(P, kvh, bFirst, bEnd, sc); break;
                    case SimdWidth.V128: EntropyBackwardKvHead<AttentionV128, System.Runtime.Intrinsics.Vector128<float>>(P, kvh, bFirst, bEnd, sc); break;
                    default: EntropyBackwardKvHead<AttentionScalar, float>(P, kvh, bFirst, bEnd, sc); break;
                }
            }
        }
    }

    /// <summary>
    /// The entropy of row (b, h, t); leaves d_j = max(s_j − max, floor) in sc[0, keyEnd) and gives keyEnd, the
    /// denominator l and the mean u/l. A row that sees no key gives 0 with l = 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float EntropyRow<TIsa, TV>(in AttentionProblem p, int b, int h, int t, float* sc, out int keyEnd, out float l, out float mean)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count;
        keyEnd = p.KeyEnd(b, t);
        l = 0;
        mean = 0;
        if (keyEnd == 0) return 0;
        int kvh = h / p.Group;
        float* q = p.Row(p.Q, p.Qs, b, h, t);
        float* kBase = p.K + (long)b * p.Ks.Batch + (long)kvh * p.Ks.Head;
        RowScores<TIsa, TV, float, F32Row>(q, kBase, p.Ks.Position, null, 0, keyEnd, p.Hd, sc, p.Scale);
        int nPad = RowScoreTerms<TIsa, TV>(p, b, h, t, 0, keyEnd, sc);
        TV mv = TIsa.Splat(float.NegativeInfinity);
        for (int j = 0; j < nPad; j += c) mv = TIsa.Max(mv, TIsa.Load(sc + j));
        float m = TIsa.MaxAcross(mv);
        if (float.IsNegativeInfinity(m))
        {
            for (int j = 0; j < nPad; j++) sc[j] = EntropyFloor;
            return 0;
        }
        TV mV = TIsa.Splat(m), floor = TIsa.Splat(EntropyFloor);
        TV lv = TIsa.Zero, uv = TIsa.Zero;
        for (int j = 0; j < nPad; j += c)
        {
            TV d = TIsa.Max(TIsa.Sub(TIsa.Load(sc + j), mV), floor);
            TV e = TIsa.Exp(d);
            TIsa.Store(sc + j, d);
            lv = TIsa.Add(lv, e);
            uv = TIsa.MulAdd(e, d, uv);
        }
        l = TIsa.Sum(lv);
        mean = TIsa.Sum(uv) / l;
        return MathF.Log(l) - mean;
    }

    // Keys row (b, h, t) sees, counted after EntropyRow from its scratch (a hidden key sits at the floor).
    static float VisibleKeys(in AttentionProblem p, int b, int h, int t, float* sc)
    {
        int end = p.KeyEnd(b, t), n = 0;
        for (int j = 0; j < end; j++) if (sc[j] > EntropyFloor) n++;
        return n;
    }

    /// <summary>dK of kv head kvh and dQ, dBias of its query heads, for batch items [bFirst, bEnd).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void EntropyBackwardKvHead<TIsa, TV>(in AttentionProblem p, int kvh, int bFirst, int bEnd, float* sc)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count, hd = p.Hd, T = p.T, S = p.S, g0 = kvh * p.Group;
        long biasHead = (long)T * S;
        if (p.DBias != null && p.BiasBatchStride == 0)
            new Span<float>(p.DBias + g0 * biasHead, checked((int)(p.Group * biasHead))).Clear();
        for (int b = bFirst; b < bEnd; b++)
        {
            for (int j = 0; j < S; j++) new Span<float>(p.Row(p.DK, p.DKs, b, kvh, j), hd).Clear();
            float* kBase = p.K + (long)b * p.Ks.Batch + (long)kvh * p.Ks.Head;
            float* dkBase = p.DK + (long)b * p.DKs.Batch + (long)kvh * p.DKs.Head;
            for (int g = 0; g < p.Group; g++)
            {
                int h = g0 + g;
                float* dBiasHead = p.DBias == null ? null : p.DBias + b * p.BiasBatchStride + h * biasHead;
                if (dBiasHead != null && p.BiasBatchStride != 0) new Span<float>(dBiasHead, checked((int)biasHead)).Clear();
                for (int t = 0; t < T; t++)
                {
                    float* dqRow = p.Row(p.DQ, p.DQs, b, h, t);
                    new Span<float>(dqRow, hd).Clear();
                    float gRow = p.DO[((long)b * p.H + h) * T + t];
                    EntropyRow<TIsa, TV>(p, b, h, t, sc, out int keyEnd, out float l, out float mean);
                    if (l == 0 || gRow == 0) continue;
                    // sc[j] = ∂(g·H)/∂s_j = −g·p_j·(d_j − mean), with p_j = e_j / l.
                    TV coef = TIsa.Splat(-gRow / l), meanV = TIsa.Splat(mean);
                    int nPad = RoundUp(keyEnd, c);
                    for (int j = 0; j < nPad; j += c)
                    {
                        TV d = TIsa.Load(sc + j);
                        TIsa.Store(sc + j, TIsa.Mul(TIsa.Mul(coef, TIsa.Exp(d)), TIsa.Sub(d, meanV)));
                    }
                    if (dBiasHead != null)
                    {
                        float* br = dBiasHead + (long)t * S;
                        for (int j = 0; j < keyEnd; j++) br[j] += sc[j];
                    }
                    // dQ_t = scale·Σ_j dS_j·K_j;  dK_j += scale·dS_j·Q_t.
                    RowAccumulate<TIsa, TV, float, F32Row>(dqRow, sc, kBase, p.Ks.Position, keyEnd, hd, 1f);
                    TV scaleV = TIsa.Splat(p.Scale);
                    int d0 = 0;
                    for (; d0 + c <= hd; d0 += c) TIsa.Store(dqRow + d0, TIsa.Mul(TIsa.Load(dqRow + d0), scaleV));
                    for (; d0 < hd; d0++) dqRow[d0] *= p.Scale;
                    float* q = p.Row(p.Q, p.Qs, b, h, t);
                    for (int j = 0; j < keyEnd; j++)
                    {
                        float a = p.Scale * sc[j];
                        if (a == 0) continue;
                        float* dkRow = dkBase + j * p.DKs.Position;
                        TV av = TIsa.Splat(a);
                        int d = 0;
                        for (; d + c <= hd; d += c) TIsa.Store(dkRow + d, TIsa.MulAdd(av, TIsa.Load(q + d), TIsa.Load(dkRow + d)));
                        for (; d < hd; d++) dkRow[d] += a * q[d];
                    }
                }
            }
        }
    }
}
