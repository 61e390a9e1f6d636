using Encore.Tensors.Kernels;

namespace Encore.Tensors.Tests.Kernels;

/// <summary>
/// Attention over int8 keys and values: every width against the scalar row kernel, against the f32
/// reference on the dequantized operands (a rounding-level bound), and against the f32 reference on
/// the operands before quantization (a bound derived from the quantization error).
/// </summary>
[Trait("Category", "Kernels")]
public class AttentionInt8Tests
{
    static readonly int[] QueryLengths = { 1, 2, 3, 7, 8, 17, 33 };
    static readonly int[] KeyLengths = { 0, 1, 3, 16, 33, 64, 65, 130 };
    static readonly int[] HeadDims = { 1, 3, 4, 8, 16, 17, 32, 64, 80 };
    static readonly (int H, int Hkv)[] HeadCounts = { (1, 1), (4, 4), (4, 2), (6, 3), (8, 1) };

    static double Normal(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    /// <summary>
    /// Keys or values (B, heads, S, hd) laid out as a cache of <c>Capacity</c> ≥ S positions: f32 originals,
    /// their int8 quants and scales, and the dequantized f32 values, all with one set of strides.
    /// Slots past S hold NaN (f32) or wild quants and NaN scales, so a read past the view shows.
    /// </summary>
    sealed class KvOperand
    {
        public required float[] Original, Dequantized, Scales;
        public required sbyte[] Quants;
        public required AttentionStrides Strides, ScaleStrides;
        public required int Batch, Heads, Rows, Hd;

        public static KvOperand Random(Random rng, int batch, int heads, int rows, int hd, int capacity, double scale = 1)
        {
            var st = AttentionStrides.HeadMajor(heads, capacity, hd);
            var sst = AttentionStrides.HeadMajor(heads, capacity, 1);
            int n = batch * heads * capacity * hd;
            var op = new KvOperand
            {
                Original = new float[n], Dequantized = new float[n], Quants = new sbyte[n], Scales = new float[batch * heads * capacity],
                Strides = st, ScaleStrides = sst, Batch = batch, Heads = heads, Rows = rows, Hd = hd,
            };
            Array.Fill(op.Original, float.NaN);
            Array.Fill(op.Dequantized, float.NaN);
            Array.Fill(op.Quants, (sbyte)-128);
            Array.Fill(op.Scales, float.NaN);
            for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
            for (int p = 0; p < rows; p++)
            {
                int at = b * st.Batch + h * st.Head + p * st.Position, si = b * sst.Batch + h * sst.Head + p;
                // Rows of different magnitudes, so per-position scales matter.
                double rowScale = scale * Math.Exp(rng.NextDouble() * 2 - 1);
                for (int d = 0; d < hd; d++) op.Original[at + d] = (float)(rowScale * Normal(rng));
                op.Scales[si] = Int8Quantizer.Quantize(op.Original.AsSpan(at, hd), op.Quants.AsSpan(at, hd));
                Int8Quantizer.Dequantize(op.Quants.AsSpan(at, hd), op.Scales[si], op.Dequantized.AsSpan(at, hd));
            }
            return op;
        }

        public AttentionInt8Operand Int8 => new(Quants, Strides, Scales, ScaleStrides);
    }

    sealed class Case
    {
        public required AttentionShape Shape;
        public AttentionOptions Options;
        public required float[] Q;
        public required KvOperand K, V;
        public int[]? KeyLengths;
        public byte[]? KeyMask;
        public float[]? Bias;
        public float[]? Alibi;

        public AttentionStrides QStrides => AttentionStrides.HeadMajor(Shape.Heads, Shape.QueryLength, Shape.HeadDim);
        AttentionMask Mask => new() { KeyLengths = KeyLengths, KeyMask = KeyMask, Bias = Bias, AlibiSlopes = Alibi };

        public (float[] Out, float[] Lse) RunInt8()
        {
            var o = new float[Q.Length];
            var lse = new float[Shape.Batch * Shape.Heads * Shape.QueryLength];
            Attention.ForwardInt8(Shape, Q, QStrides, K.Int8, V.Int8, o, QStrides, Options, Mask, lse);
            return (o, lse);
        }

        public (float[] Out, float[] Lse) RunReference(bool dequantized)
        {
            var o = new float[Q.Length];
            var lse = new float[Shape.Batch * Shape.Heads * Shape.QueryLength];
            var k = dequantized ? K.Dequantized : K.Original;
            var v = dequantized ? V.Dequantized : V.Original;
            Attention.Reference(Shape, new(Q, QStrides, k, K.Strides, v, V.Strides), o, QStrides, Options, Mask, lse);
            return (o, lse);
        }
    }

    static Case RandomCase(Random rng, int batch, int h, int hkv, int t, int s, int hd)
    {
        int capacity = s + rng.Next(0, 5);
        var q = new float[batch * h * t * hd];
        for (int i = 0; i < q.Length; i++) q[i] = (float)Normal(rng);
        return new Case
        {
            Shape = new AttentionShape(batch, h, hkv, t, s, hd),
            Q = q,
            K = KvOperand.Random(rng, batch, hkv, s, hd, capacity),
            V = KvOperand.Random(rng, batch, hkv, s, hd, capacity),
        };
    }

    // The row kernel's four-key score reduction gives each key the bits of its own Sum, at every width this machine
    // runs: magnitudes spread over 2⁻²⁰ … 2²⁰ so that the order of the adds shows in the last bits.
    [Fact]
    public unsafe void FourKeyReductionGivesTheBitsOfFourSums()
    {
        var rng = new Random(41);
        var v = new float[4 * 16];
        var got = new float[4];
        for (int trial = 0; trial < 200; trial++)
        {
            for (int i = 0; i < v.Length; i++) v[i] = (float)(Normal(rng) * Math.Pow(2, rng.Next(-20, 21)));
            fixed (float* p = v, g = got)
            {
                if (Simd.Supported.Contains(SimdWidth.V512))
                {
                    AttentionV512.Sum4(AttentionV512.Load(p), AttentionV512.Load(p + 16), AttentionV512.Load(p + 32), AttentionV512.Load(p + 48), g);
                    for (int r = 0; r < 4; r++) Assert.Equal(AttentionV512.Sum(AttentionV512.Load(p + 16 * r)), got[r]);
                }
                if (Simd.Supported.Contains(SimdWidth.V256))
                {
                    AttentionV256.Sum4(AttentionV256.Load(p), AttentionV256.Load(p + 8), AttentionV256.Load(p + 16), AttentionV256.Load(p + 24), g);
                    for (int r = 0; r < 4; r++) Assert.Equal(AttentionV256.Sum(AttentionV256.Load(p + 8 * r)), got[r]);
                }
                if (Simd.Supported.Contains(SimdWidth.V128))
                {
                    AttentionV128.Sum4(AttentionV128.Load(p), AttentionV128.Load(p + 4), AttentionV128.Load(p + 8), AttentionV128.Load(p + 12), g);
                    for (int r = 0; r < 4; r++) Assert.Equal(AttentionV128.Sum(AttentionV128.Load(p + 4 * r)), got[r]);
                }
            }
        }
    }

    static void AssertClose(float[] expected, float[] actual, double abs, double rel, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (float.IsNegativeInfinity(e) || float.IsNaN(e))
            {
                Assert.True(e.Equals(a), $"{what}[{i}]: expected {e}, got {a}");
                continue;
            }
            double tol = abs + rel * Math.Abs(e);
            if (!(Math.Abs(e - a) <= tol))
                Assert.Fail($"{what}[{i}]: expected {e}, got {a} (|diff| {Math.Abs(e - a):G3} > {tol:G3})");
        }
    }

