// POST /v1/embeddings: parse → validate (model, dimensions, each input's characters, then its tokens) →
// wait for the encoder (one request encodes at a time, the others wait in a queue of --max-queue; one more
// is answered 429) → encode in batches → one JSON body. Inputs longer than the model's length limit are
// refused (400, context_length_exceeded), as OpenAI does, rather than silently cut.
using System.Diagnostics;
using Encore.Generation;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Encore.Server;

public sealed partial class EncoreServer
{
    readonly SemaphoreSlim _embeddingSlot = new(1, 1);
    int _embeddingRequests;   // requests encoding or waiting to

    /// <summary>The 404 of an endpoint the served model has no stacks for, naming the ones it serves.</summary>
    ApiException NotServed(string path)
    {
        string serves = _generator is null ? $"it is an embedding model (encoder-only) and serves {EmbeddingsApi.Path}"
            : $"it has no encoder and serves {CompletionApi.Completions.Path} and {CompletionApi.Chat.Path}";
        return new ApiException(404, $"The model '{_options.ModelName}' does not support {path}: {serves}", "model", code: "model_not_supported");
    }

    async Task HandleEmbeddingsAsync(HttpContext http)
    {
        int status = 200;
        long start = Stopwatch.GetTimestamp();
        string id = "embd-" + Guid.NewGuid().ToString("N");
        long tokens = 0;
        int inputs = 0;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        cts.CancelAfter(_options.RequestTimeout);
        try
        {
            var embedder = _embedder ?? throw NotServed(EmbeddingsApi.Path);
            var body = await ReadBodyAsync(http, cts.Token).ConfigureAwait(false);
            var request = EmbeddingsApi.Parse(body.WrittenSpan, _options.MaxEmbeddingInputs);
            var (sequences, options) = ValidateEmbeddings(embedder, request);
            inputs = sequences.Length;
            tokens = sequences.Sum(s => (long)s.Length);
            var vectors = await EncodeAsync(embedder, sequences, options, cts.Token).ConfigureAwait(false);
            Metrics.RecordEmbeddings(inputs, tokens);
            await CompletionResponses.WriteJsonAsync(http, 200, w => EmbeddingsApi.WriteResponse(w, vectors, request.Base64, _options.ModelName, tokens)).ConfigureAwait(false);
        }
        catch (Exception) when (http.RequestAborted.IsCancellationRequested)
        {
            status = 499;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            var error = e switch
            {
                ApiException refusal => refusal,
                ArgumentException arg => new ApiException(400, arg.Message, "input"),
                OperationCanceledException => new ApiException(504, $"the request did not finish within {_options.RequestTimeout.TotalSeconds:0.#} s", null, "timeout", "timeout"),
                _ => new ApiException(500, "internal error: " + e.Message, null, "server_error"),
            };
            status = error.Status;
            await CompletionResponses.WriteErrorAsync(http, error).ConfigureAwait(false);
        }
        Metrics.RecordRequest(status);
        _requestLog.LogInformation("request {Id} {Path} model={Model} status={Status} inputs={Inputs} prompt_tokens={PromptTokens} total_s={Total:0.000}",
            id, http.Request.Path.Value, _options.ModelName, status, inputs, tokens, Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    /// <summary>The request's inputs as the encoder reads them, and the options they are embedded with.</summary>
    (int[][] Sequences, EmbeddingOptions Options) ValidateEmbeddings(Embedder embedder, EmbeddingsRequest request)
    {
        if (request.Model is not null && request.Model != _options.ModelName)
            throw new ApiException(400, $"The model '{request.Model}' does not exist; this server serves '{_options.ModelName}'", "model", code: "model_not_found");
        var options = embedder.DefaultOptions;
        if (request.Dimensions is int n)
        {
            if (n > embedder.Dimensions)
                throw new ApiException(400, $"dimensions must be at most {embedder.Dimensions} (the model's width), got {n}", "dimensions");
            options = options with { Dimensions = n };
        }
        // Truncation is detected and refused here, with the input's length in the message.
        options = options with { Truncate = true };
        int max = embedder.MaxLength(options);
        long maxChars = _options.MaxPromptCharacters(max);
        var sequences = new int[request.Inputs.Count][];
        for (int i = 0; i < sequences.Length; i++)
        {
            var input = request.Inputs[i];
            string which = sequences.Length == 1 ? "the input" : $"input[{i}]";
            // Characters first: an input far past the limit costs no tokenizer time.
            if (input.Text is { } text && text.Length > maxChars)
                throw new ApiException(400, $"{which} has {text.Length} characters; at most {maxChars} ({_options.PromptCharactersPerPosition} per position of the {max}-token limit) are accepted",
                    "input", code: "context_length_exceeded");
            EmbeddingInput e;
            try
            {
                e = input.Text is { } t ? embedder.Tokenize(t, options) : embedder.Wrap(input.Ids!, options);
            }
            catch (ArgumentException x)
            {
                throw new ApiException(400, $"{which}: {x.Message}", "input");
            }
            if (e.Truncated)
                throw new ApiException(400, $"This model's maximum context length is {max} tokens; {which} has {e.Tokens}", "input", code: "context_length_exceeded");
            sequences[i] = e.Ids;
        }
        return (sequences, options);
    }

    /// <summary>Encodes once the encoder is free; 429 when --max-queue requests already wait for it.</summary>
    async Task<float[][]> EncodeAsync(Embedder embedder, int[][] sequences, EmbeddingOptions options, CancellationToken ct)
    {
        if (Interlocked.Increment(ref _embeddingRequests) > _options.MaxQueue + 1)
        {
            Interlocked.Decrement(ref _embeddingRequests);
            throw new ApiException(429, "the server is busy: its request queue is full; retry later", null, "rate_limit_exceeded", "rate_limit_exceeded");
        }
        try
        {
            await _embeddingSlot.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                // Encoding is CPU-bound: off the request thread, on the kernel pool.
                return await Task.Run(() => embedder.EmbedIds(sequences, options, ct), ct).ConfigureAwait(false);
            }
            finally
            {
                _embeddingSlot.Release();
            }
        }
        finally
        {
            Interlocked.Decrement(ref _embeddingRequests);
        }
    }
}
