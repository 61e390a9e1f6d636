using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Server;
using Encore.Tensors;

namespace Encore.Bench;

/// <summary>Options of <see cref="ServeLoadBenchmark"/> (the flags of <c>encore bench serve</c>).</summary>
public sealed record ServeLoadOptions
{
    /// <summary>Preset served (random weights, seeded). Default mu-25m.</summary>
    public string Preset { get; init; } = "mu-25m";
    /// <summary>Concurrent streaming clients of the load phase. Default 32.</summary>
    public int Clients { get; init; } = 32;
    /// <summary>Requests of the load phase, over all clients. Default 1000.</summary>
    public int Requests { get; init; } = 1000;
    /// <summary>Requests of the single-client phase. Default 16.</summary>
    public int SingleRequests { get; init; } = 16;
    /// <summary>Tokens each request generates (EOS banned through logit_bias, so every request runs to this). Default 64.</summary>
    public int MaxTokens { get; init; } = 64;
    /// <summary>Weight dtype. Default f32.</summary>
    public DType Weights { get; init; } = DType.F32;

    /// <summary>Throws naming the first option out of range.</summary>
    public void Validate()
    {
        Presets.Get(Preset);
        if (Clients is < 1 or > 1024) throw new ArgumentException($"--clients must be in [1, 1024], got {Clients}");
        if (Requests < Clients) throw new ArgumentException($"--requests must be at least --clients ({Clients}), got {Requests}");
        if (SingleRequests is < 1 or > 10_000) throw new ArgumentException($"--single-requests must be in [1, 10000], got {SingleRequests}");
        if (MaxTokens is < 1 or > 4096) throw new ArgumentException($"--max-tokens must be in [1, 4096], got {MaxTokens}");
    }
}

/// <summary>Figures of one phase.</summary>
/// <param name="TokensPerSecond">Generated tokens of all clients ÷ the phase's wall time.</param>
/// <param name="TtftP50Seconds">Median time from sending a request to its first streamed text.</param>
/// <param name="TtftP95Seconds">95th percentile of the same.</param>
public sealed record ServeLoadPhase(int Clients, int Requests, int Errors, long Tokens, double Seconds, double TokensPerSecond, double TtftP50Seconds, double TtftP95Seconds);

/// <summary>The result of <c>encore bench serve</c>.</summary>
/// <param name="Speedup">Load-phase tokens/s ÷ single-client tokens/s.</param>
/// <param name="WorkingSetAfterWarmupMB">Process working set after the first tenth of the load requests (server and clients share the process).</param>
/// <param name="WorkingSetAfterMB">Process working set after all load requests.</param>
public sealed record ServeLoadResult(string Preset, long Parameters, int VocabSize, string Weights, int MaxTokens, int Threads, ServeLoadPhase Single, ServeLoadPhase Load,
    double Speedup, double WorkingSetAfterWarmupMB, double WorkingSetAfterMB, double ManagedHeapAfterWarmupMB, double ManagedHeapAfterMB);

/// <summary>
/// Load test of <c>encore serve</c>: the server runs in process on a loopback port; first one client
/// sends streaming chat requests one after another, then N clients send theirs concurrently. The
/// model is the preset's blocks with the vocabulary of a small byte-level BPE trained here (a random
/// model's tokens must all decode), so figures are for those blocks, not the full 32k head.
/// </summary>
public static class ServeLoadBenchmark
{
    /// <summary>Runs both phases; <paramref name="progress"/> gets a line per phase.</summary>
    public static async Task<ServeLoadResult> RunAsync(ServeLoadOptions o, Action<string>? progress = null)
    {
        o.Validate();
        var tokenizer = BpeTrainer.Train(
            [
                "The quick brown fox jumps over the lazy dog.",
                "Encoder–decoder models encode the source once and decode one token at a time.",
                "Continuous batching lets requests join and leave the running batch at every step.",
            ],
            512, ["<pad>", "</s>", "<s>"], new SpecialTokenRoles(Bos: "<s>", Eos: "</s>", Pad: "<pad>"));
        using var model = LanguageModel.Create(Presets.Get(o.Preset) with { VocabSize = tokenizer.VocabSize, BosTokenId = 2 }, 1);
        if (o.Weights != DType.F32) model.ConvertWeights(o.Weights);
        var options = new ServerOptions { Port = 0, ModelName = "bench", MaxBatch = Math.Max(o.Clients, 1), MaxQueue = o.Clients * 2, ContextLength = 256 };
        await using var server = await EncoreServer.StartAsync(model, tokenizer, options, _ => { });
        using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(10) };

