using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

// The GEMV dot products: one weight row against one to four X rows, per dtype and vector width.
public static unsafe partial class Gemv
{
    // Batch-1 Q8_0 rows stream from DRAM while the core widens every quant; a software prefetch 2 KiB
    // ahead keeps more lines in flight than the hardware prefetcher alone (measured on Zen 5 at
    // 4096×4096: about +6%, to ~75% of the read bandwidth; it slowed the F32 and bf16 rows, which
    // are lighter per byte, so they go without). x86 only.
    const int PrefetchAhead = 2048;

    // sums[i] = W_row · X[i] for i < m (m ≤ Group, X rows ldx apart). Batch 1 takes the four-accumulator
    // dot; larger batches widen each weight vector once and keep two accumulators per X row.
    internal static void DotRows<TL>(byte* row, float* x, nint ldx, int m, int k, SimdWidth width, float* sums) where TL : ILoad
    {
        if (m == 1 || width < SimdWidth.V256)
        {
            for (int i = 0; i < m; i++) sums[i] = Dot<TL>(row, x + i * ldx, k, width);
            return;
        }
        if (width == SimdWidth.V512) DotRows<TL, V512>(row, x, ldx, m, k, sums);
        else DotRows<TL, V256>(row, x, ldx, m, k, sums);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DotRows<TL, TV>(byte* row, float* x, nint ldx, int m, int k, float* sums) where TL : ILoad where TV : unmanaged, IVec<TV>
    {
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx;
        int n = TV.Count, p = 0;
        TV a0 = TV.Splat(0f), a1 = a0, a2 = a0, a3 = a0;
        TV b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (; p + 2 * n <= k; p += 2 * n)
        {
            var w0 = TL.Load<TV>(row, p);
            var w1 = TL.Load<TV>(row, p + n);
            a0 = TV.Fma(w0, TV.Load(x + p), a0);
            b0 = TV.Fma(w1, TV.Load(x + p + n), b0);
            a1 = TV.Fma(w0, TV.Load(x1 + p), a1);
            b1 = TV.Fma(w1, TV.Load(x1 + p + n), b1);
            if (m > 2)
            {
                a2 = TV.Fma(w0, TV.Load(x2 + p), a2);
                b2 = TV.Fma(w1, TV.Load(x2 + p + n), b2);
            }
            if (m > 3)
            {
                a3 = TV.Fma(w0, TV.Load(x3 + p), a3);
                b3 = TV.Fma(w1, TV.Load(x3 + p + n), b3);
            }
        }
        for (; p + n <= k; p += n)
        {
            var w0 = TL.Load<TV>(row, p);
            a0 = TV.Fma(w0, TV.Load(x + p), a0);
            a1 = TV.Fma(w0, TV.Load(x1 + p), a1);
            if (m > 2) a2 = TV.Fma(w0, TV.Load(x2 + p), a2);
            if (m > 3) a3 = TV.Fma(w0, TV.Load(x3 + p), a3);
        }
        sums[0] = TV.Sum(a0 + b0);
        sums[1] = TV.Sum(a1 + b1);
        if (m > 2) sums[2] = TV.Sum(a2 + b2);
        if (m > 3) sums[3] = TV.Sum(a3 + b3);
        for (; p < k; p++)
        {
            float w = TL.L1(row, p);
            for (int i = 0; i < m; i++) sums[i] += w * x[i * ldx + p];
        }
    }

    // Q8_0 for m ≤ Group X rows: each block's quants are widened once, its scale converted once; two
    // accumulators per X row over alternate blocks.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotQ8Rows(BlockQ8_0* row, float* x, nint ldx, int m, int blocks, SimdWidth width, float* sums)
    {
        if (m == 1 || width != SimdWidth.V512)
        {
            for (int i = 0; i < m; i++) sums[i] = DotQ8(row, x + i * ldx, blocks, width);
            return;
        }
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx;
        float* table = Widen.HalfTable;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
        int b = 0;
        for (; b + 2 <= blocks; b += 2, row += 2, x += 64, x1 += 64, x2 += 64, x3 += 64)
        {
            var q0 = Widen.I8x16(row[0].Qs);
            var q1 = Widen.I8x16(row[0].Qs + 16);
            var q2 = Widen.I8x16(row[1].Qs);
            var q3 = Widen.I8x16(row[1].Qs + 16);
            var d0 = Vector512.Create(table[row[0].D]);
            var d1 = Vector512.Create(table[row[1].D]);
            a0 = Vector512.FusedMultiplyAdd(d0, Vector512.FusedMultiplyAdd(q1, Vector512.Load(x + 16), q0 * Vector512.Load(x)), a0);
            b0 = Vector512.FusedMultiplyAdd(d1, Vector512.FusedMultiplyAdd(q3, Vector512.Load(x + 48), q2 * Vector512.Load(x + 32)), b0);
            a1 = Vector512.FusedMultiplyAdd(d0, Vector512.FusedMultiplyAdd(q1, Vector512.Load(x1 + 16), q0 * Vector512.Load(x1)), a1);
            b1 = Vector512.FusedMultiplyAdd(d1, Vector512.FusedMultiplyAdd(q3, Vector512.Load(x1 + 48), q2 * Vector512.Load(x1 + 32)), b1);
            if (m > 2)
            {
                a2 = Vector512.FusedMultiplyAdd(d0, Vector512.FusedMultiplyAdd(q1, Vector512.Load(x2 + 16), q0 * Vector512.Load(x2)), a2);
                b2 = Vector512.FusedMultiplyAdd(d1, Vector512.FusedMultiplyAdd(q3, Vector512.Load(x2 + 48), q2 * Vector512.Load(x2 + 32)), b2);
            }
            if (m > 3)
            {
                a3 = Vector512.FusedMultiplyAdd(d0, Vector512.FusedMultiplyAdd(q1, Vector512.Load(x3 + 16), q0 * Vector512.Load(x3)), a3);
                b3 = Vector512.FusedMultiplyAdd(d1, Vector512.FusedMultiplyAdd(q3, Vector512.Load(x3 + 48), q2 * Vector512.Load(x3 + 32)), b3);
            }
        }
        if (b < blocks)
        {
            var q0 = Widen.I8x16(row[0].Qs);
            var q1 = Widen.I8x16(row[0].Qs + 16);
            var d0 = Vector512.Create(table[row[0].D]);
            a0 = Vector512.FusedMultiplyAdd(d0, Vector512.FusedMultiplyAdd(q1, Vector512.Load(x + 16), q0 * Vector512.Load(x)), a0);
            a1 = Vector512.FusedMultiplyAdd(d0, Vector512.FusedMultiplyAdd(q1, Vector512.Load(x1 + 16), q0 * Vector512.Load(x1)), a1);
            if (m > 2) a2 = Vector512.FusedMultiplyAdd(d0, Vector512.FusedMultiplyAdd(q1, Vector512.Load(x2 + 16), q0 * Vector512.Load(x2)), a2);
            if (m > 3) a3 = Vector512.FusedMultiplyAdd(d0, Vector512.FusedMultiplyAdd(q1, Vector512.Load(x3 + 16), q0 * Vector512.Load(x3)), a3);
        }
        sums[0] = Vector512.Sum(a0 + b0);
        sums[1] = Vector512.Sum(a1 + b1);
        if (m > 2) sums[2] = Vector512.Sum(a2 + b2);
        if (m > 3) sums[3] = Vector512.Sum(a3 + b3);
    }

    // A weight row's dtype: a vector of TV.Count values widened to f32 at index p, and one value.
    internal interface ILoad
    {
        static abstract TV Load<TV>(byte* row, int p) where TV : unmanaged, IVec<TV>;
        static abstract float L1(byte* row, int p);
    }

    // Tile4 is written for 512-bit vectors only.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> L16<TL>(byte* row, int p) where TL : ILoad => Unsafe.BitCast<V512, Vector512<float>>(TL.Load<V512>(row, p));

    internal readonly struct LoadF32 : ILoad
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Load<TV>(byte* row, int p) where TV : unmanaged, IVec<TV> => TV.Load((float*)row + p);
        public static float L1(byte* row, int p) => ((float*)row)[p];
    }

