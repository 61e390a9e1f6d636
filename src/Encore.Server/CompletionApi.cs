// The two generation endpoints differ only in where the prompt comes from and how a choice is
// spelled: /v1/completions takes "prompt" and answers "text"; /v1/chat/completions takes "messages",
// formats them with the chat template and answers a "message" (or a streamed "delta").
using System.Text.Json;
using Encore.Generation;

namespace Encore.Server;

/// <summary>One OpenAI generation endpoint: its path, names, prompt source and choice format.</summary>
internal abstract class CompletionApi
{
    /// <summary>The route, e.g. "/v1/completions".</summary>
    public abstract string Path { get; }

    /// <summary>The response's "object" field.</summary>
    public abstract string ObjectName { get; }

    /// <summary>The "object" field of a streamed chunk.</summary>
    public abstract string ChunkObjectName { get; }

    /// <summary>Prefix of response ids ("cmpl-", "chatcmpl-").</summary>
    public abstract string IdPrefix { get; }

    /// <summary>The request parameter that holds the prompt, named in errors about it.</summary>
    public abstract string PromptParam { get; }

    /// <summary>max_tokens of a request that gives none (capped by the context).</summary>
    public abstract int DefaultMaxTokens(ServerOptions options);

    /// <summary>The prompts of a request body; throws <see cref="ApiException"/> 400 naming the parameter.</summary>
    public abstract IReadOnlyList<string> ReadPrompts(JsonElement root);

    /// <summary>Writes the content of a finished choice.</summary>
    public abstract void WriteChoice(Utf8JsonWriter w, string text);

    /// <summary>Writes the content of a streamed chunk: <paramref name="text"/> null for none; <paramref name="role"/> on a chat's first chunk.</summary>
    public abstract void WriteDelta(Utf8JsonWriter w, string? text, bool role);

    /// <summary>True when a stream opens with a role-only chunk per choice (chat).</summary>
    public abstract bool StreamsRole { get; }

    /// <summary>Text of the chunk that carries finish_reason.</summary>
    public abstract string? FinalChunkText { get; }

    /// <summary>True when the prompts already hold the model's special tokens (a checkpoint's chat template printed them): see <see cref="Generator.EncodeChatPrompt"/>.</summary>
    public virtual bool PromptsHoldSpecialTokens => false;

    /// <summary>The ids of one prompt read by <see cref="ReadPrompts"/>.</summary>
    public virtual int[] Encode(Generator generator, string prompt) => generator.EncodePrompt(prompt);

    public static CompletionApi Completions { get; } = new TextCompletionApi();

    /// <summary>Chat with the default template (the server makes its own with the checkpoint's, <see cref="ChatCompletionApi(ChatTemplate)"/>).</summary>
    public static CompletionApi Chat { get; } = new ChatCompletionApi(ChatTemplate.Default);
}

/// <summary>POST /v1/completions: "prompt" is a string or a non-empty array of strings.</summary>
internal sealed class TextCompletionApi : CompletionApi
{
    public override string Path => "/v1/completions";
    public override string ObjectName => "text_completion";
    public override string ChunkObjectName => "text_completion";
    public override string IdPrefix => "cmpl-";
    public override string PromptParam => "prompt";
    public override bool StreamsRole => false;
    public override string? FinalChunkText => string.Empty;

    public override int DefaultMaxTokens(ServerOptions options) => options.DefaultCompletionMaxTokens;

    public override IReadOnlyList<string> ReadPrompts(JsonElement root)
    {
        if (!root.TryGetProperty("prompt", out var p)) throw OpenAiRequests.Bad("you must provide a prompt parameter", "prompt");
        return p.ValueKind switch
        {
            JsonValueKind.String => [OpenAiRequests.Text(p, "prompt")],
            JsonValueKind.Array when p.GetArrayLength() > 0 && p.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) =>
                p.EnumerateArray().Select(e => OpenAiRequests.Text(e, "prompt")).ToArray(),
            _ => throw OpenAiRequests.Bad("'prompt' must be a string or a non-empty array of strings (token-id prompts are not supported)", "prompt"),
        };
    }

    public override void WriteChoice(Utf8JsonWriter w, string text) => w.WriteString("text", text);

    public override void WriteDelta(Utf8JsonWriter w, string? text, bool role) => w.WriteString("text", text ?? string.Empty);
}

