using System.Diagnostics;
using System.Globalization;
using System.Text;
using Encore.Models;
using Encore.Training.Data;

namespace Encore.Training.Lab;

/// <summary>
/// Settings of <see cref="LengthStudy"/>. <see cref="Full"/> covers every task, position encoding and
/// family; <see cref="Quick"/> keeps the comparison at a size that trains in minutes on two cores.
/// </summary>
public sealed record LengthStudyOptions
{
    /// <summary>Tasks studied. Default all five.</summary>
    public IReadOnlyList<LengthTask> Tasks { get; init; } = LengthTasks.All;
    /// <summary>Position encodings compared. Default all eight.</summary>
    public IReadOnlyList<PositionKind> Positions { get; init; } = LabNames.Positions;
    /// <summary>Model families. Default decoder-only and encoder–decoder.</summary>
    public IReadOnlyList<ModelFamily> Families { get; init; } = [ModelFamily.DecoderOnly, ModelFamily.EncoderDecoder];
    /// <summary>L: training examples have lengths 1 … L (SCAN: see <see cref="LengthTasks.TrainLength"/>). Default 16.</summary>
    public int TrainLength { get; init; } = 16;
    /// <summary>
    /// Upper ends of the test buckets as multiples of L, increasing, the first 1 (in distribution): bucket i
    /// holds lengths ⌊m₍ᵢ₋₁₎·L⌋ + 1 … ⌊mᵢ·L⌋. Default 1, 1.5, 2, 3.
    /// </summary>
    public IReadOnlyList<double> Buckets { get; init; } = [1, 1.5, 2, 3];
    /// <summary>Test examples per bucket (the same for every model). Default 100.</summary>
    public int EvalExamples { get; init; } = 100;
    /// <summary>Model size. Default <see cref="LabModelSize"/>'s.</summary>
    public LabModelSize Model { get; init; } = new();
    /// <summary>Training of each model. Default 2000 steps of 32 examples.</summary>
    public LabTrainingOptions Training { get; init; } = new() { Steps = 2000 };

    /// <summary>The full study: every task, encoding and family, L = 16, tested to 3L.</summary>
    public static LengthStudyOptions Full(ulong seed = 0) => new() { Training = new LabTrainingOptions { Steps = 2000, Seed = seed } };

    /// <summary>
    /// The quick study: decoder-only models with NoPE, learned, T5 bias, ALiBi and RoPE on copy and reverse, L = 8,
    /// tested to 2L, 1000 steps each.
    /// </summary>
    public static LengthStudyOptions Quick(ulong seed = 0) => new()
    {
        Tasks = [LengthTask.Copy, LengthTask.Reverse],
        Positions = [PositionKind.None, PositionKind.Learned, PositionKind.T5Relative, PositionKind.Alibi, PositionKind.Rope],
        Families = [ModelFamily.DecoderOnly],
        TrainLength = 8,
        Buckets = [1, 1.5, 2],
        EvalExamples = 50,
        Training = new LabTrainingOptions { Steps = 1000, Seed = seed },
    };

    /// <summary>Throws naming the first setting out of range.</summary>
    public LengthStudyOptions Validate()
    {
        if (Tasks.Count == 0) throw new ArgumentException("--tasks: give at least one task");
        if (Positions.Count == 0) throw new ArgumentException("--positions: give at least one position encoding");
        if (Families.Count == 0 || Families.Any(f => f == ModelFamily.EncoderOnly)) throw new ArgumentException("--families: decoder and/or encdec");
        if (TrainLength is < 2 or > 64) throw new ArgumentException($"--train-length must be in [2, 64], got {TrainLength}");
        if (Buckets.Count == 0 || Buckets[0] != 1 || Buckets.Zip(Buckets.Skip(1)).Any(p => !(p.Second > p.First)) || Buckets[^1] > 8)
            throw new ArgumentException("buckets must start at 1 and increase, up to 8 × L");
        if (EvalExamples < 1) throw new ArgumentException($"--eval-examples must be positive, got {EvalExamples}");
        Model.Validate();
        Training.Validate();
        return this;
    }
}

/// <summary>One test bucket of one model: lengths <paramref name="MinLength"/> … <paramref name="MaxLength"/>.</summary>
/// <param name="Label">"1–8", "9–12", …</param>
/// <param name="UpTo">The bucket's upper end as a multiple of the training length.</param>
/// <param name="MinLength">Shortest length in the bucket.</param>
/// <param name="MaxLength">Longest length in the bucket.</param>
/// <param name="Examples">Test examples.</param>
/// <param name="ExactMatch">Fraction generated exactly (0–1).</param>
/// <param name="TokenAccuracy">Fraction of output tokens (EOS included) generated right, position by position (0–1).</param>
public sealed record BucketScore(string Label, double UpTo, int MinLength, int MaxLength, int Examples, double ExactMatch, double TokenAccuracy = double.NaN);

