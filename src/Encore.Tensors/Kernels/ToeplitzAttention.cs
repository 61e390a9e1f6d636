// URPE attention (Luo et al., "Your Transformer May Not be as Powerful as You Expect", arXiv 2205.13401,
// NeurIPS 2022): out = (softmax(scale·Q·Kᵀ + B) ⊙ C)·V, where C_ij = c[i − j] is a learnable Toeplitz
// matrix per head, applied elementwise to the attention probabilities after the softmax and without
// renormalizing, so a row's weights need no longer sum to 1 (that is what makes relative-position
// attention universal). Distances beyond the table's reach share its last coefficient.
// The probabilities of a row are materialized (S floats of scratch per row, not T·S), since ⊙ C
// breaks the single-pass rescaling of the flash kernels. Backward: with P the probabilities,
// dP = C ⊙ (dO·Vᵀ), dS = P ⊙ (dP − rowsum(P ⊙ dP)), dC[r] = Σ_{i−j=r} P_ij·(dO_i·v_j).

using System.Numerics.Tensors;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

/// <summary>
/// The Toeplitz coefficients of <see cref="ToeplitzAttention"/>: (H, width) packed. A bidirectional
/// table covers distances i − j in [−M, M] at index i − j + M (width 2M + 1); a causal one covers
/// [0, M] at index i − j (width M + 1). Distances past M use the coefficient of ±M.
/// </summary>
public readonly ref struct ToeplitzWeights(ReadOnlySpan<float> values, int width, bool bidirectional)
{
    /// <summary>(H, width) coefficients.</summary>
    public ReadOnlySpan<float> Values { get; } = values;
    /// <summary>Coefficients per head.</summary>
    public int Width { get; } = width;
    /// <summary>True when distances of both signs have coefficients.</summary>
    public bool Bidirectional { get; } = bidirectional;

    /// <summary>M, the largest distance with its own coefficient.</summary>
    public int MaxDistance => Bidirectional ? (Width - 1) / 2 : Width - 1;

    /// <summary>Index of distance <paramref name="d"/> = query position − key position in a head's row.</summary>
    public static int Index(long d, int maxDistance, bool bidirectional)
        => bidirectional ? (int)(Math.Clamp(d, -maxDistance, maxDistance) + maxDistance) : (int)Math.Clamp(d, 0, maxDistance);
}

/// <summary>Attention with post-softmax Toeplitz weights (URPE; see the file header).</summary>
public static unsafe class ToeplitzAttention
{
    /// <summary>
    /// out = (softmax(scale·Q·Kᵀ + bias + masks) ⊙ C)·V over the layouts of <see cref="Attention.Forward"/>.
    /// Query t of batch item b sits at position <paramref name="queryOffsets"/>[b] + t (empty: the options'
    /// QueryOffset + t) for both causality and the Toeplitz distance. Supports key lengths, key masks, the
    /// additive bias and causality; ALiBi is not supported. Writes the log-sum-exp of each row (of the
    /// softmax, before ⊙ C) when <paramref name="logSumExp"/> is not empty. Vectorized with TensorPrimitives;
    /// <see cref="ForwardNaive"/> is the scalar specification.
    /// </summary>
    public static void Forward(in AttentionShape shape, in AttentionInputs inputs, Span<float> output, AttentionStrides outputStrides,
        in ToeplitzWeights weights, in AttentionOptions options = default, in AttentionMask mask = default,
        ReadOnlySpan<int> queryOffsets = default, Span<float> logSumExp = default)
        => Run(shape, inputs, output, outputStrides, weights, options, mask, queryOffsets, logSumExp, naive: false);

    /// <summary>The scalar twin of <see cref="Forward"/>: plain loops, one row at a time.</summary>
    public static void ForwardNaive(in AttentionShape shape, in AttentionInputs inputs, Span<float> output, AttentionStrides outputStrides,
        in ToeplitzWeights weights, in AttentionOptions options = default, in AttentionMask mask = default,
        ReadOnlySpan<int> queryOffsets = default, Span<float> logSumExp = default)
        => Run(shape, inputs, output, outputStrides, weights, options, mask, queryOffsets, logSumExp, naive: true);

