namespace Encore.Cli.Commands;

// encore bench forward: forward throughput of presets on one input.
internal static partial class BenchCommand
{
    static Command CreateForward()
    {
        var d = new ForwardBenchmarkOptions();
        var presets = new Option<string[]>("--preset", "--model", "-m") { Description = $"Presets to compare (repeatable; default {string.Join(", ", d.Presets)}).", AllowMultipleArgumentsPerToken = true };
        var length = new Option<int>("--length") { Description = $"Input tokens.", DefaultValueFactory = _ => d.Length };
        var runs = RunsOption(d.Runs, $"Timed runs; the figure is their median");
        return Suite("forward", "F32 forward throughput of models on one input of a given length (random weights, batch 1).", [presets, length, runs],
            parse => new ForwardBenchmarkOptions
            {
                Presets = parse.GetValue(presets) is { Length: > 0 } p ? p : d.Presets,
                Length = parse.GetValue(length),
                Runs = parse.GetValue(runs),
            },
            o => o.Validate(),
            (o, progress) => Task.FromResult(ForwardBenchmark.Run(o, progress)),
            RenderForward);
    }

    static void RenderForward(ForwardBenchmarkResult r)
    {
        var table = new Table().Border(TableBorder.Rounded).Title($"[bold]forward pass, {r.Length} input tokens, batch 1, f32[/] (median of {r.Runs}, {r.Threads} threads)");
        table.AddColumn("model");
        table.AddColumn("family");
        table.AddColumn(new TableColumn("parameters").RightAligned());
        table.AddColumn(new TableColumn("seconds").RightAligned());
        table.AddColumn(new TableColumn("tokens/s").RightAligned());
        foreach (var m in r.Models)
            table.AddRow(Markup.Escape(m.Preset), m.Family, $"{m.Parameters / 1e6:0.0}M", m.Seconds.ToString("0.000", CultureInfo.InvariantCulture), Common.F(m.TokensPerSecond));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine("[grey]Encoder–decoder: encode the input, then the first decoder step; decoder-only: the whole input through the stack.[/]");
    }
}
