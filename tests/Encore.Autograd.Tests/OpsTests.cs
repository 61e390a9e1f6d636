using Encore.Tensors;

namespace Encore.Autograd.Tests;

public class OpsTests
{
    [Fact]
    public void LinearGradientsAreTheHandDerivedProducts()
    {
        // y = x·Wᵀ + b with x = [[1, 2]], W = [[3, 4], [5, 6]], b = [1, -1]: y = [[12, 16]].
        // Loss = Σ y ⊙ [1, 10]: dW = dyᵀx = [[1, 2], [10, 20]], db = [1, 10], dx = dy·W = [53, 64].
        using var x = new Parameter("x", Tensor.FromArray(new float[] { 1, 2 }, 1, 2));
        using var w = new Parameter("w", Tensor.FromArray(new float[] { 3, 4, 5, 6 }, 2, 2));
        using var b = new Parameter("b", Tensor.FromArray(new float[] { 1, -1 }, 2));
        using var weights = new Parameter("s", Tensor.FromArray(new float[] { 1, 10 }, 1, 2)) { Trainable = false };
        using (var tape = Tape.Record())
        {
            var y = Ops.Linear(Var.Of(x), Var.Of(w), Var.Of(b));
            Assert.Equal(new float[] { 12, 16 }, y.Value.ToFloatArray());
            var loss = Ops.Mul(y, Var.Of(weights));
            tape.Backward(loss);
        }
        Assert.Equal(new float[] { 1, 2, 10, 20 }, w.Grad!.ToFloatArray());
        Assert.Equal(new float[] { 1, 10 }, b.Grad!.ToFloatArray());
        Assert.Equal(new float[] { 53, 64 }, x.Grad!.ToFloatArray());
        Assert.Null(weights.Grad);
    }

    [Fact]
    public void LinearAndMatMulMatchFiniteDifferences()
    {
        var rng = new Random(1);
        var x = GradCheck.Random("x", rng, 2, 3, 5);
        var w = GradCheck.Random("w", rng, 4, 5);
        var b = GradCheck.Random("b", rng, 4);
        var m = GradCheck.Random("m", rng, 2, 4, 3);
        var mt = GradCheck.Random("mt", rng, 2, 6, 3);
        GradCheck.Check([x, w, b, m, mt], v =>
        {
            var y = Ops.Linear(v[0], v[1], v[2]);                 // (2, 3, 4)
            var z = Ops.MatMul(y, v[3]);                          // (2, 3, 3)
            var u = Ops.MatMul(z, v[4], transposeB: true);        // (2, 3, 6)
            return Ops.CrossEntropy(Ops.Reshape(u, 6, 6), [0, 5, 2, 3, -100, 1]);
        });
    }

    [Fact]
    public void ElementwiseOpsMatchFiniteDifferences()
    {
        var rng = new Random(2);
        var a = GradCheck.Random("a", rng, 3, 4);
        var b = GradCheck.Random("b", rng, 3, 4);
        var bias = GradCheck.Random("bias", rng, 4);
        GradCheck.Check([a, b, bias], v =>
            Ops.CrossEntropy(Ops.AddBias(Ops.Scale(Ops.Add(Ops.Mul(v[0], v[1]), v[0]), 1.5f), v[2]), [1, 2, 3]));
    }

    [Fact]
    public void GradientsPassedOnWithoutCopiesStayCorrectWhenVarsAreShared()
    {
        // Add hands its output gradient to its first input and Reshape to its input without copying;
        // every later contribution to those inputs then adds into the shared buffer. x + x, a var that
        // feeds an Add and a Linear, and chains of Reshape and Add cover the ways that could go wrong.
        var rng = new Random(5);
        var a = GradCheck.Random("a", rng, 2, 3, 4);
        var w = GradCheck.Random("w", rng, 4, 4);
        GradCheck.Check([a, w], v =>
        {
            var h = Ops.Linear(v[0], v[1]);                          // h feeds the Add below and the Mul
            var r = Ops.Add(h, h);                                   // 2h
            var s = Ops.Reshape(Ops.Add(r, Ops.Mul(h, v[0])), 6, 4); // 2h + h⊙a, viewed as (6, 4)
            var t = Ops.Add(Ops.Reshape(s, 2, 3, 4), v[0]);
            return Ops.CrossEntropy(Ops.Reshape(Ops.Activation(t, Encore.Tensors.Kernels.ActivationKind.GeluTanh), 6, 4), [0, 1, 2, 3, 1, 2]);
        });
    }

