using Encore.Tensors;

namespace Encore.Cli.Commands;

// encore bench serve: a load test of encore serve.
internal static partial class BenchCommand
{
    static Command CreateServe()
    {
        var d = new ServeLoadOptions();
        var preset = new Option<string>("--preset", "--model", "-m") { Description = $"Preset served with random weights.", DefaultValueFactory = _ => d.Preset };
        var clients = new Option<int>("--clients") { Description = $"Concurrent streaming clients.", DefaultValueFactory = _ => d.Clients };
        var requests = new Option<int>("--requests") { Description = $"Requests of the concurrent phase.", DefaultValueFactory = _ => d.Requests };
        var single = new Option<int>("--single-requests") { Description = $"Requests of the single-client phase.", DefaultValueFactory = _ => d.SingleRequests };
        var maxTokens = new Option<int>("--max-tokens") { Description = $"Tokens per request.", DefaultValueFactory = _ => d.MaxTokens };
        var weights = WeightsOption(d.Weights);
        return Suite("serve", "Load test of encore serve: aggregate tokens/s of N concurrent streaming clients against one, time to first token, errors, memory.", [preset, clients, requests, single, maxTokens, weights],
            parse => new ServeLoadOptions
            {
                Preset = parse.GetValue(preset)!,
                Clients = parse.GetValue(clients),
                Requests = parse.GetValue(requests),
                SingleRequests = parse.GetValue(single),
                MaxTokens = parse.GetValue(maxTokens),
                Weights = Encore.Tensors.DTypes.Parse(parse.GetValue(weights)!),
            },
            o => o.Validate(),
            (o, progress) => ServeLoadBenchmark.RunAsync(o, progress),
            RenderServe,
            renders: "lines");
    }

    static void RenderServe(ServeLoadResult r)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"{r.Preset} ({r.Parameters / 1e6:0.0}M parameters, vocab {r.VocabSize}, {r.Weights}), {r.MaxTokens} tokens per request, {r.Threads} threads");
        foreach (var (name, p) in new[] { ("single", r.Single), ("load", r.Load) })
            Console.WriteLine(string.Format(inv, "{0,-7} clients {1,3}  requests {2,5}  errors {3}  tokens/s {4,8:0.0}  ttft p50 {5:0.000} s  p95 {6:0.000} s",
                name, p.Clients, p.Requests, p.Errors, p.TokensPerSecond, p.TtftP50Seconds, p.TtftP95Seconds));
        Console.WriteLine(string.Format(inv, "speedup {0:0.00}×; working set {1:0} → {2:0} MB, managed heap {3:0.0} → {4:0.0} MB (after warm-up → after all requests)",
            r.Speedup, r.WorkingSetAfterWarmupMB, r.WorkingSetAfterMB, r.ManagedHeapAfterWarmupMB, r.ManagedHeapAfterMB));
    }
}
