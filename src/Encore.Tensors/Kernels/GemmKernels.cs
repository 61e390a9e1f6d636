using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Encore.Tensors.Kernels;

// Register-blocked micro-kernels of the blocked GEMM (GotoBLAS / BLIS: "Anatomy of High-Performance
// Matrix Multiplication", Goto & van de Geijn 2008; BLIS's gemm micro-kernel contract). A kernel
// computes one MR×NR tile of C from a packed A micro-panel (kc steps of MR values, column by column)
// and a packed B micro-panel (kc rows of NR values, consecutive rows bStride apart), and stores
// C = α·acc + β·C with one rounding (a fused multiply-add). β = 0 never reads C. Edge tiles run the
// same kernel into a scratch tile and merge it with the same fused formula, so an element's value
// does not depend on where tile boundaries fall.
public static partial class Gemm
{
    internal unsafe interface IMicroKernel
    {
        static abstract int MR { get; }
        static abstract int NR { get; }
        static abstract void Run(int kc, float* a, float* b, nint bStride, float* c, nint ldc, float alpha, float beta);
    }

    /// <summary>Scalar tile 4×4: the fallback when no vector width is available.</summary>
    internal readonly unsafe struct KernelScalar : IMicroKernel
    {
        public static int MR => 4;
        public static int NR => 4;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(int kc, float* a, float* b, nint bStride, float* c, nint ldc, float alpha, float beta)
        {
            float* acc = stackalloc float[16];
            for (int i = 0; i < 16; i++) acc[i] = 0;
            for (int p = 0; p < kc; p++)
            {
                for (int i = 0; i < 4; i++)
                {
                    float ai = a[i];
                    acc[i * 4 + 0] += ai * b[0];
                    acc[i * 4 + 1] += ai * b[1];
                    acc[i * 4 + 2] += ai * b[2];
                    acc[i * 4 + 3] += ai * b[3];
                }
                a += 4;
                b += bStride;
            }
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    c[i * ldc + j] = beta == 0 ? acc[i * 4 + j] * alpha : Fused.Scalar(acc[i * 4 + j], alpha, beta * c[i * ldc + j]);
        }
    }

