using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Encore.Tensors.Numerics;

/// <summary>One Q4_0 block as ggml lays it out: a binary16 scale, then 16 bytes of two 4-bit quants each.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ4_0
{
    /// <summary>The scale d, as binary16 bits.</summary>
    public ushort D;
    /// <summary>Byte j: value j in the low nibble, value j + 16 in the high nibble; value = d·(nibble − 8).</summary>
    public fixed byte Qs[DTypes.Q4BlockSize / 2];
}

/// <summary>
/// Q4_0 quantization, bit-compatible with ggml's <c>quantize_row_q4_0_ref</c>: the value of largest
/// magnitude m (the first one on ties) gets d = m/−8, so it maps to quant 0 exactly; every value
/// becomes min(15, trunc(x·(1/d) + 8.5)) with the binary32 1/d, and d is stored as binary16. The
/// error per value is at most |d|/2 (plus the f16 rounding of d, relative 2⁻¹¹) except on the side
/// opposite m, where values near −m clamp to 7·|d| and lose up to |d|.
/// </summary>
public static class Q4
{
    const int Half = DTypes.Q4BlockSize / 2;

    /// <summary>Quantizes <paramref name="src"/> (a multiple of 32 values) into blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> src, Span<BlockQ4_0> dst)
    {
        if (src.Length % DTypes.Q4BlockSize != 0)
            throw new ArgumentException($"Q4_0 needs a multiple of {DTypes.Q4BlockSize} values, got {src.Length}", nameof(src));
        int blocks = src.Length / DTypes.Q4BlockSize;
        if (dst.Length < blocks) throw new ArgumentException("destination has too few blocks", nameof(dst));
        for (int b = 0; b < blocks; b++)
            QuantizeBlock(src.Slice(b * DTypes.Q4BlockSize, DTypes.Q4BlockSize), ref dst[b]);
    }

    /// <summary>Quantizes one block of 32 values (the scalar reference).</summary>
    public static unsafe void QuantizeBlock(ReadOnlySpan<float> x, ref BlockQ4_0 block)
    {
        float amax = 0, max = 0;
        for (int j = 0; j < DTypes.Q4BlockSize; j++)
        {
            float a = MathF.Abs(x[j]);
            if (amax < a)
            {
                amax = a;
                max = x[j];
            }
        }
        float d = max / -8f;
        float id = d != 0 ? 1f / d : 0f;
        block.D = Half16.FromSingle(d);
        for (int j = 0; j < Half; j++)
            block.Qs[j] = (byte)(Quant(x[j] * id) | (Quant(x[j + Half] * id) << 4));
    }

    // trunc(v + 8.5) as ggml's (int8_t) cast, clamped to [0, 15]; NaN and out-of-range products land at 0
    // or 15 instead of wrapping (ggml's cast is undefined there).
    static int Quant(float v)
    {
        float t = MathF.Truncate(v + 8.5f);
        return t >= 15f ? 15 : t > 0f ? (int)t : 0;
    }

    /// <summary>Expands blocks back to binary32 values.</summary>
    public static unsafe void Dequantize(ReadOnlySpan<BlockQ4_0> src, Span<float> dst)
    {
        if (dst.Length < src.Length * DTypes.Q4BlockSize) throw new ArgumentException("destination is too short", nameof(dst));
        for (int b = 0; b < src.Length; b++)
        {
            float d = Half16.ToSingle(src[b].D);
            ref readonly BlockQ4_0 blk = ref src[b];
            var o = dst.Slice(b * DTypes.Q4BlockSize, DTypes.Q4BlockSize);
            for (int j = 0; j < Half; j++)
            {
                o[j] = d * ((blk.Qs[j] & 0x0F) - 8);
                o[j + Half] = d * ((blk.Qs[j] >> 4) - 8);
            }
        }
    }

    /// <summary>The 32 signed quants (nibble − 8) of a block into <paramref name="dst"/>, in element order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Unpack(BlockQ4_0* block, sbyte* dst)
    {
        var b = Vector128.Load(block->Qs);
        var mask = Vector128.Create((byte)0x0F);
        var eight = Vector128.Create((byte)8);
        ((b & mask) - eight).AsSByte().Store(dst);
        ((Vector128.ShiftRightLogical(b, 4) & mask) - eight).AsSByte().Store(dst + Half);
    }

    /// <summary>The scalar twin of <see cref="Unpack"/>.</summary>
    public static unsafe void UnpackReference(BlockQ4_0* block, sbyte* dst)
    {
        for (int j = 0; j < Half; j++)
        {
            dst[j] = (sbyte)((block->Qs[j] & 0x0F) - 8);
            dst[j + Half] = (sbyte)((block->Qs[j] >> 4) - 8);
        }
    }

    /// <summary>Value <paramref name="j"/> (0–31) of a block, as binary32.</summary>
    public static unsafe float Value(in BlockQ4_0 block, int j)
    {
        int q = j < Half ? block.Qs[j] & 0x0F : block.Qs[j - Half] >> 4;
        return Half16.ToSingle(block.D) * (q - 8);
    }
}
