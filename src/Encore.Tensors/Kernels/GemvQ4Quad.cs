using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

// Q4_0 GEMV on 512-bit vectors with AVX-512BW, AVX-512 VBMI and GFNI: four blocks (72 bytes) per vector step, x
// quantized to int8 per block exactly as on the AVX-VNNI path (ggml's Q8_0), so the same specification holds.
//
// .NET exposes vpdpbusd only on 256-bit registers, and the 256-bit pair kernel spends ~15 instructions on
// every 36 bytes: one Zen 5 core computes it at ~23 GB/s from L3, short of what it can read. Here one step
// takes a group of four blocks straight from the GGUF layout, with no repacking:
// - one 64-byte load, one 8-byte load (bytes 64–71) and one vpermt2b gather the group's 64 quant bytes, skipping
//   the four binary16 scales, in the order b0[0..16) b1 b2 b3. The 64-byte load is nearly always split across two
//   cache lines; two 32-byte loads joined by vinserti64x4 cost two more vector instructions, and on Zen 4 with
//   every line prefetched (PrefetchStep) the one load computes ~25% faster from L2 and streams DRAM as fast;
// - the low nibbles are a mask away, the high ones one vgf2p8affineqb (shift and mask in one instruction:
//   ~6% from L2 on Zen 4);
// - the low and high nibbles meet x laid out to match (values 0–15 of the four blocks, then 16–31) in two
//   vpmaddubsw (unsigned nibble × signed x quant, |pair sum| ≤ 2·15·127, no saturation), added as int16
//   (|sum| ≤ 4·15·127) and widened by one vpmaddwd against ones: four exact int32 lanes per block;
// - the nibbles' +8 offset is removed by adding −8·Σ x-quants of the block to the first lane of each block;
// - the four scales come from the first load by one vpermb into the top half of their blocks' lanes and turn into
//   binary32 without a table: an arithmetic shift right by 3 and a mask leave the sign, exponent and mantissa
//   where binary32 keeps them, which is the value times 2⁻¹¹², and x's scales are stored times 2¹¹² (finite:
//   binary16 scales stay below 2¹⁶), so the product of the two scales is the exact product of the true ones
//   and rounds as it would. Non-finite binary16 scales are rejected when a checkpoint loads.
// Measured on one Zen 5 core over the mu-330m decoder's matrices: ~37 GB/s with the weights in L3 against ~23 for
// the pair kernel, and ~26 GB/s from DRAM against ~21.
public static unsafe partial class Gemv
{
    /// <summary>Bytes of one group of four Q4_0 blocks in the weights.</summary>
    const int QuadWeightBytes = 4 * DTypes.Q4BlockBytes;

    /// <summary>Bytes of one group of four blocks of x in the quad layout: 64 low quants, 64 high quants, 16 int32 lane starts, 16 scales.</summary>
    const int QuadXBytes = 256;

    /// <summary>2¹¹², the factor on x's scales that undoes the scale conversion's 2⁻¹¹².</summary>
    const float QuadScaleFactor = 5.192296858534828e33f;

    /// <summary>
    /// Whether the GEMV path at <paramref name="width"/> takes Q4_0 weights four blocks per 512-bit step with x
    /// quantized to int8 per block (<see cref="QuantizedActivationReference"/> with 8 activation bits is its
    /// specification): 512-bit vectors with AVX-512BW, AVX-512 VBMI and GFNI.
    /// </summary>
    internal static bool QuantizesActivationsToInt8Quad(SimdWidth width, DType weights)
        => weights == DType.Q4_0 && width == SimdWidth.V512 && Avx512BW.IsSupported && Avx512Vbmi.IsSupported && Gfni.V512.IsSupported;

    // Per X row: ⌈blocks/4⌉ groups of QuadXBytes; blocks past the row's end are zero (quants, starts and scales).
    static int QuadRowBytes(int blocks) => (blocks + 3) / 4 * QuadXBytes;

    // The m rows of X (k apart) quantized into this thread's scratch; QuadRowBytes(k/32) bytes per row.
    static byte* QuadInt8Copy(float* x, int m, int k)
    {
        int blocks = k / DTypes.Q4BlockSize, rowBytes = QuadRowBytes(blocks);
        byte* scratch = ThreadScratch(ref t_x8, ref t_x8Capacity, ref t_x8Owner, (long)m * rowBytes);
        for (int i = 0; i < m; i++) QuantizeQuad(x + (nint)i * k, blocks, scratch + (nint)i * rowBytes);
        return scratch;
    }