    /// <summary>Every width against the scalar row kernel and against the reference on the dequantized operands; two runs agree bit for bit.</summary>
    static void CheckAllWidths(Case c, string label)
    {
        var (refOut, refLse) = c.RunReference(dequantized: true);
        float[]? scalarOut = null, scalarLse = null;
        foreach (var w in Simd.Supported)
        {
            using (Simd.Override(w))
            {
                var (o, lse) = c.RunInt8();
                AssertClose(refOut, o, 1e-4, 1e-4, $"{label} {w} out vs dequantized reference");
                AssertClose(refLse, lse, 1e-4, 1e-4, $"{label} {w} lse vs dequantized reference");
                if (w == SimdWidth.Scalar) (scalarOut, scalarLse) = (o, lse);
                else
                {
                    AssertClose(scalarOut!, o, 1e-5, 1e-5, $"{label} {w} out vs scalar");
                    AssertClose(scalarLse!, lse, 1e-5, 1e-5, $"{label} {w} lse vs scalar");
                }
                var (o2, _) = c.RunInt8();
                Assert.True(o.AsSpan().SequenceEqual(o2), $"{label} {w}: two runs differ");
            }
        }
    }

    [Fact]
    public void QuantizerRoundsHalvesAwayFromZeroAndBoundsTheError()
    {
        // max|x| = 127 gives scale 1, so x·(1/scale) = x and the halves are exact.
        float[] x = { 127f, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f, -126.5f, 0f };
        var q = new sbyte[x.Length];
        Assert.Equal(1f, Int8Quantizer.Quantize(x, q));
        Assert.Equal(new sbyte[] { 127, 3, -3, 1, -1, 1, -127, 0 }, q);

        var zeros = new sbyte[4];
        Assert.Equal(0f, Int8Quantizer.Quantize(new float[4], zeros));
        Assert.Equal(new sbyte[4], zeros);
        Assert.True(float.IsNaN(Int8Quantizer.Quantize(new[] { 1f, float.PositiveInfinity }, new sbyte[2])));
        Assert.True(float.IsNaN(Int8Quantizer.Quantize(new[] { float.NaN, 1f }, new sbyte[2])));

        var rng = new Random(5);
        for (int trial = 0; trial < 200; trial++)
        {
            int n = rng.Next(1, 130);
            var v = new float[n];
            double mag = Math.Pow(10, rng.Next(-6, 7));
            for (int i = 0; i < n; i++) v[i] = (float)(mag * Normal(rng));
            var qs = new sbyte[n];
            float s = Int8Quantizer.Quantize(v, qs);
            Assert.Equal(v.Max(Math.Abs) / 127f, s);
            Assert.Contains(qs, e => Math.Abs(e) == 127);
            var back = new float[n];
            Int8Quantizer.Dequantize(qs, s, back);
            for (int i = 0; i < n; i++)
            {
                Assert.InRange((int)qs[i], -127, 127);
                Assert.True(Math.Abs(v[i] - back[i]) <= s / 2 * (1 + 1e-5), $"trial {trial}: |{v[i]} − {back[i]}| > scale/2 = {s / 2}");
            }
        }
    }