    /// <summary>AVX-512 tile: 12×32, 24 zmm accumulators, two B vectors and a broadcast A operand per k step.</summary>
    internal readonly unsafe struct Kernel512 : IMicroKernel
    {
        public static int MR => 12;
        public static int NR => 32;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(int kc, float* a, float* b, nint bStride, float* c, nint ldc, float alpha, float beta)
        {
            var c0_0 = Vector512<float>.Zero; var c0_1 = Vector512<float>.Zero;
            var c1_0 = Vector512<float>.Zero; var c1_1 = Vector512<float>.Zero;
            var c2_0 = Vector512<float>.Zero; var c2_1 = Vector512<float>.Zero;
            var c3_0 = Vector512<float>.Zero; var c3_1 = Vector512<float>.Zero;
            var c4_0 = Vector512<float>.Zero; var c4_1 = Vector512<float>.Zero;
            var c5_0 = Vector512<float>.Zero; var c5_1 = Vector512<float>.Zero;
            var c6_0 = Vector512<float>.Zero; var c6_1 = Vector512<float>.Zero;
            var c7_0 = Vector512<float>.Zero; var c7_1 = Vector512<float>.Zero;
            var c8_0 = Vector512<float>.Zero; var c8_1 = Vector512<float>.Zero;
            var c9_0 = Vector512<float>.Zero; var c9_1 = Vector512<float>.Zero;
            var c10_0 = Vector512<float>.Zero; var c10_1 = Vector512<float>.Zero;
            var c11_0 = Vector512<float>.Zero; var c11_1 = Vector512<float>.Zero;
            for (int p = 0; p < kc; p++)
            {
                var b0 = Vector512.Load(b + 0);
                var b1 = Vector512.Load(b + 16);
                var a0 = Vector512.Create(a[0]); c0_0 = Vector512.FusedMultiplyAdd(a0, b0, c0_0); c0_1 = Vector512.FusedMultiplyAdd(a0, b1, c0_1);
                var a1 = Vector512.Create(a[1]); c1_0 = Vector512.FusedMultiplyAdd(a1, b0, c1_0); c1_1 = Vector512.FusedMultiplyAdd(a1, b1, c1_1);
                var a2 = Vector512.Create(a[2]); c2_0 = Vector512.FusedMultiplyAdd(a2, b0, c2_0); c2_1 = Vector512.FusedMultiplyAdd(a2, b1, c2_1);
                var a3 = Vector512.Create(a[3]); c3_0 = Vector512.FusedMultiplyAdd(a3, b0, c3_0); c3_1 = Vector512.FusedMultiplyAdd(a3, b1, c3_1);
                var a4 = Vector512.Create(a[4]); c4_0 = Vector512.FusedMultiplyAdd(a4, b0, c4_0); c4_1 = Vector512.FusedMultiplyAdd(a4, b1, c4_1);
                var a5 = Vector512.Create(a[5]); c5_0 = Vector512.FusedMultiplyAdd(a5, b0, c5_0); c5_1 = Vector512.FusedMultiplyAdd(a5, b1, c5_1);
                var a6 = Vector512.Create(a[6]); c6_0 = Vector512.FusedMultiplyAdd(a6, b0, c6_0); c6_1 = Vector512.FusedMultiplyAdd(a6, b1, c6_1);
                var a7 = Vector512.Create(a[7]); c7_0 = Vector512.FusedMultiplyAdd(a7, b0, c7_0); c7_1 = Vector512.FusedMultiplyAdd(a7, b1, c7_1);
                var a8 = Vector512.Create(a[8]); c8_0 = Vector512.FusedMultiplyAdd(a8, b0, c8_0); c8_1 = Vector512.FusedMultiplyAdd(a8, b1, c8_1);
                var a9 = Vector512.Create(a[9]); c9_0 = Vector512.FusedMultiplyAdd(a9, b0, c9_0); c9_1 = Vector512.FusedMultiplyAdd(a9, b1, c9_1);
                var a10 = Vector512.Create(a[10]); c10_0 = Vector512.FusedMultiplyAdd(a10, b0, c10_0); c10_1 = Vector512.FusedMultiplyAdd(a10, b1, c10_1);
                var a11 = Vector512.Create(a[11]); c11_0 = Vector512.FusedMultiplyAdd(a11, b0, c11_0); c11_1 = Vector512.FusedMultiplyAdd(a11, b1, c11_1);
                a += 12;
                b += bStride;
            }
            var va = Vector512.Create(alpha);
            if (beta == 0)
            {
                (c0_0 * va).Store(c + 0 * ldc + 0); (c0_1 * va).Store(c + 0 * ldc + 16);
                (c1_0 * va).Store(c + 1 * ldc + 0); (c1_1 * va).Store(c + 1 * ldc + 16);
                (c2_0 * va).Store(c + 2 * ldc + 0); (c2_1 * va).Store(c + 2 * ldc + 16);
                (c3_0 * va).Store(c + 3 * ldc + 0); (c3_1 * va).Store(c + 3 * ldc + 16);
                (c4_0 * va).Store(c + 4 * ldc + 0); (c4_1 * va).Store(c + 4 * ldc + 16);
                (c5_0 * va).Store(c + 5 * ldc + 0); (c5_1 * va).Store(c + 5 * ldc + 16);
                (c6_0 * va).Store(c + 6 * ldc + 0); (c6_1 * va).Store(c + 6 * ldc + 16);
                (c7_0 * va).Store(c + 7 * ldc + 0); (c7_1 * va).Store(c + 7 * ldc + 16);
                (c8_0 * va).Store(c + 8 * ldc + 0); (c8_1 * va).Store(c + 8 * ldc + 16);
                (c9_0 * va).Store(c + 9 * ldc + 0); (c9_1 * va).Store(c + 9 * ldc + 16);
                (c10_0 * va).Store(c + 10 * ldc + 0); (c10_1 * va).Store(c + 10 * ldc + 16);
                (c11_0 * va).Store(c + 11 * ldc + 0); (c11_1 * va).Store(c + 11 * ldc + 16);
            }
            else
            {
                var vb = Vector512.Create(beta);
                Vector512.FusedMultiplyAdd(c0_0, va, vb * Vector512.Load(c + 0 * ldc + 0)).Store(c + 0 * ldc + 0); Vector512.FusedMultiplyAdd(c0_1, va, vb * Vector512.Load(c + 0 * ldc + 16)).Store(c + 0 * ldc + 16);
                Vector512.FusedMultiplyAdd(c1_0, va, vb * Vector512.Load(c + 1 * ldc + 0)).Store(c + 1 * ldc + 0); Vector512.FusedMultiplyAdd(c1_1, va, vb * Vector512.Load(c + 1 * ldc + 16)).Store(c + 1 * ldc + 16);
                Vector512.FusedMultiplyAdd(c2_0, va, vb * Vector512.Load(c + 2 * ldc + 0)).Store(c + 2 * ldc + 0); Vector512.FusedMultiplyAdd(c2_1, va, vb * Vector512.Load(c + 2 * ldc + 16)).Store(c + 2 * ldc + 16);
                Vector512.FusedMultiplyAdd(c3_0, va, vb * Vector512.Load(c + 3 * ldc + 0)).Store(c + 3 * ldc + 0); Vector512.FusedMultiplyAdd(c3_1, va, vb * Vector512.Load(c + 3 * ldc + 16)).Store(c + 3 * ldc + 16);
                Vector512.FusedMultiplyAdd(c4_0, va, vb * Vector512.Load(c + 4 * ldc + 0)).Store(c + 4 * ldc + 0); Vector512.FusedMultiplyAdd(c4_1, va, vb * Vector512.Load(c + 4 * ldc + 16)).Store(c + 4 * ldc + 16);
                Vector512.FusedMultiplyAdd(c5_0, va, vb * Vector512.Load(c + 5 * ldc + 0)).Store(c + 5 * ldc + 0); Vector512.FusedMultiplyAdd(c5_1, va, vb * Vector512.Load(c + 5 * ldc + 16)).Store(c + 5 * ldc + 16);
                Vector512.FusedMultiplyAdd(c6_0, va, vb * Vector512.Load(c + 6 * ldc + 0)).Store(c + 6 * ldc + 0); Vector512.FusedMultiplyAdd(c6_1, va, vb * Vector512.Load(c + 6 * ldc + 16)).Store(c + 6 * ldc + 16);
                Vector512.FusedMultiplyAdd(c7_0, va, vb * Vector512.Load(c + 7 * ldc + 0)).Store(c + 7 * ldc + 0); Vector512.FusedMultiplyAdd(c7_1, va, vb * Vector512.Load(c + 7 * ldc + 16)).Store(c + 7 * ldc + 16);
                Vector512.FusedMultiplyAdd(c8_0, va, vb * Vector512.Load(c + 8 * ldc + 0)).Store(c + 8 * ldc + 0); Vector512.FusedMultiplyAdd(c8_1, va, vb * Vector512.Load(c + 8 * ldc + 16)).Store(c + 8 * ldc + 16);
                Vector512.FusedMultiplyAdd(c9_0, va, vb * Vector512.Load(c + 9 * ldc + 0)).Store(c + 9 * ldc + 0); Vector512.FusedMultiplyAdd(c9_1, va, vb * Vector512.Load(c + 9 * ldc + 16)).Store(c + 9 * ldc + 16);
                Vector512.FusedMultiplyAdd(c10_0, va, vb * Vector512.Load(c + 10 * ldc + 0)).Store(c + 10 * ldc + 0); Vector512.FusedMultiplyAdd(c10_1, va, vb * Vector512.Load(c + 10 * ldc + 16)).Store(c + 10 * ldc + 16);
                Vector512.FusedMultiplyAdd(c11_0, va, vb * Vector512.Load(c + 11 * ldc + 0)).Store(c + 11 * ldc + 0); Vector512.FusedMultiplyAdd(c11_1, va, vb * Vector512.Load(c + 11 * ldc + 16)).Store(c + 11 * ldc + 16);
            }
        }
    }

