using Encore.Tensors.Kernels;

namespace Encore.Tensors.Tests.Kernels;

/// <summary>
/// <see cref="Attention.Entropy"/> and <see cref="Attention.EntropyBackward"/> against a restatement written here:
/// every score materialized in double, a plain softmax, H = −Σ p·log p, and central differences of that for the gradient.
/// </summary>
[Trait("Category", "Kernels")]
public class AttentionEntropyTests
{
    sealed class Case
    {
        public required AttentionShape Shape;
        public AttentionOptions Options;
        public required float[] Q, K;                 // packed (B, H, T, hd) and (B, Hkv, S, hd)
        public int[]? KeyLengths;
        public byte[]? KeyMask;
        public float[]? Bias;                         // (H, T, S) or (B, H, T, S)
        public float[]? Alibi;

        public AttentionStrides QStrides => AttentionStrides.HeadMajor(Shape.Heads, Shape.QueryLength, Shape.HeadDim);
        public AttentionStrides KStrides => AttentionStrides.HeadMajor(Shape.KvHeads, Shape.KeyLength, Shape.HeadDim);
        public AttentionMask Mask => new() { KeyLengths = KeyLengths, KeyMask = KeyMask, Bias = Bias, AlibiSlopes = Alibi };
        public override string ToString() => $"{Shape} causal={Options.Causal} offset={Options.QueryOffset} lengths={KeyLengths != null} keyMask={KeyMask != null} bias={Bias?.Length} alibi={Alibi != null}";
    }

    static IEnumerable<Case> Cases()
    {
        var rng = new Random(11);
        var shapes = new (int B, int H, int Hkv, int T, int S, int Hd)[]
        {
            (1, 1, 1, 1, 1, 1), (2, 2, 2, 5, 5, 3), (2, 4, 2, 7, 7, 8), (1, 3, 1, 4, 9, 17), (3, 2, 1, 17, 17, 16),
            (2, 2, 2, 33, 33, 5), (1, 2, 2, 3, 130, 8), (2, 4, 4, 19, 70, 32),
        };
        int i = 0;
        foreach (var (b, h, hkv, t, s, hd) in shapes)
        {
            foreach (int variant in new[] { 0, 1, 2, 3 })
            {
                i++;
                var c = new Case
                {
                    Shape = new AttentionShape(b, h, hkv, t, s, hd),
                    Q = Random(rng, b * h * t * hd, 1.5f),
                    K = Random(rng, b * hkv * s * hd, 1.5f),
                    Options = new AttentionOptions { Causal = variant is 1 or 3 && t <= s, QueryOffset = variant is 1 or 3 && t <= s ? s - t : 0, KeyBlock = i % 3 == 0 ? 16 : 0 },
                };
                if (variant >= 2) c.KeyLengths = [.. Enumerable.Range(0, b).Select(x => x == 0 ? s : rng.Next(0, s + 1))];
                if (variant == 2) c.KeyMask = [.. Enumerable.Range(0, b * s).Select(_ => (byte)(rng.NextDouble() < 0.8 ? 1 : 0))];
                if (variant == 1) c.Bias = Random(rng, h * t * s, 2f);
                if (variant == 2) c.Bias = Random(rng, b * h * t * s, 2f);
                if (variant == 3) c.Alibi = [.. Enumerable.Range(0, h).Select(x => 0.5f / (x + 1))];
                yield return c;
            }
        }
    }

