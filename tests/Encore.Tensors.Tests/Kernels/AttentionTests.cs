using System.Runtime.InteropServices;
using Encore.Tensors.Kernels;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public partial class AttentionTests
{
    static readonly int[] Lengths = { 0, 1, 2, 3, 7, 16, 33, 64, 65, 130, 257 };
    static readonly int[] HeadDims = { 1, 3, 8, 16, 17, 32, 64, 80 };
    static readonly (int H, int Hkv)[] HeadCounts = { (1, 1), (4, 4), (4, 2), (6, 3), (8, 1) };

    /// <summary>An operand (B, heads, L, hd) inside a larger buffer; unused slots hold NaN so a read outside the view shows.</summary>
    sealed record Operand(float[] Data, AttentionStrides Strides, int Batch, int Heads, int Rows, int Hd)
    {
        public static Operand Random(Random rng, int batch, int heads, int rows, int hd, int padPosition = 0, int padHead = 0, int padBatch = 0)
        {
            int pos = hd + padPosition, head = rows * pos + padHead, bat = heads * head + padBatch;
            var st = new AttentionStrides(bat, head, pos);
            var data = new float[Math.Max(0, batch * bat)];
            Array.Fill(data, float.NaN);
            var op = new Operand(data, st, batch, heads, rows, hd);
            op.ForEach((i, _) => data[i] = (float)Normal(rng));
            return op;
        }

        public static Operand Empty(int batch, int heads, int rows, int hd, int padPosition = 0, int padHead = 0)
        {
            int pos = hd + padPosition, head = rows * pos + padHead;
            var data = new float[batch * heads * head];
            Array.Fill(data, float.NaN);
            return new Operand(data, new AttentionStrides(heads * head, head, pos), batch, heads, rows, hd);
        }

        public void ForEach(Action<int, int> f)
        {
            int n = 0;
            for (int b = 0; b < Batch; b++)
            for (int h = 0; h < Heads; h++)
            for (int t = 0; t < Rows; t++)
            for (int d = 0; d < Hd; d++)
                f(b * Strides.Batch + h * Strides.Head + t * Strides.Position + d, n++);
        }

        /// <summary>The view's values packed (B, heads, L, hd).</summary>
        public float[] Packed()
        {
            var r = new float[Batch * Heads * Rows * Hd];
            ForEach((i, n) => r[n] = Data[i]);
            return r;
        }
    }

    sealed class Case
    {
        public required AttentionShape Shape;
        public AttentionOptions Options;
        public required Operand Q, K, V;
        public int[]? KeyLengths;
        public byte[]? KeyMask;
        public float[]? Bias;
        public float[]? Alibi;
        public float[]? Distance;

        public AttentionMask Mask => new() { KeyLengths = KeyLengths, KeyMask = KeyMask, Bias = Bias, AlibiSlopes = Alibi, DistanceBias = Distance };

        public Operand NewOutput() => Operand.Empty(Shape.Batch, Shape.Heads, Shape.QueryLength, Shape.HeadDim);

        public (float[] Out, float[] Lse) Run(bool reference, AttentionOptions? options = null)
        {
            var o = NewOutput();
            var lse = new float[Shape.Batch * Shape.Heads * Shape.QueryLength];
            var opt = options ?? Options;
            if (reference)
                Attention.Reference(Shape, new(Q.Data, Q.Strides, K.Data, K.Strides, V.Data, V.Strides), o.Data, o.Strides, opt, Mask, lse);
            else
                Attention.Forward(Shape, new(Q.Data, Q.Strides, K.Data, K.Strides, V.Data, V.Strides), o.Data, o.Strides, opt, Mask, lse);
            return (o.Packed(), lse);
        }
    }

    static double Normal(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    static float[] RandomArray(Random rng, int n, double scale = 1)
    {
        var r = new float[n];
        for (int i = 0; i < n; i++) r[i] = (float)(scale * Normal(rng));
        return r;
    }

    static Case RandomCase(Random rng, int batch, int h, int hkv, int t, int s, int hd, bool kvCapacity = false)
    {
        var shape = new AttentionShape(batch, h, hkv, t, s, hd);
        return new Case
        {
            Shape = shape,
            Q = Operand.Random(rng, batch, h, t, hd),
            K = kvCapacity ? Operand.Random(rng, batch, hkv, s, hd, padHead: 5 * hd) : Operand.Random(rng, batch, hkv, s, hd),
            V = kvCapacity ? Operand.Random(rng, batch, hkv, s, hd, padHead: 5 * hd) : Operand.Random(rng, batch, hkv, s, hd),
        };
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

    /// <summary>Every supported width against the reference; also checks two runs agree bit for bit.</summary>
    static void CheckAllWidths(Case c, string label, double abs = 1e-4, double rel = 1e-4)
    {
        var (refOut, refLse) = c.Run(reference: true);
        foreach (var w in Simd.Supported)
        {
            using (Simd.Override(w))
            {
                var (o, lse) = c.Run(reference: false);
                AssertClose(refOut, o, abs, rel, $"{label} {w} out");
                AssertClose(refLse, lse, abs, rel, $"{label} {w} lse");
                var (o2, _) = c.Run(reference: false);
                Assert.True(o.AsSpan().SequenceEqual(o2), $"{label} {w}: two runs differ");
            }
        }
    }

    [Fact]
    public void HandComputedOneQueryTwoKeys()
    {
        // q = (1, 0), keys (1, 0) and (0, 1), scale 1: scores (1, 0), weights e/(e+1) and 1/(e+1).
        var shape = new AttentionShape(1, 1, 1, 1, 2, 2);
        float[] q = { 1, 0 }, k = { 1, 0, 0, 1 }, v = { 1, 2, 3, 4 };
        var st1 = AttentionStrides.HeadMajor(1, 1, 2);
        var st2 = AttentionStrides.HeadMajor(1, 2, 2);
        var opt = new AttentionOptions { Scale = 1 };
        double w0 = Math.E / (Math.E + 1), w1 = 1 / (Math.E + 1);
        float[] expected = { (float)(w0 * 1 + w1 * 3), (float)(w0 * 2 + w1 * 4) };  // 1.5378828, 2.5378828
        foreach (var w in Simd.Supported)
        {
            using (Simd.Override(w))
            {
                var o = new float[2];
                var lse = new float[1];
                Attention.Forward(shape, new(q, st1, k, st2, v, st2), o, st1, opt, default, lse);
                AssertClose(expected, o, 1e-6, 1e-6, $"{w} out");
                Assert.Equal((float)Math.Log(Math.E + 1), lse[0], 1e-6f);   // 1.3132617
            }
        }
        Assert.Equal(1.5378828f, expected[0], 1e-6f);
    }

    [Fact]
    public void EveryWidthMatchesReferenceOverSampledShapes()
    {
        var rng = new Random(1234);
        int done = 0;
        for (int trial = 0; done < 60 && trial < 1000; trial++)
        {
            int batch = rng.Next(1, 3);
            var (h, hkv) = HeadCounts[rng.Next(HeadCounts.Length)];
            int t = Lengths[rng.Next(Lengths.Length)], s = Lengths[rng.Next(Lengths.Length)];
            int hd = HeadDims[rng.Next(HeadDims.Length)];
            if ((long)batch * h * t * s * hd > 600_000) continue;
            var c = RandomCase(rng, batch, h, hkv, t, s, hd, kvCapacity: rng.Next(2) == 0);
            c.Options = new AttentionOptions
            {
                Causal = rng.Next(2) == 0,
                QueryOffset = rng.Next(3) switch { 0 => 0, 1 => s - t, _ => rng.Next(-3, s + 1) },
                Scale = rng.Next(3) == 0 ? 1f : null,
            };
            if (rng.Next(3) == 0) c.KeyLengths = Enumerable.Range(0, batch).Select(_ => rng.Next(0, s + 1)).ToArray();
            if (rng.Next(4) == 0) c.KeyMask = Enumerable.Range(0, batch * s).Select(_ => (byte)(rng.Next(5) == 0 ? 0 : 1)).ToArray();
            switch (rng.Next(4))
            {
                case 0: c.Bias = RandomArray(rng, h * t * s); break;
                case 1: c.Bias = RandomArray(rng, batch * h * t * s); break;
                case 2: c.Alibi = Enumerable.Range(0, h).Select(i => MathF.Pow(2, -(i + 1))).ToArray(); break;
            }
            CheckAllWidths(c, $"B{batch} H{h}/{hkv} T{t} S{s} hd{hd} {c.Options}");
            done++;
        }
        Assert.Equal(60, done);
    }

    [Fact]
    public void DecodingAgainstALongCacheMatchesReference()
    {
        var rng = new Random(7);
        foreach (var (t, s, hd, h, hkv) in new[] { (1, 1000, 64, 6, 6), (1, 513, 80, 8, 1), (2, 300, 17, 4, 2), (3, 130, 3, 6, 3), (1, 1, 128, 2, 2), (7, 200, 96, 2, 1) })
        {
            var c = RandomCase(rng, 2, h, hkv, t, s, hd, kvCapacity: true);
            c.Options = new AttentionOptions { Causal = true, QueryOffset = s - t };
            c.KeyLengths = new[] { s, s / 2 };
            CheckAllWidths(c, $"decode T{t} S{s} hd{hd}");
        }
    }

    [Fact]
    public void CausalOffsetsHideExactlyTheFutureKeys()
    {
        var rng = new Random(11);
        var c = RandomCase(rng, 1, 2, 1, 33, 40, 16);
        foreach (int offset in new[] { -40, -5, 0, 7, 39 })
        {
            c.Options = new AttentionOptions { Causal = true, QueryOffset = offset };
            CheckAllWidths(c, $"offset {offset}");
        }
        // Changing a key that is in the future of every query must not change the output.
        c.Options = new AttentionOptions { Causal = true, QueryOffset = 0 };
        var (before, _) = c.Run(reference: false);
        c.K.ForEach((i, n) => { if (n / 16 % 40 == 39) c.K.Data[i] = 1e6f; });
        c.V.ForEach((i, n) => { if (n / 16 % 40 == 39) c.V.Data[i] = 1e6f; });
        var (after, _) = c.Run(reference: false);
        Assert.Equal(before, after);
    }

    [Fact]
    public void BiasPerHeadAndPerBatchAndPaddingMatchReference()
    {
        var rng = new Random(21);
        foreach (bool perBatch in new[] { false, true })
        {
            var c = RandomCase(rng, 2, 4, 2, 20, 70, 32);
            c.Bias = RandomArray(rng, (perBatch ? 2 : 1) * 4 * 20 * 70, 3);
            c.KeyLengths = new[] { 70, 3 };
            c.KeyMask = Enumerable.Range(0, 2 * 70).Select(i => (byte)(i % 7 == 3 ? 0 : 1)).ToArray();
            c.Options = new AttentionOptions { Scale = 1 };
            CheckAllWidths(c, $"bias perBatch={perBatch}");
        }
    }

    [Fact]
    public void DistanceBiasEqualsItsWrittenOutBiasBitForBit()
    {
        var rng = new Random(41);
        // Row path (T = 1 against a cache), whole and partial 16-row tiles, causal and bidirectional, padding.
        foreach (var (t, s, causal) in new[] { (1, 100, true), (3, 50, false), (20, 90, true), (40, 40, false), (33, 70, false), (48, 48, true) })
        {
            int h = 4, width = t + s - 1;
            var distance = RandomArray(rng, h * width, 2);
            var bias = new float[h * t * s];
            for (int hh = 0; hh < h; hh++)
            for (int i = 0; i < t; i++)
            for (int j = 0; j < s; j++)
                bias[(hh * t + i) * s + j] = distance[hh * width + i - j + s - 1];
            var c = RandomCase(rng, 2, h, 2, t, s, 24);
            c.Options = new AttentionOptions { Causal = causal, QueryOffset = causal ? s - t : 0 };
            c.KeyLengths = causal ? null : new[] { s, s - 2 };
            foreach (var w in Simd.Supported)
            {
                using (Simd.Override(w))
                {
                    c.Distance = distance; c.Bias = null;
                    var (byDistance, lse1) = c.Run(reference: false);
                    c.Distance = null; c.Bias = bias;
                    var (written, lse2) = c.Run(reference: false);
                    Assert.True(byDistance.AsSpan().SequenceEqual(written), $"T={t} S={s} {w}: outputs differ");
                    Assert.True(lse1.AsSpan().SequenceEqual(lse2), $"T={t} S={s} {w}: log-sum-exps differ");
                }
            }
            // With a bias beside it, against the reference, which writes the distance bias out and adds the two.
            c.Distance = distance;
            c.Bias = RandomArray(rng, h * t * s);
            CheckAllWidths(c, $"distance + bias T={t} S={s}");
        }
    }

    [Fact]
    public void DistanceBiasOfTheWrongLengthOrInABackwardIsRefused()
    {
        var rng = new Random(43);
        var c = RandomCase(rng, 1, 2, 2, 5, 7, 8);
        c.Distance = new float[2 * 11 - 1];
        var e = Assert.Throws<ArgumentException>(() => c.Run(reference: false));
        Assert.Contains("DistanceBias has 21 values, expected H·(T + S − 1) = 22", e.Message);
        c.Distance = new float[22];
        var (o, lse) = c.Run(reference: false);
        var grads = (new float[o.Length], new float[c.K.Data.Length], new float[c.V.Data.Length]);
        var qs = AttentionStrides.HeadMajor(2, 5, 8);
        e = Assert.Throws<ArgumentException>(() => Attention.Backward(c.Shape, new(c.Q.Data, c.Q.Strides, c.K.Data, c.K.Strides, c.V.Data, c.V.Strides),
            o, qs, o, qs, lse, new(grads.Item1, qs, grads.Item2, c.K.Strides, grads.Item3, c.V.Strides), c.Options, c.Mask));
        Assert.Contains("DistanceBias is read by the forward kernels only", e.Message);
    }

    [Fact]
    public void AlibiShortcutEqualsExplicitAlibiBias()
    {
        var rng = new Random(31);
        foreach (var (t, s, offset) in new[] { (1, 100, 99), (20, 90, 70), (40, 40, 0) })
        {
            int h = 4;
            var slopes = new float[] { 0.5f, 0.25f, 0.125f, 0.0625f };
            var bias = new float[h * t * s];
            for (int hh = 0; hh < h; hh++)
            for (int tt = 0; tt < t; tt++)
            for (int j = 0; j < s; j++)
                bias[(hh * t + tt) * s + j] = slopes[hh] * (float)(j - (tt + offset));
            var c = RandomCase(rng, 2, h, 2, t, s, 24);
            c.Options = new AttentionOptions { Causal = true, QueryOffset = offset };
            foreach (var w in Simd.Supported)
            {
                using (Simd.Override(w))
                {
                    c.Alibi = slopes; c.Bias = null;
                    var (viaSlopes, lse1) = c.Run(reference: false);
                    c.Alibi = null; c.Bias = bias;
                    var (viaBias, lse2) = c.Run(reference: false);
                    AssertClose(viaBias, viaSlopes, 1e-6, 1e-6, $"alibi {w}");
                    AssertClose(lse2, lse1, 1e-6, 1e-6, $"alibi lse {w}");
                }
            }
            c.Alibi = slopes; c.Bias = null;
            CheckAllWidths(c, "alibi vs reference");
        }
    }

    [Fact]
    public void StridedViewsOfAFusedProjection()
    {
        // Q, K, V interleaved in one (B, T, 3·H·hd) projection output; the output written into (B, T, H·hd).
        var rng = new Random(41);
        int batch = 2, h = 4, t = 37, hd = 16;
        int width = 3 * h * hd;
        var fused = RandomArray(rng, batch * t * width);
        var st = new AttentionStrides(t * width, hd, width);
        var shape = new AttentionShape(batch, h, h, t, t, hd);
        var outStrides = AttentionStrides.PositionMajor(h, t, hd);
        var qSpan = fused.AsSpan(0); var kSpan = fused.AsSpan(h * hd); var vSpan = fused.AsSpan(2 * h * hd);
        var opt = new AttentionOptions { Causal = true };

        var q = Operand.Random(rng, batch, h, t, hd); var k = Operand.Random(rng, batch, h, t, hd); var v = Operand.Random(rng, batch, h, t, hd);
        for (int b = 0; b < batch; b++)
        for (int hh = 0; hh < h; hh++)
        for (int tt = 0; tt < t; tt++)
        for (int d = 0; d < hd; d++)
        {
            int src = b * t * width + tt * width + hh * hd + d, dst = ((b * h + hh) * t + tt) * hd + d;
            q.Data[dst] = qSpan[src]; k.Data[dst] = kSpan[src]; v.Data[dst] = vSpan[src];
        }
        var expected = new float[batch * h * t * hd];
        var hm = AttentionStrides.HeadMajor(h, t, hd);
        Attention.Reference(shape, new(q.Data, hm, k.Data, hm, v.Data, hm), expected, hm, opt);

        foreach (var w in Simd.Supported)
        {
            using (Simd.Override(w))
            {
                var o = new float[batch * t * h * hd];
                Attention.Forward(shape, new(qSpan, st, kSpan, st, vSpan, st), o, outStrides, opt);
                var packed = new float[expected.Length];
                for (int b = 0; b < batch; b++)
                for (int hh = 0; hh < h; hh++)
                for (int tt = 0; tt < t; tt++)
                for (int d = 0; d < hd; d++)
                    packed[((b * h + hh) * t + tt) * hd + d] = o[b * outStrides.Batch + hh * outStrides.Head + tt * outStrides.Position + d];
                AssertClose(expected, packed, 1e-4, 1e-4, $"fused {w}");
            }
        }
    }

    [Fact]
    public void TiledResultEqualsUntiled()
    {
        var rng = new Random(51);
        var c = RandomCase(rng, 1, 2, 2, 24, 257, 32);
        c.Options = new AttentionOptions { Causal = true, QueryOffset = 233 };
        c.Bias = RandomArray(rng, 2 * 24 * 257);
        foreach (var w in Simd.Supported)
        {
            using (Simd.Override(w))
            {
                var (whole, lseWhole) = c.Run(false, c.Options with { KeyBlock = 4096 });
                foreach (int block in new[] { 1, 5, 16, 64, 100 })
                {
                    var (tiled, lseTiled) = c.Run(false, c.Options with { KeyBlock = block });
                    AssertClose(whole, tiled, 1e-5, 1e-4, $"{w} block {block}");
                    AssertClose(lseWhole, lseTiled, 3e-5, 1e-5, $"{w} block {block} lse");
                }
            }
        }
    }

    [Fact]
    public void FullyMaskedRowsGiveZerosAndMinusInfinity()
    {
        var rng = new Random(61);
        // Batch item 1 has no valid key; with offset −3 the first 3 rows of item 0 see nothing either.
        var c = RandomCase(rng, 2, 2, 1, 20, 10, 8);
        c.KeyLengths = new[] { 10, 0 };
        c.Options = new AttentionOptions { Causal = true, QueryOffset = -3 };
        foreach (var w in Simd.Supported)
        {
            using (Simd.Override(w))
            {
                var (o, lse) = c.Run(reference: false);
                for (int h = 0; h < 2; h++)
                for (int t = 0; t < 20; t++)
                {
                    bool empty0 = t < 3;
                    Assert.Equal(empty0, float.IsNegativeInfinity(lse[(0 * 2 + h) * 20 + t]));
                    Assert.True(float.IsNegativeInfinity(lse[(1 * 2 + h) * 20 + t]));
                    for (int d = 0; d < 8; d++)
                    {
                        Assert.Equal(0f, o[((1 * 2 + h) * 20 + t) * 8 + d]);
                        if (empty0) Assert.Equal(0f, o[((0 * 2 + h) * 20 + t) * 8 + d]);
                        else Assert.NotEqual(0f, o[((0 * 2 + h) * 20 + t) * 8 + d]);
                    }
                }
            }
        }
        CheckAllWidths(c, "masked rows");
        // S = 0 and T = 0.
        CheckAllWidths(RandomCase(rng, 2, 2, 2, 5, 0, 8), "S = 0");
        CheckAllWidths(RandomCase(rng, 2, 2, 2, 0, 5, 8), "T = 0");
        // Left padding hides whole key blocks (skipped), and all keys of batch item 1.
        var lp = RandomCase(rng, 2, 2, 2, 9, 200, 16);
        lp.KeyMask = Enumerable.Range(0, 400).Select(i => (byte)(i < 140 || i >= 200 ? 0 : 1)).ToArray();
        CheckAllWidths(lp, "left padding");
        // A −∞ bias over a whole row.
        var d2 = RandomCase(rng, 1, 1, 1, 3, 4, 4);
        d2.Bias = new float[12];
        for (int j = 0; j < 4; j++) d2.Bias[4 + j] = float.NegativeInfinity;
        CheckAllWidths(d2, "-inf bias row");
    }

    [Fact]
    public void BackwardReferenceMatchesFiniteDifferences()
    {
        var rng = new Random(71);
        var s = new AttentionShape(2, 2, 1, 3, 4, 3);
        var opt = new AttentionOptions { Causal = true, QueryOffset = 1, Scale = 0.7f };
        var lengths = new[] { 4, 3 };
        var alibi = new[] { 0.5f, 0.25f };
        double[] Rand(int n) => Enumerable.Range(0, n).Select(_ => Normal(rng)).ToArray();
        double[] q = Rand(2 * 2 * 3 * 3), k = Rand(2 * 1 * 4 * 3), v = Rand(2 * 1 * 4 * 3), bias = Rand(2 * 3 * 4), w = Rand(2 * 2 * 3 * 3);
        // The bias goes to the core as doubles.
        var (_, dk, _, _) = AssertReferenceBackwardIsTheFiniteDifference(s, q, k, v, bias, w, opt, lengths, alibi, "");
        // The padded key of batch item 1 gets no gradient; some do.
        Assert.All(Enumerable.Range(0, 3), d => Assert.Equal(0, dk[(1 * 4 + 3) * 3 + d]));
        Assert.Contains(dk, x => Math.Abs(x) > 1e-3);
    }

    /// <summary>
    /// The reference backward of the loss Σ w·o against central differences of the reference forward, for every
    /// element of q, k, v and the bias; returns the backward's gradients for further checks.
    /// </summary>
    internal static (double[] Dq, double[] Dk, double[] Dv, double[] DBias) AssertReferenceBackwardIsTheFiniteDifference(AttentionShape s,
        double[] q, double[] k, double[] v, double[] bias, double[] w, AttentionOptions opt, int[] keyLengths, float[]? alibi, string label)
    {
        double Loss()
        {
            var o = new double[w.Length];
            var lse = new double[s.Batch * s.Heads * s.QueryLength];
            Attention.ReferenceCore(s, q, k, v, bias, opt, new AttentionMask { KeyLengths = keyLengths, AlibiSlopes = alibi }, o, lse);
            double sum = 0;
            for (int i = 0; i < o.Length; i++) sum += w[i] * o[i];
            return sum;
        }

        var dq = new double[q.Length]; var dk = new double[k.Length]; var dv = new double[v.Length]; var db = new double[bias.Length];
        Attention.BackwardReferenceCore(s, q, k, v, bias, w, opt, new AttentionMask { KeyLengths = keyLengths, AlibiSlopes = alibi }, dq, dk, dv, db);
        foreach (var (x, g, name) in new[] { (q, dq, "dQ"), (k, dk, "dK"), (v, dv, "dV"), (bias, db, "dBias") })
        {
            for (int i = 0; i < x.Length; i++)
            {
                double keep = x[i], eps = 1e-5;
                x[i] = keep + eps; double up = Loss();
                x[i] = keep - eps; double down = Loss();
                x[i] = keep;
                double fd = (up - down) / (2 * eps);
                Assert.True(Math.Abs(fd - g[i]) < 1e-7 + 1e-6 * Math.Abs(fd), $"{label}{name}[{i}]: finite difference {fd}, backward {g[i]}");
            }
        }
        return (dq, dk, dv, db);
    }

    [Fact]
    public void BackwardMatchesReferenceOnEveryWidth()
    {
        var rng = new Random(81);
        var cases = new List<(Case C, string Label)>();
        {
            var c = RandomCase(rng, 2, 4, 2, 33, 65, 17, kvCapacity: true);
            c.Options = new AttentionOptions { Causal = true, QueryOffset = 32 };
            c.Bias = RandomArray(rng, 4 * 33 * 65);             // per head: gradient summed over the batch
            c.KeyLengths = new[] { 65, 40 };
            cases.Add((c, "causal, per-head bias"));
        }
        {
            var c = RandomCase(rng, 2, 6, 3, 16, 16, 8);
            c.Bias = RandomArray(rng, 2 * 6 * 16 * 16);         // per batch
            c.KeyMask = Enumerable.Range(0, 32).Select(i => (byte)(i % 5 == 0 || i >= 16 ? 0 : 1)).ToArray();   // item 1: no key
            c.Options = new AttentionOptions { Scale = 1 };
            cases.Add((c, "per-batch bias, key mask"));
        }
        {
            var c = RandomCase(rng, 1, 8, 1, 1, 130, 64);
            c.Alibi = Enumerable.Range(0, 8).Select(i => MathF.Pow(2, -i - 1)).ToArray();
            c.Options = new AttentionOptions { Causal = true, QueryOffset = 129 };
            cases.Add((c, "decode MQA alibi"));
        }
        {
            var c = RandomCase(rng, 2, 2, 2, 7, 3, 80);
            c.KeyLengths = new[] { 0, 3 };
            cases.Add((c, "fully masked batch item"));
        }
        foreach (var (c, label) in cases)
        {
            var s = c.Shape;
            var dOut = Operand.Random(rng, s.Batch, s.Heads, s.QueryLength, s.HeadDim);
            var dq0 = c.NewOutput(); var dk0 = Operand.Empty(s.Batch, s.KvHeads, s.KeyLength, s.HeadDim); var dv0 = Operand.Empty(s.Batch, s.KvHeads, s.KeyLength, s.HeadDim);
            var db0 = c.Bias is null ? null : new float[c.Bias.Length];
            Attention.BackwardReference(s, new(c.Q.Data, c.Q.Strides, c.K.Data, c.K.Strides, c.V.Data, c.V.Strides), dOut.Data, dOut.Strides, new(dq0.Data, dq0.Strides, dk0.Data, dk0.Strides, dv0.Data, dv0.Strides), c.Options, c.Mask, db0);
            Assert.Contains(dk0.Packed(), x => Math.Abs(x) > 1e-3);
            foreach (var w in Simd.Supported)
            {
                using (Simd.Override(w))
                {
                    var o = c.NewOutput();
                    var lse = new float[s.Batch * s.Heads * s.QueryLength];
                    Attention.Forward(s, new(c.Q.Data, c.Q.Strides, c.K.Data, c.K.Strides, c.V.Data, c.V.Strides), o.Data, o.Strides, c.Options, c.Mask, lse);
                    var dq = c.NewOutput(); var dk = Operand.Empty(s.Batch, s.KvHeads, s.KeyLength, s.HeadDim, padHead: 3); var dv = Operand.Empty(s.Batch, s.KvHeads, s.KeyLength, s.HeadDim, padPosition: 2);
                    var db = c.Bias is null ? null : Enumerable.Repeat(float.NaN, c.Bias.Length).ToArray();
                    Attention.Backward(s, new(c.Q.Data, c.Q.Strides, c.K.Data, c.K.Strides, c.V.Data, c.V.Strides), o.Data, o.Strides, dOut.Data, dOut.Strides, lse, new(dq.Data, dq.Strides, dk.Data, dk.Strides, dv.Data, dv.Strides), c.Options, c.Mask, db);
                    AssertClose(dq0.Packed(), dq.Packed(), 2e-4, 2e-4, $"{label} {w} dQ");
                    AssertClose(dk0.Packed(), dk.Packed(), 2e-4, 2e-4, $"{label} {w} dK");
                    AssertClose(dv0.Packed(), dv.Packed(), 2e-4, 2e-4, $"{label} {w} dV");
                    if (db0 != null) AssertClose(db0, db!, 2e-4, 2e-4, $"{label} {w} dBias");
                }
            }
        }
    }

    [Fact]
    public void DecodingStepAllocatesNothing()
    {
        var rng = new Random(91);
        var c = RandomCase(rng, 1, 8, 8, 1, 256, 64, kvCapacity: true);
        c.Options = new AttentionOptions { Causal = true, QueryOffset = 255 };
        var o = c.NewOutput();
        var lse = new float[8];
        void Step() => Attention.Forward(c.Shape, new(c.Q.Data, c.Q.Strides, c.K.Data, c.K.Strides, c.V.Data, c.V.Strides), o.Data, o.Strides, c.Options, default, lse);
        for (int i = 0; i < 3; i++) Step();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++) Step();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void BadArgumentsThrowWithAMessage()
    {
        var shape = new AttentionShape(1, 3, 2, 2, 2, 4);
        var st = AttentionStrides.HeadMajor(3, 2, 4);
        var buf = new float[64];
        Assert.Contains("multiple of Hkv", Assert.Throws<ArgumentException>(() => Attention.Forward(shape, new(buf, st, buf, st, buf, st), new float[64], st)).Message);
        var ok = new AttentionShape(1, 2, 2, 2, 2, 4);
        var st2 = AttentionStrides.HeadMajor(2, 2, 4);
        Assert.Contains("needs", Assert.Throws<ArgumentException>(() => Attention.Forward(ok, new(new float[15], st2, buf, st2, buf, st2), new float[16], st2)).Message);
        Assert.Contains("KeyLengths", Assert.Throws<ArgumentException>(() =>
            Attention.Forward(ok, new(buf, st2, buf, st2, buf, st2), new float[16], st2, default, new AttentionMask { KeyLengths = new[] { 3 } })).Message);
        Assert.Contains("Bias", Assert.Throws<ArgumentException>(() =>
            Attention.Forward(ok, new(buf, st2, buf, st2, buf, st2), new float[16], st2, default, new AttentionMask { Bias = new float[7] })).Message);
        Assert.Contains("log-sum-exp", Assert.Throws<ArgumentException>(() =>
            Attention.Forward(ok, new(buf, st2, buf, st2, buf, st2), new float[16], st2, default, default, new float[3])).Message);
        Assert.Contains("overlap", Assert.Throws<ArgumentException>(() =>
            Attention.Forward(ok, new(buf, st2, buf, st2, buf, st2), new float[16], new AttentionStrides(8, 4, 0))).Message);
        // Inputs may broadcast: one K/V shared by the batch (batch stride 0).
        Attention.Forward(new AttentionShape(2, 2, 2, 2, 2, 4), new(buf, st2, buf, st2 with { Batch = 0 }, buf, st2 with { Batch = 0 }), new float[32], st2);
        // A bool mask converts to the byte form.
        var keep = new bool[] { true, false };
        var o = new float[16];
        Attention.Forward(ok, new(buf, st2, buf, st2, buf, st2), o, st2, default, new AttentionMask { KeyMask = MemoryMarshal.Cast<bool, byte>(keep.AsSpan()) });
    }
}
