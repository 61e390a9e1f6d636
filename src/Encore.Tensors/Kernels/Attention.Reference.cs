using System.Runtime.CompilerServices;

namespace Encore.Tensors.Kernels;

// The specification: every score of a row materialized in double, a plain two-pass softmax, no
// tiling. The fast paths are tested against it; the backward one is itself checked against
// finite differences of the forward one.
public static partial class Attention
{
    /// <summary>Scalar reference of <see cref="Forward"/>, same arguments and results, computed in double.</summary>
    public static void Reference(in AttentionShape shape, in AttentionInputs inputs,
        Span<float> output, AttentionStrides outputStrides,
        in AttentionOptions options = default, in AttentionMask mask = default,
        Span<float> logSumExp = default)
    {
        ReadOnlySpan<float> q = inputs.Q, k = inputs.K, v = inputs.V;
        AttentionStrides qStrides = inputs.QStrides, kStrides = inputs.KStrides, vStrides = inputs.VStrides;
        CheckForward(shape, q, qStrides, k, kStrides, v, vStrides, output, outputStrides, options, mask, logSumExp);
        var s = shape;
        var o = new double[(long)s.Batch * s.Heads * s.QueryLength * s.HeadDim];
        var lse = new double[(long)s.Batch * s.Heads * s.QueryLength];
        ReferenceCore(s,
            Gather(q, qStrides, s.Batch, s.Heads, s.QueryLength, s.HeadDim),
            Gather(k, kStrides, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim),
            Gather(v, vStrides, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim),
            ReferenceBias(s, mask), options, mask, o, lse);
        Scatter(o, output, outputStrides, s.Batch, s.Heads, s.QueryLength, s.HeadDim);
        if (!logSumExp.IsEmpty)
            for (int i = 0; i < lse.Length; i++) logSumExp[i] = (float)lse[i];
    }

    /// <summary>
    /// The additive bias as the core reads it, in the layout of <see cref="AttentionMask.Bias"/>: the bias, plus the
    /// distance bias written out at every (t, j) of every head (and batch item, for a (B, H, T, S) bias).
    /// </summary>
    static double[]? ReferenceBias(in AttentionShape s, in AttentionMask mask)
    {
        if (mask.DistanceBias.IsEmpty) return mask.Bias.IsEmpty ? null : ToDouble(mask.Bias);
        int t = s.QueryLength, keys = s.KeyLength, width = t + keys - 1;
        long perHead = (long)s.Heads * t * keys;
        var bias = mask.Bias.IsEmpty ? new double[perHead] : ToDouble(mask.Bias);
        for (long at = 0; at < bias.Length; at += perHead)
            for (int h = 0; h < s.Heads; h++)
                for (int i = 0; i < t; i++)
                    for (int j = 0; j < keys; j++)
                        bias[at + ((long)h * t + i) * keys + j] += mask.DistanceBias[h * width + i - j + keys - 1];
        return bias;
    }

    /// <summary>
    /// Scalar reference of <see cref="Backward"/>, in double. It recomputes the probabilities from
    /// Q, K and V instead of trusting a forward's output and log-sum-exp, so it needs neither.
    /// </summary>
    public static void BackwardReference(in AttentionShape shape, in AttentionInputs inputs,
        ReadOnlySpan<float> dOutput, AttentionStrides dOutputStrides, in AttentionGradients gradients,
        in AttentionOptions options = default, in AttentionMask mask = default,
        Span<float> dBias = default)
    {
        ReadOnlySpan<float> q = inputs.Q, k = inputs.K, v = inputs.V;
        AttentionStrides qStrides = inputs.QStrides, kStrides = inputs.KStrides, vStrides = inputs.VStrides;
        Span<float> dq = gradients.DQ, dk = gradients.DK, dv = gradients.DV;
        AttentionStrides dqStrides = gradients.DQStrides, dkStrides = gradients.DKStrides, dvStrides = gradients.DVStrides;
        var s = shape;
        CheckForward(s, q, qStrides, k, kStrides, v, vStrides, default, default, options, mask, default, checkOutput: false);
        RefuseDistanceBias(mask, "BackwardReference");
        CheckOperand("dOutput", dOutput.Length, dOutputStrides, s.Batch, s.Heads, s.QueryLength, s.HeadDim);
        CheckOperand("dQ", dq.Length, dqStrides, s.Batch, s.Heads, s.QueryLength, s.HeadDim);
        CheckOperand("dK", dk.Length, dkStrides, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim);
        CheckOperand("dV", dv.Length, dvStrides, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim);
        if (!dBias.IsEmpty && dBias.Length != mask.Bias.Length)
            throw new ArgumentException($"Attention: dBias has {dBias.Length} values, the bias has {mask.Bias.Length}");
        var gq = new double[(long)s.Batch * s.Heads * s.QueryLength * s.HeadDim];
        var gk = new double[(long)s.Batch * s.KvHeads * s.KeyLength * s.HeadDim];
        var gv = new double[gk.Length];
        var gb = dBias.IsEmpty ? null : new double[dBias.Length];
        BackwardReferenceCore(s,
            Gather(q, qStrides, s.Batch, s.Heads, s.QueryLength, s.HeadDim),
            Gather(k, kStrides, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim),
            Gather(v, vStrides, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim),
            mask.Bias.IsEmpty ? null : ToDouble(mask.Bias),
            Gather(dOutput, dOutputStrides, s.Batch, s.Heads, s.QueryLength, s.HeadDim),
            options, mask, gq, gk, gv, gb);
        Scatter(gq, dq, dqStrides, s.Batch, s.Heads, s.QueryLength, s.HeadDim);
        Scatter(gk, dk, dkStrides, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim);
        Scatter(gv, dv, dvStrides, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim);
        if (gb != null)
            for (int i = 0; i < gb.Length; i++) dBias[i] = (float)gb[i];
    }

