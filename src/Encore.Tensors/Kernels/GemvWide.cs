using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

// The batched GEMV on 512-bit vectors: two weight rows against up to eight X rows in one pass, so each weight
// vector read from memory meets every X row while it is in a register, with a software prefetch far ahead in both
// weight rows.
//
// Why: a batch-8 decode step is bound neither by the FMA units nor by the read bandwidth but by how many weight
// lines are in flight while the core multiplies. With 4 × 4 tiles a batch of eight took two passes over each group
// of four weight rows, and the second pass (weights in L1) issued no memory reads at all. Measured on the T5-base
// decoder's matrices (12 layers, 453 MB of binary32, 2 threads, Zen 5): batch 8 went from 17.2 to 11.7 ms per step
// (prefetch distances of 8–32 KiB all within noise of one another; without the prefetch the 2 × 8 tile alone was
// slower than the 4 × 4 one), Q8_0 from 13–15 to 7.2–7.7 ms.
//
// Every output is one accumulator fed in order over k, so its bits do not depend on which rows share its pass or
// on the batch size (a lone last row runs paired with itself).
//
// Q8_0 rows are dequantized once per block (quant × scale is exact in binary32: 8 by 11 significant bits) and then
// multiply-added like binary32 weights: a Q8_0 matrix gives exactly the bits of the binary32 kernel on its
// dequantized copy. At batch 1 the int16-activation dot stays (it reads the quants at the bandwidth bound); from two
// rows on, dequantizing once per block and sharing it over the batch takes fewer vector operations per multiply-add
// than one integer dot product per (weight row, X row, block): 2.2× at 2–4 rows, 1.7× at 8.
public static unsafe partial class Gemv
{
    /// <summary>X rows from which binary32 weights take the wide tiles: below it the 4 × 4 tiles measured faster (7.5–7.9 against 9–10 ms at 2 rows).</summary>
    internal const int WideRowsF32 = 5;

    /// <summary>X rows of one wide pass.</summary>
    const int WidePass = 8;

    /// <summary>Bytes ahead in each weight row that the wide tiles prefetch (binary32/bf16/f16 rows, and Q8_0 rows).</summary>
    const int WidePrefetch = 16384, WidePrefetchQ8 = 4096;

    internal interface IRowCount { static abstract int Count { get; } }
    internal readonly struct R1 : IRowCount { public static int Count => 1; }
    internal readonly struct R2 : IRowCount { public static int Count => 2; }
    internal readonly struct R3 : IRowCount { public static int Count => 3; }
    internal readonly struct R4 : IRowCount { public static int Count => 4; }
    internal readonly struct R5 : IRowCount { public static int Count => 5; }
    internal readonly struct R6 : IRowCount { public static int Count => 6; }
    internal readonly struct R7 : IRowCount { public static int Count => 7; }
    internal readonly struct R8 : IRowCount { public static int Count => 8; }

    /// <summary>Whether a batch of <paramref name="m"/> X rows with <paramref name="weights"/> at <paramref name="width"/> runs the wide tiles (with binary32 X).</summary>
    internal static bool TakesWideTiles(SimdWidth width, DType weights, int m)
        => width == SimdWidth.V512 && weights switch
        {
            DType.F32 => m >= WideRowsF32,
            DType.BF16 or DType.F16 or DType.Q8_0 => m >= 2,
            _ => false,
        };

    // sums[r·2 + s] = W_s · X_r for r < m ≤ WidePass; m picks the instantiation, so unused rows cost nothing.
    internal static void Tile2<TL>(byte* w0, byte* w1, float* x, nint ldx, int m, int k, float* sums) where TL : ILoad
    {
        switch (m)
        {
            case 1: Tile2<TL, R1>(w0, w1, x, ldx, k, sums); break;
            case 2: Tile2<TL, R2>(w0, w1, x, ldx, k, sums); break;
            case 3: Tile2<TL, R3>(w0, w1, x, ldx, k, sums); break;
            case 4: Tile2<TL, R4>(w0, w1, x, ldx, k, sums); break;
            case 5: Tile2<TL, R5>(w0, w1, x, ldx, k, sums); break;
            case 6: Tile2<TL, R6>(w0, w1, x, ldx, k, sums); break;
            case 7: Tile2<TL, R7>(w0, w1, x, ldx, k, sums); break;
            default: Tile2<TL, R8>(w0, w1, x, ldx, k, sums); break;
        }
    }

