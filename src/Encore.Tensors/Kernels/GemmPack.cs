using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Encore.Tensors.Kernels;

// Packing of op(B) into the 32-wide panels the micro-kernels read (see GemmDriver.cs).
public static partial class Gemm
{
    internal static readonly unsafe float* s_zeroRow = AllocZeroRow();

    static unsafe float* AllocZeroRow()
    {
        var p = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(KC * sizeof(float), 64);
        System.Runtime.InteropServices.NativeMemory.Clear(p, KC * sizeof(float));
        return p;
    }

    // Packs rows [p0, p0+kc) × cols [j0, j0+nc) of op(B) into 32-wide panels (kc rows of 32 floats,
    // panels consecutive); columns past nc are zero.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void PackB(in BSource b, int p0, int kc, int j0, int nc, float* dst, SimdWidth width)
    {
        if (b.Kind == BKind.Strided && b.Cs == 1)
        {
            // Rows of B are contiguous: read each once, front to back, and deal it out to the panels
            // (going panel by panel instead would touch a new page on every row of a wide B).
            int full = nc / PanelWidth * PanelWidth;
            for (int p = 0; p < kc; p++)
            {
                float* s = b.P + (p0 + p) * b.Rs + j0;
                float* dp = dst + p * PanelWidth;
                int jp = 0;
                for (; jp < full; jp += PanelWidth)
                    Unsafe.CopyBlockUnaligned(dp + (nint)jp * kc, s + jp, PanelWidth * sizeof(float));
                if (jp < nc)
                {
                    float* t = dp + (nint)jp * kc;
                    int j = 0;
                    for (; j < nc - jp; j++) t[j] = s[jp + j];
                    for (; j < PanelWidth; j++) t[j] = 0;
                }
            }
            return;
        }
        float** rows = stackalloc float*[PanelWidth];
        for (int jp = 0; jp < nc; jp += PanelWidth)
        {
            int nEff = Math.Min(PanelWidth, nc - jp);
            float* d = dst + (nint)jp * kc;
            if (b.Kind == BKind.Strided && b.Rs != 1)
            {
                // General strides (neither operand layout of Multiply produces this; kept for completeness).
                for (int jj = 0; jj < PanelWidth; jj++)
                {
                    float* s = b.P + (j0 + jp + jj) * b.Cs + p0 * b.Rs;
                    for (int p = 0; p < kc; p++) d[p * PanelWidth + jj] = jj < nEff ? s[p * b.Rs] : 0;
                }
                continue;
            }
            // op(B) columns are contiguous rows in memory (Bᵀ stored, or a weight matrix W): gather the
            // 32 row pointers (weights widened to binary32 first), then transpose into the panel.
            float* widened = RowScratch();
            for (int jj = 0; jj < PanelWidth; jj++)
            {
                int j = j0 + jp + jj;
                if (jj >= nEff) rows[jj] = s_zeroRow;
                else if (b.Kind == BKind.Strided) rows[jj] = b.P + j * b.Cs + p0;
                else if (b.W.DType == DType.F32) rows[jj] = (float*)b.W.Row(j) + p0;
                else
                {
                    rows[jj] = widened + jj * KC;
                    Widen.Row(b.W, j, p0, kc, rows[jj], width);
                }
            }
            TransposeRows(rows, PanelWidth, kc, d, PanelWidth);
        }
    }

