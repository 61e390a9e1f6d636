using System.Runtime.InteropServices;
using Encore.Tensors;
using Encore.Tensors.Kernels;
using Encore.Tensors.Numerics;
using static Encore.Tensors.Tests.Kernels.OpsTesting;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public unsafe class EmbeddingTests
{
    /// <summary>A (V, D) table of <paramref name="values"/> stored as <paramref name="dtype"/>, pinned for the test's lifetime.</summary>
    static (WeightMatrix W, GCHandle Pin) Table(DType dtype, float[] values, int v, int d)
    {
        byte[] bytes = dtype switch
        {
            DType.F32 => MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
            DType.BF16 => MemoryMarshal.AsBytes(values.Select(BFloat16.FromSingle).ToArray().AsSpan()).ToArray(),
            DType.F16 => MemoryMarshal.AsBytes(values.Select(Half16.FromSingle).ToArray().AsSpan()).ToArray(),
            DType.Q8_0 => QuantizeBytes(values),
            DType.Q4_0 => Quantize4Bytes(values),
            _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
        };
        var pin = GCHandle.Alloc(bytes, GCHandleType.Pinned);
        return (new WeightMatrix(dtype, (void*)pin.AddrOfPinnedObject(), v, d), pin);
    }

    static byte[] QuantizeBytes(float[] values)
    {
        var blocks = new BlockQ8_0[values.Length / 32];
        Q8.Quantize(values, blocks);
        return MemoryMarshal.AsBytes(blocks.AsSpan()).ToArray();
    }

    static byte[] Quantize4Bytes(float[] values)
    {
        var blocks = new BlockQ4_0[values.Length / 32];
        Q4.Quantize(values, blocks);
        return MemoryMarshal.AsBytes(blocks.AsSpan()).ToArray();
    }

    [Fact]
    public void GathersHandPickedRows()
    {
        // V = 3, D = 32 (one Q8 block): row k holds k + j/64, exactly representable in every dtype but Q8
        const int v = 3, d = 32;
        var values = new float[v * d];
        for (int k = 0; k < v; k++)
            for (int j = 0; j < d; j++) values[k * d + j] = k + j / 64f;
        foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16 })
        {
            var (w, pin) = Table(dtype, values, v, d);
            try
            {
                foreach (var width in Simd.Supported)
                {
                    var dst = new float[3 * d];
                    using (Simd.Override(width)) Embedding.Gather(w, new[] { 2, 0, 2 }, dst);
                    Assert.Equal(values.AsSpan(2 * d, d).ToArray(), dst.AsSpan(0, d).ToArray());
                    Assert.Equal(values.AsSpan(0, d).ToArray(), dst.AsSpan(d, d).ToArray());
                    Assert.Equal(2 + 31 / 64f, dst[3 * d - 1]);
                }
            }
            finally { pin.Free(); }
        }
    }

    [Fact]
    public void EveryDtypeAndWidthIsBitIdenticalToTheReference()
    {
        var rng = new Random(51);
        foreach (int d in new[] { 32, 64, 96, 160, 256 })
        {
            foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16, DType.Q8_0, DType.Q4_0 })
            {
                int v = 7;
                var values = Random(rng, v * d, 3);
                values[5] = 1e-6f;          // an f16 subnormal
                values[6] = -0f;
                var (w, pin) = Table(dtype, values, v, d);
                try
                {
                    var ids = Enumerable.Range(0, 11).Select(_ => rng.Next(v)).ToArray();
                    var expected = new float[ids.Length * d];
                    Embedding.GatherReference(w, ids, expected);
                    if (dtype == DType.F32) Assert.Equal(values.AsSpan(ids[0] * d, d).ToArray(), expected.AsSpan(0, d).ToArray());
                    if (dtype == DType.Q8_0) Near(values.AsSpan(ids[0] * d, d), expected.AsSpan(0, d), 3f / 127, 0, "Q8 error bound");
                    if (dtype == DType.Q4_0) Near(values.AsSpan(ids[0] * d, d), expected.AsSpan(0, d), 3f / 8 * 1.001f, 0, "Q4 error bound");
                    foreach (var width in Simd.Supported)
                    {
                        var dst = new float[expected.Length];
                        using (Simd.Override(width)) Embedding.Gather(w, ids, dst);
                        Assert.Equal(expected, dst);
                    }
                }
                finally { pin.Free(); }
            }
        }
        // non-multiple-of-32 widths for the element dtypes
        foreach (int d in new[] { 1, 3, 7, 15, 17, 33, 63, 65, 127, 129, 255 })
        {
            foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16 })
            {
                var values = Random(rng, 4 * d);
                var (w, pin) = Table(dtype, values, 4, d);
                try
                {
                    var ids = new[] { 3, 1, 0, 3 };
                    var expected = new float[4 * d];
                    Embedding.GatherReference(w, ids, expected);
                    foreach (var width in Simd.Supported)
                    {
                        var dst = new float[4 * d];
                        using (Simd.Override(width)) Embedding.Gather(w, ids, dst);
                        Assert.Equal(expected, dst);
                    }
                }
                finally { pin.Free(); }
            }
        }
    }

    [Fact]
    public void EveryHalfBitPatternWidensLikeSystemHalf()
    {
        var all = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var expected = all.Select(h => BitConverter.SingleToInt32Bits(Half16.ToSingle(h))).ToArray();
        fixed (ushort* s = all)
        {
            // One table row holding every pattern.
            var table = new WeightMatrix(DType.F16, s, 1, all.Length);
            foreach (var width in Simd.Supported)
            {
                var dst = new float[all.Length];
                using (Simd.Override(width)) Embedding.Gather(table, [0], dst);
                Assert.Equal(expected, dst.Select(BitConverter.SingleToInt32Bits).ToArray());
            }
        }
    }

    [Fact]
    public void OutOfRangeIdNamesIdPositionAndVocabulary()
    {
        var (w, pin) = Table(DType.F32, new float[4 * 8], 4, 8);
        try
        {
            var e = Assert.Throws<ArgumentException>(() => Embedding.Gather(w, new[] { 0, 3, 4 }, new float[24]));
            Assert.Contains("id 4 at position 2", e.Message);
            Assert.Contains("vocabulary of 4", e.Message);
            e = Assert.Throws<ArgumentException>(() => Embedding.Gather(w, new[] { -1 }, new float[8]));
            Assert.Contains("id -1", e.Message);
            Assert.Throws<ArgumentException>(() => Embedding.Gather(w, new[] { 0, 1 }, new float[15]));
            Assert.Throws<ArgumentException>(() => Embedding.Backward(new[] { 5 }, new float[8], new float[32], 4, 8));
        }
        finally { pin.Free(); }
    }

    [Fact]
    public void BackwardScatterAddsRepeatedIdsAndSkipsPadding()
    {
        // ids (1, 0, 1, 2) with padding id 2: row 1 gets dy0 + dy2, row 0 gets dy1, row 2 nothing
        var dy = new float[] { 1, 2, 10, 20, 100, 200, 7, 7 };
        foreach (var width in Simd.Supported)
        {
            var dt = new float[] { 0.5f, 0.5f, 0, 0, 0, 0 };
            using (Simd.Override(width)) Embedding.Backward(new[] { 1, 0, 1, 2 }, dy, dt, 3, 2, paddingId: 2);
            Assert.Equal(new float[] { 10.5f, 20.5f, 101, 202, 0, 0 }, dt);
        }
        var rng = new Random(52);
        foreach (var (n, d) in new[] { (5, 1), (9, 17), (33, 64), (40, 129), (300, 255) })   // the last is parallel
        {
            var ids = Enumerable.Range(0, n).Select(_ => rng.Next(6)).ToArray();
            var g = Random(rng, n * d);
            var expected = Random(new Random(n), 6 * d);
            var initial = (float[])expected.Clone();
            Embedding.BackwardReference(ids, g, expected, 6, d, paddingId: 3);
            foreach (var width in Simd.Supported)
            {
                var dt = (float[])initial.Clone();
                using (Simd.Override(width)) Embedding.Backward(ids, g, dt, 6, d, paddingId: 3);
                Assert.Equal(expected, dt);
            }
        }
    }

    [Fact]
    public void LargeGatherIsParallelAndExact()
    {
        var rng = new Random(53);
        const int v = 50, d = 256, n = 300;                   // 76,800 values
        var values = Random(rng, v * d);
        var (w, pin) = Table(DType.BF16, values, v, d);
        try
        {
            var ids = Enumerable.Range(0, n).Select(i => (i * 17) % v).ToArray();
            var expected = new float[n * d];
            Embedding.GatherReference(w, ids, expected);
            foreach (var width in Simd.Supported)
            {
                var dst = new float[n * d];
                using (Simd.Override(width)) Embedding.Gather(w, ids, dst);
                Assert.Equal(expected, dst);
            }
        }
        finally { pin.Free(); }
    }
}
