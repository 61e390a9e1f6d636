using Encore.Tensors;

namespace Encore.Cli.Commands;

// encore bench peers: greedy generation in Encore, llama.cpp and PyTorch side by side.
internal static partial class BenchCommand
{
    static Command CreatePeers()
    {
        var d = new PeersBenchmarkOptions();
        var models = new Option<string[]>("--model", "-m") { Description = $"Models (repeatable; {string.Join(", ", PeerModels.Names)}; default {string.Join(", ", d.Models)}).", AllowMultipleArgumentsPerToken = true };
        var inputs = new Option<int[]>("--input-length") { Description = $"Prompt lengths (repeatable; default {string.Join(", ", d.InputLengths)}).", AllowMultipleArgumentsPerToken = true };
        var output = new Option<int>("--new-tokens") { Description = $"Generated tokens.", DefaultValueFactory = _ => d.NewTokens };
        var weights = new Option<string[]>("--weights") { Description = "Weight types (repeatable: f32, q8_0, q4_0; default all three).", AllowMultipleArgumentsPerToken = true };
        var runs = RunsOption(d.Runs, $"Timed runs after a warm-up; figures are medians");
        var threads = new Option<int>("--threads") { Description = $"Threads of every engine.", DefaultValueFactory = _ => d.Threads };
        var work = new Option<string?>("--work-dir") { Description = "Where the checkpoints and GGUF files are written (default: encore-bench-peers under the temporary directory)." };
        var noLlama = new Option<bool>("--no-llama-cpp") { Description = "Do not run llama.cpp." };
        var llamaPeer = new Option<string?>("--llama-cpp-peer")
        {
            Description = $"The llama.cpp peer plug-in: {GgufPeers.LlamaCppAssembly} or its folder (default: {GgufPeers.LlamaCppVariable}, else the build of bench/Encore.Bench.LlamaCpp in the source tree encore was built from).",
        };
        var noTorch = new Option<bool>("--no-torch") { Description = "Do not run PyTorch (bench/peers/torch_generate.py)." };
        var python = PythonOption("Python interpreter for the PyTorch peer (default: ENCORE_PYTHON, python3, /usr/bin/python3).");
        const string about = "Greedy generation of the same random models and prompts in Encore, llama.cpp (LLamaSharp, GGUF) and PyTorch eager: " +
            "outputs compared, first-token latency and decode tokens/s.";
        return Suite("peers", about, [models, inputs, output, weights, runs, work, noLlama, llamaPeer, noTorch, python],
            parse => new PeersBenchmarkOptions
            {
                Models = parse.GetValue(models) is { Length: > 0 } m ? m : d.Models,
                InputLengths = parse.GetValue(inputs) is { Length: > 0 } i ? i : d.InputLengths,
                NewTokens = parse.GetValue(output),
                Weights = parse.GetValue(weights) is { Length: > 0 } w ? w.Select(DTypes.Parse).ToArray() : d.Weights,
                Runs = parse.GetValue(runs),
                Threads = parse.GetValue(threads),
                WorkDirectory = parse.GetValue(work),
                LlamaCpp = !parse.GetValue(noLlama),
                LlamaCppPeer = parse.GetValue(llamaPeer),
                Torch = !parse.GetValue(noTorch),
                Python = parse.GetValue(python),
            },
            o => o.Validate(),
            (o, progress) => Task.FromResult(PeersBenchmark.Run(o, progress)),
            RenderPeers,
            threads: threads);
    }

    static void RenderPeers(PeersBenchmarkResult r)
    {
        AnsiConsole.MarkupLine($"[bold]encore bench peers[/]  {r.Threads} threads, {r.NewTokens} new tokens, median of {r.Runs} runs, SIMD {Markup.Escape(r.Machine.Simd)}, " +
            $"read bandwidth {Common.F(r.Machine.ReadGBPerSecond)} GB/s");
        var table = new Table().Border(TableBorder.Rounded).Title("[bold]greedy generation, same weights and prompts[/]");
        foreach (var col in new[] { "model", "weights", "input", "engine", "first token (s)", "decode tok/s", "of bandwidth bound", "Encore ÷ peer tok/s", "peer ÷ Encore first-token s", "identical tokens" })
            table.AddColumn(col is "model" or "weights" or "engine" ? new TableColumn(col) : new TableColumn(col).RightAligned());
        foreach (var f in r.Figures)
            table.AddRow(Markup.Escape(f.Model), f.Weights, f.InputLength.ToString(CultureInfo.InvariantCulture), Markup.Escape(f.Engine),
                f.FirstTokenSeconds.ToString("0.000", CultureInfo.InvariantCulture), Common.F(f.DecodeTokensPerSecond),
                f.FractionOfBound is { } b ? $"{b:P0} of {Common.F(f.ReadGBPerSecond ?? 0)} GB/s" : "–",
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
                    $"{Common.F(c.EncoderDecoderTokensPerSecond)} / {Common.F(c.DecoderOnlyTokensPerSecond)}", Times(c.FirstTokenSpeedup), Times(c.DecodeRatio));
            AnsiConsole.Write(claims);
            AnsiConsole.MarkupLine($"[grey]{Markup.Escape(r.Claims[0].EncoderDecoder)} against {Markup.Escape(r.Claims[0].DecoderOnly)}: above 1× the encoder–decoder is ahead.[/]");
        }
        AnsiConsole.MarkupLine("[grey]First token: encode + first decoder step (encoder–decoder) or prefill (decoder-only), then one argmax. Identical tokens: leading greedy tokens equal to Encore's. " +
            "llama.cpp runs the GGUF written by encore's exporter with f32 KV caches; PyTorch runs f32 only.[/]");
        foreach (var note in r.Notes) AnsiConsole.MarkupLine($"[yellow]Note:[/] {Markup.Escape(note)}");
    }
}
