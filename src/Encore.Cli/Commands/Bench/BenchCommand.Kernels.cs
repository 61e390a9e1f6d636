using Encore.Tensors.Threading;

namespace Encore.Cli.Commands;

// encore bench kernels: GEMM, GEMV and dispatch figures against the FMA peak, the memory bandwidth and PyTorch.
internal static partial class BenchCommand
{
    static Command CreateKernels()
    {
        var defaults = new KernelBenchmarkOptions();
        var threads = Common.ThreadsOption("Threads of the kernel pool, and torch.set_num_threads for the peer (default: the processor count).");
        var runs = new Option<int>("--runs")
        {
            Description = $"Timed runs per figure; each figure is their median, after a warm-up run.",
            DefaultValueFactory = _ => defaults.Runs,
        };
        runs.Validators.Add(r =>
        {
            // Only a parsed value is checked; a token that is not an integer is the parser's error to report.
            if (r.Tokens.Count == 1 && int.TryParse(r.Tokens[0].Value, out int v) && v is < 1 or > 1000)
                r.AddError($"--runs must be between 1 and 1000, got {v}");
        });
        var noPeers = NoPeersOption("bench/peers/torch_kernels.py");
        var quick = new Option<bool>("--quick")
        {
            Description = "Smoke run for CI: small shapes (GEMM 256³…, GEMV 1024²) and a quick machine probe; figures are not comparable with a full run.",
        };
        var python = PythonOption("Python interpreter for the peer (default: ENCORE_PYTHON, then python3, then /usr/bin/python3, the first that imports torch).");
        return Suite("kernels", "GEMM GFLOP/s, batch-1 GEMV GB/s per weight dtype, prefill Linear GOP/s per weight dtype and thread-pool dispatch cost, against FMA peak, memory bandwidth and PyTorch.", [runs, noPeers, quick, python],
            parse => new KernelBenchmarkOptions
            {
                Threads = Common.Threads(parse, threads),
                Runs = parse.GetValue(runs),
                Peers = !parse.GetValue(noPeers),
                Quick = parse.GetValue(quick),
                Python = parse.GetValue(python),
            },
            o => o.Validate(),
            (o, progress) => Task.FromResult(KernelBenchmark.Run(o, progress)),
            Render,
            renders: "tables", threads: threads);
    }

