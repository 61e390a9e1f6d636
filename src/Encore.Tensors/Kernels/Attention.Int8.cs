using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Encore.Tensors.Kernels;

// Attention over int8 keys and values (a quantized KV cache, see Int8Quantizer): every key and value
// vector is stored as hd int8 quants and one binary32 scale, element = scale·quant. Nothing is
// dequantized up front. The row path (decoding) widens each key's quants int8 → int32 → binary32
// in registers and multiplies them with the binary32 query, so a score is scale_j · Σ_d q[d]·k8[j, d]
// (the query is not quantized: the cache's rounding is the only error), and accumulates the output
// as Σ_j (p_j·scale_j)·v8[j] with the values widened the same way. A decoding step then reads a
// quarter of the bytes an f32 cache costs. The tile path (prefill) widens one key block and one
// value block at a time into scratch and runs the f32 tile loops on them. At the scalar width every
// query row takes the row path, so the scalar row kernel is the twin the vector ones are tested against.

/// <summary>
/// Int8 keys or values (B, Hkv, S, hd) of an attention call: the quants with their strides (the
/// last dimension contiguous), and one binary32 scale per (batch item, head, position) with its own
/// strides; element = scale·quant.
/// </summary>
public readonly ref struct AttentionInt8Operand(ReadOnlySpan<sbyte> quants, AttentionStrides quantStrides,
    ReadOnlySpan<float> scales, AttentionStrides scaleStrides)
{
    /// <summary>The quants.</summary>
    public ReadOnlySpan<sbyte> Quants { get; } = quants;
    /// <summary>Strides of <see cref="Quants"/>, in elements.</summary>
    public AttentionStrides QuantStrides { get; } = quantStrides;
    /// <summary>The scales, one per vector.</summary>
    public ReadOnlySpan<float> Scales { get; } = scales;
    /// <summary>Strides of <see cref="Scales"/>, in elements (Position is 1 when a head's scales are packed).</summary>
    public AttentionStrides ScaleStrides { get; } = scaleStrides;
}

public static unsafe partial class Attention
{
    /// <summary>
    /// <see cref="Forward"/> with int8 keys and values: out = softmax(scale·Q·Kᵀ + bias + masks)·V
    /// where K and V are the dequantized <paramref name="k"/> and <paramref name="v"/>. Same masks,
    /// options and log-sum-exp as <see cref="Forward"/>; the result equals <see cref="Forward"/> on the
    /// dequantized operands up to binary32 rounding (the sums run in a different order).
    /// </summary>
    public static void ForwardInt8(in AttentionShape shape, ReadOnlySpan<float> q, AttentionStrides qStrides,
        in AttentionInt8Operand k, in AttentionInt8Operand v,
        Span<float> output, AttentionStrides outputStrides,
        in AttentionOptions options = default, in AttentionMask mask = default,
        Span<float> logSumExp = default)
    {
        CheckForward(shape, q, qStrides, default, default, default, default, output, outputStrides, options, mask, logSumExp, checkKeyValues: false);
        CheckOperand("K quants", k.Quants.Length, k.QuantStrides, shape.Batch, shape.KvHeads, shape.KeyLength, shape.HeadDim);
        CheckOperand("K scales", k.Scales.Length, k.ScaleStrides, shape.Batch, shape.KvHeads, shape.KeyLength, 1);
        CheckOperand("V quants", v.Quants.Length, v.QuantStrides, shape.Batch, shape.KvHeads, shape.KeyLength, shape.HeadDim);
        CheckOperand("V scales", v.Scales.Length, v.ScaleStrides, shape.Batch, shape.KvHeads, shape.KeyLength, 1);
        var width = Simd.Current;
        fixed (float* pq = q, po = output, plse = logSumExp, pbias = mask.Bias, palibi = mask.AlibiSlopes, pdist = mask.DistanceBias)
        fixed (sbyte* pk = k.Quants, pv = v.Quants)
        fixed (float* pks = k.Scales, pvs = v.Scales)
        fixed (int* plen = mask.KeyLengths)
        fixed (byte* pmask = mask.KeyMask)
        {
            var p = MakeProblem(shape, options, mask, plen, pmask, pbias, palibi, pdist);
            p.Q = pq; p.Qs = qStrides;
            p.K8 = pk; p.Ks = k.QuantStrides;
            p.KScale = pks; p.KScales = k.ScaleStrides;
            p.V8 = pv; p.Vs = v.QuantStrides;
            p.VScale = pvs; p.VScales = v.ScaleStrides;
            p.O = po; p.Os = outputStrides;
            p.Lse = plse;
            RunForward(ref p, width, int8: true);
        }
    }
}

