namespace Encore.Training.Metrics;

/// <summary>
/// Scores of a paired retrieval task: N queries and N candidates where candidate i is the one right
/// answer of query i (a description and its own synopsis), every query ranking all N candidates.
/// Recall@k is the share of queries whose answer ranks in the top k; MRR the mean of 1 / rank
/// (Voorhees 1999, TREC-8 QA). All in [0, 1].
/// </summary>
/// <param name="Queries">N.</param>
/// <param name="RecallAt1">Share of queries whose answer ranks first.</param>
/// <param name="RecallAt10">Share of queries whose answer ranks in the top 10.</param>
/// <param name="MeanReciprocalRank">Mean of 1 / rank.</param>
/// <param name="MedianRank">Median rank of the answer (1 is best).</param>
public sealed record RetrievalScores(int Queries, double RecallAt1, double RecallAt10, double MeanReciprocalRank, double MedianRank)
{
    /// <summary>
    /// What ranking the N candidates in a uniformly random order scores in expectation: recall@k = k / N,
    /// MRR = H_N / N (the mean of 1/r over ranks r = 1..N), median rank (N + 1) / 2.
    /// </summary>
    public static RetrievalScores Random(int n)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), "retrieval needs at least one query");
        double harmonic = 0;
        for (int r = 1; r <= n; r++) harmonic += 1.0 / r;
        return new RetrievalScores(n, 1.0 / n, Math.Min(10, n) / (double)n, harmonic / n, (n + 1) / 2.0);
    }
}

/// <summary>Ranks paired candidates by similarity (<see cref="RetrievalScores"/>).</summary>
public static class RetrievalMetrics
{
    /// <summary>
    /// Rank (1-based) of candidate i for each query i under dot-product scores: the dot product of unit
    /// vectors is the cosine. A tie counts against the answer (rank = 1 + the number of other candidates
    /// scoring at least as high), so a model that gives every text the same vector ranks each answer last
    /// rather than first.
    /// </summary>
    public static int[] Ranks(IReadOnlyList<float[]> queries, IReadOnlyList<float[]> candidates)
    {
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(candidates);
        int n = queries.Count;
        if (n == 0) throw new ArgumentException("retrieval needs at least one query");
        if (candidates.Count != n) throw new ArgumentException($"{n} queries but {candidates.Count} candidates: candidate i must be the answer of query i");
        int d = queries[0].Length;
        for (int i = 0; i < n; i++)
            if (queries[i].Length != d || candidates[i].Length != d)
                throw new ArgumentException($"pair {i} has vectors of {queries[i].Length} and {candidates[i].Length} values, not {d}");
        var ranks = new int[n];
        Parallel.For(0, n, i =>
        {
            var q = queries[i];
            float own = Dot(q, candidates[i]);
            int above = 0;
            for (int j = 0; j < n; j++)
                if (j != i && Dot(q, candidates[j]) >= own) above++;
            ranks[i] = 1 + above;
        });
        return ranks;
    }

    /// <summary>Recall@1, recall@10, MRR and median rank of <paramref name="ranks"/> (1-based, as <see cref="Ranks"/> gives them).</summary>
    public static RetrievalScores Score(IReadOnlyList<int> ranks)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        int n = ranks.Count;
        if (n == 0) throw new ArgumentException("retrieval needs at least one query");
        foreach (int r in ranks)
            if (r < 1) throw new ArgumentOutOfRangeException(nameof(ranks), $"rank {r} is below 1");
        var sorted = ranks.Order().ToArray();
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
        return new RetrievalScores(n, ranks.Count(r => r == 1) / (double)n, ranks.Count(r => r <= 10) / (double)n,
            ranks.Sum(r => 1.0 / r) / n, median);
    }

    /// <summary>The scores of ranking <paramref name="candidates"/> for <paramref name="queries"/> (see <see cref="Ranks"/>).</summary>
    public static RetrievalScores Score(IReadOnlyList<float[]> queries, IReadOnlyList<float[]> candidates) => Score(Ranks(queries, candidates));

    static float Dot(float[] a, float[] b) => System.Numerics.Tensors.TensorPrimitives.Dot(a, b);
}
