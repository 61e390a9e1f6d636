using System.Net;
using System.Text.Json.Nodes;
using Encore.Models;

namespace Encore.Server.Tests;

/// <summary>A server whose decode batch keeps int8 KV caches.</summary>
public class KvCacheServerTests
{
    static async Task<long> KvCacheBytes(TinyServer s)
    {
        string metrics = await s.Http.GetStringAsync("metrics");
        return long.Parse(metrics.Split('\n').Single(l => l.StartsWith("encore_kv_cache_bytes ", StringComparison.Ordinal)).Split(' ')[1]);
    }

    [Theory]
    [InlineData("tiny-encdec")]
    [InlineData("tiny-decoder")]
    public async Task Int8CachesServeCompletionsInAQuarterOfTheMemory(string preset)
    {
        await using var s = await TinyServer.StartAsync(preset, new ServerOptions { MaxBatch = 2, ContextLength = 64, KvCacheDType = KvCacheDType.Int8 });
        var body = new JsonObject
        {
            ["model"] = TinyServer.ModelName, ["prompt"] = "the lazy dog", ["max_tokens"] = 6, ["temperature"] = 0,
            ["logit_bias"] = new JsonObject { ["1"] = -100 },
        };
        using var r = await s.Http.PostAsync("v1/completions", OpenAiEndpointTests.Json(body));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var json = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
        Assert.Equal(6, json["usage"]!["completion_tokens"]!.GetValue<int>());
        var c = s.Model.Config;
        long bytes = await KvCacheBytes(s);
        Assert.Equal(ModelMemory.CacheBytes(c, 2, 64, KvCacheDType.Int8), bytes);
        Assert.True(ModelMemory.CacheBytes(c, 2, 64) >= 1.8 * bytes);
    }

    [Fact]
    public void AnUndefinedDTypeIsRefusedNamingTheOption()
    {
        var ex = Assert.Throws<ArgumentException>(() => new ServerOptions { KvCacheDType = (KvCacheDType)7 }.Validate());
        Assert.Contains("--kv-dtype", ex.Message);
    }
}
