using System.Diagnostics;
using System.Globalization;
using System.Text;
using Encore.Models;
using Encore.Tensors.Kernels;
using Encore.Training.Data;
using Encore.Training.Metrics;
using Encore.Training.Objectives;

namespace Encore.Training.Lab;

/// <summary>A model variant of the entropy study: which nonlinearities it keeps and whether the regularizer trains it.</summary>
/// <param name="Flag">Command-line name.</param>
/// <param name="Name">Printed name.</param>
/// <param name="Norm">Its norms (RMSNorm, or none).</param>
/// <param name="Activation">Its feed-forward activation (GELU, or the identity).</param>
/// <param name="Regularized">Whether the entropy regularizer is added to its loss.</param>
public sealed record EntropyVariant(string Flag, string Name, NormKind Norm, ActivationKind Activation, bool Regularized)
{
    /// <summary>Every variant, in the order tables list them.</summary>
    public static readonly EntropyVariant[] All =
    [
        new("baseline", "baseline (RMSNorm, GELU)", NormKind.RmsNorm, ActivationKind.GeluTanh, false),
        new("linear-ffn", "no FFN nonlinearity", NormKind.RmsNorm, ActivationKind.Identity, false),
        new("no-norm", "no norms", NormKind.None, ActivationKind.GeluTanh, false),
        new("softmax-only", "no norms, no FFN nonlinearity", NormKind.None, ActivationKind.Identity, false),
        new("softmax-only-reg", "no norms, no FFN nonlinearity + entropy reg.", NormKind.None, ActivationKind.Identity, true),
        new("baseline-reg", "baseline + entropy reg.", NormKind.RmsNorm, ActivationKind.GeluTanh, true),
    ];

    /// <summary>The variant named <paramref name="flag"/> on the command line.</summary>
    public static EntropyVariant Parse(string flag, string option = "--variants") =>
        All.FirstOrDefault(v => string.Equals(v.Flag, flag?.Trim(), StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"{option}: unknown variant '{flag}'; one of {string.Join(", ", All.Select(v => v.Flag))}");
}

/// <summary>Settings of <see cref="EntropyStudy"/>.</summary>
public sealed record EntropyStudyOptions
{
    /// <summary>The generated task the decoder-only models learn. Default sort.</summary>
    public LengthTask Task { get; init; } = LengthTask.Sort;
    /// <summary>Examples have lengths 1 … this. Default 12.</summary>
    public int MaxLength { get; init; } = 12;
    /// <summary>The variants trained. Default all six.</summary>
    public IReadOnlyList<EntropyVariant> Variants { get; init; } = EntropyVariant.All;
    /// <summary>
    /// λ of the regularized variants. The paper's code uses 1e-5 with its penalty summed over the rows of its batches
    /// (contexts of 1024, about 8k rows at transformers' default batch of 8); a lab batch has about 500 valid rows, so
    /// 1.6e-4 would give a row the paper's weight. 1e-3, about six times that, makes the effect visible within the quick
    /// mode's 1500 steps. Default 1e-3.
    /// </summary>
    public float RegularizerWeight { get; init; } = 1e-3f;
    /// <summary>γ and the thresholds' start (<see cref="EntropyRegularizerOptions"/>). Default the code's γ = 0.2 and θ = 0.5.</summary>
    public EntropyRegularizerOptions Regularizer { get; init; } = new();
    /// <summary>Held-out batches of 32 rows for the validation loss and the final entropy. Default 8.</summary>
    public int ValidationBatches { get; init; } = 8;
    /// <summary>Test examples scored by greedy generation. Default 200.</summary>
    public int EvalExamples { get; init; } = 200;
    /// <summary>Entropy is measured over training every this many steps. Default 100.</summary>
    public int MeasureEvery { get; init; } = 100;
    /// <summary>Model size. Default <see cref="LabModelSize"/>'s (4 blocks, 4 heads).</summary>
    public LabModelSize Model { get; init; } = new();
    /// <summary>Training of each model. Default 3000 steps of 32 examples.</summary>
    public LabTrainingOptions Training { get; init; } = new() { Steps = 3000 };

    /// <summary>The full study: six variants, 3000 steps each.</summary>
    public static EntropyStudyOptions Full(ulong seed = 0) => new() { Training = new LabTrainingOptions { Steps = 3000, Seed = seed } };

