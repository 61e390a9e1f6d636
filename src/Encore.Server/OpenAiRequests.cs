// Parsing and validating OpenAI request bodies (https://platform.openai.com/docs/api-reference/completions,
// /chat). Every field is type-checked before use; a wrong one becomes a 400 naming the parameter.
// Unknown fields are ignored, as OpenAI's own clients send fields a server may not implement.
using System.Text.Json;

namespace Encore.Server;

/// <summary>A request the server refuses, with its HTTP status and OpenAI error type/code.</summary>
public sealed class ApiException(int status, string message, string? param = null, string type = "invalid_request_error", string? code = null) : Exception(message)
{
    /// <summary>HTTP status.</summary>
    public int Status { get; } = status;
    /// <summary>OpenAI's error.param: the offending parameter.</summary>
    public string? Param { get; } = param;
    /// <summary>OpenAI's error.type.</summary>
    public string Type { get; } = type;
    /// <summary>OpenAI's error.code.</summary>
    public string? Code { get; } = code;
}

/// <summary>The fields of /v1/completions and /v1/chat/completions that Encore acts on.</summary>
internal sealed record GenerationRequest
{
    /// <summary>The model named by the request; null when it names none (the one model served answers).</summary>
    public string? Model { get; init; }
    /// <summary>The prompts (completions: one or several; chat: the flattened conversation).</summary>
    public required IReadOnlyList<string> Prompts { get; init; }
    public int? MaxTokens { get; init; }
    public float Temperature { get; init; } = 1f;
    public float TopP { get; init; } = 1f;
    public ulong? Seed { get; init; }
    public int N { get; init; } = 1;
    public IReadOnlyList<string> Stop { get; init; } = [];
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
    public IReadOnlyDictionary<int, float> LogitBias { get; init; } = new Dictionary<int, float>();
}

internal static class OpenAiRequests
{
    /// <summary>Deepest JSON nesting accepted in a body.</summary>
    public const int MaxDepth = 64;

    public static ApiException Bad(string message, string? param, string? code = null) => new(400, message, param, code: code);

