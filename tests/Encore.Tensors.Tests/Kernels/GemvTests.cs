using System.Runtime.InteropServices;
using Encore.Tensors.Kernels;
using Encore.Tensors.Numerics;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Tests.Kernels;

/// <summary>GEMV and <see cref="Gemm.Linear(ReadOnlySpan{float}, int, WeightMatrix, Span{float}, ReadOnlySpan{float})"/> over every weight dtype.</summary>
[Trait("Category", "Kernels")]
public unsafe class GemvTests
{
    static readonly DType[] WeightTypes = { DType.F32, DType.BF16, DType.F16, DType.Q8_0 };
    static readonly KernelPool OneThread = new(1);
    static readonly KernelPool ThreeThreads = new(3);

    static float[] RandomArray(Random rnd, int n)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(rnd.NextDouble() * 2 - 1);
        return v;
    }

    /// <summary>Stores <paramref name="values"/> (n×k) in <paramref name="dtype"/>.</summary>
    static byte[] Encode(DType dtype, float[] values, int n, int k)
    {
        var buf = new byte[dtype.ByteCount((long)n * k)];
        switch (dtype)
        {
            case DType.F32: MemoryMarshal.Cast<float, byte>(values.AsSpan()).CopyTo(buf); break;
            case DType.BF16: BFloat16.FromSingle(values, MemoryMarshal.Cast<byte, ushort>(buf.AsSpan())); break;
            case DType.F16: Half16.FromSingle(values, MemoryMarshal.Cast<byte, ushort>(buf.AsSpan())); break;
            case DType.Q8_0: Q8.Quantize(values, Q8.AsBlocks(buf)); break;
        }
        return buf;
    }

    // |y - ref| ≤ 1e-5·Σ|x·w| + 1e-6, with w the widened weights (the reference's own inputs).
    static void AssertLinear(float[] x, int m, WeightMatrix w, float[] bias, float[] actual, string what)
    {
        int n = w.Rows, k = w.Cols;
        var expected = new float[m * n];
        Gemm.LinearReference(x, m, w, expected, bias);
        var row = new float[k];
        for (int j = 0; j < n; j++)
        {
            w.RowToSingle(j, row);
            for (int i = 0; i < m; i++)
            {
                double mag = 0;
                for (int p = 0; p < k; p++) mag += Math.Abs((double)x[i * k + p] * row[p]);
                float tol = 1e-5f * (float)mag + 1e-6f + (bias.Length > 0 ? 1e-7f * MathF.Abs(bias[j]) : 0);
                float got = actual[i * n + j], want = expected[i * n + j];
                if (!(MathF.Abs(got - want) <= tol)) Assert.Fail($"{what}: Y[{i},{j}] = {got}, expected {want} (tol {tol})");
            }
        }
    }

    [Fact]
    public void LiteralMatrixVector()
    {
        // W = [[1, 2, 3], [-1, 0.5, 4]], x = [1, -2, 0.5], bias = [10, 20]
        var w = new float[] { 1, 2, 3, -1, 0.5f, 4 };
        var x = new float[] { 1, -2, 0.5f };
        foreach (var width in Simd.Supported)
        {
            using var _ = Simd.Override(width);
            foreach (var dt in new[] { DType.F32, DType.BF16, DType.F16 })
            {
                fixed (byte* p = Encode(dt, w, 2, 3))
                {
                    var y = new float[2];
                    Gemv.Multiply(new WeightMatrix(dt, p, 2, 3), x, y, new float[] { 10, 20 });
                    Assert.Equal(new float[] { 8.5f, 20f }, y);
                }
            }
        }
        // Q8_0: one block of 32, W row = 0.5·(j - 16), x = 1 → Σ = 0.5·(Σj - 16·32) = 0.5·(496 - 512) = -8.
        var wq = new float[32];
        for (int j = 0; j < 32; j++) wq[j] = 0.5f * (j - 16);
        fixed (byte* p = Encode(DType.Q8_0, wq, 1, 32))
        {
            foreach (var width in Simd.Supported)
            {
                using var _ = Simd.Override(width);
                var y = new float[1];
                Gemv.Multiply(new WeightMatrix(DType.Q8_0, p, 1, 32), Enumerable.Repeat(1f, 32).ToArray(), y);
                Assert.Equal(-8f, y[0], 0.01f);
            }
        }
    }

    [Fact]
    public void LinearMatchesReferenceForEveryDtypeWidthAndShape()
    {
        var rnd = new Random(42);
        int[] ms = { 1, 2, 3, 4, 5, 13, 40 };
        int[] ns = { 1, 5, 33, 70 };
        int[] ks = { 1, 7, 32, 33, 100, 96, 320 };
        int cases = 0;
        foreach (var dt in WeightTypes)
        {
            foreach (int m in ms)
            {
                int n = ns[rnd.Next(ns.Length)];
                int k = ks[rnd.Next(ks.Length)];
                if (dt == DType.Q8_0) k = Math.Max(32, k / 32 * 32);
                var wf = RandomArray(rnd, n * k);
                var x = RandomArray(rnd, m * k);
                var bias = rnd.Next(2) == 0 ? Array.Empty<float>() : RandomArray(rnd, n);
                fixed (byte* p = Encode(dt, wf, n, k))
                {
                    var w = new WeightMatrix(dt, p, n, k);
                    using var packed = PackedMatrix.Pack(w);
                    foreach (var width in Simd.Supported)
                    {
                        using var _ = Simd.Override(width);
                        var y = Enumerable.Repeat(float.NaN, m * n).ToArray();
                        Gemm.Linear(x, m, w, y, bias);
                        AssertLinear(x, m, w, bias, y, $"{width} {dt} m={m} n={n} k={k} bias={bias.Length > 0}");
                        var yp = Enumerable.Repeat(float.NaN, m * n).ToArray();
                        Gemm.Linear(x, m, packed, yp, bias);
                        AssertLinear(x, m, w, bias, yp, $"packed {width} {dt} m={m} n={n} k={k}");
                        if (m > Gemv.LinearRows(width)) Assert.Equal(y, yp); // same panels, same kernel, same order
                        cases++;
                    }
                }
            }
        }
        Assert.True(cases >= WeightTypes.Length * ms.Length);
    }

    [Fact]
    public void SmallBatchesMatchReferenceOnEveryTail()
    {
        var rnd = new Random(21);
        foreach (var dt in WeightTypes)
        {
            int[] ks = dt == DType.Q8_0 ? new[] { 32, 64, 96, 160 } : new[] { 1, 8, 15, 24, 40, 47, 100 };
            foreach (int k in ks)
            {
                int n = 3 + rnd.Next(5);
                var wf = RandomArray(rnd, n * k);
                fixed (byte* p = Encode(dt, wf, n, k))
                {
                    var w = new WeightMatrix(dt, p, n, k);
                    for (int m = 1; m <= Gemv.MaxRows; m++)
                    {
                        var x = RandomArray(rnd, m * k);
                        foreach (var width in Simd.Supported)
                        {
                            using var _ = Simd.Override(width);
                            var y = new float[m * n];
                            Gemm.Linear(x, m, w, y);
                            AssertLinear(x, m, w, Array.Empty<float>(), y, $"{width} {dt} m={m} n={n} k={k}");
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void PaddedRowStridesAreHonoured()
    {
        var rnd = new Random(8);
        int n = 9, k = 64;
        foreach (var dt in WeightTypes)
        {
            var packed = Encode(dt, RandomArray(rnd, n * k), n, k);
            long rowBytes = dt.ByteCount(k), stride = rowBytes + 24;
            var padded = new byte[n * stride];
            for (int j = 0; j < n; j++)
            {
                packed.AsSpan((int)(j * rowBytes), (int)rowBytes).CopyTo(padded.AsSpan((int)(j * stride)));
                padded.AsSpan((int)(j * stride + rowBytes), 24).Fill(0x7F); // garbage between rows
            }
            fixed (byte* p = padded)
            {
                var w = new WeightMatrix(dt, p, n, k, stride);
                foreach (int m in new[] { 1, 6, 20 })
                {
                    var x = RandomArray(rnd, m * k);
                    foreach (var width in Simd.Supported)
                    {
                        using var _ = Simd.Override(width);
                        var y = new float[m * n];
                        Gemm.Linear(x, m, w, y);
                        AssertLinear(x, m, w, Array.Empty<float>(), y, $"{width} {dt} m={m} padded rows");
                    }
                }
            }
        }
    }

    [Fact]
    public void GemvMatchesReferenceOnOddLengths()
    {
        var rnd = new Random(9);
        int[] ks = { 0, 1, 3, 4, 15, 16, 17, 63, 64, 65, 129, 256 };
        foreach (var dt in WeightTypes)
        {
            foreach (int k0 in ks)
            {
                int k = dt == DType.Q8_0 ? (k0 + 31) / 32 * 32 : k0;
                int n = 1 + rnd.Next(40);
                var wf = RandomArray(rnd, n * k);
                var x = RandomArray(rnd, k);
                var bias = RandomArray(rnd, n);
                fixed (byte* p = Encode(dt, wf, n, k))
                {
                    var w = new WeightMatrix(dt, p, n, k);
                    foreach (var width in Simd.Supported)
                    {
                        using var _ = Simd.Override(width);
                        var y = new float[n];
                        Gemv.Multiply(w, x, y, bias);
                        AssertLinear(x, 1, w, bias, y, $"{width} {dt} n={n} k={k}");
                    }
                }
            }
        }
    }

    [Fact]
    public void ResultsAreBitIdenticalAcrossThreadCounts()
    {
        var rnd = new Random(3);
        int n = 420, k = 512; // m = 20 takes the parallel GEMM path (m·n·k above ParallelWork)
        var wf = RandomArray(rnd, n * k);
        foreach (var dt in WeightTypes)
        {
            fixed (byte* p = Encode(dt, wf, n, k))
            {
                var w = new WeightMatrix(dt, p, n, k);
                foreach (int m in new[] { 1, 3, 9, 20 })
                {
                    var x = RandomArray(rnd, m * k);
                    var bias = RandomArray(rnd, n);
                    foreach (var width in Simd.Supported)
                    {
                        var y1 = new float[m * n];
                        var y3 = new float[m * n];
                        Gemm.Linear(width, OneThread, x, m, w, y1, bias);
                        Gemm.Linear(width, ThreeThreads, x, m, w, y3, bias);
                        Assert.Equal(y1, y3);
                    }
                }
            }
        }
    }

    [Fact]
    public void HalfWideningIsExactForEveryBitPattern()
    {
        var bits = new ushort[65536];
        for (int i = 0; i < bits.Length; i++) bits[i] = (ushort)i;
        for (int i = 0; i < bits.Length; i++)
        {
            float want = Half16.ToSingle(bits[i]), table = Widen.HalfTable[i];
            Assert.True(float.IsNaN(want) ? float.IsNaN(table) : BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(table), $"table 0x{i:X4}");
        }
        foreach (var width in Simd.Supported)
        {
            fixed (ushort* p = bits)
            {
                var w = new WeightMatrix(DType.F16, p, 1, bits.Length);
                var got = new float[bits.Length];
                fixed (float* g = got) Widen.Row(w, 0, 0, bits.Length, g, width);
                for (int i = 0; i < bits.Length; i++)
                {
                    float want = Half16.ToSingle(bits[i]);
                    if (float.IsNaN(want)) Assert.True(float.IsNaN(got[i]), $"{width} 0x{i:X4}");
                    else Assert.True(BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(got[i]), $"{width} 0x{i:X4}: {got[i]} vs {want}");
                }
            }
        }
    }

    [Fact]
    public void RejectsMismatchedLengths()
    {
        var w = new WeightMatrix(DType.F32, (void*)0, 0, 4);
        Assert.Throws<ArgumentException>(() => Gemv.Multiply(w, new float[3], new float[0]));
        fixed (float* p = new float[8])
        {
            var w2 = new WeightMatrix(DType.F32, p, 2, 4);
            Assert.Throws<ArgumentException>(() => Gemv.Multiply(w2, new float[4], new float[1]));
            Assert.Throws<ArgumentException>(() => Gemv.Multiply(w2, new float[4], new float[2], new float[3]));
        }
    }
}