    [Fact]
    public void HandComputedOneQueryTwoKeys()
    {
        // Keys (127, 0)·(1/127) and (0, 127)·(1/127), i.e. (1, 0) and (0, 1); values (127, 254)/127·(1, 2) etc.
        // q = (1, 0), scale 1: scores (1, 0), weights e/(e+1) and 1/(e+1), as in AttentionTests.
        var shape = new AttentionShape(1, 1, 1, 1, 2, 2);
        float[] q = { 1, 0 };
        sbyte[] kq = { 127, 0, 0, 127 }, vq = { 32, 64, 96, 127 };
        float[] ks = { 1 / 127f, 1 / 127f }, vs = { 1 / 32f, 4 / 127f };   // values (1, 2) and (96·4/127, 4)
        var st1 = AttentionStrides.HeadMajor(1, 1, 2);
        var st2 = AttentionStrides.HeadMajor(1, 2, 2);
        var sst = AttentionStrides.HeadMajor(1, 2, 1);
        double w0 = Math.E / (Math.E + 1), w1 = 1 / (Math.E + 1);
        double v10 = 96 * 4 / 127.0;
        float[] expected = { (float)(w0 * 1 + w1 * v10), (float)(w0 * 2 + w1 * 4) };
        foreach (var w in Simd.Supported)
        {
            using (Simd.Override(w))
            {
                var o = new float[2];
                var lse = new float[1];
                Attention.ForwardInt8(shape, q, st1, new(kq, st2, ks, sst), new(vq, st2, vs, sst), o, st1, new AttentionOptions { Scale = 1 }, default, lse);
                AssertClose(expected, o, 1e-6, 1e-6, $"{w} out");
                Assert.Equal((float)Math.Log(Math.E + 1), lse[0], 1e-6f);
            }
        }
    }

