namespace Encore.Training.Data;

/// <summary>Token-budget batching settings. Each has one default.</summary>
public sealed record BucketingOptions
{
    /// <summary>
    /// Most padded tokens per batch, counted as B·(S + T) (source and decoder input both padded to
    /// the longest row). Default 4096.
    /// </summary>
    public int MaxTokens { get; init; } = 4096;
    /// <summary>Most sequences per batch, 0 for no cap. Default 0.</summary>
    public int MaxSequences { get; init; }
    /// <summary>Seed of the tie-breaking and batch-order shuffles. Default 0.</summary>
    public ulong Seed { get; init; }
}

/// <summary>Real and padded token counts of a set of batches.</summary>
/// <param name="Batches">Number of batches.</param>
/// <param name="Sequences">Rows in all batches.</param>
/// <param name="RealTokens">Σ over rows of (source length + input length).</param>
/// <param name="PaddedTokens">Σ over batches of B·(S + T).</param>
public sealed record PaddingStats(int Batches, int Sequences, long RealTokens, long PaddedTokens)
{
    /// <summary>(padded − real) / padded: the share of processed tokens that are padding.</summary>
    public double PaddingFraction => PaddedTokens == 0 ? 0 : (double)(PaddedTokens - RealTokens) / PaddedTokens;

    /// <summary>Measures <paramref name="batches"/> of example indices against per-example (source, input) lengths.</summary>
    public static PaddingStats Measure(IReadOnlyList<int[]> batches, IReadOnlyList<int> sourceLengths, IReadOnlyList<int> inputLengths)
    {
        long real = 0, padded = 0;
        int rows = 0;
        foreach (var b in batches)
        {
            int ms = 0, mt = 0;
            foreach (int i in b)
            {
                real += sourceLengths[i] + inputLengths[i];
                ms = Math.Max(ms, sourceLengths[i]);
                mt = Math.Max(mt, inputLengths[i]);
            }
            padded += (long)b.Length * (ms + mt);
            rows += b.Length;
        }
        return new PaddingStats(batches.Count, rows, real, padded);
    }
}

/// <summary>
/// Length-bucketed batching under a token budget, after the 2-D bucketing of "Training and Inference
/// Efficiency of Encoder-Decoder Speech Models" (arXiv 2503.05931, §3; Lhotse's
/// <c>DynamicBucketingSampler</c>): examples are sorted by one length, then the other (see
/// <see cref="SortOrder"/>), so neighbours have similar lengths in both stacks; consecutive examples fill a batch while
/// B·(max S + max T) stays within the budget; the batches are then shuffled. Each epoch first
/// shuffles the examples with (seed, epoch) and sorts stably, so equal-length examples meet
/// different neighbours each epoch while every example still appears exactly once.
/// </summary>
public static class LengthBucketSampler
{
    /// <summary>
    /// Batches of example indices (a subset given by <paramref name="indices"/>, or all examples) for
    /// <paramref name="epoch"/>. A single example longer than the budget is an error: truncate the data.
    /// </summary>
    public static List<int[]> Plan(IReadOnlyList<int> sourceLengths, IReadOnlyList<int> inputLengths, BucketingOptions options, int epoch, IReadOnlyList<int>? indices = null)
    {
        ArgumentNullException.ThrowIfNull(sourceLengths);
        ArgumentNullException.ThrowIfNull(inputLengths);
        ArgumentNullException.ThrowIfNull(options);
        if (sourceLengths.Count != inputLengths.Count) throw new ArgumentException("source and input length lists differ in size");
        if (options.MaxTokens < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxTokens must be positive");
        if (options.MaxSequences < 0) throw new ArgumentOutOfRangeException(nameof(options), "MaxSequences must be non-negative");
        var order = indices?.ToArray() ?? Enumerable.Range(0, sourceLengths.Count).ToArray();
        DataRng.For(options.Seed, 1, (ulong)epoch).Shuffle(order);
        var sorted = SortOrder(order, sourceLengths, inputLengths);

        var batches = new List<int[]>();
        var current = new List<int>();
        int ms = 0, mt = 0;
        foreach (int i in sorted)
        {
            int s = sourceLengths[i], t = inputLengths[i];
            if (s + t > options.MaxTokens)
                throw new ArgumentException($"example {i} alone has {s + t} tokens (source {s} + input {t}), over the {options.MaxTokens}-token budget; truncate the data or raise MaxTokens");
            int ns = Math.Max(ms, s), nt = Math.Max(mt, t);
            bool full = (long)(current.Count + 1) * (ns + nt) > options.MaxTokens
                || (options.MaxSequences > 0 && current.Count == options.MaxSequences);
            if (full && current.Count > 0)
            {
                batches.Add([.. current]);
                current.Clear();
                ns = s;
                nt = t;
            }
            current.Add(i);
            ms = ns;
            mt = nt;
        }
        if (current.Count > 0) batches.Add([.. current]);
        DataRng.For(options.Seed, 2, (ulong)epoch).Shuffle(batches);
        return batches;
    }

    /// <summary>
    /// The bucketing order: by the length with the larger variance (the primary), then by the other
    /// (the secondary), the secondary running up and down in alternate primary groups (boustrophedon).
    /// Sorting the secondary up in every group would leave each group's longest secondaries at its
    /// end, where they pad the batch that straddles the next group; alternating the direction puts
    /// the long tails of neighbouring groups together. Ties keep <paramref name="order"/>.
    /// </summary>
    internal static int[] SortOrder(int[] order, IReadOnlyList<int> sourceLengths, IReadOnlyList<int> inputLengths)
    {
        bool sourceFirst = Variance(order, sourceLengths) >= Variance(order, inputLengths);
        var primary = sourceFirst ? sourceLengths : inputLengths;
        var secondary = sourceFirst ? inputLengths : sourceLengths;
        var keys = order.Select(i => ((long)primary[i] << 32) | (uint)secondary[i]).ToArray();
        var positions = Enumerable.Range(0, order.Length).ToArray();
        Array.Sort(positions, (a, b) => keys[a] != keys[b] ? keys[a].CompareTo(keys[b]) : a.CompareTo(b));
        var sorted = positions.Select(p => order[p]).ToArray();
        bool down = false;
        for (int start = 0; start < sorted.Length;)
        {
            int end = start + 1;
            while (end < sorted.Length && primary[sorted[end]] == primary[sorted[start]]) end++;
            if (down) Array.Reverse(sorted, start, end - start);
            down = !down;
            start = end;
        }
        return sorted;
    }

    static double Variance(int[] indices, IReadOnlyList<int> lengths)
    {
        if (indices.Length == 0) return 0;
        double mean = indices.Average(i => (double)lengths[i]);
        return indices.Average(i => (lengths[i] - mean) * (lengths[i] - mean));
    }

    /// <summary>
    /// The naive baseline: the examples shuffled with (seed, epoch) and cut into batches of
    /// <paramref name="batchSize"/> sequences regardless of length (the last batch may be smaller).
    /// </summary>
    public static List<int[]> FixedSize(int count, int batchSize, ulong seed, int epoch, IReadOnlyList<int>? indices = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        var order = indices?.ToArray() ?? Enumerable.Range(0, count).ToArray();
        DataRng.For(seed, 3, (ulong)epoch).Shuffle(order);
        return order.Chunk(batchSize).ToList();
    }
}