    [Fact]
    public void CrossEntropyMatchesTheHandComputedValueWithSmoothingAndIgnore()
    {
        // Row 0: logits [0, ln 3] → p = [1/4, 3/4]; target 1: −ln(3/4).
        // With ε = 0.2: 0.8·(−ln ¾) + 0.2·mean(−ln ¼, −ln ¾). Row 1 is ignored.
        using var tape = Tape.Record();
        using var logits = new Parameter("l", Tensor.FromArray(new float[] { 0, MathF.Log(3), 5, 5 }, 2, 2));
        var loss = Ops.CrossEntropy(Var.Of(logits), [1, -100], new CrossEntropyOptions { LabelSmoothing = 0.2f });
        double expected = 0.8 * -Math.Log(0.75) + 0.2 * 0.5 * (-Math.Log(0.25) - Math.Log(0.75));
        Assert.Equal(expected, loss.Value.ToFloatArray()[0], 5);
        tape.Backward(loss);
        var g = logits.Grad!.ToFloatArray();
        // d/dlogit = p − (0.8·onehot + 0.1): [0.25 − 0.1, 0.75 − 0.9]; the ignored row gets nothing.
        Assert.Equal(0.15f, g[0], 5);
        Assert.Equal(-0.15f, g[1], 5);
        Assert.Equal(0f, g[2]);
        Assert.Equal(0f, g[3]);
    }

    [Fact]
    public void AnExplicitIgnoreIndexOfZeroIsKeptAndNoOptionsIgnoreMinus100()
    {
        // Logits [0, ln 3]: target 1 costs −ln ¾, target 0 costs −ln ¼.
        using var l = Var.Constant(Tensor.FromArray(new float[] { 0, MathF.Log(3), 0, MathF.Log(3) }, 2, 2));
        Assert.Equal(-Math.Log(0.75), Ops.CrossEntropy(l, [1, 0], new CrossEntropyOptions { IgnoreIndex = 0 }).Value.ToFloatArray()[0], 5);
        Assert.Equal(-0.5 * (Math.Log(0.75) + Math.Log(0.25)), Ops.CrossEntropy(l, [1, 0]).Value.ToFloatArray()[0], 5);
        Assert.Equal(-Math.Log(0.25), Ops.CrossEntropy(l, [-100, 0]).Value.ToFloatArray()[0], 5);
    }

    [Fact]
    public void CrossEntropyRejectsTargetsOutsideTheVocabulary()
    {
        using var l = Var.Constant(Tensor.Zeros(DType.F32, 2, 3));
        var e = Assert.Throws<ArgumentException>(() => Ops.CrossEntropy(l, [0, 3]));
        Assert.Contains("target 3", e.Message);
    }