/// <summary>
/// Where the tile path finds a block of keys or values as binary32 rows: in place (f32 operands) or
/// widened into the given scratch (int8 operands). A struct per source, so the JIT specializes the
/// tile loop for each and the f32 path pays nothing.
/// </summary>
internal unsafe interface IAttentionBlocks
{
    /// <summary>Keys [kb, kb + nk) of batch item b, kv head kvh: their first row, and the row stride in <paramref name="stride"/>.</summary>
    static abstract float* Keys<TIsa, TV>(in AttentionProblem p, int b, int kvh, int kb, int nk, float* scratch, out long stride)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct;

    /// <summary>Values [kb, kb + nk), as <see cref="Keys"/>.</summary>
    static abstract float* Values<TIsa, TV>(in AttentionProblem p, int b, int kvh, int kb, int nk, float* scratch, out long stride)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct;
}

/// <summary>Binary32 keys and values, read in place.</summary>
internal readonly unsafe struct F32Blocks : IAttentionBlocks
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float* Keys<TIsa, TV>(in AttentionProblem p, int b, int kvh, int kb, int nk, float* scratch, out long stride)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        stride = p.Ks.Position;
        return p.K + (long)b * p.Ks.Batch + (long)kvh * p.Ks.Head + kb * stride;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float* Values<TIsa, TV>(in AttentionProblem p, int b, int kvh, int kb, int nk, float* scratch, out long stride)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        stride = p.Vs.Position;
        return p.V + (long)b * p.Vs.Batch + (long)kvh * p.Vs.Head + kb * stride;
    }
}

/// <summary>Int8 keys and values, widened block by block into scratch (nk, hd).</summary>
internal readonly unsafe struct Int8Blocks : IAttentionBlocks
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float* Keys<TIsa, TV>(in AttentionProblem p, int b, int kvh, int kb, int nk, float* scratch, out long stride)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        stride = p.Hd;
        Widen<TIsa, TV>(p.K8 + (long)b * p.Ks.Batch + (long)kvh * p.Ks.Head + kb * p.Ks.Position, p.Ks.Position,
            p.KScale + (long)b * p.KScales.Batch + (long)kvh * p.KScales.Head + kb * p.KScales.Position, p.KScales.Position, nk, p.Hd, scratch);
        return scratch;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float* Values<TIsa, TV>(in AttentionProblem p, int b, int kvh, int kb, int nk, float* scratch, out long stride)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        stride = p.Hd;
        Widen<TIsa, TV>(p.V8 + (long)b * p.Vs.Batch + (long)kvh * p.Vs.Head + kb * p.Vs.Position, p.Vs.Position,
            p.VScale + (long)b * p.VScales.Batch + (long)kvh * p.VScales.Head + kb * p.VScales.Position, p.VScales.Position, nk, p.Hd, scratch);
        return scratch;
    }

    // dst[j, :] = scale[j]·q[j, :] for nk rows of hd.
    static void Widen<TIsa, TV>(sbyte* q, long qsp, float* scale, long ssp, int nk, int hd, float* dst)
        where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count;
        for (int j = 0; j < nk; j++, q += qsp, dst += hd)
        {
            float s = scale[j * ssp];
            int d = 0;
            if (c > 1)
            {
                TV sv = TIsa.Splat(s);
                for (; d + c <= hd; d += c) TIsa.Store(dst + d, TIsa.Mul(TIsa.LoadInt8(q + d), sv));
            }
            for (; d < hd; d++) dst[d] = q[d] * s;
        }
    }
}
