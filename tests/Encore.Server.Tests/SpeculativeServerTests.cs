using System.Net;
using System.Text.Json.Nodes;
using Encore.Generation;

namespace Encore.Server.Tests;

/// <summary>
/// A server started with speculative decoding: greedy completions, alone or concurrent, streamed or
/// not, are the plain greedy outputs of the model, and /metrics counts the drafts.
/// </summary>
public class SpeculativeServerTests
{
    static readonly string[] Prompts = ["the lazy dog", "Encoder–decoder models encode", "naïve café", "one token at a time, one token"];

    static async Task<JsonNode> Complete(TinyServer s, string prompt, bool stream = false)
    {
        var body = new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = prompt, ["max_tokens"] = 14, ["temperature"] = 0, ["stream"] = stream };
        using var r = await s.Http.PostAsync("v1/completions", OpenAiEndpointTests.Json(body));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        string text = await r.Content.ReadAsStringAsync();
        if (!stream) return JsonNode.Parse(text)!;
        var chunks = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)[..^1].Select(e => JsonNode.Parse(e["data: ".Length..])!);
        return new JsonObject { ["text"] = string.Concat(chunks.Where(c => c["choices"]!.AsArray().Count > 0).Select(c => c["choices"]![0]!["text"]!.GetValue<string>())) };
    }

    static long Counter(string metrics, string name) =>
        long.Parse(metrics.Split('\n').Single(l => l.StartsWith(name + " ", StringComparison.Ordinal)).Split(' ')[1]);

    [Theory]
    [InlineData("tiny-encdec", "draft")]
    [InlineData("tiny-decoder", "draft")]
    [InlineData("tiny-decoder", "lookup")]
    public async Task GreedyCompletionsArePlainGreedyAloneOrShared(string preset, string method)
    {
        // The served weights as the draft: every draft is the model's own choice, so drafts are accepted.
        using var draft = TinyServer.CreateModel(preset);
        var options = new ServerOptions { MaxBatch = 4, ContextLength = 64 };
        options = method == "draft" ? options with { DraftModel = draft } : options with { PromptLookup = true };
        await using var s = await TinyServer.StartAsync(preset, options);
        var generator = new Generator(s.Model, s.Tokenizer);
        var expected = Prompts.Select(p => generator.Generate(p, new GenerationOptions { MaxNewTokens = 14 }).Text).ToArray();

        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(expected[i], (await Complete(s, Prompts[i]))["choices"]![0]!["text"]!.GetValue<string>());
            Assert.Equal(expected[i], (await Complete(s, Prompts[i], stream: true))["text"]!.GetValue<string>());
        }
        // Concurrent requests share batched steps and speculate when one is left.
        var shared = await Task.WhenAll(Prompts.Select(p => Complete(s, p)));
        Assert.Equal(expected, shared.Select(j => j["choices"]![0]!["text"]!.GetValue<string>()));

        string metrics = await s.Http.GetStringAsync("metrics");
        long drafted = Counter(metrics, "encore_speculative_drafted_tokens_total"), accepted = Counter(metrics, "encore_speculative_accepted_tokens_total");
        long tokens = Counter(metrics, "encore_speculative_tokens_total"), passes = Counter(metrics, "encore_speculative_target_passes_total");
        // Prompt lookup drafts what followed the output's last tokens in the prompt; this random model rarely copies it.
        Assert.True(drafted > 0 && (method == "lookup" || accepted > 0), $"{accepted} of {drafted} drafts accepted");
        Assert.Equal(Counter(metrics, "encore_generated_tokens_total"), tokens);
        if (method == "draft") Assert.True(tokens > 1.5 * passes, $"{tokens} tokens in {passes} passes");
    }

    [Fact]
    public async Task SpeculativeOptionsAreCheckedAtStart()
    {
        using var draft = TinyServer.CreateModel("tiny-decoder");
        using var encdec = TinyServer.CreateModel("tiny-encdec");
        var e = Assert.Throws<ArgumentException>(() => new ServerOptions { DraftModel = draft, PromptLookup = true }.Validate());
        Assert.Contains("--prompt-lookup", e.Message);
        e = Assert.Throws<ArgumentException>(() => new ServerOptions { PromptLookup = true, DraftTokens = 100 }.Validate());
        Assert.Contains("--draft-tokens", e.Message);
        e = await Assert.ThrowsAsync<ArgumentException>(() => EncoreServer.StartAsync(encdec, TinyServer.SharedTokenizer, new ServerOptions { Port = 0, DraftModel = draft }, _ => { }));
        Assert.Contains("the draft model is a decoder-only model and the model is an encoder–decoder", e.Message);
    }
}