    [Fact]
    public void KlDivergenceIsZeroForEqualLogitsAndMatchesFiniteDifferences()
    {
        using (var tape = Tape.Record())
        {
            var s = Var.Constant(Tensor.FromArray(new float[] { 1, 2, 3 }, 1, 3));
            var t = Var.Constant(Tensor.FromArray(new float[] { 1, 2, 3 }, 1, 3));
            Assert.Equal(0f, Ops.KlDivergence(s, t, 2f).Value.ToFloatArray()[0], 6);
        }
        var rng = new Random(3);
        var student = GradCheck.Random("s", rng, 4, 5);
        var teacher = GradCheck.Random("t", rng, 4, 5);
        teacher.Trainable = false;
        GradCheck.Check([student, teacher], v => Ops.KlDivergence(v[0], v[1], 2f, [true, false, true, true]));
        // Hand value: τ = 1, p_T = [½, ½], p_S = softmax([0, ln 3]) = [¼, ¾]:
        // KL = ½ ln(½/¼) + ½ ln(½/¾) = ½ ln 2 + ½ ln ⅔.
        using var tape2 = Tape.Record();
        var kl = Ops.KlDivergence(Var.Constant(Tensor.FromArray(new float[] { 0, MathF.Log(3) }, 1, 2)),
            Var.Constant(Tensor.FromArray(new float[] { 0, 0 }, 1, 2)), 1f);
        Assert.Equal(0.5 * Math.Log(2) + 0.5 * Math.Log(2.0 / 3), kl.Value.ToFloatArray()[0], 5);
    }

    [Fact]
    public void GradientsAccumulateAcrossMicroBatchesUntilZeroed()
    {
        using var w = new Parameter("w", Tensor.FromArray(new float[] { 2 }, 1, 1));
        for (int i = 0; i < 3; i++)
        {
            using var tape = Tape.Record();
            var x = Var.Constant(Tensor.FromArray(new float[] { 1 }, 1, 1));
            tape.Backward(Ops.Linear(x, Var.Of(w)));
        }
        Assert.Equal(3f, w.Grad!.ToFloatArray()[0]);
        w.ZeroGrad();
        Assert.Equal(0f, w.Grad!.ToFloatArray()[0]);
    }

    [Fact]
    public void WithoutATapeNothingIsRecordedAndVarsBelongToTheCaller()
    {
        using var w = new Parameter("w", Tensor.FromArray(new float[] { 2 }, 1, 1));
        using var x = Var.Constant(Tensor.FromArray(new float[] { 3 }, 1, 1));
        using var y = Ops.Linear(x, Var.Of(w));
        Assert.False(y.RequiresGrad);
        Assert.Equal(6f, y.Value.ToFloatArray()[0]);
        Assert.Null(Tape.Current);
    }

    [Fact]
    public void DisposingTheTapeReleasesItsActivations()
    {
        using var w = new Parameter("w", Tensor.FromArray(new float[] { 2, 1 }, 1, 2));
        Var y;
        using (var tape = Tape.Record())
        {
            var x = Var.Constant(Tensor.FromArray(new float[] { 3, 4 }, 1, 2));
            y = Ops.Linear(x, Var.Of(w));
            tape.Backward(y);
        }
        Assert.True(y.Value.Storage.IsReleased);
        Assert.False(w.Value.Storage.IsReleased);
        Assert.Equal(new float[] { 3, 4 }, w.Grad!.ToFloatArray());
    }
}

public class AttentionOpTests
{
    [Fact]
    public void AttentionWithGqaCausalMaskAndRelativeBiasMatchesFiniteDifferences()
    {
        var rng = new Random(4);
        // B=2, T=3, S=3, H=4, Hkv=2, hd=2
        var q = GradCheck.Random("q", rng, 2, 3, 8);
        var k = GradCheck.Random("k", rng, 2, 3, 4);
        var v = GradCheck.Random("v", rng, 2, 3, 4);
        var table = GradCheck.Random("rel", rng, 8, 4);
        var buckets = new int[9];
        Encore.Tensors.Kernels.PositionBias.T5Buckets(buckets, 3, 3, bidirectional: false, numBuckets: 8, maxDistance: 16);
        var target = Enumerable.Range(0, 2 * 3 * 8).Select(i => (float)Math.Sin(i)).ToArray();
        GradCheck.Check([q, k, v, table], x =>
        {
            var bias = Ops.RelativePositionBias(x[3], buckets, 3, 3);
            var y = Ops.Attention(x[0], x[1], x[2], 4, 2, new Encore.Tensors.Kernels.AttentionOptions { Causal = true },
                new AttentionMaskOptions { KeyLengths = [3, 2] }, bias);
            var w = Var.Constant(Encore.Tensors.Tensor.FromArray(target, 2, 3, 8));
            return Ops.Mul(y, w);
        });
    }

