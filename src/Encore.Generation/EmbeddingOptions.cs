// The options of an embedding request, shared by the library, `encore embed`, the server's
// /v1/embeddings and the IEmbeddingGenerator. Their defaults come from the checkpoint's
// sentence-transformers pipeline when it has one (FromSentenceTransformers), else from this record.
using Encore.Formats.Checkpoints;
using Encore.Models;

namespace Encore.Generation;

/// <summary>
/// How texts become vectors. Every option has one documented default; <c>new EmbeddingOptions()</c> is
/// mean pooling over the non-padding tokens, scaled to unit length, with inputs truncated to the
/// model's length.
/// </summary>
public sealed record EmbeddingOptions
{
    /// <summary>How the encoder's hidden states of one input become one vector. Default mean.</summary>
    public PoolingMode Pooling { get; init; } = PoolingMode.Mean;

    /// <summary>
    /// Scale every vector to unit L2 norm (sentence-transformers' Normalize module; OpenAI's embeddings are
    /// unit length), so a dot product is the cosine similarity. Default true.
    /// </summary>
    public bool Normalize { get; init; } = true;

    /// <summary>
    /// Keep only the first n values of each pooled vector (then normalize, when <see cref="Normalize"/> is
    /// set), as OpenAI's <c>dimensions</c> does for its text-embedding-3 models. Only models trained for it
    /// (Matryoshka representation learning) keep their quality when cut. Default null: the model's width.
    /// </summary>
    public int? Dimensions { get; init; }

    /// <summary>
    /// Most tokens read per input, special tokens included (sentence-transformers' max_seq_length); the
    /// model's own limit (its position table) caps it. Default null: the model's limit.
    /// </summary>
    public int? MaxLength { get; init; }

    /// <summary>
    /// Cut an input longer than the length limit to its first tokens, keeping the special tokens around it
    /// (what sentence-transformers does); false refuses such an input with an <see cref="ArgumentException"/>.
    /// Default true.
    /// </summary>
    public bool Truncate { get; init; } = true;

    /// <summary>Inputs encoded together in one pass (they are sorted by length first, so padding stays small). Default 32.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Lower-case the text before tokenizing it (sentence_bert_config.json's do_lower_case). Default false.</summary>
    public bool LowercaseInput { get; init; }

    /// <summary>Largest <see cref="BatchSize"/> accepted.</summary>
    public const int MaxBatchSize = 4096;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option out of range.</summary>
    public EmbeddingOptions Validate()
    {
        if (!Enum.IsDefined(Pooling)) throw new ArgumentException($"pooling {(int)Pooling} is not mean, cls, max or last");
        if (Dimensions is < 1) throw new ArgumentException($"dimensions must be at least 1, got {Dimensions}");
        if (MaxLength is < 1) throw new ArgumentException($"the maximum length must be at least 1 token, got {MaxLength}");
        if (BatchSize is < 1 or > MaxBatchSize) throw new ArgumentException($"the batch size must be in [1, {MaxBatchSize}], got {BatchSize}");
        return this;
    }

    /// <summary>
    /// The options a sentence-transformers pipeline declares (its pooling, Normalize module, max_seq_length
    /// and do_lower_case); without one (null), the defaults of this record.
    /// </summary>
    public static EmbeddingOptions FromSentenceTransformers(SentenceTransformersConfig? config) => config is null ? new EmbeddingOptions() : new EmbeddingOptions
    {
        Pooling = config.Pooling,
        Normalize = config.Normalize,
        MaxLength = config.MaxSeqLength,
        LowercaseInput = config.LowercaseInput,
    };
}
