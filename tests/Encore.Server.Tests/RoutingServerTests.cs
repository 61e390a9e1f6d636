using System.Net;
using System.Text.Json.Nodes;
using Encore.Generation;
using Microsoft.Extensions.Logging;

namespace Encore.Server.Tests;

/// <summary>
/// A server with a super model: one endpoint, two models. Each completion (streamed or not) is the plain greedy
/// output of the model the router picks from the served (swift) model's first-step energy, the response header
/// and the request log name it, /metrics counts both, and a super model of another vocabulary is refused.
/// </summary>
public class RoutingServerTests
{
    static readonly string[] Prompts = ["the lazy dog", "Encoder–decoder models encode", "naïve café", "one token at a time, one token"];

    // The request log's lines.
    sealed class Capture : ILoggerProvider
    {
        public readonly System.Collections.Concurrent.ConcurrentQueue<string> Lines = new();
        public ILogger CreateLogger(string categoryName) => new Sink(this, categoryName);
        public void Dispose() { }

        sealed class Sink(Capture owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel l, EventId e, TState s, Exception? x, Func<TState, Exception?, string> f)
            {
                if (category == EncoreServer.RequestLogCategory) owner.Lines.Enqueue(f(s, x));
            }
        }
    }

    static async Task<(string Text, string? RoutedTo)> Complete(HttpClient http, string prompt, bool stream = false)
    {
        var body = new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = prompt, ["max_tokens"] = 10, ["temperature"] = 0, ["stream"] = stream };
        using var r = await http.PostAsync("v1/completions", OpenAiEndpointTests.Json(body));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        string? routedTo = r.Headers.TryGetValues(EncoreServer.RoutedToHeader, out var v) ? v.Single() : null;
        string text = await r.Content.ReadAsStringAsync();
        if (!stream) return (JsonNode.Parse(text)!["choices"]![0]!["text"]!.GetValue<string>(), routedTo);
        var chunks = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)[..^1].Select(e => JsonNode.Parse(e["data: ".Length..])!);
        return (string.Concat(chunks.Where(c => c["choices"]!.AsArray().Count > 0).Select(c => c["choices"]![0]!["text"]!.GetValue<string>())), routedTo);
    }

    static long Routed(string metrics, string model) =>
        long.Parse(metrics.Split('\n').Single(l => l.StartsWith($"encore_routed_requests_total{{model=\"{model}\"}} ", StringComparison.Ordinal)).Split(' ')[1]);

    [Theory]
    [InlineData("tiny-decoder", "tiny-encdec")]
    [InlineData("tiny-encdec", "tiny-decoder")]
    public async Task EachRequestIsAnsweredByTheModelItsScorePicks(string swiftPreset, string superPreset)
    {
        using var super = TinyServer.CreateModel(superPreset, seed: 11);
        // The served (swift) model as encore serve loads it; its first-step energies decide.
        await using var tiny = await TinyServer.StartAsync(swiftPreset);
        var swift = new Generator(tiny.Model, tiny.Tokenizer);
        var superGenerator = new Generator(super, tiny.Tokenizer);
        var probe = new RoutedGenerator(swift, superGenerator);
        var scores = Prompts.Select(p => probe.ScorePrompt(swift.EncodePrompt(p))).ToArray();
        Assert.True(scores.Distinct().Count() == Prompts.Length, "the prompts need different energies");
        double threshold = RoutingCalibration.ThresholdForFraction(scores, 0.5);
        var options = new GenerationOptions { MaxNewTokens = 10 };
        var expected = Prompts.Select((p, i) => scores[i] > threshold ? superGenerator.Generate(p, options).Text : swift.Generate(p, options).Text).ToArray();
        Assert.True(expected.Distinct().Count() > 1, "the answers must differ");

        var capture = new Capture();
        await using var server = await EncoreServer.StartAsync(tiny.Model, tiny.Tokenizer, new ServerOptions
        {
            Port = 0, ModelName = TinyServer.ModelName, MaxBatch = 4, ContextLength = 64, SuperModel = super, Routing = new RoutingOptions { Span = RoutingSpan.FirstStep, Threshold = threshold },
        }, logging => logging.AddProvider(capture).AddFilter(EncoreServer.RequestLogCategory, LogLevel.Information));
        using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        for (int i = 0; i < Prompts.Length; i++)
        {
            string model = scores[i] > threshold ? "super" : "swift";
            Assert.Equal((expected[i], model), await Complete(http, Prompts[i]));
            Assert.Equal((expected[i], model), await Complete(http, Prompts[i], stream: true));
        }
        var shared = await Task.WhenAll(Prompts.Select(p => Complete(http, p)));
        Assert.Equal(expected, shared.Select(r => r.Text));

        string metrics = await http.GetStringAsync("metrics");
        int toSuper = scores.Count(x => x > threshold);
        Assert.Equal(Prompts.Length / 2, toSuper);
        Assert.Equal(3 * toSuper, Routed(metrics, "super"));
        Assert.Equal(3 * (Prompts.Length - toSuper), Routed(metrics, "swift"));
        Assert.Contains("encore_super_generated_tokens_total ", metrics);
        var lines = capture.Lines.ToList();
        Assert.Equal(3 * Prompts.Length, lines.Count);
        Assert.Equal(3 * toSuper, lines.Count(l => l.Contains(" routed=super score=", StringComparison.Ordinal)));
        Assert.Equal(3 * (Prompts.Length - toSuper), lines.Count(l => l.Contains(" routed=swift score=", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task SuperModelOfAnotherVocabularyOrSpanIsRefused()
    {
        using var wider = Encore.Models.LanguageModel.Create(Encore.Models.Presets.Get("tiny-encdec") with { VocabSize = TinyServer.SharedTokenizer.VocabSize + 8 }, 3);
        using var served = TinyServer.CreateModel("tiny-encdec");
        var e = await Assert.ThrowsAsync<ArgumentException>(() => EncoreServer.StartAsync(served, TinyServer.SharedTokenizer, new ServerOptions { Port = 0, SuperModel = wider }, _ => { }));
        Assert.Contains($"the served (swift) model has a vocabulary of {TinyServer.SharedTokenizer.VocabSize} tokens and --super-model one of {TinyServer.SharedTokenizer.VocabSize + 8}", e.Message);
        using var super = TinyServer.CreateModel("tiny-encdec", seed: 11);
        e = Assert.Throws<ArgumentException>(() => new ServerOptions { SuperModel = super, Routing = new RoutingOptions { Span = RoutingSpan.Mean } }.Validate());
        Assert.Contains("first step", e.Message);
        e = Assert.Throws<ArgumentException>(() => new ServerOptions { SuperModel = super, PromptLookup = true }.Validate());
        Assert.Contains("--super-model does not combine", e.Message);
    }
}