    [Fact]
    public void EveryWidthMatchesScalarAndDequantizedReferenceOverSampledShapes()
    {
        var rng = new Random(4321);
        int done = 0;
        for (int trial = 0; done < 60 && trial < 1000; trial++)
        {
            int batch = rng.Next(1, 3);
            var (h, hkv) = HeadCounts[rng.Next(HeadCounts.Length)];
            int t = QueryLengths[rng.Next(QueryLengths.Length)], s = KeyLengths[rng.Next(KeyLengths.Length)];
            int hd = HeadDims[rng.Next(HeadDims.Length)];
            if ((long)batch * h * t * s * hd > 400_000) continue;
            var c = RandomCase(rng, batch, h, hkv, t, s, hd);
            c.Options = new AttentionOptions
            {
                Causal = rng.Next(2) == 0,
                QueryOffset = rng.Next(3) switch { 0 => 0, 1 => s - t, _ => rng.Next(-3, s + 1) },
                Scale = rng.Next(3) == 0 ? 1f : null,
                KeyBlock = rng.Next(3) == 0 ? rng.Next(1, 40) : 0,
            };
            if (rng.Next(3) == 0) c.KeyLengths = Enumerable.Range(0, batch).Select(_ => rng.Next(0, s + 1)).ToArray();
            if (rng.Next(4) == 0) c.KeyMask = Enumerable.Range(0, batch * s).Select(_ => (byte)(rng.Next(5) == 0 ? 0 : 1)).ToArray();
            switch (rng.Next(4))
            {
                case 0: c.Bias = Enumerable.Range(0, h * t * s).Select(_ => (float)Normal(rng)).ToArray(); break;
                case 1: c.Bias = Enumerable.Range(0, batch * h * t * s).Select(_ => (float)Normal(rng)).ToArray(); break;
                case 2: c.Alibi = Enumerable.Range(0, h).Select(i => MathF.Pow(2, -(i + 1))).ToArray(); break;
            }
            CheckAllWidths(c, $"B{batch} H{h}/{hkv} T{t} S{s} hd{hd} {c.Options}");
            done++;
        }
        Assert.Equal(60, done);
    }

    [Fact]
    public void DecodingAgainstALongCacheMatchesDequantizedReference()
    {
        var rng = new Random(8);
        foreach (var (t, s, hd, h, hkv) in new[] { (1, 1000, 64, 6, 6), (1, 513, 80, 8, 1), (1, 300, 17, 4, 2), (1, 1, 128, 2, 2), (2, 200, 96, 2, 1) })
        {
            var c = RandomCase(rng, 2, h, hkv, t, s, hd);
            c.Options = new AttentionOptions { Causal = true, QueryOffset = s - t };
            c.KeyLengths = new[] { s, s / 2 };
            CheckAllWidths(c, $"decode T{t} S{s} hd{hd}");
        }
    }

