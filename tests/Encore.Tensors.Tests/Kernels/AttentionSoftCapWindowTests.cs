using Encore.Tensors.Kernels;
using Xunit;

namespace Encore.Tensors.Tests.Kernels;

// Soft-capped scores (c·tanh(s/c), Gemma 2's attn_logit_softcapping) and sliding windows, on every width
// against the double reference, whose own backward is checked by finite differences.
public partial class AttentionTests
{
    [Fact]
    public void SoftCapAndWindowHandComputed()
    {
        // q = (2, 0), keys (1, 0), (0, 1), (2, 0), scale 1: raw scores 2, 0, 4. Cap 0.5: 0.5·tanh(4) = 0.49966465, 0, 0.5·tanh(8).
        var shape = new AttentionShape(1, 1, 1, 1, 3, 2);
        float[] q = { 2, 0 }, k = { 1, 0, 0, 1, 2, 0 }, v = { 1, 2, 3, 4, 5, 6 };
        var st1 = AttentionStrides.HeadMajor(1, 1, 2);
        var st3 = AttentionStrides.HeadMajor(1, 3, 2);
        double s0 = 0.5 * Math.Tanh(4), s2 = 0.5 * Math.Tanh(8);
        double e0 = Math.Exp(s0), e1 = 1, e2 = Math.Exp(s2), z = e0 + e1 + e2;
        float[] capped = { (float)((e0 * 1 + e1 * 3 + e2 * 5) / z), (float)((e0 * 2 + e1 * 4 + e2 * 6) / z) };
        Assert.Equal(0.49966465, s0, 1e-8);
        // Window 2, causal, query at position 2: keys 1 and 2 only; no cap: scores 0 and 4.
        double f1 = 1, f2 = Math.Exp(4), y = f1 + f2;
        float[] windowed = { (float)((f1 * 3 + f2 * 5) / y), (float)((f1 * 4 + f2 * 6) / y) };
        foreach (var w in Simd.Supported)
        {
            using (Simd.Override(w))
            {
                var o = new float[2];
                Attention.Forward(shape, new(q, st1, k, st3, v, st3), o, st1, new AttentionOptions { Scale = 1, SoftCap = 0.5f });
                AssertClose(capped, o, 1e-6, 1e-6, $"{w} capped");
                Attention.Forward(shape, new(q, st1, k, st3, v, st3), o, st1, new AttentionOptions { Scale = 1, Causal = true, QueryOffset = 2, Window = 2 });
                AssertClose(windowed, o, 1e-6, 1e-6, $"{w} windowed");
                // Bidirectional window 2 around position 0: keys 0 and 1.
                Attention.Forward(shape, new(q, st1, k, st3, v, st3), o, st1, new AttentionOptions { Scale = 1, Window = 2 });
                double g0 = Math.Exp(2), g1 = 1;
                AssertClose([(float)((g0 * 1 + g1 * 3) / (g0 + g1)), (float)((g0 * 2 + g1 * 4) / (g0 + g1))], o, 1e-6, 1e-6, $"{w} bidirectional window");
            }
        }
    }

    [Fact]
    public void SoftCapAndWindowEveryWidthMatchesReference()
    {
        var rng = new Random(4321);
        int done = 0;
        for (int trial = 0; done < 40 && trial < 1000; trial++)
        {
            int batch = rng.Next(1, 3);
            var (h, hkv) = HeadCounts[rng.Next(HeadCounts.Length)];
            int t = Lengths[rng.Next(1, Lengths.Length)], s = Lengths[rng.Next(1, Lengths.Length)];
            int hd = HeadDims[rng.Next(HeadDims.Length)];
            if ((long)batch * h * t * s * hd > 600_000) continue;
            var c = RandomCase(rng, batch, h, hkv, t, s, hd, kvCapacity: rng.Next(2) == 0);
            bool causal = rng.Next(3) != 0;
            c.Options = new AttentionOptions
            {
                Causal = causal,
                QueryOffset = causal ? s - t : rng.Next(0, 3),
                Scale = rng.Next(2) == 0 ? 1f : null,
                SoftCap = rng.Next(3) == 0 ? 0 : rng.Next(2) == 0 ? 0.7f : 3f,
                Window = rng.Next(4) == 0 ? 0 : rng.Next(1, 70),
            };
            // Rows of a batch cache at their own lengths, or right padding.
            if (rng.Next(2) == 0) c.KeyLengths = Enumerable.Range(0, batch).Select(_ => rng.Next(1, s + 1)).ToArray();
            if (rng.Next(4) == 0) c.Bias = RandomArray(rng, h * t * s);
            CheckAllWidths(c, $"B{batch} H{h}/{hkv} T{t} S{s} hd{hd} {c.Options}");
            done++;
        }
        Assert.Equal(40, done);
    }

