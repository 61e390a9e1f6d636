using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Encore.Tensors.Numerics;

/// <summary>One Q8_0 block as ggml lays it out: a binary16 scale, then 32 signed quants.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ8_0
{
    /// <summary>The scale d, as binary16 bits.</summary>
    public ushort D;
    /// <summary>The quants q; value j is d·q[j].</summary>
    public fixed sbyte Qs[DTypes.Q8BlockSize];
}

/// <summary>
/// Q8_0 quantization, bit-compatible with ggml's <c>quantize_row_q8_0_ref</c>: d = max|x|/127,
/// q = round-half-away(x/d) computed with the binary32 1/d, and d stored as binary16.
/// The error per value is at most d/2 plus the f16 rounding of d (relative 2⁻¹¹).
/// </summary>
public static class Q8
{
    /// <summary>Quantizes <paramref name="src"/> (a multiple of 32 values) into blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> src, Span<BlockQ8_0> dst)
    {
        if (src.Length % DTypes.Q8BlockSize != 0)
            throw new ArgumentException($"Q8_0 needs a multiple of {DTypes.Q8BlockSize} values, got {src.Length}", nameof(src));
        int blocks = src.Length / DTypes.Q8BlockSize;
        if (dst.Length < blocks) throw new ArgumentException("destination has too few blocks", nameof(dst));
        for (int b = 0; b < blocks; b++)
            QuantizeBlock(src.Slice(b * DTypes.Q8BlockSize, DTypes.Q8BlockSize), ref dst[b]);
    }

    /// <summary>Quantizes one block of 32 values (the scalar reference).</summary>
    public static unsafe void QuantizeBlock(ReadOnlySpan<float> x, ref BlockQ8_0 block)
    {
        float amax = 0;
        for (int j = 0; j < DTypes.Q8BlockSize; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
        float d = amax / 127f;
        float id = d != 0 ? 1f / d : 0f;
        block.D = Half16.FromSingle(d);
        for (int j = 0; j < DTypes.Q8BlockSize; j++)
            block.Qs[j] = (sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
    }

    /// <summary>Expands blocks back to binary32 values.</summary>
    public static unsafe void Dequantize(ReadOnlySpan<BlockQ8_0> src, Span<float> dst)
    {
        if (dst.Length < src.Length * DTypes.Q8BlockSize) throw new ArgumentException("destination is too short", nameof(dst));
        for (int b = 0; b < src.Length; b++)
        {
            float d = Half16.ToSingle(src[b].D);
            ref readonly BlockQ8_0 blk = ref src[b];
            for (int j = 0; j < DTypes.Q8BlockSize; j++)
                dst[b * DTypes.Q8BlockSize + j] = d * blk.Qs[j];
        }
    }

    /// <summary>Views raw bytes as blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Span<BlockQ8_0> AsBlocks(Span<byte> bytes) => MemoryMarshal.Cast<byte, BlockQ8_0>(bytes);
}