    static void Run(in AttentionShape shape, in AttentionInputs inputs, Span<float> output, AttentionStrides outputStrides,
        in ToeplitzWeights weights, in AttentionOptions options, in AttentionMask mask,
        ReadOnlySpan<int> queryOffsets, Span<float> logSumExp, bool naive)
    {
        Check(shape, inputs, output, outputStrides, weights, mask, queryOffsets);
        if (!logSumExp.IsEmpty && logSumExp.Length != (long)shape.Batch * shape.Heads * shape.QueryLength)
            throw new ArgumentException($"ToeplitzAttention: log-sum-exp has {logSumExp.Length} values, expected B·H·T");
        if ((long)shape.Batch * shape.Heads * shape.QueryLength == 0) return;
        fixed (float* pq = inputs.Q, pk = inputs.K, pv = inputs.V, po = output, plse = logSumExp, pbias = mask.Bias, pc = weights.Values)
        fixed (int* plen = mask.KeyLengths, poff = queryOffsets)
        fixed (byte* pmask = mask.KeyMask)
        {
            var p = Problem(shape, inputs, options, mask, weights, plen, pmask, pbias, pc, poff, queryOffsets.IsEmpty);
            p.Q = pq; p.K = pk; p.V = pv; p.O = po; p.Os = outputStrides; p.Lse = logSumExp.IsEmpty ? null : plse;
            int units = shape.Batch * shape.Heads;
            long work = (long)units * shape.QueryLength * Math.Max(1, shape.KeyLength) * shape.HeadDim;
            int tasks = naive ? 1 : Math.Min(units, Partition.Tasks(work, 1 << 16, KernelPool.Default));
            var task = new ForwardTask { P = p, Units = units, Tasks = tasks, Naive = naive };
            KernelPool.Default.Run(tasks, ref task);
        }
    }

    /// <summary>
    /// Gradients of <see cref="Forward"/>: writes (overwrites) dQ, dK, dV, dC (H, width) and, when not
    /// empty, dBias in the bias's layout. Needs the forward's log-sum-exp. Deterministic: each gradient
    /// element is summed in a fixed order whatever the thread count.
    /// </summary>
    public static void Backward(in AttentionShape shape, in AttentionInputs inputs, ReadOnlySpan<float> dOutput, AttentionStrides dOutputStrides,
        ReadOnlySpan<float> logSumExp, in AttentionGradients gradients, in ToeplitzWeights weights, Span<float> dWeights,
        in AttentionOptions options = default, in AttentionMask mask = default, ReadOnlySpan<int> queryOffsets = default, Span<float> dBias = default)
    {
        Check(shape, inputs, default, default, weights, mask, queryOffsets, checkOutput: false);
        if (logSumExp.Length != (long)shape.Batch * shape.Heads * shape.QueryLength)
            throw new ArgumentException($"ToeplitzAttention: log-sum-exp has {logSumExp.Length} values, expected B·H·T");
        if (dWeights.Length != weights.Values.Length) throw new ArgumentException($"ToeplitzAttention: dC has {dWeights.Length} values, C has {weights.Values.Length}");
        if (!dBias.IsEmpty && dBias.Length != mask.Bias.Length) throw new ArgumentException($"ToeplitzAttention: dBias has {dBias.Length} values, the bias has {mask.Bias.Length}");
        CheckOperand("dOutput", dOutput.Length, dOutputStrides, shape.Batch, shape.Heads, shape.QueryLength, shape.HeadDim);
        CheckOperand("dQ", gradients.DQ.Length, gradients.DQStrides, shape.Batch, shape.Heads, shape.QueryLength, shape.HeadDim);
        CheckOperand("dK", gradients.DK.Length, gradients.DKStrides, shape.Batch, shape.KvHeads, shape.KeyLength, shape.HeadDim);
        CheckOperand("dV", gradients.DV.Length, gradients.DVStrides, shape.Batch, shape.KvHeads, shape.KeyLength, shape.HeadDim);
        fixed (float* pq = inputs.Q, pk = inputs.K, pv = inputs.V, pdo = dOutput, plse = logSumExp, pbias = mask.Bias, pc = weights.Values)
        fixed (float* pdq = gradients.DQ, pdk = gradients.DK, pdv = gradients.DV, pdc = dWeights, pdb = dBias)
        fixed (int* plen = mask.KeyLengths, poff = queryOffsets)
        fixed (byte* pmask = mask.KeyMask)
        {
            var p = Problem(shape, inputs, options, mask, weights, plen, pmask, pbias, pc, poff, queryOffsets.IsEmpty);
            p.Q = pq; p.K = pk; p.V = pv; p.Lse = plse;
            p.DO = pdo; p.DOs = dOutputStrides;
            p.DQ = pdq; p.DQs = gradients.DQStrides;
            p.DK = pdk; p.DKs = gradients.DKStrides;
            p.DV = pdv; p.DVs = gradients.DVStrides;
            p.DC = pdc;
            p.DBias = dBias.IsEmpty ? null : pdb;
            // A kv head owns its keys' and values' gradients, and the coefficients and bias rows of the
            // query heads that read it, so tasks never write the same element.
            var task = new BackwardTask { P = p };
            KernelPool.Default.Run(shape.KvHeads, ref task);
        }
    }