    [Fact]
    public void AttentionOfOneKeyReturnsItsValue()
    {
        using var q = Var.Constant(Encore.Tensors.Tensor.FromArray(new float[] { 1, 2 }, 1, 1, 2));
        using var k = Var.Constant(Encore.Tensors.Tensor.FromArray(new float[] { 3, 4 }, 1, 1, 2));
        using var v = Var.Constant(Encore.Tensors.Tensor.FromArray(new float[] { 5, 6 }, 1, 1, 2));
        using var y = Ops.Attention(q, k, v, 1, 1);
        Assert.Equal(new float[] { 5, 6 }, y.Value.ToFloatArray());
    }
}

public class DropoutTests
{
    [Fact]
    public void DropoutKeepsAboutOneMinusPScalesAndIsReproducible()
    {
        var data = Enumerable.Repeat(1f, 20000).ToArray();
        using var x = new Parameter("x", Encore.Tensors.Tensor.FromArray(data, 20000));
        float[] first;
        using (var tape = Tape.Record())
        {
            var y = Ops.Dropout(Var.Of(x), 0.25f, seed: 7);
            first = y.Value.ToFloatArray();
            tape.Backward(y);
        }
        int kept = first.Count(v => v != 0);
        Assert.InRange(kept, 14700, 15300);               // 15000 ± ~5σ
        Assert.All(first.Where(v => v != 0), v => Assert.Equal(1f / 0.75f, v));
        // The gradient is the same mask, scaled.
        var g = x.Grad!.ToFloatArray();
        for (int i = 0; i < g.Length; i++) Assert.Equal(first[i], g[i]);
        using (var tape = Tape.Record())
        {
            Assert.Equal(first, Ops.Dropout(Var.Of(x), 0.25f, seed: 7).Value.ToFloatArray());
            Assert.NotEqual(first, Ops.Dropout(Var.Of(x), 0.25f, seed: 8).Value.ToFloatArray());
        }
        // Outside a tape (inference) dropout is the identity.
        using var c = Var.Constant(Encore.Tensors.Tensor.FromArray(data, 20000));
        Assert.Same(c, Ops.Dropout(c, 0.5f, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Ops.Dropout(c, 1f, 1));
    }
}

public class LayerOpTests
{
    static readonly int[] Targets6 = [0, 3, 1, 2, 3, 0];

    [Fact]
    public void EmbeddingNormsAndActivationsMatchFiniteDifferences()
    {
        var rng = new Random(6);
        var table = GradCheck.Random("table", rng, 5, 4);
        var g = GradCheck.Random("g", rng, 4);
        var beta = GradCheck.Random("beta", rng, 4);
        var rw = GradCheck.Random("rw", rng, 4);
        int[] ids = [1, 4, 0, 4, 2, 3];
        foreach (var kind in new[] { Encore.Tensors.Kernels.ActivationKind.GeluTanh, Encore.Tensors.Kernels.ActivationKind.GeluErf, Encore.Tensors.Kernels.ActivationKind.Silu })
        {
            GradCheck.Check([table, g, beta, rw], v =>
            {
                var e = Ops.Embedding(v[0], ids, 2, 3);                  // (2, 3, 4)
                var ln = Ops.LayerNorm(e, v[1], v[2], 1e-5f);
                var act = Ops.Activation(ln, kind);
                var rn = Ops.RmsNorm(Ops.Add(act, e), v[3], 1e-6f);
                return Ops.CrossEntropy(Ops.Reshape(rn, 6, 4), Targets6);
            });
        }
    }

