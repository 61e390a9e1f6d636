// POST /v1/embeddings (https://platform.openai.com/docs/api-reference/embeddings): "input" is a string,
// an array of strings, an array of token ids (one input) or an array of such arrays; "encoding_format"
// is "float" or "base64" (the float32 values, little-endian, base64-encoded); "dimensions" keeps the
// first n values and normalizes again. Every field is type-checked; a wrong one is a 400 naming it.
using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Encore.Server;

/// <summary>One input of an embeddings request: a text, or token ids without special tokens.</summary>
internal readonly record struct EmbeddingsInput(string? Text, int[]? Ids);

/// <summary>The fields of /v1/embeddings that Encore acts on.</summary>
internal sealed record EmbeddingsRequest
{
    /// <summary>The model named by the request; null when it names none.</summary>
    public string? Model { get; init; }
    public required IReadOnlyList<EmbeddingsInput> Inputs { get; init; }
    /// <summary>encoding_format "base64" (else "float").</summary>
    public bool Base64 { get; init; }
    public int? Dimensions { get; init; }
}

internal static class EmbeddingsApi
{
    public const string Path = "/v1/embeddings";

    static ApiException Bad(string message, string param, string? code = null) => OpenAiRequests.Bad(message, param, code);

    /// <summary>Parses a request body; anything malformed is a 400 naming the parameter.</summary>
    public static EmbeddingsRequest Parse(ReadOnlySpan<byte> body, int maxInputs)
    {
        if (!System.Text.Unicode.Utf8.IsValid(body)) throw OpenAiRequests.Bad("the request body is not valid UTF-8", null);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body.ToArray(), new JsonDocumentOptions { MaxDepth = OpenAiRequests.MaxDepth });
        }
        catch (JsonException e)
        {
            throw OpenAiRequests.Bad("could not parse the JSON body: " + e.Message.Split(" LineNumber:")[0], null);
        }
        using (doc) return Parse(doc.RootElement, maxInputs);
    }

    public static EmbeddingsRequest Parse(JsonElement root, int maxInputs)
    {
        if (root.ValueKind != JsonValueKind.Object) throw OpenAiRequests.Bad("the request body must be a JSON object", null);
        string? model = OpenAiRequests.String(root, "model");
        _ = OpenAiRequests.String(root, "user");
        bool base64 = OpenAiRequests.String(root, "encoding_format") switch
        {
            null or "float" => false,
            "base64" => true,
            var f => throw Bad($"encoding_format must be \"float\" or \"base64\", got \"{f}\"", "encoding_format"),
        };
        int? dimensions = OpenAiRequests.Int(root, "dimensions");
        if (dimensions is < 1) throw Bad($"dimensions must be at least 1, got {dimensions}", "dimensions");
        if (!OpenAiRequests.Present(root, "input", out var input)) throw Bad("'input' is required", "input");
        return new EmbeddingsRequest { Model = model, Inputs = Inputs(input, maxInputs), Base64 = base64, Dimensions = dimensions };
    }

    static List<EmbeddingsInput> Inputs(JsonElement input, int maxInputs)
    {
        if (input.ValueKind == JsonValueKind.String) return [new EmbeddingsInput(NonEmpty(input, "input"), null)];
        if (input.ValueKind != JsonValueKind.Array)
            throw Bad("'input' must be a string, an array of strings, an array of token ids or an array of token-id arrays", "input");
        int n = input.GetArrayLength();
        if (n == 0) throw Bad("'input' must not be empty", "input");
        var first = input[0].ValueKind;
        // An array of numbers is one tokenized input.
        if (first == JsonValueKind.Number) return [new EmbeddingsInput(null, Ids(input, "input"))];
        if (n > maxInputs) throw Bad($"'input' holds {n} inputs; at most {maxInputs} are accepted per request", "input");
        var result = new List<EmbeddingsInput>(n);
        int i = 0;
        foreach (var e in input.EnumerateArray())
        {
            string param = $"input[{i}]";
            result.Add(e.ValueKind switch
            {
                JsonValueKind.String when first == JsonValueKind.String => new EmbeddingsInput(NonEmpty(e, param), null),
                JsonValueKind.Array when first == JsonValueKind.Array => new EmbeddingsInput(null, Ids(e, param)),
                _ => throw Bad($"'{param}' must be {(first == JsonValueKind.String ? "a string" : first == JsonValueKind.Array ? "an array of token ids" : "a string or an array of token ids")}, like the first input", "input"),
            });
            i++;
        }
        return result;
    }

    static string NonEmpty(JsonElement e, string param)
    {
        var s = OpenAiRequests.Text(e, "input");
        return s.Length > 0 ? s : throw Bad($"'{param}' is an empty string", "input");
    }

    static int[] Ids(JsonElement array, string param)
    {
        int n = array.GetArrayLength();
        if (n == 0) throw Bad($"'{param}' is an empty array of token ids", "input");
        var ids = new int[n];
        int i = 0;
        foreach (var e in array.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out ids[i]) || ids[i] < 0)
                throw Bad($"'{param}' must hold token ids (non-negative integers); element {i} is {(e.ValueKind == JsonValueKind.Number ? e.GetRawText() : e.ValueKind.ToString().ToLowerInvariant())}", "input");
            i++;
        }
        return ids;
    }

    /// <summary>Writes the response fields: the list of embeddings (floats or base64), the model and the usage.</summary>
    public static void WriteResponse(Utf8JsonWriter w, float[][] vectors, bool base64, string model, long tokens)
    {
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        for (int i = 0; i < vectors.Length; i++)
        {
            w.WriteStartObject();
            w.WriteString("object", "embedding");
            w.WriteNumber("index", i);
            if (base64)
            {
                // OpenAI's base64 encoding: the float32 values' little-endian bytes.
                if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("base64 embeddings are written on little-endian machines only");
                w.WriteBase64String("embedding", MemoryMarshal.AsBytes(vectors[i].AsSpan()));
            }
            else
            {
                w.WriteStartArray("embedding");
                foreach (float x in vectors[i]) w.WriteNumberValue(x);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("model", model);
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", tokens);
        w.WriteNumber("total_tokens", tokens);
        w.WriteEndObject();
    }
}
