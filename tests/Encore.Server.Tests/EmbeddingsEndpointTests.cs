using System.ClientModel;
using System.Net;
using System.Text.Json.Nodes;
using Encore.Generation;
using OpenAI.Embeddings;

namespace Encore.Server.Tests;

public sealed class EncoderServerFixture : IAsyncLifetime
{
    public TinyServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await TinyServer.StartAsync("tiny-encoder", new ServerOptions { MaxEmbeddingInputs = 8 });

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// POST /v1/embeddings through the official OpenAI client (which asks for base64) and raw HTTP (floats),
/// against the Embedder run in process on the same model; what an encoder-only, encoder–decoder and
/// decoder-only model each serve; and the 400s that name the offending parameter.
/// </summary>
public class EmbeddingsEndpointTests(EncoderServerFixture encoder, EncDecServerFixture encdec) : IClassFixture<EncoderServerFixture>, IClassFixture<EncDecServerFixture>
{
    static readonly string[] s_texts = ["The quick brown fox jumps over the lazy dog.", "hello there", "Ça coûte 5 €, déjà payé — naïve café crème."];

    static EmbeddingClient Client(TinyServer s) => new(TinyServer.ModelName, new ApiKeyCredential("unused"), s.Options());

    static async Task<(HttpStatusCode Status, JsonNode Body)> Post(TinyServer s, string path, string body)
    {
        using var r = await s.Http.PostAsync(path, new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        return (r.StatusCode, JsonNode.Parse(await r.Content.ReadAsStringAsync())!);
    }

    [Fact]
    public async Task TheOfficialClientGetsTheEmbeddersVectorsAndUsage()
    {
        var s = encoder.Server;
        var expected = new Embedder(s.Model, s.Tokenizer).Embed(s_texts);
        var result = (await Client(s).GenerateEmbeddingsAsync(s_texts)).Value;
        Assert.Equal(s_texts.Length, result.Count);
        for (int i = 0; i < s_texts.Length; i++)
        {
            Assert.Equal(i, result[i].Index);
            Assert.Equal(expected.Vectors[i], result[i].ToFloats().ToArray());
        }
        Assert.Equal((int)expected.Tokens, result.Usage.InputTokenCount);
        Assert.Equal((int)expected.Tokens, result.Usage.TotalTokenCount);
        Assert.Equal(TinyServer.ModelName, result.Model);

        // dimensions: the first 8 values, normalized again.
        var cut = (await Client(s).GenerateEmbeddingsAsync(["hello there"], new EmbeddingGenerationOptions { Dimensions = 8 })).Value;
        var embedder = new Embedder(s.Model, s.Tokenizer);
        Assert.Equal(embedder.Embed(["hello there"], embedder.DefaultOptions with { Dimensions = 8 }).Vectors[0], cut[0].ToFloats().ToArray());
    }

    [Fact]
    public async Task FloatsTokenIdsAndTheEncoderOfAnEncoderDecoder()
    {
        foreach (var s in new[] { encoder.Server, encdec.Server })
        {
            var embedder = new Embedder(s.Model, s.Tokenizer);
            var (status, body) = await Post(s, "v1/embeddings", new JsonObject { ["input"] = "hello there", ["encoding_format"] = "float" }.ToJsonString());
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal("list", body["object"]!.GetValue<string>());
            var data = body["data"]!.AsArray().Single()!;
            Assert.Equal(("embedding", 0), (data["object"]!.GetValue<string>(), data["index"]!.GetValue<int>()));
            var vector = data["embedding"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
            Assert.Equal(embedder.Embed(["hello there"]).Vectors[0], vector);

            // Token ids (the text's, without special tokens) embed as the text does.
            var ids = s.Tokenizer.Encode("hello there", addSpecialTokens: false);
            var (idStatus, idBody) = await Post(s, "v1/embeddings", new JsonObject { ["input"] = new JsonArray(new JsonArray(ids.Select(i => (JsonNode)i).ToArray())) }.ToJsonString());
            Assert.Equal(HttpStatusCode.OK, idStatus);
            Assert.Equal(vector, idBody["data"]![0]!["embedding"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray());
            Assert.Equal(embedder.Tokenize("hello there").Ids.Length, idBody["usage"]!["prompt_tokens"]!.GetValue<int>());
        }
        // The encoder–decoder still generates.
        var (completion, _) = await Post(encdec.Server, "v1/completions", """{"prompt": "hello", "max_tokens": 2}""");
        Assert.Equal(HttpStatusCode.OK, completion);
        Assert.Contains("encore_embedded_inputs_total", await encoder.Server.Http.GetStringAsync("metrics"));
    }

    [Fact]
    public async Task EndpointsAModelLacksAnswer404NamingWhatItServes()
    {
        foreach (var path in new[] { "v1/completions", "v1/chat/completions" })
        {
            var (status, body) = await Post(encoder.Server, path, """{"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}""");
            Assert.Equal(HttpStatusCode.NotFound, status);
            Assert.Contains("is an embedding model (encoder-only) and serves /v1/embeddings", body["error"]!["message"]!.GetValue<string>());
            Assert.Equal("model_not_supported", body["error"]!["code"]!.GetValue<string>());
        }
        await using var decoder = await TinyServer.StartAsync("tiny-decoder", new ServerOptions { MaxBatch = 2, ContextLength = 64 });
        var (s2, b2) = await Post(decoder, "v1/embeddings", """{"input": "hi"}""");
        Assert.Equal(HttpStatusCode.NotFound, s2);
        Assert.Contains("has no encoder and serves /v1/completions and /v1/chat/completions", b2["error"]!["message"]!.GetValue<string>());
        using var wrongMethod = await encoder.Server.Http.GetAsync("v1/embeddings");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
    }

    [Theory]
    [InlineData("""{}""", "input", "'input' is required")]
    [InlineData("""{"input": 5}""", "input", "must be a string, an array of strings")]
    [InlineData("""{"input": []}""", "input", "must not be empty")]
    [InlineData("""{"input": ""}""", "input", "empty string")]
    [InlineData("""{"input": ["a", 3]}""", "input", "'input[1]' must be a string")]
    [InlineData("""{"input": [[1, 2], []]}""", "input", "'input[1]' is an empty array")]
    [InlineData("""{"input": [-1]}""", "input", "non-negative integers")]
    [InlineData("""{"input": [100000]}""", "input", "outside the vocabulary")]
    [InlineData("""{"input": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}""", "input", "at most 8")]
    [InlineData("""{"input": "a", "encoding_format": "int8"}""", "encoding_format", "\"float\" or \"base64\"")]
    [InlineData("""{"input": "a", "dimensions": 0}""", "dimensions", "at least 1")]
    [InlineData("""{"input": "a", "dimensions": 33}""", "dimensions", "at most 32")]
    [InlineData("""{"input": "a", "dimensions": "8"}""", "dimensions", "must be an integer")]
    [InlineData("""{"input": "a", "model": "other"}""", "model", "does not exist")]
    [InlineData("""{"input": "a", "user": 5}""", "user", "must be a string")]
    [InlineData("""{"input": "a\ud800"}""", "input", "lone surrogate")]
    public async Task BadRequestsAre400NamingTheParameter(string body, string param, string message)
    {
        var (status, json) = await Post(encoder.Server, "v1/embeddings", body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(param, json["error"]!["param"]!.GetValue<string>());
        Assert.Contains(message, json["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task InputsPastTheModelsLengthAreRefused()
    {
        var s = encoder.Server;
        int max = s.Model.Config.MaxPositions;
        // Past the length in tokens, and far past it in characters (refused before tokenizing).
        foreach (var (text, expected) in new[] { (string.Join(' ', Enumerable.Repeat("fox", max + 10)), $"maximum context length is {max} tokens"), (new string('x', 40 * max), "characters") })
        {
            var (status, json) = await Post(s, "v1/embeddings", new JsonObject { ["input"] = new JsonArray("hi", text) }.ToJsonString());
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Equal(("input", "context_length_exceeded"), (json["error"]!["param"]!.GetValue<string>(), json["error"]!["code"]!.GetValue<string>()));
            Assert.Contains(expected, json["error"]!["message"]!.GetValue<string>());
            Assert.Contains("input[1]", json["error"]!["message"]!.GetValue<string>());
        }
    }
}