/// <summary>One trained model of the length study.</summary>
/// <param name="Task">Task name.</param>
/// <param name="Family">"decoder-only" or "encoder–decoder".</param>
/// <param name="Position">Position encoding's name.</param>
/// <param name="Parameters">Parameter count.</param>
/// <param name="TrainLength">Longest training length of the task.</param>
/// <param name="TrainSeconds">Training wall time.</param>
/// <param name="FinalLoss">Mean training loss over the last tenth of the steps.</param>
/// <param name="Buckets">Exact match per bucket, the first in distribution.</param>
public sealed record LengthModelScore(string Task, string Family, string Position, long Parameters, int TrainLength, double TrainSeconds, double FinalLoss, IReadOnlyList<BucketScore> Buckets)
{
    /// <summary>Exact match on lengths seen in training.</summary>
    public double InDistribution => Buckets[0].ExactMatch;
    /// <summary>Mean exact match over the buckets longer than any training example.</summary>
    public double BeyondTraining => Buckets.Count > 1 ? Buckets.Skip(1).Average(b => b.ExactMatch) : double.NaN;
}

/// <summary>One position encoding in one family, over the tasks.</summary>
/// <param name="Family">"decoder-only" or "encoder–decoder".</param>
/// <param name="Position">Position encoding's name.</param>
/// <param name="InDistribution">Mean in-distribution exact match over the tasks.</param>
/// <param name="BeyondTraining">Mean exact match beyond the training length over the tasks.</param>
/// <param name="MeanReciprocalRank">Mean over tasks of 1 / rank of its beyond-training exact match among the family's encodings (ties share the better rank), the paper's summary.</param>
/// <param name="BeyondTrainingTokens">Mean token accuracy beyond the training length over the tasks: partial credit where exact match is 0.</param>
public sealed record PositionSummary(string Family, string Position, double InDistribution, double BeyondTraining, double MeanReciprocalRank, double BeyondTrainingTokens = double.NaN);

