using Encore.Tensors.Storage;

namespace Encore.Tensors.Tests;

public unsafe class BufferPoolTests
{
    [Fact]
    public void AFreedBufferIsReusedForTheSameSizeClassAndZeroedWhenAsked()
    {
        const long size = 3 * BufferPool.MinPooledBytes + 100;
        using var pooled = BufferPool.Enable();
        var a = NativeBuffer.Allocate(size);
        new Span<byte>(a.Pointer, (int)size).Fill(0xAB);
        var p = (nint)a.Pointer;
        a.Release();
        // Another thread may take it first (the pool is process-wide), so look for it among a few.
        var held = new List<NativeBuffer>();
        NativeBuffer? again = null;
        for (int i = 0; i < 64 && again is null; i++)
        {
            var b = NativeBuffer.Allocate(size - 50);
            if ((nint)b.Pointer == p) again = b;
            else held.Add(b);
        }
        try
        {
            Assert.NotNull(again);
            Assert.True(new ReadOnlySpan<byte>(again!.Pointer, (int)size - 50).IndexOfAnyExcept((byte)0) < 0, "a reused buffer asked for zeros has zeros");
        }
        finally
        {
            again?.Release();
            foreach (var b in held) b.Release();
        }
    }

    [Fact]
    public void SizeClassesCoverTheRequestWithinAQuarter()
    {
        foreach (long n in new long[] { 64, 4096, BufferPool.MinPooledBytes - 64, BufferPool.MinPooledBytes, 100_000, 1 << 20, (1 << 20) + 64, 131_596_288, 3L << 32 })
        {
            var c = (long)BufferPool.SizeClass((nuint)n);
            Assert.InRange(c, n, n < BufferPool.MinPooledBytes ? n : n + n / 4);
            Assert.Equal(c, (long)BufferPool.SizeClass((nuint)c));
        }
    }

    [Fact]
    public void TensorsMadeAfterClearAreStillZeroed()
    {
        using var pooled = BufferPool.Enable();
        using (var t = Tensor.Zeros(DType.F32, 50_000)) t.AsSpan<float>().Fill(7f);
        using (var t = Tensor.Zeros(DType.F32, 50_000)) Assert.All(t.ToFloatArray(), v => Assert.Equal(0f, v));
        BufferPool.Clear();
        using (var t = Tensor.Zeros(DType.F32, 50_000)) Assert.All(t.ToFloatArray(), v => Assert.Equal(0f, v));
        using (var t = Tensor.Zeros(DType.F32, 50_000)) Assert.All(t.ToFloatArray(), v => Assert.Equal(0f, v));
    }
}
