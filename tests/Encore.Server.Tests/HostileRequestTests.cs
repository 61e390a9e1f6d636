using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Encore.Server.Tests;

/// <summary>
/// Regression tests from a probe with malformed HTTP requests: bad text answered 500, an oversized
/// prompt was tokenized in full before being refused, a wrong method answered 404.
/// </summary>
public class HostileRequestTests(EncDecServerFixture fixture) : IClassFixture<EncDecServerFixture>
{
    readonly TinyServer _s = fixture.Server;

    static ByteArrayContent Raw(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    static async Task<JsonNode> Error(HttpResponseMessage r, HttpStatusCode status)
    {
        Assert.Equal(status, r.StatusCode);
        var error = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!;
        Assert.False(string.IsNullOrEmpty(error["message"]!.GetValue<string>()));
        return error;
    }

    // An escaped lone surrogate in each string the server reads: 500 before.
    [Theory]
    [InlineData("/v1/completions", """{"model": "tiny", "prompt": "a\ud800b"}""", "prompt")]
    [InlineData("/v1/completions", """{"model": "tiny", "prompt": ["ok", "\udc00"]}""", "prompt")]
    [InlineData("/v1/completions", """{"model": "\ud800", "prompt": "hi"}""", "model")]
    [InlineData("/v1/completions", """{"model": "tiny", "prompt": "hi", "stop": "\ud800"}""", "stop")]
    [InlineData("/v1/completions", """{"model": "tiny", "prompt": "hi", "stop": ["x", "\udfff"]}""", "stop")]
    [InlineData("/v1/completions", """{"model": "tiny", "prompt": "hi", "logit_bias": {"\ud800": 1}}""", "logit_bias")]
    [InlineData("/v1/chat/completions", """{"model": "tiny", "messages": [{"role": "user", "content": "\ud800"}]}""", "messages[0].content")]
    [InlineData("/v1/chat/completions", """{"model": "tiny", "messages": [{"role": "user", "content": [{"type": "text", "text": "\ud800"}]}]}""", "messages[0].content.text")]
    [InlineData("/v1/chat/completions", """{"model": "tiny", "messages": [{"role": "\ud800", "content": "hi"}]}""", "messages[0].role")]
    public async Task LoneSurrogatesAre400NamingTheParameter(string path, string body, string param)
    {
        using var r = await _s.Http.PostAsync(path.TrimStart('/'), Raw(Encoding.UTF8.GetBytes(body)));
        var error = await Error(r, HttpStatusCode.BadRequest);
        Assert.Equal(param, error["param"]?.GetValue<string>());
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
    }

    // Parameters of features the server does not implement are refused by name (tools was accepted and
    // ignored while logprobs was a 400).
    [Theory]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]}""", "tools")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto"}""", "tool_choice")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "functions": [{"name": "f"}]}""", "functions")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}""", "top_logprobs")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}""", "response_format")]
    [InlineData("/v1/completions", """{"prompt": "hi", "logprobs": 2}""", "logprobs")]
    public async Task UnsupportedParametersAre400NamingThem(string path, string body, string param)
    {
        using var r = await _s.Http.PostAsync(path.TrimStart('/'), Raw(Encoding.UTF8.GetBytes(body)));
        var error = await Error(r, HttpStatusCode.BadRequest);
        Assert.Equal(param, error["param"]?.GetValue<string>());
        Assert.Contains("not supported", error["message"]!.GetValue<string>());
    }

    // One model is served: a request may leave "model" out (or send empty tools and a text format) and is
    // answered under the served name; a wrong name stays a 400.
    [Fact]
    public async Task TheModelMayBeLeftOutAndEmptyFeatureParametersAreAccepted()
    {
        using var r = await _s.Http.PostAsync("v1/chat/completions", Raw(Encoding.UTF8.GetBytes(
            """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "tools": [], "tool_choice": null, "response_format": {"type": "text"}}""")));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var served = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["model"]!.GetValue<string>();
        using var r2 = await _s.Http.PostAsync("v1/completions", Raw(Encoding.UTF8.GetBytes("""{"prompt": "hi", "max_tokens": 2}""")));
        Assert.Equal(HttpStatusCode.OK, r2.StatusCode);
        Assert.Equal(served, JsonNode.Parse(await r2.Content.ReadAsStringAsync())!["model"]!.GetValue<string>());
        using var r3 = await _s.Http.PostAsync("v1/completions", Raw(Encoding.UTF8.GetBytes("""{"model": "other", "prompt": "hi"}""")));
        Assert.Equal("model", (await Error(r3, HttpStatusCode.BadRequest))["param"]?.GetValue<string>());
    }

    // Invalid UTF-8 bytes inside each string: 500 before.
    [Theory]
    [InlineData("/v1/completions", """{"model": "tiny", "prompt": "a#b"}""")]
    [InlineData("/v1/completions", """{"model": "ti#ny", "prompt": "hi"}""")]
    [InlineData("/v1/completions", """{"model": "tiny", "prompt": "hi", "stop": "#"}""")]
    [InlineData("/v1/chat/completions", """{"model": "tiny", "messages": [{"role": "user", "content": "#"}]}""")]
    public async Task InvalidUtf8Is400(string path, string body)
    {
        foreach (byte[] bad in new[] { new byte[] { 0xFF }, [0xC3], [0xED, 0xA0, 0x80] /* an encoded surrogate */ })
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            int at = Array.IndexOf(bytes, (byte)'#');
            byte[] damaged = [.. bytes[..at], .. bad, .. bytes[(at + 1)..]];
            using var r = await _s.Http.PostAsync(path.TrimStart('/'), Raw(damaged));
            var error = await Error(r, HttpStatusCode.BadRequest);
            Assert.Contains("UTF-8", error["message"]!.GetValue<string>());
        }
        Assert.Equal("ok", JsonNode.Parse(await _s.Http.GetStringAsync("health"))!["status"]!.GetValue<string>());
    }

    // 14. A known path with another method: 404 before.
    [Theory]
    [InlineData("GET", "/v1/completions", "POST")]
    [InlineData("GET", "/v1/chat/completions", "POST")]
    [InlineData("PUT", "/v1/completions", "POST")]
    [InlineData("POST", "/v1/models", "GET")]
    [InlineData("DELETE", "/v1/models/tiny", "GET")]
    [InlineData("POST", "/health", "GET")]
    [InlineData("POST", "/metrics", "GET")]
    public async Task WrongMethodOnAKnownPathIs405WithAllow(string method, string path, string allow)
    {
        using var r = await _s.Http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path.TrimStart('/')));
        var error = await Error(r, HttpStatusCode.MethodNotAllowed);
        Assert.Equal(allow, string.Join(",", r.Content.Headers.Allow));
        Assert.Equal("method_not_allowed", error["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task UnknownPathsStay404()
    {
        using var r = await _s.Http.GetAsync("v1/nothing");
        Assert.Equal("not_found", (await Error(r, HttpStatusCode.NotFound))["code"]!.GetValue<string>());
    }

    [Fact]
    public void KnownPathsAndTheirMethods()
    {
        Assert.Equal("POST", EncoreServer.AllowedMethods("/v1/completions/"));
        Assert.Equal("GET", EncoreServer.AllowedMethods("/v1/models/some-model"));
        Assert.Null(EncoreServer.AllowedMethods("/v1/models/a/b"));
        Assert.Equal("GET", EncoreServer.AllowedMethods("/v1/models/"));
        Assert.Null(EncoreServer.AllowedMethods("/"));
    }

    // 9. A 1 MiB single-word prompt was tokenized in full (1–2 s of CPU) before the length check.
    [Fact]
    public async Task APromptPastTheCharacterBoundIsRefusedBeforeTokenization()
    {
        await using var s = await TinyServer.StartAsync("tiny-encdec", new ServerOptions { MaxBatch = 2, ContextLength = 256, MaxRequestBodyBytes = 2 << 20 });
        long max = new ServerOptions().MaxPromptCharacters(256);
        Assert.Equal(32 * 256, max);
        foreach (var path in new[] { "v1/completions", "v1/chat/completions" })
        {
            var body = path == "v1/completions"
                ? new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = new string('a', 1 << 20) }
                : new JsonObject { ["model"] = TinyServer.ModelName, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new string('a', 1 << 20) }) };
            using var r = await s.Http.PostAsync(path, OpenAiEndpointTests.Json(body));
            var error = await Error(r, HttpStatusCode.BadRequest);
            Assert.Equal("context_length_exceeded", error["code"]!.GetValue<string>());
            Assert.Contains($"at most {max} ", error["message"]!.GetValue<string>());
            Assert.Contains("characters", error["message"]!.GetValue<string>());
        }
        // At the bound the prompt is tokenized, and then refused for its tokens.
        using (var r = await s.Http.PostAsync("v1/completions", OpenAiEndpointTests.Json(new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = new string('a', (int)max) })))
            Assert.Contains("tokens", (await Error(r, HttpStatusCode.BadRequest))["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task ApiKeyIsRequiredAsABearerToken()
    {
        await using var s = await TinyServer.StartAsync("tiny-decoder", new ServerOptions { MaxBatch = 2, ContextLength = 64, ApiKey = "s3cret-key" });
        var completion = new JsonObject { ["model"] = TinyServer.ModelName, ["prompt"] = "the lazy dog", ["max_tokens"] = 2 };
        foreach (var auth in new[] { null, "Bearer wrong", "Bearer s3cret-ke", "Bearer s3cret-key2", "Basic s3cret-key", "s3cret-key" })
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = OpenAiEndpointTests.Json(completion) };
            if (auth is not null) req.Headers.TryAddWithoutValidation("Authorization", auth);
            using var r = await s.Http.SendAsync(req);
            var error = await Error(r, HttpStatusCode.Unauthorized);
            Assert.Equal("invalid_api_key", error["code"]!.GetValue<string>());
            Assert.Equal("Bearer", r.Headers.WwwAuthenticate.Single().Scheme);
        }
        using (var r = await s.Http.GetAsync("v1/models")) Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        using (var r = await s.Http.GetAsync("metrics")) Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        using (var r = await s.Http.GetAsync("health")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = OpenAiEndpointTests.Json(completion) })
        {
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret-key");
            using var r = await s.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        // The official client sends its key the same way.
        var chat = new OpenAI.Chat.ChatClient(TinyServer.ModelName, new System.ClientModel.ApiKeyCredential("s3cret-key"), s.Options());
        // Greedy: at the API's default temperature of 1 this tiny model samples its end token within two steps now and then.
        var answer = await chat.CompleteChatAsync([new OpenAI.Chat.UserChatMessage("hello")], new OpenAI.Chat.ChatCompletionOptions { MaxOutputTokenCount = 2, Temperature = 0f });
        Assert.Equal(2, answer.Value.Usage.OutputTokenCount);
    }

    [Fact]
    public void ApiKeyOptionIsChecked()
    {
        Assert.Throws<ArgumentException>(() => new ServerOptions { ApiKey = "" }.Validate());
        Assert.Throws<ArgumentException>(() => new ServerOptions { ApiKey = "with space" }.Validate());
        new ServerOptions { ApiKey = "sk-abc_123" }.Validate();
    }
}
