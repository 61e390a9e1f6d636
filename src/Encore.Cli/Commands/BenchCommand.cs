using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Encore.Bench;
using Encore.Tensors;
using Encore.Tensors.Threading;
using Spectre.Console;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore bench</c>: benchmark suites, each a subcommand (kernels, train, forward, generate, arch, peers, serve).
/// The measuring code lives in
/// bench/Encore.Bench; this file parses options and renders.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var cmd = new Command("bench", $"Benchmark suites, measured side by side with their peers (PyTorch) on this machine. " +
            $"Suites: {string.Join(", ", BenchInfo.Suites)} .")
        {
            CreateKernels(),
            CreateTrain(),
            CreateForward(),
            CreateGenerate(),
            CreateArch(),
            CreateServe(),
            CreatePeers(),
        };
        return cmd;
    }

    static Command CreateKernels()
    {
        var defaults = new KernelBenchmarkOptions();
        var json = new Option<bool>("--json") { Description = "Print one JSON object (snake_case keys) instead of tables." };
        var threads = InfoCommand.ThreadsOption("Threads of the kernel pool, and torch.set_num_threads for the peer (default: the processor count).");
        var runs = new Option<int>("--runs")
        {
            Description = $"Timed runs per figure; each figure is their median, after a warm-up run (default {defaults.Runs}).",
            DefaultValueFactory = _ => defaults.Runs,
        };
        runs.Validators.Add(r =>
        {
            // Only a parsed value is checked; a token that is not an integer is the parser's error to report.
            if (r.Tokens.Count == 1 && int.TryParse(r.Tokens[0].Value, out int v) && v is < 1 or > 1000)
                r.AddError($"--runs must be between 1 and 1000, got {v}");
        });
        var noPeers = new Option<bool>("--no-peers") { Description = "Do not run the PyTorch peer (bench/peers/torch_kernels.py)." };
        var quick = new Option<bool>("--quick")
        {
            Description = "Smoke run for CI: small shapes (GEMM 256³…, GEMV 1024²) and a quick machine probe; figures are not comparable with a full run.",
        };
        var python = new Option<string?>("--python")
        {
            Description = "Python interpreter for the peer (default: ENCORE_PYTHON, then python3, then /usr/bin/python3, the first that imports torch).",
        };
        var cmd = new Command("kernels", "GEMM GFLOP/s, batch-1 GEMV GB/s per weight dtype and thread-pool dispatch cost, against FMA peak, memory bandwidth and PyTorch.")
        {
            json, threads, runs, noPeers, quick, python,
        };
        cmd.SetAction(parse =>
        {
            var options = new KernelBenchmarkOptions
            {
                Threads = parse.GetValue(threads),
                Runs = parse.GetValue(runs),
                Peers = !parse.GetValue(noPeers),
                Quick = parse.GetValue(quick),
                Python = parse.GetValue(python),
            };
            options.Validate();
            KernelPool.Default = new KernelPool(options.Threads);
            var result = KernelBenchmark.Run(options, line => Console.Error.WriteLine($"bench kernels: {line}…"));
            if (parse.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(result, InfoCommand.Json));
            else Render(result);
            return 0;
        });
        return cmd;
    }

    static Command CreateTrain()
    {
        var d = new TrainBenchmarkOptions();
        var json = new Option<bool>("--json") { Description = "Print one JSON object (snake_case keys) instead of a table." };
        var threads = InfoCommand.ThreadsOption("Threads of the kernel pool, and of the PyTorch peer (default: the processor count).");
        var preset = new Option<string>("--preset") { Description = $"Encoder–decoder preset to train (default {d.Preset}).", DefaultValueFactory = _ => d.Preset };
        var batch = new Option<int>("--batch") { Description = $"Sequences per batch (default {d.Batch}).", DefaultValueFactory = _ => d.Batch };
        var srcLen = new Option<int>("--source-length") { Description = $"Source tokens per sequence (default {d.SourceLength}).", DefaultValueFactory = _ => d.SourceLength };
        var tgtLen = new Option<int>("--target-length") { Description = $"Target tokens per sequence (default {d.TargetLength}).", DefaultValueFactory = _ => d.TargetLength };
        var runs = new Option<int>("--runs") { Description = $"Timed runs of {d.StepsPerRun} steps; the figure is their median (default {d.Runs}).", DefaultValueFactory = _ => d.Runs };
        var noPeers = new Option<bool>("--no-peers") { Description = "Do not run the PyTorch peer (bench/peers/torch_train.py)." };
        var python = new Option<string?>("--python") { Description = "Python interpreter for the peer (default: ENCORE_PYTHON, python3, /usr/bin/python3)." };
        var cmd = new Command("train", "Training throughput (tokens/s) and memory of an encoder–decoder, beside the same model in PyTorch eager.")
        {
            json, threads, preset, batch, srcLen, tgtLen, runs, noPeers, python,
        };
        cmd.SetAction(parse =>
        {
            var o = new TrainBenchmarkOptions
            {
                Threads = parse.GetValue(threads),
                Preset = parse.GetValue(preset)!,
                Batch = parse.GetValue(batch),
                SourceLength = parse.GetValue(srcLen),
                TargetLength = parse.GetValue(tgtLen),
                Runs = parse.GetValue(runs),
                Peers = !parse.GetValue(noPeers),
                Python = parse.GetValue(python),
            };
            o.Validate();
            KernelPool.Default = new KernelPool(o.Threads);
            var r = TrainBenchmark.Run(o, line => Console.Error.WriteLine($"bench train: {line}…"));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(r, InfoCommand.Json));
                return 0;
            }
            AnsiConsole.MarkupLine($"[bold]encore bench train[/]  {Markup.Escape(r.Preset)} ({r.Parameters / 1e6:0.0}M parameters), batch {r.Batch}×({r.SourceLength}+{r.TargetLength}) tokens, " +
                $"{r.Threads} threads, SIMD {Markup.Escape(r.Machine.Simd)}");
            var table = new Table().Border(TableBorder.Rounded).Title($"[bold]one AdamW step[/] (median of {r.Runs})");
            table.AddColumn("engine");
            table.AddColumn(new TableColumn("s/step").RightAligned());
            table.AddColumn(new TableColumn("tokens/s").RightAligned());
            table.AddColumn(new TableColumn("peak RSS").RightAligned());
            void Row(string name, TrainFigure f) => table.AddRow(Markup.Escape(name), f.SecondsPerStep.ToString("0.000", CultureInfo.InvariantCulture),
                InfoCommand.F(f.TokensPerSecond), $"{f.PeakWorkingSetBytes / (double)(1 << 20):0} MiB");
            Row("Encore", r.Encore);
            if (r.Torch != null) Row($"PyTorch {r.TorchVersion} eager", r.Torch);
            AnsiConsole.Write(table);
            if (r.EncoreOverTorch is { } ratio) AnsiConsole.MarkupLine($"Encore ÷ PyTorch tokens/s: [bold]{ratio.ToString("0.00", CultureInfo.InvariantCulture)}×[/]");
            AnsiConsole.MarkupLine($"[grey]tokens/s = B·(S+T) per step ÷ seconds per step; parameters, gradients and AdamW moments take {r.ParameterAndOptimizerBytes / (double)(1 << 20):0} MiB.[/]");
            if (r.PeerNote is { } note) AnsiConsole.MarkupLine($"[yellow]Note:[/] {Markup.Escape(note)}");
            return 0;
        });
        return cmd;
    }

    static Command CreateForward()
    {
        var d = new ForwardBenchmarkOptions();
        var json = new Option<bool>("--json") { Description = "Print one JSON object (snake_case keys) instead of a table." };
        var threads = InfoCommand.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var presets = new Option<string[]>("--preset") { Description = $"Presets to compare (repeatable; default {string.Join(", ", d.Presets)}).", AllowMultipleArgumentsPerToken = true };
        var length = new Option<int>("--length") { Description = $"Input tokens (default {d.Length}).", DefaultValueFactory = _ => d.Length };
        var runs = new Option<int>("--runs") { Description = $"Timed runs; the figure is their median (default {d.Runs}).", DefaultValueFactory = _ => d.Runs };
        var cmd = new Command("forward", "F32 forward throughput of models on one input of a given length (random weights, batch 1).")
        {
            json, threads, presets, length, runs,
        };
        cmd.SetAction(parse =>
        {
            var chosen = parse.GetValue(presets);
            var o = new ForwardBenchmarkOptions
            {
                Presets = chosen is { Length: > 0 } ? chosen : d.Presets,
                Length = parse.GetValue(length),
                Runs = parse.GetValue(runs),
            };
            o.Validate();
            KernelPool.Default = new KernelPool(parse.GetValue(threads));
            var r = ForwardBenchmark.Run(o, line => Console.Error.WriteLine($"bench forward: {line}…"));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(r, InfoCommand.Json));
                return 0;
            }
            var table = new Table().Border(TableBorder.Rounded).Title($"[bold]forward pass, {r.Length} input tokens, batch 1, f32[/] (median of {r.Runs}, {r.Threads} threads)");
            table.AddColumn("model");
            table.AddColumn("family");
            table.AddColumn(new TableColumn("parameters").RightAligned());
            table.AddColumn(new TableColumn("seconds").RightAligned());
            table.AddColumn(new TableColumn("tokens/s").RightAligned());
            foreach (var m in r.Models)
                table.AddRow(Markup.Escape(m.Preset), m.Family, $"{m.Parameters / 1e6:0.0}M", m.Seconds.ToString("0.000", CultureInfo.InvariantCulture), InfoCommand.F(m.TokensPerSecond));
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine("[grey]Encoder–decoder: encode the input, then the first decoder step; decoder-only: the whole input through the stack.[/]");
            return 0;
        });
        return cmd;
    }

    static Command CreateGenerate()
    {
        var d = new GenerateBenchmarkOptions();
        var json = new Option<bool>("--json") { Description = "Print one JSON object (snake_case keys) instead of a table." };
        var threads = InfoCommand.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var presets = new Option<string[]>("--preset") { Description = $"Presets (repeatable; default {string.Join(", ", d.Presets)}).", AllowMultipleArgumentsPerToken = true };
        var batches = new Option<int[]>("--batch") { Description = $"Batch sizes (repeatable; default {string.Join(", ", d.Batches)}).", AllowMultipleArgumentsPerToken = true };
        var input = new Option<int>("--input-length") { Description = $"Input tokens per sequence (default {d.InputLength}).", DefaultValueFactory = _ => d.InputLength };
        var output = new Option<int>("--new-tokens") { Description = $"Generated tokens per sequence (default {d.NewTokens}).", DefaultValueFactory = _ => d.NewTokens };
        var weights = new Option<string>("--weights") { Description = $"Weight dtype: f32, bf16, f16, q8_0 (default {d.Weights.Name()}).", DefaultValueFactory = _ => d.Weights.Name() };
        var runs = new Option<int>("--runs") { Description = $"Timed runs; figures are medians (default {d.Runs}).", DefaultValueFactory = _ => d.Runs };
        var cmd = new Command("generate", "First-token latency and decode tokens/s of greedy generation, beside the memory-bandwidth bound.")
        {
            json, threads, presets, batches, input, output, weights, runs,
        };
        cmd.SetAction(parse =>
        {
            var o = new GenerateBenchmarkOptions
            {
                Presets = parse.GetValue(presets) is { Length: > 0 } p ? p : d.Presets,
                Batches = parse.GetValue(batches) is { Length: > 0 } b ? b : d.Batches,
                InputLength = parse.GetValue(input),
                NewTokens = parse.GetValue(output),
                Weights = Encore.Tensors.DTypes.Parse(parse.GetValue(weights)!),
                Runs = parse.GetValue(runs),
            };
            o.Validate();
            KernelPool.Default = new KernelPool(parse.GetValue(threads));
            var r = GenerateBenchmark.Run(o, line => Console.Error.WriteLine($"bench generate: {line}…"));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(r, InfoCommand.Json));
                return 0;
            }
            var table = new Table().Border(TableBorder.Rounded)
                .Title($"[bold]greedy generation, {r.InputLength} in → {r.NewTokens} out, {r.Weights} weights[/] (median of {r.Runs}, {r.Threads} threads)");
            foreach (var col in new[] { "model", "batch", "first token (s)", "decode tok/s", "MB read/step", "bound tok/s", "of bound" })
                table.AddColumn(col == "model" ? new TableColumn(col) : new TableColumn(col).RightAligned());
            foreach (var f in r.Figures)
                table.AddRow(Markup.Escape(f.Preset), f.Batch.ToString(CultureInfo.InvariantCulture), f.FirstTokenSeconds.ToString("0.000", CultureInfo.InvariantCulture),
                    InfoCommand.F(f.DecodeTokensPerSecond), (f.BytesPerStep / 1e6).ToString("0", CultureInfo.InvariantCulture), InfoCommand.F(f.BoundTokensPerSecond),
                    f.FractionOfBound is { } q ? (q * 100).ToString("0", CultureInfo.InvariantCulture) + "%" : "–");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"[grey]Bound = measured read bandwidth ({InfoCommand.F(r.Machine.ReadGBPerSecond)} GB/s) ÷ bytes a batch-1 step reads (the weights it uses + its caches). Decode tok/s counts every sequence of the batch.[/]");
            return 0;
        });
        return cmd;
    }

    static Command CreateArch()
    {
        var d = new ArchBenchmarkOptions();
        var json = new Option<bool>("--json") { Description = "Print one JSON object (snake_case keys) instead of Markdown." };
        var threads = InfoCommand.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var plot = new Option<string?>("--plot") { Description = "Write a PNG of first-token latency against input length." };
        var lengths = new Option<int[]>("--lengths") { Description = $"Input lengths (repeatable; default {string.Join(", ", d.InputLengths)}).", AllowMultipleArgumentsPerToken = true };
        var small = new Option<bool>("--small") { Description = "Only the 25M pair (quick)." };
        var weights = new Option<string>("--weights") { Description = $"Weight dtype: f32, bf16, f16, q8_0 (default {d.Weights.Name()}).", DefaultValueFactory = _ => d.Weights.Name() };
        var runs = new Option<int>("--runs") { Description = $"Timed runs; figures are medians (default {d.Runs}).", DefaultValueFactory = _ => d.Runs };
        var cmd = new Command("arch", "Encoder–decoder vs decoder-only of equal size across input lengths: first-token latency, decode tokens/s, cache memory, FLOPs.")
        {
            json, threads, plot, lengths, small, weights, runs,
        };
        cmd.SetAction(parse =>
        {
            var o = d with
            {
                Plot = parse.GetValue(plot),
                InputLengths = parse.GetValue(lengths) is { Length: > 0 } l ? l : d.InputLengths,
                Pairs = parse.GetValue(small) ? [("mu-25m", "decoder-25m")] : d.Pairs,
                Weights = DTypes.Parse(parse.GetValue(weights)!),
                Runs = parse.GetValue(runs),
            };
            if (o.Runs < 1 || o.InputLengths.Any(x => x < 1)) throw new ArgumentException("--runs and --lengths must be positive");
            KernelPool.Default = new KernelPool(parse.GetValue(threads));
            var r = ArchBenchmark.Run(o, line => Console.Error.WriteLine($"bench arch: {line}…"));
            if (parse.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(r, InfoCommand.Json));
            else Console.WriteLine(r.Markdown);
            return 0;
        });
        return cmd;
    }

    static Command CreateServe()
    {
        var d = new ServeLoadOptions();
        var json = new Option<bool>("--json") { Description = "Print one JSON object (snake_case keys) instead of lines." };
        var threads = InfoCommand.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var preset = new Option<string>("--preset") { Description = $"Preset served with random weights (default {d.Preset}).", DefaultValueFactory = _ => d.Preset };
        var clients = new Option<int>("--clients") { Description = $"Concurrent streaming clients (default {d.Clients}).", DefaultValueFactory = _ => d.Clients };
        var requests = new Option<int>("--requests") { Description = $"Requests of the concurrent phase (default {d.Requests}).", DefaultValueFactory = _ => d.Requests };
        var single = new Option<int>("--single-requests") { Description = $"Requests of the single-client phase (default {d.SingleRequests}).", DefaultValueFactory = _ => d.SingleRequests };
        var maxTokens = new Option<int>("--max-tokens") { Description = $"Tokens per request (default {d.MaxTokens}).", DefaultValueFactory = _ => d.MaxTokens };
        var weights = new Option<string>("--weights") { Description = $"Weight dtype: f32, bf16, f16, q8_0 (default {d.Weights.Name()}).", DefaultValueFactory = _ => d.Weights.Name() };
        var cmd = new Command("serve", "Load test of encore serve: aggregate tokens/s of N concurrent streaming clients against one, time to first token, errors, memory.")
        {
            json, threads, preset, clients, requests, single, maxTokens, weights,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var o = new ServeLoadOptions
            {
                Preset = parse.GetValue(preset)!,
                Clients = parse.GetValue(clients),
                Requests = parse.GetValue(requests),
                SingleRequests = parse.GetValue(single),
                MaxTokens = parse.GetValue(maxTokens),
                Weights = Encore.Tensors.DTypes.Parse(parse.GetValue(weights)!),
            };
            o.Validate();
            KernelPool.Default = new KernelPool(parse.GetValue(threads));
            var r = await ServeLoadBenchmark.RunAsync(o, line => Console.Error.WriteLine($"bench serve: {line}…"));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(r, InfoCommand.Json));
                return 0;
            }
            var inv = CultureInfo.InvariantCulture;
            Console.WriteLine($"{r.Preset} ({r.Parameters / 1e6:0.0}M parameters, vocab {r.VocabSize}, {r.Weights}), {r.MaxTokens} tokens per request, {r.Threads} threads");
            foreach (var (name, p) in new[] { ("single", r.Single), ("load", r.Load) })
                Console.WriteLine(string.Format(inv, "{0,-7} clients {1,3}  requests {2,5}  errors {3}  tokens/s {4,8:0.0}  ttft p50 {5:0.000} s  p95 {6:0.000} s",
                    name, p.Clients, p.Requests, p.Errors, p.TokensPerSecond, p.TtftP50Seconds, p.TtftP95Seconds));
            Console.WriteLine(string.Format(inv, "speedup {0:0.00}×; working set {1:0} → {2:0} MB, managed heap {3:0.0} → {4:0.0} MB (after warm-up → after all requests)",
                r.Speedup, r.WorkingSetAfterWarmupMB, r.WorkingSetAfterMB, r.ManagedHeapAfterWarmupMB, r.ManagedHeapAfterMB));
            return 0;
        });
        return cmd;
    }

    static Command CreatePeers()
    {
        var d = new PeersBenchmarkOptions();
        var json = new Option<bool>("--json") { Description = "Print one JSON object (snake_case keys) instead of a table." };
        var models = new Option<string[]>("--model") { Description = $"Models (repeatable; {string.Join(", ", PeersBenchmark.Models)}; default {string.Join(", ", d.Models)}).", AllowMultipleArgumentsPerToken = true };
        var inputs = new Option<int[]>("--input-length") { Description = $"Prompt lengths (repeatable; default {string.Join(", ", d.InputLengths)}).", AllowMultipleArgumentsPerToken = true };
        var output = new Option<int>("--new-tokens") { Description = $"Generated tokens (default {d.NewTokens}).", DefaultValueFactory = _ => d.NewTokens };
        var weights = new Option<string[]>("--weights") { Description = "Weight types (repeatable: f32, q8_0; default both).", AllowMultipleArgumentsPerToken = true };
        var runs = new Option<int>("--runs") { Description = $"Timed runs after a warm-up; figures are medians (default {d.Runs}).", DefaultValueFactory = _ => d.Runs };
        var threads = new Option<int>("--threads") { Description = $"Threads of every engine (default {d.Threads}).", DefaultValueFactory = _ => d.Threads };
        var work = new Option<string?>("--work-dir") { Description = "Where the checkpoints and GGUF files are written (default: encore-bench-peers under the temporary directory)." };
        var noLlama = new Option<bool>("--no-llama-cpp") { Description = "Do not run llama.cpp." };
        var noTorch = new Option<bool>("--no-torch") { Description = "Do not run PyTorch (bench/peers/torch_generate.py)." };
        var python = new Option<string?>("--python") { Description = "Python interpreter for the PyTorch peer (default: ENCORE_PYTHON, python3, /usr/bin/python3)." };
        var cmd = new Command("peers", "Greedy generation of the same random models and prompts in Encore, llama.cpp (LLamaSharp, GGUF) and PyTorch eager: outputs compared, first-token latency and decode tokens/s.")
        {
            json, models, inputs, output, weights, runs, threads, work, noLlama, noTorch, python,
        };
        cmd.SetAction(parse =>
        {
            var o = new PeersBenchmarkOptions
            {
                Models = parse.GetValue(models) is { Length: > 0 } m ? m : d.Models,
                InputLengths = parse.GetValue(inputs) is { Length: > 0 } i ? i : d.InputLengths,
                NewTokens = parse.GetValue(output),
                Weights = parse.GetValue(weights) is { Length: > 0 } w ? w.Select(DTypes.Parse).ToArray() : d.Weights,
                Runs = parse.GetValue(runs),
                Threads = parse.GetValue(threads),
                WorkDirectory = parse.GetValue(work),
                LlamaCpp = !parse.GetValue(noLlama),
                Torch = !parse.GetValue(noTorch),
                Python = parse.GetValue(python),
            };
            o.Validate();
            KernelPool.Default = new KernelPool(o.Threads);
            var r = PeersBenchmark.Run(o, line => Console.Error.WriteLine($"bench peers: {line}…"));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(r, InfoCommand.Json));
                return 0;
            }
            AnsiConsole.MarkupLine($"[bold]encore bench peers[/]  {r.Threads} threads, {r.NewTokens} new tokens, median of {r.Runs} runs, SIMD {Markup.Escape(r.Machine.Simd)}, " +
                $"read bandwidth {InfoCommand.F(r.Machine.ReadGBPerSecond)} GB/s");
            var table = new Table().Border(TableBorder.Rounded).Title("[bold]greedy generation, same weights and prompts[/]");
            foreach (var col in new[] { "model", "weights", "input", "engine", "first token (s)", "decode tok/s", "of bandwidth bound", "Encore ÷ peer tok/s", "peer ÷ Encore first-token s", "identical tokens" })
                table.AddColumn(col is "model" or "weights" or "engine" ? new TableColumn(col) : new TableColumn(col).RightAligned());
            foreach (var f in r.Figures)
                table.AddRow(Markup.Escape(f.Model), f.Weights, f.InputLength.ToString(CultureInfo.InvariantCulture), Markup.Escape(f.Engine),
                    f.FirstTokenSeconds.ToString("0.000", CultureInfo.InvariantCulture), InfoCommand.F(f.DecodeTokensPerSecond),
                    f.FractionOfBound is { } b ? $"{b:P0} of {InfoCommand.F(f.ReadGBPerSecond ?? 0)} GB/s" : "–",
                    Times(f.EncoreOverPeer), Times(f.EncoreFirstTokenSpeedup), $"{f.IdenticalTokens}/{f.Tokens}");
            AnsiConsole.Write(table);
            if (r.Claims.Count > 0)
            {
                var claims = new Table().Border(TableBorder.Rounded).Title("[bold]encoder–decoder in Encore against decoder-only in llama.cpp[/]");
                foreach (var col in new[] { "weights", "input", "first token (s) enc–dec / dec-only", "decode tok/s enc–dec / dec-only", "first token, dec-only ÷ enc–dec", "decode, enc–dec ÷ dec-only" })
                    claims.AddColumn(col);
                foreach (var c in r.Claims)
                    claims.AddRow(c.Weights, c.InputLength.ToString(CultureInfo.InvariantCulture),
                        $"{c.EncoderDecoderFirstTokenSeconds.ToString("0.000", CultureInfo.InvariantCulture)} / {c.DecoderOnlyFirstTokenSeconds.ToString("0.000", CultureInfo.InvariantCulture)}",
                        $"{InfoCommand.F(c.EncoderDecoderTokensPerSecond)} / {InfoCommand.F(c.DecoderOnlyTokensPerSecond)}", Times(c.FirstTokenSpeedup), Times(c.DecodeRatio));
                AnsiConsole.Write(claims);
                AnsiConsole.MarkupLine($"[grey]{Markup.Escape(r.Claims[0].EncoderDecoder)} against {Markup.Escape(r.Claims[0].DecoderOnly)}: above 1× the encoder–decoder is ahead.[/]");
            }
            AnsiConsole.MarkupLine("[grey]First token: encode + first decoder step (encoder–decoder) or prefill (decoder-only), then one argmax. Identical tokens: leading greedy tokens equal to Encore's. " +
                "llama.cpp runs the GGUF written by encore's exporter with f32 KV caches; PyTorch runs f32 only.[/]");
            foreach (var note in r.Notes) AnsiConsole.MarkupLine($"[yellow]Note:[/] {Markup.Escape(note)}");
            return 0;
        });
        return cmd;
    }

    static void Render(KernelBenchmarkResult r)
    {
        var m = r.Machine;
        AnsiConsole.MarkupLine($"[bold]encore bench kernels[/]  SIMD {Markup.Escape(m.Simd)}, {r.Threads} threads, " +
            $"read bandwidth {InfoCommand.F(m.ReadGBPerSecond)} GB/s, FMA peak {InfoCommand.F(m.FmaGflops)} GFLOP/s" +
            $"{(r.Quick ? "  [yellow](--quick: small shapes, not comparable)[/]" : "")}");
        AnsiConsole.Write(InfoCommand.MachineTable(m));

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
            var row = new List<string> { g.Shape, InfoCommand.F(g.Gflops), Percent(g.FractionOfFmaPeak) };
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
                InfoCommand.F(g.GBPerSecond), Percent(g.FractionOfBandwidth),
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

        AnsiConsole.MarkupLine($"KernelPool dispatch of {r.DispatchTasks} empty tasks, back to back: [bold]{r.DispatchMicroseconds.ToString("0.00", CultureInfo.InvariantCulture)} µs[/] (median of {r.Runs})");
        AnsiConsole.MarkupLine($"[grey]GEMM shapes: {Markup.Escape(r.GemmConvention)}. GFLOP/s count a multiply-add as 2 flops.[/]");
        AnsiConsole.MarkupLine($"[grey]GEMV: {Markup.Escape(r.GemvNote)}.[/]");
        AnsiConsole.MarkupLine($"[grey]Each figure: warm-up run dropped, then the median of {r.Runs} runs of ≥ {r.MinRunSeconds:0.###} s each; \"of FMA peak\" and \"of read BW\" divide by the all-thread probe figures above.[/]");
        if (r.Peer.Ran)
            AnsiConsole.MarkupLine($"[grey]Peer: PyTorch {Markup.Escape(r.Peer.Version ?? "?")} ({Markup.Escape(r.Peer.Interpreter ?? "?")}, {r.Peer.Threads} threads; " +
                $"BLAS: {Markup.Escape(r.Peer.MathLibraries ?? "unknown")}), run after Encore with the same shapes and timing rule.[/]");
        if (r.Peer.Note is { } note) AnsiConsole.MarkupLine($"[yellow]Note:[/] {Markup.Escape(note)}");
    }

    static string Num(double? x) => x is { } v ? InfoCommand.F(v) : "–";

    static string Percent(double? x) => x is { } v ? (v * 100).ToString(v < 0.001 ? "0.000" : "0.0", CultureInfo.InvariantCulture) + "%" : "–";

    static string Times(double? x) => x is { } v ? v.ToString(v < 0.1 ? "0.000" : "0.00", CultureInfo.InvariantCulture) + "×" : "–";
}
