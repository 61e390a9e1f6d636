using System.Net;
using System.Text.Json.Nodes;

namespace Encore.Server.Tests;

/// <summary>Queue bound, disconnects, timeouts: each on its own small server.</summary>
public class SchedulerLimitTests
{
    static JsonObject Long(int maxTokens, bool stream = false) => new()
    {
        ["model"] = TinyServer.ModelName, ["prompt"] = "the lazy dog", ["max_tokens"] = maxTokens, ["temperature"] = 1.0, ["stream"] = stream,
        // EOS (id 1) banned: the request runs to max_tokens unless cancelled.
        ["logit_bias"] = new JsonObject { ["1"] = -100 },
    };

    static async Task<long> GeneratedTokens(TinyServer s)
    {
        string metrics = await s.Http.GetStringAsync("metrics");
        return long.Parse(metrics.Split('\n').Single(l => l.StartsWith("encore_generated_tokens_total ", StringComparison.Ordinal)).Split(' ')[1]);
    }

    static async Task WaitIdle(TinyServer s)
    {
        for (int i = 0; i < 200; i++)
        {
            var h = JsonNode.Parse(await s.Http.GetStringAsync("health"))!;
            if (h["active_sequences"]!.GetValue<int>() == 0 && h["queue_length"]!.GetValue<int>() == 0) return;
            await Task.Delay(10);
        }
        Assert.Fail("the server did not become idle");
    }

    [Fact]
    public async Task FullQueueAnswers429AndADisconnectedClientIsCancelled()
    {
        await using var s = await TinyServer.StartAsync("tiny-decoder", new ServerOptions { MaxBatch = 1, MaxQueue = 1, ContextLength = 200_000 });
        const int huge = 150_000;
        // The first request takes the only row; its stream is left unread.
        using var cts = new CancellationTokenSource();
        var first = await s.Http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = OpenAiEndpointTests.Json(Long(huge, stream: true)) },
            HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        // The second waits in the queue; the third finds it full.
        var second = s.Http.PostAsync("v1/completions", OpenAiEndpointTests.Json(Long(3)));
        for (int i = 0; i < 200 && JsonNode.Parse(await s.Http.GetStringAsync("health"))!["queue_length"]!.GetValue<int>() == 0; i++) await Task.Delay(5);
        using (var third = await s.Http.PostAsync("v1/completions", OpenAiEndpointTests.Json(Long(3))))
        {
            Assert.Equal((HttpStatusCode)429, third.StatusCode);
            Assert.Equal("rate_limit_exceeded", JsonNode.Parse(await third.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        }
        // The client of the first goes away: its sequence leaves, and the queued request runs.
        cts.Cancel();
        first.Dispose();
        using (var r2 = await second) Assert.Equal(HttpStatusCode.OK, r2.StatusCode);
        await WaitIdle(s);
        Assert.True(await GeneratedTokens(s) < huge, "the disconnected request kept decoding");
    }

    [Fact]
    public async Task ARequestPastItsTimeoutGets504()
    {
        await using var s = await TinyServer.StartAsync("tiny-decoder", new ServerOptions { MaxBatch = 2, ContextLength = 200_000, RequestTimeout = TimeSpan.FromMilliseconds(300) });
        using var r = await s.Http.PostAsync("v1/completions", OpenAiEndpointTests.Json(Long(150_000)));
        Assert.Equal(HttpStatusCode.GatewayTimeout, r.StatusCode);
        Assert.Equal("timeout", JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!["type"]!.GetValue<string>());
        // Streaming, the timeout arrives after the headers: the stream ends with an error event instead of [DONE].
        using var streamed = await s.Http.PostAsync("v1/completions", OpenAiEndpointTests.Json(Long(150_000, stream: true)));
        var events = (await streamed.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("timeout", JsonNode.Parse(events[^1]["data: ".Length..])!["error"]!["type"]!.GetValue<string>());
        await WaitIdle(s);
        Assert.True(await GeneratedTokens(s) < 300_000);
    }

    [Fact]
    public async Task DecoderOnlyBatchedEqualsSingle()
    {
        await using var s = await TinyServer.StartAsync("tiny-decoder", new ServerOptions { MaxBatch = 4, ContextLength = 128 });
        async Task<string> Complete(int i)
        {
            var body = new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = new string('a', 1 + i) + " quick fox", ["max_tokens"] = 8 + i, ["temperature"] = 0.8, ["seed"] = 10 + i };
            using var r = await s.Http.PostAsync("v1/completions", OpenAiEndpointTests.Json(body));
            return JsonNode.Parse(await r.Content.ReadAsStringAsync())!["choices"]![0]!["text"]!.GetValue<string>();
        }
        var single = new string[6];
        for (int i = 0; i < 6; i++) single[i] = await Complete(i);
        // Six requests on four rows: two wait in the queue and join as rows free up.
        var together = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => Task.Run(() => Complete(i))));
        Assert.Equal(single, together);
    }
}
