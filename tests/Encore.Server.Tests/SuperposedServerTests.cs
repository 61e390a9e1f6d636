using System.Net;
using System.Text.Json.Nodes;
using Encore.Generation;

namespace Encore.Server.Tests;

/// <summary>
/// A server started with superposed decoding: a request's n choices are the library's best n drafts (of
/// max(K, n)), streamed or not, alone or beside other requests; usage counts the choices' tokens; bad
/// settings are refused at start.
/// </summary>
public class SuperposedServerTests
{
    static readonly string[] Prompts = ["the lazy dog", "Encoder–decoder models encode", "naïve café"];

    static async Task<string[]> Complete(TinyServer s, string prompt, int n, bool stream = false)
    {
        var body = new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = prompt, ["max_tokens"] = 12, ["n"] = n, ["temperature"] = 0.8, ["stream"] = stream };
        using var r = await s.Http.PostAsync("v1/completions", OpenAiEndpointTests.Json(body));
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, text);
        if (!stream)
        {
            var json = JsonNode.Parse(text)!;
            var choices = json["choices"]!.AsArray();
            Assert.Equal(Enumerable.Range(0, n), choices.Select(c => c!["index"]!.GetValue<int>()));
            Assert.All(choices, c => Assert.NotNull(c!["finish_reason"]));
            return choices.Select(c => c!["text"]!.GetValue<string>()).ToArray();
        }
        var chunks = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)[..^1].Select(e => JsonNode.Parse(e["data: ".Length..])!).ToArray();
        var texts = new string[n];
        var ends = new int[n];
        foreach (var c in chunks)
            foreach (var choice in c["choices"]!.AsArray())
            {
                int i = choice!["index"]!.GetValue<int>();
                texts[i] += choice["text"]!.GetValue<string>();
                if (choice["finish_reason"] is not null) ends[i]++;
            }
        Assert.All(ends, e => Assert.Equal(1, e));
        return texts;
    }

    [Theory]
    [InlineData("tiny-encdec")]
    [InlineData("tiny-decoder")]
    public async Task ChoicesAreTheLibrarysDrafts(string preset)
    {
        await using var s = await TinyServer.StartAsync(preset, new ServerOptions { MaxBatch = 4, ContextLength = 64, Superposed = new SuperposedOptions { Drafts = 3 } });
        var generator = new Generator(s.Model, s.Tokenizer);
        string[] Drafts(string prompt, int k) =>
            generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 12, Superposed = new SuperposedOptions { Drafts = k } }).Sequences.Select(x => x.Text).ToArray();

        foreach (var prompt in Prompts)
        {
            var three = Drafts(prompt, 3);
            Assert.Equal(three, await Complete(s, prompt, 3));
            Assert.Equal(three, await Complete(s, prompt, 3, stream: true));
            Assert.Equal(three[..2], await Complete(s, prompt, 2));
            Assert.Equal(three[..1], await Complete(s, prompt, 1));
            // More choices than the configured drafts: as many drafts as choices.
            Assert.Equal(Drafts(prompt, 5), await Complete(s, prompt, 5));
        }
        // Concurrent requests share the batch: each still gets its own drafts.
        var shared = await Task.WhenAll(Prompts.Select(p => Complete(s, p, 3)));
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(Drafts(Prompts[i], 3), shared[i]);

        // Usage counts the tokens of the choices returned.
        var body = new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = Prompts[0], ["max_tokens"] = 12, ["n"] = 2 };
        using var r = await s.Http.PostAsync("v1/completions", OpenAiEndpointTests.Json(body));
        var usage = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["usage"]!;
        var expected = generator.Generate(Prompts[0], new GenerationOptions { MaxNewTokens = 12, Superposed = new SuperposedOptions { Drafts = 3 } }).Sequences.Take(2).Sum(x => x.Tokens.Length);
        Assert.Equal(expected, usage["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task SuperposedOptionsAreCheckedAtStart()
    {
        var e = Assert.Throws<ArgumentException>(() => new ServerOptions { Superposed = new SuperposedOptions { Drafts = 0 } }.Validate());
        Assert.Contains("superposed drafts (k) must be in [1, 64], got 0", e.Message);
        e = Assert.Throws<ArgumentException>(() => new ServerOptions { PromptLookup = true, Superposed = new SuperposedOptions() }.Validate());
        Assert.Contains("--superposed", e.Message);
        using var m = TinyServer.CreateModel("tiny-decoder");
        var foreign = NgramTable.Build([[1, 2, 3]], TinyServer.SharedTokenizer.VocabSize, 3);
        e = await Assert.ThrowsAsync<ArgumentException>(() => EncoreServer.StartAsync(m, TinyServer.SharedTokenizer,
            new ServerOptions { Port = 0, Superposed = new SuperposedOptions { Ngrams = foreign } }, _ => { }));
        Assert.Contains("tokenizer_fingerprint", e.Message);
    }
}