    [Fact]
    public void EmbeddingMixIsTheWeightedSumOfRowsAndMatchesFiniteDifferences()
    {
        var rng = new Random(8);
        var table = GradCheck.Random("table", rng, 5, 4);
        // Two positions of three tokens each; token 4 twice in the second (its weights add).
        int[] ids = [1, 3, 0, 4, 2, 4];
        float[] weights = [0.5f, 0.3f, 0.2f, 0.6f, 0.1f, 0.3f];
        using (var y = Ops.EmbeddingMix(Var.Of(table), ids, weights, 1, 2, 3))        // (1, 2, 4)
        {
            var t = table.Value.ToFloatArray();
            var got = y.Value.ToFloatArray();
            for (int p = 0; p < 2; p++)
                for (int j = 0; j < 4; j++)
                {
                    double expected = 0;
                    for (int m = 0; m < 3; m++) expected += weights[p * 3 + m] * t[ids[p * 3 + m] * 4 + j];
                    Assert.Equal(expected, got[p * 4 + j], 5);
                }
        }
        // One token of weight 1 is the plain embedding, bit for bit.
        using (var mixed = Ops.EmbeddingMix(Var.Of(table), [3, 1], [1f, 1f], 1, 2, 1))
        using (var plain = Ops.Embedding(Var.Of(table), [3, 1], 1, 2))
            Assert.Equal(plain.Value.ToFloatArray(), mixed.Value.ToFloatArray());
        GradCheck.Check([table], v => Ops.CrossEntropy(Ops.Reshape(Ops.EmbeddingMix(v[0], ids, weights, 1, 2, 3), 2, 4), [1, 3]));
    }

    [Fact]
    public void GatedRopeSoftmaxAndAlibiMatchFiniteDifferences()
    {
        var rng = new Random(7);
        var a = GradCheck.Random("a", rng, 6, 8);
        var b = GradCheck.Random("b", rng, 6, 8);
        var slopes = GradCheck.Random("slopes", rng, 2);
        var cache = new Encore.Tensors.Kernels.RopeCache(4, 16);
        var positions = new float[6];
        Encore.Tensors.Kernels.Rope.CenteredPositions(6, positions);
        GradCheck.Check([a, b, slopes], v =>
        {
            var gl = Ops.Gated(v[0], v[1], Encore.Tensors.Kernels.ActivationKind.Silu);     // (6, 8) = (rows, 2 heads · 4)
            var r = Ops.Rope(gl, cache, heads: 2, positions);
            var bias = Ops.Reshape(Ops.AlibiBias(v[2], 3, 8), 6, 8);
            var sm = Ops.Softmax(Ops.Add(r, bias));
            return Ops.CrossEntropy(sm, Targets6);
        });
    }

    [Fact]
    public void RmsNormOfThreeFourIsTheHandValue()
    {
        using var x = Var.Constant(Encore.Tensors.Tensor.FromArray(new float[] { 3, 4 }, 1, 2));
        using var y = Ops.RmsNorm(x, null, 0f);
        float r = MathF.Sqrt(12.5f);
        Assert.Equal(new[] { 3 / r, 4 / r }, y.Value.ToFloatArray());
    }
}

public class ReleaseTests
{
    [Fact]
    public void BackwardFreesEachActivationOnceItsOwnStepHasRun()
    {
        using var w = new Parameter("w", Encore.Tensors.Tensor.FromArray(new float[] { 1, 2, 3, 4 }, 2, 2));
        using var tape = Tape.Record();
        var x = Var.Constant(Encore.Tensors.Tensor.FromArray(new float[] { 1, 1 }, 1, 2));
        var h = Ops.Linear(x, Var.Of(w));
        var a = Ops.Activation(h, Encore.Tensors.Kernels.ActivationKind.Silu);
        var loss = Ops.CrossEntropy(a, [1]);
        tape.Backward(loss);
        Assert.True(h.Value.Storage.IsReleased);
        Assert.True(a.Value.Storage.IsReleased);
        Assert.False(loss.Value.Storage.IsReleased);      // the loss stays readable
        Assert.NotNull(w.Grad);
    }

