using Encore.Training.Runs;

namespace Encore.Training.Tests;

/// <summary>
/// The routing study's paired bootstrap comparison of two routers (<see cref="RoutingStudy.Compare"/>) on examples
/// made here, against the mean over routed fractions worked out directly.
/// </summary>
public sealed class RoutingComparisonTests
{
    // n examples: the first `gain` ones the super model answers right and the swift one wrong, the rest both right.
    // The signal keys hold what the caller gives per example.
    static RoutingExample[] Examples(int n, int gain, Func<int, double> energyFirst, Func<int, double> maxprobFirst) =>
        Enumerable.Range(0, n).Select(i => new RoutingExample(i < gain ? 0 : 100, 100,
            new Dictionary<string, double>
            {
                ["energy-first"] = energyFirst(i), ["energy-mean"] = energyFirst(i), ["maxprob-first"] = maxprobFirst(i), ["maxprob-mean"] = maxprobFirst(i),
            }, 1, 2, 10)).ToArray();

    [Fact]
    public void APerfectSignalBeatsRandomRoutingByWhatTheCurvesSay()
    {
        const int n = 40, gain = 10;
        var examples = Examples(n, gain, i => i < gain ? 1 : 0, i => 0);
        // Routing k examples: the perfect router gains 100 on each of the first min(k, gain); random gains gain·100·k/n in expectation.
        double perfect = 0, random = 0;
        for (int k = 0; k <= n; k++)
        {
            perfect += (100.0 * (n - gain) + 100.0 * Math.Min(k, gain)) / n;
            random += (100.0 * (n - gain) + 100.0 * gain * k / n) / n;
        }
        double expected = (perfect - random) / (n + 1);
        var d = RoutingStudy.Compare(examples, "energy-first", "random");
        Assert.Equal(expected, d.Difference, 9);
        Assert.True(d.Low > 0, $"interval [{d.Low}, {d.High}] should lie above zero");
        Assert.True(d.Low <= d.Difference && d.Difference <= d.High);
        Assert.Equal(1000, d.Resamples);
    }

    [Fact]
    public void TheSameRankingIsNoDifferenceAndAReversedOneIsBehind()
    {
        var same = Examples(30, 9, i => i % 7, i => i % 7);
        var d = RoutingStudy.Compare(same, "energy-first", "maxprob-first");
        Assert.Equal((0.0, 0.0, 0.0), (d.Difference, d.Low, d.High));

        // Energy routes the examples where the super model gains last; max-softmax routes them first.
        var reversed = Examples(30, 9, i => i < 9 ? 0 : 1, i => i < 9 ? 1 : 0);
        d = RoutingStudy.Compare(reversed, "energy-first", "maxprob-first");
        Assert.True(d.High < 0, $"interval [{d.Low}, {d.High}] should lie below zero");
    }

    [Fact]
    public void TheIntervalIsReproducibleAndBracketsTheDifference()
    {
        // A noisy signal with no ties (the gain examples score 15 higher, on top of a permutation of 0 … 29.5): the
        // interval brackets the observed difference, the same every time.
        var examples = Examples(60, 20, i => (i < 20 ? 15 : 0) + i * 37 % 60 / 2.0, i => 0);
        var a = RoutingStudy.Compare(examples, "energy-first", "random");
        var b = RoutingStudy.Compare(examples, "energy-first", "random");
        Assert.Equal(a, b);
        Assert.True(a.Low < a.Difference && a.Difference < a.High, $"{a.Low} < {a.Difference} < {a.High}");
        var fewer = RoutingStudy.Compare(examples, "energy-first", "random", resamples: 200, seed: 5);
        Assert.Equal(a.Difference, fewer.Difference, 12);                        // the observed difference does not depend on the resamples
    }
}
