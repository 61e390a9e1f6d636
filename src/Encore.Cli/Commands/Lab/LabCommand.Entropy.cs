using Encore.Training.Lab;

namespace Encore.Cli.Commands;

// encore lab entropy: attention entropy, nonlinearities and the entropy regularizer (arXiv 2501.03489).
internal static partial class LabCommand
{
    static Command CreateEntropy()
    {
        var variants = ListOption("--variants", "Variants: baseline, linear-ffn, no-norm, softmax-only, softmax-only-reg, baseline-reg (default: all six; --quick: baseline, softmax-only, softmax-only-reg).");
        var weight = new Option<float?>("--entropy-reg") { Description = "λ of the regularized variants (default 1e-3; docs/lab.md says why it is larger than the paper's 1e-5)." };
        var maxLength = new Option<int?>("--max-length") { Description = "Examples have lengths 1 … N, 2–24 (default 12)." };
        var every = new Option<int?>("--measure-every") { Description = "Measure entropy over training every N steps (default 100)." };
        return Study("entropy", "Attention entropy by layer and head (arXiv 2501.03489): decoder-only models with and without norms and FFN nonlinearity, and with the entropy regularizer; entropic overload in early layers, collapse in deep ones, validation loss.",
            [variants, weight, maxLength, every],
            (parse, s) =>
            {
                var d = s.Quick ? EntropyStudyOptions.Quick(s.Seed) : EntropyStudyOptions.Full(s.Seed);
                return (d with
                {
                    Variants = List(parse, variants, x => EntropyVariant.Parse(x)) ?? d.Variants,
                    RegularizerWeight = parse.GetValue(weight) ?? d.RegularizerWeight,
                    MaxLength = parse.GetValue(maxLength) ?? d.MaxLength,
                    MeasureEvery = parse.GetValue(every) ?? d.MeasureEvery,
                    Training = Training(d.Training, s),
                }).Validate();
            },
            (o, progress, ct) => EntropyStudy.Run(o, progress, ct),
            (path, r) => LabPlot.WriteEntropy(path, r),
            r => r.ToMarkdown(),
            RenderEntropy);
    }

    static void RenderEntropy(EntropyStudyResult r)
    {
        var ci = CultureInfo.InvariantCulture;
        int layers = r.Variants.Count == 0 ? 0 : r.Variants[0].Layers.Length;
        AnsiConsole.MarkupLine($"[bold]encore lab entropy[/]  task {Markup.Escape(r.Task)} (lengths 1–{r.MaxLength}), {r.Steps} steps of {r.BatchSize} examples per model, " +
            $"λ = {r.RegularizerWeight.ToString("G3", ci)}, seed {r.Seed}, {Common.Clock(TimeSpan.FromSeconds(r.Seconds))} in all");
        var t = NewTable("[bold]normalized attention entropy H/Hmax by layer (held-out rows)[/]", ["variant"],
            ["params", "train s", "val. loss", "exact match", .. Enumerable.Range(0, layers).Select(l => $"L{l}"), "overload L0–1", "collapse L2+"]);
        foreach (var v in r.Variants)
            t.AddRow([Markup.Escape(v.Name), $"{v.Parameters / 1000.0:0}k", v.TrainSeconds.ToString("0", ci), v.ValidationLoss.ToString("0.000", ci), Percent(v.ExactMatch),
                .. v.Layers.Select(h => h.ToString("0.00", ci)), Percent(v.Overload), Percent(v.Collapse)]);
        AnsiConsole.Write(t);
        AnsiConsole.MarkupLine($"[bold]Claim[/] (arXiv 2501.03489): {Markup.Escape(r.Claim)}");
        foreach (var o in r.Observed) AnsiConsole.MarkupLine($"[bold]Observed[/]: {Markup.Escape(o)}");
    }
}
