using System.Text.Json;
using Encore.Autograd.Optim;
using Encore.Tensors;

namespace Encore.Autograd.Tests;

/// <summary>Optimizer trajectories against PyTorch (tools/reference/optimizers.py).</summary>
public class OptimizerTests
{
    sealed record Fixture(
        Dictionary<string, int[]> Shapes,
        Dictionary<string, float[]> Init,
        Dictionary<string, float[]>[] Grads,
        double[] Lrs,
        Dictionary<string, Dictionary<string, float[]>[]> Cases);

    static readonly Fixture F = JsonSerializer.Deserialize<Fixture>(
        File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "optimizers.json")),
        new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;

    static Parameter[] MakeParameters() =>
        F.Shapes.Select(kv => new Parameter(kv.Key, Tensor.FromArray((float[])F.Init[kv.Key].Clone(), kv.Value))).ToArray();

    static void Follow(string name, Func<Parameter[], Optimizer> make, bool useLrs, double tol)
    {
        var ps = MakeParameters();
        using var opt = make(ps);
        var expected = F.Cases[name];
        for (int step = 0; step < expected.Length; step++)
        {
            if (useLrs) opt.LearningRate = F.Lrs[step];
            opt.ZeroGrad();
            foreach (var p in ps) p.AccumulateGrad(F.Grads[step][p.Name]);
            opt.Update();
            foreach (var p in ps)
            {
                var got = p.Value.ToFloatArray();
                var want = expected[step][p.Name];
                for (int i = 0; i < want.Length; i++)
                    Assert.True(Math.Abs(got[i] - want[i]) <= tol * (1 + Math.Abs(want[i])),
                        $"{name} step {step + 1} {p.Name}[{i}]: {got[i]} vs PyTorch {want[i]}");
            }
        }
        foreach (var p in ps) p.Dispose();
    }

    [Fact]
    public void AdamWMatchesPyTorch() =>
        Follow("adamw", ps => new AdamW(ps, new AdamWOptions { WeightDecay = 0.1 }), useLrs: true, tol: 2e-6);

    [Fact]
    public void SgdMomentumMatchesPyTorch() =>
        Follow("sgd_momentum", ps => new Sgd(ps, new SgdOptions { WeightDecay = 0.01 }), useLrs: true, tol: 2e-6);

    [Fact]
    public void SgdNesterovMatchesPyTorch() =>
        Follow("sgd_nesterov", ps => new Sgd(ps, new SgdOptions { WeightDecay = 0.01, Nesterov = true }), useLrs: true, tol: 2e-6);

    [Fact]
    public void AdafactorWithExternalLearningRateMatchesTransformers() =>
        Follow("adafactor_external_lr", ps => new Adafactor(ps), useLrs: true, tol: 1e-5);

    [Fact]
    public void AdafactorWithRelativeStepAndMomentumMatchesTransformers() =>
        Follow("adafactor_relative", ps => new Adafactor(ps, new AdafactorOptions
        {
            RelativeStep = true, ScaleParameter = true, Beta1 = 0.9, WeightDecay = 0.01,
        }), useLrs: false, tol: 1e-5);

    [Fact]
    public void AdamWFirstStepIsSignTimesLearningRate()
    {
        // With bias correction the first Adam step is lr·g/(|g| + ε') ≈ lr·sign(g).
        using var p = new Parameter("w", Tensor.FromArray(new float[] { 1, 1, 1, 1 }, 2, 2));
        p.AccumulateGrad([0.5f, -2f, 1e-3f, -7f]);
        using var opt = new AdamW([p], new AdamWOptions { WeightDecay = 0 }) { LearningRate = 0.1 };
        opt.Update();
        var w = p.Value.ToFloatArray();
        Assert.Equal(new[] { 0.9f, 1.1f, 0.9f, 1.1f }, w.Select(x => MathF.Round(x, 5)).ToArray());
    }

    [Fact]
    public void StateRoundTripsAndResumedTrajectoryIsBitIdentical()
    {
        var a = MakeParameters();
        var b = MakeParameters();
        using var optA = new AdamW(a);
        using var optB = new AdamW(b);
        void Step(Optimizer o, Parameter[] ps, int i)
        {
            o.LearningRate = F.Lrs[i];
            o.ZeroGrad();
            foreach (var p in ps) p.AccumulateGrad(F.Grads[i][p.Name]);
            o.Update();
        }
        for (int i = 0; i < 2; i++) { Step(optA, a, i); Step(optB, b, i); }
        // Restart B from A's state into a fresh optimizer and continue both.
        var (step, state) = optA.SaveState();
        using var optC = new AdamW(b);
        optC.LoadState(step, state);
        for (int i = 2; i < 5; i++) { Step(optA, a, i); Step(optC, b, i); }
        for (int k = 0; k < a.Length; k++)
            Assert.Equal(a[k].Value.ToFloatArray(), b[k].Value.ToFloatArray());
        Assert.Throws<ArgumentException>(() => optC.LoadState(1, new Dictionary<string, Tensor> { ["nope.exp_avg"] = Tensor.Zeros(DType.F32, 1) }));
    }

    [Fact]
    public void BFloat16MomentsTrainLikeBinary32OnesAndResumeBitIdentically()
    {
        // Least squares on a fixed random problem: the bf16-moment AdamW reaches the loss of the binary32
        // one, keeps its moments as bf16 tensors (half the bytes), and a run restored from its saved state,
        // or from a binary32 state converted on load, continues as checkpointing promises.
        var rng = new Random(5);
        const int rows = 64, cols = 32;
        var a = Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var target = Enumerable.Range(0, rows).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        double Loss(Parameter p) => Residuals(p).Sum(r => r * r) / rows;
        double[] Residuals(Parameter p)
        {
            var x = p.Value.ToFloatArray();
            return Enumerable.Range(0, rows).Select(i => Enumerable.Range(0, cols).Sum(j => (double)a[i * cols + j] * x[j]) - target[i]).ToArray();
        }
        void Step(Optimizer o, Parameter p)
        {
            var r = Residuals(p);
            var grad = Enumerable.Range(0, cols).Select(j => (float)(2.0 / rows * Enumerable.Range(0, rows).Sum(i => r[i] * a[i * cols + j]))).ToArray();
            o.ZeroGrad();
            p.AccumulateGrad(grad);
            o.Update();
        }
        Parameter Fresh() => new("x", Tensor.Zeros(DType.F32, cols));
        using var p32 = Fresh();
        using var p16 = Fresh();
        using var o32 = new AdamW([p32], new AdamWOptions { WeightDecay = 0 }) { LearningRate = 1e-2 };
        using var o16 = new AdamW([p16], new AdamWOptions { WeightDecay = 0, Moments = DType.BF16 }) { LearningRate = 1e-2 };
        double start = Loss(p32);
        for (int i = 0; i < 400; i++) { Step(o32, p32); Step(o16, p16); }
        double l32 = Loss(p32), l16 = Loss(p16);
        Assert.True(l32 < 0.6 * start, $"f32 moments: {start} → {l32}");
        Assert.InRange(l16, 0.9 * l32, 1.1 * l32);
        var (step, state) = o16.SaveState();
        Assert.All(state.Values, t => Assert.Equal(DType.BF16, t.DType));
        Assert.Equal(2 * 2 * cols, state.Values.Sum(t => t.ByteLength));

        using var resumed = Fresh();
        p16.Value.AsReadOnlySpan<float>().CopyTo(resumed.Value.AsSpan<float>());
        using var oResumed = new AdamW([resumed], new AdamWOptions { WeightDecay = 0, Moments = DType.BF16 }) { LearningRate = 1e-2 };
        oResumed.LoadState(step, state);
        for (int i = 0; i < 5; i++) { Step(o16, p16); Step(oResumed, resumed); }
        Assert.Equal(p16.Value.ToFloatArray(), resumed.Value.ToFloatArray());

        // A binary32 state loaded into a bf16-moment optimizer is rounded once and training goes on.
        var (step32, state32) = o32.SaveState();
        using var switched = Fresh();
        p32.Value.AsReadOnlySpan<float>().CopyTo(switched.Value.AsSpan<float>());
        using var oSwitched = new AdamW([switched], new AdamWOptions { WeightDecay = 0, Moments = DType.BF16 }) { LearningRate = 1e-2 };
        oSwitched.LoadState(step32, state32);
        for (int i = 0; i < 20; i++) Step(oSwitched, switched);
        Assert.All(oSwitched.SaveState().Tensors.Values, t => Assert.Equal(DType.BF16, t.DType));
        Assert.True(Loss(switched) <= 1.05 * Loss(p32));

        Assert.Throws<ArgumentException>(() => new AdamW([Fresh()], new AdamWOptions { Moments = DType.F16 }));
    }

    [Fact]
    public void NormsAndBiasesAreNotDecayedByDefault()
    {
        using var gain = new Parameter("ln.weight", Tensor.FromArray(new float[] { 1, 1 }, 2));
        using var w = new Parameter("w", Tensor.FromArray(new float[] { 1, 1 }, 1, 2));
        Assert.False(gain.Decay);
        Assert.True(w.Decay);
    }
}