    /// <summary>
    /// Against the unquantized operands. With k̂, v̂ the dequantized keys and values, the scores move
    /// by δ_j = scale·|q·(k_j − k̂_j)| ≤ Δ, so every probability moves by a factor within e^{±2Δ} and
    /// |ô − o| ≤ Σ_j |p̂_j − p_j|·|v̂_j| + Σ_j p_j·|v̂_j − v_j| ≤ (e^{2Δ} − 1)·max|v̂| + max|v̂ − v|. The
    /// test takes Δ and the maxima over all keys of the (batch item, kv head) a query row reads, which
    /// bounds the keys it sees, and adds 1e-4 for binary32 rounding.
    /// </summary>
    [Fact]
    public void ErrorAgainstTheUnquantizedOperandsStaysWithinTheQuantizationBound()
    {
        var rng = new Random(99);
        double worstRatio = 0;
        foreach (var (t, s, hd, h, hkv) in new[] { (1, 200, 64, 4, 2), (1, 64, 32, 2, 2), (5, 90, 80, 2, 1), (1, 700, 128, 2, 2) })
        {
            var c = RandomCase(rng, 2, h, hkv, t, s, hd);
            c.Options = new AttentionOptions { Causal = true, QueryOffset = s - t };
            var (exact, _) = c.RunReference(dequantized: false);
            float scale = c.Options.ResolveScale(hd);
            foreach (var w in Simd.Supported)
            {
                using (Simd.Override(w))
                {
                    var (o, _) = c.RunInt8();
                    for (int b = 0; b < 2; b++)
                    for (int head = 0; head < h; head++)
                    {
                        int kvh = head / (h / hkv);
                        double maxV = 0, maxVErr = 0;
                        for (int j = 0; j < s; j++)
                            for (int d = 0; d < hd; d++)
                            {
                                int at = b * c.V.Strides.Batch + kvh * c.V.Strides.Head + j * c.V.Strides.Position + d;
                                maxV = Math.Max(maxV, Math.Abs(c.V.Dequantized[at]));
                                maxVErr = Math.Max(maxVErr, Math.Abs(c.V.Dequantized[at] - c.V.Original[at]));
                            }
                        for (int i = 0; i < t; i++)
                        {
                            double delta = 0;
                            for (int j = 0; j < s; j++)
                            {
                                double dot = 0;
                                for (int d = 0; d < hd; d++)
                                {
                                    int at = b * c.K.Strides.Batch + kvh * c.K.Strides.Head + j * c.K.Strides.Position + d;
                                    dot += c.Q[((b * h + head) * t + i) * hd + d] * ((double)c.K.Original[at] - c.K.Dequantized[at]);
                                }
                                delta = Math.Max(delta, scale * Math.Abs(dot));
                            }
                            double bound = (Math.Exp(2 * delta) - 1) * maxV + maxVErr + 1e-4;
                            for (int d = 0; d < hd; d++)
                            {
                                int at = ((b * h + head) * t + i) * hd + d;
                                double err = Math.Abs(o[at] - exact[at]);
                                Assert.True(err <= bound, $"T{t} S{s} hd{hd} {w} b{b} h{head} t{i} d{d}: |{o[at]} − {exact[at]}| = {err:G3} > bound {bound:G3}");
                                worstRatio = Math.Max(worstRatio, err / bound);
                            }
                        }
                    }
                }
            }
        }
        // Some output must move: the int8 path reads the quants, not the originals.
        Assert.True(worstRatio > 0, "no error at all: the int8 path did not read the quantized operands");
    }

    [Fact]
    public void ArgumentsAreCheckedAndNamed()
    {
        var shape = new AttentionShape(1, 2, 1, 1, 8, 4);
        var q = new float[8];
        var o = new float[8];
        var st = AttentionStrides.HeadMajor(1, 8, 4);
        var sst = AttentionStrides.HeadMajor(1, 8, 1);
        var qs = AttentionStrides.HeadMajor(2, 1, 4);
        var quants = new sbyte[32];
        var scales = new float[8];
        var ex = Assert.Throws<ArgumentException>(() =>
            Attention.ForwardInt8(shape, q, qs, new(quants, st, new float[7], sst), new(quants, st, scales, sst), o, qs));
        Assert.Contains("K scales", ex.Message);
        ex = Assert.Throws<ArgumentException>(() =>
            Attention.ForwardInt8(shape, q, qs, new(quants, st, scales, sst), new(new sbyte[31], st, scales, sst), o, qs));
        Assert.Contains("V quants", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Int8Quantizer.Quantize(new float[4], new sbyte[3]));
        Assert.Contains("quants", ex.Message);
    }
}