    /// <summary>The quick study: baseline, softmax-only, softmax-only + regularizer, 1500 steps each.</summary>
    public static EntropyStudyOptions Quick(ulong seed = 0) => new()
    {
        Variants = [.. new[] { "baseline", "softmax-only", "softmax-only-reg" }.Select(f => EntropyVariant.Parse(f))],
        Training = new LabTrainingOptions { Steps = 1500, Seed = seed },
    };

    /// <summary>Throws naming the first setting out of range.</summary>
    public EntropyStudyOptions Validate()
    {
        if (MaxLength is < 2 or > 24) throw new ArgumentException($"--max-length must be in [2, 24], got {MaxLength}");
        if (Variants.Count == 0) throw new ArgumentException("--variants: give at least one variant");
        if (!(RegularizerWeight > 0) || !float.IsFinite(RegularizerWeight)) throw new ArgumentException($"--entropy-reg must be positive, got {RegularizerWeight}");
        if (ValidationBatches < 1 || EvalExamples < 1) throw new ArgumentException("validation batches and test examples must be positive");
        if (MeasureEvery < 1) throw new ArgumentException($"--measure-every must be positive, got {MeasureEvery}");
        if (Model.DecoderOnlyLayers < 2) throw new ArgumentException($"the entropy study needs at least 2 layers, got {Model.DecoderOnlyLayers}");
        (Regularizer with { Weight = RegularizerWeight }).Validate();
        Model.Validate();
        Training.Validate();
        return this;
    }
}

/// <summary>The layer means of normalized entropy at one step of training (measured on that step's batch).</summary>
public sealed record EntropyCurvePoint(long Step, double[] Layers);

/// <summary>What one variant gave.</summary>
/// <param name="Variant">Command-line name.</param>
/// <param name="Name">Printed name.</param>
/// <param name="Parameters">Parameter count.</param>
/// <param name="TrainSeconds">Training wall time.</param>
/// <param name="FinalLoss">Mean training loss (cross-entropy plus any regularizer) over the last tenth of the steps.</param>
/// <param name="ValidationLoss">Mean cross-entropy per target token on the held-out batches.</param>
/// <param name="ExactMatch">Fraction of test examples generated exactly.</param>
/// <param name="Layers">Per layer, the mean over heads of the normalized entropy H / log(keys seen), on the held-out batches.</param>
/// <param name="Heads">[layer][head] normalized entropy on the held-out batches.</param>
/// <param name="HeadNats">[layer][head] entropy in nats on the held-out batches.</param>
/// <param name="Overload">Fraction of the heads of layers 0–1 with normalized entropy above 0.9 (entropic overload).</param>
/// <param name="Collapse">Fraction of the heads of the deeper layers (2 on) with normalized entropy below 0.1 (entropy collapse).</param>
/// <param name="Curve">Layer means over training.</param>
public sealed record EntropyVariantResult(string Variant, string Name, long Parameters, double TrainSeconds, double FinalLoss, double ValidationLoss, double ExactMatch,
    double[] Layers, double[][] Heads, double[][] HeadNats, double Overload, double Collapse, IReadOnlyList<EntropyCurvePoint> Curve);

/// <summary>What <see cref="EntropyStudy.Run"/> measured.</summary>
public sealed record EntropyStudyResult(string Study, string Claim, string Task, int MaxLength, int Steps, int BatchSize, ulong Seed, float RegularizerWeight,
    float Tolerance, float InitialThreshold, IReadOnlyList<EntropyVariantResult> Variants, IReadOnlyList<string> Observed, double Seconds)
{
    /// <summary>The table in GitHub markdown.</summary>
    public string ToMarkdown()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        int layers = Variants.Count == 0 ? 0 : Variants[0].Layers.Length;
        sb.Append(ci, $"Decoder-only, {layers} layers, task {Task} (lengths 1–{MaxLength}), {Steps} steps of {BatchSize} examples per model; entropy regularizer λ = {RegularizerWeight:G3}, γ = {Tolerance:G3}, θ₀ = {InitialThreshold:G3}. ");
        sb.Append("Entropy is normalized per query row by log of the keys it sees, averaged over the held-out rows and then over heads:\n\n");
        sb.Append("| variant | params | train s | final loss | val. loss | exact match |");
        for (int l = 0; l < layers; l++) sb.Append(ci, $" H/Hmax L{l} |");
        sb.Append(" overload L0–1 | collapse L2+ |\n|---|---:|---:|---:|---:|---:|");
        for (int l = 0; l < layers; l++) sb.Append("---:|");
        sb.Append("---:|---:|\n");
        foreach (var v in Variants)
        {
            sb.Append(ci, $"| {v.Name} | {v.Parameters / 1000.0:0}k | {v.TrainSeconds:0} | {v.FinalLoss:0.000} | {v.ValidationLoss:0.000} | {LengthStudyResult.Percent(v.ExactMatch)} |");
            foreach (double h in v.Layers) sb.Append(ci, $" {h:0.00} |");
            sb.Append(ci, $" {LengthStudyResult.Percent(v.Overload)} | {LengthStudyResult.Percent(v.Collapse)} |\n");
        }
        LengthStudyResult.AppendClaim(sb, "2501.03489", Claim, Observed);
        return sb.ToString();
    }
}

