// The OpenAI-compatible HTTP server (https://platform.openai.com/docs/api-reference): Kestrel with
// minimal-API endpoints over one InferenceScheduler. Bodies are size-limited by Kestrel and parsed
// with a depth limit; every refusal is an OpenAI-style error body.
using System.Buffers;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Encore.Server;

/// <summary>
/// A running server: <c>POST /v1/completions</c>, <c>POST /v1/chat/completions</c> (both with
/// server-sent-event streaming), <c>GET /v1/models</c>, <c>GET /health</c>, <c>GET /metrics</c>.
/// </summary>
public sealed class EncoreServer : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly ServerOptions _options;
    readonly Generator _generator;
    readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    EncoreServer(WebApplication app, ServerOptions options, Generator generator, InferenceScheduler scheduler)
    {
        _app = app;
        _options = options;
        _generator = generator;
        Scheduler = scheduler;
    }

    /// <summary>The scheduler (and through it the metrics).</summary>
    public InferenceScheduler Scheduler { get; }

    /// <summary>The address the server listens on, e.g. http://127.0.0.1:8080/ (the real port when 0 was asked).</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>
    /// Starts serving <paramref name="model"/> with <paramref name="tokenizer"/>; returns once the port is bound.
    /// <paramref name="configureLogging"/> sets up logging (default: warnings and errors to the console).
    /// </summary>
    public static async Task<EncoreServer> StartAsync(LanguageModel model, TextTokenizer tokenizer, ServerOptions options,
        Action<ILoggingBuilder>? configureLogging = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
        var address = options.Host == "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(options.Host, out var ip) ? ip : throw new ArgumentException($"--host must be an IP address or localhost, got '{options.Host}'");
        var generator = new Generator(model, tokenizer);
        int context = options.ContextLength ?? Math.Min(model.Config.MaxPositions, 1024);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (configureLogging != null) configureLogging(builder.Logging);
        else builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(address, options.Port);
            k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            k.Limits.MaxConcurrentConnections = 4096;
            k.Limits.MaxConcurrentUpgradedConnections = 0;
            k.AddServerHeader = false;
        });
        var app = builder.Build();
        var scheduler = new InferenceScheduler(generator, options.MaxBatch, context, options.MaxQueue, new ServerMetrics());
        var server = new EncoreServer(app, options, generator, scheduler);
        server.Map(app);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            scheduler.Dispose();
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseAddress = new Uri(bound.EndsWith('/') ? bound : bound + "/");
        return server;
    }

    /// <summary>Waits until the server is stopped (Ctrl+C or <paramref name="cancellationToken"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    /// <summary>Stops listening, cancels running requests and frees the batch.</summary>
    public async ValueTask DisposeAsync()
    {
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            await _app.StopAsync(cts.Token).ConfigureAwait(false);
        Scheduler.Dispose();
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    void Map(WebApplication app)
    {
        app.MapPost("/v1/completions", http => Handle(http, chat: false));
        app.MapPost("/v1/chat/completions", http => Handle(http, chat: true));
        app.MapGet("/v1/models", http => WriteJson(http, 200, w =>
        {
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            w.WriteStartObject();
            ModelFields(w);
            w.WriteEndObject();
            w.WriteEndArray();
        }));
        app.MapGet("/v1/models/{id}", (HttpContext http, string id) => id == _options.ModelName
            ? WriteJson(http, 200, ModelFields)
            : WriteError(http, new ApiException(404, $"The model '{id}' does not exist", "model", code: "model_not_found")));
        app.MapGet("/health", http => WriteJson(http, 200, w =>
        {
            w.WriteString("status", "ok");
            w.WriteString("model", _options.ModelName);
            w.WriteNumber("active_sequences", Scheduler.Metrics.ActiveSequences);
            w.WriteNumber("queue_length", Scheduler.Metrics.QueueLength);
        }));
        app.MapGet("/metrics", async http =>
        {
            http.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await http.Response.WriteAsync(Scheduler.Metrics.ToPrometheusText(), http.RequestAborted).ConfigureAwait(false);
        });
        app.MapFallback(http => WriteError(http, new ApiException(404, $"no route {http.Request.Method} {http.Request.Path}", null, code: "not_found")));
    }

    void ModelFields(Utf8JsonWriter w)
    {
        w.WriteString("id", _options.ModelName);
        w.WriteString("object", "model");
        w.WriteNumber("created", _created);
        w.WriteString("owned_by", "encore");
    }

    async Task Handle(HttpContext http, bool chat)
    {
        int status = 200;
        try
        {
            await Generate(http, chat).ConfigureAwait(false);
        }
        catch (Exception) when (http.RequestAborted.IsCancellationRequested)
        {
            status = 499;   // the client went away; nothing to answer
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The scheduler fails a request by completing its channel, which wraps the reason.
            var reason = e is ChannelClosedException { InnerException: { } inner } ? inner : e;
            var error = reason switch
            {
                ApiException api => api,
                ArgumentException arg => new ApiException(400, arg.Message, null),
                OperationCanceledException => new ApiException(504, $"the request did not finish within {_options.RequestTimeout.TotalSeconds:0.#} s", null, "timeout", "timeout"),
                _ => new ApiException(500, "internal error: " + reason.Message, null, "server_error"),
            };
            status = error.Status;
            await WriteError(http, error).ConfigureAwait(false);
        }
        Scheduler.Metrics.RecordRequest(status);
    }

    async Task Generate(HttpContext http, bool chat)
    {
        if (http.Request.ContentLength > _options.MaxRequestBodyBytes)
            throw new ApiException(413, $"the request body has {http.Request.ContentLength} bytes; at most {_options.MaxRequestBodyBytes} are accepted", null);
        JsonDocument doc;
        try
        {
            doc = await JsonDocument.ParseAsync(http.Request.Body, new JsonDocumentOptions { MaxDepth = 64 }, http.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            throw new ApiException(400, "could not parse the JSON body: " + e.Message.Split(" LineNumber:")[0], null);
        }
        catch (BadHttpRequestException e)
        {
            throw new ApiException(e.StatusCode, e.Message, null);
        }
        GenerationRequest req;
        using (doc) req = OpenAiRequests.Parse(doc.RootElement, chat);
        if (req.Model != _options.ModelName)
            throw new ApiException(400, $"The model '{req.Model}' does not exist; this server serves '{_options.ModelName}'", "model", code: "model_not_found");
        int maxChoices = Math.Min(_options.MaxChoices, Scheduler.MaxRows);
        if (req.N > maxChoices) throw new ApiException(400, $"n must be at most {maxChoices}, got {req.N}", "n");
        if ((long)req.Prompts.Count * req.N > Scheduler.MaxRows)
            throw new ApiException(400, $"{req.Prompts.Count} prompts × n={req.N} exceed the {Scheduler.MaxRows} sequences decoded at once", "prompt");

        var prompts = new int[req.Prompts.Count][];
        int maxNew = int.MaxValue;
        for (int i = 0; i < prompts.Length; i++)
        {
            try
            {
                prompts[i] = _generator.EncodePrompt(req.Prompts[i]);
            }
            catch (ArgumentException e)
            {
                throw new ApiException(400, e.Message, chat ? "messages" : "prompt");
            }
            if (prompts[i].Length > Scheduler.MaxPromptLength)
                throw new ApiException(400, $"This model's maximum context length is {Scheduler.MaxPromptLength} tokens; the prompt has {prompts[i].Length}",
                    chat ? "messages" : "prompt", code: "context_length_exceeded");
            maxNew = Math.Min(maxNew, Scheduler.MaxNewTokens(prompts[i].Length));
        }
        int maxTokens = req.MaxTokens ?? Math.Min(chat ? _options.DefaultChatMaxTokens : _options.DefaultCompletionMaxTokens, maxNew);
        if (maxTokens > maxNew)
            throw new ApiException(400, $"max_tokens is too large: {maxTokens}; the prompt leaves room for at most {maxNew} new tokens in the context",
                "max_tokens", code: "context_length_exceeded");
        var options = new GenerationOptions
        {
            MaxNewTokens = maxTokens,
            DoSample = req.Temperature > 0,
            Temperature = req.Temperature,
            TopP = req.TopP,
            // One seed per request: its n choices draw from streams 0 … n−1 of it.
            Seed = req.Seed ?? (ulong)Random.Shared.NextInt64(),
            StopStrings = req.Stop,
            LogitBias = req.LogitBias,
        };
        try
        {
            options.Validate().ValidateIds(_generator.Model.Config.VocabSize);
        }
        catch (ArgumentException e)
        {
            throw new ApiException(400, e.Message, null);
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        cts.CancelAfter(_options.RequestTimeout);
        var sequences = new BatchSequence[prompts.Length * req.N];
        for (int p = 0; p < prompts.Length; p++)
            for (int k = 0; k < req.N; k++) sequences[p * req.N + k] = new BatchSequence(prompts[p], options, k, cts.Token);
        var scheduled = new ScheduledRequest(sequences, cts.Token);
        if (!Scheduler.TryEnqueue(scheduled))
            throw new ApiException(429, "the server is busy: its request queue is full; retry later", null, "rate_limit_exceeded", "rate_limit_exceeded");

        string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        int promptTokens = prompts.Sum(p => p.Length);
        if (req.Stream) await Stream(http, chat, req, scheduled, id, created, promptTokens, cts.Token).ConfigureAwait(false);
        else
        {
            int finished = 0;
            await foreach (var e in scheduled.Events.Reader.ReadAllAsync(cts.Token).ConfigureAwait(false))
                if (e.Finished && ++finished == sequences.Length) break;
            cts.Token.ThrowIfCancellationRequested();
            await WriteJson(http, 200, w =>
            {
                Header(w, id, chat ? "chat.completion" : "text_completion", created);
                w.WriteStartArray("choices");
                for (int i = 0; i < sequences.Length; i++)
                {
                    var s = sequences[i];
                    w.WriteStartObject();
                    w.WriteNumber("index", i);
                    if (chat)
                    {
                        w.WriteStartObject("message");
                        w.WriteString("role", "assistant");
                        w.WriteString("content", s.Text);
                        w.WriteNull("refusal");
                        w.WriteEndObject();
                    }
                    else w.WriteString("text", s.Text);
                    w.WriteNull("logprobs");
                    w.WriteString("finish_reason", FinishName(s.Finish));
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                Usage(w, promptTokens, sequences.Sum(s => s.GeneratedCount));
            }).ConfigureAwait(false);
        }
    }

    async Task Stream(HttpContext http, bool chat, GenerationRequest req, ScheduledRequest scheduled, string id, long created, int promptTokens, CancellationToken ct)
    {
        var sequences = scheduled.Sequences;
        var response = http.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        string objectName = chat ? "chat.completion.chunk" : "text_completion";
        var buffer = new ArrayBufferWriter<byte>(1024);
        var index = new Dictionary<BatchSequence, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < sequences.Length; i++) index[sequences[i]] = i;

        void Chunk(int choice, string? text, string? finish, bool role)
        {
            var w = BeginEvent(buffer);
            Header(w, id, objectName, created);
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", choice);
            if (chat)
            {
                w.WriteStartObject("delta");
                if (role) w.WriteString("role", "assistant");
                if (text != null) w.WriteString("content", text);
                w.WriteEndObject();
            }
            else w.WriteString("text", text ?? string.Empty);
            w.WriteNull("logprobs");
            if (finish is null) w.WriteNull("finish_reason");
            else w.WriteString("finish_reason", finish);
            w.WriteEndObject();
            w.WriteEndArray();
            if (req.IncludeUsage) w.WriteNull("usage");
            EndEvent(buffer, w);
        }

        // Writes take only the client's token: Kestrel aborts the connection when a write is cancelled,
        // and a timeout must still end the stream with an error event.
        var aborted = http.RequestAborted;
        await response.StartAsync(aborted).ConfigureAwait(false);
        if (chat)
        {
            for (int i = 0; i < sequences.Length; i++) Chunk(i, string.Empty, null, role: true);
            await Flush(response, buffer, aborted).ConfigureAwait(false);
        }
        int finished = 0;
        var reader = scheduled.Events.Reader;
        while (finished < sequences.Length && await reader.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            // Everything one step produced goes out in one write.
            while (finished < sequences.Length && reader.TryRead(out var e))
            {
                int choice = index[e.Sequence];
                if (e.Text.Length > 0) Chunk(choice, e.Text, null, role: false);
                if (e.Finished)
                {
                    finished++;
                    Chunk(choice, chat ? null : string.Empty, FinishName(e.Sequence.Finish), role: false);
                }
            }
            await Flush(response, buffer, aborted).ConfigureAwait(false);
        }
        ct.ThrowIfCancellationRequested();
        if (req.IncludeUsage)
        {
            var w = BeginEvent(buffer);
            Header(w, id, objectName, created);
            w.WriteStartArray("choices");
            w.WriteEndArray();
            Usage(w, promptTokens, sequences.Sum(s => s.GeneratedCount));
            EndEvent(buffer, w);
            await Flush(response, buffer, aborted).ConfigureAwait(false);
        }
        await response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), aborted).ConfigureAwait(false);
        await response.Body.FlushAsync(aborted).ConfigureAwait(false);
    }

    static async Task Flush(HttpResponse response, ArrayBufferWriter<byte> buffer, CancellationToken ct)
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

    void Header(Utf8JsonWriter w, string id, string objectName, long created)
    {
        w.WriteString("id", id);
        w.WriteString("object", objectName);
        w.WriteNumber("created", created);
        w.WriteString("model", _options.ModelName);
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

    // OpenAI's names: "stop" for EOS and stop strings, "length" at max_tokens.
    static string FinishName(FinishReason? f) => f == FinishReason.Length ? "length" : "stop";

    static async Task WriteJson(HttpContext http, int status, Action<Utf8JsonWriter> body)
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
    static async Task WriteError(HttpContext http, ApiException e)
    {
        if (http.RequestAborted.IsCancellationRequested) return;
        if (http.Response.HasStarted)
        {
            if (http.Response.ContentType != "text/event-stream") return;
            var buffer = new ArrayBufferWriter<byte>(256);
            var w = BeginEvent(buffer);
            ErrorFields(w, e);
            EndEvent(buffer, w);
            await Flush(http.Response, buffer, http.RequestAborted).ConfigureAwait(false);
            return;
        }
        if (e.Status == 429) http.Response.Headers.RetryAfter = "1";
        await WriteJson(http, e.Status, w => ErrorFields(w, e)).ConfigureAwait(false);
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
}
