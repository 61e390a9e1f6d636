using System.Runtime.Intrinsics;

namespace Encore.Tensors;

/// <summary>Vector widths a kernel may use.</summary>
public enum SimdWidth
{
    /// <summary>Scalar code only.</summary>
    Scalar = 0,
    /// <summary>128-bit vectors (SSE, NEON).</summary>
    V128 = 128,
    /// <summary>256-bit vectors (AVX2).</summary>
    V256 = 256,
    /// <summary>512-bit vectors (AVX-512).</summary>
    V512 = 512,
}

/// <summary>
/// Chooses the vector width kernels run at. Kernels read <see cref="Current"/> once on the calling
/// thread, at their public entry, and pass the choice to any worker they fan out to; so a test can
/// run every path in one process with <see cref="Override"/>, which applies to the current thread only.
/// The hardware limits are read from the runtime, so <c>DOTNET_EnableAVX512F=0</c> or
/// <c>DOTNET_EnableHWIntrinsic=0</c> narrow them process-wide.
/// </summary>
public static class Simd
{
    [ThreadStatic] static SimdWidth? s_override;

    /// <summary>The widest vector the hardware (and runtime settings) accelerate.</summary>
    public static SimdWidth Best { get; } =
        Vector512.IsHardwareAccelerated ? SimdWidth.V512 :
        Vector256.IsHardwareAccelerated ? SimdWidth.V256 :
        Vector128.IsHardwareAccelerated ? SimdWidth.V128 : SimdWidth.Scalar;

    /// <summary>Every width this machine runs natively, narrowest first (Scalar always included).</summary>
    public static IReadOnlyList<SimdWidth> Supported { get; } =
        new[] { SimdWidth.Scalar, SimdWidth.V128, SimdWidth.V256, SimdWidth.V512 }.Where(w => w <= Best).ToArray();

    /// <summary>The width kernels called from this thread use now.</summary>
    public static SimdWidth Current => s_override is { } w && w < Best ? w : Best;

    /// <summary>Limits kernels called from this thread to <paramref name="width"/> until the result is disposed.</summary>
    public static IDisposable Override(SimdWidth width)
    {
        var previous = s_override;
        s_override = width;
        return new Restore(previous);
    }

    /// <summary>A short description like "AVX-512 (512-bit), FMA".</summary>
    public static string Describe()
    {
        var parts = new List<string>();
        if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported) parts.Add("AVX-512F");
        else if (System.Runtime.Intrinsics.X86.Avx2.IsSupported) parts.Add("AVX2");
        else if (System.Runtime.Intrinsics.X86.Sse41.IsSupported) parts.Add("SSE4.1");
        if (System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported) parts.Add("NEON");
        if (System.Runtime.Intrinsics.X86.Fma.IsSupported) parts.Add("FMA");
        if (System.Runtime.Intrinsics.X86.Avx512Vbmi.IsSupported) parts.Add("VBMI");
        if (System.Runtime.Intrinsics.X86.AvxVnni.IsSupported) parts.Add("VNNI");
        return $"{(int)Best}-bit vectors" + (parts.Count > 0 ? " (" + string.Join(", ", parts) + ")" : "");
    }

    sealed class Restore(SimdWidth? previous) : IDisposable
    {
        public void Dispose() => s_override = previous;
    }
}