    struct Prob
    {
        public int B, H, Hkv, T, S, Hd, Group, Width, MaxDistance, Offset;
        public bool Bidirectional, Causal;
        public float Scale;
        public float* Q, K, V, O, Lse, Bias, C, DO, DQ, DK, DV, DC, DBias;
        public AttentionStrides Qs, Ks, Vs, Os, DOs, DQs, DKs, DVs;
        public int* KeyLengths, QueryOffsets;
        public byte* KeyMask;
        public long BiasBatchStride;

        public readonly float* Row(float* basePtr, AttentionStrides st, int b, int h, int t)
            => basePtr + (long)b * st.Batch + (long)h * st.Head + (long)t * st.Position;

        public readonly long QueryPosition(int b, int t) => (QueryOffsets == null ? Offset : QueryOffsets[b]) + (long)t;

        public readonly int KeyEnd(int b, int t)
        {
            int limit = KeyLengths == null ? S : KeyLengths[b];
            return Causal ? (int)Math.Clamp(QueryPosition(b, t) + 1, 0, limit) : limit;
        }

        public readonly float Coefficient(int h, long queryPosition, int key)
            => C[(long)h * Width + ToeplitzWeights.Index(queryPosition - key, MaxDistance, Bidirectional)];

        // Scores of row (b, h, t) over keys [0, end) into s; masked keys −∞.
        public readonly void Scores(int b, int h, int t, int end, float* s, bool naive)
        {
            float* q = Row(Q, Qs, b, h, t);
            int kvh = h / Group;
            var qs = new ReadOnlySpan<float>(q, Hd);
            for (int j = 0; j < end; j++)
            {
                float* k = Row(K, Ks, b, kvh, j);
                float dot;
                if (naive)
                {
                    dot = 0;
                    for (int d = 0; d < Hd; d++) dot += q[d] * k[d];
                }
                else dot = TensorPrimitives.Dot(qs, new ReadOnlySpan<float>(k, Hd));
                s[j] = dot * Scale;
            }
            if (Bias != null)
            {
                float* br = Bias + b * BiasBatchStride + ((long)h * T + t) * S;
                for (int j = 0; j < end; j++) s[j] += br[j];
            }
            if (KeyMask != null)
            {
                byte* km = KeyMask + (long)b * S;
                for (int j = 0; j < end; j++) if (km[j] == 0) s[j] = float.NegativeInfinity;
            }
        }
    }