/// <summary>Parameters frozen for some steps (a cross-attention-only warm-up), then trained.</summary>
public class FrozenParameterTests
{
    static readonly float[][] Grads = [[0.5f, -1f], [0.25f, 2f], [-1f, 0.5f], [2f, -0.25f]];

    // Trains "w" on Grads[from..] with a fresh optimizer: the trajectory an unfrozen parameter must follow.
    static float[] Fresh(Func<Parameter[], Optimizer> make, int from)
    {
        using var w = new Parameter("w", Tensor.FromArray(new float[] { 1, -1 }, 1, 2));
        using var opt = make([w]);
        opt.LearningRate = 0.1;
        for (int s = from; s < Grads.Length; s++)
        {
            opt.ZeroGrad();
            w.AccumulateGrad(Grads[s]);
            opt.Update();
        }
        return w.Value.ToFloatArray();
    }

    [Theory]
    [InlineData("adamw")]
    [InlineData("adafactor")]
    public void AParameterFrozenForKStepsThenTrainedFollowsAFreshOptimizer(string kind)
    {
        Func<Parameter[], Optimizer> make = kind == "adamw"
            ? ps => new AdamW(ps, new AdamWOptions { WeightDecay = 0.1 })
            : ps => new Adafactor(ps, new AdafactorOptions { RelativeStep = true });
        const int k = 2;
        using var w = new Parameter("w", Tensor.FromArray(new float[] { 1, -1 }, 1, 2));
        using var other = new Parameter("other", Tensor.FromArray(new float[] { 3 }, 1));
        using var opt = make([w, other]);
        opt.LearningRate = 0.1;
        for (int s = 0; s < Grads.Length; s++)
        {
            if (s == k)
            {
                // What a checkpoint keeps carries the frozen count across a resume.
                var (step, state) = opt.SaveState();
                var copy = state.ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
                opt.LoadState(step, copy);
                foreach (var t in copy.Values) t.Dispose();
            }
            w.Trainable = s >= k;
            opt.ZeroGrad();
            if (w.Trainable) w.AccumulateGrad(Grads[s]);
            other.AccumulateGrad([1f]);
            opt.Update();
            if (s < k) Assert.Equal(new float[] { 1, -1 }, w.Value.ToFloatArray());   // frozen: no update, no weight decay
            // AdamW's first update is lr·sign(g) after decay, 1·(1 − 0.1·0.1) + 0.1 = 1.09 for g = −1; an
            // uncorrected step k+1 would move it 0.1·0.1/√0.001 ≈ 0.32 instead.
            if (s == k && kind == "adamw") Assert.Equal(1.09f, w.Value.ToFloatArray()[0], 4);
        }
        var want = Fresh(make, k);
        var got = w.Value.ToFloatArray();
        for (int i = 0; i < want.Length; i++) Assert.Equal(want[i], got[i], 6);
    }
}

