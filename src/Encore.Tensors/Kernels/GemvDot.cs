using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

// The GEMV dot products: one weight row against one to four X rows, per dtype and vector width.
public static unsafe partial class Gemv
{
    // sums[i] = W_row · X[i] for i < m (m ≤ Group, X rows ldx apart). Batch 1 takes the four-accumulator
    // dot; larger batches widen each weight vector once and keep two accumulators per X row.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotRows<TL>(byte* row, float* x, nint ldx, int m, int k, SimdWidth width, float* sums) where TL : ILoad
    {
        if (m == 1 || width < SimdWidth.V256)
        {
            for (int i = 0; i < m; i++) sums[i] = Dot<TL>(row, x + i * ldx, k, width);
            return;
        }
        float* x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx;
        int p = 0;
        if (width == SimdWidth.V512)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            for (; p + 32 <= k; p += 32)
            {
                var w0 = TL.L16(row, p);
                var w1 = TL.L16(row, p + 16);
                a0 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x + p), a0);
                b0 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x + p + 16), b0);
                a1 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x1 + p), a1);
                b1 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x1 + p + 16), b1);
                if (m > 2)
                {
                    a2 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x2 + p), a2);
                    b2 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x2 + p + 16), b2);
                }
                if (m > 3)
                {
                    a3 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x3 + p), a3);
                    b3 = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x3 + p + 16), b3);
                }
            }
            for (; p + 16 <= k; p += 16)
            {
                var w0 = TL.L16(row, p);
                a0 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x + p), a0);
                a1 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x1 + p), a1);
                if (m > 2) a2 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x2 + p), a2);
                if (m > 3) a3 = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x3 + p), a3);
            }
            sums[0] = Vector512.Sum(a0 + b0);
            sums[1] = Vector512.Sum(a1 + b1);
            if (m > 2) sums[2] = Vector512.Sum(a2 + b2);
            if (m > 3) sums[3] = Vector512.Sum(a3 + b3);
        }
        else
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
            for (; p + 16 <= k; p += 16)
            {
                var w0 = TL.L8(row, p);
                var w1 = TL.L8(row, p + 8);
                a0 = Fused.V256(w0, Vector256.Load(x + p), a0);
                b0 = Fused.V256(w1, Vector256.Load(x + p + 8), b0);
                a1 = Fused.V256(w0, Vector256.Load(x1 + p), a1);
                b1 = Fused.V256(w1, Vector256.Load(x1 + p + 8), b1);
                if (m > 2)
                {
                    a2 = Fused.V256(w0, Vector256.Load(x2 + p), a2);
                    b2 = Fused.V256(w1, Vector256.Load(x2 + p + 8), b2);
                }
                if (m > 3)
                {
                    a3 = Fused.V256(w0, Vector256.Load(x3 + p), a3);
                    b3 = Fused.V256(w1, Vector256.Load(x3 + p + 8), b3);
                }
            }
            for (; p + 8 <= k; p += 8)
            {
                var w0 = TL.L8(row, p);
                a0 = Fused.V256(w0, Vector256.Load(x + p), a0);
                a1 = Fused.V256(w0, Vector256.Load(x1 + p), a1);
                if (m > 2) a2 = Fused.V256(w0, Vector256.Load(x2 + p), a2);
                if (m > 3) a3 = Fused.V256(w0, Vector256.Load(x3 + p), a3);
            }
            sums[0] = Vector256.Sum(a0 + b0);
            sums[1] = Vector256.Sum(a1 + b1);
            if (m > 2) sums[2] = Vector256.Sum(a2 + b2);
            if (m > 3) sums[3] = Vector256.Sum(a3 + b3);
        }
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

    internal interface ILoad
    {
        static abstract Vector512<float> L16(byte* row, int p);
        static abstract Vector256<float> L8(byte* row, int p);
        static abstract Vector128<float> L4(byte* row, int p);
        static abstract float L1(byte* row, int p);
    }

    internal readonly struct LoadF32 : ILoad
    {
        public static Vector512<float> L16(byte* row, int p) => Vector512.Load((float*)row + p);
        public static Vector256<float> L8(byte* row, int p) => Vector256.Load((float*)row + p);
        public static Vector128<float> L4(byte* row, int p) => Vector128.Load((float*)row + p);
        public static float L1(byte* row, int p) => ((float*)row)[p];
    }

    readonly struct LoadBF16 : ILoad
    {
        public static Vector512<float> L16(byte* row, int p) => Widen.BF16x16((ushort*)row + p);
        public static Vector256<float> L8(byte* row, int p) => Widen.BF16x8((ushort*)row + p);
        public static Vector128<float> L4(byte* row, int p) => Widen.BF16x4((ushort*)row + p);
        public static float L1(byte* row, int p) => BFloat16.ToSingle(((ushort*)row)[p]);
    }

    readonly struct LoadF16 : ILoad
    {
        public static Vector512<float> L16(byte* row, int p) => Widen.F16x16((ushort*)row + p);
        public static Vector256<float> L8(byte* row, int p) => Widen.F16x8((ushort*)row + p);
        public static Vector128<float> L4(byte* row, int p) => Widen.F16x4((ushort*)row + p);
        public static float L1(byte* row, int p) => Widen.Half(((ushort*)row)[p]);
    }

    // Four independent accumulators hide the FMA latency; they are combined in a fixed order.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Dot<TL>(byte* row, float* x, int k, SimdWidth width) where TL : ILoad
    {
        int p = 0;
        float s = 0;
        if (width == SimdWidth.V512)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; p + 64 <= k; p += 64)
            {
                a0 = Vector512.FusedMultiplyAdd(TL.L16(row, p), Vector512.Load(x + p), a0);
                a1 = Vector512.FusedMultiplyAdd(TL.L16(row, p + 16), Vector512.Load(x + p + 16), a1);
                a2 = Vector512.FusedMultiplyAdd(TL.L16(row, p + 32), Vector512.Load(x + p + 32), a2);
                a3 = Vector512.FusedMultiplyAdd(TL.L16(row, p + 48), Vector512.Load(x + p + 48), a3);
            }
            for (; p + 16 <= k; p += 16) a0 = Vector512.FusedMultiplyAdd(TL.L16(row, p), Vector512.Load(x + p), a0);
            s = Vector512.Sum((a0 + a1) + (a2 + a3));
        }
        else if (width == SimdWidth.V256)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; p + 32 <= k; p += 32)
            {
                a0 = Fused.V256(TL.L8(row, p), Vector256.Load(x + p), a0);
                a1 = Fused.V256(TL.L8(row, p + 8), Vector256.Load(x + p + 8), a1);
                a2 = Fused.V256(TL.L8(row, p + 16), Vector256.Load(x + p + 16), a2);
                a3 = Fused.V256(TL.L8(row, p + 24), Vector256.Load(x + p + 24), a3);
            }
            for (; p + 8 <= k; p += 8) a0 = Fused.V256(TL.L8(row, p), Vector256.Load(x + p), a0);
            s = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
        else if (width == SimdWidth.V128)
        {
            Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; p + 16 <= k; p += 16)
            {
                a0 = Fused.V128(TL.L4(row, p), Vector128.Load(x + p), a0);
                a1 = Fused.V128(TL.L4(row, p + 4), Vector128.Load(x + p + 4), a1);
                a2 = Fused.V128(TL.L4(row, p + 8), Vector128.Load(x + p + 8), a2);
                a3 = Fused.V128(TL.L4(row, p + 12), Vector128.Load(x + p + 12), a3);
            }
            for (; p + 4 <= k; p += 4) a0 = Fused.V128(TL.L4(row, p), Vector128.Load(x + p), a0);
            s = Vector128.Sum((a0 + a1) + (a2 + a3));
        }
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
