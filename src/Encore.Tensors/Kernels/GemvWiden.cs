using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

/// <summary>
/// Widening loads from the weight dtypes to binary32 vectors, shared by the GEMV dot products and
/// by the GEMM packing of converted weight panels. bf16 widens by a 16-bit shift (exact); binary16
/// by bit manipulation and a power-of-two multiply (exact for normals, subnormals, infinities and
/// NaNs; F. Giesen's <c>half_to_float_fast2</c>, as .NET does not expose the F16C instruction); Q8_0
/// quants widen int8 → int32 → binary32 and are scaled by the block's d by the caller.
/// </summary>
internal static unsafe class Widen
{
    // Binary16 → binary32 (F. Giesen's half_to_float_fast2): shift exponent and mantissa into place
    // and multiply by 2^112 to rebias the exponent (exact, and subnormal halves come out normalized);
    // magnitudes that were infinity/NaN (≥ 2^16 after the multiply) get the exponent all ones, which
    // keeps a NaN's payload; the sign goes back last.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> HalfBits(Vector512<uint> h)
    {
        var f = ((h & Vector512.Create(0x7FFFu)) << 13).AsSingle() * Vector512.Create(0x7780_0000u).AsSingle();
        var infNan = Vector512.GreaterThanOrEqual(f, Vector512.Create(65536f)).AsUInt32() & Vector512.Create(0x7F80_0000u);
        return (f.AsUInt32() | infNan | ((h << 16) & Vector512.Create(0x8000_0000u))).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> HalfBits(Vector256<uint> h)
    {
        var f = ((h & Vector256.Create(0x7FFFu)) << 13).AsSingle() * Vector256.Create(0x7780_0000u).AsSingle();
        var infNan = Vector256.GreaterThanOrEqual(f, Vector256.Create(65536f)).AsUInt32() & Vector256.Create(0x7F80_0000u);
        return (f.AsUInt32() | infNan | ((h << 16) & Vector256.Create(0x8000_0000u))).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> HalfBits(Vector128<uint> h)
    {
        var f = ((h & Vector128.Create(0x7FFFu)) << 13).AsSingle() * Vector128.Create(0x7780_0000u).AsSingle();
        var infNan = Vector128.GreaterThanOrEqual(f, Vector128.Create(65536f)).AsUInt32() & Vector128.Create(0x7F80_0000u);
        return (f.AsUInt32() | infNan | ((h << 16) & Vector128.Create(0x8000_0000u))).AsSingle();
    }

    /// <summary>16 unsigned 16-bit values at <paramref name="p"/> zero-extended to 32 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<uint> U16x16(ushort* p) => Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<uint> U16x8(ushort* p) => Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<uint> U16x4(ushort* p) => Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)p).AsUInt16());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> BF16x16(ushort* p) => (U16x16(p) << 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> BF16x8(ushort* p) => (U16x8(p) << 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> BF16x4(ushort* p) => (U16x4(p) << 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> F16x16(ushort* p) => HalfBits(U16x16(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> F16x8(ushort* p) => HalfBits(U16x8(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> F16x4(ushort* p) => HalfBits(U16x4(p));

    /// <summary>16 int8 quants at <paramref name="q"/> as binary32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> I8x16(sbyte* q)
    {
        if (Avx512F.IsSupported) return Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q)));
        var s = Vector256.WidenLower(Vector128.Load(q).ToVector256Unsafe());
        return Vector512.ConvertToSingle(Vector512.WidenLower(s.ToVector512Unsafe()));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> I8x8(sbyte* q)
    {
        if (Avx2.IsSupported) return Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q));
        var s = Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(long*)q).AsSByte());
        return Vector256.ConvertToSingle(Vector256.WidenLower(s.ToVector256Unsafe()));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> I8x4(sbyte* q)
    {
        var s = Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(int*)q).AsSByte());
        return Vector128.ConvertToSingle(Vector128.WidenLower(s));
    }

    /// <summary>
    /// Binary32 value of every binary16 bit pattern (256 KiB, built on first use), as ggml's
    /// <c>ggml_table_f32_f16</c>: one load per Q8_0 block scale instead of a dozen scalar operations,
    /// which cost as much as the block's 32 multiply-adds.
    /// </summary>
    public static float* HalfTable => HalfTableHolder.Table;

    static class HalfTableHolder
    {
        public static readonly float* Table = Build();

        static float* Build()
        {
            var t = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(65536 * sizeof(float), 64);
            for (int h = 0; h < 65536; h++) t[h] = Half((ushort)h);
            return t;
        }
    }

    /// <summary>One binary16 bit pattern as binary32 (scalar form of <see cref="HalfBits(Vector128{uint})"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Half(ushort h)
    {
        uint o = (h & 0x7FFFu) << 13;
        uint e = o & 0x0F80_0000u;
        o += 0x3800_0000u;
        if (e == 0x0F80_0000u) o += 0x3800_0000u;
        else if (e == 0) o = BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(o + 0x0080_0000u) - BitConverter.UInt32BitsToSingle(113u << 23));
        return BitConverter.UInt32BitsToSingle(o | ((h & 0x8000u) << 16));
    }

    /// <summary>
    /// Widens values [p0, p0 + count) of weight row <paramref name="row"/> into <paramref name="dst"/>.
    /// For Q8_0, p0 and count are multiples of 32.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Row(in WeightMatrix w, int row, int p0, int count, float* dst, SimdWidth width)
    {
        byte* src = w.Row(row);
        int i = 0;
        switch (w.DType)
        {
            case DType.F32:
                Buffer.MemoryCopy((float*)src + p0, dst, count * 4L, count * 4L);
                return;
            case DType.BF16:
            {
                ushort* s = (ushort*)src + p0;
                if (width >= SimdWidth.V512) for (; i + 16 <= count; i += 16) BF16x16(s + i).Store(dst + i);
                if (width >= SimdWidth.V256) for (; i + 8 <= count; i += 8) BF16x8(s + i).Store(dst + i);
                if (width >= SimdWidth.V128) for (; i + 4 <= count; i += 4) BF16x4(s + i).Store(dst + i);
                for (; i < count; i++) dst[i] = BFloat16.ToSingle(s[i]);
                return;
            }
            case DType.F16:
            {
                ushort* s = (ushort*)src + p0;
                if (width >= SimdWidth.V512) for (; i + 16 <= count; i += 16) F16x16(s + i).Store(dst + i);
                if (width >= SimdWidth.V256) for (; i + 8 <= count; i += 8) F16x8(s + i).Store(dst + i);
                if (width >= SimdWidth.V128) for (; i + 4 <= count; i += 4) F16x4(s + i).Store(dst + i);
                for (; i < count; i++) dst[i] = Half(s[i]);
                return;
            }
            case DType.Q8_0:
            {
                var blk = (BlockQ8_0*)src + p0 / DTypes.Q8BlockSize;
                float* table = HalfTable;
                for (int b = 0; b < count / DTypes.Q8BlockSize; b++, blk++)
                    Block(table[blk->D], blk->Qs, dst + b * DTypes.Q8BlockSize, width);
                return;
            }
            case DType.Q4_0 or DType.Q4_0R8:
            {
                float* table = HalfTable;
                sbyte* q = stackalloc sbyte[DTypes.Q4BlockSize];
                BlockQ4_0 scratch;
                for (int b = 0; b < count / DTypes.Q4BlockSize; b++)
                {
                    var blk = Q4R8.BlockOf(src, p0 / DTypes.Q4BlockSize + b, w.DType == DType.Q4_0R8, &scratch);
                    if (width == SimdWidth.Scalar) Q4.UnpackReference(blk, q);
                    else Q4.Unpack(blk, q);
                    Block(table[blk->D], q, dst + b * DTypes.Q4BlockSize, width);
                }
                return;
            }
            default:
                throw new InvalidOperationException($"{w.DType} is not a weight dtype");
        }
    }

    // d·q for the 32 quants of one block, into o.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Block(float d, sbyte* q, float* o, SimdWidth width)
    {
        if (width >= SimdWidth.V512)
        {
            var vd = Vector512.Create(d);
            (I8x16(q) * vd).Store(o);
            (I8x16(q + 16) * vd).Store(o + 16);
            return;
        }
        int j = 0;
        if (width >= SimdWidth.V256)
        {
            var vd = Vector256.Create(d);
            for (; j < 32; j += 8) (I8x8(q + j) * vd).Store(o + j);
            return;
        }
        if (width >= SimdWidth.V128)
        {
            var vd = Vector128.Create(d);
            for (; j < 32; j += 4) (I8x4(q + j) * vd).Store(o + j);
            return;
        }
        for (; j < 32; j++) o[j] = d * q[j];
    }
}