public class ScheduleAndClipTests
{
    [Fact]
    public void WarmupThenCosineHitsTheKnownPoints()
    {
        var s = new LrSchedule { Peak = 1.0, WarmupSteps = 10, TotalSteps = 110, Decay = LrDecay.Cosine };
        Assert.Equal(0.0, s.At(1), 12);          // HF: lr_lambda(0) = 0
        Assert.Equal(0.5, s.At(6), 12);          // halfway through warm-up
        Assert.Equal(1.0, s.At(11), 12);         // peak right after warm-up
        Assert.Equal(0.5, s.At(61), 12);         // cos(π/2): half
        Assert.Equal(0.0, s.At(111), 12);
        var lin = s with { Decay = LrDecay.Linear, MinRatio = 0.1 };
        Assert.Equal(0.55, lin.At(61), 12);
        var inv = s with { Decay = LrDecay.InverseSqrt };
        Assert.Equal(Math.Sqrt(10.0 / 40), inv.At(41), 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.At(0));
    }

    [Fact]
    public void ClipGlobalNormScalesAllGradientsTogether()
    {
        using var a = new Parameter("a", Tensor.FromArray(new float[] { 0, 0 }, 1, 2));
        using var b = new Parameter("b", Tensor.FromArray(new float[] { 0 }, 1));
        a.AccumulateGrad([3, 0]);
        b.AccumulateGrad([4]);
        double norm = GradClip.ClipGlobalNorm([a, b], 1.0);
        Assert.Equal(5.0, norm, 12);
        Assert.Equal(0.6f, a.Grad!.ToFloatArray()[0], 5);
        Assert.Equal(0.8f, b.Grad!.ToFloatArray()[0], 5);
        // Below the threshold nothing changes.
        Assert.Equal(1.0, GradClip.ClipGlobalNorm([a, b], 10.0), 5);
        Assert.Equal(0.6f, a.Grad!.ToFloatArray()[0], 5);
    }
}