    /// <summary>256-bit tile: 6×16, twelve accumulators (fits the 16 ymm registers of AVX2).</summary>
    internal readonly unsafe struct Kernel256 : IMicroKernel
    {
        public static int MR => 6;
        public static int NR => 16;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(int kc, float* a, float* b, nint bStride, float* c, nint ldc, float alpha, float beta)
        {
            var c0_0 = Vector256<float>.Zero; var c0_1 = Vector256<float>.Zero;
            var c1_0 = Vector256<float>.Zero; var c1_1 = Vector256<float>.Zero;
            var c2_0 = Vector256<float>.Zero; var c2_1 = Vector256<float>.Zero;
            var c3_0 = Vector256<float>.Zero; var c3_1 = Vector256<float>.Zero;
            var c4_0 = Vector256<float>.Zero; var c4_1 = Vector256<float>.Zero;
            var c5_0 = Vector256<float>.Zero; var c5_1 = Vector256<float>.Zero;
            for (int p = 0; p < kc; p++)
            {
                var b0 = Vector256.Load(b + 0);
                var b1 = Vector256.Load(b + 8);
                var a0 = Vector256.Create(a[0]); c0_0 = Fused.V256(a0, b0, c0_0); c0_1 = Fused.V256(a0, b1, c0_1);
                var a1 = Vector256.Create(a[1]); c1_0 = Fused.V256(a1, b0, c1_0); c1_1 = Fused.V256(a1, b1, c1_1);
                var a2 = Vector256.Create(a[2]); c2_0 = Fused.V256(a2, b0, c2_0); c2_1 = Fused.V256(a2, b1, c2_1);
                var a3 = Vector256.Create(a[3]); c3_0 = Fused.V256(a3, b0, c3_0); c3_1 = Fused.V256(a3, b1, c3_1);
                var a4 = Vector256.Create(a[4]); c4_0 = Fused.V256(a4, b0, c4_0); c4_1 = Fused.V256(a4, b1, c4_1);
                var a5 = Vector256.Create(a[5]); c5_0 = Fused.V256(a5, b0, c5_0); c5_1 = Fused.V256(a5, b1, c5_1);
                a += 6;
                b += bStride;
            }
            var va = Vector256.Create(alpha);
            if (beta == 0)
            {
                (c0_0 * va).Store(c + 0 * ldc + 0); (c0_1 * va).Store(c + 0 * ldc + 8);
                (c1_0 * va).Store(c + 1 * ldc + 0); (c1_1 * va).Store(c + 1 * ldc + 8);
                (c2_0 * va).Store(c + 2 * ldc + 0); (c2_1 * va).Store(c + 2 * ldc + 8);
                (c3_0 * va).Store(c + 3 * ldc + 0); (c3_1 * va).Store(c + 3 * ldc + 8);
                (c4_0 * va).Store(c + 4 * ldc + 0); (c4_1 * va).Store(c + 4 * ldc + 8);
                (c5_0 * va).Store(c + 5 * ldc + 0); (c5_1 * va).Store(c + 5 * ldc + 8);
            }
            else
            {
                var vb = Vector256.Create(beta);
                Fused.V256(c0_0, va, vb * Vector256.Load(c + 0 * ldc + 0)).Store(c + 0 * ldc + 0); Fused.V256(c0_1, va, vb * Vector256.Load(c + 0 * ldc + 8)).Store(c + 0 * ldc + 8);
                Fused.V256(c1_0, va, vb * Vector256.Load(c + 1 * ldc + 0)).Store(c + 1 * ldc + 0); Fused.V256(c1_1, va, vb * Vector256.Load(c + 1 * ldc + 8)).Store(c + 1 * ldc + 8);
                Fused.V256(c2_0, va, vb * Vector256.Load(c + 2 * ldc + 0)).Store(c + 2 * ldc + 0); Fused.V256(c2_1, va, vb * Vector256.Load(c + 2 * ldc + 8)).Store(c + 2 * ldc + 8);
                Fused.V256(c3_0, va, vb * Vector256.Load(c + 3 * ldc + 0)).Store(c + 3 * ldc + 0); Fused.V256(c3_1, va, vb * Vector256.Load(c + 3 * ldc + 8)).Store(c + 3 * ldc + 8);
                Fused.V256(c4_0, va, vb * Vector256.Load(c + 4 * ldc + 0)).Store(c + 4 * ldc + 0); Fused.V256(c4_1, va, vb * Vector256.Load(c + 4 * ldc + 8)).Store(c + 4 * ldc + 8);
                Fused.V256(c5_0, va, vb * Vector256.Load(c + 5 * ldc + 0)).Store(c + 5 * ldc + 0); Fused.V256(c5_1, va, vb * Vector256.Load(c + 5 * ldc + 8)).Store(c + 5 * ldc + 8);
            }
        }
    }

