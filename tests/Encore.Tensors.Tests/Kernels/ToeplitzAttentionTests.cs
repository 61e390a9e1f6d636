using Encore.Tensors.Kernels;
using static Encore.Tensors.Tests.Kernels.OpsTesting;

namespace Encore.Tensors.Tests.Kernels;

[Trait("Category", "Kernels")]
public class ToeplitzAttentionTests
{
    // Packed (B, heads, L, hd) operands.
    static AttentionStrides Packed(int heads, int rows, int hd) => AttentionStrides.HeadMajor(heads, rows, hd);

    // The definition, materialized in double: out_i = Σ_j softmax(s_i)_j·c[clip(pos_i − j)]·v_j.
    static float[] Reference(AttentionShape s, float[] q, float[] k, float[] v, float[] c, int width, bool bidirectional,
        bool causal, int[]? keyLengths, float[]? bias, int[] queryPositions)
    {
        int m = bidirectional ? (width - 1) / 2 : width - 1, group = s.Heads / s.KvHeads;
        var o = new float[s.Batch * s.Heads * s.QueryLength * s.HeadDim];
        double scale = 1 / Math.Sqrt(s.HeadDim);
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.Heads; h++)
                for (int t = 0; t < s.QueryLength; t++)
                {
                    long pos = queryPositions[b] + t;
                    int end = keyLengths?[b] ?? s.KeyLength;
                    if (causal) end = (int)Math.Min(end, pos + 1);
                    if (end <= 0) continue;
                    var sc = new double[end];
                    for (int j = 0; j < end; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < s.HeadDim; d++)
                            dot += q[((b * s.Heads + h) * s.QueryLength + t) * s.HeadDim + d] * (double)k[((b * s.KvHeads + h / group) * s.KeyLength + j) * s.HeadDim + d];
                        sc[j] = dot * scale + (bias?[(h * s.QueryLength + t) * s.KeyLength + j] ?? 0);
                    }
                    double mx = sc.Max(), sum = sc.Sum(x => Math.Exp(x - mx));
                    for (int j = 0; j < end; j++)
                    {
                        long dist = pos - j;
                        int idx = bidirectional ? (int)(Math.Clamp(dist, -m, m) + m) : (int)Math.Clamp(dist, 0, m);
                        double w = Math.Exp(sc[j] - mx) / sum * c[h * width + idx];
                        for (int d = 0; d < s.HeadDim; d++)
                            o[((b * s.Heads + h) * s.QueryLength + t) * s.HeadDim + d] += (float)(w * v[((b * s.KvHeads + h / group) * s.KeyLength + j) * s.HeadDim + d]);
                    }
                }
        return o;
    }

    [Theory]
    [InlineData(1, 1, 1, 1, 1, 1, false, 0)]
    [InlineData(2, 4, 2, 5, 5, 8, true, 0)]
    [InlineData(2, 4, 2, 3, 9, 17, true, 6)]        // a decoding step of 3 queries after 6 cached keys
    [InlineData(3, 6, 3, 7, 7, 3, false, 0)]
    [InlineData(1, 2, 1, 33, 70, 16, false, 0)]
    public void BothPathsFollowTheDefinition(int batch, int heads, int kvHeads, int t, int s, int hd, bool causal, int offset)
    {
        var rng = new Random(batch * 100 + t * 10 + hd);
        var shape = new AttentionShape(batch, heads, kvHeads, t, s, hd);
        var q = Random(rng, batch * heads * t * hd);
        var k = Random(rng, batch * kvHeads * s * hd);
        var v = Random(rng, batch * kvHeads * s * hd);
        bool bidirectional = !causal;
        int maxDistance = 3, width = bidirectional ? 2 * maxDistance + 1 : maxDistance + 1;   // distances past 3 are clipped
        var c = Random(rng, heads * width, 2f);
        var bias = Random(rng, heads * t * s);
        int[]? lengths = causal ? null : Enumerable.Range(0, batch).Select(i => Math.Max(0, s - i * 2)).ToArray();
        var positions = Enumerable.Repeat(offset, batch).ToArray();
        var expected = Reference(shape, q, k, v, c, width, bidirectional, causal, lengths, bias, positions);
        var options = new AttentionOptions { Causal = causal, QueryOffset = offset };
        var mask = new AttentionMask { KeyLengths = lengths, Bias = bias };
        var inputs = new AttentionInputs(q, Packed(heads, t, hd), k, Packed(kvHeads, s, hd), v, Packed(kvHeads, s, hd));
        var fast = new float[expected.Length];
        var naive = new float[expected.Length];
        ToeplitzAttention.Forward(shape, inputs, fast, Packed(heads, t, hd), new ToeplitzWeights(c, width, bidirectional), options, mask);
        ToeplitzAttention.ForwardNaive(shape, inputs, naive, Packed(heads, t, hd), new ToeplitzWeights(c, width, bidirectional), options, mask);
        Near(expected, naive, 1e-5, 1e-4, "naive");
        Near(expected, fast, 1e-5, 1e-4, "vectorized");
    }

    [Fact]
    public void PerRowQueryPositionsPlaceEachRowOnItsOwn()
    {
        // A batch-cache step: row 0 at position 4, row 1 at position 1, over keys masked by each row's length.
        var rng = new Random(9);
        int heads = 2, hd = 4, s = 6;
        var shape = new AttentionShape(2, heads, heads, 1, s, hd);
        var q = Random(rng, 2 * heads * hd);
        var k = Random(rng, 2 * heads * s * hd);
        var v = Random(rng, 2 * heads * s * hd);
        var c = Random(rng, heads * 3, 2f);
        int[] positions = [4, 1];
        var expected = Reference(shape, q, k, v, c, 3, false, true, [5, 2], null, positions);
        var o = new float[expected.Length];
        ToeplitzAttention.Forward(shape, new AttentionInputs(q, Packed(heads, 1, hd), k, Packed(heads, s, hd), v, Packed(heads, s, hd)), o, Packed(heads, 1, hd),
            new ToeplitzWeights(c, 3, false), new AttentionOptions { Causal = true, QueryOffset = 4 }, new AttentionMask { KeyLengths = new[] { 5, 2 } }, positions);
        Near(expected, o, 1e-5, 1e-4, "per-row positions");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void WithAllCoefficientsOneItIsPlainAttention(bool causal)
    {
        var rng = new Random(causal ? 1 : 2);
        int b = 2, h = 4, hkv = 2, t = 9, s = 9, hd = 16;
        var shape = new AttentionShape(b, h, hkv, t, s, hd);
        var q = Random(rng, b * h * t * hd);
        var k = Random(rng, b * hkv * s * hd);
        var v = Random(rng, b * hkv * s * hd);
        var bias = Random(rng, h * t * s);
        int width = causal ? 5 : 9;
        var ones = Enumerable.Repeat(1f, h * width).ToArray();
        var options = new AttentionOptions { Causal = causal };
        var mask = new AttentionMask { KeyLengths = new[] { 9, 6 }, Bias = bias };
        var inputs = new AttentionInputs(q, Packed(h, t, hd), k, Packed(hkv, s, hd), v, Packed(hkv, s, hd));
        var plain = new float[b * h * t * hd];
        var urpe = new float[plain.Length];
        var lsePlain = new float[b * h * t];
        var lseUrpe = new float[b * h * t];
        Attention.Forward(shape, inputs, plain, Packed(h, t, hd), options, mask, lsePlain);
        ToeplitzAttention.Forward(shape, inputs, urpe, Packed(h, t, hd), new ToeplitzWeights(ones, width, !causal), options, mask, logSumExp: lseUrpe);
        Near(plain, urpe, 1e-5, 1e-5, "output");
        Near(lsePlain, lseUrpe, 1e-5, 1e-5, "log-sum-exp");
    }

    [Fact]
    public void BadArgumentsAreRejected()
    {
        var shape = new AttentionShape(1, 2, 1, 2, 2, 2);
        var x = new float[8];
        var kv = new float[4];
        void Run(float[] c, int width, bool bidirectional, float[]? alibi = null) =>
            ToeplitzAttention.Forward(shape, new AttentionInputs(x, Packed(2, 2, 2), kv, Packed(1, 2, 2), kv, Packed(1, 2, 2)), new float[8], Packed(2, 2, 2),
                new ToeplitzWeights(c, width, bidirectional), default, new AttentionMask { AlibiSlopes = alibi });
        Run(new float[6], 3, true);
        Run(new float[6], 3, false);
        Assert.Throws<ArgumentException>(() => Run(new float[5], 3, false));
        Assert.Throws<ArgumentException>(() => Run(new float[4], 2, true));
        Assert.Throws<ArgumentException>(() => Run(new float[6], 3, true, new float[2]));
    }
}