    [Fact]
    public void ActivationsStayReadableWhenReleaseIsOff()
    {
        using var w = new Parameter("w", Encore.Tensors.Tensor.FromArray(new float[] { 1, 2, 3, 4 }, 2, 2));
        using var tape = Tape.Record();
        tape.ReleaseActivations = false;
        var h = Ops.Linear(Var.Constant(Encore.Tensors.Tensor.FromArray(new float[] { 1, 1 }, 1, 2)), Var.Of(w));
        tape.Backward(Ops.CrossEntropy(h, [0]));
        Assert.Equal(new float[] { 3, 7 }, h.Value.ToFloatArray());
    }
}

public class PositionOpTests
{
    [Theory]
    [InlineData(2, 1)]
    [InlineData(4, 2)]
    public void ComRopeMatchesFiniteDifferencesInTheGeneratorTheScaleAndTheInput(int block, int kvHeads)
    {
        // x (B=2, T=3, H·hd) with H = 2, hd = 4; rows at positions 0, 1.5, −2 and 3, 1, 2.5 (six slots),
        // GQA when kvHeads = 1 (both heads turn by kv head 0's rotations).
        var rng = new Random(block * 10 + kvHeads);
        int heads = 2, hd = 4, blocks = hd / block;
        var x = GradCheck.Random("x", rng, 2, 3, heads * hd);
        var basis = GradCheck.Random("basis", rng, kvHeads, blocks, block, block);
        var scale = GradCheck.Random("scale", rng, kvHeads, blocks);
        // Generators kept small (p·λ·‖S‖ of a few units): the central difference's O(h²) error grows with
        // the cube of that, and the test is about the analytic gradient, not the step size.
        var bs = basis.Value.AsSpan<float>();
        for (int i = 0; i < bs.Length; i++) bs[i] *= 0.3f;
        float[] positions = [0, 1.5f, -2, 3, 1, 2.5f];
        int[] slots = [0, 1, 2, 3, 4, 5];
        var target = Enumerable.Range(0, 2 * 3 * heads * hd).Select(i => (float)Math.Cos(i)).ToArray();
        GradCheck.Check([x, basis, scale], v =>
        {
            var r = Ops.ComRopeRotations(v[1], v[2], positions);       // (6, G, nb, b, b)
            var y = Ops.ComRope(v[0], r, heads, slots);                // (2, 3, H·hd)
            var y2 = Ops.ComRope(Ops.Scale(v[0], 0.5f), r, heads, slots);   // a second use of the same rotations
            return Ops.Mul(Ops.Add(Ops.Mul(y, y2), y), Var.Constant(Encore.Tensors.Tensor.FromArray(target, 2, 3, heads * hd)));
        }, tol: 3e-3);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ToeplitzAttentionMatchesFiniteDifferencesInQkvTheCoefficientsAndTheBias(bool causal)
    {
        // B=2, T=S=4, H=4, Hkv=2, hd=2; M = 2, so distance 3 shares the coefficient of 2.
        var rng = new Random(causal ? 7 : 8);
        var q = GradCheck.Random("q", rng, 2, 4, 8);
        var k = GradCheck.Random("k", rng, 2, 4, 4);
        var v = GradCheck.Random("v", rng, 2, 4, 4);
        var c = GradCheck.Random("c", rng, 4, causal ? 3 : 5);
        var bias = GradCheck.Random("bias", rng, 4, 4, 4);
        var target = Enumerable.Range(0, 2 * 4 * 8).Select(i => (float)Math.Sin(i)).ToArray();
        GradCheck.Check([q, k, v, c, bias], x =>
        {
            var y = Ops.ToeplitzAttention(x[0], x[1], x[2], x[3], bidirectional: !causal, 4, 2,
                new Encore.Tensors.Kernels.AttentionOptions { Causal = causal }, new AttentionMaskOptions { KeyLengths = [4, 3] }, x[4]);
            return Ops.Mul(y, Var.Constant(Encore.Tensors.Tensor.FromArray(target, 2, 4, 8)));
        });
    }
}