    // One row of x → the quad layout, with quants and scales identical to QuantizeX8Reference.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void QuantizeQuad(float* x, int blocks, byte* dst)
    {
        new Span<byte>(dst, QuadRowBytes(blocks)).Clear();
        for (int b = 0; b < blocks; b++)
        {
            byte* g = dst + b / 4 * QuadXBytes;
            int h = b % 4;
            QuantizeBlock8(x + b * DTypes.Q4BlockSize, out var lo, out var hi, out int sum, out float d);
            lo.Store((sbyte*)g + 16 * h);
            hi.Store((sbyte*)g + 64 + 16 * h);
            ((int*)(g + 128))[4 * h] = -8 * sum;
            Vector128.Create(d * QuadScaleFactor).Store((float*)(g + 192) + 4 * h);
        }
    }

    // The scalar twin of QuantizeQuad (quants from QuantizeX8Reference, then the same layout).
    internal static void QuantizeQuadReference(float* x, int blocks, byte* dst)
    {
        var q = new short[blocks * DTypes.Q4BlockSize];
        var dx = new float[blocks];
        fixed (short* pq = q)
        fixed (float* pd = dx)
            QuantizeX8Reference(x, blocks, pq, pd);
        new Span<byte>(dst, QuadRowBytes(blocks)).Clear();
        for (int b = 0; b < blocks; b++)
        {
            byte* g = dst + b / 4 * QuadXBytes;
            int h = b % 4, s = 0;
            for (int j = 0; j < 16; j++)
            {
                ((sbyte*)g)[16 * h + j] = (sbyte)q[b * 32 + j];
                ((sbyte*)g)[64 + 16 * h + j] = (sbyte)q[b * 32 + 16 + j];
                s += q[b * 32 + j] + q[b * 32 + 16 + j];
            }
            ((int*)(g + 128))[4 * h] = -8 * s;
            for (int l = 0; l < 4; l++) ((float*)(g + 192))[4 * h + l] = dx[b] * QuadScaleFactor;
        }
    }

    /// <summary>The vpermt2b and vpermb controls of one quad step (see the file's header).</summary>
    internal static class QuadIndex
    {
        // Output byte j is quant j % 16 of block j / 16, at byte 18·(j/16) + 2 + j%16 of the group: bytes 0–63 from the
        // first source, 64–71 from the second (control bit 6 selects it), so the control is that byte's offset.
        internal static readonly Vector512<byte> Quants = Make(j => 18 * (j / 16) + 2 + j % 16);

        // Float lane i (4 per block b = i/4) takes the block's binary16 scale in its top two bytes; the low two are
        // masked off after the shift.
        internal static readonly Vector512<byte> Scales = Make(j => j % 4 < 2 ? 0 : 18 * (j / 16) + j % 4 - 2);

        static Vector512<byte> Make(Func<int, int> index)
        {
            var a = new byte[64];
            for (int j = 0; j < 64; j++) a[j] = (byte)index(j);
            return Vector512.Create(a);
        }
    }

    // acc += one group of four blocks at w against its x group: 16 lanes, four per block, of
    // (Σ nibble·x-quant − 8·Σ x-quants)·dw_b·dx_b.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> AddQuad(Vector512<float> acc, byte* w, byte* xg, Vector512<byte> quants, Vector512<byte> scales)
        => AddQuad(acc, Vector512.Load(w), Vector512.CreateScalar(*(ulong*)(w + 64)).AsByte(), xg, quants, scales);

    // The same with the group's bytes loaded: bytes 0–63 in a, 64–71 in the low bytes of b.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> AddQuad(Vector512<float> acc, Vector512<byte> a, Vector512<byte> b, byte* xg, Vector512<byte> quants, Vector512<byte> scales)
    {
        UnpackQuad(a, b, quants, scales, out var lo, out var hi, out var dw);
        return ApplyQuad(acc, lo, hi, dw, xg);
    }