    static Prob Problem(in AttentionShape shape, in AttentionInputs inputs, in AttentionOptions options, in AttentionMask mask, in ToeplitzWeights weights,
        int* lengths, byte* keyMask, float* bias, float* c, int* offsets, bool noOffsets)
    {
        if (options.SoftCap != 0 || options.Window != 0) throw new ArgumentException("ToeplitzAttention: soft caps and sliding windows are not supported");
        long perHead = (long)shape.Heads * shape.QueryLength * shape.KeyLength;
        return new Prob
        {
            B = shape.Batch, H = shape.Heads, Hkv = shape.KvHeads, T = shape.QueryLength, S = shape.KeyLength, Hd = shape.HeadDim,
            Group = shape.Heads / shape.KvHeads,
            Width = weights.Width, MaxDistance = weights.MaxDistance, Bidirectional = weights.Bidirectional,
            Causal = options.Causal, Offset = options.QueryOffset,
            Scale = options.Scale ?? 1f / MathF.Sqrt(shape.HeadDim),
            Qs = inputs.QStrides, Ks = inputs.KStrides, Vs = inputs.VStrides,
            KeyLengths = mask.KeyLengths.IsEmpty ? null : lengths,
            KeyMask = mask.KeyMask.IsEmpty ? null : keyMask,
            Bias = mask.Bias.IsEmpty ? null : bias,
            BiasBatchStride = mask.Bias.Length > perHead ? perHead : 0,
            C = c,
            QueryOffsets = noOffsets ? null : offsets,
        };
    }

    [ThreadStatic] static float[]? t_scratch;

    static float* Scratch(int floats)
    {
        var b = t_scratch;
        if (b is null || b.Length < floats)
        {
            b = GC.AllocateUninitializedArray<float>(Math.Max(floats, 1024), pinned: true);
            t_scratch = b;
        }
        return (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(b));
    }

    struct ForwardTask : IParallelTask
    {
        public Prob P;
        public int Units, Tasks;
        public bool Naive;

        public void Execute(int index)
        {
            var (start, end) = Partition.Range(Units, Tasks, index);
            float* s = Scratch(Math.Max(1, P.S));
            for (int u = start; u < end; u++)
            {
                int b = u / P.H, h = u % P.H;
                for (int t = 0; t < P.T; t++) ForwardRow(P, b, h, t, s, Naive);
            }
        }
    }

