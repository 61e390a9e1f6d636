using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Training.Data;

namespace Encore.Training.Objectives;

/// <summary>
/// Text cut for context compression: one token stream (documents joined by EOS) cut into chunks of
/// <see cref="ContextTokens"/> tokens to compress followed by <see cref="ContinuationTokens"/> tokens to continue,
/// the documents' last <see cref="HeldOutShare"/> kept apart as the held-out chunks (no document in both).
/// </summary>
public sealed class CompressionChunks
{
    /// <summary>
    /// Cuts <paramref name="documents"/> (in order) into chunks, at most <paramref name="maxChunks"/> of each part; the documents
    /// at the end form the held-out part. <paramref name="heldOutOnly"/> cuts only those (evaluation), leaving <see cref="Train"/> empty.
    /// </summary>
    public CompressionChunks(IReadOnlyList<string> documents, TextTokenizer tokenizer, int contextTokens, int continuationTokens, double heldOutShare = 0.05,
        int maxChunks = int.MaxValue, bool heldOutOnly = false)
    {
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (contextTokens < 1) throw new ArgumentOutOfRangeException(nameof(contextTokens), $"context tokens must be ≥ 1, got {contextTokens}");
        if (continuationTokens < 1) throw new ArgumentOutOfRangeException(nameof(continuationTokens), $"continuation tokens must be ≥ 1, got {continuationTokens}");
        if (heldOutShare is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(heldOutShare), $"the held-out share must be in (0, 1), got {heldOutShare}");
        ContextTokens = contextTokens;
        ContinuationTokens = continuationTokens;
        HeldOutShare = heldOutShare;
        int eos = tokenizer.EosId ?? throw new ArgumentException("the tokenizer has no EOS id", nameof(tokenizer));
        int split = documents.Count - Math.Max(1, (int)Math.Round(documents.Count * heldOutShare));
        if (split < 1) throw new ArgumentException($"{documents.Count} documents are too few to hold some out");
        HeldOut = Cut(documents, split, documents.Count, tokenizer, eos, maxChunks);
        Train = heldOutOnly ? [] : Cut(documents, 0, split, tokenizer, eos, maxChunks);
        if (Train.Count == 0 && !heldOutOnly) throw new ArgumentException($"the training documents give no chunk of {Length} tokens");
        if (HeldOut.Count == 0) throw new ArgumentException($"the held-out documents give no chunk of {Length} tokens");
    }

    /// <summary>Tokens compressed per chunk (n).</summary>
    public int ContextTokens { get; }
    /// <summary>Tokens continued per chunk (m).</summary>
    public int ContinuationTokens { get; }
    /// <summary>Share of the documents held out.</summary>
    public double HeldOutShare { get; }
    /// <summary>Tokens per chunk, n + m.</summary>
    public int Length => ContextTokens + ContinuationTokens;
    /// <summary>Training chunks, n + m ids each.</summary>
    public IReadOnlyList<int[]> Train { get; }
    /// <summary>Held-out chunks, n + m ids each.</summary>
    public IReadOnlyList<int[]> HeldOut { get; }

    List<int[]> Cut(IReadOnlyList<string> documents, int from, int to, TextTokenizer tokenizer, int eos, int maxChunks)
    {
        var chunks = new List<int[]>();
        var stream = new List<int>(Length * 2);
        for (int i = from; i < to && chunks.Count < maxChunks; i++)
        {
            stream.AddRange(tokenizer.Encode(documents[i], addSpecialTokens: false));
            stream.Add(eos);
            while (stream.Count >= Length && chunks.Count < maxChunks)
            {
                chunks.Add(stream.GetRange(0, Length).ToArray());
                stream.RemoveRange(0, Length);
            }
        }
        return chunks;
    }
}

/// <summary>
/// One batch of ARC-Encoder's pretraining tasks (arXiv 2510.20535 §3): the encoder reads each chunk's first n tokens;
/// the frozen decoder reads the compressed vectors, the task's special embedding, then teacher-forced tokens. In
/// reconstruction it reproduces the n compressed tokens, in continuation it continues with the next m; the loss is
/// taken on those tokens only.
/// <code>
/// decoder input  = c1 … cG  &lt;Rec&gt;  x1 … x(n−1)          c1 … cG  &lt;Cont&gt;  y1 … y(m−1)
/// labels         = −  …  −   x1    x2 … xn                −  …  −    y1     y2 … ym
/// </code>
/// </summary>
/// <param name="Task">The task of every row.</param>
/// <param name="Compressed">(B·n) ids the encoder reads.</param>
/// <param name="DecoderTokens">(B·T) token ids after the special embedding.</param>
/// <param name="Labels">(B·(G + 1 + T)) next-token labels of every decoder position, <see cref="Training.Labels.Ignore"/> where no loss is taken.</param>
/// <param name="Batch">Rows B.</param>
public sealed record CompressionBatch(CompressionTask Task, int[] Compressed, int[] DecoderTokens, int[] Labels, int Batch)
{
    /// <summary>Builds the batch of <paramref name="task"/> over <paramref name="chunks"/> (n + m ids each) for G compressed vectors.</summary>
    public static CompressionBatch Build(CompressionTask task, IReadOnlyList<int[]> chunks, int contextTokens, int compressedLength)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        int b = chunks.Count, n = contextTokens, g = compressedLength;
        if (b == 0) throw new ArgumentException("no chunks");
        int m = chunks[0].Length - n;
        if (n < 1 || m < 1) throw new ArgumentException($"chunks of {chunks[0].Length} tokens do not hold {n} context tokens and a continuation");
        int target = task == CompressionTask.Reconstruction ? n : m;   // tokens the decoder produces
        int t = target - 1;                                               // teacher-forced tokens after the special embedding
        int positions = g + 1 + t;
        var compressed = new int[b * n];
        var tokens = new int[b * t];
        var labels = new int[b * positions];
        Array.Fill(labels, Training.Labels.Ignore);
        for (int i = 0; i < b; i++)
        {
            var chunk = chunks[i];
            if (chunk.Length != n + m) throw new ArgumentException($"chunk {i} has {chunk.Length} tokens, not {n + m}");
            chunk.AsSpan(0, n).CopyTo(compressed.AsSpan(i * n));
            var produced = task == CompressionTask.Reconstruction ? chunk.AsSpan(0, n) : chunk.AsSpan(n, m);
            produced[..t].CopyTo(tokens.AsSpan(i * t));
            // The special embedding (position G) predicts the first produced token; token j−1 predicts token j.
            for (int j = 0; j < target; j++) labels[i * positions + g + j] = produced[j];
        }
        return new CompressionBatch(task, compressed, tokens, labels, b);
    }
}
