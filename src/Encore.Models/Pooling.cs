// Sentence embeddings from an encoder's hidden states, as sentence-transformers' Pooling and
// Normalize modules compute them (sentence_transformers/models/Pooling.py, Normalize.py): one vector
// per sequence from its valid positions only (right padding is never pooled), then optionally scaled
// to unit L2 norm. The mean is what all-MiniLM-L6-v2, all-mpnet-base-v2 and CodeT5+'s encoder use; the
// last token is what E5-Mistral pools from a decoder-only model, the one position of a causal model
// that has seen the whole input.
using System.Numerics.Tensors;
using System.Text.Json.Serialization;

namespace Encore.Models;

/// <summary>How the hidden states of one sequence become one vector.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PoolingMode>))]
public enum PoolingMode
{
    /// <summary>The mean over the valid (non-padding) positions: sentence-transformers' pooling_mode_mean_tokens.</summary>
    Mean,
    /// <summary>The first position ([CLS] in BERT): pooling_mode_cls_token.</summary>
    Cls,
    /// <summary>The element-wise maximum over the valid positions: pooling_mode_max_tokens.</summary>
    Max,
    /// <summary>The last valid position: pooling_mode_lasttoken (for causal models, where only it has attended to every token).</summary>
    Last,
}

/// <summary>Pooling and normalization of hidden states into sentence embeddings.</summary>
public static class Pooling
{
    /// <summary>The lower-case names used by the CLI, the server and the docs: mean, cls, max, last.</summary>
    public static string Name(this PoolingMode mode) => mode switch
    {
        PoolingMode.Mean => "mean",
        PoolingMode.Cls => "cls",
        PoolingMode.Max => "max",
        PoolingMode.Last => "last",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary>Parses mean, cls, max or last (any case); the error names <paramref name="option"/>.</summary>
    public static PoolingMode Parse(string value, string option) => value.ToLowerInvariant() switch
    {
        "mean" => PoolingMode.Mean,
        "cls" => PoolingMode.Cls,
        "max" => PoolingMode.Max,
        "last" => PoolingMode.Last,
        _ => throw new ArgumentException($"{option} '{value}' is not one of mean, cls, max, last"),
    };

    /// <summary>
    /// Pools hidden states (B, S, D) row-major into <paramref name="output"/> (B, D): row i from its first
    /// <paramref name="lengths"/>[i] positions (each in [1, S]).
    /// </summary>
    public static void Pool(ReadOnlySpan<float> hidden, int batch, int length, int width, ReadOnlySpan<int> lengths, PoolingMode mode, Span<float> output)
    {
        if (batch < 0 || length < 1 || width < 1) throw new ArgumentException($"cannot pool a ({batch}, {length}, {width}) batch");
        if (hidden.Length != (long)batch * length * width) throw new ArgumentException($"{hidden.Length} hidden values do not fill ({batch}, {length}, {width})");
        if (output.Length != batch * width) throw new ArgumentException($"the output holds {output.Length} values, not {batch}×{width}");
        if (lengths.Length != batch) throw new ArgumentException($"{lengths.Length} lengths for a batch of {batch}");
        for (int i = 0; i < batch; i++)
        {
            int n = lengths[i];
            if (n < 1 || n > length) throw new ArgumentOutOfRangeException(nameof(lengths), $"row {i} has length {n}, outside [1, {length}]");
            var row = hidden.Slice(i * length * width, n * width);                              // (n, D)
            var o = output.Slice(i * width, width);                                             // (D)
            row[..width].CopyTo(o);
            switch (mode)
            {
                case PoolingMode.Cls:
                    break;
                case PoolingMode.Mean:
                    // Pooling.py: sum(h · mask) / clamp(sum(mask), min=1e-9), the sum taken in position order.
                    for (int p = 1; p < n; p++) TensorPrimitives.Add(o, row.Slice(p * width, width), o);
                    TensorPrimitives.Multiply(o, 1f / n, o);
                    break;
                case PoolingMode.Max:
                    // Padding is excluded outright; Pooling.py sets it to -1e9 first, which gives the same maximum.
                    for (int p = 1; p < n; p++) TensorPrimitives.Max(o, row.Slice(p * width, width), o);
                    break;
                case PoolingMode.Last:
                    row.Slice((n - 1) * width, width).CopyTo(o);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(mode));
            }
        }
    }

    /// <summary>
    /// Scales each row of <paramref name="rows"/> (B, D) to unit L2 norm in place, as Normalize.py's
    /// F.normalize(p=2, dim=1) does: x / max(‖x‖, 1e-12), so an all-zero row stays zero.
    /// </summary>
    public static void Normalize(Span<float> rows, int width)
    {
        if (width < 1 || rows.Length % width != 0) throw new ArgumentException($"{rows.Length} values are not rows of {width}");
        for (int i = 0; i < rows.Length; i += width)
        {
            var r = rows.Slice(i, width);
            float norm = TensorPrimitives.Norm(r);
            TensorPrimitives.Multiply(r, 1f / MathF.Max(norm, 1e-12f), r);
        }
    }
}
