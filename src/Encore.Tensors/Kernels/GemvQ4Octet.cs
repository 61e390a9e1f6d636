using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

// Q4_0R8 GEMV on 512-bit vectors with AVX-512BW and GFNI: eight blocks (144 bytes) per step, x quantized to int8 per
// block exactly as on the quad and AVX-VNNI paths (ggml's Q8_0), so the same specification holds.
//
// The quad kernel (GemvQ4Quad.cs) reads Q4_0 as GGUF stores it, and on Zen 4 its shuffles bound it: a vpermt2b to
// gather a group's quant bytes from between its scales and a vpermb to spread each block's scale over the block's
// four lanes, 14 512-bit instructions per four blocks, ~23 GB/s on one core from L2 and ~19 from DRAM. Regrouped
// (Q4R8: a group's quant bytes as two 64-byte vectors whose 4-byte lanes l and l + 8 belong to block l mod 8, the
// eight scales after them), a step needs no shuffle but one widening:
// - the low nibbles of both vectors are a mask away, the high ones one vgf2p8affineqb each;
// - four vpmaddubsw against x laid out to match (unsigned nibble × signed x quant) are added as int16
//   (|sum| ≤ 4·2·15·127 = 15240) and widened by one vpmaddwd against ones, and the two 256-bit halves added: one
//   exact int32 lane per block;
// - the nibbles' +8 offset is removed by adding −8·Σ x-quants of each block;
// - the eight binary16 scales are one vpmovsxwd and a shift and a mask away from binary32 times 2⁻¹¹² (as in the quad
//   kernel, x's scales are stored times 2¹¹²), then one multiply by x's scales and one fused multiply-add per eight
//   blocks.
// Every line of a row is prefetched, the last odd group's too: without that, rows of three groups (T5-base's 768-wide
// matrices) left a third of their lines to demand misses and streamed slower than the quad kernel.
// A scratch loop over a 256 × 4096 matrix in L2 (one Zen 4 core) ran ~35 GB/s against the quad kernel's ~23, and
// from DRAM ~24–26 GB/s against ~19 (about what a plain load loop streams on one core).
public static unsafe partial class Gemv
{
    /// <summary>Bytes of one group of eight blocks of x in the octet layout: 128 low quants, 128 high quants, 8 int32 corrections, 8 scales.</summary>
    const int OctetXBytes = 320;

    /// <summary>
    /// Whether the GEMV path at <paramref name="width"/> takes Q4_0R8 weights eight blocks per step with x quantized
    /// to int8 per block (<see cref="QuantizedActivationReference"/> with 8 activation bits is its specification):
    /// 512-bit vectors with AVX-512BW and GFNI. Elsewhere Q4_0R8 rows are put back into Q4_0 blocks one at a time and
    /// take the binary32-x path, which is slow: load Q4_0 there instead (<see cref="RegroupsQ4(SimdWidth)"/>).
    /// </summary>
    internal static bool QuantizesActivationsToInt8Octet(SimdWidth width, DType weights)
        => weights == DType.Q4_0R8 && width == SimdWidth.V512 && Avx512BW.IsSupported && Gfni.V512.IsSupported;

    /// <summary>
    /// Whether Q4_0 weight matrices whose rows are whole groups of 256 decode faster regrouped as
    /// <see cref="DType.Q4_0R8"/> at <paramref name="width"/> (the octet kernel exists there).
    /// </summary>
    public static bool RegroupsQ4(SimdWidth width) => QuantizesActivationsToInt8Octet(width, DType.Q4_0R8);

    /// <summary><see cref="RegroupsQ4(SimdWidth)"/> at this machine's widest vectors.</summary>
    public static bool RegroupsQ4() => RegroupsQ4(Simd.Current);

    // Per X row: one OctetXBytes group per eight blocks.
    static int OctetRowBytes(int groups) => groups * OctetXBytes;