        progress?.Invoke($"single client, {o.SingleRequests} requests");
        await Phase(http, 1, 2, o.MaxTokens);                                        // warm-up
        var single = await Phase(http, 1, o.SingleRequests, o.MaxTokens);
        progress?.Invoke($"{o.Clients} clients, {o.Requests} requests");
        int warm = Math.Max(o.Clients, o.Requests / 10);
        await Phase(http, o.Clients, warm, o.MaxTokens);
        (double ws0, double heap0) = Memory();
        var load = await Phase(http, o.Clients, o.Requests - warm, o.MaxTokens);
        (double ws1, double heap1) = Memory();
        return new ServeLoadResult(o.Preset, model.ParameterCount, tokenizer.VocabSize, o.Weights.Name(), o.MaxTokens, Encore.Tensors.Threading.KernelPool.Default.ThreadCount,
            single, load with { Requests = o.Requests - warm }, load.TokensPerSecond / single.TokensPerSecond, ws0, ws1, heap0, heap1);
    }

    static (double WorkingSetMB, double HeapMB) Memory()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var p = Process.GetCurrentProcess();
        return (p.WorkingSet64 / 1e6, GC.GetTotalMemory(false) / 1e6);
    }

    static async Task<ServeLoadPhase> Phase(HttpClient http, int clients, int requests, int maxTokens)
    {
        int next = -1, errors = 0;
        long tokens = 0;
        var ttft = new List<double>();
        var sw = Stopwatch.StartNew();
        async Task Client()
        {
            while (true)
            {
                int i = Interlocked.Increment(ref next);
                if (i >= requests) return;
                var (ok, n, first) = await Request(http, i, maxTokens);
                if (!ok) Interlocked.Increment(ref errors);
                Interlocked.Add(ref tokens, n);
                if (first is { } f) lock (ttft) ttft.Add(f);
            }
        }
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(Client)));
        double seconds = sw.Elapsed.TotalSeconds;
        ttft.Sort();
        double P(double q) => ttft.Count == 0 ? double.NaN : ttft[Math.Min(ttft.Count - 1, (int)Math.Ceiling(q * ttft.Count) - 1)];
        return new ServeLoadPhase(clients, requests, errors, tokens, seconds, tokens / seconds, P(0.5), P(0.95));
    }

    static async Task<(bool Ok, long Tokens, double? Ttft)> Request(HttpClient http, int i, int maxTokens)
    {
        var body = new JsonObject
        {
            ["model"] = "bench",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = $"request {i}: the quick brown fox jumps over the lazy dog" }),
            ["max_tokens"] = maxTokens,
            ["temperature"] = 0.8,
            ["seed"] = i,
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
            ["logit_bias"] = new JsonObject { ["1"] = -100 },
        };
        var sw = Stopwatch.StartNew();
        double? first = null;
        long completion = 0;
        bool done = false;
        try
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
            req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
            using var r = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
            if (!r.IsSuccessStatusCode) return (false, 0, null);
            using var reader = new StreamReader(await r.Content.ReadAsStreamAsync());
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                string data = line[6..];
                if (data == "[DONE]")
                {
                    done = true;
                    break;
                }
                var chunk = JsonNode.Parse(data)!;
                if (first is null && chunk["choices"] is JsonArray { Count: > 0 } c && c[0]!["delta"]?["content"]?.GetValue<string>() is { Length: > 0 })
                    first = sw.Elapsed.TotalSeconds;
                if (chunk["usage"] is JsonObject u) completion = u["completion_tokens"]!.GetValue<long>();
            }
        }
        catch (HttpRequestException)
        {
            return (false, 0, first);
        }
        return (done && completion == maxTokens, completion, first);
    }
}
