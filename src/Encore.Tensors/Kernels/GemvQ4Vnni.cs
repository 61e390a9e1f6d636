using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

// Q4_0 GEMV on AVX-VNNI: x quantized to int8 per block of 32 exactly as llama.cpp quantizes activations
// for its Q4_0 dot products (ggml's Q8_0, binary16 scale), and
// each pair of weight blocks is two vpdpbusd over their unsigned nibbles.
//
// A Q4_0 block reads 18 bytes for 32 weights, so a core must turn over twice Q8_0's blocks per byte;
// with the int16-x kernel (QuantizesActivations) the per-block work (unpack, widen, multiply-add,
// convert, scale, accumulate) held one Zen 5 core to ~28 G weights/s, about 60% of what it can read.
// Here two blocks share every vector instruction: their 16-byte quant arrays form one 256-bit vector
// whose low nibbles (values 0–15 of each block) and high nibbles (values 16–31) meet x laid out to
// match (x_b0[0..16) x_b1[0..16) | x_b0[16..32) x_b1[16..32)), vpdpbusd multiplies unsigned nibbles
// by signed x quants into four int32 lanes per block, and the nibbles' +8 offset is removed by
// starting those lanes at −8·Σ x-quants of the block instead of at zero. Measured on one Zen 5 core
// at 4096×4096: ~40 G weights/s against ~28 for the int16-x kernel, near the core's read rate.
// Rows go four at a time (DotQ4Vnni4), sharing the x loads. Where the time goes, measured on the mu-330m decoder's
// Q4_0 matrices: one core runs ~30 GB/s with the weights in L3 and ~22–24 GB/s from DRAM, where a plain read of the
// same matrices streams ~42 GB/s and Q8_0's int16 kernel keeps ~33 GB/s; removing the scale construction, the
// nibble unpack or even every vpdpbusd moves the rate by under 8%, while taking the weight loads away triples it:
// the weight bytes, not the arithmetic, held two cores at ~34 GB/s against Q8_0's ~48–51. Those figures were taken
// with one L2 prefetch per 72-byte step, which leaves every ninth line to a demand miss; the same fault held the
// quad kernel (GemvQ4Quad.cs) to half the read bandwidth on Zen 4, and PrefetchStep now covers every line (the
// Zen 5 figures above are not re-measured).
public static unsafe partial class Gemv
{
    /// <summary>Largest int8 quant of x on the VNNI path: each block maps max|x_b| to ±127.</summary>
    const float X8QuantMax = 127f;

    // L2 prefetch distance of the four-row tiles, per row stream. Zen 5, the mu-330m decoder's ten layers of Q4_0
    // matrices (58 MB, 2 threads, quiet), when a line in nine went unprefetched: 4 KiB 34.7–36.1 GB/s, 8 KiB
    // 33.6–35.4, 16 KiB 32.9–35.2, 2 KiB 31.8–32.6, none 27.9. Zen 4 with every line prefetched (PrefetchStep),
    // DotQ4Quad4 from DRAM over 1024–4096-wide matrices, medians of two rounds: 2 KiB 14–17 GB/s, 4 KiB 17–29,
    // 8 KiB 22–31, 16 KiB 23–32.
    const int PrefetchAheadQ4 = 8192;

    /// <summary>
    /// Whether the GEMV path at <paramref name="width"/> takes Q4_0 weights with x quantized to int8 per block
    /// (<see cref="QuantizedActivationReference"/> with 8 activation bits is then its specification):
    /// 256-bit vectors or wider with AVX-VNNI.
    /// </summary>
    internal static bool QuantizesActivationsToInt8(SimdWidth width, DType weights)
        => weights == DType.Q4_0 && width >= SimdWidth.V256 && AvxVnni.IsSupported && Avx2.IsSupported;