    // The m rows of X (k apart) quantized into this thread's scratch; OctetRowBytes(k/256) bytes per row.
    static byte* OctetInt8Copy(float* x, int m, int k)
    {
        int groups = k / DTypes.Q4R8GroupSize, rowBytes = OctetRowBytes(groups);
        byte* scratch = ThreadScratch(ref t_x8, ref t_x8Capacity, ref t_x8Owner, (long)m * rowBytes);
        for (int i = 0; i < m; i++) QuantizeOctet(x + (nint)i * k, groups, scratch + (nint)i * rowBytes);
        return scratch;
    }

    // One row of x → the octet layout: value p of block b at the offset of the weights' quant byte p
    // (Q4R8.QuantOffset(b, p)), value p + 16 128 bytes further, quants and scales identical to QuantizeX8Reference.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void QuantizeOctet(float* x, int groups, byte* dst)
    {
        for (int g = 0; g < groups; g++)
        {
            byte* o = dst + (nint)g * OctetXBytes;
            for (int b = 0; b < DTypes.Q4R8Blocks; b++)
            {
                QuantizeBlock8(x + (g * DTypes.Q4R8Blocks + b) * DTypes.Q4BlockSize, out var lo, out var hi, out int sum, out float d);
                var l = lo.AsInt32();
                var h = hi.AsInt32();
                for (int c = 0; c < 4; c++)
                {
                    int lane = 16 * (c >> 1) + b + 8 * (c & 1);
                    ((int*)o)[lane] = l.GetElement(c);
                    ((int*)(o + 128))[lane] = h.GetElement(c);
                }
                ((int*)(o + 256))[b] = -8 * sum;
                ((float*)(o + 288))[b] = d * QuadScaleFactor;
            }
        }
    }

    // The scalar twin of QuantizeOctet (quants from QuantizeX8Reference, then the same layout).
    internal static void QuantizeOctetReference(float* x, int groups, byte* dst)
    {
        int blocks = groups * DTypes.Q4R8Blocks;
        var q = new short[blocks * DTypes.Q4BlockSize];
        var dx = new float[blocks];
        fixed (short* pq = q)
        fixed (float* pd = dx)
            QuantizeX8Reference(x, blocks, pq, pd);
        for (int g = 0; g < groups; g++)
        {
            byte* o = dst + (nint)g * OctetXBytes;
            for (int b = 0; b < DTypes.Q4R8Blocks; b++)
            {
                int blk = g * DTypes.Q4R8Blocks + b, s = 0;
                for (int p = 0; p < 16; p++)
                {
                    ((sbyte*)o)[Q4R8.QuantOffset(b, p)] = (sbyte)q[blk * 32 + p];
                    ((sbyte*)o)[128 + Q4R8.QuantOffset(b, p)] = (sbyte)q[blk * 32 + 16 + p];
                    s += q[blk * 32 + p] + q[blk * 32 + 16 + p];
                }
                ((int*)(o + 256))[b] = -8 * s;
                ((float*)(o + 288))[b] = dx[blk] * QuadScaleFactor;
            }
        }
    }

    // One group's nibbles: the low ones of its two quant vectors and the high ones (vgf2p8affineqb with the matrix
    // of x >> 4, as in UnpackQuad).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void UnpackOctet(byte* w, out Vector512<byte> lo0, out Vector512<byte> hi0, out Vector512<byte> lo1, out Vector512<byte> hi1)
    {
        var mask = Vector512.Create((byte)0x0F);
        var shift = Vector512.Create(0x1020408000000000UL).AsByte();
        var w0 = Vector512.Load(w);
        var w1 = Vector512.Load(w + 64);
        lo0 = w0 & mask;
        hi0 = Gfni.V512.GaloisFieldAffineTransform(w0, shift, 0);
        lo1 = w1 & mask;
        hi1 = Gfni.V512.GaloisFieldAffineTransform(w1, shift, 0);
    }

