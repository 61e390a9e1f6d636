using Encore.Tensors;

namespace Encore.Cli.Commands;

// encore bench generate: first-token latency and decode rate beside the memory-bandwidth bound.
internal static partial class BenchCommand
{
    static Command CreateGenerate()
    {
        var d = new GenerateBenchmarkOptions();
        var presets = new Option<string[]>("--preset", "--model", "-m") { Description = $"Presets (repeatable; default {string.Join(", ", d.Presets)}).", AllowMultipleArgumentsPerToken = true };
        var batches = new Option<int[]>("--batch") { Description = $"Batch sizes (repeatable; default {string.Join(", ", d.Batches)}).", AllowMultipleArgumentsPerToken = true };
        var input = new Option<int>("--input-length") { Description = $"Input tokens per sequence.", DefaultValueFactory = _ => d.InputLength };
        var output = new Option<int>("--new-tokens") { Description = $"Generated tokens per sequence.", DefaultValueFactory = _ => d.NewTokens };
        var weights = WeightsOption(d.Weights);
        var kvDType = KvDTypeOption(d.KvCache);
        var runs = RunsOption(d.Runs, $"Timed runs; figures are medians");
        return Suite("generate", "First-token latency and decode tokens/s of greedy generation, beside the memory-bandwidth bound.", [presets, batches, input, output, weights, kvDType, runs],
            parse => new GenerateBenchmarkOptions
            {
                Presets = parse.GetValue(presets) is { Length: > 0 } p ? p : d.Presets,
                Batches = parse.GetValue(batches) is { Length: > 0 } b ? b : d.Batches,
                InputLength = parse.GetValue(input),
                NewTokens = parse.GetValue(output),
                Weights = Encore.Tensors.DTypes.Parse(parse.GetValue(weights)!),
                KvCache = Encore.Models.KvCacheDTypes.Parse(parse.GetValue(kvDType)!, "--kv-dtype"),
                Runs = parse.GetValue(runs),
            },
            o => o.Validate(),
            (o, progress) => Task.FromResult(GenerateBenchmark.Run(o, progress)),
            RenderGenerate);
    }

    static void RenderGenerate(GenerateBenchmarkResult r)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .Title($"[bold]greedy generation, {r.InputLength} in → {r.NewTokens} out, {r.Weights} weights, {r.KvCache} KV cache[/] (median of {r.Runs}, {r.Threads} threads)");
        foreach (var col in new[] { "model", "batch", "first token (s)", "decode tok/s", "MB read/step", "bound tok/s", "of bound" })
            table.AddColumn(col == "model" ? new TableColumn(col) : new TableColumn(col).RightAligned());
        foreach (var f in r.Figures)
            table.AddRow(Markup.Escape(f.Preset), f.Batch.ToString(CultureInfo.InvariantCulture), f.FirstTokenSeconds.ToString("0.000", CultureInfo.InvariantCulture),
                Common.F(f.DecodeTokensPerSecond), (f.BytesPerStep / 1e6).ToString("0", CultureInfo.InvariantCulture), Common.F(f.BoundTokensPerSecond),
                f.FractionOfBound is { } q ? (q * 100).ToString("0", CultureInfo.InvariantCulture) + "%" : "–");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"[grey]Bound = measured read bandwidth ({Common.F(r.Machine.ReadGBPerSecond)} GB/s) ÷ bytes a batch-1 step reads (the weights it uses + its caches). Decode tok/s counts every sequence of the batch.[/]");
    }
}
