using System.Diagnostics;
using System.Globalization;
using System.Text;
using Encore.Autograd;
using Encore.Autograd.Optim;
using Encore.Models;
using Encore.Tensors;
using Encore.Training.Data;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Training.Lab;

/// <summary>
/// The key–value bottleneck study's data: <see cref="Classes"/> 2-D Gaussian classes, centres evenly on a circle of radius
/// <see cref="Radius"/>, spread σ, split into tasks of consecutive class pairs after a seeded shuffle of the classes; and
/// the fixed random-feature encoder, h = tanh(W·x/<see cref="Radius"/> + b) with W, b drawn once from the seed.
/// </summary>
public sealed class GaussianTasks
{
    /// <summary>Classes.</summary>
    public const int Classes = 10;
    /// <summary>Radius of the circle of centres.</summary>
    public const double Radius = 3;

    readonly int[] _order;       // class ids in task order
    readonly float[] _w, _b;     // encoder (features, 2) and (features)

    /// <summary>The tasks and the encoder (<paramref name="features"/> wide) drawn from <paramref name="seed"/>.</summary>
    public GaussianTasks(ulong seed, int tasks, double spread, int features)
    {
        if (tasks < 1 || Classes % tasks != 0) throw new ArgumentException($"--tasks must divide the {Classes} classes, got {tasks}");
        if (!(spread > 0 && spread <= 5)) throw new ArgumentException($"--spread must be in (0, 5], got {spread}");
        if (features < 1) throw new ArgumentException($"features must be positive, got {features}");
        Tasks = tasks;
        Spread = spread;
        Features = features;
        var rng = DataRng.For(seed, 0xD4B0);
        _order = [.. Enumerable.Range(0, Classes)];
        for (int i = Classes - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (_order[i], _order[j]) = (_order[j], _order[i]);
        }
        _w = new float[features * 2];
        _b = new float[features];
        for (int i = 0; i < _w.Length; i++) _w[i] = (float)Normal(rng);
        for (int i = 0; i < _b.Length; i++) _b[i] = (float)(0.5 * Normal(rng));
    }

    /// <summary>Tasks the classes arrive in.</summary>
    public int Tasks { get; }
    /// <summary>σ of each class.</summary>
    public double Spread { get; }
    /// <summary>Encoder output width.</summary>
    public int Features { get; }
    /// <summary>Classes per task.</summary>
    public int ClassesPerTask => Classes / Tasks;

    /// <summary>The classes of task <paramref name="task"/>.</summary>
    public int[] ClassesOf(int task) => _order[(task * ClassesPerTask)..((task + 1) * ClassesPerTask)];

    /// <summary>The centre of class <paramref name="c"/>.</summary>
    public static (double X, double Y) Centre(int c) => (Radius * Math.Cos(2 * Math.PI * c / Classes), Radius * Math.Sin(2 * Math.PI * c / Classes));

    /// <summary>A point of class <paramref name="c"/>.</summary>
    public (float X, float Y) Sample(int c, DataRng rng)
    {
        var (x, y) = Centre(c);
        return ((float)(x + Spread * Normal(rng)), (float)(y + Spread * Normal(rng)));
    }

    /// <summary>A point uniform in the square the classes live in, [−(R + 1.5), R + 1.5]²: unlabelled data for the keys.</summary>
    public static (float X, float Y) Unlabelled(DataRng rng)
    {
        double half = Radius + 1.5;
        return ((float)((rng.NextDouble() * 2 - 1) * half), (float)((rng.NextDouble() * 2 - 1) * half));
    }

    /// <summary>The frozen encoder: points (N, 2) → features (N, Features).</summary>
    public float[] Encode(ReadOnlySpan<float> points)
    {
        int n = points.Length / 2;
        var h = new float[n * Features];
        for (int r = 0; r < n; r++)
            for (int f = 0; f < Features; f++)
                h[r * Features + f] = MathF.Tanh((_w[2 * f] * points[2 * r] + _w[2 * f + 1] * points[2 * r + 1]) / (float)Radius + _b[f]);
        return h;
    }