    // The group's eight binary16 scales as binary32 times 2⁻¹¹²: sign-extended to 32 bits, shifted left by 13, the
    // sign's copies in bits 28–30 masked off (sign, exponent and mantissa then sit where binary32 keeps them).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> OctetScales(byte* w)
        => (Vector256.ShiftLeft(Avx2.ConvertToVector256Int32((short*)(w + 128)), 13) & Vector256.Create(unchecked((int)0x8FFFE000))).AsSingle();

    // acc += an unpacked group against the x group at xg: eight lanes, one per block, of
    // (Σ nibble·x-quant − 8·Σ x-quants)·dw_b·dx_b.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> ApplyOctet(Vector256<float> acc, Vector512<byte> lo0, Vector512<byte> hi0, Vector512<byte> lo1, Vector512<byte> hi1,
        Vector256<float> dw, byte* xg)
    {
        var pairs = (Avx512BW.MultiplyAddAdjacent(lo0, Vector512.Load((sbyte*)xg)) + Avx512BW.MultiplyAddAdjacent(lo1, Vector512.Load((sbyte*)xg + 64)))
            + (Avx512BW.MultiplyAddAdjacent(hi0, Vector512.Load((sbyte*)xg + 128)) + Avx512BW.MultiplyAddAdjacent(hi1, Vector512.Load((sbyte*)xg + 192)));
        var lanes = Avx512BW.MultiplyAddAdjacent(pairs, Vector512.Create((short)1));
        var dot = lanes.GetLower() + lanes.GetUpper() + Vector256.Load((int*)(xg + 256));
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(dot), dw * Vector256.Load((float*)(xg + 288)), acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> AddOctet(Vector256<float> acc, byte* w, byte* xg)
    {
        UnpackOctet(w, out var lo0, out var hi0, out var lo1, out var hi1);
        return ApplyOctet(acc, lo0, hi0, lo1, hi1, OctetScales(w), xg);
    }

    // One weight row against one X row in the octet layout: even groups into one accumulator, odd into another, then
    // one Vector256.Sum. Every tile below sums each row in this order, so a row's result does not depend on its tile.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotQ4Octet(byte* row, byte* xrow, int groups)
    {
        Vector256<float> a0 = default, a1 = default;
        int g = 0;
        for (; g + 2 <= groups; g += 2, row += 2 * DTypes.Q4R8GroupBytes, xrow += 2 * OctetXBytes)
        {
            PrefetchStep(row + PrefetchAheadQ4, 2 * DTypes.Q4R8GroupBytes);
            a0 = AddOctet(a0, row, xrow);
            a1 = AddOctet(a1, row + DTypes.Q4R8GroupBytes, xrow + OctetXBytes);
        }
        if (g < groups)
        {
            PrefetchStep(row + PrefetchAheadQ4, DTypes.Q4R8GroupBytes);
            a0 = AddOctet(a0, row, xrow);
        }
        return Vector256.Sum(a0 + a1);
    }

    // Four weight rows against one X row: each x group is read once for the four rows.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotQ4Octet4(byte* w0, byte* w1, byte* w2, byte* w3, byte* xrow, int groups, float* sums)
    {
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
        Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
        const int G = DTypes.Q4R8GroupBytes, Step = 2 * G;
        int g = 0;
        for (; g + 2 <= groups; g += 2, w0 += Step, w1 += Step, w2 += Step, w3 += Step, xrow += 2 * OctetXBytes)
        {
            PrefetchStep(w0 + PrefetchAheadQ4, Step);
            PrefetchStep(w1 + PrefetchAheadQ4, Step);
            PrefetchStep(w2 + PrefetchAheadQ4, Step);
            PrefetchStep(w3 + PrefetchAheadQ4, Step);
            a00 = AddOctet(a00, w0, xrow);
            a10 = AddOctet(a10, w1, xrow);
            a20 = AddOctet(a20, w2, xrow);
            a30 = AddOctet(a30, w3, xrow);
            a01 = AddOctet(a01, w0 + G, xrow + OctetXBytes);
            a11 = AddOctet(a11, w1 + G, xrow + OctetXBytes);
            a21 = AddOctet(a21, w2 + G, xrow + OctetXBytes);
            a31 = AddOctet(a31, w3 + G, xrow + OctetXBytes);
        }
        if (g < groups)
        {
            PrefetchStep(w0 + PrefetchAheadQ4, G);
            PrefetchStep(w1 + PrefetchAheadQ4, G);
            PrefetchStep(w2 + PrefetchAheadQ4, G);
            PrefetchStep(w3 + PrefetchAheadQ4, G);
            a00 = AddOctet(a00, w0, xrow);
            a10 = AddOctet(a10, w1, xrow);
            a20 = AddOctet(a20, w2, xrow);
            a30 = AddOctet(a30, w3, xrow);
        }
        sums[0] = Vector256.Sum(a00 + a01);
        sums[1] = Vector256.Sum(a10 + a11);
        sums[2] = Vector256.Sum(a20 + a21);
        sums[3] = Vector256.Sum(a30 + a31);
    }

    // One weight row against TM.Count (2 or 4) X rows in the octet layout (xStride bytes apart): each group is unpacked
    // once for all of them.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotQ4OctetX<TM>(byte* w, byte* x, nint xStride, int groups, float* sums) where TM : IRowCount
    {
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
        Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
        const int G = DTypes.Q4R8GroupBytes;
        int g = 0;
        for (; g + 2 <= groups; g += 2, w += 2 * G, x += 2 * OctetXBytes)
        {
            PrefetchStep(w + PrefetchAheadQ4, 2 * G);
            UnpackOctet(w, out var lo0, out var hi0, out var lo1, out var hi1);
            var dw = OctetScales(w);
            ApplyOctetRows<TM>(ref a00, ref a10, ref a20, ref a30, lo0, hi0, lo1, hi1, dw, x, xStride);
            UnpackOctet(w + G, out lo0, out hi0, out lo1, out hi1);
            dw = OctetScales(w + G);
            ApplyOctetRows<TM>(ref a01, ref a11, ref a21, ref a31, lo0, hi0, lo1, hi1, dw, x + OctetXBytes, xStride);
        }
        if (g < groups)
        {
            PrefetchStep(w + PrefetchAheadQ4, G);
            UnpackOctet(w, out var lo0, out var hi0, out var lo1, out var hi1);
            ApplyOctetRows<TM>(ref a00, ref a10, ref a20, ref a30, lo0, hi0, lo1, hi1, OctetScales(w), x, xStride);
        }
        sums[0] = Vector256.Sum(a00 + a01);
        sums[1] = Vector256.Sum(a10 + a11);
        if (TM.Count > 2)
        {
            sums[2] = Vector256.Sum(a20 + a21);
            sums[3] = Vector256.Sum(a30 + a31);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void ApplyOctetRows<TM>(ref Vector256<float> a0, ref Vector256<float> a1, ref Vector256<float> a2, ref Vector256<float> a3,
        Vector512<byte> lo0, Vector512<byte> hi0, Vector512<byte> lo1, Vector512<byte> hi1, Vector256<float> dw, byte* x, nint xStride) where TM : IRowCount
    {
        a0 = ApplyOctet(a0, lo0, hi0, lo1, hi1, dw, x);
        a1 = ApplyOctet(a1, lo0, hi0, lo1, hi1, dw, x + xStride);
        if (TM.Count > 2)
        {
            a2 = ApplyOctet(a2, lo0, hi0, lo1, hi1, dw, x + 2 * xStride);
            a3 = ApplyOctet(a3, lo0, hi0, lo1, hi1, dw, x + 3 * xStride);
        }
    }
}