    static float[] Random(Random rng, int n, float scale)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Σ_rows w·H in double, and each row's H and visible keys; the operands in double so finite differences can perturb them.</summary>
    static double Reference(Case c, double[] q, double[] k, double[]? bias, double[]? w, double[]? entropy, double[]? visible)
    {
        var s = c.Shape;
        double scale = c.Options.Scale ?? 1.0 / Math.Sqrt(s.HeadDim);
        int group = s.Heads / s.KvHeads;
        long perHead = (long)s.Heads * s.QueryLength * s.KeyLength;
        var scores = new double[s.KeyLength];
        double total = 0;
        for (int b = 0; b < s.Batch; b++)
        for (int h = 0; h < s.Heads; h++)
        for (int t = 0; t < s.QueryLength; t++)
        {
            long qPos = t + c.Options.QueryOffset;
            double max = double.NegativeInfinity;
            for (int j = 0; j < s.KeyLength; j++)
            {
                bool hidden = (c.KeyLengths != null && j >= c.KeyLengths[b]) || (c.KeyMask != null && c.KeyMask[b * s.KeyLength + j] == 0)
                    || (c.Options.Causal && j > qPos);
                if (hidden) { scores[j] = double.NegativeInfinity; continue; }
                double dot = 0;
                for (int d = 0; d < s.HeadDim; d++)
                    dot += q[(((b * s.Heads) + h) * s.QueryLength + t) * s.HeadDim + d] * k[(((b * s.KvHeads) + h / group) * s.KeyLength + j) * s.HeadDim + d];
                double score = scale * dot;
                if (bias != null) score += bias[(bias.Length > perHead ? b * perHead : 0) + ((long)h * s.QueryLength + t) * s.KeyLength + j];
                if (c.Alibi != null) score += c.Alibi[h] * (j - qPos);
                scores[j] = score;
                max = Math.Max(max, score);
            }
            double sum = 0;
            int n = 0;
            for (int j = 0; j < s.KeyLength; j++)
                if (!double.IsNegativeInfinity(scores[j])) { sum += Math.Exp(scores[j] - max); n++; }
            double hRow = 0;
            for (int j = 0; j < s.KeyLength; j++)
            {
                if (double.IsNegativeInfinity(scores[j])) continue;
                double p = Math.Exp(scores[j] - max) / sum;
                if (p > 0) hRow -= p * Math.Log(p);
            }
            int row = (b * s.Heads + h) * s.QueryLength + t;
            if (entropy != null) entropy[row] = hRow;
            if (visible != null) visible[row] = n;
            total += (w?[row] ?? 1) * hRow;
        }
        return total;
    }

    static double[] D(float[] a) => [.. a.Select(x => (double)x)];

    [Fact]
    public void EntropyMatchesAMaterializedSoftmaxAtEveryWidth()
    {
        int checkedRows = 0;
        foreach (var c in Cases())
        {
            var s = c.Shape;
            int rows = s.Batch * s.Heads * s.QueryLength;
            var expected = new double[rows];
            var visible = new double[rows];
            Reference(c, D(c.Q), D(c.K), c.Bias is null ? null : D(c.Bias), null, expected, visible);
            foreach (var width in Simd.Supported)
            {
                using var _ = Simd.Override(width);
                var got = new float[rows];
                var gotVisible = new float[rows];
                Attention.Entropy(s, c.Q, c.QStrides, c.K, c.KStrides, got, c.Options, c.Mask, gotVisible);
                for (int r = 0; r < rows; r++)
                {
                    Assert.True(Math.Abs(got[r] - expected[r]) <= 2e-5 + 2e-5 * expected[r], $"{width} {c}: row {r} H = {got[r]:R}, expected {expected[r]:R}");
                    Assert.True(gotVisible[r] == visible[r], $"{width} {c}: row {r} sees {gotVisible[r]} keys, expected {visible[r]}");
                }
                checkedRows += rows;
            }
        }
        Assert.True(checkedRows > 1000);
    }

    [Fact]
    public void UniformScoresGiveTheLogOfTheVisibleKeysAndOneHotGivesZero()
    {
        // q = 0: every visible key scores the same, H = log(visible keys) (log(t + 1) for a causal row).
        var shape = new AttentionShape(1, 1, 1, 5, 5, 4);
        var q = new float[20];
        var k = Random(new Random(3), 20, 1f);
        var h = new float[5];
        Attention.Entropy(shape, q, AttentionStrides.HeadMajor(1, 5, 4), k, AttentionStrides.HeadMajor(1, 5, 4), h, new AttentionOptions { Causal = true });
        for (int t = 0; t < 5; t++) Assert.Equal(Math.Log(t + 1), h[t], 5);
        // A score gap of 200 puts all the mass on one key.
        var bias = new float[25];
        for (int t = 0; t < 5; t++) bias[t * 5 + t] = 200;
        Attention.Entropy(shape, q, AttentionStrides.HeadMajor(1, 5, 4), k, AttentionStrides.HeadMajor(1, 5, 4), h, default, new AttentionMask { Bias = bias });
        for (int t = 0; t < 5; t++) Assert.Equal(0, h[t], 6);
    }