    /// <summary>
    /// Probabilities of row (b, h, t) into <paramref name="p"/> (S); returns the log-sum-exp, −∞ and
    /// all zeros when no key is visible. Operands are packed (B, heads, L, hd) doubles.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static double ReferenceRow(in AttentionShape s, double[] q, double[] k, double[]? bias, in AttentionOptions options,
        in AttentionMask mask, int b, int h, int t, double[] p)
    {
        int hd = s.HeadDim, S = s.KeyLength, T = s.QueryLength;
        int kvh = h / (s.Heads / s.KvHeads);
        double scale = options.ResolveScale(hd);
        long perHead = (long)s.Heads * T * S;
        long biasBatch = bias != null && bias.Length > perHead ? perHead : 0;
        long qPos = (long)t + options.QueryOffset;
        long qOff = (((long)b * s.Heads + h) * T + t) * hd;
        double max = double.NegativeInfinity;
        for (int j = 0; j < S; j++)
        {
            bool visible = (mask.KeyLengths.IsEmpty || j < mask.KeyLengths[b])
                && (mask.KeyMask.IsEmpty || mask.KeyMask[b * S + j] != 0)
                && (!options.Causal || j <= qPos)
                && (options.Window == 0 || (WindowPosition(s, options, mask, b, t) - j < options.Window && (options.Causal || j - qPos < options.Window)));
            if (!visible) { p[j] = double.NegativeInfinity; continue; }
            long kOff = (((long)b * s.KvHeads + kvh) * S + j) * hd;
            double dot = 0;
            for (int d = 0; d < hd; d++) dot += q[qOff + d] * k[kOff + d];
            double score = scale * dot;
            if (options.SoftCap > 0) score = options.SoftCap * Math.Tanh(score / options.SoftCap);
            if (bias != null) score += bias[b * biasBatch + ((long)h * T + t) * S + j];
            if (!mask.AlibiSlopes.IsEmpty) score += mask.AlibiSlopes[h] * (double)(j - qPos);
            p[j] = score;
            max = Math.Max(max, score);
        }
        if (double.IsNegativeInfinity(max))
        {
            Array.Clear(p, 0, S);
            return double.NegativeInfinity;
        }
        double sum = 0;
        for (int j = 0; j < S; j++) sum += p[j] = Math.Exp(p[j] - max);
        for (int j = 0; j < S; j++) p[j] /= sum;
        return max + Math.Log(sum);
    }

    // The position a window counts back from: a causal row's last visible key (its own position, or its
    // cache length − 1 in a batch-cache row), a bidirectional row's own position.
    static long WindowPosition(in AttentionShape s, in AttentionOptions options, in AttentionMask mask, int b, int t)
    {
        long qPos = (long)t + options.QueryOffset;
        if (!options.Causal) return qPos;
        long limit = mask.KeyLengths.IsEmpty ? s.KeyLength : mask.KeyLengths[b];
        return Math.Min(qPos, limit - 1);
    }

    /// <summary>The forward on packed double operands (the finite-difference tests call it directly).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ReferenceCore(in AttentionShape s, double[] q, double[] k, double[] v, double[]? bias,
        in AttentionOptions options, in AttentionMask mask, double[] output, double[] lse)
    {
        int hd = s.HeadDim, S = s.KeyLength, T = s.QueryLength;
        var p = new double[S];
        for (int b = 0; b < s.Batch; b++)
        for (int h = 0; h < s.Heads; h++)
        {
            int kvh = h / (s.Heads / s.KvHeads);
            for (int t = 0; t < T; t++)
            {
                long row = ((long)b * s.Heads + h) * T + t;
                lse[row] = ReferenceRow(s, q, k, bias, options, mask, b, h, t, p);
                for (int d = 0; d < hd; d++)
                {
                    double acc = 0;
                    for (int j = 0; j < S; j++) acc += p[j] * v[(((long)b * s.KvHeads + kvh) * S + j) * hd + d];
                    output[row * hd + d] = acc;
                }
            }
        }
    }

    /// <summary>
    /// The backward on packed double operands: dS = P∘(dP − rowsum(P∘dP)), dQ = scale·dS'·K, dK = scale·dS'ᵀ·Q,
    /// dV = Pᵀ·dO, dBias = dS, where dS' = dS, or dS∘(1 − tanh²(s/cap)) under a soft cap.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void BackwardReferenceCore(in AttentionShape s, double[] q, double[] k, double[] v, double[]? bias,
        double[] dOut, in AttentionOptions options, in AttentionMask mask,
        double[] dq, double[] dk, double[] dv, double[]? dBias)
    {
        int hd = s.HeadDim, S = s.KeyLength, T = s.QueryLength;
        double scale = options.ResolveScale(hd);
        long perHead = (long)s.Heads * T * S;
        long biasBatch = bias != null && bias.Length > perHead ? perHead : 0;
        Array.Clear(dq); Array.Clear(dk); Array.Clear(dv);
        if (dBias != null) Array.Clear(dBias);
        var p = new double[S];
        var dp = new double[S];
        for (int b = 0; b < s.Batch; b++)
        for (int h = 0; h < s.Heads; h++)
        {
            int kvh = h / (s.Heads / s.KvHeads);
            for (int t = 0; t < T; t++)
            {
                ReferenceRow(s, q, k, bias, options, mask, b, h, t, p);
                long qOff = (((long)b * s.Heads + h) * T + t) * hd;
                double rowDot = 0;
                for (int j = 0; j < S; j++)
                {
                    long vOff = (((long)b * s.KvHeads + kvh) * S + j) * hd;
                    double acc = 0;
                    for (int d = 0; d < hd; d++) acc += dOut[qOff + d] * v[vOff + d];
                    dp[j] = acc;
                    rowDot += p[j] * acc;
                }
                for (int j = 0; j < S; j++)
                {
                    if (p[j] == 0) continue;
                    long kOff = (((long)b * s.KvHeads + kvh) * S + j) * hd;
                    double ds = p[j] * (dp[j] - rowDot);
                    double dRaw = ds;
                    if (options.SoftCap > 0)
                    {
                        double dot = 0;
                        for (int d = 0; d < hd; d++) dot += q[qOff + d] * k[kOff + d];
                        double th = Math.Tanh(scale * dot / options.SoftCap);
                        dRaw = ds * (1 - th * th);
                    }
                    for (int d = 0; d < hd; d++)
                    {
                        dq[qOff + d] += scale * dRaw * k[kOff + d];
                        dk[kOff + d] += scale * dRaw * q[qOff + d];
                        dv[kOff + d] += p[j] * dOut[qOff + d];
                    }
                    if (dBias != null) dBias[b * biasBatch + ((long)h * T + t) * S + j] += ds;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static double[] Gather(ReadOnlySpan<float> x, AttentionStrides st, int batch, int heads, int rows, int hd)
    {
        var r = new double[(long)batch * heads * rows * hd];
        long i = 0;
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
        for (int t = 0; t < rows; t++)
        for (int d = 0; d < hd; d++)
            r[i++] = x[(int)((long)b * st.Batch + (long)h * st.Head + (long)t * st.Position + d)];
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Scatter(double[] r, Span<float> x, AttentionStrides st, int batch, int heads, int rows, int hd)
    {
        long i = 0;
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
        for (int t = 0; t < rows; t++)
        for (int d = 0; d < hd; d++)
            x[(int)((long)b * st.Batch + (long)h * st.Head + (long)t * st.Position + d)] = (float)r[i++];
    }

    static double[] ToDouble(ReadOnlySpan<float> x)
    {
        var r = new double[x.Length];
        for (int i = 0; i < x.Length; i++) r[i] = x[i];
        return r;
    }
}
