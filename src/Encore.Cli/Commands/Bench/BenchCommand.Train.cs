namespace Encore.Cli.Commands;

// encore bench train: training throughput and memory beside PyTorch eager.
internal static partial class BenchCommand
{
    static Command CreateTrain()
    {
        var d = new TrainBenchmarkOptions();
        var threads = Common.ThreadsOption("Threads of the kernel pool, and of the PyTorch peer (default: the processor count).");
        var preset = new Option<string>("--preset", "--model", "-m") { Description = $"Encoder–decoder or decoder-only preset to train.", DefaultValueFactory = _ => d.Preset };
        var batch = new Option<int>("--batch") { Description = $"Sequences per batch.", DefaultValueFactory = _ => d.Batch };
        var srcLen = new Option<int>("--source-length") { Description = $"Source tokens per sequence.", DefaultValueFactory = _ => d.SourceLength };
        var tgtLen = new Option<int>("--target-length") { Description = $"Target tokens per sequence.", DefaultValueFactory = _ => d.TargetLength };
        var runs = RunsOption(d.Runs, $"Timed runs of {d.StepsPerRun} steps; the figure is their median");
        var noPeers = NoPeersOption("bench/peers/torch_train.py");
        var python = PythonOption();
        var checkpoint = new Option<bool>("--activation-checkpointing") { Description = "Train Encore's model with activation checkpointing per block (as `encore train --activation-checkpointing`); the peer trains as usual." };
        var moments = new Option<string>("--optimizer-moments") { Description = "Storage of Encore's AdamW moments: f32 or bf16 (as `encore train --optimizer-moments`); the peer keeps f32.", DefaultValueFactory = _ => "f32" };
        return Suite("train", "Training throughput (tokens/s, model GFLOP/s against the FMA peak) and memory, beside the same model in PyTorch eager.", [preset, batch, srcLen, tgtLen, runs, noPeers, python, checkpoint, moments],
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
                CheckpointActivations = parse.GetValue(checkpoint),
                OptimizerMoments = parse.GetValue(moments)!.ToLowerInvariant() switch
                {
                    "f32" or "fp32" => Encore.Tensors.DType.F32,
                    "bf16" or "bfloat16" => Encore.Tensors.DType.BF16,
                    var other => throw new ArgumentException($"--optimizer-moments: unknown storage '{other}' (f32, bf16)"),
                },
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
        table.AddColumn(new TableColumn("GFLOP/s").RightAligned());
        table.AddColumn(new TableColumn("of FMA peak").RightAligned());
        table.AddColumn(new TableColumn("peak RSS").RightAligned());
        void Row(string name, TrainFigure f)
        {
            double gflops = r.FlopsPerStep / f.SecondsPerStep / 1e9;
            table.AddRow(Markup.Escape(name), f.SecondsPerStep.ToString("0.000", CultureInfo.InvariantCulture),
                Common.F(f.TokensPerSecond), gflops.ToString("0.0", CultureInfo.InvariantCulture),
                r.Machine.FmaGflops > 0 ? (gflops / r.Machine.FmaGflops).ToString("0.0%", CultureInfo.InvariantCulture) : "–",
                $"{f.PeakWorkingSetBytes / (double)(1 << 20):0} MiB");
        }
        var notes = new List<string>();
        if (r.CheckpointActivations) notes.Add("activation checkpointing");
        if (r.OptimizerMoments != "f32") notes.Add($"{r.OptimizerMoments} moments");
        Row(notes.Count > 0 ? $"Encore ({string.Join(", ", notes)})" : "Encore", r.Encore);
        if (r.Torch != null) Row($"PyTorch {r.TorchVersion} eager", r.Torch);
        AnsiConsole.Write(table);
        if (r.EncoreOverTorch is { } ratio) AnsiConsole.MarkupLine($"Encore ÷ PyTorch tokens/s: [bold]{ratio.ToString("0.00", CultureInfo.InvariantCulture)}×[/]");
        AnsiConsole.MarkupLine($"[grey]tokens/s = B·(S+T) per step ÷ seconds per step; {r.FlopsPerToken / 1e6:0.0} MFLOP per token, {r.FlopsPerStep / 1e9:0.0} GFLOP per step " +
            $"(3 × forward matrix and attention FLOPs, bench/README.md); FMA peak {r.Machine.FmaGflops:0} GFLOP/s on {r.Threads} threads, probed in this run; " +
            $"parameters, gradients and AdamW moments take {r.ParameterAndOptimizerBytes / (double)(1 << 20):0} MiB.[/]");
        if (r.PeerNote is { } note) AnsiConsole.MarkupLine($"[yellow]Note:[/] {Markup.Escape(note)}");
    }
}
