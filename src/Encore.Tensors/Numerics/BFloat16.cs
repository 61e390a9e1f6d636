using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Encore.Tensors.Numerics;

/// <summary>
/// bfloat16 conversions. A bf16 is the upper half of a binary32, stored as a <see cref="ushort"/>;
/// narrowing rounds to nearest, ties to even (as PyTorch and ggml do), and keeps NaNs quiet NaNs.
/// </summary>
public static class BFloat16
{
    /// <summary>Widens one bf16 to binary32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort b) => BitConverter.Int32BitsToSingle(b << 16);

    /// <summary>Narrows one binary32 to bf16, rounding to nearest even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromSingle(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7FFF_FFFF) > 0x7F80_0000) return (ushort)((u >> 16) | 0x0040); // NaN stays NaN
        u += 0x7FFF + ((u >> 16) & 1);
        return (ushort)(u >> 16);
    }

    /// <summary>Widens <paramref name="src"/> into <paramref name="dst"/> (same length).</summary>
    public static void ToSingle(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination is shorter than source", nameof(dst));
        ToSingle(src, dst, Simd.Current);
    }

    internal static void ToSingle(ReadOnlySpan<ushort> src, Span<float> dst, SimdWidth width)
    {
        int i = 0;
        ref ushort s = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(src);
        ref float d = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(dst);
        if (width >= SimdWidth.V512)
        {
            for (; i + 16 <= src.Length; i += 16)
            {
                var v = Vector256.LoadUnsafe(ref s, (nuint)i);
                var (lo, hi) = Vector256.Widen(v);
                var w = Vector512.ShiftLeft(Vector512.Create(lo, hi), 16);
                w.AsSingle().StoreUnsafe(ref d, (nuint)i);
            }
        }
        if (width >= SimdWidth.V256)
        {
            for (; i + 8 <= src.Length; i += 8)
            {
                var v = Vector128.LoadUnsafe(ref s, (nuint)i);
                var (lo, hi) = Vector128.Widen(v);
                Vector256.ShiftLeft(Vector256.Create(lo, hi), 16).AsSingle().StoreUnsafe(ref d, (nuint)i);
            }
        }
        if (width >= SimdWidth.V128)
        {
            for (; i + 8 <= src.Length; i += 8)
            {
                var v = Vector128.LoadUnsafe(ref s, (nuint)i);
                var (lo, hi) = Vector128.Widen(v);
                Vector128.ShiftLeft(lo, 16).AsSingle().StoreUnsafe(ref d, (nuint)i);
                Vector128.ShiftLeft(hi, 16).AsSingle().StoreUnsafe(ref d, (nuint)(i + 4));
            }
        }
        for (; i < src.Length; i++) dst[i] = ToSingle(src[i]);
    }

    /// <summary>Narrows <paramref name="src"/> into <paramref name="dst"/> (same length).</summary>
    public static void FromSingle(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination is shorter than source", nameof(dst));
        FromSingle(src, dst, Simd.Current);
    }

    internal static void FromSingle(ReadOnlySpan<float> src, Span<ushort> dst, SimdWidth width)
    {
        int i = 0;
        ref float s = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(src);
        ref ushort d = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(dst);
        if (width >= SimdWidth.V512)
        {
            for (; i + 16 <= src.Length; i += 16)
            {
                var r = Round(Vector512.LoadUnsafe(ref s, (nuint)i).AsUInt32());
                Vector256.Narrow(r.GetLower(), r.GetUpper()).StoreUnsafe(ref d, (nuint)i);
            }
        }
        if (width >= SimdWidth.V256)
        {
            for (; i + 8 <= src.Length; i += 8)
            {
                var r = Round(Vector256.LoadUnsafe(ref s, (nuint)i).AsUInt32());
                Vector128.Narrow(r.GetLower(), r.GetUpper()).StoreUnsafe(ref d, (nuint)i);
            }
        }
        if (width >= SimdWidth.V128)
        {
            for (; i + 8 <= src.Length; i += 8)
            {
                var a = Round(Vector128.LoadUnsafe(ref s, (nuint)i).AsUInt32());
                var b = Round(Vector128.LoadUnsafe(ref s, (nuint)(i + 4)).AsUInt32());
                Vector128.Narrow(a, b).StoreUnsafe(ref d, (nuint)i);
            }
        }
        for (; i < src.Length; i++) dst[i] = FromSingle(src[i]);
    }

    // Round-to-nearest-even into the upper 16 bits, then shift down; NaNs are made quiet.
    static Vector512<uint> Round(Vector512<uint> u)
    {
        var nan = Vector512.GreaterThan(u & Vector512.Create(0x7FFF_FFFFu), Vector512.Create(0x7F80_0000u));
        var rounded = (u + Vector512.Create(0x7FFFu) + ((u >> 16) & Vector512.Create(1u))) >> 16;
        return Vector512.ConditionalSelect(nan, (u >> 16) | Vector512.Create(0x40u), rounded);
    }

    static Vector256<uint> Round(Vector256<uint> u)
    {
        var nan = Vector256.GreaterThan(u & Vector256.Create(0x7FFF_FFFFu), Vector256.Create(0x7F80_0000u));
        var rounded = (u + Vector256.Create(0x7FFFu) + ((u >> 16) & Vector256.Create(1u))) >> 16;
        return Vector256.ConditionalSelect(nan, (u >> 16) | Vector256.Create(0x40u), rounded);
    }

    static Vector128<uint> Round(Vector128<uint> u)
    {
        var nan = Vector128.GreaterThan(u & Vector128.Create(0x7FFF_FFFFu), Vector128.Create(0x7F80_0000u));
        var rounded = (u + Vector128.Create(0x7FFFu) + ((u >> 16) & Vector128.Create(1u))) >> 16;
        return Vector128.ConditionalSelect(nan, (u >> 16) | Vector128.Create(0x40u), rounded);
    }
}
