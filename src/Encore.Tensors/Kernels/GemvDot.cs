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
                if (Sse.IsSupported)
                {
                    Sse.Prefetch0((byte*)row + PrefetchAhead);
                    Sse.Prefetch0((byte*)row + PrefetchAhead + 64);
                }
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
}
