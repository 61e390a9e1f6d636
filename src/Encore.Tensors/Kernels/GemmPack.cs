using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Encore.Tensors.Kernels;

// Packing of op(B) into the 32-wide panels the micro-kernels read (see GemmDriver.cs).
public static partial class Gemm
{
    static readonly unsafe float* s_zeroRow = AllocZeroRow();

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
        float** rows = stackalloc float*[PanelWidth];
        for (int jp = 0; jp < nc; jp += PanelWidth)
        {
            int nEff = Math.Min(PanelWidth, nc - jp);
            float* d = dst + (nint)jp * kc;
            if (b.Kind == BKind.Strided && b.Cs == 1)
            {
                for (int p = 0; p < kc; p++)
                {
                    float* s = b.P + (p0 + p) * b.Rs + j0 + jp;
                    float* dp = d + p * PanelWidth;
                    Buffer.MemoryCopy(s, dp, nEff * 4L, nEff * 4L);
                    for (int j = nEff; j < PanelWidth; j++) dp[j] = 0;
                }
                continue;
            }
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
            TransposeRows(rows, kc, d);
        }
    }

    // d[p·32 + jj] = rows[jj][p] for jj < 32, p < kc: 8×8 AVX transposes, scalar for the tail.
    static unsafe void TransposeRows(float** rows, int kc, float* d)
    {
        int p = 0;
        if (Avx.IsSupported)
        {
            for (; p + 8 <= kc; p += 8)
            {
                for (int g = 0; g < PanelWidth; g += 8)
                {
                    float** r = rows + g;
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
                    float* o = d + p * PanelWidth + g;
                    Avx.Store(o + 0 * PanelWidth, Avx.Permute2x128(u0, u4, 0x20));
                    Avx.Store(o + 1 * PanelWidth, Avx.Permute2x128(u1, u5, 0x20));
                    Avx.Store(o + 2 * PanelWidth, Avx.Permute2x128(u2, u6, 0x20));
                    Avx.Store(o + 3 * PanelWidth, Avx.Permute2x128(u3, u7, 0x20));
                    Avx.Store(o + 4 * PanelWidth, Avx.Permute2x128(u0, u4, 0x31));
                    Avx.Store(o + 5 * PanelWidth, Avx.Permute2x128(u1, u5, 0x31));
                    Avx.Store(o + 6 * PanelWidth, Avx.Permute2x128(u2, u6, 0x31));
                    Avx.Store(o + 7 * PanelWidth, Avx.Permute2x128(u3, u7, 0x31));
                }
            }
        }
        for (; p < kc; p++)
            for (int jj = 0; jj < PanelWidth; jj++) d[p * PanelWidth + jj] = rows[jj][p];
    }
}