    [Fact]
    public void SoftCapAndWindowBackwardReferenceMatchesFiniteDifferences()
    {
        var rng = new Random(73);
        var s = new AttentionShape(2, 2, 1, 5, 6, 3);
        foreach (bool causal in new[] { true, false })
        {
            var opt = new AttentionOptions { Causal = causal, QueryOffset = causal ? 1 : 0, Scale = 0.9f, SoftCap = 0.8f, Window = 3 };
            var lengths = new[] { 6, 4 };
            double[] Rand(int n) => Enumerable.Range(0, n).Select(_ => 2 * Normal(rng)).ToArray();
            double[] q = Rand(2 * 2 * 5 * 3), k = Rand(2 * 1 * 6 * 3), v = Rand(2 * 1 * 6 * 3), bias = Rand(2 * 5 * 6), w = Rand(2 * 2 * 5 * 3);
            var (dq, _, _, _) = AssertReferenceBackwardIsTheFiniteDifference(s, q, k, v, bias, w, opt, lengths, null, $"causal={causal} ");
            Assert.Contains(dq, x => Math.Abs(x) > 1e-3);
        }
    }

    [Fact]
    public void SoftCapAndWindowBackwardMatchesReferenceOnEveryWidth()
    {
        var rng = new Random(83);
        foreach (var (causal, window, cap, t, sl, hd) in new[] { (true, 5, 0.9f, 33, 33, 17), (false, 9, 2f, 20, 20, 8), (true, 0, 1.5f, 16, 40, 32), (true, 70, 0f, 40, 80, 16) })
        {
            var c = RandomCase(rng, 2, 4, 2, t, sl, hd, kvCapacity: true);
            c.Options = new AttentionOptions { Causal = causal, QueryOffset = causal ? sl - t : 0, SoftCap = cap, Window = window, Scale = 1f };
            c.Bias = RandomArray(rng, 4 * t * sl);
            c.KeyLengths = new[] { sl, sl - 3 };
            var s = c.Shape;
            var dOut = Operand.Random(rng, s.Batch, s.Heads, s.QueryLength, s.HeadDim);
            var dq0 = c.NewOutput(); var dk0 = Operand.Empty(s.Batch, s.KvHeads, s.KeyLength, s.HeadDim); var dv0 = Operand.Empty(s.Batch, s.KvHeads, s.KeyLength, s.HeadDim);
            var db0 = new float[c.Bias.Length];
            Attention.BackwardReference(s, new(c.Q.Data, c.Q.Strides, c.K.Data, c.K.Strides, c.V.Data, c.V.Strides), dOut.Data, dOut.Strides, new(dq0.Data, dq0.Strides, dk0.Data, dk0.Strides, dv0.Data, dv0.Strides), c.Options, c.Mask, db0);
            string label = $"causal={causal} W{window} cap{cap}";
            foreach (var w in Simd.Supported)
            {
                using (Simd.Override(w))
                {
                    var o = c.NewOutput();
                    var lse = new float[s.Batch * s.Heads * s.QueryLength];
                    Attention.Forward(s, new(c.Q.Data, c.Q.Strides, c.K.Data, c.K.Strides, c.V.Data, c.V.Strides), o.Data, o.Strides, c.Options, c.Mask, lse);
                    var dq = c.NewOutput(); var dk = Operand.Empty(s.Batch, s.KvHeads, s.KeyLength, s.HeadDim); var dv = Operand.Empty(s.Batch, s.KvHeads, s.KeyLength, s.HeadDim);
                    var db = new float[c.Bias.Length];
                    Attention.Backward(s, new(c.Q.Data, c.Q.Strides, c.K.Data, c.K.Strides, c.V.Data, c.V.Strides), o.Data, o.Strides, dOut.Data, dOut.Strides, lse, new(dq.Data, dq.Strides, dk.Data, dk.Strides, dv.Data, dv.Strides), c.Options, c.Mask, db);
                    AssertClose(dq0.Packed(), dq.Packed(), 2e-4, 2e-4, $"{label} {w} dQ");
                    AssertClose(dk0.Packed(), dk.Packed(), 2e-4, 2e-4, $"{label} {w} dK");
                    AssertClose(dv0.Packed(), dv.Packed(), 2e-4, 2e-4, $"{label} {w} dV");
                    AssertClose(db0, db, 2e-4, 2e-4, $"{label} {w} dBias");
                }
            }
        }
    }
}
