using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

// The batched GEMV on 512-bit vectors: two weight rows against up to eight X rows in one pass, so each weight
// vector read from memory meets every X row while it is in a register; meanwhile the next pair of rows is
// prefetched front to back, one sequential stream.
//
// Why: a batch-8 decode step is bound neither by the FMA units nor by the read bandwidth but by how many weight
// lines are in flight while the core multiplies. With 4 × 4 tiles a batch of eight took two passes over each group
// of four weight rows, and the second pass (weights in L1) issued no memory reads at all. Measured on the T5-base
// decoder's matrices (12 layers, 453 MB of binary32, 2 threads, Zen 5): batch 8 went from 17.2 to 11–13 ms per step,
// Q8_0 from 13–15 to 7–8 ms. Without a software prefetch the 2 × 8 tile alone was slower than the 4 × 4 one;
// prefetching each row 8–32 KiB ahead, or the next pair as one stream, measured alike (the stream slightly better
// at 2 and 5 rows). One weight row against eight X rows (one stream, twice the X loads) was slower: 15.8 against
// 11.9 ms.
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
    /// <summary>Bytes of weight rows that the passes of a batch larger than <see cref="WidePass"/> share while they sit in L2 (64–256 KiB measured alike, 512 KiB slower).</summary>
    const long WideBlockBytes = 256 * 1024;

    /// <summary>X rows of one wide pass.</summary>
    const int WidePass = 8;

    internal interface IRowCount { static abstract int Count { get; } }
    internal readonly struct R1 : IRowCount { public static int Count => 1; }
    internal readonly struct R2 : IRowCount { public static int Count => 2; }
    internal readonly struct R3 : IRowCount { public static int Count => 3; }
    internal readonly struct R4 : IRowCount { public static int Count => 4; }
    internal readonly struct R5 : IRowCount { public static int Count => 5; }
    internal readonly struct R6 : IRowCount { public static int Count => 6; }
    internal readonly struct R7 : IRowCount { public static int Count => 7; }
    internal readonly struct R8 : IRowCount { public static int Count => 8; }

    /// <summary>
    /// Whether a batch of <paramref name="m"/> X rows with <paramref name="weights"/> at <paramref name="width"/> runs the wide tiles
    /// (with binary32 X): every batch of two or more rows of binary32, bf16, f16 or Q8_0 weights on 512-bit vectors, so a row gets
    /// the same bits in any such batch. Binary32 at 2–4 rows measured 8.8–10.0 ms against 9.9–12.5 for the 4 × 4 tiles.
    /// </summary>
    internal static bool TakesWideTiles(SimdWidth width, DType weights, int m)
        => width == SimdWidth.V512 && m >= 2 && weights is DType.F32 or DType.BF16 or DType.F16 or DType.Q8_0;

    // sums[r·2 + s] = W_s · X_r for r < m ≤ WidePass; m picks the instantiation, so unused rows cost nothing.
    internal static void Tile2<TL>(byte* w0, byte* w1, byte* ahead, nint aheadStep, float* x, nint ldx, int m, int k, float* sums) where TL : ILoad
    {
        switch (m)
        {
            case 1: Tile2<TL, R1>(w0, w1, ahead, aheadStep, x, ldx, k, sums); break;
            case 2: Tile2<TL, R2>(w0, w1, ahead, aheadStep, x, ldx, k, sums); break;
            case 3: Tile2<TL, R3>(w0, w1, ahead, aheadStep, x, ldx, k, sums); break;
            case 4: Tile2<TL, R4>(w0, w1, ahead, aheadStep, x, ldx, k, sums); break;
            case 5: Tile2<TL, R5>(w0, w1, ahead, aheadStep, x, ldx, k, sums); break;
            case 6: Tile2<TL, R6>(w0, w1, ahead, aheadStep, x, ldx, k, sums); break;
            case 7: Tile2<TL, R7>(w0, w1, ahead, aheadStep, x, ldx, k, sums); break;
            default: Tile2<TL, R8>(w0, w1, ahead, aheadStep, x, ldx, k, sums); break;
        }
    }

    internal static void Tile2Q8(BlockQ8_0* w0, BlockQ8_0* w1, byte* ahead, float* x, nint ldx, int m, int blocks, float* table, float* sums)
    {
        switch (m)
        {
            case 1: Tile2Q8<R1>(w0, w1, ahead, x, ldx, blocks, table, sums); break;
            case 2: Tile2Q8<R2>(w0, w1, ahead, x, ldx, blocks, table, sums); break;
            case 3: Tile2Q8<R3>(w0, w1, ahead, x, ldx, blocks, table, sums); break;
            case 4: Tile2Q8<R4>(w0, w1, ahead, x, ldx, blocks, table, sums); break;
            case 5: Tile2Q8<R5>(w0, w1, ahead, x, ldx, blocks, table, sums); break;
            case 6: Tile2Q8<R6>(w0, w1, ahead, x, ldx, blocks, table, sums); break;
            case 7: Tile2Q8<R7>(w0, w1, ahead, x, ldx, blocks, table, sums); break;
            default: Tile2Q8<R8>(w0, w1, ahead, x, ldx, blocks, table, sums); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile2<TL, TM>(byte* w0, byte* w1, byte* ahead, nint aheadStep, float* x, nint ldx, int k, float* sums) where TL : ILoad where TM : IRowCount
    {
        int m = TM.Count;
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        Vector512<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a61 = default, a70 = default, a71 = default;
        // Rows 0–3 from x, rows 4–7 from x + 4·ldx, each at offset 0, ldx, 2·ldx, 3·ldx: four pointer registers instead of eight.
        float* xh = x + 4 * ldx;
        nint ldx2 = 2 * ldx, ldx3 = 3 * ldx;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            if (Sse.IsSupported) PrefetchStep(ahead, (int)aheadStep);
            ahead += aheadStep;
            var v0 = L16<TL>(w0, p);
            var v1 = L16<TL>(w1, p);
            float* xp = x + p, hp = xh + p;
            { var xv = Vector512.Load(xp); a00 = Vector512.FusedMultiplyAdd(v0, xv, a00); a01 = Vector512.FusedMultiplyAdd(v1, xv, a01); }
            if (m > 1) { var xv = Vector512.Load(xp + ldx); a10 = Vector512.FusedMultiplyAdd(v0, xv, a10); a11 = Vector512.FusedMultiplyAdd(v1, xv, a11); }
            if (m > 2) { var xv = Vector512.Load(xp + ldx2); a20 = Vector512.FusedMultiplyAdd(v0, xv, a20); a21 = Vector512.FusedMultiplyAdd(v1, xv, a21); }
            if (m > 3) { var xv = Vector512.Load(xp + ldx3); a30 = Vector512.FusedMultiplyAdd(v0, xv, a30); a31 = Vector512.FusedMultiplyAdd(v1, xv, a31); }
            if (m > 4) { var xv = Vector512.Load(hp); a40 = Vector512.FusedMultiplyAdd(v0, xv, a40); a41 = Vector512.FusedMultiplyAdd(v1, xv, a41); }
            if (m > 5) { var xv = Vector512.Load(hp + ldx); a50 = Vector512.FusedMultiplyAdd(v0, xv, a50); a51 = Vector512.FusedMultiplyAdd(v1, xv, a51); }
            if (m > 6) { var xv = Vector512.Load(hp + ldx2); a60 = Vector512.FusedMultiplyAdd(v0, xv, a60); a61 = Vector512.FusedMultiplyAdd(v1, xv, a61); }
            if (m > 7) { var xv = Vector512.Load(hp + ldx3); a70 = Vector512.FusedMultiplyAdd(v0, xv, a70); a71 = Vector512.FusedMultiplyAdd(v1, xv, a71); }
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

    // Tile2 over Q8_0 rows, dequantizing each block once for both of its 16-value steps. (Tile2 with a dequantizing
    // ILoad, which would share this body, took 3.5× as long: a scale lookup per step, and the load did not inline.)
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile2Q8<TM>(BlockQ8_0* w0, BlockQ8_0* w1, byte* ahead, float* x, nint ldx, int blocks, float* table, float* sums) where TM : IRowCount
    {
        int m = TM.Count;
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        Vector512<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a61 = default, a70 = default, a71 = default;
        // Rows 0–3 from x, rows 4–7 from x + 4·ldx, each at offset 0, ldx, 2·ldx, 3·ldx: four pointer registers instead of eight.
        float* xh = x + 4 * ldx;
        nint ldx2 = 2 * ldx, ldx3 = 3 * ldx;
        for (int b = 0; b < blocks; b++)
        {
            if (Sse.IsSupported) PrefetchStep(ahead, 2 * DTypes.Q8BlockBytes);
            ahead += 2 * DTypes.Q8BlockBytes;
            var s0 = Vector512.Create(table[w0[b].D]);
            var s1 = Vector512.Create(table[w1[b].D]);
            var u0 = Widen.I8x16(w0[b].Qs) * s0;
            var v0 = Widen.I8x16(w1[b].Qs) * s1;
            float* xp = x + (nint)b * DTypes.Q8BlockSize, hp = xh + (nint)b * DTypes.Q8BlockSize;
            { var xv = Vector512.Load(xp); a00 = Vector512.FusedMultiplyAdd(u0, xv, a00); a01 = Vector512.FusedMultiplyAdd(v0, xv, a01); }
            if (m > 1) { var xv = Vector512.Load(xp + ldx); a10 = Vector512.FusedMultiplyAdd(u0, xv, a10); a11 = Vector512.FusedMultiplyAdd(v0, xv, a11); }
            if (m > 2) { var xv = Vector512.Load(xp + ldx2); a20 = Vector512.FusedMultiplyAdd(u0, xv, a20); a21 = Vector512.FusedMultiplyAdd(v0, xv, a21); }
            if (m > 3) { var xv = Vector512.Load(xp + ldx3); a30 = Vector512.FusedMultiplyAdd(u0, xv, a30); a31 = Vector512.FusedMultiplyAdd(v0, xv, a31); }
            if (m > 4) { var xv = Vector512.Load(hp); a40 = Vector512.FusedMultiplyAdd(u0, xv, a40); a41 = Vector512.FusedMultiplyAdd(v0, xv, a41); }
            if (m > 5) { var xv = Vector512.Load(hp + ldx); a50 = Vector512.FusedMultiplyAdd(u0, xv, a50); a51 = Vector512.FusedMultiplyAdd(v0, xv, a51); }
            if (m > 6) { var xv = Vector512.Load(hp + ldx2); a60 = Vector512.FusedMultiplyAdd(u0, xv, a60); a61 = Vector512.FusedMultiplyAdd(v0, xv, a61); }
            if (m > 7) { var xv = Vector512.Load(hp + ldx3); a70 = Vector512.FusedMultiplyAdd(u0, xv, a70); a71 = Vector512.FusedMultiplyAdd(v0, xv, a71); }
            var u1 = Widen.I8x16(w0[b].Qs + 16) * s0;
            var v1 = Widen.I8x16(w1[b].Qs + 16) * s1;
            xp += 16;
            hp += 16;
            { var xv = Vector512.Load(xp); a00 = Vector512.FusedMultiplyAdd(u1, xv, a00); a01 = Vector512.FusedMultiplyAdd(v1, xv, a01); }
            if (m > 1) { var xv = Vector512.Load(xp + ldx); a10 = Vector512.FusedMultiplyAdd(u1, xv, a10); a11 = Vector512.FusedMultiplyAdd(v1, xv, a11); }
            if (m > 2) { var xv = Vector512.Load(xp + ldx2); a20 = Vector512.FusedMultiplyAdd(u1, xv, a20); a21 = Vector512.FusedMultiplyAdd(v1, xv, a21); }
            if (m > 3) { var xv = Vector512.Load(xp + ldx3); a30 = Vector512.FusedMultiplyAdd(u1, xv, a30); a31 = Vector512.FusedMultiplyAdd(v1, xv, a31); }
            if (m > 4) { var xv = Vector512.Load(hp); a40 = Vector512.FusedMultiplyAdd(u1, xv, a40); a41 = Vector512.FusedMultiplyAdd(v1, xv, a41); }
            if (m > 5) { var xv = Vector512.Load(hp + ldx); a50 = Vector512.FusedMultiplyAdd(u1, xv, a50); a51 = Vector512.FusedMultiplyAdd(v1, xv, a51); }
            if (m > 6) { var xv = Vector512.Load(hp + ldx2); a60 = Vector512.FusedMultiplyAdd(u1, xv, a60); a61 = Vector512.FusedMultiplyAdd(v1, xv, a61); }
            if (m > 7) { var xv = Vector512.Load(hp + ldx3); a70 = Vector512.FusedMultiplyAdd(u1, xv, a70); a71 = Vector512.FusedMultiplyAdd(v1, xv, a71); }
        }
        StoreSums<TM>(sums, a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51, a60, a61, a70, a71);
    }


    // The 2m sums in the order sums[r·2 + s], four at a time (rows r and r + 1): sums of rows past m are zeros.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreSums<TM>(float* sums,
        Vector512<float> a00, Vector512<float> a01, Vector512<float> a10, Vector512<float> a11,
        Vector512<float> a20, Vector512<float> a21, Vector512<float> a30, Vector512<float> a31,
        Vector512<float> a40, Vector512<float> a41, Vector512<float> a50, Vector512<float> a51,
        Vector512<float> a60, Vector512<float> a61, Vector512<float> a70, Vector512<float> a71) where TM : IRowCount
    {
        int m = TM.Count;
        Sum4(a00, a01, a10, a11).Store(sums);
        if (m > 2) Sum4(a20, a21, a30, a31).Store(sums + 4);
        if (m > 4) Sum4(a40, a41, a50, a51).Store(sums + 8);
        if (m > 6) Sum4(a60, a61, a70, a71).Store(sums + 12);
    }

    // [Σa, Σb, Σc, Σd] in 13 operations instead of four separate reductions (~25 each as Vector512.Sum compiles): halves
    // added, then three horizontal adds whose 128-bit halves hold the four partial sums, then the halves added.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        var h = Avx.HorizontalAdd(
            Avx.HorizontalAdd(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper()),
            Avx.HorizontalAdd(c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper()));
        return h.GetLower() + h.GetUpper();
    }
}