    internal static void Tile2Q8(BlockQ8_0* w0, BlockQ8_0* w1, float* x, nint ldx, int m, int blocks, float* table, float* sums)
    {
        switch (m)
        {
            case 1: Tile2Q8<R1>(w0, w1, x, ldx, blocks, table, sums); break;
            case 2: Tile2Q8<R2>(w0, w1, x, ldx, blocks, table, sums); break;
            case 3: Tile2Q8<R3>(w0, w1, x, ldx, blocks, table, sums); break;
            case 4: Tile2Q8<R4>(w0, w1, x, ldx, blocks, table, sums); break;
            case 5: Tile2Q8<R5>(w0, w1, x, ldx, blocks, table, sums); break;
            case 6: Tile2Q8<R6>(w0, w1, x, ldx, blocks, table, sums); break;
            case 7: Tile2Q8<R7>(w0, w1, x, ldx, blocks, table, sums); break;
            default: Tile2Q8<R8>(w0, w1, x, ldx, blocks, table, sums); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile2<TL, TM>(byte* w0, byte* w1, float* x, nint ldx, int k, float* sums) where TL : ILoad where TM : IRowCount
    {
        int m = TM.Count;
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        Vector512<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a61 = default, a70 = default, a71 = default;
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx, x6 = x + 6 * ldx, x7 = x + 7 * ldx;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            if (Sse.IsSupported)
            {
                Sse.Prefetch0(w0 + p * sizeof(float) + WidePrefetch);
                Sse.Prefetch0(w1 + p * sizeof(float) + WidePrefetch);
            }
            var v0 = L16<TL>(w0, p);
            var v1 = L16<TL>(w1, p);
            { var xv = Vector512.Load(x + p); a00 = Vector512.FusedMultiplyAdd(v0, xv, a00); a01 = Vector512.FusedMultiplyAdd(v1, xv, a01); }
            if (m > 1) { var xv = Vector512.Load(x1 + p); a10 = Vector512.FusedMultiplyAdd(v0, xv, a10); a11 = Vector512.FusedMultiplyAdd(v1, xv, a11); }
            if (m > 2) { var xv = Vector512.Load(x2 + p); a20 = Vector512.FusedMultiplyAdd(v0, xv, a20); a21 = Vector512.FusedMultiplyAdd(v1, xv, a21); }
            if (m > 3) { var xv = Vector512.Load(x3 + p); a30 = Vector512.FusedMultiplyAdd(v0, xv, a30); a31 = Vector512.FusedMultiplyAdd(v1, xv, a31); }
            if (m > 4) { var xv = Vector512.Load(x4 + p); a40 = Vector512.FusedMultiplyAdd(v0, xv, a40); a41 = Vector512.FusedMultiplyAdd(v1, xv, a41); }
            if (m > 5) { var xv = Vector512.Load(x5 + p); a50 = Vector512.FusedMultiplyAdd(v0, xv, a50); a51 = Vector512.FusedMultiplyAdd(v1, xv, a51); }
            if (m > 6) { var xv = Vector512.Load(x6 + p); a60 = Vector512.FusedMultiplyAdd(v0, xv, a60); a61 = Vector512.FusedMultiplyAdd(v1, xv, a61); }
            if (m > 7) { var xv = Vector512.Load(x7 + p); a70 = Vector512.FusedMultiplyAdd(v0, xv, a70); a71 = Vector512.FusedMultiplyAdd(v1, xv, a71); }
        }
        StoreSums<TM>(sums, a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51, a60, a61, a70, a71);
        for (; p < k; p++)
        {
            float f0 = TL.L1(w0, p), f1 = TL.L1(w1, p);
            for (int r = 0; r < m; r++)
            {
                float xr = x[r * ldx + p];
                sums[r * 2] += f0 * xr;
                sums[r * 2 + 1] += f1 * xr;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile2Q8<TM>(BlockQ8_0* w0, BlockQ8_0* w1, float* x, nint ldx, int blocks, float* table, float* sums) where TM : IRowCount
    {
        int m = TM.Count;
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        Vector512<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a61 = default, a70 = default, a71 = default;
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx, x6 = x + 6 * ldx, x7 = x + 7 * ldx;
        for (int b = 0; b < blocks; b++)
        {
            if (Sse.IsSupported)
            {
                Sse.Prefetch0((byte*)(w0 + b) + WidePrefetchQ8);
                Sse.Prefetch0((byte*)(w1 + b) + WidePrefetchQ8);
            }
            var s0 = Vector512.Create(table[w0[b].D]);
            var s1 = Vector512.Create(table[w1[b].D]);
            var u0 = Widen.I8x16(w0[b].Qs) * s0;
            var v0 = Widen.I8x16(w1[b].Qs) * s1;
            nint p = (nint)b * DTypes.Q8BlockSize;
            { var xv = Vector512.Load(x + p); a00 = Vector512.FusedMultiplyAdd(u0, xv, a00); a01 = Vector512.FusedMultiplyAdd(v0, xv, a01); }
            if (m > 1) { var xv = Vector512.Load(x1 + p); a10 = Vector512.FusedMultiplyAdd(u0, xv, a10); a11 = Vector512.FusedMultiplyAdd(v0, xv, a11); }
            if (m > 2) { var xv = Vector512.Load(x2 + p); a20 = Vector512.FusedMultiplyAdd(u0, xv, a20); a21 = Vector512.FusedMultiplyAdd(v0, xv, a21); }
            if (m > 3) { var xv = Vector512.Load(x3 + p); a30 = Vector512.FusedMultiplyAdd(u0, xv, a30); a31 = Vector512.FusedMultiplyAdd(v0, xv, a31); }
            if (m > 4) { var xv = Vector512.Load(x4 + p); a40 = Vector512.FusedMultiplyAdd(u0, xv, a40); a41 = Vector512.FusedMultiplyAdd(v0, xv, a41); }
            if (m > 5) { var xv = Vector512.Load(x5 + p); a50 = Vector512.FusedMultiplyAdd(u0, xv, a50); a51 = Vector512.FusedMultiplyAdd(v0, xv, a51); }
            if (m > 6) { var xv = Vector512.Load(x6 + p); a60 = Vector512.FusedMultiplyAdd(u0, xv, a60); a61 = Vector512.FusedMultiplyAdd(v0, xv, a61); }
            if (m > 7) { var xv = Vector512.Load(x7 + p); a70 = Vector512.FusedMultiplyAdd(u0, xv, a70); a71 = Vector512.FusedMultiplyAdd(v0, xv, a71); }
            var u1 = Widen.I8x16(w0[b].Qs + 16) * s0;
            var v1 = Widen.I8x16(w1[b].Qs + 16) * s1;
            p += 16;
            { var xv = Vector512.Load(x + p); a00 = Vector512.FusedMultiplyAdd(u1, xv, a00); a01 = Vector512.FusedMultiplyAdd(v1, xv, a01); }
            if (m > 1) { var xv = Vector512.Load(x1 + p); a10 = Vector512.FusedMultiplyAdd(u1, xv, a10); a11 = Vector512.FusedMultiplyAdd(v1, xv, a11); }
            if (m > 2) { var xv = Vector512.Load(x2 + p); a20 = Vector512.FusedMultiplyAdd(u1, xv, a20); a21 = Vector512.FusedMultiplyAdd(v1, xv, a21); }
            if (m > 3) { var xv = Vector512.Load(x3 + p); a30 = Vector512.FusedMultiplyAdd(u1, xv, a30); a31 = Vector512.FusedMultiplyAdd(v1, xv, a31); }
            if (m > 4) { var xv = Vector512.Load(x4 + p); a40 = Vector512.FusedMultiplyAdd(u1, xv, a40); a41 = Vector512.FusedMultiplyAdd(v1, xv, a41); }
            if (m > 5) { var xv = Vector512.Load(x5 + p); a50 = Vector512.FusedMultiplyAdd(u1, xv, a50); a51 = Vector512.FusedMultiplyAdd(v1, xv, a51); }
            if (m > 6) { var xv = Vector512.Load(x6 + p); a60 = Vector512.FusedMultiplyAdd(u1, xv, a60); a61 = Vector512.FusedMultiplyAdd(v1, xv, a61); }
            if (m > 7) { var xv = Vector512.Load(x7 + p); a70 = Vector512.FusedMultiplyAdd(u1, xv, a70); a71 = Vector512.FusedMultiplyAdd(v1, xv, a71); }
        }
        StoreSums<TM>(sums, a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51, a60, a61, a70, a71);
    }


    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreSums<TM>(float* sums,
        Vector512<float> a00, Vector512<float> a01, Vector512<float> a10, Vector512<float> a11,
        Vector512<float> a20, Vector512<float> a21, Vector512<float> a30, Vector512<float> a31,
        Vector512<float> a40, Vector512<float> a41, Vector512<float> a50, Vector512<float> a51,
        Vector512<float> a60, Vector512<float> a61, Vector512<float> a70, Vector512<float> a71) where TM : IRowCount
    {
        int m = TM.Count;
        sums[0] = Vector512.Sum(a00); sums[1] = Vector512.Sum(a01);
        if (m > 1) { sums[2] = Vector512.Sum(a10); sums[3] = Vector512.Sum(a11); }
        if (m > 2) { sums[4] = Vector512.Sum(a20); sums[5] = Vector512.Sum(a21); }
        if (m > 3) { sums[6] = Vector512.Sum(a30); sums[7] = Vector512.Sum(a31); }
        if (m > 4) { sums[8] = Vector512.Sum(a40); sums[9] = Vector512.Sum(a41); }
        if (m > 5) { sums[10] = Vector512.Sum(a50); sums[11] = Vector512.Sum(a51); }
        if (m > 6) { sums[12] = Vector512.Sum(a60); sums[13] = Vector512.Sum(a61); }
        if (m > 7) { sums[14] = Vector512.Sum(a70); sums[15] = Vector512.Sum(a71); }
    }
}
