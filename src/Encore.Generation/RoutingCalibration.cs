// Choosing the router's threshold on validation data (E-LANG sweeps it on the dev set to trace accuracy
// against compute): from the swift model's scores of held-out inputs, the threshold that routes a wanted
// fraction of them, or the fewest routed that reach a wanted quality.
namespace Encore.Generation;

/// <summary>Thresholds for <see cref="RoutingOptions.Threshold"/> from scores of validation inputs (an input routes when its score is above).</summary>
public static class RoutingCalibration
{
    /// <summary>The fraction of <paramref name="scores"/> above <paramref name="threshold"/>: what it routes.</summary>
    public static double RoutedFraction(IReadOnlyList<double> scores, double threshold)
    {
        CheckScores(scores, nameof(scores));
        return scores.Count(s => s > threshold) / (double)scores.Count;
    }

    /// <summary>
    /// The threshold that routes round(<paramref name="fraction"/> · n) of the n <paramref name="scores"/>: the
    /// midpoint between the highest score kept and the lowest routed, so new inputs near either side split
    /// evenly; +∞ for none, −∞ for all. When equal scores straddle the cut, the nearest count that a threshold can
    /// route is taken (the smaller one on a tie).
    /// </summary>
    public static double ThresholdForFraction(IReadOnlyList<double> scores, double fraction)
    {
        CheckScores(scores, nameof(scores));
        if (!(fraction >= 0 && fraction <= 1)) throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "the routed fraction must be in [0, 1]");
        var sorted = scores.Order().ToArray();
        int n = sorted.Length;
        int k = (int)Math.Round(fraction * n, MidpointRounding.AwayFromZero);
        if (k == 0) return double.PositiveInfinity;
        if (k == n) return double.NegativeInfinity;
        double kept = sorted[n - k - 1], routed = sorted[n - k];
        if (kept < routed) return Between(kept, routed);
        // A tie at the cut: route all of the tied scores, or none of them, whichever count is nearer k.
        double tie = kept;
        int below = Array.FindLastIndex(sorted, s => s < tie);                 // the highest score under the tie, or −1
        int above = Array.FindIndex(sorted, s => s > tie);                     // the lowest over it, or −1
        int routeAll = n - (below + 1), routeNone = above < 0 ? 0 : n - above;
        if (routeAll - k < k - routeNone) return below < 0 ? double.NegativeInfinity : Between(sorted[below], tie);
        return above < 0 ? double.PositiveInfinity : Between(tie, sorted[above]);
    }

    /// <summary>
    /// The threshold that routes the fewest of the n validation inputs while their mean quality, each input scored
    /// by the model that would answer it (<paramref name="swiftQuality"/> when kept, <paramref name="superQuality"/>
    /// when routed), reaches <paramref name="target"/>. Thresholds are tried from +∞ (route none) down through
    /// the midpoints between distinct scores to −∞ (route all); null when not even routing every input reaches the target.
    /// </summary>
    public static double? ThresholdForQuality(IReadOnlyList<double> scores, IReadOnlyList<double> swiftQuality, IReadOnlyList<double> superQuality, double target)
    {
        CheckScores(scores, nameof(scores));
        if (swiftQuality.Count != scores.Count || superQuality.Count != scores.Count)
            throw new ArgumentException($"{scores.Count} scores, {swiftQuality.Count} swift qualities and {superQuality.Count} super qualities: one of each per input");
        if (swiftQuality.Concat(superQuality).Any(q => !double.IsFinite(q))) throw new ArgumentException("qualities must be finite");
        if (double.IsNaN(target)) throw new ArgumentException("the target quality must be a number", nameof(target));
        int n = scores.Count;
        var order = Enumerable.Range(0, n).OrderByDescending(i => scores[i]).ToArray();   // routed first: the least confident
        double sum = swiftQuality.Sum();
        // The running sum drifts from a direct one by rounding; routing every input must reach the super model's own mean.
        double tolerance = 1e-9 * Math.Max(1, Math.Abs(target));
        if (sum / n >= target - tolerance) return double.PositiveInfinity;
        for (int j = 0; j < n; j++)
        {
            int i = order[j];
            sum += superQuality[i] - swiftQuality[i];
            // Only a cut between distinct scores is a threshold.
            if (j + 1 < n && scores[order[j + 1]] == scores[i]) continue;
            if (sum / n >= target - tolerance) return j + 1 == n ? double.NegativeInfinity : Between(scores[order[j + 1]], scores[i]);
        }
        return null;
    }

    // The midpoint of two finite scores (lo < hi), computed so it cannot overflow; ±∞ ends stay ordered.
    static double Between(double lo, double hi)
    {
        double mid = lo + (hi - lo) / 2;
        if (!double.IsFinite(mid)) mid = lo / 2 + hi / 2;
        return mid > lo && mid < hi ? mid : lo;
    }

    static void CheckScores(IReadOnlyList<double> scores, string name)
    {
        ArgumentNullException.ThrowIfNull(scores, name);
        if (scores.Count == 0) throw new ArgumentException("no scores to calibrate on", name);
        if (scores.Any(double.IsNaN)) throw new ArgumentException("scores must not be NaN", name);
    }
}
