using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Generation;
using OpenAI.Chat;
using OpenAI.Models;

namespace Encore.Server.Tests;

/// <summary>The endpoints through the official OpenAI client and raw HTTP, against a real server on a loopback port.</summary>
public class OpenAiEndpointTests(EncDecServerFixture fixture) : IClassFixture<EncDecServerFixture>
{
    readonly TinyServer _s = fixture.Server;

    static List<ChatMessage> Messages(string user) => [new SystemChatMessage("Be brief."), new UserChatMessage(user)];

    [Fact]
    public async Task ChatCompletionMatchesTheLibraryAndCountsUsage()
    {
        var chat = _s.Chat();
        var result = (await chat.CompleteChatAsync(Messages("hello there"), new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0f })).Value;
        string prompt = ChatTemplate.Format([("system", "Be brief."), ("user", "hello there")]);
        var generator = new Generator(_s.Model, _s.Tokenizer);
        var expected = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 12 });
        Assert.Equal(expected.Text, result.Content[0].Text);
        Assert.Equal(generator.EncodePrompt(prompt).Length, result.Usage.InputTokenCount);
        Assert.Equal(expected.Tokens.Length, result.Usage.OutputTokenCount);
        Assert.Equal(result.Usage.InputTokenCount + result.Usage.OutputTokenCount, result.Usage.TotalTokenCount);
        Assert.Equal(expected.Sequences[0].Finish == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop, result.FinishReason);
        Assert.Equal(TinyServer.ModelName, result.Model);
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(0.9f)]
    public async Task StreamingChatEqualsNonStreamingForTheSameSeed(float temperature)
    {
        var chat = _s.Chat();
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 24, Temperature = temperature, Seed = 1234 };
        var whole = (await chat.CompleteChatAsync(Messages("the quick brown fox"), options)).Value;
        var sb = new StringBuilder();
        int updates = 0;
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var u in chat.CompleteChatStreamingAsync(Messages("the quick brown fox"), options))
        {
            foreach (var part in u.ContentUpdate) sb.Append(part.Text);
            updates++;
            usage ??= u.Usage;
            finish ??= u.FinishReason;
        }
        Assert.Equal(whole.Content[0].Text, sb.ToString());
        Assert.True(updates > 2, $"{updates} updates: the text should arrive in pieces");
        Assert.NotNull(usage);
        Assert.Equal(whole.Usage.OutputTokenCount, usage!.OutputTokenCount);
        Assert.Equal(whole.FinishReason, finish);
    }

    [Fact]
    public async Task ConcurrentRequestsEqualTheirSingleRuns()
    {
        var prompts = Enumerable.Range(0, 8).Select(i => $"prompt {i}: the lazy dog {new string('x', i)}").ToArray();
        async Task<string> Complete(int i)
        {
            var body = new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = prompts[i], ["max_tokens"] = 10 + 3 * i, ["temperature"] = i % 2 == 0 ? 0 : 1, ["seed"] = i };
            using var r = await _s.Http.PostAsync("v1/completions", Json(body));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            return JsonNode.Parse(await r.Content.ReadAsStringAsync())!["choices"]![0]!["text"]!.GetValue<string>();
        }
        var single = new string[prompts.Length];
        for (int i = 0; i < prompts.Length; i++) single[i] = await Complete(i);
        var together = await Task.WhenAll(Enumerable.Range(0, prompts.Length).Select(i => Task.Run(() => Complete(i))));
        Assert.Equal(single, together);
        Assert.True(single.Distinct().Count() > 4, "different prompts should give different texts");
    }

    [Fact]
    public async Task CompletionsStreamEndsWithDoneAndUsage()
    {
        var body = new JsonObject
        {
            ["model"] = TinyServer.ModelName, ["prompt"] = "Encoder–decoder models", ["max_tokens"] = 9, ["temperature"] = 0.7, ["seed"] = 3,
            ["stream"] = true, ["stream_options"] = new JsonObject { ["include_usage"] = true },
        };
        using var whole = await _s.Http.PostAsync("v1/completions", Json(new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = "Encoder–decoder models", ["max_tokens"] = 9, ["temperature"] = 0.7, ["seed"] = 3 }));
        var expected = JsonNode.Parse(await whole.Content.ReadAsStringAsync())!;
        using var r = await _s.Http.PostAsync("v1/completions", Json(body));
        Assert.Equal("text/event-stream", r.Content.Headers.ContentType!.MediaType);
        var events = (await r.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e));
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e["data: ".Length..])!).ToArray();
        string text = string.Concat(chunks.Where(c => c["choices"]!.AsArray().Count > 0).Select(c => c["choices"]![0]!["text"]!.GetValue<string>()));
        Assert.Equal(expected["choices"]![0]!["text"]!.GetValue<string>(), text);
        Assert.Equal(expected["usage"]!.ToJsonString(), chunks[^1]["usage"]!.ToJsonString());
        Assert.Equal(expected["choices"]![0]!["finish_reason"]!.GetValue<string>(), chunks[^2]["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task NChoicesAreTheSeedsSampleStreams()
    {
        var body = new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = "café crème", ["max_tokens"] = 12, ["temperature"] = 1.0, ["seed"] = 99, ["n"] = 3 };
        using var r = await _s.Http.PostAsync("v1/completions", Json(body));
        var choices = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["choices"]!.AsArray();
        Assert.Equal(3, choices.Count);
        Assert.Equal([0, 1, 2], choices.Select(c => c!["index"]!.GetValue<int>()));
        var generator = new Generator(_s.Model, _s.Tokenizer);
        var expected = generator.Generate("café crème", new GenerationOptions { MaxNewTokens = 12, DoSample = true, Temperature = 1f, Seed = 99, NumReturnSequences = 3 });
        Assert.Equal(expected.Sequences.Select(s => s.Text), choices.Select(c => c!["text"]!.GetValue<string>()));
    }

    [Fact]
    public async Task StopCutsTheTextAndMaxTokensCounts()
    {
        var first = new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = "quick brown", ["max_tokens"] = 20, ["temperature"] = 0 };
        using var r1 = await _s.Http.PostAsync("v1/completions", Json(first));
        var j1 = JsonNode.Parse(await r1.Content.ReadAsStringAsync())!;
        string full = j1["choices"]![0]!["text"]!.GetValue<string>();
        if (j1["choices"]![0]!["finish_reason"]!.GetValue<string>() == "length") Assert.Equal(20, j1["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.True(full.Length >= 6, $"output '{full}' too short to cut");
        string stop = full.Substring(full.Length / 2, 2);
        first["stop"] = new JsonArray(stop, "never-there");
        using var r2 = await _s.Http.PostAsync("v1/completions", Json(first));
        var j2 = JsonNode.Parse(await r2.Content.ReadAsStringAsync())!;
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], j2["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("stop", j2["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task ModelsHealthAndMetrics()
    {
        var models = (await new OpenAIModelClient(new System.ClientModel.ApiKeyCredential("unused"), _s.Options()).GetModelsAsync()).Value;
        Assert.Equal([TinyServer.ModelName], models.Select(m => m.Id));
        var health = JsonNode.Parse(await _s.Http.GetStringAsync("health"))!;
        Assert.Equal("ok", health["status"]!.GetValue<string>());
        using (await _s.Http.PostAsync("v1/completions", Json(new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = "x", ["max_tokens"] = 2 }))) { }
        string metrics = await _s.Http.GetStringAsync("metrics");
        foreach (var name in new[] { "encore_queue_length ", "encore_active_sequences ", "encore_tokens_per_second ", "encore_time_to_first_token_seconds_bucket{le=\"+Inf\"} " })
            Assert.Contains(name, metrics);
        var count = metrics.Split('\n').Single(l => l.StartsWith("encore_time_to_first_token_seconds_count ", StringComparison.Ordinal));
        Assert.True(long.Parse(count.Split(' ')[1]) >= 1);
    }

    public static TheoryData<string, string, string?> BadBodies => new()
    {
        { "/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [", null },
        { "/v1/chat/completions", "[1, 2, 3]", null },
        { "/v1/chat/completions", "{\"model\": \"tiny\"}", "messages" },
        { "/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": \"hi\"}", "messages" },
        { "/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}", "messages[0].role" },
        { "/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": 5}]}", "messages[0].content" },
        { "/v1/chat/completions", "{\"model\": \"gpt-4\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "model" },
        { "/v1/chat/completions", "{\"model\": 7, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "model" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"max_tokens\": 0}", "max_tokens" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"max_tokens\": -5}", "max_tokens" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"max_tokens\": \"ten\"}", "max_tokens" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"max_tokens\": 1.5}", "max_tokens" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"max_tokens\": 100000}", "max_tokens" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"temperature\": \"hot\"}", "temperature" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"temperature\": 7}", "temperature" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"top_p\": 0}", "top_p" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"n\": 100000}", "n" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"n\": 0}", "n" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"stream\": \"yes\"}", "stream" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"seed\": \"abc\"}", "seed" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"stop\": [1, 2]}", "stop" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": 12}", "prompt" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"logit_bias\": {\"99999\": 5}}", null },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"hi\", \"logit_bias\": {\"x\": 5}}", "logit_bias" },
        { "/v1/completions", "{\"model\": \"tiny\", \"prompt\": []}", "prompt" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task BadRequestsGetOpenAiErrors(string path, string body, string? param)
    {
        using var r = await _s.Http.PostAsync(path.TrimStart('/'), new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        var error = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!;
        Assert.False(string.IsNullOrEmpty(error["message"]!.GetValue<string>()));
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
        Assert.Equal(param, error["param"]?.GetValue<string>());
    }

    [Fact]
    public async Task TooLongPromptsDeepJsonAndHugeBodiesAreRefused()
    {
        // 300 words: more tokens than the 256-position context.
        string longPrompt = string.Join(' ', Enumerable.Repeat("encoder decoder", 300));
        using (var r = await _s.Http.PostAsync("v1/completions", Json(new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = longPrompt })))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Equal("context_length_exceeded", JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        }
        string deep = new string('[', 10_000) + new string(']', 10_000);
        using (var r = await _s.Http.PostAsync("v1/completions", new StringContent(deep, Encoding.UTF8, "application/json")))
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        string huge = "{\"model\": \"tiny\", \"prompt\": \"" + new string('a', 2 << 20) + "\"}";
        // With a Content-Length over the limit the answer comes before the body is read; Expect: 100-continue
        // keeps the client from sending a body the server will not read.
        using (var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(huge, Encoding.UTF8, "application/json") })
        {
            req.Headers.ExpectContinue = true;
            using var r = await _s.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
            Assert.NotNull(JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]);
        }
        // Sent without a Content-Length, the limit is enforced while reading.
        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(huge)));
        chunked.Headers.ContentType = new("application/json");
        using (var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = chunked })
        {
            req.Headers.TransferEncodingChunked = true;
            try
            {
                using var r = await _s.Http.SendAsync(req);
                Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
            }
            catch (HttpRequestException)
            {
                // Kestrel answered 413 and closed the connection while the client was still uploading.
            }
        }
        Assert.Equal("ok", JsonNode.Parse(await _s.Http.GetStringAsync("health"))!["status"]!.GetValue<string>());
    }

    internal static StringContent Json(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");
}