    static void Render(KernelBenchmarkResult r)
    {
        var m = r.Machine;
        AnsiConsole.MarkupLine($"[bold]encore bench kernels[/]  SIMD {Markup.Escape(m.Simd)}, {r.Threads} threads, " +
            $"read bandwidth {Common.F(m.ReadGBPerSecond)} GB/s, FMA peak {Common.F(m.FmaGflops)} GFLOP/s" +
            $"{(r.Quick ? "  [yellow](--quick: small shapes, not comparable)[/]" : "")}");
        AnsiConsole.Write(Common.MachineTable(m));

        bool peer = r.Peer.Ran;
        var gemm = new Table().Border(TableBorder.Rounded).Title($"[bold]GEMM f32, GFLOP/s[/] (median of {r.Runs})");
        gemm.AddColumn("shape M×K×N");
        gemm.AddColumn(new TableColumn("GFLOP/s").RightAligned());
        gemm.AddColumn(new TableColumn("of FMA peak").RightAligned());
        if (peer)
        {
            gemm.AddColumn(new TableColumn("PyTorch").RightAligned());
            gemm.AddColumn(new TableColumn("Encore/PyTorch").RightAligned());
        }
        foreach (var g in r.Gemm)
        {
            var row = new List<string> { g.Shape, Common.F(g.Gflops), Percent(g.FractionOfFmaPeak) };
            if (peer) row.AddRange([Num(g.TorchGflops), Times(g.EncoreOverTorch)]);
            gemm.AddRow(row.Select(Markup.Escape).ToArray());
        }
        AnsiConsole.Write(gemm);

        var gemv = new Table().Border(TableBorder.Rounded).Title($"[bold]GEMV batch 1, weight GB/s[/] (median of {r.Runs})");
        gemv.AddColumn("weights");
        gemv.AddColumn("N×K");
        gemv.AddColumn(new TableColumn("matrices").RightAligned());
        gemv.AddColumn(new TableColumn("GB/s").RightAligned());
        gemv.AddColumn(new TableColumn("of read BW").RightAligned());
        if (peer)
        {
            gemv.AddColumn(new TableColumn("PyTorch").RightAligned());
            gemv.AddColumn(new TableColumn("ratio").RightAligned());
            gemv.Caption("[grey]ratio = Encore ÷ PyTorch[/]");
        }
        foreach (var g in r.Gemv)
        {
            var row = new List<string>
            {
                g.Weights, $"{g.N}×{g.K}", $"{g.Matrices}×{g.BytesPerMatrix / (double)(1 << 20):0.#} MiB",
                Common.F(g.GBPerSecond), Percent(g.FractionOfBandwidth),
            };
            if (peer) row.AddRange([Num(g.TorchGBPerSecond), Times(g.EncoreOverTorch)]);
            gemv.AddRow(row.Select(Markup.Escape).ToArray());
        }
        AnsiConsole.Write(gemv);
        if (peer)
        {
            foreach (var g in r.Gemv)
                AnsiConsole.MarkupLine($"[grey]  PyTorch {Markup.Escape(g.Weights)}: {Markup.Escape(g.TorchCompared ?? "not measured")}[/]");
        }

        var linear = new Table().Border(TableBorder.Rounded).Title($"[bold]Prefill Linear Y = X·Wᵀ, GOP/s[/] (median of {r.Runs})");
        linear.AddColumn("shape M×K×N");
        linear.AddColumn("weights");
        linear.AddColumn("path");
        linear.AddColumn(new TableColumn("GOP/s").RightAligned());
        linear.AddColumn(new TableColumn("of FMA peak").RightAligned());
        linear.AddColumn(new TableColumn("÷ f32 time").RightAligned());
        foreach (var l in r.Linear)
            linear.AddRow(new[] { l.Shape, l.Weights, l.Path, Common.F(l.Gops), Percent(l.FractionOfFmaPeak), Times(l.SpeedupOverF32) }.Select(Markup.Escape).ToArray());
        linear.Caption("[grey]÷ f32 time = f32 weights' seconds ÷ these weights' seconds, same shape and X[/]");
        AnsiConsole.Write(linear);

        AnsiConsole.MarkupLine($"KernelPool dispatch of {r.DispatchTasks} empty tasks, back to back: [bold]{r.DispatchMicroseconds.ToString("0.00", CultureInfo.InvariantCulture)} µs[/] (median of {r.Runs})");
        AnsiConsole.MarkupLine($"[grey]GEMM shapes: {Markup.Escape(r.GemmConvention)}. GFLOP/s count a multiply-add as 2 flops.[/]");
        AnsiConsole.MarkupLine($"[grey]GEMV: {Markup.Escape(r.GemvNote)}.[/]");
        AnsiConsole.MarkupLine($"[grey]Each figure: warm-up run dropped, then the median of {r.Runs} runs of ≥ {r.MinRunSeconds:0.###} s each; \"of FMA peak\" and \"of read BW\" divide by the all-thread probe figures above.[/]");
        if (r.Peer.Ran)
            AnsiConsole.MarkupLine($"[grey]Peer: PyTorch {Markup.Escape(r.Peer.Version ?? "?")} ({Markup.Escape(r.Peer.Interpreter ?? "?")}, {r.Peer.Threads} threads; " +
                $"BLAS: {Markup.Escape(r.Peer.MathLibraries ?? "unknown")}), run after Encore with the same shapes and timing rule.[/]");
        if (r.Peer.Note is { } note) AnsiConsole.MarkupLine($"[yellow]Note:[/] {Markup.Escape(note)}");
    }
}
