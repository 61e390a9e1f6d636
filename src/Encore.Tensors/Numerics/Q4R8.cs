using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Encore.Tensors.Numerics;

/// <summary>One group of <see cref="DType.Q4_0R8"/>: eight Q4_0 blocks regrouped (see <see cref="Q4R8"/>).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct GroupQ4_0R8
{
    /// <summary>128 quant bytes, then the eight binary16 scales.</summary>
    public fixed byte Bytes[DTypes.Q4R8GroupBytes];
}

/// <summary>
/// <see cref="DType.Q4_0R8"/>: Q4_0 blocks regrouped eight at a time so that a 512-bit kernel reads each block's
/// quants without a byte gather. A group holds the same 8 × 18 bytes as eight consecutive Q4_0 blocks:
/// <list type="bullet">
/// <item>bytes 0–127, the quants, as two 64-byte vectors v = 0, 1 of sixteen 4-byte lanes l: byte 64·v + 4·l + t is
/// quant byte 8·v + 4·(l / 8) + t of block l mod 8 (a Q4_0 quant byte holds value p in its low nibble and p + 16 in
/// its high one). So lanes l and l + 8 of both vectors hold block l mod 8: one multiply-add of the two vectors'
/// nibbles against x laid out alike, then lane l plus lane l + 8, is block l's integer dot product;</item>
/// <item>bytes 128–143, the eight blocks' binary16 scales in block order.</item>
/// </list>
/// Regrouping is a permutation of bytes: Q4_0 → Q4_0R8 → Q4_0 gives back the same bytes.
/// </summary>
public static unsafe class Q4R8
{
    /// <summary>Offset within its group of quant byte <paramref name="p"/> (0–15) of block <paramref name="b"/> (0–7).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int QuantOffset(int b, int p) => 64 * (p >> 3) + 4 * (b + 8 * ((p >> 2) & 1)) + (p & 3);

    /// <summary>Offset within its group of block <paramref name="b"/>'s binary16 scale.</summary>
    public static int ScaleOffset(int b) => 128 + 2 * b;

    /// <summary>Regroups Q4_0 blocks (a multiple of 8) into <paramref name="dst"/>.</summary>
    public static void Regroup(ReadOnlySpan<BlockQ4_0> src, Span<GroupQ4_0R8> dst)
    {
        if (src.Length % DTypes.Q4R8Blocks != 0)
            throw new ArgumentException($"Q4_0R8 regroups whole groups of {DTypes.Q4R8Blocks} blocks, got {src.Length}", nameof(src));
        if (dst.Length < src.Length / DTypes.Q4R8Blocks) throw new ArgumentException("destination has too few groups", nameof(dst));
        fixed (BlockQ4_0* s = src)
        fixed (GroupQ4_0R8* d = dst)
            for (int g = 0; g < src.Length / DTypes.Q4R8Blocks; g++)
            {
                byte* o = d[g].Bytes;
                for (int b = 0; b < DTypes.Q4R8Blocks; b++)
                {
                    var blk = s + g * DTypes.Q4R8Blocks + b;
                    // Quant bytes 4c … 4c + 3 as one lane (QuantOffset(b, 4c) is a multiple of 4).
                    for (int c = 0; c < 4; c++) ((uint*)o)[16 * (c >> 1) + b + 8 * (c & 1)] = ((uint*)blk->Qs)[c];
                    *(ushort*)(o + ScaleOffset(b)) = blk->D;
                }
            }
    }

    /// <summary>The inverse of <see cref="Regroup"/>.</summary>
    public static void Ungroup(ReadOnlySpan<GroupQ4_0R8> src, Span<BlockQ4_0> dst)
    {
        if (dst.Length < src.Length * DTypes.Q4R8Blocks) throw new ArgumentException("destination has too few blocks", nameof(dst));
        fixed (GroupQ4_0R8* s = src)
        fixed (BlockQ4_0* d = dst)
            for (int g = 0; g < src.Length; g++)
                for (int b = 0; b < DTypes.Q4R8Blocks; b++)
                    Block(s[g].Bytes, b, d + g * DTypes.Q4R8Blocks + b);
    }

    /// <summary>Block <paramref name="b"/> (0–7) of the group at <paramref name="group"/>, as a Q4_0 block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Block(byte* group, int b, BlockQ4_0* dst)
    {
        dst->D = *(ushort*)(group + ScaleOffset(b));
        // Quant bytes 4c … 4c + 3 of the block are one 4-byte lane: vector c / 2, lane b + 8·(c mod 2).
        for (int c = 0; c < 4; c++)
            ((uint*)dst->Qs)[c] = ((uint*)group)[16 * (c >> 1) + b + 8 * (c & 1)];
    }

    /// <summary>
    /// Block <paramref name="b"/> of a weight row of Q4_0 blocks or, when <paramref name="regrouped"/>, of Q4_0R8 groups:
    /// a pointer into the row for Q4_0, else the block put back together in <paramref name="scratch"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BlockQ4_0* BlockOf(byte* row, int b, bool regrouped, BlockQ4_0* scratch)
    {
        if (!regrouped) return (BlockQ4_0*)row + b;
        RowBlock(row, b, scratch);
        return scratch;
    }

    /// <summary>Block <paramref name="b"/> of a row of Q4_0R8 groups (block b of group b / 8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void RowBlock(byte* row, int b, BlockQ4_0* dst)
        => Block(row + (long)(b / DTypes.Q4R8Blocks) * DTypes.Q4R8GroupBytes, b % DTypes.Q4R8Blocks, dst);

    /// <summary>Quantizes <paramref name="src"/> (a multiple of 256 values) as Q4_0 (<see cref="Q4.Quantize"/>), regrouped.</summary>
    public static void Quantize(ReadOnlySpan<float> src, Span<GroupQ4_0R8> dst)
    {
        if (src.Length % DTypes.Q4R8GroupSize != 0)
            throw new ArgumentException($"Q4_0R8 needs a multiple of {DTypes.Q4R8GroupSize} values, got {src.Length}", nameof(src));
        var blocks = new BlockQ4_0[DTypes.Q4R8Blocks];
        for (int g = 0; g < src.Length / DTypes.Q4R8GroupSize; g++)
        {
            Q4.Quantize(src.Slice(g * DTypes.Q4R8GroupSize, DTypes.Q4R8GroupSize), blocks);
            Regroup(blocks, dst.Slice(g, 1));
        }
    }

    /// <summary>Expands groups back to binary32 values (the values of the Q4_0 blocks they hold).</summary>
    public static void Dequantize(ReadOnlySpan<GroupQ4_0R8> src, Span<float> dst)
    {
        if (dst.Length < (long)src.Length * DTypes.Q4R8GroupSize) throw new ArgumentException("destination is too short", nameof(dst));
        var blocks = new BlockQ4_0[DTypes.Q4R8Blocks];
        for (int g = 0; g < src.Length; g++)
        {
            Ungroup(src.Slice(g, 1), blocks);
            Q4.Dequantize(blocks, dst.Slice(g * DTypes.Q4R8GroupSize, DTypes.Q4R8GroupSize));
        }
    }

    /// <summary>Value <paramref name="j"/> (0–255) of a group, as binary32.</summary>
    public static float Value(in GroupQ4_0R8 group, int j)
    {
        BlockQ4_0 blk;
        fixed (byte* g = group.Bytes) Block(g, j / DTypes.Q4BlockSize, &blk);
        return Q4.Value(blk, j % DTypes.Q4BlockSize);
    }
}