/// <summary>What <see cref="LengthStudy.Run"/> measured.</summary>
/// <param name="Study">"length".</param>
/// <param name="Claim">The paper's finding, as the study compares against it.</param>
/// <param name="TrainLength">L.</param>
/// <param name="Steps">Training steps per model.</param>
/// <param name="BatchSize">Examples per step.</param>
/// <param name="Seed">Seed of data and weights.</param>
/// <param name="Models">Every model, by task, family, then encoding.</param>
/// <param name="Summary">Per family and encoding, over the tasks.</param>
/// <param name="Observed">What came out, in sentences beside the claim.</param>
/// <param name="Seconds">Wall time of the whole study.</param>
public sealed record LengthStudyResult(string Study, string Claim, int TrainLength, int Steps, int BatchSize, ulong Seed,
    IReadOnlyList<LengthModelScore> Models, IReadOnlyList<PositionSummary> Summary, IReadOnlyList<string> Observed, double Seconds)
{
    /// <summary>The tables in GitHub markdown: per-model exact match by length bucket, then the summary.</summary>
    public string ToMarkdown()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        foreach (var family in Models.Select(m => m.Family).Distinct())
        {
            var rows = Models.Where(m => m.Family == family).ToList();
            var buckets = rows[0].Buckets;
            sb.Append(ci, $"**{family}**, exact match by test length (trained on 1–{TrainLength}; SCAN on 1–{LengthTask.Scan.TrainLength(TrainLength)} clauses):\n\n");
            sb.Append("| task | encoding | params | train s | final loss | ").AppendJoin(" | ", buckets.Select((b, i) => i == 0 ? "≤ L (in dist.)" : $"≤ {b.UpTo.ToString("0.#", ci)} L")).Append(" |\n");
            sb.Append("|---|---|---:|---:|---:|").Append(string.Concat(buckets.Select(_ => "---:|"))).Append('\n');
            foreach (var m in rows)
                sb.Append(ci, $"| {m.Task} | {m.Position} | {m.Parameters / 1000.0:0}k | {m.TrainSeconds:0} | {m.FinalLoss:0.000} | ")
                    .AppendJoin(" | ", m.Buckets.Select(b => Percent(b.ExactMatch))).Append(" |\n");
            var ranges = rows.GroupBy(m => string.Join(" · ", m.Buckets.Select(b => b.Label))).Select(g => $"{string.Join(", ", g.Select(m => m.Task).Distinct())}: {g.Key}");
            sb.Append("\nLengths per bucket — ").AppendJoin("; ", ranges).Append(".\n\n");
        }
        sb.Append("Summary over the tasks (exact match; MRR = mean reciprocal rank of the beyond-L exact match within the family):\n\n");
        sb.Append("| family | encoding | in distribution | beyond L | MRR | beyond L, token accuracy |\n|---|---|---:|---:|---:|---:|\n");
        foreach (var s in Summary)
            sb.Append(ci, $"| {s.Family} | {s.Position} | {Percent(s.InDistribution)} | {Percent(s.BeyondTraining)} | {s.MeanReciprocalRank:0.00} | {Percent(s.BeyondTrainingTokens)} |\n");
        AppendClaim(sb, "2305.19466", Claim, Observed);
        return sb.ToString();
    }

    // The paper's claim and what the run observed, under a study's markdown tables.
    internal static void AppendClaim(StringBuilder sb, string arxiv, string claim, IEnumerable<string> observed)
    {
        sb.Append('\n').Append("Claim (arXiv ").Append(arxiv).Append("): ").Append(claim).Append('\n');
        foreach (var o in observed) sb.Append("\nObserved: ").Append(o).Append('\n');
    }

    internal static string Percent(double x) => double.IsNaN(x) ? "–" : (x * 100).ToString("0", CultureInfo.InvariantCulture) + "%";
}

/// <summary>
/// Length generalization by position encoding (Kazemnejad et al., "The Impact of Positional Encoding on
/// Length Generalization in Transformers", arXiv 2305.19466): for each task, family and encoding, a model
/// is trained on lengths 1 … L and scored by exact match of its greedy output on test buckets up to
/// several times L. Everything is Encore's production code: the model families and position kinds,
/// the objectives' row layouts, the Trainer, and generation with KV caches.
/// </summary>
public static class LengthStudy
{
    /// <summary>The paper's finding the study is compared against.</summary>
    public const string Claim = "decoder-only models (~107M parameters, trained on lengths ≤ L, tested to 2L): NoPE generalizes best and T5's relative bias next; " +
        "ALiBi, RoPE and absolute encodings generalize worse, absolute ones collapsing beyond L.";

    /// <summary>The test buckets of a task with training length <paramref name="l"/>: (label, multiple, first length, last length).</summary>
    public static IReadOnlyList<(string Label, double UpTo, int Min, int Max)> Buckets(int l, IReadOnlyList<double> multiples)
    {
        var list = new List<(string, double, int, int)>();
        int previous = 0;
        foreach (double m in multiples)
        {
            int hi = Math.Max(previous + 1, (int)Math.Floor(m * l));
            list.Add(($"{previous + 1}–{hi}", m, previous + 1, hi));
            previous = hi;
        }
        return list;
    }

    /// <summary>The test examples of one bucket, the same for every model: lengths uniform in the bucket.</summary>
    public static IReadOnlyList<LabExample> TestSet(LengthTask task, int min, int max, int count, ulong seed)
    {
        var rng = DataRng.For(seed ^ 0x7E57_5E7UL, (ulong)task, ((ulong)(uint)min << 32) | (uint)max);
        var list = new List<LabExample>(count);
        for (int i = 0; i < count; i++) list.Add(LengthTasks.Make(task, min + rng.NextInt(max - min + 1), rng));
        return list;
    }

    /// <summary>Runs the study; <paramref name="progress"/> hears each model as it is trained and scored.</summary>
    public static LengthStudyResult Run(LengthStudyOptions options, Action<string>? progress = null, CancellationToken cancel = default)
    {
        var o = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
        var total = Stopwatch.StartNew();
        var models = new List<LengthModelScore>();
        ulong seed = o.Training.Seed;
        int count = o.Tasks.Count * o.Families.Count * o.Positions.Count, done = 0;
        foreach (var task in o.Tasks)
        {
            int l = task.TrainLength(o.TrainLength);
            var buckets = Buckets(l, o.Buckets);
            var tests = buckets.Select(b => TestSet(task, b.Min, b.Max, o.EvalExamples, seed)).ToList();
            // Learned and sinusoidal tables cover the longest test row with room to spare.
            int longest = tests.SelectMany(t => t).Max(e => e.Input.Length + e.Output.Length) + 4;
            int maxPositions = Math.Max(64, longest);
            foreach (var family in o.Families)
                foreach (var position in o.Positions)
                {
                    cancel.ThrowIfCancellationRequested();
                    done++;
                    var config = LabTraining.Config(family, position, o.Model, maxPositions);
                    using var model = LanguageModel.Create(config, seed);
                    string name = $"{task.Name()}, {LabNames.Name(family)}, {LabNames.Name(position)}";
                    progress?.Invoke($"[{done}/{count}] {name}: training {o.Training.Steps} steps on lengths 1–{l}");
                    var report = LabTraining.Train(model, rng => LabTraining.Row(family, LengthTasks.Make(task, 1 + rng.NextInt(l), rng)), o.Training, cancel);
                    var scores = buckets.Select((b, i) =>
                    {
                        var score = LabTraining.Generate(model, tests[i]);
                        return new BucketScore(b.Label, b.UpTo, b.Min, b.Max, tests[i].Count, score.ExactMatch, score.TokenAccuracy);
                    }).ToList();
                    models.Add(new LengthModelScore(task.Name(), LabNames.Name(family), LabNames.Name(position), model.ParameterCount, l, report.Seconds, report.FinalLoss, scores));
                    progress?.Invoke($"[{done}/{count}] {name}: {report.Seconds:0} s, loss {report.FinalLoss:0.000}, exact match " +
                        string.Join(" / ", scores.Select(s => $"{LengthStudyResult.Percent(s.ExactMatch)} ({s.Label})")));
                }
        }
        var summary = Summarize(models);
        return new LengthStudyResult("length", Claim, o.TrainLength, o.Training.Steps, o.Training.BatchSize, seed, models, summary, Observe(summary, models), total.Elapsed.TotalSeconds);
    }

    /// <summary>Per family and encoding: mean in-distribution and beyond-L exact match over the tasks, and the mean reciprocal rank.</summary>
    public static IReadOnlyList<PositionSummary> Summarize(IReadOnlyList<LengthModelScore> models)
    {
        var list = new List<PositionSummary>();
        foreach (var family in models.Select(m => m.Family).Distinct())
        {
            var rows = models.Where(m => m.Family == family).ToList();
            var tasks = rows.Select(m => m.Task).Distinct().ToList();
            foreach (var position in rows.Select(m => m.Position).Distinct())
            {
                var mine = rows.Where(m => m.Position == position).ToList();
                double rr = tasks.Average(t =>
                {
                    double score = mine.First(m => m.Task == t).BeyondTraining;
                    // Ties share the better rank: 1 + the number of encodings strictly better on this task.
                    int better = rows.Count(m => m.Task == t && m.BeyondTraining > score);
                    return 1.0 / (1 + better);
                });
                double tokens = mine.Average(m => m.Buckets.Count > 1 ? m.Buckets.Skip(1).Average(b => b.TokenAccuracy) : double.NaN);
                list.Add(new PositionSummary(family, position, mine.Average(m => m.InDistribution), mine.Average(m => m.BeyondTraining), rr, tokens));
            }
        }
        return list;
    }

    /// <summary>Sentences that set the measured summary beside the claim: the ranking, and whether absolute encodings fall beyond L.</summary>
    static List<string> Observe(IReadOnlyList<PositionSummary> summary, IReadOnlyList<LengthModelScore> models)
    {
        var ci = CultureInfo.InvariantCulture;
        var lines = new List<string>();
        foreach (var family in summary.Select(s => s.Family).Distinct())
        {
            var ranked = summary.Where(s => s.Family == family).OrderByDescending(s => s.MeanReciprocalRank).ThenByDescending(s => s.BeyondTraining).ToList();
            if (ranked.Count < 2 || ranked.All(s => double.IsNaN(s.BeyondTraining))) continue;
            lines.Add($"{family}, ranked by MRR beyond L: " + string.Join(", ", ranked.Select(s => string.Create(ci, $"{s.Position} {s.MeanReciprocalRank:0.00} ({LengthStudyResult.Percent(s.BeyondTraining)})"))) + ".");
            foreach (var absolute in ranked.Where(s => s.Position is "learned" or "sinusoidal"))
                lines.Add(string.Create(ci, $"{family} {absolute.Position}: {LengthStudyResult.Percent(absolute.InDistribution)} in distribution, {LengthStudyResult.Percent(absolute.BeyondTraining)} beyond L") +
                    (absolute.BeyondTraining < 0.5 * absolute.InDistribution ? " (collapses beyond L, as claimed)." : " (does not collapse)."));
        }
        var unlearned = models.Where(m => m.InDistribution < 0.9).Select(m => $"{m.Task}/{m.Family}/{m.Position} {LengthStudyResult.Percent(m.InDistribution)}").ToList();
        if (unlearned.Count > 0) lines.Add("Below 90% in distribution (not learned at this size and step count, so its beyond-L figure says little): " + string.Join(", ", unlearned) + ".");
        return lines;
    }
}