    readonly struct LoadBF16 : ILoad
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Load<TV>(byte* row, int p) where TV : unmanaged, IVec<TV> => TV.Count switch
        {
            16 => Unsafe.BitCast<Vector512<float>, TV>(Widen.BF16x16((ushort*)row + p)),
            8 => Unsafe.BitCast<Vector256<float>, TV>(Widen.BF16x8((ushort*)row + p)),
            _ => Unsafe.BitCast<Vector128<float>, TV>(Widen.BF16x4((ushort*)row + p)),
        };
        public static float L1(byte* row, int p) => BFloat16.ToSingle(((ushort*)row)[p]);
    }

    readonly struct LoadF16 : ILoad
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Load<TV>(byte* row, int p) where TV : unmanaged, IVec<TV> => TV.Count switch
        {
            16 => Unsafe.BitCast<Vector512<float>, TV>(Widen.F16x16((ushort*)row + p)),
            8 => Unsafe.BitCast<Vector256<float>, TV>(Widen.F16x8((ushort*)row + p)),
            _ => Unsafe.BitCast<Vector128<float>, TV>(Widen.F16x4((ushort*)row + p)),
        };
        public static float L1(byte* row, int p) => Widen.Half(((ushort*)row)[p]);
    }

    // Four independent accumulators hide the FMA latency; they are combined in a fixed order.
    internal static float Dot<TL>(byte* row, float* x, int k, SimdWidth width) where TL : ILoad => width switch
    {
        SimdWidth.V512 => Dot<TL, V512>(row, x, k),
        SimdWidth.V256 => Dot<TL, V256>(row, x, k),
        SimdWidth.V128 => Dot<TL, V128>(row, x, k),
        _ => DotScalar<TL>(row, x, k, 0, 0),
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Dot<TL, TV>(byte* row, float* x, int k) where TL : ILoad where TV : unmanaged, IVec<TV>
    {
        int n = TV.Count, p = 0;
        TV a0 = TV.Splat(0f), a1 = a0, a2 = a0, a3 = a0;
        for (; p + 4 * n <= k; p += 4 * n)
        {
            a0 = TV.Fma(TL.Load<TV>(row, p), TV.Load(x + p), a0);
            a1 = TV.Fma(TL.Load<TV>(row, p + n), TV.Load(x + p + n), a1);
            a2 = TV.Fma(TL.Load<TV>(row, p + 2 * n), TV.Load(x + p + 2 * n), a2);
            a3 = TV.Fma(TL.Load<TV>(row, p + 3 * n), TV.Load(x + p + 3 * n), a3);
        }
        for (; p + n <= k; p += n) a0 = TV.Fma(TL.Load<TV>(row, p), TV.Load(x + p), a0);
        return DotScalar<TL>(row, x, k, p, TV.Sum((a0 + a1) + (a2 + a3)));
    }

    // The scalar twin, and the tail of the vector paths: s + Σ_{j ≥ p} w_j·x_j.
    static float DotScalar<TL>(byte* row, float* x, int k, int p, float s) where TL : ILoad
    {
        for (; p < k; p++) s += TL.L1(row, p) * x[p];
        return s;
    }

    // Per block: the 32 products q·x summed in binary32, then scaled by d (ggml's block order);
    // two accumulators over alternate blocks; d comes from the binary16 table.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotQ8(BlockQ8_0* row, float* x, int blocks, SimdWidth width)
    {
        int b = 0;
        float s = 0;
        float* table = Widen.HalfTable;
        if (width == SimdWidth.V512)
        {
            Vector512<float> a0 = default, a1 = default;
            for (; b + 2 <= blocks; b += 2, row += 2, x += 64)
            {
                if (Sse.IsSupported) Sse.Prefetch0((byte*)row + PrefetchAhead);
                var t0 = Vector512.FusedMultiplyAdd(Widen.I8x16(row[0].Qs + 16), Vector512.Load(x + 16), Widen.I8x16(row[0].Qs) * Vector512.Load(x));
                var t1 = Vector512.FusedMultiplyAdd(Widen.I8x16(row[1].Qs + 16), Vector512.Load(x + 48), Widen.I8x16(row[1].Qs) * Vector512.Load(x + 32));
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(table[row[0].D]), t0, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(table[row[1].D]), t1, a1);
            }
            if (b < blocks)
            {
                var t0 = Vector512.FusedMultiplyAdd(Widen.I8x16(row[0].Qs + 16), Vector512.Load(x + 16), Widen.I8x16(row[0].Qs) * Vector512.Load(x));
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(table[row[0].D]), t0, a0);
            }
            return Vector512.Sum(a0 + a1);
        }
        if (width == SimdWidth.V256)
        {
            Vector256<float> a0 = default, a1 = default;
            for (; b < blocks; b++, row++, x += 32)
            {
                sbyte* q = row->Qs;
                var t = Fused.V256(Widen.I8x8(q + 8), Vector256.Load(x + 8), Widen.I8x8(q) * Vector256.Load(x));
                t = Fused.V256(Widen.I8x8(q + 16), Vector256.Load(x + 16), t);
                t = Fused.V256(Widen.I8x8(q + 24), Vector256.Load(x + 24), t);
                if ((b & 1) == 0) a0 = Fused.V256(Vector256.Create(table[row->D]), t, a0);
                else a1 = Fused.V256(Vector256.Create(table[row->D]), t, a1);
            }
            return Vector256.Sum(a0 + a1);
        }
        if (width == SimdWidth.V128)
        {
            Vector128<float> a0 = default, a1 = default;
            for (; b < blocks; b++, row++, x += 32)
            {
                sbyte* q = row->Qs;
                var t = Widen.I8x4(q) * Vector128.Load(x);
                for (int j = 4; j < 32; j += 4) t = Fused.V128(Widen.I8x4(q + j), Vector128.Load(x + j), t);
                if ((b & 1) == 0) a0 = Fused.V128(Vector128.Create(table[row->D]), t, a0);
                else a1 = Fused.V128(Vector128.Create(table[row->D]), t, a1);
            }
            return Vector128.Sum(a0 + a1);
        }
        for (; b < blocks; b++, row++, x += 32)
        {
            float t = 0;
            for (int j = 0; j < 32; j++) t += row->Qs[j] * x[j];
            s += table[row->D] * t;
        }
        return s;
    }

    // 4 weight rows × m ≤ 4 X rows as one tile: each widened weight vector meets m X vectors and each
    // X vector 4 weight vectors, so X (which outgrows L1 at K = 4096) is read a quarter as often.
    // sums[r·4 + s] = W_s · X_r.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Tile4<TL>(byte* w0, byte* w1, byte* w2, byte* w3, float* x, nint ldx, int m, int k, float* sums) where TL : ILoad
    {
        Vector512<float> a00 = default; Vector512<float> a01 = default; Vector512<float> a02 = default; Vector512<float> a03 = default;
        Vector512<float> a10 = default; Vector512<float> a11 = default; Vector512<float> a12 = default; Vector512<float> a13 = default;
        Vector512<float> a20 = default; Vector512<float> a21 = default; Vector512<float> a22 = default; Vector512<float> a23 = default;
        Vector512<float> a30 = default; Vector512<float> a31 = default; Vector512<float> a32 = default; Vector512<float> a33 = default;
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var v0 = L16<TL>(w0, p); var v1 = L16<TL>(w1, p); var v2 = L16<TL>(w2, p); var v3 = L16<TL>(w3, p);
            var xv0 = Vector512.Load(x + p);
            a00 = Vector512.FusedMultiplyAdd(v0, xv0, a00); a01 = Vector512.FusedMultiplyAdd(v1, xv0, a01); a02 = Vector512.FusedMultiplyAdd(v2, xv0, a02); a03 = Vector512.FusedMultiplyAdd(v3, xv0, a03);
            if (m > 1)
            {
                var xv1 = Vector512.Load(x1 + p);
                a10 = Vector512.FusedMultiplyAdd(v0, xv1, a10); a11 = Vector512.FusedMultiplyAdd(v1, xv1, a11); a12 = Vector512.FusedMultiplyAdd(v2, xv1, a12); a13 = Vector512.FusedMultiplyAdd(v3, xv1, a13);
            }
            if (m > 2)
            {
                var xv2 = Vector512.Load(x2 + p);
                a20 = Vector512.FusedMultiplyAdd(v0, xv2, a20); a21 = Vector512.FusedMultiplyAdd(v1, xv2, a21); a22 = Vector512.FusedMultiplyAdd(v2, xv2, a22); a23 = Vector512.FusedMultiplyAdd(v3, xv2, a23);
            }
            if (m > 3)
            {
                var xv3 = Vector512.Load(x3 + p);
                a30 = Vector512.FusedMultiplyAdd(v0, xv3, a30); a31 = Vector512.FusedMultiplyAdd(v1, xv3, a31); a32 = Vector512.FusedMultiplyAdd(v2, xv3, a32); a33 = Vector512.FusedMultiplyAdd(v3, xv3, a33);
            }
        }
        sums[0] = Vector512.Sum(a00); sums[1] = Vector512.Sum(a01); sums[2] = Vector512.Sum(a02); sums[3] = Vector512.Sum(a03);
        if (m > 1) { sums[4] = Vector512.Sum(a10); sums[5] = Vector512.Sum(a11); sums[6] = Vector512.Sum(a12); sums[7] = Vector512.Sum(a13); }
        if (m > 2) { sums[8] = Vector512.Sum(a20); sums[9] = Vector512.Sum(a21); sums[10] = Vector512.Sum(a22); sums[11] = Vector512.Sum(a23); }
        if (m > 3) { sums[12] = Vector512.Sum(a30); sums[13] = Vector512.Sum(a31); sums[14] = Vector512.Sum(a32); sums[15] = Vector512.Sum(a33); }
        for (; p < k; p++)
        {
            float f0 = TL.L1(w0, p), f1 = TL.L1(w1, p), f2 = TL.L1(w2, p), f3 = TL.L1(w3, p);
            for (int r = 0; r < m; r++)
            {
                float xr = x[r * ldx + p];
                sums[r * 4] += f0 * xr; sums[r * 4 + 1] += f1 * xr; sums[r * 4 + 2] += f2 * xr; sums[r * 4 + 3] += f3 * xr;
            }
        }
    }

    // The Q8_0 form of Tile4: per block, the 32 products of each (weight row, X row) pair, then the
    // weight row's block scale.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Tile4Q8(BlockQ8_0* w0, BlockQ8_0* w1, BlockQ8_0* w2, BlockQ8_0* w3, float* x, nint ldx, int m, int blocks, float* table, float* sums)
    {
        Vector512<float> a00 = default; Vector512<float> a01 = default; Vector512<float> a02 = default; Vector512<float> a03 = default;
        Vector512<float> a10 = default; Vector512<float> a11 = default; Vector512<float> a12 = default; Vector512<float> a13 = default;
        Vector512<float> a20 = default; Vector512<float> a21 = default; Vector512<float> a22 = default; Vector512<float> a23 = default;
        Vector512<float> a30 = default; Vector512<float> a31 = default; Vector512<float> a32 = default; Vector512<float> a33 = default;
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx;
        for (int b = 0; b < blocks; b++, x += 32, x1 += 32, x2 += 32, x3 += 32)
        {
            var x00 = Vector512.Load(x); var x01 = Vector512.Load(x + 16);
            Vector512<float> x10 = default, x11 = default, x20 = default, x21 = default, x30 = default, x31 = default;
            if (m > 1) { x10 = Vector512.Load(x1); x11 = Vector512.Load(x1 + 16); }
            if (m > 2) { x20 = Vector512.Load(x2); x21 = Vector512.Load(x2 + 16); }
            if (m > 3) { x30 = Vector512.Load(x3); x31 = Vector512.Load(x3 + 16); }
            {
                var q0 = Widen.I8x16(w0[b].Qs); var q1 = Widen.I8x16(w0[b].Qs + 16); var d = Vector512.Create(table[w0[b].D]);
                a00 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x01, q0 * x00), a00);
                if (m > 1) a10 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x11, q0 * x10), a10);
                if (m > 2) a20 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x21, q0 * x20), a20);
                if (m > 3) a30 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x31, q0 * x30), a30);
            }
            {
                var q0 = Widen.I8x16(w1[b].Qs); var q1 = Widen.I8x16(w1[b].Qs + 16); var d = Vector512.Create(table[w1[b].D]);
                a01 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x01, q0 * x00), a01);
                if (m > 1) a11 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x11, q0 * x10), a11);
                if (m > 2) a21 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x21, q0 * x20), a21);
                if (m > 3) a31 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x31, q0 * x30), a31);
            }
            {
                var q0 = Widen.I8x16(w2[b].Qs); var q1 = Widen.I8x16(w2[b].Qs + 16); var d = Vector512.Create(table[w2[b].D]);
                a02 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x01, q0 * x00), a02);
                if (m > 1) a12 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x11, q0 * x10), a12);
                if (m > 2) a22 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x21, q0 * x20), a22);
                if (m > 3) a32 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x31, q0 * x30), a32);
            }
            {
                var q0 = Widen.I8x16(w3[b].Qs); var q1 = Widen.I8x16(w3[b].Qs + 16); var d = Vector512.Create(table[w3[b].D]);
                a03 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x01, q0 * x00), a03);
                if (m > 1) a13 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x11, q0 * x10), a13);
                if (m > 2) a23 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x21, q0 * x20), a23);
                if (m > 3) a33 = Vector512.FusedMultiplyAdd(d, Vector512.FusedMultiplyAdd(q1, x31, q0 * x30), a33);
            }
        }
        sums[0] = Vector512.Sum(a00); sums[1] = Vector512.Sum(a01); sums[2] = Vector512.Sum(a02); sums[3] = Vector512.Sum(a03);
        if (m > 1) { sums[4] = Vector512.Sum(a10); sums[5] = Vector512.Sum(a11); sums[6] = Vector512.Sum(a12); sums[7] = Vector512.Sum(a13); }
        if (m > 2) { sums[8] = Vector512.Sum(a20); sums[9] = Vector512.Sum(a21); sums[10] = Vector512.Sum(a22); sums[11] = Vector512.Sum(a23); }
        if (m > 3) { sums[12] = Vector512.Sum(a30); sums[13] = Vector512.Sum(a31); sums[14] = Vector512.Sum(a32); sums[15] = Vector512.Sum(a33); }
    }
}
