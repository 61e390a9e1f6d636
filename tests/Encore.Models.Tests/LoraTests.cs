using Encore.Autograd;
using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Models.Tests;

/// <summary>
/// Low-rank adapters: the LoRA linear against a double-precision reference and finite differences,
/// a fresh adapter (B = 0) leaving a model bit for bit as it was, merging, and per-row adapters in one
/// batch against each row alone.
/// </summary>
public class LoraTests
{
    static void Fill(Parameter p, Random r, double scale = 0.5)
    {
        var s = p.Value.AsSpan<float>();
        for (int i = 0; i < s.Length; i++) s[i] = (float)((r.NextDouble() * 2 - 1) * scale);
    }

    static void Randomize(LoraAdapter a, int seed, double scale = 0.5)
    {
        var r = new Random(seed);
        foreach (var p in a.Parameters.All) Fill(p, r, scale);
    }

    // y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ in double, from the raw values.
    static double[] Reference(float[] x, int m, float[] w, float[] b, float[] a, float[] bb, int k, int n, int rank, double s)
    {
        var y = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            var h = new double[rank];
            for (int j = 0; j < rank; j++)
                for (int p = 0; p < k; p++) h[j] += (double)x[i * k + p] * a[j * k + p];
            for (int o = 0; o < n; o++)
            {
                double v = b[o];
                for (int p = 0; p < k; p++) v += (double)x[i * k + p] * w[o * k + p];
                for (int j = 0; j < rank; j++) v += s * h[j] * bb[o * rank + j];
                y[i * n + o] = v;
            }
        }
        return y;
    }

    [Theory]
    [InlineData(7)]      // a decode step's few rows: dot products
    [InlineData(40)]     // prefill: two GEMMs
    public void LoraLinearMatchesADoublePrecisionReferenceWithAndWithoutATape(int m)
    {
        using var ps = new ParameterSet(seed: 1);
        int k = 6, n = 5;
        var layer = new LinearLayer(ps, "blk.q_proj", k, n, bias: true, std: 0.4f);
        var rnd = new Random(2);
        Fill(ps["blk.q_proj.bias"], rnd);
        using var adapter = LoraAdapter.Create(ps, new LoraOptions { Rank = 3, Alpha = 6, Targets = LoraTargets.Q });
        Randomize(adapter, 3);
        ps.Lora = new LoraAdapters(ps) { Active = adapter };
        var x = Enumerable.Range(0, m * k).Select(_ => (float)(rnd.NextDouble() * 2 - 1)).ToArray();
        var want = Reference(x, m, ps["blk.q_proj.weight"].Value.ToFloatArray(), ps["blk.q_proj.bias"].Value.ToFloatArray(),
            adapter.Parameters["blk.q_proj.lora_A.weight"].Value.ToFloatArray(), adapter.Parameters["blk.q_proj.lora_B.weight"].Value.ToFloatArray(), k, n, 3, 2.0);
        float[] inference, training;
        using (var xv = Var.Constant(Tensor.FromArray(x, [m, k])))
        using (var y = layer.Forward(xv)) inference = y.Value.ToFloatArray();
        using (var tape = Tape.Record())
            training = layer.Forward(Var.Constant(Tensor.FromArray(x, [m, k]))).Value.ToFloatArray();
        for (int i = 0; i < want.Length; i++)
        {
            Assert.True(Math.Abs(inference[i] - want[i]) < 1e-5, $"inference y[{i}] = {inference[i]}, reference {want[i]}");
            Assert.True(Math.Abs(training[i] - want[i]) < 1e-5, $"training y[{i}] = {training[i]}, reference {want[i]}");
        }
        // The delta is really there (a test of a zero delta could not fail).
        using (var _ = ps.Lora.SelectRows([null], 1))
        using (var xv = Var.Constant(Tensor.FromArray(x, [1, m, k])))
        using (var y = layer.Forward(xv))
            Assert.True(y.Value.ToFloatArray().Zip(inference).Max(p => Math.Abs(p.First - p.Second)) > 1e-3);
    }

    [Fact]
    public void LoraLinearGradientsMatchFiniteDifferences()
    {
        using var ps = new ParameterSet(seed: 4);
        int k = 5, n = 4, m = 3;
        var layer = new LinearLayer(ps, "blk.v_proj", k, n, bias: false, std: 0.5f);
        ps["blk.v_proj.weight"].Trainable = false;                           // the base is frozen, as in LoRA training
        using var adapter = LoraAdapter.Create(ps, new LoraOptions { Rank = 2, Alpha = 3, Targets = LoraTargets.V });
        Randomize(adapter, 5);                                             // B ≠ 0, or dA would be 0 and check nothing
        ps.Lora = new LoraAdapters(ps) { Active = adapter };
        var rnd = new Random(6);
        using var x = new Parameter("x", Tensor.FromArray(Enumerable.Range(0, m * k).Select(_ => (float)(rnd.NextDouble() * 2 - 1)).ToArray(), [m, k]));
        int[] targets = [1, 3, 0];
        Var Loss() => Ops.CrossEntropy(layer.Forward(Var.Of(x)), targets);

        var trained = adapter.Parameters.All.Append(x).ToArray();
        foreach (var p in trained) p.ZeroGrad();
        using (var tape = Tape.Record()) tape.Backward(Loss());
        Assert.Null(ps["blk.v_proj.weight"].Grad);                         // no gradient into the frozen base
        const double h = 1e-2;
        foreach (var p in trained)
        {
            var analytic = p.Grad!.ToFloatArray();
            Assert.Contains(analytic, g => g != 0);
            for (int i = 0; i < p.Length; i++)
            {
                double numeric = FiniteDifferences.Central(p, i, h, Loss);
                Assert.True(Math.Abs(analytic[i] - numeric) <= 2e-3 * (1 + Math.Abs(numeric)), $"d/d {p.Name}[{i}]: analytic {analytic[i]}, finite difference {numeric}");
            }
        }
    }

    static int[] Ids(Random r, int n, int v) => Enumerable.Range(0, n).Select(_ => r.Next(2, v)).ToArray();

    [Theory]
    [InlineData("tiny-encdec")]
    [InlineData("tiny-decoder")]
    public void AFreshAdapterLeavesTheModelExactlyAsItWas(string preset)
    {
        var cfg = Presets.Get(preset);
        using var m = LanguageModel.Create(cfg, seed: 7);
        var r = new Random(8);
        var src = Ids(r, 2 * 5, cfg.VocabSize);
        var tgt = Ids(r, 2 * 4, cfg.VocabSize);
        var baseTraining = TrainingLogits(m, src, tgt);
        var baseInference = InferenceLogits(m, src, tgt);
        using var adapter = LoraAdapter.Create(m, new LoraOptions { Rank = 4, Alpha = 16, Targets = LoraTargets.All }, seed: 9);
        Assert.Contains(adapter.Parameters.All, p => p.Value.ToFloatArray().Any(v => v != 0));   // A is random
        m.Adapters.Active = adapter;
        Assert.Equal(baseTraining, TrainingLogits(m, src, tgt));
        Assert.Equal(baseInference, InferenceLogits(m, src, tgt));
        Randomize(adapter, 10);
        Assert.NotEqual(baseInference, InferenceLogits(m, src, tgt));
    }

    static float[] TrainingLogits(LanguageModel m, int[] src, int[] tgt)
    {
        using var tape = Tape.Record();
        return Forward(m, src, tgt).Value.ToFloatArray();
    }

    static float[] InferenceLogits(LanguageModel m, int[] src, int[] tgt)
    {
        using var y = Forward(m, src, tgt);
        return y.Value.ToFloatArray();
    }

    static Var Forward(LanguageModel m, int[] src, int[] tgt) => m switch
    {
        EncoderDecoderModel ed => ed.Forward(src, null, tgt, 2),
        DecoderOnlyModel dec => dec.Forward(tgt, 2),
        _ => throw new ArgumentException("family"),
    };

    [Fact]
    public void MergedWeightsGiveTheLogitsOfBasePlusAdapter()
    {
        var cfg = Presets.Get("tiny-encdec");
        using var m = LanguageModel.Create(cfg, seed: 11);
        using var adapter = LoraAdapter.Create(m, new LoraOptions { Rank = 3, Alpha = 12, Targets = LoraTargets.All }, seed: 12);
        // A trained adapter's size: a delta of a few percent of the weights (a huge one would amplify float rounding through the layers).
        Randomize(adapter, 13, 0.1);
        m.Adapters.Active = adapter;
        var r = new Random(14);
        var src = Ids(r, 2 * 6, cfg.VocabSize);
        var tgt = Ids(r, 2 * 3, cfg.VocabSize);
        var withAdapter = InferenceLogits(m, src, tgt);
        m.Adapters.Active = null;
        var baseOnly = InferenceLogits(m, src, tgt);
        adapter.MergeIntoBase();
        var merged = InferenceLogits(m, src, tgt);
        Assert.True(withAdapter.Zip(baseOnly).Max(p => Math.Abs(p.First - p.Second)) > 1e-2, "the adapter changes the logits");
        for (int i = 0; i < merged.Length; i++)
            Assert.True(Math.Abs(merged[i] - withAdapter[i]) <= 1e-5, $"logit {i}: merged {merged[i]}, base + adapter {withAdapter[i]}");
    }

    [Theory]
    [InlineData("tiny-encdec")]
    [InlineData("tiny-decoder")]
    public void RowsWithDifferentAdaptersInOneBatchEachGetTheirAdaptersLogits(string preset)
    {
        var cfg = Presets.Get(preset);
        using var m = LanguageModel.Create(cfg, seed: 15);
        using var a1 = LoraAdapter.Create(m, new LoraOptions { Rank = 2, Alpha = 4, Targets = LoraTargets.All }, seed: 16);
        using var a2 = LoraAdapter.Create(m, new LoraOptions { Rank = 5, Alpha = 5, Targets = LoraTargets.Q | LoraTargets.V }, seed: 17);
        Randomize(a1, 18);
        Randomize(a2, 19);
        var r = new Random(20);
        int b = 4, s = 5, t = 3;
        var src = Ids(r, b * s, cfg.VocabSize);
        var tgt = Ids(r, b * t, cfg.VocabSize);
        LoraAdapter?[] rows = [a1, a2, null, a1];
        float[] mixed;
        using (m.Adapters.SelectRows(rows, b))
        using (var y = BatchForward(m, src, tgt, b)) mixed = y.Value.ToFloatArray();
        int per = t * cfg.VocabSize;
        for (int i = 0; i < b; i++)
        {
            m.Adapters.Active = rows[i];
            using var alone = BatchForward(m, src[(i * s)..((i + 1) * s)], tgt[(i * t)..((i + 1) * t)], 1);
            var want = alone.Value.ToFloatArray();
            for (int j = 0; j < per; j++)
                Assert.True(Math.Abs(mixed[i * per + j] - want[j]) <= 1e-5, $"row {i} logit {j}: in the mixed batch {mixed[i * per + j]}, alone {want[j]}");
        }
        m.Adapters.Active = null;
        // The rows do differ by adapter (otherwise the test shows nothing).
        using (var y = BatchForward(m, src[..s], tgt[..t], 1))
            Assert.True(y.Value.ToFloatArray().Zip(mixed[..per]).Max(p => Math.Abs(p.First - p.Second)) > 1e-3);
    }

    static Var BatchForward(LanguageModel m, int[] src, int[] tgt, int b) => m switch
    {
        EncoderDecoderModel ed => ed.Forward(src, null, tgt, b),
        DecoderOnlyModel dec => dec.Forward(tgt, b),
        _ => throw new ArgumentException("family"),
    };

    [Fact]
    public void AnAdapterMadeForAnotherModelIsRefused()
    {
        using var m1 = LanguageModel.Create(Presets.Get("tiny-encdec"), seed: 1);
        using var m2 = LanguageModel.Create(Presets.Get("tiny-encdec"), seed: 1);
        using var a = LoraAdapter.Create(m1, new LoraOptions());
        Assert.Throws<ArgumentException>(() => m2.Adapters.Active = a);
        Assert.Throws<ArgumentException>(() => m2.Adapters.SelectRows([a], 1));
    }

    [Fact]
    public void TargetsSelectTheirLayersOnly()
    {
        using var m = LanguageModel.Create(Presets.Get("tiny-encdec"), seed: 1);
        using var a = LoraAdapter.Create(m, new LoraOptions { Targets = LoraOptions.ParseTargets("q,ffn") });
        Assert.All(a.Modules, x => Assert.Contains(x.Leaf, new[] { "q_proj", "gate_proj", "up_proj", "down_proj" }));
        Assert.Contains(a.Modules, x => x.Scope.Contains("cross_attn.q_proj", StringComparison.Ordinal));
        Assert.Contains(a.Modules, x => x.Scope.StartsWith("encoder.", StringComparison.Ordinal));
        Assert.Equal(2 * a.Modules.Count, a.Parameters.All.Count);
        Assert.Throws<ArgumentException>(() => LoraOptions.ParseTargets("q,lm_head"));
        Assert.Throws<ArgumentException>(() => new LoraOptions { Rank = 0 }.Validate());
    }
}
