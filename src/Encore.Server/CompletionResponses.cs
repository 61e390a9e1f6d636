// Writing OpenAI responses: a whole completion as one JSON body, a stream as server-sent events
// ("data: {json}\n\n" … "data: [DONE]\n\n"), and errors as {"error": {...}}.
using System.Buffers;
using System.Text.Json;
using Encore.Generation;
using Microsoft.AspNetCore.Http;

namespace Encore.Server;

/// <summary>What every response and chunk of one request repeats: its id, creation time and model name.</summary>
internal sealed record ResponseHeader(string Id, long Created, string Model);

internal static class CompletionResponses
{
    /// <summary>Waits for every sequence of <paramref name="scheduled"/> and writes the whole completion.</summary>
    public static async Task WriteCompletionAsync(HttpContext http, CompletionApi api, ResponseHeader header, ScheduledRequest scheduled, int promptTokens, CancellationToken ct)
    {
        var sequences = scheduled.Sequences;
        int finished = 0;
        await foreach (var e in scheduled.Events.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            if (e.Finished && ++finished == sequences.Length) break;
        ct.ThrowIfCancellationRequested();
        await WriteJsonAsync(http, 200, w =>
        {
            Header(w, header, api.ObjectName);
            w.WriteStartArray("choices");
            int index = 0;
            foreach (var s in sequences)
                foreach (var (text, finish, _) in scheduled.ChoicesOf(s))
                {
                    w.WriteStartObject();
                    w.WriteNumber("index", index++);
                    api.WriteChoice(w, text);
                    w.WriteNull("logprobs");
                    w.WriteString("finish_reason", finish.OpenAiName());
                    w.WriteEndObject();
                }
            w.WriteEndArray();
            Usage(w, promptTokens, scheduled.CompletionTokens);
        }).ConfigureAwait(false);
    }

    /// <summary>Streams the tokens of <paramref name="scheduled"/> as they come, one event per choice and step.</summary>
    public static async Task StreamAsync(HttpContext http, CompletionApi api, ResponseHeader header, ScheduledRequest scheduled,
        int promptTokens, bool includeUsage, CancellationToken ct)
    {
        var sequences = scheduled.Sequences;
        var response = http.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        var buffer = new ArrayBufferWriter<byte>(1024);
        // Sequence i answers choices i·n … i·n + n − 1 (n = 1 but for superposed drafts).
        int perSequence = scheduled.ChoicesPerSequence;
        var index = new Dictionary<BatchSequence, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < sequences.Length; i++) index[sequences[i]] = i * perSequence;

        void Chunk(int choice, string? text, string? finish, bool role)
        {
            var w = BeginEvent(buffer);
            Header(w, header, api.ChunkObjectName);
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", choice);
            api.WriteDelta(w, text, role);
            w.WriteNull("logprobs");
            if (finish is null) w.WriteNull("finish_reason");
            else w.WriteString("finish_reason", finish);
            w.WriteEndObject();
            w.WriteEndArray();
            if (includeUsage) w.WriteNull("usage");
            EndEvent(buffer, w);
        }

        // Writes take only the client's token: Kestrel aborts the connection when a write is cancelled,
        // and a timeout must still end the stream with an error event.
        var aborted = http.RequestAborted;
        await response.StartAsync(aborted).ConfigureAwait(false);
        if (api.StreamsRole)
        {
            for (int i = 0; i < scheduled.Choices; i++) Chunk(i, string.Empty, null, role: true);
            await FlushAsync(response, buffer, aborted).ConfigureAwait(false);
        }
        int finished = 0;
        var reader = scheduled.Events.Reader;
        while (finished < sequences.Length && await reader.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            // Everything one step produced goes out in one write.
            while (finished < sequences.Length && reader.TryRead(out var e))
            {
                int choice = index[e.Sequence];
                if (e.Sequence.Drafts != null && e.Finished)
                {
                    // Superposed drafts are known only at the end: each choice's whole text, then its end.
                    finished++;
                    int j = 0;
                    foreach (var (text, finish, _) in scheduled.ChoicesOf(e.Sequence))
                    {
                        if (text.Length > 0) Chunk(choice + j, text, null, role: false);
                        Chunk(choice + j++, api.FinalChunkText, finish.OpenAiName(), role: false);
                    }
                    continue;
                }
                if (e.Text.Length > 0) Chunk(choice, e.Text, null, role: false);
                if (e.Finished)
                {
                    finished++;
                    Chunk(choice, api.FinalChunkText, e.Sequence.Finish.OpenAiName(), role: false);
                }
            }
            await FlushAsync(response, buffer, aborted).ConfigureAwait(false);
        }
        ct.ThrowIfCancellationRequested();
        if (includeUsage)
        {
            var w = BeginEvent(buffer);
            Header(w, header, api.ChunkObjectName);
            w.WriteStartArray("choices");
            w.WriteEndArray();
            Usage(w, promptTokens, scheduled.CompletionTokens);
            EndEvent(buffer, w);
            await FlushAsync(response, buffer, aborted).ConfigureAwait(false);
        }
        await response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), aborted).ConfigureAwait(false);
        await response.Body.FlushAsync(aborted).ConfigureAwait(false);
    }

    public static async Task WriteJsonAsync(HttpContext http, int status, Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        await http.Response.Body.WriteAsync(buffer.WrittenMemory, http.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>
    /// OpenAI's error body: {"error": {"message", "type", "param", "code"}}; once a stream has started,
    /// the same object as a last server-sent event (the stream then ends without [DONE]).
    /// </summary>
    public static async Task WriteErrorAsync(HttpContext http, ApiException e)
    {
        if (http.RequestAborted.IsCancellationRequested) return;
        if (http.Response.HasStarted)
        {
            if (http.Response.ContentType != "text/event-stream") return;
            var buffer = new ArrayBufferWriter<byte>(256);
            var w = BeginEvent(buffer);
            ErrorFields(w, e);
            EndEvent(buffer, w);
            await FlushAsync(http.Response, buffer, http.RequestAborted).ConfigureAwait(false);
            return;
        }
        if (e.Status == 429) http.Response.Headers.RetryAfter = "1";
        await WriteJsonAsync(http, e.Status, w => ErrorFields(w, e)).ConfigureAwait(false);
    }

    static void ErrorFields(Utf8JsonWriter w, ApiException e)
    {
        w.WriteStartObject("error");
        w.WriteString("message", e.Message);
        w.WriteString("type", e.Type);
        if (e.Param is null) w.WriteNull("param");
        else w.WriteString("param", e.Param);
        if (e.Code is null) w.WriteNull("code");
        else w.WriteString("code", e.Code);
        w.WriteEndObject();
    }

    static async Task FlushAsync(HttpResponse response, ArrayBufferWriter<byte> buffer, CancellationToken ct)
    {
        if (buffer.WrittenCount == 0) return;
        await response.Body.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
        await response.Body.FlushAsync(ct).ConfigureAwait(false);
        buffer.ResetWrittenCount();
    }

    /// <summary>Appends one server-sent event, "data: {json}\n\n", to <paramref name="buffer"/>.</summary>
    static Utf8JsonWriter BeginEvent(ArrayBufferWriter<byte> buffer)
    {
        buffer.Write("data: "u8);
        var w = new Utf8JsonWriter(buffer);
        w.WriteStartObject();
        return w;
    }

    static void EndEvent(ArrayBufferWriter<byte> buffer, Utf8JsonWriter w)
    {
        w.WriteEndObject();
        w.Dispose();
        buffer.Write("\n\n"u8);
    }

    static void Header(Utf8JsonWriter w, ResponseHeader header, string objectName)
    {
        w.WriteString("id", header.Id);
        w.WriteString("object", objectName);
        w.WriteNumber("created", header.Created);
        w.WriteString("model", header.Model);
        w.WriteString("system_fingerprint", "encore");
    }

    static void Usage(Utf8JsonWriter w, int prompt, int completion)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", prompt);
        w.WriteNumber("completion_tokens", completion);
        w.WriteNumber("total_tokens", prompt + completion);
        w.WriteEndObject();
    }
}
