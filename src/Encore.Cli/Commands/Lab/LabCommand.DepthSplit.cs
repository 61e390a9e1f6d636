using Encore.Training.Lab;

namespace Encore.Cli.Commands;

// encore lab depth-split: where an encoder–decoder's layers should go (arXiv 2503.05931).
internal static partial class LabCommand
{
    static Command CreateDepthSplit()
    {
        var splits = ListOption("--splits", "Encoder+decoder layer splits, e.g. 6+6,8+4,10+2 (default: 6+6, 8+4, 10+2, 4+8; --quick: 3+3, 4+2, 5+1, 2+4). The first balanced split is the reference.");
        var examples = new Option<int?>("--examples") { Description = "Validation examples scored (default 300; --quick 200)." };
        var trainExamples = new Option<int?>("--train-examples") { Description = "Training examples read, the first of the bundled split; 0 reads all (default 0; --quick 20000)." };
        var rounds = new Option<int?>("--speed-rounds") { Description = "Interleaved timing rounds; medians are reported (default 3)." };
        var data = new Option<string?>("--data") { Description = "The folder holding debian/ (default: the bundled data)." };
        return Study("depth-split", "Encoder/decoder layer splits at (nearly) equal parameters on the bundled Debian task (arXiv 2503.05931): validation loss and ROUGE-L against first-token latency and decode speed.",
            [splits, examples, trainExamples, rounds, data],
            (parse, s) =>
            {
                var d = s.Quick ? DepthSplitOptions.Quick(s.Seed) : DepthSplitOptions.Full(s.Seed);
                return (d with
                {
                    Splits = List(parse, splits, x => DepthSplit.Parse(x)) ?? d.Splits,
                    EvalExamples = parse.GetValue(examples) ?? d.EvalExamples,
                    TrainExamples = parse.GetValue(trainExamples) ?? d.TrainExamples,
                    SpeedRounds = parse.GetValue(rounds) ?? d.SpeedRounds,
                    DataDirectory = parse.GetValue(data) ?? d.DataDirectory,
                    Steps = s.Steps ?? d.Steps,
                    LearningRate = s.LearningRate ?? d.LearningRate,
                }).Validate();
            },
            (o, progress, ct) => DepthSplitStudy.Run(o, progress, ct),
            (path, r) => LabPlot.WriteDepthSplit(path, r),
            r => r.ToMarkdown(),
            RenderDepthSplit);
    }

    static void RenderDepthSplit(DepthSplitResult r)
    {
        var ci = CultureInfo.InvariantCulture;
        AnsiConsole.MarkupLine($"[bold]encore lab depth-split[/]  {r.Steps} steps per model on {r.TrainExamples} examples, {r.EvalExamples} validation examples, " +
            $"speed: batch 1, median of {r.SpeedRounds} rounds, {r.Threads} thread(s), seed {r.Seed}, {Common.Clock(TimeSpan.FromSeconds(r.Seconds))} in all");
        var t = NewTable($"[bold]quality and speed by split[/] (reference {Markup.Escape(r.Reference)})", ["split"],
            ["params", "train s", "val loss", "ROUGE-L", "1st token ms", "decode tok/s", "decode ×", "1st token ×"]);
        foreach (var s in r.Splits)
            t.AddRow(Markup.Escape(s.Split), $"{Encore.Training.Runs.ModelComparison.Parameters(s.Parameters)} ({s.ParameterRatio.ToString("0.00", ci)}×)", s.TrainSeconds.ToString("0", ci),
                s.ValidationLoss.ToString("0.000", ci), s.RougeL.ToString("0.0", ci), s.FirstTokenMs.ToString("0.00", ci), s.DecodeTokensPerSecond.ToString("0", ci),
                s.DecodeSpeedup.ToString("0.00", ci), s.FirstTokenSpeedup.ToString("0.00", ci));
        foreach (var b in r.Baselines)
            t.AddRow(Markup.Escape($"{b.Name} baseline"), "", "", "", b.Metrics.TryGetValue("rouge_l", out var v) ? v.ToString("0.0", ci) : "–", "", "", "", "");
        AnsiConsole.Write(t);
        AnsiConsole.MarkupLine($"[bold]Claim[/] (arXiv 2503.05931): {Markup.Escape(r.Claim)}");
        foreach (var o in r.Observed) AnsiConsole.MarkupLine($"[bold]Observed[/]: {Markup.Escape(o)}");
    }
}
