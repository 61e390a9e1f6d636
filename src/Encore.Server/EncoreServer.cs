// The OpenAI-compatible HTTP server (https://platform.openai.com/docs/api-reference): Kestrel with
// minimal-API endpoints over one InferenceScheduler. A generation request goes through four steps,
// each of which may refuse it with an OpenAI-style error: parse (bounded body, UTF-8, JSON, fields),
// validate (model, sizes, prompt characters, then tokens), schedule (a batch row or 429) and write
// (one JSON body or a server-sent-event stream).
using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
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
/// server-sent-event streaming), <c>POST /v1/embeddings</c>, <c>GET /v1/models</c>, <c>GET /health</c>,
/// <c>GET /metrics</c>. What a model serves follows its stacks: an encoder–decoder generates and embeds
/// (with its encoder), a decoder-only model generates, an encoder-only model embeds; an endpoint the model
/// does not serve answers 404 saying which it does. Another method on one of these paths gets 405 with an
/// Allow header; with <see cref="ServerOptions.ApiKey"/> set, every path but /health needs
/// <c>Authorization: Bearer &lt;key&gt;</c>.
/// </summary>
public sealed partial class EncoreServer : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly ServerOptions _options;
    readonly Generator? _generator;
    readonly Embedder? _embedder;
    readonly CompletionApi _chat;
    readonly int _context;
    readonly byte[]? _apiKeyHash;
    readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    readonly ILogger _requestLog;

    /// <summary>The log category of the one line written per completion or embeddings request (on by default, at Information).</summary>
    public const string RequestLogCategory = "Encore.Requests";

    /// <summary>Each known path and the methods it answers; another method gets 405.</summary>
    static readonly (string Path, string Allow)[] s_routes =
    [
        (CompletionApi.Completions.Path, "POST"), (CompletionApi.Chat.Path, "POST"), (EmbeddingsApi.Path, "POST"),
        ("/v1/models", "GET"), ("/health", "GET"), ("/metrics", "GET"),
    ];

    EncoreServer(WebApplication app, ServerOptions options, Generator? generator, Embedder? embedder, InferenceScheduler? scheduler, ServerMetrics metrics, int context, ChatTemplate chatTemplate)
    {
        _app = app;
        _chat = new ChatCompletionApi(chatTemplate);
        _requestLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(RequestLogCategory);
        _options = options;
        _generator = generator;
        _embedder = embedder;
        _context = context;
        _apiKeyHash = options.ApiKey is null ? null : SHA256.HashData(Encoding.UTF8.GetBytes(options.ApiKey));
        Scheduler = scheduler;
        Metrics = metrics;
    }

    /// <summary>The scheduler of the generation endpoints; null for an encoder-only model, which only embeds.</summary>
    public InferenceScheduler? Scheduler { get; }

    /// <summary>The figures <c>GET /metrics</c> reports.</summary>
    public ServerMetrics Metrics { get; }

    /// <summary>The address the server listens on, e.g. http://127.0.0.1:8080/ (the real port when 0 was asked).</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>
    /// Starts serving <paramref name="model"/> with <paramref name="tokenizer"/>; returns once the port is bound.
    /// Embeddings use <see cref="ServerOptions.Embedding"/>.
    /// <paramref name="configureLogging"/> sets up logging (default: warnings and errors to the console, and one
    /// line per request under <see cref="RequestLogCategory"/>: id, path, model, status, prompt and completion
    /// tokens, time to first token, total time; for embeddings, inputs and tokens read).
    /// </summary>
    public static async Task<EncoreServer> StartAsync(LanguageModel model, TextTokenizer tokenizer, ServerOptions options,
        Action<ILoggingBuilder>? configureLogging = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
        var address = options.Host == "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(options.Host, out var ip) ? ip : throw new ArgumentException($"--host must be an IP address or localhost, got '{options.Host}'");
        var generator = model is EncoderDecoderModel or DecoderOnlyModel ? new Generator(model, tokenizer) : null;
        var embedder = model is EncoderOnlyModel or EncoderDecoderModel ? new Embedder(model, tokenizer, options.Embedding) : null;
        if (options.DraftModel is { } draft && generator != null) SpeculativeDecoding.CheckDraft(model, draft);
        foreach (var (name, adapter) in options.Adapters)
        {
            if (generator is null) throw new ArgumentException($"adapter '{name}': an encoder-only model serves embeddings only, which adapters do not change here");
            model.Adapters.Check(adapter);
        }
        if (generator != null) options.Superposed?.Ngrams?.CheckFits(model.Config.VocabSize, tokenizer);
        int context = options.ContextLength ?? Math.Min(model.Config.MaxPositions, 1024);
        if (options.SuperModel is { } superModel) context = options.ContextLength ?? Math.Min(context, superModel.Config.MaxPositions);
        // Read before the port is bound: a template outside the supported Jinja fails the start, naming its line.
        var chatTemplate = options.ChatTemplate ?? (generator != null ? ChatTemplate.ForTokenizer(tokenizer) : ChatTemplate.Default);
        if (generator != null)
        {
            try
            {
                ModelMemory.EnsureFits(model.Config, ModelMemory.CacheBytes(model.Config, options.MaxBatch, context, options.KvCacheDType));
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"--max-batch {options.MaxBatch} × --context {context}: {e.Message}", e);
            }
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (configureLogging != null) configureLogging(builder.Logging);
        else builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning).AddFilter(RequestLogCategory, LogLevel.Information);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(address, options.Port);
            k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            k.Limits.MaxConcurrentConnections = 4096;
            k.Limits.MaxConcurrentUpgradedConnections = 0;
            k.AddServerHeader = false;
        });
        var app = builder.Build();
        var router = options.SuperModel is null ? null : CreateRouter(generator, tokenizer, options, context);
        var metrics = new ServerMetrics { Speculates = options.Speculates, Routes = router != null };
        var scheduler = generator is null ? null : new InferenceScheduler(generator, options.MaxBatch, context, options.MaxQueue, metrics, options.KvCacheDType, options.EarlyExit);
        var server = new EncoreServer(app, options, generator, embedder, scheduler, metrics, context, chatTemplate);
        if (router != null) server.StartRouting(router);
        server.Map(app);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            scheduler?.Dispose();
            server.SuperScheduler?.Dispose();
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
        Scheduler?.Dispose();
        SuperScheduler?.Dispose();
        _embeddingSlot.Dispose();
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    void Map(WebApplication app)
    {
        if (_apiKeyHash is not null) app.Use(RequireApiKey);
        foreach (var api in new[] { CompletionApi.Completions, _chat })
            app.MapPost(api.Path, http => HandleAsync(http, api));
        app.MapPost(EmbeddingsApi.Path, HandleEmbeddingsAsync);
        app.MapGet("/v1/models", http => CompletionResponses.WriteJsonAsync(http, 200, w =>
        {
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            foreach (var id in ModelIds)
            {
                w.WriteStartObject();
                ModelFields(w, id);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }));
        app.MapGet("/v1/models/{id}", (HttpContext http, string id) => ModelIds.Contains(id)
            ? CompletionResponses.WriteJsonAsync(http, 200, w => ModelFields(w, id))
            : CompletionResponses.WriteErrorAsync(http, new ApiException(404, $"The model '{id}' does not exist", "model", code: "model_not_found")));
        app.MapGet("/health", http => CompletionResponses.WriteJsonAsync(http, 200, w =>
        {
            w.WriteString("status", "ok");
            w.WriteString("model", _options.ModelName);
            w.WriteNumber("active_sequences", Metrics.ActiveSequences);
            w.WriteNumber("queue_length", Metrics.QueueLength);
        }));
        app.MapGet("/metrics", async http =>
        {
            http.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await http.Response.WriteAsync(Metrics.ToPrometheusText(), http.RequestAborted).ConfigureAwait(false);
        });
        app.MapFallback(NotFoundOrWrongMethod);
    }

    /// <summary>The methods <paramref name="path"/> answers, or null for an unknown path.</summary>
    internal static string? AllowedMethods(string path)
    {
        path = path.Length > 1 ? path.TrimEnd('/') : path;
        foreach (var (known, allow) in s_routes)
            if (string.Equals(path, known, StringComparison.OrdinalIgnoreCase)) return allow;
        const string model = "/v1/models/";
        return path.StartsWith(model, StringComparison.OrdinalIgnoreCase) && path.Length > model.Length && path.IndexOf('/', model.Length) < 0 ? "GET" : null;
    }

    // Routing sends a known path with another method here too (the fallback matches every method).
    static Task NotFoundOrWrongMethod(HttpContext http)
    {
        var request = http.Request;
        if (AllowedMethods(request.Path.Value ?? "/") is { } allow)
        {
            http.Response.Headers.Allow = allow;
            return CompletionResponses.WriteErrorAsync(http, new ApiException(405, $"{request.Method} is not allowed on {request.Path}; use {allow}", null, code: "method_not_allowed"));
        }
        return CompletionResponses.WriteErrorAsync(http, new ApiException(404, $"no route {request.Method} {request.Path}", null, code: "not_found"));
    }

    async Task RequireApiKey(HttpContext http, RequestDelegate next)
    {
        if (http.Request.Path.Equals("/health", StringComparison.OrdinalIgnoreCase) || HasApiKey(http.Request))
        {
            await next(http).ConfigureAwait(false);
            return;
        }
        http.Response.Headers.WWWAuthenticate = "Bearer";
        await CompletionResponses.WriteErrorAsync(http, new ApiException(401,
            "Incorrect or missing API key: send it as 'Authorization: Bearer <key>'", null, code: "invalid_api_key")).ConfigureAwait(false);
    }

    bool HasApiKey(HttpRequest request)
    {
        string? value = request.Headers.Authorization;
        const string scheme = "Bearer ";
        if (value is null || !value.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return false;
        // Hashes compared in constant time: neither the key's length nor a matching prefix shows in the timing.
        var given = SHA256.HashData(Encoding.UTF8.GetBytes(value.AsSpan(scheme.Length).Trim().ToString()));
        return CryptographicOperations.FixedTimeEquals(given, _apiKeyHash);
    }

    // The base model's id, then one per adapter (ModelName:adapter).
    IEnumerable<string> ModelIds => _options.Adapters.Keys.Order(StringComparer.Ordinal).Select(_options.AdapterModelId).Prepend(_options.ModelName);

    void ModelFields(Utf8JsonWriter w, string id)
    {
        w.WriteString("id", id);
        w.WriteString("object", "model");
        w.WriteNumber("created", _created);
        w.WriteString("owned_by", "encore");
        if (id != _options.ModelName) w.WriteString("parent", _options.ModelName);   // an adapter over the base
    }

    /// <summary>The adapter a request's <c>model</c> names (null: the base), and the id its response carries.</summary>
    (LoraAdapter? Adapter, string Id) ResolveModel(string? requested)
    {
        if (requested is null || requested == _options.ModelName) return (null, _options.ModelName);
        int colon = requested.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0 && requested[..colon] == _options.ModelName && _options.Adapters.TryGetValue(requested[(colon + 1)..], out var adapter))
            return (adapter, requested);
        string served = _options.Adapters.Count == 0 ? $"this server serves '{_options.ModelName}'"
            : $"this server serves '{_options.ModelName}' and its adapters {string.Join(", ", _options.Adapters.Keys.Order(StringComparer.Ordinal).Select(a => $"'{_options.AdapterModelId(a)}'"))}";
        throw new ApiException(400, $"The model '{requested}' does not exist; {served}", "model", code: "model_not_found");
    }

    /// <summary>One generation request: parse → validate → schedule → write; any refusal becomes an error body.</summary>
    async Task HandleAsync(HttpContext http, CompletionApi api)
    {
        int status = 200;
        long start = Stopwatch.GetTimestamp();
        string id = api.IdPrefix + Guid.NewGuid().ToString("N");
        ScheduledRequest? scheduled = null;
        int promptTokens = 0;
        string modelId = _options.ModelName;
        (RoutedModel Model, double Score)? route = null;
        // The timeout covers the whole request, reading and tokenizing included.
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        cts.CancelAfter(_options.RequestTimeout);
        try
        {
            if (Scheduler is null) throw NotServed(api.Path);
            var body = await ReadBodyAsync(http, cts.Token).ConfigureAwait(false);
            var request = OpenAiRequests.Parse(body.WrittenSpan, api);
            var plan = Validate(request, api);
            if (_router != null) plan = await RouteAsync(plan, http, cts.Token).ConfigureAwait(false);
            route = plan.Route;
            promptTokens = plan.PromptTokens;
            modelId = plan.ModelId;
            scheduled = Schedule(plan, cts.Token);
            var header = new ResponseHeader(id, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), plan.ModelId);
            if (request.Stream)
                await CompletionResponses.StreamAsync(http, api, header, scheduled, plan.PromptTokens, request.IncludeUsage, cts.Token).ConfigureAwait(false);
            else
                await CompletionResponses.WriteCompletionAsync(http, api, header, scheduled, plan.PromptTokens, cts.Token).ConfigureAwait(false);
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
                ApiException refusal => refusal,
                ArgumentException arg => new ApiException(400, arg.Message, null),
                OperationCanceledException => new ApiException(504, $"the request did not finish within {_options.RequestTimeout.TotalSeconds:0.#} s", null, "timeout", "timeout"),
                _ => new ApiException(500, "internal error: " + reason.Message, null, "server_error"),
            };
            status = error.Status;
            await CompletionResponses.WriteErrorAsync(http, error).ConfigureAwait(false);
        }
        Metrics.RecordRequest(status);
        if (_router != null)
            LogRouted(id, http.Request.Path.Value, modelId, status, promptTokens, scheduled, start, route);
        else
            _requestLog.LogInformation("request {Id} {Path} model={Model} status={Status} prompt_tokens={PromptTokens} completion_tokens={CompletionTokens} first_token_s={FirstToken} total_s={Total:0.000}",
            id, http.Request.Path.Value, modelId, status, promptTokens, scheduled?.CompletionTokens ?? 0,
            scheduled?.FirstTokenSeconds is { } ft ? ft.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture) : "-", Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    /// <summary>The request body, refused with 413 past <see cref="ServerOptions.MaxRequestBodyBytes"/> before more is buffered.</summary>
    async Task<ArrayBufferWriter<byte>> ReadBodyAsync(HttpContext http, CancellationToken ct)
    {
        long max = _options.MaxRequestBodyBytes;
        if (http.Request.ContentLength > max)
            throw new ApiException(413, $"the request body has {http.Request.ContentLength} bytes; at most {max} are accepted", null);
        var buffer = new ArrayBufferWriter<byte>((int)Math.Clamp(http.Request.ContentLength ?? 4096, 1, max));
        try
        {
            while (true)
            {
                int n = await http.Request.Body.ReadAsync(buffer.GetMemory(8192), ct).ConfigureAwait(false);
                if (n == 0) return buffer;
                buffer.Advance(n);
                if (buffer.WrittenCount > max) throw new ApiException(413, $"the request body has more than {max} bytes", null);
            }
        }
        catch (BadHttpRequestException e)
        {
            throw new ApiException(e.StatusCode, e.Message, null);
        }
    }

    /// <summary>A request checked against this server and tokenized: what the scheduler runs.</summary>
    sealed record ValidatedRequest(int[][] Prompts, int Choices, GenerationOptions Options, LoraAdapter? Adapter, string ModelId)
    {
        /// <summary>With routing: the prompts as the super model reads them (its family's layout).</summary>
        public int[][]? SuperPrompts { get; init; }

        /// <summary>With routing: the model the request was sent to and the score that decided; else null.</summary>
        public (RoutedModel Model, double Score)? Route { get; init; }

        public int PromptTokens => Prompts.Sum(p => p.Length);
    }

    ValidatedRequest Validate(GenerationRequest req, CompletionApi api)
    {
        var (adapter, modelId) = ResolveModel(req.Model);
        var scheduler = Scheduler!;
        var generator = _generator!;
        // A superposed request decodes its n choices as the drafts of one row per prompt.
        var superposed = _options.Superposed;
        int maxChoices = Math.Min(_options.MaxChoices, superposed is null ? scheduler.MaxRows : SuperposedOptions.MaxDrafts);
        if (req.N > maxChoices) throw new ApiException(400, $"n must be at most {maxChoices}, got {req.N}", "n");
        if (superposed is null && (long)req.Prompts.Count * req.N > scheduler.MaxRows)
            throw new ApiException(400, $"{req.Prompts.Count} prompts × n={req.N} exceed the {scheduler.MaxRows} sequences decoded at once", api.PromptParam);
        if (superposed != null && req.Prompts.Count > scheduler.MaxRows)
            throw new ApiException(400, $"{req.Prompts.Count} prompts exceed the {scheduler.MaxRows} sequences decoded at once", api.PromptParam);

        // Characters first: a prompt far past the context is refused without spending tokenizer time on it.
        long maxChars = _options.MaxPromptCharacters(_context);
        foreach (var prompt in req.Prompts)
            if (prompt.Length > maxChars)
                throw new ApiException(400, $"The prompt has {prompt.Length} characters; at most {maxChars} ({_options.PromptCharactersPerPosition} per position of the {_context}-position context) are accepted",
                    api.PromptParam, code: "context_length_exceeded");
        var prompts = new int[req.Prompts.Count][];
        int maxNew = int.MaxValue;
        for (int i = 0; i < prompts.Length; i++)
        {
            try
            {
                prompts[i] = api.Encode(generator, req.Prompts[i]);
            }
            catch (ArgumentException e)
            {
                throw new ApiException(400, e.Message, api.PromptParam);
            }
            if (prompts[i].Length > scheduler.MaxPromptLength)
                throw new ApiException(400, $"This model's maximum context length is {scheduler.MaxPromptLength} tokens; the prompt has {prompts[i].Length}",
                    api.PromptParam, code: "context_length_exceeded");
            maxNew = Math.Min(maxNew, scheduler.MaxNewTokens(prompts[i].Length));
        }
        var superPrompts = _router is null ? null : EncodeForSuper(req.Prompts, api, ref maxNew);
        int maxTokens = req.MaxTokens ?? Math.Min(api.DefaultMaxTokens(_options), maxNew);
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
            EosTokenIds = _options.EosTokenIds,
            LogitBias = req.LogitBias,
            DraftModel = _options.DraftModel,
            PromptLookup = _options.PromptLookup,
            DraftTokens = _options.DraftTokens,
            PromptLookupMaxNgram = _options.PromptLookupMaxNgram,
            LexicalUnits = _options.LexicalUnits,
        };
        if (superposed != null)
            options = options with { DoSample = false, Superposed = superposed with { Drafts = Math.Max(superposed.Drafts, req.N) } };
        try
        {
            options.Validate().ValidateIds(generator.Model.Config.VocabSize);
        }
        catch (ArgumentException e)
        {
            throw new ApiException(400, e.Message, null);
        }
        return new ValidatedRequest(prompts, req.N, options, adapter, modelId) { SuperPrompts = superPrompts };
    }

    ScheduledRequest Schedule(ValidatedRequest plan, CancellationToken ct)
    {
        int n = plan.Choices;
        BatchSequence[] sequences;
        if (plan.Options.Superposed != null)
            sequences = plan.Prompts.Select(p => new BatchSequence(p, plan.Options, 0, ct) { Adapter = plan.Adapter }).ToArray();
        else
        {
            sequences = new BatchSequence[plan.Prompts.Length * n];
            for (int p = 0; p < plan.Prompts.Length; p++)
                for (int k = 0; k < n; k++) sequences[p * n + k] = new BatchSequence(plan.Prompts[p], plan.Options, k, ct) { Adapter = plan.Adapter };
        }
        var scheduled = new ScheduledRequest(sequences, ct) { ChoicesPerSequence = plan.Options.Superposed != null ? n : 1 };
        var target = plan.Route is { Model: RoutedModel.Super } ? SuperScheduler! : Scheduler!;
        if (!target.TryEnqueue(scheduled))
            throw new ApiException(429, "the server is busy: its request queue is full; retry later", null, "rate_limit_exceeded", "rate_limit_exceeded");
        return scheduled;
    }
}
