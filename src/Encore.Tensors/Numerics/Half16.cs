using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Encore.Tensors.Numerics;

/// <summary>IEEE binary16 conversions (vectorized by <see cref="TensorPrimitives"/>).</summary>
public static class Half16
{
    /// <summary>Widens <paramref name="src"/> (binary16 bit patterns) into <paramref name="dst"/>.</summary>
    public static void ToSingle(ReadOnlySpan<ushort> src, Span<float> dst)
        => TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<ushort, Half>(src), dst);

    /// <summary>Narrows <paramref name="src"/> into binary16 bit patterns, rounding to nearest even.</summary>
    public static void FromSingle(ReadOnlySpan<float> src, Span<ushort> dst)
        => TensorPrimitives.ConvertToHalf(src, MemoryMarshal.Cast<ushort, Half>(dst));

    /// <summary>Widens one binary16 bit pattern.</summary>
    public static float ToSingle(ushort h) => (float)BitConverter.UInt16BitsToHalf(h);

    /// <summary>Narrows one value to a binary16 bit pattern.</summary>
    public static ushort FromSingle(float f) => BitConverter.HalfToUInt16Bits((Half)f);
}