    // d[p·stride + r] = rows[r][p] for r < count (≤ stride), p < kc: 8×8 AVX and 4×4 SSE transposes,
    // scalar for leftover rows and the kc tail.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void TransposeRows(float** rows, int count, int kc, float* d, int stride)
    {
        int g = 0;
        if (Avx.IsSupported)
        {
            for (; g + 8 <= count; g += 8)
            {
                float** r = rows + g;
                for (int p = 0; p + 8 <= kc; p += 8)
                {
                    var t0 = Avx.UnpackLow(Avx.LoadVector256(r[0] + p), Avx.LoadVector256(r[1] + p));
                    var t1 = Avx.UnpackHigh(Avx.LoadVector256(r[0] + p), Avx.LoadVector256(r[1] + p));
                    var t2 = Avx.UnpackLow(Avx.LoadVector256(r[2] + p), Avx.LoadVector256(r[3] + p));
                    var t3 = Avx.UnpackHigh(Avx.LoadVector256(r[2] + p), Avx.LoadVector256(r[3] + p));
                    var t4 = Avx.UnpackLow(Avx.LoadVector256(r[4] + p), Avx.LoadVector256(r[5] + p));
                    var t5 = Avx.UnpackHigh(Avx.LoadVector256(r[4] + p), Avx.LoadVector256(r[5] + p));
                    var t6 = Avx.UnpackLow(Avx.LoadVector256(r[6] + p), Avx.LoadVector256(r[7] + p));
                    var t7 = Avx.UnpackHigh(Avx.LoadVector256(r[6] + p), Avx.LoadVector256(r[7] + p));
                    var u0 = Avx.Shuffle(t0, t2, 0x44);
                    var u1 = Avx.Shuffle(t0, t2, 0xEE);
                    var u2 = Avx.Shuffle(t1, t3, 0x44);
                    var u3 = Avx.Shuffle(t1, t3, 0xEE);
                    var u4 = Avx.Shuffle(t4, t6, 0x44);
                    var u5 = Avx.Shuffle(t4, t6, 0xEE);
                    var u6 = Avx.Shuffle(t5, t7, 0x44);
                    var u7 = Avx.Shuffle(t5, t7, 0xEE);
                    float* o = d + (nint)p * stride + g;
                    Avx.Store(o, Avx.Permute2x128(u0, u4, 0x20));
                    Avx.Store(o + stride, Avx.Permute2x128(u1, u5, 0x20));
                    Avx.Store(o + 2 * stride, Avx.Permute2x128(u2, u6, 0x20));
                    Avx.Store(o + 3 * stride, Avx.Permute2x128(u3, u7, 0x20));
                    Avx.Store(o + 4 * stride, Avx.Permute2x128(u0, u4, 0x31));
                    Avx.Store(o + 5 * stride, Avx.Permute2x128(u1, u5, 0x31));
                    Avx.Store(o + 6 * stride, Avx.Permute2x128(u2, u6, 0x31));
                    Avx.Store(o + 7 * stride, Avx.Permute2x128(u3, u7, 0x31));
                }
                for (int p = kc & ~7; p < kc; p++)
                    for (int i = 0; i < 8; i++) d[(nint)p * stride + g + i] = r[i][p];
            }
        }
        if (Sse.IsSupported)
        {
            for (; g + 4 <= count; g += 4)
            {
                float** r = rows + g;
                for (int p = 0; p + 4 <= kc; p += 4)
                {
                    var t0 = Sse.UnpackLow(Sse.LoadVector128(r[0] + p), Sse.LoadVector128(r[1] + p));
                    var t1 = Sse.UnpackHigh(Sse.LoadVector128(r[0] + p), Sse.LoadVector128(r[1] + p));
                    var t2 = Sse.UnpackLow(Sse.LoadVector128(r[2] + p), Sse.LoadVector128(r[3] + p));
                    var t3 = Sse.UnpackHigh(Sse.LoadVector128(r[2] + p), Sse.LoadVector128(r[3] + p));
                    float* o = d + (nint)p * stride + g;
                    Sse.Store(o, Sse.MoveLowToHigh(t0, t2));
                    Sse.Store(o + stride, Sse.MoveHighToLow(t2, t0));
                    Sse.Store(o + 2 * stride, Sse.MoveLowToHigh(t1, t3));
                    Sse.Store(o + 3 * stride, Sse.MoveHighToLow(t3, t1));
                }
                for (int p = kc & ~3; p < kc; p++)
                    for (int i = 0; i < 4; i++) d[(nint)p * stride + g + i] = r[i][p];
            }
        }
        for (; g < count; g++)
        {
            float* r = rows[g];
            for (int p = 0; p < kc; p++) d[(nint)p * stride + g] = r[p];
        }
    }
}
