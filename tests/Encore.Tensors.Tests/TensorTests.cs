using Encore.Tensors;

namespace Encore.Tensors.Tests;

public class TensorTests
{
    static Tensor Arange(params int[] shape)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        return Tensor.FromArray(Enumerable.Range(0, (int)n).Select(i => (float)i).ToArray(), shape);
    }

    [Fact]
    public void SliceTransposeAndSelectAreViewsWithTheRightElements()
    {
        using var t = Arange(2, 3, 4);
        using var s = t.Slice(2, 1, 2);          // (2, 3, 2)
        Assert.Equal(new[] { 2, 3, 2 }, s.Shape.ToArray());
        Assert.Same(t.Storage, s.Storage);
        Assert.False(s.IsContiguous);
        Assert.Equal(1 * 12 + 2 * 4 + 1 + 1, s.GetFloat(1, 2, 1));
        using var tr = t.Transpose(0, 2);        // (4, 3, 2)
        Assert.Equal(new[] { 4, 3, 2 }, tr.Shape.ToArray());
        Assert.Equal(t.GetFloat(1, 2, 3), tr.GetFloat(3, 2, 1));
        using var sel = t.Select(1, 2);          // (2, 4)
        Assert.Equal(new float[] { 8, 9, 10, 11, 20, 21, 22, 23 }, sel.ToFloatArray());
    }

    [Fact]
    public void ReshapeOfContiguousIsAViewAndOfTransposedIsACopy()
    {
        using var t = Arange(2, 6);
        using var r = t.Reshape(3, -1);
        Assert.Same(t.Storage, r.Storage);
        Assert.Equal(new[] { 3, 4 }, r.Shape.ToArray());
        using var tr = t.Transpose(0, 1);        // (6, 2), not viewable as (12)
        using var flat = tr.Reshape(12);
        Assert.NotSame(t.Storage, flat.Storage);
        Assert.Equal(new float[] { 0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11 }, flat.ToFloatArray());
        // A transposed tensor whose merged dims stay contiguous reshapes without copying.
        using var t3 = Arange(2, 3, 4);
        using var p = t3.Permute(1, 0, 2);       // (3, 2, 4)
        using var v = p.Reshape(3, 2, 2, 2);
        Assert.Same(t3.Storage, v.Storage);
        Assert.Equal(p.ToFloatArray(), v.ToFloatArray());
        Assert.Throws<ArgumentException>(() => t.Reshape(5, -1));
    }

    [Fact]
    public void StorageIsReleasedWhenTheLastViewIsDisposed()
    {
        var t = Arange(4, 4);
        var v = t.Slice(0, 1, 2);
        t.Dispose();
        Assert.False(t.Storage.IsReleased);
        Assert.Equal(4, v.GetFloat(0, 0));
        v.Dispose();
        Assert.True(t.Storage.IsReleased);
        Assert.Throws<ObjectDisposedException>(() => v.GetFloat(0, 0));
    }

    [Fact]
    public unsafe void BuffersAre64ByteAligned()
    {
        for (int n = 1; n < 100; n += 7)
        {
            using var t = Tensor.Zeros(DType.F32, n);
            Assert.Equal(0, (long)t.DataPointer % 64);
        }
    }

    [Theory]
    [InlineData(DType.BF16, 1.0 / 128)]
    [InlineData(DType.F16, 1.0 / 1024)]
    public void HalfPrecisionRoundTripsWithinRelativeError(DType dtype, double rel)
    {
        var rng = new Random(3);
        var x = Enumerable.Range(0, 1000).Select(_ => (float)(rng.NextDouble() * 8 - 4)).ToArray();
        using var t = Tensor.FromArray(x, 10, 100);
        using var h = t.To(dtype);
        var back = h.ToFloatArray();
        for (int i = 0; i < x.Length; i++)
            Assert.True(Math.Abs(back[i] - x[i]) <= rel * Math.Abs(x[i]) * 0.5 + 1e-7, $"{x[i]} -> {back[i]}");
    }

    [Fact]
    public void Q8ViewsKeepWholeBlocks()
    {
        using var t = Arange(4, 64);
        using var q = t.To(DType.Q8_0);
        Assert.Equal(4 * 2 * 34, q.ByteLength);
        using var row = q.Slice(0, 1, 2);
        Assert.Equal(2 * 64, row.ToFloatArray().Length);
        using var half = q.Slice(1, 32, 32);
        Assert.Throws<InvalidOperationException>(() => q.Slice(1, 3, 32));
        Assert.Throws<InvalidOperationException>(() => q.Transpose(0, 1));
        Assert.Throws<ArgumentException>(() => Tensor.Zeros(DType.Q8_0, 3, 10));
    }

    [Fact]
    public void MemoryMappedStorageIsAReadOnlyZeroCopyView()
    {
        var path = Path.GetTempFileName();
        try
        {
            var data = new float[] { 1, 2, 3, 4, 5, 6 };
            File.WriteAllBytes(path, [.. new byte[8], .. System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()).ToArray()]);
            using var storage = new DisposableStorage(Encore.Tensors.Storage.MappedStorage.Open(path));
            using var t = Tensor.FromStorage(storage.Value, DType.F32, [2, 3], byteOffset: 8);
            Assert.Equal(data, t.ToFloatArray());
            Assert.Throws<InvalidOperationException>(() => t.AsSpan<float>());
            Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.FromStorage(storage.Value, DType.F32, [2, 4], byteOffset: 8));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void MappingThroughASymlinkMapsTheFileItPointsAt()
    {
        // The Hugging Face cache's snapshot entries are relative links into blobs/; a link's own length is its target's path.
        var dir = Directory.CreateTempSubdirectory("encore-map-link-").FullName;
        try
        {
            var data = Enumerable.Range(0, 100).Select(i => (float)i).ToArray();
            Directory.CreateDirectory(Path.Combine(dir, "blobs"));
            Directory.CreateDirectory(Path.Combine(dir, "snapshots"));
            File.WriteAllBytes(Path.Combine(dir, "blobs", "b"), System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()).ToArray());
            var link = Path.Combine(dir, "snapshots", "model.safetensors");
            File.CreateSymbolicLink(link, "../blobs/b");
            using var storage = new DisposableStorage(Encore.Tensors.Storage.MappedStorage.Open(link));
            using var t = Tensor.FromStorage(storage.Value, DType.F32, [100], byteOffset: 0);
            Assert.Equal(data, t.ToFloatArray());

            File.Delete(Path.Combine(dir, "blobs", "b"));
            Assert.Contains("which does not exist", Assert.Throws<FileNotFoundException>(() => Encore.Tensors.Storage.MappedStorage.Open(link)).Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    sealed class DisposableStorage(Encore.Tensors.Storage.TensorStorage value) : IDisposable
    {
        public Encore.Tensors.Storage.TensorStorage Value { get; } = value;
        public void Dispose() => Value.Release();
    }
}
