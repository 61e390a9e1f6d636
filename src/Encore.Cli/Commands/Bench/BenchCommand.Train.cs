namespace Encore.Cli.Commands;

// encore bench train: training throughput and memory beside PyTorch eager.
internal static partial class BenchCommand
{
    static Command CreateTrain()
    {
        var d = new TrainBenchmarkOptions();
        var threads = Common.ThreadsOption("Threads of the kernel pool, and of the PyTorch peer (default: the processor count).");
        var preset = new Option<string>("--preset", "--model", "-m") { Description = $"Encoder–decoder preset to train.", DefaultValueFactory = _ => d.Preset };
        var batch = new Option<int>("--batch") { Description = $"Sequences per batch.", DefaultValueFactory = _ => d.Batch };
        var srcLen = new Option<int>("--source-length") { Description = $"Source tokens per sequence.", DefaultValueFactory = _ => d.SourceLength };
        var tgtLen = new Option<int>("--target-length") { Description = $"Target tokens per sequence.", DefaultValueFactory = _ => d.TargetLength };
        var runs = RunsOption(d.Runs, $"Timed runs of {d.StepsPerRun} steps; the figure is their median");
        var noPeers = NoPeersOption("bench/peers/torch_train.py");
        var python = PythonOption();
        return Suite("train", "Training throughput (tokens/s) and memory of an encoder–decoder, beside the same model in PyTorch eager.", [preset, batch, srcLen, tgtLen, runs, noPeers, python],
            parse => new TrainBenchmarkOptions
            {
                Threads = Common.Threads(parse, threads),
                Preset = parse.GetValue(preset)!,
                Batch = parse.GetValue(batch),
                SourceLength = parse.GetValue(srcLen),
                TargetLength = parse.GetValue(tgtLen),
                Runs = parse.GetValue(runs),
                Peers = !parse.GetValue(noPeers),
                Python = parse.GetValue(python),
            },
            o => o.Validate(),
            (o, progress) => Task.FromResult(TrainBenchmark.Run(o, progress)),
            RenderTrain,
            threads: threads);
    }

    static void RenderTrain(TrainBenchmarkResult r)
    {
        AnsiConsole.MarkupLine($"[bold]encore bench train[/]  {Markup.Escape(r.Preset)} ({r.Parameters / 1e6:0.0}M parameters), batch {r.Batch}×({r.SourceLength}+{r.TargetLength}) tokens, " +
            $"{r.Threads} threads, SIMD {Markup.Escape(r.Machine.Simd)}");
        var table = new Table().Border(TableBorder.Rounded).Title($"[bold]one AdamW step[/] (median of {r.Runs})");
        table.AddColumn("engine");
        table.AddColumn(new TableColumn("s/step").RightAligned());
        table.AddColumn(new TableColumn("tokens/s").RightAligned());
        table.AddColumn(new TableColumn("peak RSS").RightAligned());
        void Row(string name, TrainFigure f) => table.AddRow(Markup.Escape(name), f.SecondsPerStep.ToString("0.000", CultureInfo.InvariantCulture),
            Common.F(f.TokensPerSecond), $"{f.PeakWorkingSetBytes / (double)(1 << 20):0} MiB");
        Row("Encore", r.Encore);
        if (r.Torch != null) Row($"PyTorch {r.TorchVersion} eager", r.Torch);
        AnsiConsole.Write(table);
        if (r.EncoreOverTorch is { } ratio) AnsiConsole.MarkupLine($"Encore ÷ PyTorch tokens/s: [bold]{ratio.ToString("0.00", CultureInfo.InvariantCulture)}×[/]");
        AnsiConsole.MarkupLine($"[grey]tokens/s = B·(S+T) per step ÷ seconds per step; parameters, gradients and AdamW moments take {r.ParameterAndOptimizerBytes / (double)(1 << 20):0} MiB.[/]");
        if (r.PeerNote is { } note) AnsiConsole.MarkupLine($"[yellow]Note:[/] {Markup.Escape(note)}");
    }
}
