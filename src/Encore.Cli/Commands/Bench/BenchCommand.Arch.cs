using Encore.Tensors;

namespace Encore.Cli.Commands;

// encore bench arch: encoder–decoder against decoder-only of equal size across input lengths.
internal static partial class BenchCommand
{
    static Command CreateArch()
    {
        var d = new ArchBenchmarkOptions();
        var plot = new Option<string?>("--plot") { Description = "Write a PNG of first-token latency against input length." };
        var lengths = new Option<int[]>("--lengths") { Description = $"Input lengths (repeatable; default {string.Join(", ", d.InputLengths)}).", AllowMultipleArgumentsPerToken = true };
        var small = new Option<bool>("--small") { Description = "Only the 25M pair (quick)." };
        var weights = WeightsOption(d.Weights);
        var kvDType = KvDTypeOption(d.KvCache);
        var runs = RunsOption(d.Runs, $"Timed runs; figures are medians");
        return Suite("arch", "Encoder–decoder vs decoder-only of equal size across input lengths: first-token latency, decode tokens/s, cache memory, FLOPs.", [plot, lengths, small, weights, kvDType, runs],
            parse => d with
            {
                Plot = parse.GetValue(plot),
                InputLengths = parse.GetValue(lengths) is { Length: > 0 } l ? l : d.InputLengths,
                Pairs = parse.GetValue(small) ? [("mu-25m", "decoder-25m")] : d.Pairs,
                Weights = DTypes.Parse(parse.GetValue(weights)!),
                KvCache = Encore.Models.KvCacheDTypes.Parse(parse.GetValue(kvDType)!, "--kv-dtype"),
                Runs = parse.GetValue(runs),
            },
            o =>
            {
                if (o.Runs < 1 || o.InputLengths.Any(x => x < 1)) throw new ArgumentException("--runs and --lengths must be positive");
            },
            (o, progress) => Task.FromResult(ArchBenchmark.Run(o, progress)),
            r => Console.WriteLine(r.Markdown),
            renders: "Markdown");
    }
}