    // Per X row in the scratch, for P = ⌈blocks/2⌉ pairs: P·64 int8 quants in pair order, P·8 int32 lane
    // starts (−8·S_b in lanes 0 and 4 of each pair, else 0), P·8 binary32 block scales (dx_b0 in lanes 0–3,
    // dx_b1 in lanes 4–7). An odd last block pairs with a zero block.
    static int PairRowBytes(int blocks) => (blocks + 1) / 2 * 128;

    [ThreadStatic] static byte* t_x8;
    [ThreadStatic] static long t_x8Capacity;
    [ThreadStatic] static AlignedOwner? t_x8Owner;

    // The m rows of X (k apart) quantized into this thread's scratch; PairRowBytes(k/32) bytes per row.
    static byte* PairedInt8Copy(float* x, int m, int k)
    {
        int blocks = k / DTypes.Q4BlockSize, rowBytes = PairRowBytes(blocks);
        long bytes = (long)m * rowBytes;
        byte* scratch = ThreadScratch(ref t_x8, ref t_x8Capacity, ref t_x8Owner, bytes);
        for (int i = 0; i < m; i++) QuantizePaired(x + (nint)i * k, blocks, scratch + (nint)i * rowBytes);
        return scratch;
    }

    // One row of x → the paired layout, with quants and scales identical to QuantizeX8Reference.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void QuantizePaired(float* x, int blocks, byte* dst)
    {
        int pairs = (blocks + 1) / 2;
        var q = (sbyte*)dst;
        var start = (int*)(dst + pairs * 64);
        var scale = (float*)(dst + pairs * 96);
        for (int p = 0; p < pairs; p++, q += 64, start += 8, scale += 8)
        {
            for (int h = 0; h < 2; h++)
            {
                int b = 2 * p + h;
                if (b >= blocks)
                {
                    new Span<sbyte>(q + 16, 16).Clear();
                    new Span<sbyte>(q + 48, 16).Clear();
                    start[4] = 0;
                    for (int l = 4; l < 8; l++) scale[l] = 0;
                    continue;
                }
                QuantizeBlock8(x + b * DTypes.Q4BlockSize, out var lo, out var hi, out int sum, out float d);
                lo.Store(q + 16 * h);
                hi.Store(q + 32 + 16 * h);
                start[4 * h] = -8 * sum;
                for (int l = 1; l < 4; l++) start[4 * h + l] = 0;
                for (int l = 0; l < 4; l++) scale[4 * h + l] = d;
            }
        }
    }

    // One block of 32 values of x → its int8 quants (values 0–15 in lo, 16–31 in hi), their sum and the block
    // scale, identical to QuantizeX8Reference.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void QuantizeBlock8(float* xb, out Vector128<sbyte> lo, out Vector128<sbyte> hi, out int sum, out float d)
    {
        var v0 = Vector256.Load(xb);
        var v1 = Vector256.Load(xb + 8);
        var v2 = Vector256.Load(xb + 16);
        var v3 = Vector256.Load(xb + 24);
        var m8 = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
        var m4 = Vector128.Max(m8.GetLower(), m8.GetUpper());
        float amax = MathF.Max(MathF.Max(m4[0], m4[1]), MathF.Max(m4[2], m4[3]));
        d = Half16.ToSingle(Half16.FromSingle(amax / X8QuantMax));
        float id = amax != 0 ? X8QuantMax / amax : 0f;
        var vid = Vector256.Create(id);
        var i0 = Vector256.ConvertToInt32(Vector256.Round(v0 * vid));
        var i1 = Vector256.ConvertToInt32(Vector256.Round(v1 * vid));
        var i2 = Vector256.ConvertToInt32(Vector256.Round(v2 * vid));
        var i3 = Vector256.ConvertToInt32(Vector256.Round(v3 * vid));
        // |quant| ≤ 127, so narrowing to int16 and then int8 keeps every value.
        var l16 = Vector256.Narrow(i0, i1);                      // values 0–15 as int16
        var h16 = Vector256.Narrow(i2, i3);                      // values 16–31
        lo = Vector128.Narrow(l16.GetLower(), l16.GetUpper());
        hi = Vector128.Narrow(h16.GetLower(), h16.GetUpper());
        var s16 = l16 + h16;
        sum = Vector256.Sum(Vector256.WidenLower(s16) + Vector256.WidenUpper(s16));
    }