    /// <summary>128-bit tile: 6×8, twelve accumulators.</summary>
    internal readonly unsafe struct Kernel128 : IMicroKernel
    {
        public static int MR => 6;
        public static int NR => 8;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(int kc, float* a, float* b, nint bStride, float* c, nint ldc, float alpha, float beta)
        {
            var c0_0 = Vector128<float>.Zero; var c0_1 = Vector128<float>.Zero;
            var c1_0 = Vector128<float>.Zero; var c1_1 = Vector128<float>.Zero;
            var c2_0 = Vector128<float>.Zero; var c2_1 = Vector128<float>.Zero;
            var c3_0 = Vector128<float>.Zero; var c3_1 = Vector128<float>.Zero;
            var c4_0 = Vector128<float>.Zero; var c4_1 = Vector128<float>.Zero;
            var c5_0 = Vector128<float>.Zero; var c5_1 = Vector128<float>.Zero;
            for (int p = 0; p < kc; p++)
            {
                var b0 = Vector128.Load(b + 0);
                var b1 = Vector128.Load(b + 4);
                var a0 = Vector128.Create(a[0]); c0_0 = Fused.V128(a0, b0, c0_0); c0_1 = Fused.V128(a0, b1, c0_1);
                var a1 = Vector128.Create(a[1]); c1_0 = Fused.V128(a1, b0, c1_0); c1_1 = Fused.V128(a1, b1, c1_1);
                var a2 = Vector128.Create(a[2]); c2_0 = Fused.V128(a2, b0, c2_0); c2_1 = Fused.V128(a2, b1, c2_1);
                var a3 = Vector128.Create(a[3]); c3_0 = Fused.V128(a3, b0, c3_0); c3_1 = Fused.V128(a3, b1, c3_1);
                var a4 = Vector128.Create(a[4]); c4_0 = Fused.V128(a4, b0, c4_0); c4_1 = Fused.V128(a4, b1, c4_1);
                var a5 = Vector128.Create(a[5]); c5_0 = Fused.V128(a5, b0, c5_0); c5_1 = Fused.V128(a5, b1, c5_1);
                a += 6;
                b += bStride;
            }
            var va = Vector128.Create(alpha);
            if (beta == 0)
            {
                (c0_0 * va).Store(c + 0 * ldc + 0); (c0_1 * va).Store(c + 0 * ldc + 4);
                (c1_0 * va).Store(c + 1 * ldc + 0); (c1_1 * va).Store(c + 1 * ldc + 4);
                (c2_0 * va).Store(c + 2 * ldc + 0); (c2_1 * va).Store(c + 2 * ldc + 4);
                (c3_0 * va).Store(c + 3 * ldc + 0); (c3_1 * va).Store(c + 3 * ldc + 4);
                (c4_0 * va).Store(c + 4 * ldc + 0); (c4_1 * va).Store(c + 4 * ldc + 4);
                (c5_0 * va).Store(c + 5 * ldc + 0); (c5_1 * va).Store(c + 5 * ldc + 4);
            }
            else
            {
                var vb = Vector128.Create(beta);
                Fused.V128(c0_0, va, vb * Vector128.Load(c + 0 * ldc + 0)).Store(c + 0 * ldc + 0); Fused.V128(c0_1, va, vb * Vector128.Load(c + 0 * ldc + 4)).Store(c + 0 * ldc + 4);
                Fused.V128(c1_0, va, vb * Vector128.Load(c + 1 * ldc + 0)).Store(c + 1 * ldc + 0); Fused.V128(c1_1, va, vb * Vector128.Load(c + 1 * ldc + 4)).Store(c + 1 * ldc + 4);
                Fused.V128(c2_0, va, vb * Vector128.Load(c + 2 * ldc + 0)).Store(c + 2 * ldc + 0); Fused.V128(c2_1, va, vb * Vector128.Load(c + 2 * ldc + 4)).Store(c + 2 * ldc + 4);
                Fused.V128(c3_0, va, vb * Vector128.Load(c + 3 * ldc + 0)).Store(c + 3 * ldc + 0); Fused.V128(c3_1, va, vb * Vector128.Load(c + 3 * ldc + 4)).Store(c + 3 * ldc + 4);
                Fused.V128(c4_0, va, vb * Vector128.Load(c + 4 * ldc + 0)).Store(c + 4 * ldc + 0); Fused.V128(c4_1, va, vb * Vector128.Load(c + 4 * ldc + 4)).Store(c + 4 * ldc + 4);
                Fused.V128(c5_0, va, vb * Vector128.Load(c + 5 * ldc + 0)).Store(c + 5 * ldc + 0); Fused.V128(c5_1, va, vb * Vector128.Load(c + 5 * ldc + 4)).Store(c + 5 * ldc + 4);
            }
        }
    }
}
