// Microsoft.Extensions.AI's IEmbeddingGenerator over an Embedder, for .NET applications that want
// Encore encoders behind the common embedding abstraction (vector stores, semantic search) without
// running the HTTP server.
using Microsoft.Extensions.AI;

namespace Encore.Generation;

/// <summary>
/// An <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/> that embeds in process with the embedder's
/// options (<see cref="Embedder.DefaultOptions"/>: the checkpoint's pooling and normalization; long inputs
/// truncated to the model's length). <see cref="EmbeddingGenerationOptions.Dimensions"/> keeps the first n
/// values of each vector, then normalizes as the embedder does; more than the model's width is an
/// <see cref="ArgumentException"/>. Usage counts the tokens read, special tokens included. Safe to call
/// concurrently: each call encodes its own batches.
/// </summary>
public sealed class EncoreEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    readonly Embedder _embedder;
    readonly EmbeddingGeneratorMetadata _metadata;

    /// <summary>A generator for <paramref name="embedder"/> (which needs a tokenizer), reporting <paramref name="modelId"/>.</summary>
    public EncoreEmbeddingGenerator(Embedder embedder, string modelId = "encore")
    {
        _embedder = embedder ?? throw new ArgumentNullException(nameof(embedder));
        if (embedder.Tokenizer is null) throw new ArgumentException("an embedding generator needs an embedder with a tokenizer");
        ModelId = modelId;
        _metadata = new EmbeddingGeneratorMetadata("encore", null, modelId, embedder.DefaultOptions.Dimensions ?? embedder.Dimensions);
    }

    /// <summary>The model name reported with each embedding.</summary>
    public string ModelId { get; }

    /// <summary>The embedding options of one request.</summary>
    public EmbeddingOptions ToEmbeddingOptions(EmbeddingGenerationOptions? options)
    {
        var o = _embedder.DefaultOptions;
        if (options?.Dimensions is int n)
        {
            if (n < 1 || n > _embedder.Dimensions) throw new ArgumentException($"Dimensions must be in [1, {_embedder.Dimensions}], got {n}");
            o = o with { Dimensions = n };
        }
        return o.Validate();
    }

    /// <inheritdoc />
    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var texts = values.ToArray();
        var o = ToEmbeddingOptions(options);
        // Encoding is CPU-bound: run it off the caller's context.
        var batch = await Task.Run(() => _embedder.Embed(texts, o, cancellationToken), cancellationToken).ConfigureAwait(false);
        var created = DateTimeOffset.UtcNow;
        var result = new GeneratedEmbeddings<Embedding<float>>(batch.Vectors.Select(v => new Embedding<float>(v) { ModelId = ModelId, CreatedAt = created }))
        {
            Usage = new UsageDetails { InputTokenCount = batch.Tokens, TotalTokenCount = batch.Tokens },
        };
        return result;
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey != null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return _metadata;
        if (serviceType == typeof(Embedder)) return _embedder;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Nothing to free: the embedder and its model belong to the caller.</summary>
    public void Dispose() { }
}
