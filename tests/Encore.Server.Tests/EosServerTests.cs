using System.Net;
using System.Text.Json.Nodes;

namespace Encore.Server.Tests;

/// <summary>Server-wide EOS ids (a checkpoint's generation_config.json eos_token_id list) end every request's sequences.</summary>
public class EosServerTests
{
    static async Task<JsonNode> Complete(TinyServer s)
    {
        var body = new JsonObject
        {
            ["model"] = TinyServer.ModelName, ["prompt"] = "the lazy dog", ["max_tokens"] = 6, ["temperature"] = 0,
            ["logit_bias"] = new JsonObject { ["1"] = -100 },
        };
        using var r = await s.Http.PostAsync("v1/completions", OpenAiEndpointTests.Json(body));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        return JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
    }

    [Theory]
    [InlineData("tiny-encdec")]
    [InlineData("tiny-decoder")]
    public async Task TheServersEosIdsEndSequencesWhereTheModelsWouldNot(string preset)
    {
        // The model's own EOS (1) is banned, so a plain server runs to max_tokens ...
        await using (var plain = await TinyServer.StartAsync(preset))
        {
            var json = await Complete(plain);
            Assert.Equal("length", json["choices"]![0]!["finish_reason"]!.GetValue<string>());
            Assert.Equal(6, json["usage"]!["completion_tokens"]!.GetValue<int>());
        }
        // ... and a server that ends sequences at every id stops at the first token, whichever it is.
        var vocabulary = TinyServer.CreateModel(preset).Config.VocabSize;
        await using var s = await TinyServer.StartAsync(preset, new ServerOptions { EosTokenIds = [.. Enumerable.Range(0, vocabulary)] });
        var stopped = await Complete(s);
        Assert.Equal("stop", stopped["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.True(stopped["usage"]!["completion_tokens"]!.GetValue<int>() <= 1);
    }

    [Fact]
    public void EmptyOrNegativeEosIdsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => new ServerOptions { EosTokenIds = [] }.Validate());
        var e = Assert.Throws<ArgumentException>(() => new ServerOptions { EosTokenIds = [2, -1] }.Validate());
        Assert.Equal("server EOS token ids: give at least one, each non-negative", e.Message);
    }
}
