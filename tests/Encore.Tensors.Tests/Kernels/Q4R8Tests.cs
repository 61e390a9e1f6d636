using System.Runtime.InteropServices;
using Encore.Tensors.Kernels;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Tests.Kernels;

/// <summary>Q4_0R8: the regrouped layout holds exactly Q4_0's blocks.</summary>
public unsafe class Q4R8Tests
{
    // Q4_0 blocks with random quant bytes and finite binary16 scales of both signs.
    static BlockQ4_0[] RandomBlocks(Random rnd, int count)
    {
        var blocks = new BlockQ4_0[count];
        rnd.NextBytes(MemoryMarshal.AsBytes(blocks.AsSpan()));
        for (int b = 0; b < count; b++) blocks[b].D = BitConverter.HalfToUInt16Bits((Half)(rnd.NextDouble() * 0.2 - 0.1));
        return blocks;
    }

    [Fact]
    public void RegroupingMovesBytesAndKeepsEveryBlock()
    {
        var rnd = new Random(5);
        var blocks = RandomBlocks(rnd, 24);
        var groups = new GroupQ4_0R8[3];
        Q4R8.Regroup(blocks, groups);
        var back = new BlockQ4_0[24];
        Q4R8.Ungroup(groups, back);
        Assert.Equal(MemoryMarshal.AsBytes(blocks.AsSpan()).ToArray(), MemoryMarshal.AsBytes(back.AsSpan()).ToArray());
        // The documented order, byte by byte: quant byte p of block b at 64·(p / 8) + 4·(b + 8·((p / 4) mod 2)) + p mod 4.
        fixed (GroupQ4_0R8* g = groups)
        fixed (BlockQ4_0* src = blocks)
            for (int grp = 0; grp < 3; grp++)
                for (int b = 0; b < 8; b++)
                {
                    byte* o = g[grp].Bytes;
                    var blk = src + 8 * grp + b;
                    for (int p = 0; p < 16; p++) Assert.Equal(blk->Qs[p], o[64 * (p / 8) + 4 * (b + 8 * (p / 4 % 2)) + p % 4]);
                    Assert.Equal(blk->D, *(ushort*)(o + 128 + 2 * b));
                    BlockQ4_0 one;
                    Q4R8.RowBlock((byte*)g, 8 * grp + b, &one);
                    Assert.Equal(new ReadOnlySpan<byte>(blk, 18).ToArray(), new ReadOnlySpan<byte>(&one, 18).ToArray());
                }
        Assert.Throws<ArgumentException>(() => Q4R8.Regroup(blocks.AsSpan(0, 12), groups));
    }

    [Fact]
    public void TensorsConvertBothWaysWithoutQuantizingAgain()
    {
        var rnd = new Random(6);
        var values = new float[3 * 512];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rnd.NextDouble() * 2 - 1);
        using var f = Tensor.FromArray(values, 3, 512);
        using var q4 = f.To(DType.Q4_0);
        using var r8 = q4.To(DType.Q4_0R8);
        using var direct = f.To(DType.Q4_0R8);
        using var back = r8.To(DType.Q4_0);
        Assert.Equal(DType.Q4_0R8, r8.DType);
        Assert.Equal(q4.AsReadOnlySpan<BlockQ4_0>().Length * 18L, r8.AsReadOnlySpan<GroupQ4_0R8>().Length * 144L);
        Assert.Equal(MemoryMarshal.AsBytes(q4.AsReadOnlySpan<BlockQ4_0>()).ToArray(), MemoryMarshal.AsBytes(back.AsReadOnlySpan<BlockQ4_0>()).ToArray());
        Assert.Equal(MemoryMarshal.AsBytes(r8.AsReadOnlySpan<GroupQ4_0R8>()).ToArray(), MemoryMarshal.AsBytes(direct.AsReadOnlySpan<GroupQ4_0R8>()).ToArray());
        Assert.Equal(q4.ToFloatArray(), r8.ToFloatArray());
        foreach (var (i, j) in new[] { (0, 0), (1, 17), (2, 300), (2, 511) }) Assert.Equal(q4.GetFloat(i, j), r8.GetFloat(i, j));
        var row = new float[512];
        var want = new float[512];
        WeightMatrix.From(r8).RowToSingle(2, row);
        WeightMatrix.From(q4).RowToSingle(2, want);
        Assert.Equal(want, row);
        // Rows that are not whole groups of 256 cannot be Q4_0R8.
        using var narrow = Tensor.FromArray(new float[2 * 96], 2, 96);
        var e = Assert.Throws<ArgumentException>(() => narrow.To(DType.Q4_0R8));
        Assert.Contains("256", e.Message);
    }

    [Fact]
    public void EmbeddingRowsAreTheQ4_0Rows()
    {
        var rnd = new Random(7);
        var values = new float[5 * 256];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rnd.NextDouble() * 2 - 1);
        using var f = Tensor.FromArray(values, 5, 256);
        using var q4 = f.To(DType.Q4_0);
        using var r8 = q4.To(DType.Q4_0R8);
        int[] ids = [4, 0, 2, 4];
        var want = new float[ids.Length * 256];
        Embedding.GatherReference(WeightMatrix.From(q4), ids, want);
        foreach (var width in Simd.Supported)
        {
            using var _ = Simd.Override(width);
            var got = new float[ids.Length * 256];
            Embedding.Gather(WeightMatrix.From(r8), ids, got);
            Assert.Equal(want, got);
        }
    }
}