/// <summary>
/// Attention entropy and the nonlinearities (Jha and Reagen, "Entropy-Guided Attention for Private LLMs", arXiv 2501.03489):
/// small decoder-only models with and without their norms and feed-forward nonlinearity, and with the paper's entropy
/// regularizer, trained on a generated task; per layer and head, the mean attention entropy on held-out rows
/// (<see cref="AttentionEntropyTally"/>), the heads near the maximum in the first two layers (overload) and near zero in
/// the deeper ones (collapse), and the validation loss. Production code throughout: the model family, the Trainer and its
/// <see cref="Trainer.TrainingOptions.EntropyRegularizer"/>, the entropy kernel.
/// </summary>
public static class EntropyStudy
{
    /// <summary>The paper's finding, and the brief's pass criterion.</summary>
    public const string Claim = "removing nonlinearities (LayerNorm, GELU) from a GPT-2-style model causes entropic overload in the early layers " +
        "(many heads near maximum entropy) and entropy collapse in the deeper ones; an entropy regularizer (learned per-head thresholds, tolerance γ) " +
        "curbs them. The brief's pass criterion: the regularizer lowers the fraction of overloaded heads (mean H > 0.9·Hmax) in layers 0–1 " +
        "without a validation loss worse by more than 2%, and the diagnostic shows higher early-layer entropy without the nonlinearities.";

    /// <summary>Normalized entropy above which a head counts as overloaded.</summary>
    public const double OverloadLevel = 0.9;
    /// <summary>Normalized entropy below which a head counts as collapsed.</summary>
    public const double CollapseLevel = 0.1;

    /// <summary>The held-out rows' batches, the same for every variant.</summary>
    public static IReadOnlyList<Batch> ValidationSet(EntropyStudyOptions o)
    {
        var rng = DataRng.For(o.Training.Seed ^ 0xE7_0B5UL, 0xEA17, (ulong)o.MaxLength);
        var batches = new List<Batch>();
        for (int k = 0; k < o.ValidationBatches; k++)
        {
            var rows = Enumerable.Range(0, 32).Select(_ => LabTraining.Row(ModelFamily.DecoderOnly, Example(o, rng))).ToArray();
            batches.Add(TrainingBatches.Collate(rows, LabVocabulary.Pad, [.. Enumerable.Range(k * 32, 32)], hasSource: false));
        }
        return batches;
    }

    static LabExample Example(EntropyStudyOptions o, DataRng rng) => LengthTasks.Make(o.Task, 1 + rng.NextInt(o.MaxLength), rng);

