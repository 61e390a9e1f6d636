using Encore.Training.Lab;

namespace Encore.Cli.Commands;

// encore lab length: length generalization by position encoding (arXiv 2305.19466).
internal static partial class LabCommand
{
    static Command CreateLength()
    {
        var tasks = ListOption("--tasks", $"Tasks (comma-separated or repeated): {string.Join(", ", LengthTasks.All.Select(t => t.Name()))} (default: all; --quick: copy, reverse).");
        var positions = ListOption("--positions", "Position encodings: nope, learned, sinusoidal, t5, alibi, rope, comrope, urpe (default: all; --quick: nope, learned, t5, alibi, rope).");
        var families = ListOption("--families", "Model families: decoder, encdec (default: both; --quick: decoder).");
        var trainLength = new Option<int?>("--train-length") { Description = "L: training lengths are 1 … L (default 16; --quick 8)." };
        return Study("length", "Length generalization by position encoding (arXiv 2305.19466): train on lengths ≤ L, score exact match on buckets up to 3L, for NoPE, learned, sinusoidal, T5 bias, ALiBi, RoPE, ComRoPE and URPE in decoder-only and encoder–decoder models.",
            [tasks, positions, families, trainLength],
            (parse, s) =>
            {
                var d = s.Quick ? LengthStudyOptions.Quick(s.Seed) : LengthStudyOptions.Full(s.Seed);
                return (d with
                {
                    Tasks = List(parse, tasks, t => LengthTasks.Parse(t)) ?? d.Tasks,
                    Positions = List(parse, positions, p => LabNames.ParsePosition(p)) ?? d.Positions,
                    Families = List(parse, families, f => LabNames.ParseFamily(f)) ?? d.Families,
                    TrainLength = parse.GetValue(trainLength) ?? d.TrainLength,
                    Training = Training(d.Training, s),
                }).Validate();
            },
            (o, progress, ct) => LengthStudy.Run(o, progress, ct),
            (path, r) => LabPlot.WriteLength(path, r),
            r => r.ToMarkdown(),
            RenderLength);
    }

    static void RenderLength(LengthStudyResult r)
    {
        AnsiConsole.MarkupLine($"[bold]encore lab length[/]  trained on lengths 1–{r.TrainLength}, {r.Steps} steps of {r.BatchSize} examples per model, seed {r.Seed}, {Common.Clock(TimeSpan.FromSeconds(r.Seconds))} in all");
        foreach (var family in r.Models.Select(m => m.Family).Distinct())
        {
            var rows = r.Models.Where(m => m.Family == family).ToList();
            var buckets = rows[0].Buckets;
            var t = NewTable($"[bold]{Markup.Escape(family)}[/]: exact match by test length", ["task", "encoding"],
                ["params", "train s", "loss", .. buckets.Select((b, i) => i == 0 ? "≤ L (in dist.)" : $"≤ {b.UpTo.ToString("0.#", CultureInfo.InvariantCulture)} L")]);
            foreach (var m in rows)
                t.AddRow([Markup.Escape(m.Task), Markup.Escape(m.Position), $"{m.Parameters / 1000.0:0}k", m.TrainSeconds.ToString("0", CultureInfo.InvariantCulture),
                    m.FinalLoss.ToString("0.000", CultureInfo.InvariantCulture), .. m.Buckets.Select(b => Percent(b.ExactMatch))]);
            AnsiConsole.Write(t);
            var ranges = rows.GroupBy(m => string.Join(" | ", m.Buckets.Select(b => b.Label))).Select(g => $"{string.Join(", ", g.Select(m => m.Task).Distinct())}: {g.Key}");
            AnsiConsole.MarkupLine($"[grey]lengths per bucket — {Markup.Escape(string.Join("; ", ranges))}[/]");
        }
        var s = NewTable("[bold]summary over the tasks[/]", ["family", "encoding"], ["in distribution", "beyond L", "MRR", "beyond L, tokens"]);
        foreach (var x in r.Summary)
            s.AddRow(Markup.Escape(x.Family), Markup.Escape(x.Position), Percent(x.InDistribution), Percent(x.BeyondTraining),
                x.MeanReciprocalRank.ToString("0.00", CultureInfo.InvariantCulture), Percent(x.BeyondTrainingTokens));
        AnsiConsole.Write(s);
        AnsiConsole.MarkupLine($"[bold]Claim[/] (arXiv 2305.19466): {Markup.Escape(r.Claim)}");
        foreach (var o in r.Observed) AnsiConsole.MarkupLine($"[bold]Observed[/]: {Markup.Escape(o)}");
    }
}