    // Box–Muller, one value per call.
    static double Normal(DataRng rng)
    {
        double u = 1 - rng.NextDouble(), v = rng.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * v);
    }
}

/// <summary>Settings of <see cref="KeyValueBottleneckStudy"/>.</summary>
public sealed record KeyValueBottleneckStudyOptions
{
    /// <summary>Tasks the 10 classes arrive in (a divisor of 10). Default 5.</summary>
    public int Tasks { get; init; } = 5;
    /// <summary>σ of each class. Default 0.4.</summary>
    public double Spread { get; init; } = 0.4;
    /// <summary>The bottleneck: C codebooks of K keys over the encoder's C·dk features; values of width 10, averaged, are the class logits.</summary>
    public KeyValueBottleneckOptions Bottleneck { get; init; } = new() { Codebooks = 8, Keys = 64, ValueDim = GaussianTasks.Classes };
    /// <summary>dk, each codebook's part of the features. Default 4.</summary>
    public int KeyDim { get; init; } = 4;
    /// <summary>EMA steps of the keys on unlabelled points before they are frozen. Default 200.</summary>
    public int KeySteps { get; init; } = 200;
    /// <summary>Optimizer steps per task. Default 300.</summary>
    public int StepsPerTask { get; init; } = 300;
    /// <summary>Points per batch. Default 32.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Learning rate of Adam (no weight decay) for every model. Default 1e-2.</summary>
    public double LearningRate { get; init; } = 1e-2;
    /// <summary>Test points per class. Default 200.</summary>
    public int TestPerClass { get; init; } = 200;
    /// <summary>Seed of the data, the encoder and the keys. Default 0.</summary>
    public ulong Seed { get; init; }

    /// <summary>The full study: 5 tasks of 300 steps, keys fitted in 200 EMA steps.</summary>
    public static KeyValueBottleneckStudyOptions Full(ulong seed = 0) => new() { Seed = seed };

    /// <summary>The quick study: 5 tasks of 100 steps, 100 EMA steps, 100 test points per class.</summary>
    public static KeyValueBottleneckStudyOptions Quick(ulong seed = 0) => new() { Seed = seed, StepsPerTask = 100, KeySteps = 100, TestPerClass = 100 };

    /// <summary>Throws naming the first setting out of range.</summary>
    public KeyValueBottleneckStudyOptions Validate()
    {
        if (Tasks < 1 || GaussianTasks.Classes % Tasks != 0) throw new ArgumentException($"--tasks must divide the {GaussianTasks.Classes} classes (1, 2, 5 or 10), got {Tasks}");
        if (!(Spread > 0 && Spread <= 5)) throw new ArgumentException($"--spread must be in (0, 5], got {Spread}");
        if (KeyDim is < 1 or > 64) throw new ArgumentException($"--key-dim must be in [1, 64], got {KeyDim}");
        if (Bottleneck.Codebooks is < 1 or > 64) throw new ArgumentException($"--codebooks must be in [1, 64], got {Bottleneck.Codebooks}");
        if (Bottleneck.Keys is < 1 or > 4096) throw new ArgumentException($"--keys must be in [1, 4096], got {Bottleneck.Keys}");
        if (KeySteps < 0) throw new ArgumentException($"--key-steps cannot be negative, got {KeySteps}");
        if (StepsPerTask < 1) throw new ArgumentException($"--steps must be positive, got {StepsPerTask}");
        if (BatchSize < 1) throw new ArgumentException($"batch size must be positive, got {BatchSize}");
        if (!(LearningRate > 0 && LearningRate < 10)) throw new ArgumentException($"--lr must be in (0, 10), got {LearningRate}");
        if (TestPerClass < 1) throw new ArgumentException($"test points per class must be positive, got {TestPerClass}");
        Bottleneck.Validate();
        if (Bottleneck.ValueDim != GaussianTasks.Classes || !Bottleneck.Average)
            throw new ArgumentException($"the study reads averaged values of width {GaussianTasks.Classes} as the class logits");
        return this;
    }
}

