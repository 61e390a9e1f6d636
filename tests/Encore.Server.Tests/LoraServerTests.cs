using System.Net;
using System.Text.Json.Nodes;
using Encore.Models;
using Encore.Testing;

namespace Encore.Server.Tests;

/// <summary>
/// One base served with two LoRA adapters: requests naming <c>base:adapter</c> decode with it, rows of
/// different adapters share batched steps, and each answer is the one its adapter gives alone.
/// </summary>
public class LoraServerTests
{
    static readonly string[] Prompts = ["the lazy dog", "Encoder–decoder models encode", "naïve café"];

    static LoraAdapter Adapter(LanguageModel m, int seed, LoraTargets targets, int rank) => LoraTesting.RandomAdapter(m, seed, targets, rank);

    static async Task<(string Text, string Model)> Complete(HttpClient http, string model, string prompt)
    {
        var body = new JsonObject { ["model"] = model, ["prompt"] = prompt, ["max_tokens"] = 10, ["temperature"] = 0 };
        using var r = await http.PostAsync("v1/completions", OpenAiEndpointTests.Json(body));
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, text);
        var json = JsonNode.Parse(text)!;
        return (json["choices"]![0]!["text"]!.GetValue<string>(), json["model"]!.GetValue<string>());
    }

    static long Counter(string metrics, string name) =>
        long.Parse(metrics.Split('\n').Single(l => l.StartsWith(name + " ", StringComparison.Ordinal)).Split(' ')[1]);

    [Theory]
    [InlineData("tiny-encdec")]
    [InlineData("tiny-decoder")]
    public async Task RequestsOfDifferentAdaptersInOneBatchGetWhatEachAdapterGivesAlone(string preset)
    {
        using var model = TinyServer.CreateModel(preset);
        using var one = Adapter(model, 1, LoraTargets.All, 4);
        using var two = Adapter(model, 2, LoraTargets.Q | LoraTargets.V | LoraTargets.Down, 2);
        var options = new ServerOptions
        {
            Port = 0, ModelName = "tiny", MaxBatch = 16, ContextLength = 64,
            Adapters = new Dictionary<string, LoraAdapter> { ["one"] = one, ["two"] = two },
        };
        await using var server = await EncoreServer.StartAsync(model, TinyServer.SharedTokenizer, options, _ => { });
        using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        string[] models = ["tiny", "tiny:one", "tiny:two"];

        // Alone: one request at a time, each the only row of its steps.
        var alone = new Dictionary<(string, string), string>();
        foreach (var p in Prompts)
            foreach (var m in models)
            {
                var (text, echoed) = await Complete(http, m, p);
                Assert.Equal(m, echoed);
                alone[(m, p)] = text;
            }
        // The adapters change what is generated (otherwise the comparison shows nothing).
        Assert.Equal(models.Length, models.Select(m => alone[(m, Prompts[0])]).Distinct().Count());

        // Together: all nine at once, admitted together and decoded in shared steps.
        string before = await http.GetStringAsync("metrics");
        var jobs = Prompts.SelectMany(p => models.Select(m => (m, p))).ToArray();
        var together = await Task.WhenAll(jobs.Select(j => Complete(http, j.m, j.p)));
        string after = await http.GetStringAsync("metrics");
        for (int i = 0; i < jobs.Length; i++) Assert.Equal(alone[jobs[i]], together[i].Text);
        long tokens = Counter(after, "encore_generated_tokens_total") - Counter(before, "encore_generated_tokens_total");
        long steps = Counter(after, "encore_batch_steps_total") - Counter(before, "encore_batch_steps_total");
        Assert.True(tokens > 2 * steps, $"{tokens} tokens in {steps} steps: the requests did not share steps");

        var list = JsonNode.Parse(await http.GetStringAsync("v1/models"))!["data"]!.AsArray().Select(d => d!["id"]!.GetValue<string>());
        Assert.Equal(models, list);
        var body = new JsonObject { ["model"] = "tiny:three", ["prompt"] = "x", ["max_tokens"] = 2 };
        using var refused = await http.PostAsync("v1/completions", OpenAiEndpointTests.Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        var error = await refused.Content.ReadAsStringAsync();
        Assert.Contains("tiny:three", error);
        Assert.Contains("tiny:one", error);
    }

    [Fact]
    public async Task AnAdapterOfAnotherModelIsRefusedAtStart()
    {
        using var model = TinyServer.CreateModel("tiny-encdec");
        using var other = TinyServer.CreateModel("tiny-encdec");
        using var foreign = Adapter(other, 1, LoraTargets.Q, 2);
        var e = await Assert.ThrowsAsync<ArgumentException>(() => EncoreServer.StartAsync(model, TinyServer.SharedTokenizer,
            new ServerOptions { Port = 0, Adapters = new Dictionary<string, LoraAdapter> { ["x"] = foreign } }, _ => { }));
        Assert.Contains("another model", e.Message);
        Assert.Throws<ArgumentException>(() => new ServerOptions { Adapters = new Dictionary<string, LoraAdapter> { ["a:b"] = foreign } }.Validate());
    }
}
