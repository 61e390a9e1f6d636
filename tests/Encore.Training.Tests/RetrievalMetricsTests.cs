using Encore.Training.Metrics;

namespace Encore.Training.Tests;

/// <summary>Paired retrieval scores against ranks and figures worked out by hand.</summary>
public class RetrievalMetricsTests
{
    [Fact]
    public void RanksFollowTheDotProductsWorkedOutByHand()
    {
        // Scores q_i · c_j:
        //   q0 = (1, 0):   c0 0.6, c1 0.8, c2 0      → answer c0 is 2nd
        //   q1 = (0, 1):   c0 0.8, c1 0.6, c2 1      → answer c1 is 3rd
        //   q2 = (0.6, 0.8): c0 0.36 + 0.64 = 1.0, c1 0.48 + 0.48 = 0.96, c2 0.8 → answer c2 is 3rd
        float[][] q = [[1, 0], [0, 1], [0.6f, 0.8f]];
        float[][] c = [[0.6f, 0.8f], [0.8f, 0.6f], [0, 1]];
        Assert.Equal([2, 3, 3], RetrievalMetrics.Ranks(q, c));
        // The answers first: every rank 1.
        Assert.Equal([1, 1, 1], RetrievalMetrics.Ranks(q, q));
    }

    [Fact]
    public void ATieCountsAgainstTheAnswer()
    {
        // One vector for every text: each answer ties with the other two and ranks last, not first.
        float[][] same = [[1, 0], [1, 0], [1, 0]];
        Assert.Equal([3, 3, 3], RetrievalMetrics.Ranks(same, same));
    }

    [Fact]
    public void ScoresOfRanksAreTheirRecallsMeanReciprocalAndMedian()
    {
        var s = RetrievalMetrics.Score([1, 2, 11, 4]);
        Assert.Equal(4, s.Queries);
        Assert.Equal(0.25, s.RecallAt1, 12);
        Assert.Equal(0.75, s.RecallAt10, 12);
        Assert.Equal((1 + 0.5 + 1.0 / 11 + 0.25) / 4, s.MeanReciprocalRank, 12);
        Assert.Equal(3.0, s.MedianRank, 12);   // (2 + 4) / 2
        Assert.Equal(11.0, RetrievalMetrics.Score([11, 1, 20]).MedianRank, 12);
    }

    [Fact]
    public void TheRandomBaselineIsTheExpectationOverUniformRanks()
    {
        var r = RetrievalScores.Random(4);
        Assert.Equal(0.25, r.RecallAt1, 12);
        Assert.Equal(1.0, r.RecallAt10, 12);
        Assert.Equal((1 + 0.5 + 1.0 / 3 + 0.25) / 4, r.MeanReciprocalRank, 12);   // 25/48
        Assert.Equal(2.5, r.MedianRank, 12);
        Assert.Equal(10 / 100.0, RetrievalScores.Random(100).RecallAt10, 12);
        // Every permutation of 3 candidates, averaged, gives the same figures as the formula.
        var perms = new[] { new[] { 1, 2, 3 }, [1, 3, 2], [2, 1, 3], [2, 3, 1], [3, 1, 2], [3, 2, 1] };
        Assert.Equal(perms.Average(p => RetrievalMetrics.Score(p).MeanReciprocalRank), RetrievalScores.Random(3).MeanReciprocalRank, 12);
    }

    [Fact]
    public void MismatchedInputsAreRefused()
    {
        Assert.Contains("2 queries but 1 candidates", Assert.Throws<ArgumentException>(() => RetrievalMetrics.Ranks([[1f], [2f]], [[1f]])).Message);
        Assert.Contains("pair 1", Assert.Throws<ArgumentException>(() => RetrievalMetrics.Ranks([[1f], [2f, 3f]], [[1f], [2f]])).Message);
        Assert.Throws<ArgumentException>(() => RetrievalMetrics.Score(Array.Empty<int>()));
        Assert.Throws<ArgumentOutOfRangeException>(() => RetrievalMetrics.Score([0]));
    }
}