/// <summary>One model of the key–value bottleneck study.</summary>
/// <param name="Name">Printed name.</param>
/// <param name="Sequential">Trained task after task (true) or on all classes at once (the reference).</param>
/// <param name="Trained">Parameters trained.</param>
/// <param name="Final">Accuracy on the test points of all classes after the last task.</param>
/// <param name="PerTask">After the last task, the accuracy on each task's classes.</param>
/// <param name="AfterTask">After each task, the accuracy on the classes seen so far (sequential models; one entry for the joint ones).</param>
/// <param name="Seconds">Training wall time.</param>
public sealed record KeyValueModelResult(string Name, bool Sequential, long Trained, double Final, double[] PerTask, double[] AfterTask, double Seconds);

/// <summary>What <see cref="KeyValueBottleneckStudy.Run"/> measured.</summary>
public sealed record KeyValueBottleneckStudyResult(string Study, string Claim, int Classes, int Tasks, double Spread, int Codebooks, int Keys, int KeyDim, int KeySteps,
    int StepsPerTask, int BatchSize, double LearningRate, ulong Seed, IReadOnlyList<KeyValueModelResult> Models, IReadOnlyList<string> Observed, double Seconds)
{
    /// <summary>The table in GitHub markdown.</summary>
    public string ToMarkdown()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(ci, $"{Classes} Gaussian classes (σ = {Spread:0.##}) in {Tasks} tasks of {Classes / Tasks}, {StepsPerTask} Adam steps of {BatchSize} points per task (lr {LearningRate:G3}); ");
        sb.Append(ci, $"frozen random-feature encoder of {Codebooks * KeyDim} features; bottleneck of {Codebooks} codebooks × {Keys} keys (dk = {KeyDim}, keys fitted by {KeySteps} EMA steps on unlabelled points, then frozen), values of width {Classes} averaged into the logits.\n\n");
        sb.Append("| model | training | trained params | final acc. (all classes) |");
        for (int t = 0; t < Tasks; t++) sb.Append(ci, $" task {t + 1} |");
        sb.Append(" acc. on seen classes after each task |\n|---|---|---:|---:|");
        for (int t = 0; t < Tasks; t++) sb.Append("---:|");
        sb.Append("---|\n");
        foreach (var m in Models)
        {
            sb.Append(ci, $"| {m.Name} | {(m.Sequential ? "task by task" : "all classes at once")} | {m.Trained} | {m.Final * 100:0.0}% |");
            foreach (double a in m.PerTask) sb.Append(ci, $" {a * 100:0}% |");
            sb.Append(' ').Append(string.Join(" → ", m.AfterTask.Select(a => (a * 100).ToString("0", ci) + "%"))).Append(" |\n");
        }
        LengthStudyResult.AppendClaim(sb, "2207.11240", Claim, Observed);
        return sb.ToString();
    }
}

/// <summary>
/// The discrete key–value bottleneck (Träuble et al., arXiv 2207.11240) in class-incremental learning: 2-D Gaussian classes
/// arrive two at a time (<see cref="GaussianTasks"/>); a frozen random-feature encoder feeds either a linear head or a
/// <see cref="KeyValueBottleneck"/> whose keys were fitted on unlabelled points and frozen, each trained task after task
/// with the same optimizer and steps, and once on all classes at once for reference. Production code: the bottleneck layer
/// and its op (<see cref="Ops.KeyValueFetch"/>), <see cref="Ops.Linear"/>, <see cref="Ops.CrossEntropy"/> and AdamW.
/// </summary>
public static class KeyValueBottleneckStudy
{
    /// <summary>The paper's finding, and the brief's pass criterion.</summary>
    public const string Claim = "a discrete key–value bottleneck over a frozen encoder learns a non-i.i.d. (class-incremental) stream with little " +
        "forgetting, because each step changes only the values its inputs fetched, where a fine-tuned head forgets. The brief's pass criterion: " +
        "the bottleneck's final average accuracy far above a sequentially fine-tuned linear head's (e.g. > 80% against < 40%).";