    // The scalar twin of QuantizePaired (quants from QuantizeX8Reference, then the same layout).
    internal static void QuantizePairedReference(float* x, int blocks, byte* dst)
    {
        int pairs = (blocks + 1) / 2;
        var q = new short[pairs * 2 * DTypes.Q4BlockSize];
        var dx = new float[pairs * 2];
        fixed (short* pq = q)
        fixed (float* pd = dx)
            QuantizeX8Reference(x, blocks, pq, pd);
        var o = (sbyte*)dst;
        var start = (int*)(dst + pairs * 64);
        var scale = (float*)(dst + pairs * 96);
        for (int p = 0; p < pairs; p++)
        {
            for (int h = 0; h < 2; h++)
            {
                int b = 2 * p + h, s = 0;
                for (int j = 0; j < 16; j++)
                {
                    o[p * 64 + 16 * h + j] = (sbyte)q[b * 32 + j];
                    o[p * 64 + 32 + 16 * h + j] = (sbyte)q[b * 32 + 16 + j];
                    s += q[b * 32 + j] + q[b * 32 + 16 + j];
                }
                for (int l = 0; l < 4; l++)
                {
                    start[p * 8 + 4 * h + l] = l == 0 ? -8 * s : 0;
                    scale[p * 8 + 4 * h + l] = dx[b];
                }
            }
        }
    }

