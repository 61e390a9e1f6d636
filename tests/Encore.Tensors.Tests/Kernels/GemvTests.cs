using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Kernels;
using Encore.Tensors.Numerics;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Tests.Kernels;

/// <summary>GEMV and <see cref="Gemm.Linear(ReadOnlySpan{float}, int, WeightMatrix, Span{float}, ReadOnlySpan{float})"/> over every weight dtype.</summary>
[Trait("Category", "Kernels")]
public unsafe class GemvTests
{
    static readonly DType[] WeightTypes = { DType.F32, DType.BF16, DType.F16, DType.Q8_0, DType.Q4_0 };
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
            case DType.Q4_0: Q4.Quantize(values, MemoryMarshal.Cast<byte, BlockQ4_0>(buf.AsSpan())); break;
            case DType.Q4_0R8: Q4R8.Quantize(values, MemoryMarshal.Cast<byte, GroupQ4_0R8>(buf.AsSpan())); break;
        }
        return buf;
    }

    // The bits x is quantized to when Gemm.Linear at this width sends Q8_0/Q4_0 weights to a path with
    // quantized x (16: the int16 GEMV, 8: the Q4_0 VNNI GEMV or the int8 GEMM), whose specification is then
    // Gemv.QuantizedActivationReference rather than Gemm.LinearReference; 0 when x stays binary32.
    static int QuantizedX(DType dt, int m, SimdWidth width)
        => m > Gemv.LinearRows(width) && Gemm.QuantizesActivations(width, dt) ? 8
            : PackedGemm(dt, m, width) || Gemv.TakesWideTiles(width, dt, Math.Min(m, Gemv.LinearRows(width))) ? 0
            : Gemv.QuantizesActivationsToInt8(width, dt) || Gemv.QuantizesActivationsToInt8Quad(width, dt) || Gemv.QuantizesActivationsToInt8Octet(width, dt) ? 8
            : Gemv.QuantizesActivations(width, dt) ? 16 : 0;

    // Whether Gemm.Linear runs the packed binary32 GEMM (rather than GEMV passes or the int8 GEMM).
    static bool PackedGemm(DType dt, int m, SimdWidth width)
        => m > Gemm.GemvChunks * Gemv.LinearRows(width) && !Gemm.QuantizesActivations(width, dt);

    // |y - ref| ≤ 1e-5·Σ|x·w| + 1e-6, with w the widened weights (the reference's own inputs); ref is the
    // quantized-activation reference when quantizedX.
    static void AssertLinear(float[] x, int m, WeightMatrix w, float[] bias, float[] actual, string what, int quantizedX = 0)
    {
        int n = w.Rows, k = w.Cols;
        var expected = new float[m * n];
        if (quantizedX > 0) Gemv.QuantizedActivationReference(w, x, m, expected, bias, quantizedX);
        else Gemm.LinearReference(x, m, w, expected, bias);
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
        // Q4_0: the same row has max |w| = 8 at j = 0 (w = −8), so d = −8/−8 = 1 and every w = j/2 − 8
        // lands on q = trunc(w + 8.5) clamped to 15, value q − 8: Σ_j of those is exact.
        float q4sum = 0;
        for (int j = 0; j < 32; j++) q4sum += Math.Min(15, (int)MathF.Truncate(wq[j] + 8.5f)) - 8;
        fixed (byte* p = Encode(DType.Q4_0, wq, 1, 32))
        {
            foreach (var width in Simd.Supported)
            {
                using var _ = Simd.Override(width);
                var y = new float[1];
                Gemv.Multiply(new WeightMatrix(DType.Q4_0, p, 1, 32), Enumerable.Repeat(1f, 32).ToArray(), y);
                Assert.Equal(q4sum, y[0], 0.01f);
            }
        }
    }

    [Fact]
    public void LinearMatchesReferenceForEveryDtypeWidthAndShape()
    {
        var rnd = new Random(42);
        int[] ms = { 1, 2, 3, 4, 5, 13, 17, 22, 40, 70 };
        int[] ns = { 1, 5, 33, 70 };
        int[] ks = { 1, 7, 32, 33, 100, 96, 320 };
        int cases = 0;
        foreach (var dt in WeightTypes)
        {
            foreach (int m in ms)
            {
                int n = ns[rnd.Next(ns.Length)];
                int k = ks[rnd.Next(ks.Length)];
                if (dt.IsBlocked()) k = Math.Max(32, k / 32 * 32);
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
                        AssertLinear(x, m, w, bias, y, $"{width} {dt} m={m} n={n} k={k} bias={bias.Length > 0}", QuantizedX(dt, m, width));
                        var yp = Enumerable.Repeat(float.NaN, m * n).ToArray();
                        Gemm.Linear(x, m, packed, yp, bias);
                        AssertLinear(x, m, w, bias, yp, $"packed {width} {dt} m={m} n={n} k={k}");
                        if (PackedGemm(dt, m, width)) Assert.Equal(y, yp); // same panels, same kernel, same order
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
            int[] ks = dt.IsBlocked() ? new[] { 32, 64, 96, 160 } : new[] { 1, 8, 15, 24, 40, 47, 100 };
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
                            AssertLinear(x, m, w, Array.Empty<float>(), y, $"{width} {dt} m={m} n={n} k={k}", QuantizedX(dt, m, width));
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
                        AssertLinear(x, m, w, Array.Empty<float>(), y, $"{width} {dt} m={m} padded rows", QuantizedX(dt, m, width));
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
                int k = dt.IsBlocked() ? (k0 + 31) / 32 * 32 : k0;
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
                        AssertLinear(x, 1, w, bias, y, $"{width} {dt} n={n} k={k}", QuantizedX(dt, 1, width));
                    }
                }
            }
        }
    }

    /// <summary>A fact that runs only where the Q8 activation quantizer has its vector form (AVX-512BW), and is reported as skipped elsewhere.</summary>
    public sealed class FactWithQ8ActivationQuantizerAttribute : FactAttribute
    {
        public FactWithQ8ActivationQuantizerAttribute()
        {
            if (!Gemv.QuantizesActivations(SimdWidth.V512, DType.Q8_0) || !Simd.Supported.Contains(SimdWidth.V512))
                Skip = "this CPU has no AVX-512BW, so the activation quantizer has no vector form to compare";
        }
    }

    [FactWithQ8ActivationQuantizer]
    public void ActivationQuantizationMatchesItsScalarTwin()
    {
        var rnd = new Random(17);
        int blocks = 64;
        var x = RandomArray(rnd, blocks * 32);
        for (int j = 0; j < 32; j++) x[j] = 0;                          // an all-zero block: dx = 0, quants 0
        for (int j = 32; j < 64; j++) x[j] *= 1e-30f;                   // tiny values (1/dx is large but finite)
        for (int j = 64; j < 96; j++) x[j] *= 3e4f;                     // large values
        for (int j = 96; j < 128; j++) x[j] = (j - 112) * 0.5f;         // ties at x·(1/dx) = k + ½
        x[200] = 1e3f;                                                  // one outlier in its block
        var q = new short[x.Length]; var qr = new short[x.Length];
        var d = new float[blocks]; var dr = new float[blocks];
        fixed (float* px = x)
        fixed (short* pq = q, pqr = qr)
        fixed (float* pd = d, pdr = dr)
        {
            Gemv.QuantizeX(px, blocks, pq, pd);
            Gemv.QuantizeXReference(px, blocks, pqr, pdr);
        }
        Assert.Equal(dr, d);
        Assert.Equal(qr, q);
        Assert.Equal(32767, qr.Skip(64).Take(32).Max(v => Math.Abs((int)v))); // each block's max|x| maps to ±32767
    }

    /// <summary>A fact that runs only where the Q4_0 VNNI path exists (AVX-VNNI), reported as skipped elsewhere.</summary>
    public sealed class FactWithVnniAttribute : FactAttribute
    {
        public FactWithVnniAttribute()
        {
            if (!Gemv.QuantizesActivationsToInt8(SimdWidth.V256, DType.Q4_0) || !Simd.Supported.Contains(SimdWidth.V256))
                Skip = "this CPU has no AVX-VNNI, so the Q4_0 int8-activation path is never taken";
        }
    }

    [FactWithVnni]
    public void PairedInt8QuantizationMatchesItsScalarTwin()
        => AssertInt8LayoutMatchesItsTwin(19, [1, 2, 3, 8, 9], blocks => (blocks + 1) / 2 * 128, 0, &Gemv.QuantizePaired, &Gemv.QuantizePairedReference);

    // One row of x quantized into an int8 layout by the vector quantizer and by its scalar twin, byte for byte, over a
    // row with halves at x·(1/dx) = k + ½ and an all-zero block; the output starts filled with `fill`.
    static void AssertInt8LayoutMatchesItsTwin(int seed, int[] blockCounts, Func<int, int> rowBytes, byte fill,
        delegate*<float*, int, byte*, void> quantize, delegate*<float*, int, byte*, void> twin)
    {
        var rnd = new Random(seed);
        foreach (int blocks in blockCounts)
        {
            var x = RandomArray(rnd, blocks * 32);
            for (int j = 0; j < 32; j++) x[j] = (j - 16) * 0.5f;             // ties at x·(1/dx) = k + ½
            if (blocks > 2) for (int j = 64; j < 96; j++) x[j] = 0;         // an all-zero block
            int bytes = rowBytes(blocks);
            var got = Enumerable.Repeat(fill, bytes).ToArray();
            var want = new byte[bytes];
            fixed (float* px = x)
            fixed (byte* pg = got, pw = want)
            {
                quantize(px, blocks, pg);
                twin(px, blocks, pw);
            }
            Assert.Equal(want, got);
        }
    }

    // The four-row tile of the Q4_0 VNNI GEMV sums each row exactly as the one-row kernel does, so a row's
    // result does not depend on whether it fell in a tile or in the tail (odd and even block counts, tails
    // of 0–3 rows, one and three X rows).
    [FactWithVnni]
    public void Q4VnniTilesRoundAsTheOneRowKernel()
    {
        var rnd = new Random(23);
        float* table = Widen.HalfTable;
        foreach (int blocks in new[] { 1, 2, 3, 4, 5, 9 })
            foreach (int n in new[] { 4, 5, 7, 11 })
                foreach (int m in new[] { 1, 2, 3, 4, 7, 9 })
                {
                    int k = blocks * 32;
                    var wq = Encode(DType.Q4_0, RandomArray(rnd, n * k), n, k);
                    var x = RandomArray(rnd, m * k);
                    var y = new float[m * n];
                    int rowBytes = (blocks + 1) / 2 * 128;
                    var xp = new byte[rowBytes];
                    fixed (byte* pw = wq, pxp = xp)
                    fixed (float* px = x, py = y)
                    {
                        var w = new WeightMatrix(DType.Q4_0, pw, n, k);
                        Gemv.Run(SimdWidth.V256, w, px, m, py, null, OneThread);
                        for (int i = 0; i < m; i++)
                        {
                            Gemv.QuantizePaired(px + i * k, blocks, pxp);
                            for (int j = 0; j < n; j++)
                            {
                                float want = Gemv.DotQ4Vnni(w.Row(j), pxp, blocks, table);
                                Assert.True(want == y[i * n + j], $"blocks {blocks}, n {n}, m {m}: Y[{i},{j}] = {y[i * n + j]}, one-row kernel {want}");
                            }
                        }
                    }
                }
    }

    /// <summary>A fact that runs only where the Q4_0 quad path exists (512-bit vectors, AVX-512BW and VBMI), reported as skipped elsewhere.</summary>
    public sealed class FactWithQ4QuadAttribute : FactAttribute
    {
        public FactWithQ4QuadAttribute()
        {
            if (!Gemv.QuantizesActivationsToInt8Quad(SimdWidth.V512, DType.Q4_0) || !Simd.Supported.Contains(SimdWidth.V512))
                Skip = "this CPU has no AVX-512 VBMI with 512-bit vectors, so the Q4_0 quad path is never taken";
        }
    }

    [FactWithQ4Quad]
    public void QuadInt8QuantizationMatchesItsScalarTwin()
        => AssertInt8LayoutMatchesItsTwin(29, [1, 3, 4, 5, 8, 9], blocks => (blocks + 3) / 4 * 256, 0xA5, // padding must be written, not left
            &Gemv.QuantizeQuad, &Gemv.QuantizeQuadReference);

    // The quad path's tiles sum each row as its one-row kernel does (partial last groups after an even and an odd
    // number of whole groups, tails of 0–3 rows; 1 to 4, 7 and 9 X rows, where four and then two X rows at a time share
    // each group's unpacking and a last odd one takes the tiles), and both stay within the int8-activation reference's
    // bound, also for rows whose binary16 scales are subnormal, zero or negative.
    [FactWithQ4Quad]
    public void Q4QuadTilesRoundAsTheOneRowKernelAndMatchTheReference()
    {
        var rnd = new Random(31);
        var quants = Gemv.QuadIndex.Quants;
        var scales = Gemv.QuadIndex.Scales;
        foreach (int blocks in new[] { 1, 3, 4, 5, 8, 9, 14 })
            foreach (int n in new[] { 4, 5, 7, 11 })
                foreach (int m in new[] { 1, 2, 3, 4, 7, 9 })
                {
                    int k = blocks * 32;
                    var wf = RandomArray(rnd, n * k);
                    for (int j = 0; j < k; j++) wf[j] *= 1e-6f;                             // row 0: subnormal binary16 scales
                    for (int j = 0; j < 32; j++) wf[k + j] = 0;                              // row 1, block 0: scale 0
                    var wq = Encode(DType.Q4_0, wf, n, k);
                    var x = RandomArray(rnd, m * k);
                    var y = new float[m * n];
                    var xp = new byte[(blocks + 3) / 4 * 256];
                    fixed (byte* pw = wq, pxp = xp)
                    fixed (float* px = x, py = y)
                    {
                        var w = new WeightMatrix(DType.Q4_0, pw, n, k);
                        Gemv.Run(SimdWidth.V512, w, px, m, py, null, OneThread);
                        for (int i = 0; i < m; i++)
                        {
                            Gemv.QuantizeQuad(px + i * k, blocks, pxp);
                            for (int j = 0; j < n; j++)
                            {
                                float want = Gemv.DotQ4Quad(w.Row(j), pxp, blocks, quants, scales);
                                Assert.True(want == y[i * n + j], $"blocks {blocks}, n {n}, m {m}: Y[{i},{j}] = {y[i * n + j]}, one-row kernel {want}");
                            }
                        }
                        AssertLinear(x, m, w, Array.Empty<float>(), y, $"quad blocks {blocks} n {n} m {m}", 8);
                    }
                }
    }

    /// <summary>A fact that runs only where the Q4_0R8 octet path exists (512-bit vectors, AVX-512BW and GFNI), reported as skipped elsewhere.</summary>
    public sealed class FactWithQ4OctetAttribute : FactAttribute
    {
        public FactWithQ4OctetAttribute()
        {
            if (!Gemv.RegroupsQ4(SimdWidth.V512) || !Simd.Supported.Contains(SimdWidth.V512))
                Skip = "this CPU has no AVX-512BW and GFNI with 512-bit vectors, so the Q4_0R8 octet path is never taken";
        }
    }

    static void QuantizeOctetBlocks(float* x, int blocks, byte* dst) => Gemv.QuantizeOctet(x, blocks / 8, dst);

    static void QuantizeOctetBlocksReference(float* x, int blocks, byte* dst) => Gemv.QuantizeOctetReference(x, blocks / 8, dst);

    [FactWithQ4Octet]
    public void OctetInt8QuantizationMatchesItsScalarTwin()
        => AssertInt8LayoutMatchesItsTwin(37, [8, 16, 24, 40], blocks => blocks / 8 * 320, 0xA5, // every byte must be written
            &QuantizeOctetBlocks, &QuantizeOctetBlocksReference);

    // The octet path's tiles sum each row as its one-row kernel does (odd and even group counts, tails of 0–3 rows;
    // 1 to 4, 7 and 9 X rows, where four and then two X rows at a time share each group's unpacking and a last odd
    // one takes the tiles), and all stay within the int8-activation reference's bound, also for rows whose binary16
    // scales are subnormal, zero or negative.
    [FactWithQ4Octet]
    public void Q4OctetTilesRoundAsTheOneRowKernelAndMatchTheReference()
    {
        var rnd = new Random(41);
        foreach (int groups in new[] { 1, 2, 3, 5 })
            foreach (int n in new[] { 4, 5, 7, 11 })
                foreach (int m in new[] { 1, 2, 3, 4, 7, 9 })
                {
                    int k = groups * 256;
                    var wf = RandomArray(rnd, n * k);
                    for (int j = 0; j < k; j++) wf[j] *= 1e-6f;                             // row 0: subnormal binary16 scales
                    for (int j = 0; j < 32; j++) wf[k + 32 + j] = 0;                         // row 1, block 1: scale 0
                    var wq = Encode(DType.Q4_0R8, wf, n, k);
                    var x = RandomArray(rnd, m * k);
                    var y = new float[m * n];
                    var xp = new byte[groups * 320];
                    fixed (byte* pw = wq, pxp = xp)
                    fixed (float* px = x, py = y)
                    {
                        var w = new WeightMatrix(DType.Q4_0R8, pw, n, k);
                        Gemv.Run(SimdWidth.V512, w, px, m, py, null, OneThread);
                        for (int i = 0; i < m; i++)
                        {
                            Gemv.QuantizeOctet(px + i * k, groups, pxp);
                            for (int j = 0; j < n; j++)
                            {
                                float want = Gemv.DotQ4Octet(w.Row(j), pxp, groups);
                                Assert.True(want == y[i * n + j], $"groups {groups}, n {n}, m {m}: Y[{i},{j}] = {y[i * n + j]}, one-row kernel {want}");
                            }
                        }
                        AssertLinear(x, m, w, Array.Empty<float>(), y, $"octet groups {groups} n {n} m {m}", 8);
                    }
                }
    }

    // Q4_0R8 holds Q4_0's values, so every path of Gemm.Linear meets its specification with them at every width (the
    // octet GEMV, the int8 GEMM, the binary32-x fallback elsewhere), and where Q4_0 takes the same path (the int8 GEMM,
    // binary32 x) the results are Q4_0's, bit for bit. Threads and a bias included.
    [Fact]
    public void Q4R8MeetsItsSpecificationOnEveryPath()
    {
        var rnd = new Random(43);
        foreach (var width in Simd.Supported)
        {
            using var _ = Simd.Override(width);
            foreach (var (m, n, k) in new[] { (1, 13, 256), (2, 9, 512), (5, 8, 768), (16, 6, 256), (20, 17, 512) })
            {
                var wf = RandomArray(rnd, n * k);
                var x = RandomArray(rnd, m * k);
                var bias = RandomArray(rnd, n);
                fixed (byte* p4 = Encode(DType.Q4_0, wf, n, k), p8 = Encode(DType.Q4_0R8, wf, n, k))
                {
                    var w4 = new WeightMatrix(DType.Q4_0, p4, n, k);
                    var w8 = new WeightMatrix(DType.Q4_0R8, p8, n, k);
                    var y4 = new float[m * n];
                    var y8 = new float[m * n];
                    Gemm.Linear(x, m, w4, y4, bias);
                    Gemm.Linear(x, m, w8, y8, bias);
                    int bits = QuantizedX(DType.Q4_0R8, m, width);
                    AssertLinear(x, m, w8, bias, y8, $"q4_0r8 {width} m {m} n {n} k {k}", bits);
                    if (bits == QuantizedX(DType.Q4_0, m, width) && !(m <= Gemv.LinearRows(width) && bits == 8))
                        Assert.Equal(y4, y8);
                    var y8t = new float[m * n];
                    fixed (float* px = x, py = y8t, pb = bias)
                        if (m <= Gemv.LinearRows(width))
                        {
                            Gemv.Run(width, w8, px, m, py, pb, ThreeThreads);
                            Assert.Equal(y8, y8t);
                        }
                }
            }
        }
    }

    /// <summary>A fact that runs only where the int8 GEMM exists (512-bit vectors and AVX-512BW), reported as skipped elsewhere.</summary>
    public sealed class FactWithInt8GemmAttribute : FactAttribute
    {
        public FactWithInt8GemmAttribute()
        {
            if (!Gemm.QuantizesActivations(SimdWidth.V512, DType.Q8_0) || !Simd.Supported.Contains(SimdWidth.V512))
                Skip = "this CPU has no AVX-512BW with 512-bit vectors, so the int8 GEMM is never taken";
        }
    }

    // The int8 GEMM's tile forms this machine runs: the AVX-512BW int16 tiles always, the vpdpbusd tiles where AVX-VNNI exists.
    static IEnumerable<bool> Int8GemmForms() => AvxVnni.IsSupported ? new[] { false, true } : new[] { true };

    static IDisposable? Int8GemmForm(bool int16) => int16 ? Gemm.UseInt16Tiles() : null;

    [FactWithInt8Gemm]
    public void Int8GemmQuantizationMatchesItsScalarTwin()
    {
        var rnd = new Random(23);
        foreach (int blocks in new[] { 1, 2, 5 })
        {
            var x = RandomArray(rnd, blocks * 32);
            for (int j = 0; j < 32; j++) x[j] = (j - 16) * 0.5f;             // ties at x·(127/max) = k + ½
            if (blocks > 2) for (int j = 64; j < 96; j++) x[j] = 0;         // an all-zero block
            if (blocks > 1) x[40] = -1e30f;                                 // a huge value: its block's others quantize to 0
            var got = new byte[blocks * 32];
            var want = new byte[blocks * 32];
            var dGot = new float[blocks];
            var dWant = new float[blocks];
            // The vector form writes quad j at quads[j·QRows] and block b's scale at scales[b·QRows] (the tiles' layout).
            var quads = new int[blocks * 8 * Gemm.QRows];
            var scales = new float[blocks * Gemm.QRows];
            fixed (float* px = x, pdw = dWant, ps = scales)
            fixed (byte* pw = want)
            fixed (int* pq = quads)
            {
                Gemm.QuantizeRowInterleaved(px, blocks, pq, ps);
                Gemm.QuantizeRowUnsignedReference(px, blocks, pw, pdw);
            }
            for (int j = 0; j < blocks * 8; j++) BitConverter.GetBytes(quads[j * Gemm.QRows]).CopyTo(got, 4 * j);
            for (int b = 0; b < blocks; b++) dGot[b] = scales[b * Gemm.QRows];
            Assert.Equal(want, got);
            Assert.Equal(dWant, dGot);

            // The int16 tiles' form: the same quants, signed, in order; block b's scale at scales[b·QRows16].
            var q16 = new short[blocks * 32];
            var scales16 = Enumerable.Repeat(float.NaN, blocks * Gemm.QRows16).ToArray();
            fixed (float* px = x, ps = scales16)
            fixed (short* pq = q16)
                Gemm.QuantizeRowInt16(px, blocks, pq, ps);
            for (int j = 0; j < blocks * 32; j++) Assert.Equal(want[j] - 128, q16[j]);
            for (int b = 0; b < blocks; b++) Assert.Equal(dWant[b], scales16[b * Gemm.QRows16]);
        }
    }

    // Both tile forms against a scalar twin of their arithmetic, bit for bit: per block the exact integer dot of
    // X's ggml quants with W's quants, then s = fma(dot, fl(dw·dx), s) in increasing block order, then s + bias.
    // Shapes cover partial row tiles (of 6 and of 8 rows) and partial panels.
    [FactWithInt8Gemm]
    public void Int8GemmGivesItsScalarTwinsBits()
    {
        var rnd = new Random(31);
        using var _ = Simd.Override(SimdWidth.V512);
        foreach (bool int16 in Int8GemmForms())
        foreach (var dt in new[] { DType.Q8_0, DType.Q4_0 })
        foreach (var (m, n, k) in new[] { (17, 16, 32), (23, 31, 96), (30, 64, 64), (24, 80, 128), (31, 45, 64), (40, 100, 256), (41, 16, 64), (32, 33, 96) })
        {
            using var form = Int8GemmForm(int16);
            var x = RandomArray(rnd, m * k);
            x[rnd.Next(m * k)] = 40f;
            var bias = RandomArray(rnd, n);
            fixed (byte* p = Encode(dt, RandomArray(rnd, n * k), n, k))
            {
                var w = new WeightMatrix(dt, p, n, k);
                var got = Enumerable.Repeat(float.NaN, m * n).ToArray();
                Gemm.Linear(x, m, w, got, bias);
                int blocks = k / 32;
                var (q, dx) = ReferenceQuants(x, m, k);
                for (int i = 0; i < m; i++)
                {
                    for (int j = 0; j < n; j++)
                    {
                        float sum = 0;
                        for (int b = 0; b < blocks; b++)
                        {
                            int dot = 0;
                            float dw = 0;
                            for (int t = 0; t < 32; t++) dot += q[i * k + b * 32 + t] * WeightQuant(w, j, b, t, out dw);
                            sum = MathF.FusedMultiplyAdd(dot, dw * dx[i * blocks + b], sum);
                        }
                        float want = sum + bias[j];
                        Assert.True(BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(got[i * n + j]),
                            $"{dt} {(int16 ? "int16" : "vpdpbusd")} tiles m={m} n={n} k={k}: Y[{i},{j}] = {got[i * n + j]}, scalar twin {want}");
                    }
                }
            }
        }
    }

    // X's rows quantized as the int8 GEMM's specification quantizes them (ggml's Q8_0 activations): quants (m, k), scales (m, k/32).
    static (short[] Q, float[] Dx) ReferenceQuants(float[] x, int m, int k)
    {
        var q = new short[m * k];
        var dx = new float[m * (k / 32)];
        fixed (float* px = x, pd = dx)
        fixed (short* pq = q)
            for (int i = 0; i < m; i++) Gemv.QuantizeX8Reference(px + i * k, k / 32, pq + i * k, pd + i * (k / 32));
        return (q, dx);
    }

    // One X row against quantized weights: every output has the bits of that weight row alone (a one-row matrix),
    // whichever tile of rows the kernel put it in (four-row passes, then single rows), at every width.
    [Fact]
    public void OneRowProductsDoNotDependOnTheirNeighbourRows()
    {
        var rnd = new Random(43);
        foreach (var dt in new[] { DType.Q8_0, DType.Q4_0 })
        foreach (var (n, k) in new[] { (4, 64), (7, 96), (13, 32), (21, 256) })
        {
            var x = RandomArray(rnd, k);
            var bias = RandomArray(rnd, n);
            var bytes = Encode(dt, RandomArray(rnd, n * k), n, k);
            fixed (byte* p = bytes)
            {
                var w = new WeightMatrix(dt, p, n, k);
                foreach (var width in Simd.Supported)
                {
                    using var _ = Simd.Override(width);
                    var all = new float[n];
                    Gemm.Linear(x, 1, w, all, bias);
                    for (int j = 0; j < n; j++)
                    {
                        var one = new float[1];
                        Gemm.Linear(x, 1, new WeightMatrix(dt, w.Row(j), 1, k), one, new[] { bias[j] });
                        Assert.True(BitConverter.SingleToInt32Bits(one[0]) == BitConverter.SingleToInt32Bits(all[j]),
                            $"{dt} {width} n={n} k={k}: row {j} alone {one[0]}, among {n} rows {all[j]}");
                    }
                }
            }
        }
    }

    // Quant t of block b of weight row j (Q8_0: the stored byte; Q4_0: nibble − 8) and the block's scale.
    static int WeightQuant(WeightMatrix w, int j, int b, int t, out float scale)
    {
        if (w.DType == DType.Q8_0)
        {
            var q8 = (BlockQ8_0*)w.Row(j) + b;
            scale = (float)BitConverter.UInt16BitsToHalf(q8->D);
            return q8->Qs[t];
        }
        var q4 = (BlockQ4_0*)w.Row(j) + b;
        scale = (float)BitConverter.UInt16BitsToHalf(q4->D);
        int packed = q4->Qs[t % 16];
        return (t < 16 ? packed & 15 : packed >> 4) - 8;
    }

    // The int8 GEMM against QuantizedActivationReference (8 bits), exactly up to its binary32 summation:
    // per block the int32 dot is exact, then one rounding for dw·dx and one for the fused add, so
    // |y − ref| ≤ (2·blocks + 1)·2⁻²⁴·Σ_b |dw·dx·dot_b| + the bias add. Shapes cover partial row tiles
    // (m mod 6: every remainder) and partial panels (n mod 16); the dequantized binary32 product is not the specification.
    [FactWithInt8Gemm]
    public void Int8GemmMatchesTheQuantizedActivationReferenceToItsRounding()
    {
        var rnd = new Random(29);
        using var _ = Simd.Override(SimdWidth.V512);
        foreach (bool int16 in Int8GemmForms())
        foreach (var dt in new[] { DType.Q8_0, DType.Q4_0 })
        foreach (var (m, n, k) in new[] { (17, 16, 32), (18, 1, 64), (19, 16, 64), (23, 31, 96), (26, 5, 32), (64, 48, 256), (33, 17, 1024), (30, 64, 64), (24, 80, 128), (31, 45, 64) })
        {
            using var form = Int8GemmForm(int16);
            var wf = RandomArray(rnd, n * k);
            var x = RandomArray(rnd, m * k);
            x[rnd.Next(m * k)] = 40f;
            var bias = RandomArray(rnd, n);
            fixed (byte* p = Encode(dt, wf, n, k))
            {
                var w = new WeightMatrix(dt, p, n, k);
                var want = new float[m * n];
                Gemv.QuantizedActivationReference(w, x, m, want, bias, activationBits: 8);
                var got = Enumerable.Repeat(float.NaN, m * n).ToArray();
                Gemm.Linear(x, m, w, got, bias);
                // The magnitude Σ_b |dw·dx·dot_b|, from the same quants the reference uses.
                int blocks = k / 32;
                var (q, dx) = ReferenceQuants(x, m, k);
                var row = new float[k];
                for (int i = 0; i < m; i++)
                {
                    for (int j = 0; j < n; j++)
                    {
                        w.RowToSingle(j, row);
                        double mag = 0;
                        for (int b = 0; b < blocks; b++)
                        {
                            double dot = 0;
                            for (int t = b * 32; t < b * 32 + 32; t++) dot += row[t] * (double)q[i * k + t];
                            mag += Math.Abs(dot * dx[i * blocks + b]);
                        }
                        double tol = (2 * blocks + 1) * Math.Pow(2, -24) * mag + Math.Pow(2, -23) * Math.Abs(want[i * n + j]) + 1e-30;
                        double err = Math.Abs((double)got[i * n + j] - want[i * n + j]);
                        Assert.True(err <= tol, $"{dt} {(int16 ? "int16" : "vpdpbusd")} tiles m={m} n={n} k={k} Y[{i},{j}] = {got[i * n + j]}, reference {want[i * n + j]}: error {err:E3} > {tol:E3}");
                    }
                }
            }
        }
    }

    // The Q8_0 GEMV with int16-quantized x against the exact product with the binary32 x (both on the
    // same dequantized weights w). Per block b, dx_b = fl(max|x_b|/32767), id = fl(1/dx_b) = (1 + δ)/dx_b
    // and q_j = round(fl(x_j·id)); with |x_j/dx_b| ≤ 32767(1 + 2⁻²³), |δ| ≤ 2⁻²⁴ and the product's rounding
    // ≤ 2⁻²⁴·32768, |q_j − x_j/dx_b| ≤ ½ + 2⁻⁸, so |x̂_j − x_j| ≤ (½ + 2⁻⁸)·dx_b and
    //     |y − y_exact| ≤ Σ_b (½ + 2⁻⁸)·dx_b·Σ_{j∈b} |w_j|   (≈ 1.54e-5·Σ_b max|x_b|·‖w_b‖₁),
    // plus the kernel's binary32 summation, within 1e-5·Σ|x·w| as in AssertLinear. The Q4_0 path on AVX-VNNI
    // quantizes x to int8 as ggml does: q_j = round(x_j·127/max|x_b|) (|q_j − x_j·127/max| ≤ ½ + 2⁻⁸ as above)
    // and dx_b = max|x_b|/127 rounded to binary16 (relative 2⁻¹¹ on |q_j| ≤ 127), so the per-value bound
    // grows to (½ + 2⁻⁸ + 127·2⁻¹¹)·max|x_b|/127.
    [Fact]
    public void QuantizedActivationsStayWithinTheirBoundOfTheExactProduct()
    {
        var rnd = new Random(5);
        int n = 37, k = 4096, blocks = k / 32;
        var wf = RandomArray(rnd, n * k);
        double worstRelative = 0;
        foreach (var dt in new[] { DType.Q8_0, DType.Q4_0 })
        fixed (byte* p = Encode(dt, wf, n, k))
        {
            var w = new WeightMatrix(dt, p, n, k);
            foreach (int m in new[] { 1, 3, 16, 21 })
            {
                var x = RandomArray(rnd, m * k);
                for (int i = 0; i < m; i++) x[i * k + rnd.Next(k)] = 60f; // activation outliers, as in LLM residual streams
                var exact = new float[m * n];
                Gemm.LinearReference(x, m, w, exact, default);
                foreach (var width in Simd.Supported)
                {
                    using var _ = Simd.Override(width);
                    int bits = QuantizedX(dt, m, width);
                    double qmax = bits == 8 ? 127 : 32767;
                    var y = new float[m * n];
                    Gemm.Linear(x, m, w, y);
                    var row = new float[k];
                    for (int j = 0; j < n; j++)
                    {
                        w.RowToSingle(j, row);
                        for (int i = 0; i < m; i++)
                        {
                            double bound = 0, mag = 0;
                            for (int b = 0; b < blocks; b++)
                            {
                                float amax = 0;
                                double wsum = 0;
                                for (int t = b * 32; t < b * 32 + 32; t++)
                                {
                                    amax = MathF.Max(amax, MathF.Abs(x[i * k + t]));
                                    wsum += Math.Abs(row[t]);
                                    mag += Math.Abs((double)x[i * k + t] * row[t]);
                                }
                                // int8 (ggml's Q8_0 activations): the scale is rounded to binary16, up to 127·2⁻¹¹ more.
                                if (bits > 0) bound += (0.5 + 1.0 / 256 + (bits == 8 ? 127.0 / 2048 : 0)) * (amax / qmax) * wsum;
                            }
                            double err = Math.Abs((double)y[i * n + j] - exact[i * n + j]);
                            Assert.True(err <= bound + 1e-5 * mag + 1e-6, $"{dt} {width} m={m} Y[{i},{j}]: |{y[i * n + j]} − {exact[i * n + j]}| = {err:E3} > {bound:E3} + 1e-5·{mag:E3}");
                            if (bits != 8) worstRelative = Math.Max(worstRelative, err / mag);
                        }
                    }
                }
            }
        }
        Assert.True(worstRelative < 1e-5, $"worst |y − y_exact| / Σ|x·w| = {worstRelative:E3}");
    }

    [Fact]
    public void ResultsAreBitIdenticalAcrossThreadCounts()
    {
        var rnd = new Random(3);
        int n = 420, k = 512; // m = 20 takes GEMV passes, m = 80 the parallel GEMM (m·n·k above ParallelWork)
        var wf = RandomArray(rnd, n * k);
        foreach (var dt in WeightTypes)
        {
            fixed (byte* p = Encode(dt, wf, n, k))
            {
                var w = new WeightMatrix(dt, p, n, k);
                foreach (int m in new[] { 1, 3, 9, 20, 80 })
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

    // One thread given several regions streams its own and then takes all the others' chunks from their back ends:
    // every row is computed once, as with one region (row counts that leave regions and chunks empty or ragged).
    [Fact]
    public void StolenChunksCoverEveryRowOnce()
    {
        var rnd = new Random(37);
        foreach (int n in new[] { 1, 5, 33, 130, 420 })
        {
            int k = 64;
            var wf = RandomArray(rnd, n * k);
            foreach (var dt in WeightTypes)
            {
                fixed (byte* p = Encode(dt, wf, n, k))
                {
                    var w = new WeightMatrix(dt, p, n, k);
                    foreach (int m in new[] { 1, 3, 8 })
                    {
                        var x = RandomArray(rnd, m * k);
                        var bias = RandomArray(rnd, n);
                        var width = Simd.Current;
                        var one = new float[m * n];
                        fixed (float* px = x, pb = bias, py = one)
                            Gemv.Run(width, w, px, m, py, pb, OneThread, regions: 1);
                        foreach (int regions in new[] { 2, 3, 7 })
                        {
                            var y = Enumerable.Repeat(float.NaN, m * n).ToArray();
                            fixed (float* px = x, pb = bias, py = y)
                                Gemv.Run(width, w, px, m, py, pb, OneThread, regions);
                            Assert.Equal(one, y);
                        }
                    }
                }
            }
        }
    }

    // Three matrices sharing one x in one call give what three Linear calls give, bit for bit (row counts that are not
    // whole tiles, biases on some, every dtype and width, GEMV-sized batches), and the pool's regions span the three.
    [Fact]
    public void SharedInputProductsEqualSeparateOnes()
    {
        var rnd = new Random(41);
        int k = 96;
        var parts = stackalloc Gemv.Part[3];
        int[] ns = { 5, 8, 13 };
        foreach (var dt in WeightTypes)
        {
            var enc = ns.Select(n => Encode(dt, RandomArray(rnd, n * k), n, k)).ToArray();
            var bias = ns.Select(n => RandomArray(rnd, n)).ToArray();
            fixed (byte* p0 = enc[0], p1 = enc[1], p2 = enc[2])
            {
                var w = new[] { new WeightMatrix(dt, p0, ns[0], k), new WeightMatrix(dt, p1, ns[1], k), new WeightMatrix(dt, p2, ns[2], k) };
                foreach (int m in new[] { 1, 3, 8 })
                {
                    var x = RandomArray(rnd, m * k);
                    foreach (var width in Simd.Supported)
                    {
                        using var _ = Simd.Override(width);
                        Assert.True(Gemm.SharesInput(m, dt));
                        var want = ns.Select(n => new float[m * n]).ToArray();
                        var got = ns.Select(n => Enumerable.Repeat(float.NaN, m * n).ToArray()).ToArray();
                        Gemm.Linear(x, m, w[0], want[0], bias[0]);
                        Gemm.Linear(x, m, w[1], want[1]);
                        Gemm.Linear(x, m, w[2], want[2], bias[2]);
                        Gemm.LinearShared(x, m, w[0], got[0], bias[0], w[1], got[1], default, w[2], got[2], bias[2]);
                        for (int i = 0; i < 3; i++) Assert.Equal(want[i], got[i]);
                        foreach (int regions in new[] { 2, 5 })
                        {
                            var r = ns.Select(n => Enumerable.Repeat(float.NaN, m * n).ToArray()).ToArray();
                            fixed (float* px = x, y0 = r[0], y1 = r[1], y2 = r[2], pb0 = bias[0], pb2 = bias[2])
                            {
                                parts[0] = new Gemv.Part(w[0], y0, pb0);
                                parts[1] = new Gemv.Part(w[1], y1, null);
                                parts[2] = new Gemv.Part(w[2], y2, pb2);
                                Gemv.RunParts(width, parts, 3, px, m, OneThread, regions);
                            }
                            for (int i = 0; i < 3; i++) Assert.Equal(want[i], r[i]);
                        }
                    }
                }
            }
        }
    }

    /// <summary>A fact that runs only with 512-bit vectors (the wide GEMV tiles), and is reported as skipped elsewhere.</summary>
    public sealed class FactWith512BitVectorsAttribute : FactAttribute
    {
        public FactWith512BitVectorsAttribute()
        {
            if (!Simd.Supported.Contains(SimdWidth.V512)) Skip = "this CPU has no 512-bit vectors, so there are no wide GEMV tiles";
        }
    }

    // The wide tiles feed each output from one accumulator in order over k: a row's bits do not depend on the batch it
    // came in (1–8 rows per pass, two passes past 8, a last weight row paired with itself), and Q8_0 weights, dequantized
    // exactly once per block, give the bits of the binary32 matrix holding their dequantized values.
    [FactWith512BitVectors]
    public void WideTilesGiveEveryRowTheSameBitsInAnyBatchAndQ8TheBitsOfItsDequantizedMatrix()
    {
        var rnd = new Random(53);
        using var _ = Simd.Override(SimdWidth.V512);
        foreach (var (n, k) in new[] { (7, 96), (33, 320), (4, 32), (9, 33), (301, 1024) }) // the last: several 256 KiB row blocks
        {
            var wf = RandomArray(rnd, n * k);
            var x = RandomArray(rnd, Gemv.MaxRows * k);
            var bias = RandomArray(rnd, n);
            foreach (var dt in new[] { DType.F32, DType.BF16, DType.F16, DType.Q8_0 })
            {
                if (dt.IsBlocked() && k % 32 != 0) continue;
                fixed (byte* p = Encode(dt, wf, n, k))
                {
                    var w = new WeightMatrix(dt, p, n, k);
                    var full = new float[Gemv.MaxRows * n];
                    Gemm.Linear(x, Gemv.MaxRows, w, full, bias);
                    for (int m = 1; m <= Gemv.MaxRows; m++)
                    {
                        if (!Gemv.TakesWideTiles(SimdWidth.V512, dt, m)) continue;
                        var y = Enumerable.Repeat(float.NaN, m * n).ToArray();
                        Gemm.Linear(x.AsSpan(0, m * k), m, w, y, bias);
                        Assert.True(full.AsSpan(0, m * n).SequenceEqual(y), $"{dt} n={n} k={k}: the first {m} rows differ from the same rows in a batch of {Gemv.MaxRows}");
                    }
                    if (dt != DType.Q8_0)
                    {
                        // Past LinearRows, one call takes every row in blocks of weight rows shared by the passes.
                        int many = Gemm.GemvChunks * Gemv.LinearRows(SimdWidth.V512) - 3;
                        var xs = RandomArray(rnd, many * k);
                        x.CopyTo(xs, 0);
                        var big = new float[many * n];
                        Gemm.Linear(xs, many, w, big, bias);
                        for (int c = 0; c < many; c += Gemv.MaxRows)
                        {
                            int rows = Math.Min(Gemv.MaxRows, many - c);
                            var part = new float[rows * n];
                            Gemm.Linear(xs.AsSpan(c * k, rows * k), rows, w, part, bias);
                            Assert.True(part.AsSpan().SequenceEqual(big.AsSpan(c * n, rows * n)), $"{dt} n={n} k={k}: rows {c}… of a batch of {many} differ from the same rows in a batch of {rows}");
                        }
                        continue;
                    }
                    var dequantized = new float[n * k];
                    for (int j = 0; j < n; j++) w.RowToSingle(j, dequantized.AsSpan(j * k, k));
                    fixed (float* pd = dequantized)
                    {
                        var wd = new WeightMatrix(DType.F32, pd, n, k);
                        foreach (int m in new[] { 2, 5, 8, 11, Gemv.MaxRows })
                        {
                            var want = new float[m * n];
                            var got = new float[m * n];
                            Gemm.Linear(x.AsSpan(0, m * k), m, wd, want, bias);
                            Gemm.Linear(x.AsSpan(0, m * k), m, w, got, bias);
                            Assert.True(want.AsSpan().SequenceEqual(got), $"Q8_0 n={n} k={k} m={m}: not the bits of its dequantized binary32 matrix");
                        }
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