    /// <summary>Runs the study.</summary>
    public static KeyValueBottleneckStudyResult Run(KeyValueBottleneckStudyOptions options, Action<string>? progress = null, CancellationToken cancel = default)
    {
        var o = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
        var total = Stopwatch.StartNew();
        int features = o.Bottleneck.Codebooks * o.KeyDim;
        var data = new GaussianTasks(o.Seed, o.Tasks, o.Spread, features);
        var testRng = DataRng.For(o.Seed ^ 0x7E57UL, 0xD4B1);
        var test = Enumerable.Range(0, GaussianTasks.Classes).Select(c => Points(data, Enumerable.Repeat(c, o.TestPerClass).ToArray(), testRng)).ToArray();
        var models = new List<KeyValueModelResult>();
        foreach (bool sequential in new[] { true, false })
            foreach (bool bottleneck in new[] { false, true })
            {
                cancel.ThrowIfCancellationRequested();
                string name = bottleneck ? "key–value bottleneck" : "linear head";
                var r = Train(o, data, test, bottleneck, sequential, progress, cancel);
                models.Add(r with { Name = name });
                progress?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{name} ({(sequential ? "task by task" : "all at once")}): final accuracy {r.Final * 100:0.0}%"));
            }
        return new KeyValueBottleneckStudyResult("kv-bottleneck", Claim, GaussianTasks.Classes, o.Tasks, o.Spread, o.Bottleneck.Codebooks, o.Bottleneck.Keys, o.KeyDim, o.KeySteps,
            o.StepsPerTask, o.BatchSize, o.LearningRate, o.Seed, models, Observe(models), total.Elapsed.TotalSeconds);
    }

    /// <summary>Encoded points of the given classes: features (N, F) and the labels.</summary>
    internal static (float[] Features, int[] Labels) Points(GaussianTasks data, int[] labels, DataRng rng)
    {
        var xy = new float[2 * labels.Length];
        for (int i = 0; i < labels.Length; i++) (xy[2 * i], xy[2 * i + 1]) = data.Sample(labels[i], rng);
        return (data.Encode(xy), labels);
    }

    /// <summary>
    /// A bottleneck whose keys start at unlabelled encoded points and follow <see cref="KeyValueBottleneckStudyOptions.KeySteps"/>
    /// EMA steps of 256 more, then freeze.
    /// </summary>
    public static KeyValueBottleneck FitKeys(KeyValueBottleneckStudyOptions o, GaussianTasks data)
    {
        var kv = new KeyValueBottleneck(data.Features, o.Bottleneck, o.Seed);
        var rng = DataRng.For(o.Seed, 0xD4B2);
        float[] Unlabelled(int n)
        {
            var xy = new float[2 * n];
            for (int i = 0; i < n; i++) (xy[2 * i], xy[2 * i + 1]) = GaussianTasks.Unlabelled(rng);
            return data.Encode(xy);
        }
        int start = Math.Max(4096, o.Bottleneck.Keys);
        kv.InitializeKeys(Unlabelled(start), start);
        for (int s = 0; s < o.KeySteps; s++) kv.UpdateKeys(Unlabelled(256), 256);
        kv.FreezeKeys();
        return kv;
    }