/// <summary>POST /v1/chat/completions: "messages" with roles and string or text-part content, flattened by a <see cref="ChatTemplate"/>.</summary>
internal sealed class ChatCompletionApi(ChatTemplate template) : CompletionApi
{
    /// <summary>The template that flattens the messages.</summary>
    public ChatTemplate Template { get; } = template ?? throw new ArgumentNullException(nameof(template));

    public override bool PromptsHoldSpecialTokens => Template.RendersSpecialTokens;

    public override int[] Encode(Generator generator, string prompt) => generator.EncodeChatPrompt(prompt, Template);

    public override string Path => "/v1/chat/completions";
    public override string ObjectName => "chat.completion";
    public override string ChunkObjectName => "chat.completion.chunk";
    public override string IdPrefix => "chatcmpl-";
    public override string PromptParam => "messages";
    public override bool StreamsRole => true;
    public override string? FinalChunkText => null;

    public override int DefaultMaxTokens(ServerOptions options) => options.DefaultChatMaxTokens;

    public override IReadOnlyList<string> ReadPrompts(JsonElement root)
    {
        if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
            throw OpenAiRequests.Bad("'messages' must be an array of messages", "messages");
        if (messages.GetArrayLength() == 0) throw OpenAiRequests.Bad("'messages' must contain at least one message", "messages");
        var list = new List<(string, string)>();
        int i = 0;
        foreach (var m in messages.EnumerateArray())
        {
            string where = $"messages[{i++}]";
            if (m.ValueKind != JsonValueKind.Object) throw OpenAiRequests.Bad($"'{where}' must be an object", where);
            string role = OpenAiRequests.String(m, "role", where + ".role") ?? throw OpenAiRequests.Bad($"'{where}.role' is required", where + ".role");
            if (role is not ("system" or "developer" or "user" or "assistant" or "tool"))
                throw OpenAiRequests.Bad($"'{where}.role' must be one of system, developer, user, assistant, tool; got '{role}'", where + ".role");
            list.Add((role == "developer" ? "system" : role, Content(m, where)));
        }
        try
        {
            return [Template.Apply(list)];
        }
        catch (ChatTemplateException e)
        {
            // The template refused this conversation (Gemma: "System role not supported") or failed on it.
            throw OpenAiRequests.Bad(e.Message, "messages");
        }
    }

    // Content is a string or an array of parts of which the text parts are joined.
    static string Content(JsonElement message, string where)
    {
        if (!message.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null) return string.Empty;
        if (c.ValueKind == JsonValueKind.String) return OpenAiRequests.Text(c, where + ".content");
        if (c.ValueKind != JsonValueKind.Array) throw OpenAiRequests.Bad($"'{where}.content' must be a string or an array of content parts", where + ".content");
        var sb = new System.Text.StringBuilder();
        foreach (var part in c.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object) throw OpenAiRequests.Bad($"'{where}.content' parts must be objects", where + ".content");
            string type = OpenAiRequests.String(part, "type", where + ".content.type") ?? throw OpenAiRequests.Bad($"'{where}.content' parts need a type", where + ".content");
            if (type != "text") throw OpenAiRequests.Bad($"content parts of type '{type}' are not supported (text only)", where + ".content");
            sb.Append(OpenAiRequests.String(part, "text", where + ".content.text") ?? string.Empty);
        }
        return sb.ToString();
    }

    public override void WriteChoice(Utf8JsonWriter w, string text)
    {
        w.WriteStartObject("message");
        w.WriteString("role", "assistant");
        w.WriteString("content", text);
        w.WriteNull("refusal");
        w.WriteEndObject();
    }

    public override void WriteDelta(Utf8JsonWriter w, string? text, bool role)
    {
        w.WriteStartObject("delta");
        if (role) w.WriteString("role", "assistant");
        if (text != null) w.WriteString("content", text);
        w.WriteEndObject();
    }
}
