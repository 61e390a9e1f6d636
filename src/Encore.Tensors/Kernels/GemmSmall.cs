using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Encore.Tensors.Kernels;

// Products too small to repay packing (m·n·k below SmallWork): C rows are computed straight from
// the operands, vectorized along N when B rows are contiguous, along K (dot products) when both
// op(A) rows and op(B) columns are contiguous, scalar otherwise.
public static partial class Gemm
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Small(SimdWidth width, int m, int n, int k, float alpha, float* a, nint rsA, nint csA,
        float* b, nint rsB, nint csB, float beta, float* c, nint ldc)
    {
        for (int i = 0; i < m; i++)
        {
            float* ai = a + i * rsA;
            float* ci = c + i * ldc;
            int j = 0;
            if (csB == 1)
            {
                if (width == SimdWidth.V512)
                {
                    for (; j + 16 <= n; j += 16)
                    {
                        var acc = Vector512<float>.Zero;
                        for (int p = 0; p < k; p++) acc = Vector512.FusedMultiplyAdd(Vector512.Create(ai[p * csA]), Vector512.Load(b + p * rsB + j), acc);
                        var va = Vector512.Create(alpha);
                        (beta == 0 ? acc * va : Vector512.FusedMultiplyAdd(acc, va, Vector512.Create(beta) * Vector512.Load(ci + j))).Store(ci + j);
                    }
                }
                if (width >= SimdWidth.V256)
                {
                    for (; j + 8 <= n; j += 8)
                    {
                        var acc = Vector256<float>.Zero;
                        for (int p = 0; p < k; p++) acc = Fused.V256(Vector256.Create(ai[p * csA]), Vector256.Load(b + p * rsB + j), acc);
                        var va = Vector256.Create(alpha);
                        (beta == 0 ? acc * va : Fused.V256(acc, va, Vector256.Create(beta) * Vector256.Load(ci + j))).Store(ci + j);
                    }
                }
                if (width >= SimdWidth.V128)
                {
                    for (; j + 4 <= n; j += 4)
                    {
                        var acc = Vector128<float>.Zero;
                        for (int p = 0; p < k; p++) acc = Fused.V128(Vector128.Create(ai[p * csA]), Vector128.Load(b + p * rsB + j), acc);
                        var va = Vector128.Create(alpha);
                        (beta == 0 ? acc * va : Fused.V128(acc, va, Vector128.Create(beta) * Vector128.Load(ci + j))).Store(ci + j);
                    }
                }
            }
            else if (rsB == 1 && csA == 1 && width != SimdWidth.Scalar)
            {
                for (; j < n; j++)
                {
                    float s = Gemv.Dot<Gemv.LoadF32>((byte*)(b + j * csB), ai, k, width);
                    ci[j] = beta == 0 ? s * alpha : Fused.Scalar(s, alpha, beta * ci[j]);
                }
            }
            for (; j < n; j++)
            {
                float s = 0;
                float* bj = b + j * csB;
                for (int p = 0; p < k; p++) s = Fused.Scalar(ai[p * csA], bj[p * rsB], s);
                ci[j] = beta == 0 ? s * alpha : Fused.Scalar(s, alpha, beta * ci[j]);
            }
        }
    }
}