    static KeyValueModelResult Train(KeyValueBottleneckStudyOptions o, GaussianTasks data, (float[] Features, int[] Labels)[] test, bool bottleneck, bool sequential,
        Action<string>? progress, CancellationToken cancel)
    {
        var sw = Stopwatch.StartNew();
        int f = data.Features, classes = GaussianTasks.Classes;
        using var kv = bottleneck ? FitKeys(o, data) : null;
        using var head = bottleneck ? null : new ParameterSet(o.Seed);
        Parameter[] trained;
        if (kv != null) trained = [kv.Values];
        else
        {
            head!.Create("head.weight", [classes, f], ParameterSet.Init.Normal, 1f / MathF.Sqrt(f));
            head.Create("head.bias", [classes], ParameterSet.Init.Zeros);
            trained = [head["head.weight"], head["head.bias"]];
        }
        using var optimizer = new AdamW(trained, new AdamWOptions { WeightDecay = 0 }) { LearningRate = o.LearningRate };
        Var Logits(Tensor x) => kv != null ? kv.Forward(Var.Constant(x, owned: false)) : Ops.Linear(Var.Constant(x, owned: false), Var.Of(trained[0]), Var.Of(trained[1]));
        var rng = DataRng.For(o.Seed, 0xD4B3, sequential ? 1UL : 2UL);
        var after = new List<double>();
        int phases = sequential ? o.Tasks : 1;
        for (int phase = 0; phase < phases; phase++)
        {
            cancel.ThrowIfCancellationRequested();
            var allowed = sequential ? data.ClassesOf(phase) : [.. Enumerable.Range(0, classes)];
            int steps = sequential ? o.StepsPerTask : o.StepsPerTask * o.Tasks;
            for (int s = 0; s < steps; s++)
            {
                var labels = Enumerable.Range(0, o.BatchSize).Select(_ => allowed[rng.NextInt(allowed.Length)]).ToArray();
                var (x, y) = Points(data, labels, rng);
                using var input = Tensor.FromArray(x, o.BatchSize, f);
                optimizer.ZeroGrad();
                using (var tape = Tape.Record())
                {
                    var loss = Ops.CrossEntropy(Logits(input), y, new CrossEntropyOptions());
                    tape.Backward(loss);
                }
                optimizer.Update();
            }
            var seen = sequential ? Enumerable.Range(0, phase + 1).SelectMany(data.ClassesOf).ToArray() : [.. Enumerable.Range(0, classes)];
            after.Add(Accuracy(seen, test, Logits, f));
            if (sequential) progress?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{(kv != null ? "key–value bottleneck" : "linear head")}: after task {phase + 1}, {after[^1] * 100:0.0}% on the classes seen"));
        }
        double final = Accuracy([.. Enumerable.Range(0, classes)], test, Logits, f);
        var perTask = Enumerable.Range(0, o.Tasks).Select(t => Accuracy(data.ClassesOf(t), test, Logits, f)).ToArray();
        return new KeyValueModelResult("", sequential, trained.Sum(p => p.Length), final, perTask, [.. after], sw.Elapsed.TotalSeconds);
    }

    // Accuracy over the test points of the given classes (each class equally many).
    static double Accuracy(int[] classes, (float[] Features, int[] Labels)[] test, Func<Tensor, Var> logits, int f)
    {
        long right = 0, count = 0;
        foreach (int c in classes)
        {
            var (x, y) = test[c];
            using var input = Tensor.FromArray(x, y.Length, f);
            using var z = logits(input);                                                             // (N, classes)
            var values = z.Value.AsReadOnlySpan<float>();
            int v = z.Shape[1];
            for (int i = 0; i < y.Length; i++)
            {
                var row = values.Slice(i * v, v);
                int best = 0;
                for (int k = 1; k < v; k++) if (row[k] > row[best]) best = k;
                if (best == y[i]) right++;
                count++;
            }
        }
        return (double)right / count;
    }

    static List<string> Observe(IReadOnlyList<KeyValueModelResult> models)
    {
        var ci = CultureInfo.InvariantCulture;
        var head = models.First(m => m.Sequential && m.Name == "linear head");
        var kv = models.First(m => m.Sequential && m.Name != "linear head");
        bool pass = kv.Final > 0.8 && head.Final < 0.4;
        return
        [
            string.Create(ci, $"task by task, the key–value bottleneck ends at {kv.Final * 100:0.0}% on all classes and the linear head at {head.Final * 100:0.0}%: ") +
                (pass ? "the bottleneck far above the fine-tuned head, as claimed (> 80% against < 40%)." : "the criterion (> 80% against < 40%) is not met."),
            string.Join("; ", models.Where(m => !m.Sequential).Select(m => string.Create(ci, $"{m.Name} trained on all classes at once: {m.Final * 100:0.0}%"))) + " (what each model can reach without forgetting).",
        ];
    }
}