    // One pair of blocks (b, b + 1) at row: 8 int32 lanes (4 per block) of Σ (nibble − 8)·x-quant.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> PairDot(byte* row, sbyte* xq, int* start)
    {
        var mask = Vector256.Create((byte)0x0F);
        var y = Vector256.Create(Vector128.Load(row + 2), Vector128.Load(row + 2 + DTypes.Q4BlockBytes));
        var lo = y & mask;
        var hi = Vector256.ShiftRightLogical(y.AsUInt16(), 4).AsByte() & mask;
        return AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector256.Load(start), lo, Vector256.Load(xq)), hi, Vector256.Load(xq + 32));
    }

    // dw_b0 in lanes 0–3 and dw_b1 in lanes 4–7, times the x scales of the pair.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> PairScale(byte* row, float* scale, float* table)
        => Avx.Blend(Vector256.Create(table[*(ushort*)row]), Vector256.Create(table[*(ushort*)(row + DTypes.Q4BlockBytes)]), 0xF0) * Vector256.Load(scale);

    // acc += (Σ of the pair at row, as int32 lanes) · (its weight scales × x scales): one pair's contribution to an accumulator.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> AddPair(Vector256<float> acc, byte* row, sbyte* xq, int* start, float* scale, float* table)
        => Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(PairDot(row, xq, start)), PairScale(row, scale, table), acc);

    // Four weight rows against one quantized X row: the x quants, lane starts and scales of a pair are loaded
    // once for the four rows, and the four rows' block streams are independent. Each row's sums run exactly
    // as in DotQ4Vnni (same accumulators, same order), so a row's result does not depend on its tile.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotQ4Vnni4(byte* w0, byte* w1, byte* w2, byte* w3, byte* xrow, int blocks, float* table, float* sums)
    {
        int pairs = (blocks + 1) / 2, full = blocks / 2;
        var xq = (sbyte*)xrow;
        var start = (int*)(xrow + pairs * 64);
        var scale = (float*)(xrow + pairs * 96);
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
        Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
        int p = 0;
        const int Step = 2 * DTypes.Q4BlockBytes;
        for (; p + 2 <= full; p += 2, w0 += 2 * Step, w1 += 2 * Step, w2 += 2 * Step, w3 += 2 * Step, xq += 128, start += 16, scale += 16)
        {
            PrefetchStep(w0 + PrefetchAheadQ4, 2 * Step);
            PrefetchStep(w1 + PrefetchAheadQ4, 2 * Step);
            PrefetchStep(w2 + PrefetchAheadQ4, 2 * Step);
            PrefetchStep(w3 + PrefetchAheadQ4, 2 * Step);
            a00 = AddPair(a00, w0, xq, start, scale, table);
            a10 = AddPair(a10, w1, xq, start, scale, table);
            a20 = AddPair(a20, w2, xq, start, scale, table);
            a30 = AddPair(a30, w3, xq, start, scale, table);
            a01 = AddPair(a01, w0 + Step, xq + 64, start + 8, scale + 8, table);
            a11 = AddPair(a11, w1 + Step, xq + 64, start + 8, scale + 8, table);
            a21 = AddPair(a21, w2 + Step, xq + 64, start + 8, scale + 8, table);
            a31 = AddPair(a31, w3 + Step, xq + 64, start + 8, scale + 8, table);
        }
        if (p < full)
        {
            a00 = AddPair(a00, w0, xq, start, scale, table);
            a10 = AddPair(a10, w1, xq, start, scale, table);
            a20 = AddPair(a20, w2, xq, start, scale, table);
            a30 = AddPair(a30, w3, xq, start, scale, table);
            p++;
            w0 += Step;
            w1 += Step;
            w2 += Step;
            w3 += Step;
            xq += 64;
            start += 8;
            scale += 8;
        }
        sums[0] = Vector256.Sum(a00 + a01);
        sums[1] = Vector256.Sum(a10 + a11);
        sums[2] = Vector256.Sum(a20 + a21);
        sums[3] = Vector256.Sum(a30 + a31);
        if (p < pairs)
        {
            sums[0] += LastBlock(w0, xq, start, scale, table);
            sums[1] += LastBlock(w1, xq, start, scale, table);
            sums[2] += LastBlock(w2, xq, start, scale, table);
            sums[3] += LastBlock(w3, xq, start, scale, table);
        }
    }

    // The odd last block of a row: its quants are the pair's first halves.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float LastBlock(byte* row, sbyte* xq, int* start, float* scale, float* table)
    {
        var b = Vector128.Load(row + 2);
        var mask = Vector128.Create((byte)0x0F);
        var lo = b & mask;
        var hi = Vector128.ShiftRightLogical(b.AsUInt16(), 4).AsByte() & mask;
        var dot = AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector128.Load(start), lo, Vector128.Load(xq)), hi, Vector128.Load(xq + 32));
        return Vector128.Sum(dot) * (table[*(ushort*)row] * scale[0]);
    }

    // One weight row against one quantized X row (PairedInt8Copy layout): two pairs per iteration into two
    // accumulators, then an odd last pair, then a single last block on its own.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotQ4Vnni(byte* row, byte* xrow, int blocks, float* table)
    {
        int pairs = (blocks + 1) / 2, full = blocks / 2;
        var xq = (sbyte*)xrow;
        var start = (int*)(xrow + pairs * 64);
        var scale = (float*)(xrow + pairs * 96);
        Vector256<float> a0 = default, a1 = default;
        int p = 0;
        for (; p + 2 <= full; p += 2, row += 4 * DTypes.Q4BlockBytes, xq += 128, start += 16, scale += 16)
        {
            PrefetchStep(row + PrefetchAheadX, 4 * DTypes.Q4BlockBytes);
            a0 = AddPair(a0, row, xq, start, scale, table);
            byte* r1 = row + 2 * DTypes.Q4BlockBytes;
            a1 = AddPair(a1, r1, xq + 64, start + 8, scale + 8, table);
        }
        if (p < full)
        {
            a0 = AddPair(a0, row, xq, start, scale, table);
            p++;
            row += 2 * DTypes.Q4BlockBytes;
            xq += 64;
            start += 8;
            scale += 8;
        }
        float sum = Vector256.Sum(a0 + a1);
        if (p < pairs) sum += LastBlock(row, xq, start, scale, table);
        return sum;
    }
}