    /// <summary>
    /// Parses a request body for <paramref name="api"/>: the bytes must be UTF-8 and JSON, and every
    /// string read must decode to well-formed UTF-16; anything else is a 400 naming the parameter.
    /// </summary>
    public static GenerationRequest Parse(ReadOnlySpan<byte> body, CompletionApi api)
    {
        // System.Text.Json checks UTF-8 inside strings only when they are read, and then throws
        // InvalidOperationException: checked first, so a bad byte is the client's error, not a 500.
        if (!System.Text.Unicode.Utf8.IsValid(body)) throw Bad("the request body is not valid UTF-8", null);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body.ToArray(), new JsonDocumentOptions { MaxDepth = MaxDepth });
        }
        catch (JsonException e)
        {
            throw Bad("could not parse the JSON body: " + e.Message.Split(" LineNumber:")[0], null);
        }
        using (doc) return Parse(doc.RootElement, api);
    }

    /// <summary>Request parameters of OpenAI features this server does not implement: a 400 names each.</summary>
    public static readonly string[] UnsupportedParameters =
        ["tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "top_logprobs", "audio", "modalities", "prediction"];

    /// <summary>Parses a completions or chat completions body already read as JSON.</summary>
    public static GenerationRequest Parse(JsonElement root, CompletionApi api)
    {
        if (root.ValueKind != JsonValueKind.Object) throw Bad("the request body must be a JSON object", null);
        // One model is served, so naming it is optional; a name that is given must be the served one.
        string? model = String(root, "model");
        IReadOnlyList<string> prompts = api.ReadPrompts(root);

        int? maxTokens = Int(root, "max_completion_tokens") ?? Int(root, "max_tokens");
        if (maxTokens is <= 0) throw Bad($"max_tokens must be at least 1, got {maxTokens}", root.TryGetProperty("max_completion_tokens", out _) ? "max_completion_tokens" : "max_tokens");
        float temperature = Float(root, "temperature") ?? 1f;
        if (temperature is < 0 or > 2) throw Bad($"temperature must be in [0, 2], got {temperature}", "temperature");
        float topP = Float(root, "top_p") ?? 1f;
        if (topP is <= 0 or > 1) throw Bad($"top_p must be in (0, 1], got {topP}", "top_p");
        int n = Int(root, "n") ?? 1;
        if (n < 1) throw Bad($"n must be at least 1, got {n}", "n");
        ulong? seed = null;
        if (Present(root, "seed", out var s))
        {
            if (s.ValueKind != JsonValueKind.Number || !s.TryGetInt64(out long v)) throw Bad("'seed' must be an integer", "seed");
            seed = unchecked((ulong)v);
        }
        IReadOnlyList<string> stop = [];
        if (Present(root, "stop", out var st))
        {
            stop = st.ValueKind switch
            {
                JsonValueKind.String => [Text(st, "stop")],
                JsonValueKind.Array when st.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) => st.EnumerateArray().Select(e => Text(e, "stop")).ToArray(),
                _ => throw Bad("'stop' must be a string or an array of strings", "stop"),
            };
            if (stop.Count > 4) throw Bad($"'stop' holds at most 4 sequences, got {stop.Count}", "stop");
            if (stop.Any(x => x.Length == 0 || x.Length > 256)) throw Bad("each stop sequence must have 1 to 256 characters", "stop");
        }
        bool stream = Bool(root, "stream") ?? false;
        bool includeUsage = false;
        if (Present(root, "stream_options", out var so))
        {
            if (so.ValueKind != JsonValueKind.Object) throw Bad("'stream_options' must be an object", "stream_options");
            includeUsage = Bool(so, "include_usage", "stream_options.include_usage") ?? false;
        }
        var logitBias = new Dictionary<int, float>();
        if (Present(root, "logit_bias", out var lb))
        {
            if (lb.ValueKind != JsonValueKind.Object) throw Bad("'logit_bias' must be an object of token ids to biases", "logit_bias");
            foreach (var kv in lb.EnumerateObject())
            {
                if (logitBias.Count >= 1024) throw Bad("'logit_bias' holds at most 1024 tokens", "logit_bias");
                if (!IsReadableName(kv))
                    throw Bad("'logit_bias' keys must be token ids", "logit_bias");
                if (!int.TryParse(kv.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id))
                    throw Bad($"'logit_bias' key '{kv.Name}' is not a token id", "logit_bias");
                if (kv.Value.ValueKind != JsonValueKind.Number || !kv.Value.TryGetDouble(out double b) || b is < -100 or > 100)
                    throw Bad($"'logit_bias' values must be numbers in [-100, 100]", "logit_bias");
                logitBias[id] = (float)b;
            }
        }
        foreach (var name in new[] { "frequency_penalty", "presence_penalty" })
            if (Float(root, name) is { } pen && pen != 0) throw Bad($"{name} is not supported (only 0)", name);
        // Completions take logprobs as a count, chat as a boolean.
        if ((api is TextCompletionApi && Present(root, "logprobs", out var lp) && lp.ValueKind == JsonValueKind.Number) || Bool(root, "logprobs") == true)
            throw Bad("logprobs are not supported", "logprobs");
        if (Bool(root, "echo") == true) throw Bad("echo is not supported", "echo");
        // Parameters of features Encore does not implement are refused by name rather than ignored.
        foreach (var name in UnsupportedParameters)
            if (Present(root, name, out var u) && u.ValueKind != JsonValueKind.Null && !(u.ValueKind == JsonValueKind.Array && u.GetArrayLength() == 0))
                throw Bad($"{name} is not supported", name);
        if (Present(root, "response_format", out var rf) && rf.ValueKind != JsonValueKind.Null
            && !(rf.ValueKind == JsonValueKind.Object && rf.TryGetProperty("type", out var rt) && rt.ValueKind == JsonValueKind.String && rt.GetString() == "text"))
            throw Bad("response_format other than {\"type\": \"text\"} is not supported", "response_format");
        if (Int(root, "best_of") is > 1) throw Bad("best_of is not supported", "best_of");
        return new GenerationRequest
        {
            Model = model,
            Prompts = prompts,
            MaxTokens = maxTokens,
            Temperature = temperature,
            TopP = topP,
            Seed = seed,
            N = n,
            Stop = stop,
            Stream = stream,
            IncludeUsage = includeUsage,
            LogitBias = logitBias,
        };
    }

    public static bool Present(JsonElement o, string name, out JsonElement value) =>
        o.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    public static string? String(JsonElement o, string name, string? param = null)
    {
        if (!Present(o, name, out var v)) return null;
        return v.ValueKind == JsonValueKind.String ? Text(v, param ?? name) : throw Bad($"'{param ?? name}' must be a string", param ?? name);
    }

    static bool IsReadableName(JsonProperty p)
    {
        try
        {
            _ = p.Name;
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>The value of JSON string <paramref name="v"/>; an escaped lone surrogate ("\ud800") is a 400 naming <paramref name="param"/>.</summary>
    public static string Text(JsonElement v, string param)
    {
        try
        {
            return v.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw Bad($"'{param}' is not valid text: it holds a lone surrogate escape or invalid UTF-8", param);
        }
    }

    public static int? Int(JsonElement o, string name)
    {
        if (!Present(o, name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x)) throw Bad($"'{name}' must be an integer", name);
        return (int)Math.Clamp(x, int.MinValue, int.MaxValue);
    }

    static float? Float(JsonElement o, string name)
    {
        if (!Present(o, name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double x) || !double.IsFinite(x)) throw Bad($"'{name}' must be a number", name);
        return (float)x;
    }

    static bool? Bool(JsonElement o, string name, string? param = null)
    {
        if (!Present(o, name, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad($"'{param ?? name}' must be a boolean", param ?? name),
        };
    }
}
