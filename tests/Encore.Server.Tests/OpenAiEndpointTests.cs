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
        // Sent without a Content-Length, the limit is enforced while reading. The body is one byte past the
        // limit and left unfinished, so when the server answers it has read all that was sent: no upload is
        // cut short and the answer is read whole, whatever the timing.
        var (status, body) = await PostUnfinishedChunkedAsync(_s.Server.BaseAddress, "v1/completions", new ServerOptions().MaxRequestBodyBytes + 1);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.NotNull(JsonNode.Parse(body)!["error"]);
        Assert.Equal("ok", JsonNode.Parse(await _s.Http.GetStringAsync("health"))!["status"]!.GetValue<string>());
    }

    internal static StringContent Json(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    /// <summary>
    /// POSTs <paramref name="bytes"/> of a chunked body over a raw socket without the closing chunk, then reads
    /// the response: status and body (chunked, by Content-Length, or to the end of the connection).
    /// </summary>
    static async Task<(HttpStatusCode Status, string Body)> PostUnfinishedChunkedAsync(Uri server, string path, long bytes)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(server.Host, server.Port, cts.Token);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /{path} HTTP/1.1\r\nHost: {server.Authority}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"), cts.Token);
        var chunk = new byte[64 << 10];
        chunk.AsSpan().Fill((byte)'a');
        for (long sent = 0; sent < bytes; sent += chunk.Length)
        {
            int n = (int)Math.Min(chunk.Length, bytes - sent);
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"{n:x}\r\n"), cts.Token);
            await stream.WriteAsync(chunk.AsMemory(0, n), cts.Token);
            await stream.WriteAsync("\r\n"u8.ToArray(), cts.Token);
        }

        var received = new MemoryStream();
        var buffer = new byte[4096];
        int headerEnd;
        while ((headerEnd = Find("\r\n\r\n"u8, 0)) < 0)
            if (!await ReadMoreAsync()) throw new IOException("the connection closed before the response headers");
        string head = Encoding.ASCII.GetString(received.GetBuffer(), 0, headerEnd);
        var status = (HttpStatusCode)int.Parse(head.Split(' ', 3)[1]);
        var headers = head.Split("\r\n").Skip(1).Select(h => h.Split(':', 2)).ToDictionary(h => h[0].Trim().ToLowerInvariant(), h => h[1].Trim());
        if (headers.GetValueOrDefault("transfer-encoding") != "chunked")
        {
            // Content-Length, or else the body runs to the end of the connection.
            long end = headers.TryGetValue("content-length", out var length) ? headerEnd + 4 + long.Parse(length) : long.MaxValue;
            while (received.Length < end)
                if (!await ReadMoreAsync())
                    if (end == long.MaxValue) break;
                    else throw new IOException("the connection closed inside the response body");
            return (status, Encoding.UTF8.GetString(received.GetBuffer(), headerEnd + 4, (int)received.Length - headerEnd - 4));
        }
        // A chunked response ends with a zero-size chunk.
        while (Find("\r\n0\r\n\r\n"u8, headerEnd + 2) < 0)
            if (!await ReadMoreAsync()) throw new IOException("the connection closed inside the response body");
        var body = new MemoryStream();
        for (int at = headerEnd + 4; ;)
        {
            int eol = Find("\r\n"u8, at);
            int size = Convert.ToInt32(Encoding.ASCII.GetString(received.GetBuffer(), at, eol - at), 16);
            if (size == 0) return (status, Encoding.UTF8.GetString(body.GetBuffer(), 0, (int)body.Length));
            body.Write(received.GetBuffer(), eol + 2, size);
            at = eol + 2 + size + 2;
        }

        async Task<bool> ReadMoreAsync()
        {
            int n = await stream.ReadAsync(buffer, cts.Token);
            received.Write(buffer, 0, n);
            return n > 0;
        }

        int Find(ReadOnlySpan<byte> value, int from)
        {
            int i = received.GetBuffer().AsSpan(from, (int)received.Length - from).IndexOf(value);
            return i < 0 ? -1 : from + i;
        }
    }
}
