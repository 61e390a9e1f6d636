using Encore.Training.Lab;

namespace Encore.Cli.Commands;

// encore lab kv-bottleneck: the discrete key–value bottleneck in class-incremental learning (arXiv 2207.11240).
internal static partial class LabCommand
{
    static Command CreateKeyValueBottleneck()
    {
        var tasks = new Option<int?>("--tasks") { Description = "Tasks the 10 classes arrive in: 1, 2, 5 or 10 (default 5)." };
        var spread = new Option<double?>("--spread") { Description = "σ of each Gaussian class, in (0, 5] (default 0.4; centres 1.85 apart)." };
        var codebooks = new Option<int?>("--codebooks") { Description = "Codebooks C of the bottleneck (default 8)." };
        var keys = new Option<int?>("--keys") { Description = "Keys per codebook K (default 64)." };
        var keySteps = new Option<int?>("--key-steps") { Description = "EMA steps fitting the keys on unlabelled points before they freeze (default 200; --quick 100)." };
        return Study("kv-bottleneck", "The discrete key–value bottleneck (arXiv 2207.11240): 2-D Gaussian classes arriving two at a time, a frozen random-feature encoder feeding a linear head or a key–value bottleneck, each trained task by task (and on all classes at once for reference); accuracy on all classes at the end.",
            [tasks, spread, codebooks, keys, keySteps],
            (parse, s) =>
            {
                var d = s.Quick ? KeyValueBottleneckStudyOptions.Quick(s.Seed) : KeyValueBottleneckStudyOptions.Full(s.Seed);
                return (d with
                {
                    Tasks = parse.GetValue(tasks) ?? d.Tasks,
                    Spread = parse.GetValue(spread) ?? d.Spread,
                    Bottleneck = d.Bottleneck with { Codebooks = parse.GetValue(codebooks) ?? d.Bottleneck.Codebooks, Keys = parse.GetValue(keys) ?? d.Bottleneck.Keys },
                    KeySteps = parse.GetValue(keySteps) ?? d.KeySteps,
                    StepsPerTask = s.Steps ?? d.StepsPerTask,
                    LearningRate = s.LearningRate ?? d.LearningRate,
                }).Validate();
            },
            (o, progress, ct) => KeyValueBottleneckStudy.Run(o, progress, ct),
            (path, r) => LabPlot.WriteKeyValueBottleneck(path, r),
            r => r.ToMarkdown(),
            RenderKeyValueBottleneck);
    }

    static void RenderKeyValueBottleneck(KeyValueBottleneckStudyResult r)
    {
        var ci = CultureInfo.InvariantCulture;
        AnsiConsole.MarkupLine($"[bold]encore lab kv-bottleneck[/]  {r.Classes} classes (σ = {r.Spread.ToString("0.##", ci)}) in {r.Tasks} tasks, {r.StepsPerTask} steps of {r.BatchSize} per task, " +
            $"{r.Codebooks} codebooks × {r.Keys} keys (dk = {r.KeyDim}), seed {r.Seed}, {Common.Clock(TimeSpan.FromSeconds(r.Seconds))} in all");
        var t = NewTable("[bold]test accuracy after the last task[/]", ["model", "training"],
            ["trained params", "all classes", .. Enumerable.Range(1, r.Tasks).Select(i => $"task {i}"), "seen classes after each task"]);
        foreach (var m in r.Models)
            t.AddRow([Markup.Escape(m.Name), m.Sequential ? "task by task" : "all at once", m.Trained.ToString(ci), (m.Final * 100).ToString("0.0", ci) + "%",
                .. m.PerTask.Select(Percent), Markup.Escape(string.Join(" → ", m.AfterTask.Select(Percent)))]);
        AnsiConsole.Write(t);
        AnsiConsole.MarkupLine($"[bold]Claim[/] (arXiv 2207.11240): {Markup.Escape(r.Claim)}");
        foreach (var o in r.Observed) AnsiConsole.MarkupLine($"[bold]Observed[/]: {Markup.Escape(o)}");
    }
}