    static void ForwardRow(in Prob p, int b, int h, int t, float* s, bool naive)
    {
        int end = p.KeyEnd(b, t), hd = p.Hd, kvh = h / p.Group;
        float* o = p.Row(p.O, p.Os, b, h, t);
        var os = new Span<float>(o, hd);
        os.Clear();
        p.Scores(b, h, t, end, s, naive);
        var ss = new Span<float>(s, end);
        float m = float.NegativeInfinity;
        if (naive) for (int j = 0; j < end; j++) m = MathF.Max(m, s[j]);
        else if (end > 0) m = TensorPrimitives.Max(ss);
        float* lse = p.Lse == null ? null : p.Lse + ((long)b * p.H + h) * p.T + t;
        if (float.IsNegativeInfinity(m) || end == 0)
        {
            if (lse != null) *lse = float.NegativeInfinity;
            return;
        }
        float l = 0;
        if (naive)
        {
            for (int j = 0; j < end; j++)
            {
                s[j] = MathF.Exp(s[j] - m);
                l += s[j];
            }
        }
        else
        {
            TensorPrimitives.Subtract(ss, m, ss);
            TensorPrimitives.Exp(ss, ss);
            l = TensorPrimitives.Sum(ss);
        }
        float inv = 1f / l;
        long qpos = p.QueryPosition(b, t);
        for (int j = 0; j < end; j++)
        {
            float w = s[j] * inv * p.Coefficient(h, qpos, j);
            if (w == 0) continue;
            float* v = p.Row(p.V, p.Vs, b, kvh, j);
            if (naive) for (int d = 0; d < hd; d++) o[d] += w * v[d];
            else TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(v, hd), w, os, os);
        }
        if (lse != null) *lse = m + MathF.Log(l);
    }

    struct BackwardTask : IParallelTask
    {
        public Prob P;

        public void Execute(int g)
        {
            int hd = P.Hd, s = P.S;
            float* pr = Scratch(2 * Math.Max(1, s));
            float* dpv = pr + Math.Max(1, s);
            for (int b = 0; b < P.B; b++)
                for (int j = 0; j < s; j++)
                {
                    new Span<float>(P.Row(P.DK, P.DKs, b, g, j), hd).Clear();
                    new Span<float>(P.Row(P.DV, P.DVs, b, g, j), hd).Clear();
                }
            for (int h = g * P.Group; h < (g + 1) * P.Group; h++)
            {
                new Span<float>(P.DC + (long)h * P.Width, P.Width).Clear();
                if (P.DBias != null)
                {
                    long perHead = (long)P.T * s;
                    for (int b = 0; b < (P.BiasBatchStride == 0 ? 1 : P.B); b++)
                        new Span<float>(P.DBias + b * P.BiasBatchStride + h * perHead, (int)perHead).Clear();
                }
            }
            for (int b = 0; b < P.B; b++)
                for (int h = g * P.Group; h < (g + 1) * P.Group; h++)
                    for (int t = 0; t < P.T; t++) BackwardRow(P, b, h, t, pr, dpv);
        }
    }

    static void BackwardRow(in Prob p, int b, int h, int t, float* pr, float* dpv)
    {
        int hd = p.Hd, kvh = h / p.Group;
        float* dq = p.Row(p.DQ, p.DQs, b, h, t);
        var dqs = new Span<float>(dq, hd);
        dqs.Clear();
        float lse = p.Lse[((long)b * p.H + h) * p.T + t];
        int end = p.KeyEnd(b, t);
        if (end == 0 || float.IsNegativeInfinity(lse)) return;
        p.Scores(b, h, t, end, pr, naive: false);
        var ps = new Span<float>(pr, end);
        TensorPrimitives.Subtract(ps, lse, ps);
        TensorPrimitives.Exp(ps, ps);
        float* q = p.Row(p.Q, p.Qs, b, h, t);
        float* dO = p.Row(p.DO, p.DOs, b, h, t);
        var dos = new ReadOnlySpan<float>(dO, hd);
        var qs = new ReadOnlySpan<float>(q, hd);
        long qpos = p.QueryPosition(b, t);
        float* dc = p.DC + (long)h * p.Width;
        // D = Σ_j P_j·C_j·(dO·v_j), the rowsum of P ⊙ dP.
        float dsum = 0;
        for (int j = 0; j < end; j++)
        {
            dpv[j] = TensorPrimitives.Dot(dos, new ReadOnlySpan<float>(p.Row(p.V, p.Vs, b, kvh, j), hd));
            dsum += pr[j] * p.Coefficient(h, qpos, j) * dpv[j];
        }
        float* db = p.DBias == null ? null : p.DBias + b * p.BiasBatchStride + ((long)h * p.T + t) * p.S;
        for (int j = 0; j < end; j++)
        {
            float pj = pr[j];
            if (pj == 0) continue;
            int idx = ToeplitzWeights.Index(qpos - j, p.MaxDistance, p.Bidirectional);
            float c = p.C[(long)h * p.Width + idx];
            float ds = pj * (c * dpv[j] - dsum);
            dc[idx] += pj * dpv[j];
            var dv = new Span<float>(p.Row(p.DV, p.DVs, b, kvh, j), hd);
            TensorPrimitives.MultiplyAdd(dos, pj * c, dv, dv);
            float* k = p.Row(p.K, p.Ks, b, kvh, j);
            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(k, hd), p.Scale * ds, dqs, dqs);
            var dk = new Span<float>(p.Row(p.DK, p.DKs, b, kvh, j), hd);
            TensorPrimitives.MultiplyAdd(qs, p.Scale * ds, dk, dk);
            if (db != null) db[j] += ds;
        }
    }

    static void Check(in AttentionShape s, in AttentionInputs inputs, ReadOnlySpan<float> output, AttentionStrides outputStrides,
        in ToeplitzWeights weights, in AttentionMask mask, ReadOnlySpan<int> queryOffsets, bool checkOutput = true)
    {
        if (s.Batch < 0 || s.Heads < 0 || s.QueryLength < 0 || s.KeyLength < 0 || s.HeadDim < 1)
            throw new ArgumentException($"ToeplitzAttention: bad sizes {s}");
        if (s.KvHeads < 1 || s.Heads % s.KvHeads != 0)
            throw new ArgumentException($"ToeplitzAttention: H = {s.Heads} must be a multiple of Hkv = {s.KvHeads} ≥ 1");
        CheckOperand("Q", inputs.Q.Length, inputs.QStrides, s.Batch, s.Heads, s.QueryLength, s.HeadDim);
        CheckOperand("K", inputs.K.Length, inputs.KStrides, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim);
        CheckOperand("V", inputs.V.Length, inputs.VStrides, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim);
        if (checkOutput) CheckOperand("output", output.Length, outputStrides, s.Batch, s.Heads, s.QueryLength, s.HeadDim);
        if (weights.Width < 1 || (weights.Bidirectional && weights.Width % 2 == 0) || weights.Values.Length != (long)s.Heads * weights.Width)
            throw new ArgumentException($"ToeplitzAttention: coefficients ({weights.Values.Length} values, width {weights.Width}) must be (H = {s.Heads}, width), width odd when bidirectional");
        if (!mask.AlibiSlopes.IsEmpty) throw new ArgumentException("ToeplitzAttention: ALiBi slopes are not supported");
        if (!mask.DistanceBias.IsEmpty) throw new ArgumentException("ToeplitzAttention: a DistanceBias is not supported; pass the (H, T, S) Bias");
        if (!mask.KeyLengths.IsEmpty)
        {
            if (mask.KeyLengths.Length != s.Batch) throw new ArgumentException($"ToeplitzAttention: KeyLengths has {mask.KeyLengths.Length} values for B = {s.Batch}");
            foreach (int n in mask.KeyLengths)
                if ((uint)n > (uint)s.KeyLength) throw new ArgumentException($"ToeplitzAttention: key length {n} is not in [0, S = {s.KeyLength}]");
        }
        if (!mask.KeyMask.IsEmpty && mask.KeyMask.Length != (long)s.Batch * s.KeyLength)
            throw new ArgumentException($"ToeplitzAttention: KeyMask has {mask.KeyMask.Length} values, expected B·S");
        long perHead = (long)s.Heads * s.QueryLength * s.KeyLength;
        if (!mask.Bias.IsEmpty && mask.Bias.Length != perHead && mask.Bias.Length != s.Batch * perHead)
            throw new ArgumentException($"ToeplitzAttention: Bias has {mask.Bias.Length} values, expected H·T·S = {perHead} or B·H·T·S");
        if (!queryOffsets.IsEmpty && queryOffsets.Length != s.Batch)
            throw new ArgumentException($"ToeplitzAttention: {queryOffsets.Length} query offsets for B = {s.Batch}");
    }

    static void CheckOperand(string name, int length, AttentionStrides st, int batch, int heads, int rows, int hd)
    {
        if (st.Batch < 0 || st.Head < 0 || st.Position < 0) throw new ArgumentException($"ToeplitzAttention: {name} strides {st} must not be negative");
        if (batch == 0 || heads == 0 || rows == 0) return;
        long last = (long)(batch - 1) * st.Batch + (long)(heads - 1) * st.Head + (long)(rows - 1) * st.Position + hd;
        if (last > length) throw new ArgumentException($"ToeplitzAttention: {name} ({batch}, {heads}, {rows}, {hd}) with strides {st} needs {last} values, got {length}");
    }
}