    /// <summary>Runs the study; <paramref name="progress"/> hears each variant as it is trained and measured.</summary>
    public static EntropyStudyResult Run(EntropyStudyOptions options, Action<string>? progress = null, CancellationToken cancel = default)
    {
        var o = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
        var total = Stopwatch.StartNew();
        ulong seed = o.Training.Seed;
        var validation = ValidationSet(o);
        var testRng = DataRng.For(seed ^ 0x7E57UL, 0xEA18, (ulong)o.MaxLength);
        var test = Enumerable.Range(0, o.EvalExamples).Select(_ => Example(o, testRng)).ToList();
        var results = new List<EntropyVariantResult>();
        int done = 0;
        foreach (var variant in o.Variants)
        {
            cancel.ThrowIfCancellationRequested();
            done++;
            var config = LabTraining.Config(ModelFamily.DecoderOnly, PositionKind.Learned, o.Model, 64) with { Norm = variant.Norm, Activation = variant.Activation };
            using var model = LanguageModel.Create(config.Validate(), seed);
            progress?.Invoke($"[{done}/{o.Variants.Count}] {variant.Name}: training {o.Training.Steps} steps");
            var training = o.Training with
            {
                AttentionEntropyEvery = o.MeasureEvery,
                EntropyRegularizer = variant.Regularized ? o.Regularizer with { Weight = o.RegularizerWeight } : null,
            };
            var report = LabTraining.Train(model, rng => LabTraining.Row(ModelFamily.DecoderOnly, Example(o, rng)), training, cancel);
            double loss = Trainer.Trainer.MeanLoss(model, validation);
            var layers = AttentionEntropyTally.Measure(model, validation);
            var score = LabTraining.Generate(model, test);
            var heads = layers.Select(l => l.Normalized).ToArray();
            var r = new EntropyVariantResult(variant.Flag, variant.Name, model.ParameterCount, report.Seconds, report.FinalLoss, loss, score.ExactMatch,
                [.. layers.Select(l => l.MeanNormalized)], heads, [.. layers.Select(l => l.Entropy)],
                Fraction(heads.Take(2), h => h > OverloadLevel), Fraction(heads.Skip(2), h => h < CollapseLevel),
                [.. report.Entropy.Select(e => new EntropyCurvePoint(e.Step, [.. e.Layers.Select(l => l.MeanNormalized)]))]);
            results.Add(r);
            progress?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"[{done}/{o.Variants.Count}] {variant.Name}: {report.Seconds:0} s, val. loss {loss:0.000}, exact match {LengthStudyResult.Percent(score.ExactMatch)}, H/Hmax by layer {string.Join(" ", r.Layers.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture)))}"));
        }
        return new EntropyStudyResult("entropy", Claim, o.Task.Name(), o.MaxLength, o.Training.Steps, o.Training.BatchSize, seed, o.RegularizerWeight,
            o.Regularizer.Tolerance, o.Regularizer.InitialThreshold, results, Observe(results), total.Elapsed.TotalSeconds);
    }

    static double Fraction(IEnumerable<double[]> layers, Func<double, bool> test)
    {
        var all = layers.SelectMany(h => h).Where(double.IsFinite).ToList();
        return all.Count == 0 ? double.NaN : (double)all.Count(test) / all.Count;
    }

    static List<string> Observe(IReadOnlyList<EntropyVariantResult> results)
    {
        var ci = CultureInfo.InvariantCulture;
        var lines = new List<string>();
        var by = results.ToDictionary(r => r.Variant);
        static double Early(EntropyVariantResult r) => r.Layers.Take(2).Average();
        if (by.TryGetValue("baseline", out var baseline))
            foreach (var flag in new[] { "linear-ffn", "no-norm", "softmax-only" })
                if (by.TryGetValue(flag, out var reduced))
                    lines.Add(string.Create(ci, $"{reduced.Name} against the baseline: layers 0–1 mean H/Hmax {Early(baseline):0.00} → {Early(reduced):0.00}, ") +
                        string.Create(ci, $"overloaded heads {LengthStudyResult.Percent(baseline.Overload)} → {LengthStudyResult.Percent(reduced.Overload)}, ") +
                        string.Create(ci, $"collapsed deep heads {LengthStudyResult.Percent(baseline.Collapse)} → {LengthStudyResult.Percent(reduced.Collapse)} ") +
                        (Early(reduced) > Early(baseline) ? "(early-layer entropy higher without the nonlinearities, as claimed)." : "(early-layer entropy not higher: the claim's overload is not reproduced here)."));
        foreach (var (plain, reg) in new[] { ("softmax-only", "softmax-only-reg"), ("baseline", "baseline-reg") })
            if (by.TryGetValue(plain, out var p) && by.TryGetValue(reg, out var r))
            {
                double change = r.ValidationLoss / p.ValidationLoss - 1;
                bool lower = r.Overload < p.Overload, loss = change <= 0.02;
                lines.Add(string.Create(ci, $"entropy regularizer on {p.Name}: overloaded heads in layers 0–1 {LengthStudyResult.Percent(p.Overload)} → {LengthStudyResult.Percent(r.Overload)}, ") +
                    string.Create(ci, $"collapsed deep heads {LengthStudyResult.Percent(p.Collapse)} → {LengthStudyResult.Percent(r.Collapse)}, validation loss {p.ValidationLoss:0.000} → {r.ValidationLoss:0.000} ({change * 100:+0.0;-0.0;0.0}%): ") +
                    (p.Overload == 0 ? "there is no overload to lower." : lower && loss ? "passes the criterion." : !lower ? "does not lower the overload fraction." : "lowers the overload but costs more than 2% validation loss."));
            }
        return lines;
    }
}