    // A group's 128 quants as low and high nibbles in the order of the x layout, and its four scales, each in its
    // block's four lanes, as binary32 times 2⁻¹¹² (see the file's header).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void UnpackQuad(Vector512<byte> a, Vector512<byte> b, Vector512<byte> quants, Vector512<byte> scales,
        out Vector512<byte> lo, out Vector512<byte> hi, out Vector512<float> dw)
    {
        var q = Avx512Vbmi.PermuteVar64x8x2(a, quants, b);
        lo = q & Vector512.Create((byte)0x0F);
        // vgf2p8affineqb with the matrix of x >> 4: output bit i is input bit i + 4 for i < 4, zero above (the row of
        // output bit i is byte 7 − i of the 64-bit operand).
        hi = Gfni.V512.GaloisFieldAffineTransform(q, Vector512.Create(0x1020408000000000UL).AsByte(), 0);
        var half = Avx512Vbmi.PermuteVar64x8(a, scales).AsInt32();
        dw = (Vector512.ShiftRightArithmetic(half, 3) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle();
    }

    // acc += an unpacked group against the x group at xg.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> ApplyQuad(Vector512<float> acc, Vector512<byte> lo, Vector512<byte> hi, Vector512<float> dw, byte* xg)
    {
        var pairs = Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load((sbyte*)xg)) + Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load((sbyte*)xg + 64));
        var dot = Avx512BW.MultiplyAddAdjacent(pairs, Vector512.Create((short)1)) + Vector512.Load((int*)(xg + 128));
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(dot), dw * Vector512.Load((float*)(xg + 192)), acc);
    }

    // The last, partial group of a row (1–3 blocks, at most 54 bytes): a masked load reads only the row's bytes (it
    // does not fault past its end) and leaves zeros in the rest, so the missing blocks have zero scales and meet zero x groups.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<byte> LoadPartialQuad(byte* w, int blocks)
    {
        int bytes = blocks * DTypes.Q4BlockBytes;
        return Avx512BW.MaskLoad(w, Vector512.LessThan(Vector512<byte>.Indices, Vector512.Create((byte)bytes)), Vector512<byte>.Zero);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> AddPartialQuad(Vector512<float> acc, byte* w, int blocks, byte* xg, Vector512<byte> quants, Vector512<byte> scales)
        => AddQuad(acc, LoadPartialQuad(w, blocks), Vector512<byte>.Zero, xg, quants, scales);

    // One weight row against TM.Count (2 or 4) X rows in the quad layout (xStride bytes apart): each group is unpacked
    // once for all of them, which takes 6 of the 14 instructions per group and X row out of all but the first. Every
    // (row, X row) sums as DotQ4Quad does (even groups into one accumulator, odd into another, the partial group into
    // the one of its parity, then one Vector512.Sum).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotQ4QuadX<TM>(byte* w, byte* x, nint xStride, int blocks, float* sums, Vector512<byte> quants, Vector512<byte> scales)
        where TM : IRowCount
    {
        int full = blocks / 4, rest = blocks % 4;
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
        Vector512<float> a20 = default, a21 = default, a30 = default, a31 = default;
        int g = 0;
        const int Step = 2 * QuadWeightBytes;
        for (; g + 2 <= full; g += 2, w += Step, x += 2 * QuadXBytes)
        {
            PrefetchStep(w + PrefetchAheadQ4, Step);
            UnpackQuad(Vector512.Load(w), Vector512.CreateScalar(*(ulong*)(w + 64)).AsByte(), quants, scales, out var lo, out var hi, out var dw);
            ApplyQuadRows<TM>(ref a00, ref a10, ref a20, ref a30, lo, hi, dw, x, xStride);
            UnpackQuad(Vector512.Load(w + QuadWeightBytes), Vector512.CreateScalar(*(ulong*)(w + QuadWeightBytes + 64)).AsByte(), quants, scales, out lo, out hi, out dw);
            ApplyQuadRows<TM>(ref a01, ref a11, ref a21, ref a31, lo, hi, dw, x + QuadXBytes, xStride);
        }
        if (g < full)
        {
            UnpackQuad(Vector512.Load(w), Vector512.CreateScalar(*(ulong*)(w + 64)).AsByte(), quants, scales, out var lo, out var hi, out var dw);
            ApplyQuadRows<TM>(ref a00, ref a10, ref a20, ref a30, lo, hi, dw, x, xStride);
            g++;
            w += QuadWeightBytes;
            x += QuadXBytes;
        }
        if (rest != 0)
        {
            UnpackQuad(LoadPartialQuad(w, rest), Vector512<byte>.Zero, quants, scales, out var lo, out var hi, out var dw);
            if ((g & 1) == 0) ApplyQuadRows<TM>(ref a00, ref a10, ref a20, ref a30, lo, hi, dw, x, xStride);
            else ApplyQuadRows<TM>(ref a01, ref a11, ref a21, ref a31, lo, hi, dw, x, xStride);
        }
        if (TM.Count > 2) VectorMath.Sum4(a00 + a01, a10 + a11, a20 + a21, a30 + a31, sums);   // four Vector512.Sums' bits, one reduction
        else
        {
            sums[0] = Vector512.Sum(a00 + a01);
            sums[1] = Vector512.Sum(a10 + a11);
        }
    }

    // The accumulators of X rows 0 … TM.Count − 1 += one unpacked group against each row's x group.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void ApplyQuadRows<TM>(ref Vector512<float> a0, ref Vector512<float> a1, ref Vector512<float> a2, ref Vector512<float> a3,
        Vector512<byte> lo, Vector512<byte> hi, Vector512<float> dw, byte* x, nint xStride) where TM : IRowCount
    {
        a0 = ApplyQuad(a0, lo, hi, dw, x);
        a1 = ApplyQuad(a1, lo, hi, dw, x + xStride);
        if (TM.Count > 2)
        {
            a2 = ApplyQuad(a2, lo, hi, dw, x + 2 * xStride);
            a3 = ApplyQuad(a3, lo, hi, dw, x + 3 * xStride);
        }
    }

    // Four weight rows against one X row in the quad layout: each x group is read once for the four rows. Every row
    // sums as DotQ4Quad does (even groups into one accumulator, odd into another, the partial group into the one of
    // its parity), so a row's result does not depend on its tile.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotQ4Quad4(byte* w0, byte* w1, byte* w2, byte* w3, byte* xrow, int blocks, float* sums, Vector512<byte> quants, Vector512<byte> scales)
    {
        int full = blocks / 4, rest = blocks % 4;
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
        Vector512<float> a20 = default, a21 = default, a30 = default, a31 = default;
        byte* xg = xrow;
        int g = 0;
        const int Step = 2 * QuadWeightBytes;
        for (; g + 2 <= full; g += 2, w0 += Step, w1 += Step, w2 += Step, w3 += Step, xg += 2 * QuadXBytes)
        {
            PrefetchStep(w0 + PrefetchAheadQ4, Step);
            PrefetchStep(w1 + PrefetchAheadQ4, Step);
            PrefetchStep(w2 + PrefetchAheadQ4, Step);
            PrefetchStep(w3 + PrefetchAheadQ4, Step);
            a00 = AddQuad(a00, w0, xg, quants, scales);
            a10 = AddQuad(a10, w1, xg, quants, scales);
            a20 = AddQuad(a20, w2, xg, quants, scales);
            a30 = AddQuad(a30, w3, xg, quants, scales);
            a01 = AddQuad(a01, w0 + QuadWeightBytes, xg + QuadXBytes, quants, scales);
            a11 = AddQuad(a11, w1 + QuadWeightBytes, xg + QuadXBytes, quants, scales);
            a21 = AddQuad(a21, w2 + QuadWeightBytes, xg + QuadXBytes, quants, scales);
            a31 = AddQuad(a31, w3 + QuadWeightBytes, xg + QuadXBytes, quants, scales);
        }
        if (g < full)
        {
            a00 = AddQuad(a00, w0, xg, quants, scales);
            a10 = AddQuad(a10, w1, xg, quants, scales);
            a20 = AddQuad(a20, w2, xg, quants, scales);
            a30 = AddQuad(a30, w3, xg, quants, scales);
            g++;
            w0 += QuadWeightBytes;
            w1 += QuadWeightBytes;
            w2 += QuadWeightBytes;
            w3 += QuadWeightBytes;
            xg += QuadXBytes;
        }
        if (rest != 0)
        {
            if ((g & 1) == 0)
            {
                a00 = AddPartialQuad(a00, w0, rest, xg, quants, scales);
                a10 = AddPartialQuad(a10, w1, rest, xg, quants, scales);
                a20 = AddPartialQuad(a20, w2, rest, xg, quants, scales);
                a30 = AddPartialQuad(a30, w3, rest, xg, quants, scales);
            }
            else
            {
                a01 = AddPartialQuad(a01, w0, rest, xg, quants, scales);
                a11 = AddPartialQuad(a11, w1, rest, xg, quants, scales);
                a21 = AddPartialQuad(a21, w2, rest, xg, quants, scales);
                a31 = AddPartialQuad(a31, w3, rest, xg, quants, scales);
            }
        }
        VectorMath.Sum4(a00 + a01, a10 + a11, a20 + a21, a30 + a31, sums);   // four Vector512.Sums' bits, one reduction
    }

    // One weight row against one X row in the quad layout (the tail rows of DotQ4Quad4's tiles).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotQ4Quad(byte* row, byte* xrow, int blocks, Vector512<byte> quants, Vector512<byte> scales)
    {
        int full = blocks / 4, rest = blocks % 4;
        Vector512<float> a0 = default, a1 = default;
        int g = 0;
        for (; g + 2 <= full; g += 2, row += 2 * QuadWeightBytes, xrow += 2 * QuadXBytes)
        {
            PrefetchStep(row + PrefetchAheadQ4, 2 * QuadWeightBytes);
            a0 = AddQuad(a0, row, xrow, quants, scales);
            a1 = AddQuad(a1, row + QuadWeightBytes, xrow + QuadXBytes, quants, scales);
        }
        if (g < full)
        {
            a0 = AddQuad(a0, row, xrow, quants, scales);
            g++;
            row += QuadWeightBytes;
            xrow += QuadXBytes;
        }
        if (rest != 0)
        {
            if ((g & 1) == 0) a0 = AddPartialQuad(a0, row, rest, xrow, quants, scales);
            else a1 = AddPartialQuad(a1, row, rest, xrow, quants, scales);
        }
        return Vector512.Sum(a0 + a1);
    }
}