    [Fact]
    public void TheGradientMatchesCentralDifferencesAtEveryWidth()
    {
        var rng = new Random(5);
        foreach (var c in Cases().Where(x => (long)x.Shape.Batch * x.Shape.Heads * x.Shape.QueryLength * x.Shape.KeyLength <= 3000))
        {
            var s = c.Shape;
            int rows = s.Batch * s.Heads * s.QueryLength;
            var w = Random(rng, rows, 1f);
            double[] wd = D(w), q = D(c.Q), k = D(c.K);
            double[]? bias = c.Bias is null ? null : D(c.Bias);
            double F() => Reference(c, q, k, bias, wd, null, null);
            double[] Numeric(double[] x)
            {
                var g = new double[x.Length];
                const double eps = 1e-5;
                for (int i = 0; i < x.Length; i++)
                {
                    double v = x[i];
                    x[i] = v + eps; double up = F();
                    x[i] = v - eps; double down = F();
                    x[i] = v;
                    g[i] = (up - down) / (2 * eps);
                }
                return g;
            }
            var gq = Numeric(q);
            var gk = Numeric(k);
            var gb = bias is null ? null : Numeric(bias);
            foreach (var width in Simd.Supported)
            {
                using var _ = Simd.Override(width);
                var dq = new float[c.Q.Length];
                var dk = new float[c.K.Length];
                var db = c.Bias is null ? [] : new float[c.Bias.Length];
                Array.Fill(dq, float.NaN);
                Array.Fill(dk, float.NaN);
                Array.Fill(db, float.NaN);
                Attention.EntropyBackward(s, c.Q, c.QStrides, c.K, c.KStrides, w, dq, c.QStrides, dk, c.KStrides, c.Options, c.Mask, db);
                Close(gq, dq, $"{width} {c} dQ");
                Close(gk, dk, $"{width} {c} dK");
                if (gb != null) Close(gb, db, $"{width} {c} dBias");
            }
        }
    }

    static void Close(double[] expected, float[] got, string what)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(got[i] - expected[i]) <= 1e-4 + 1e-3 * Math.Abs(expected[i]), $"{what}[{i}]: {got[i]:R}, expected {expected[i]:R}");
    }

    [Fact]
    public void WrongSizesAreRefused()
    {
        var shape = new AttentionShape(1, 2, 2, 3, 3, 4);
        var q = new float[24];
        var st = AttentionStrides.HeadMajor(2, 3, 4);
        var e = Assert.Throws<ArgumentException>(() => Attention.Entropy(shape, q, st, q, st, new float[5]));
        Assert.Contains("entropy", e.Message);
        Assert.Throws<ArgumentException>(() => Attention.EntropyBackward(shape, q, st, q, st, new float[6], new float[24], st, new float[23], st));
    }

    [Theory]
    [InlineData(5f, 0)]
    [InlineData(0f, 2)]
    public void SoftCappedAndWindowedAttentionAreRefused(float softCap, int window)
    {
        // The kernels read every row from key 0 and differentiate plain scores; Gemma 2's options would be measured wrong.
        var shape = new AttentionShape(1, 2, 2, 3, 3, 4);
        var q = new float[24];
        var st = AttentionStrides.HeadMajor(2, 3, 4);
        var options = new AttentionOptions { Causal = true, SoftCap = softCap, Window = window };
        var e = Assert.Throws<ArgumentException>(() => Attention.Entropy(shape, q, st, q, st, new float[6], options));
        Assert.StartsWith("attention entropy is not measured for soft-capped or sliding-window attention", e.Message);
        Assert.Throws<ArgumentException>(() => Attention.EntropyBackward(shape, q, st, q, st, new float[6], new float[24], st, new float[24], st, options));
    }
}
