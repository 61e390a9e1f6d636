using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace Encore.Tensors.Kernels;

/// <summary>
/// a·b + c for the GEMM/GEMV kernels: fused (one rounding) where the hardware has FMA, else a
/// multiply and an add. Vector*.FusedMultiplyAdd and MathF.FusedMultiplyAdd are emulated one element
/// at a time without FMA hardware (x86 before Haswell, or FMA disabled), hundreds of times slower.
/// The scalar and vector forms round alike, so a value is the same whichever form computed it.
/// AVX-512F implies FMA, so 512-bit code calls Vector512.FusedMultiplyAdd directly.
/// </summary>
internal static class Fused
{
    /// <summary>True when multiply-adds are fused in hardware.</summary>
    public static bool Hardware => Fma.IsSupported || AdvSimd.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scalar(float a, float b, float c) => Hardware ? MathF.FusedMultiplyAdd(a, b, c) : a * b + c;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> V128(Vector128<float> a, Vector128<float> b, Vector128<float> c)
        => Hardware ? Vector128.FusedMultiplyAdd(a, b, c) : a * b + c;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> V256(Vector256<float> a, Vector256<float> b, Vector256<float> c)
        => Hardware ? Vector256.FusedMultiplyAdd(a, b, c) : a * b + c;
}
