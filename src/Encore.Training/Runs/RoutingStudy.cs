// The swift/super routing study (E-LANG, arXiv 2203.00748; see Encore.Generation/Routing.cs): both models
// answer every example, batch 1 and interleaved, so their latencies are measured under the same load; the
// swift pass records its confidence at every token. A router's quality and cost at any threshold then follow
// exactly from these per-example figures, because a routed input gets the chosen model's plain output
// (RoutedGenerator's tests hold it to that). Thresholds are calibrated on examples disjoint from the ones scored.
using System.Diagnostics;
using System.Globalization;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Metrics;

namespace Encore.Training.Runs;

/// <summary>Settings of <see cref="RoutingStudy.Run"/>; each has one documented default.</summary>
public sealed record RoutingStudyOptions
{
    /// <summary>Tokens generated per example, greedy. Default 24 (as the Mu recipe's evaluation).</summary>
    public int MaxNewTokens { get; init; } = 24;

    /// <summary>T of the energy. Default 1 (E-LANG's).</summary>
    public double Temperature { get; init; } = 1;

    /// <summary>Routed fractions the calibrated table targets. Default 0.1 to 0.9 in tenths.</summary>
    public IReadOnlyList<double> Fractions { get; init; } = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

    /// <summary>Storage of the KV caches. Default f32.</summary>
    public KvCacheDType KvCache { get; init; } = KvCacheDType.F32;

    /// <summary>How an answer is scored against its reference. Default ROUGE-L (generation); exact match suits classification-as-text.</summary>
    public RoutingMetric Metric { get; init; } = RoutingMetric.RougeL;

    /// <summary>Throws naming the first option out of range.</summary>
    public RoutingStudyOptions Validate()
    {
        if (MaxNewTokens < 1) throw new ArgumentException($"--max-new-tokens must be positive, got {MaxNewTokens}");
        if (!(double.IsFinite(Temperature) && Temperature > 0)) throw new ArgumentException($"--route-temperature must be a finite number > 0, got {Temperature}");
        if (Fractions.Count == 0 || Fractions.Any(f => !(f >= 0 && f <= 1))) throw new ArgumentException("--route-fractions must be numbers in [0, 1]");
        return this;
    }
}

/// <summary>How the routing study scores an answer against its reference (0–100 per example, averaged).</summary>
public enum RoutingMetric
{
    /// <summary>ROUGE-L F1 of the words (<see cref="TextMetrics.RougeL"/>).</summary>
    RougeL,

    /// <summary>100 when the answer equals the reference after SQuAD's normalization, else 0 (<see cref="TextMetrics.ExactMatch"/>): accuracy, for classification-as-text.</summary>
    ExactMatch,
}

/// <summary>One example as both models answered it.</summary>
/// <param name="SwiftQuality">The metric (0–100) of the swift model's output.</param>
/// <param name="SuperQuality">The same for the super model.</param>
/// <param name="Scores">The swift model's score under each signal method, by <see cref="RoutingStudy.Signals"/> key.</param>
/// <param name="SwiftScoreMs">Milliseconds until the swift model's first-step logits were at hand.</param>
/// <param name="SwiftMs">Milliseconds of the swift model's whole generation.</param>
/// <param name="SuperMs">Milliseconds of the super model's whole generation.</param>
public sealed record RoutingExample(double SwiftQuality, double SuperQuality, IReadOnlyDictionary<string, double> Scores, double SwiftScoreMs, double SwiftMs, double SuperMs);

/// <summary>One router at one threshold on the scored examples.</summary>
/// <param name="Method">The method's key (<see cref="RoutingStudy.Methods"/>).</param>
/// <param name="Target">What the threshold was calibrated for: a routed fraction ("30%") or "super quality".</param>
/// <param name="Threshold">The threshold (null for random and oracle routing, which have none).</param>
/// <param name="Routed">Fraction of the scored examples sent to the super model.</param>
/// <param name="Quality">Mean metric (0–100) of the answers.</param>
/// <param name="MsPerExample">Mean milliseconds per example: the swift pass (or its first step when routed early), plus the super model's generation when routed.</param>
public sealed record RoutingPoint(string Method, string Target, double? Threshold, double Routed, double Quality, double MsPerExample);

/// <summary>A router's quality when it sends the k least confident scored examples to the super model, k = 0…n.</summary>
public sealed record RoutingCurve(string Method, double[] Routed, double[] Quality, double[] MsPerExample)
{
    /// <summary>The smallest routed fraction whose quality reaches <paramref name="quality"/>, or null.</summary>
    public double? FractionReaching(double quality)
    {
        for (int k = 0; k < Quality.Length; k++)
            if (Quality[k] >= quality - 1e-9) return Routed[k];
        return null;
    }
}

/// <summary>
/// One router against another on the same scored examples: the difference of their mean quality over all routed
/// fractions (the area under the curve, divided by its width), with a 95% percentile interval from paired bootstrap
/// resamples of the examples (both curves recomputed on each resample).
/// </summary>
public sealed record RoutingComparison(string Method, string Baseline, double Difference, double Low, double High, int Resamples);

/// <summary>What <see cref="RoutingStudy.Run"/> measured.</summary>
public sealed record RoutingStudyResult(
    string Swift, string Super, long SwiftParameters, long SuperParameters, string Data, int Examples, string CalibrationData, int CalibrationExamples,
    int MaxNewTokens, double Temperature, string Metric, double SwiftQuality, double SuperQuality,
    double SwiftMedianMs, double SwiftScoreMedianMs, double SuperMedianMs,
    IReadOnlyList<RoutingPoint> Calibrated, IReadOnlyList<RoutingPoint> ReachSuper, IReadOnlyList<RoutingCurve> Curves,
    IReadOnlyDictionary<string, double?> FractionForSuperQuality, IReadOnlyList<RoutingComparison> Comparisons, string? LoadBefore, string? LoadAfter, double Seconds)
{
    /// <summary>The paper's claim this study checks.</summary>
    public string Claim => "routing the inputs with the highest swift-model energy to the super model lies above random routing, matches or beats max-softmax routing, and reaches the super model's quality with at most half of the inputs routed (E-LANG, arXiv 2203.00748)";

    /// <summary>The claim's parts as observed here.</summary>
    public IReadOnlyList<string> Observed
    {
        get
        {
            var inv = CultureInfo.InvariantCulture;
            var lines = new List<string>();
            var random = Curves.Single(c => c.Method == "random");
            double Area(RoutingCurve c) => c.Quality.Average();
            foreach (var c in Curves.Where(c => c.Method != "random" && c.Method != "oracle"))
            {
                var reach = FractionForSuperQuality[c.Method];
                lines.Add(string.Create(inv, $"{c.Method}: mean {Metric} over all routed fractions {Area(c):0.00} against {Area(random):0.00} for random routing; ") +
                    (reach is { } r ? string.Create(inv, $"the super model's {SuperQuality:0.0} is reached with {r * 100:0}% routed") : $"the super model's quality is not reached before everything is routed"));
            }
            foreach (var d in Comparisons)
                lines.Add(string.Create(inv, $"{d.Method} − {d.Baseline}: {d.Difference:+0.00;-0.00;0.00} points of mean {Metric} over all routed fractions, 95% interval [{d.Low:+0.00;-0.00;0.00}, {d.High:+0.00;-0.00;0.00}] ({d.Resamples} paired resamples of the scored examples): ") +
                    (d.Low > 0 ? "ahead" : d.High < 0 ? "behind" : "not told apart"));
            return lines;
        }
    }
}

/// <summary>Runs the swift/super routing study (see the file header).</summary>
public static class RoutingStudy
{
    /// <summary>The signal methods: key, signal, span.</summary>
    public static readonly IReadOnlyList<(string Key, RoutingSignal Signal, RoutingSpan Span)> Signals =
    [
        ("energy-first", RoutingSignal.Energy, RoutingSpan.FirstStep),
        ("energy-mean", RoutingSignal.Energy, RoutingSpan.Mean),
        ("maxprob-first", RoutingSignal.MaxProbability, RoutingSpan.FirstStep),
        ("maxprob-mean", RoutingSignal.MaxProbability, RoutingSpan.Mean),
    ];

    /// <summary>Every method of the study: the signal methods, random routing (in expectation) and the oracle (the examples where the super model does best first).</summary>
    public static IReadOnlyList<string> Methods => [.. Signals.Select(s => s.Key), "random", "oracle"];

    /// <summary>
    /// Answers every example of <paramref name="examples"/> (scored) and <paramref name="calibration"/> (for the
    /// thresholds; must be disjoint from the scored ones) with both generators of <paramref name="router"/>, then
    /// scores each router. <paramref name="progress"/> gets a line every 50 examples.
    /// </summary>
    public static RoutingStudyResult Run(RoutedGenerator router, string swiftName, string superName, IReadOnlyList<TextPair> examples, string data,
        IReadOnlyList<TextPair> calibration, string calibrationData, RoutingStudyOptions? options = null, Action<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(router);
        var o = (options ?? new RoutingStudyOptions()).Validate();
        if (examples.Count == 0) throw new ArgumentException("no examples to score");
        if (calibration.Count == 0) throw new ArgumentException("no calibration examples");
        var sw = Stopwatch.StartNew();
        string? loadBefore = Load();
        var generation = new GenerationOptions { MaxNewTokens = o.MaxNewTokens, KvCacheDType = o.KvCache };
        var traced = new RoutedGenerator(router.Swift, router.Super, router.Options with { Temperature = o.Temperature });
        // One untimed example of each model first: the JIT and the weights' pages are warm before any timing.
        Answer(traced, examples[0], generation, 0, o.Metric);
        var scored = AnswerAll(traced, examples, generation, o.Metric, "scored", progress, cancellationToken);
        var calib = AnswerAll(traced, calibration, generation, o.Metric, "calibration", progress, cancellationToken);
        string? loadAfter = Load();

        double swiftQ = scored.Average(e => e.SwiftQuality), superQ = scored.Average(e => e.SuperQuality);
        var curves = Methods.Select(m => Curve(m, scored)).ToList();
        var calibrated = new List<RoutingPoint>();
        var reachSuper = new List<RoutingPoint>();
        double calibSuper = calib.Average(e => e.SuperQuality);
        foreach (var (key, _, span) in Signals)
        {
            var calibScores = calib.Select(e => e.Scores[key]).ToArray();
            foreach (double f in o.Fractions)
                calibrated.Add(Apply(key, Percent(f), span, RoutingCalibration.ThresholdForFraction(calibScores, f), scored));
            var t = RoutingCalibration.ThresholdForQuality(calibScores, calib.Select(e => e.SwiftQuality).ToArray(), calib.Select(e => e.SuperQuality).ToArray(), calibSuper);
            if (t is { } threshold) reachSuper.Add(Apply(key, "super quality", span, threshold, scored));
        }
        foreach (var method in new[] { "random", "oracle" })
        {
            var c = curves.Single(c => c.Method == method);
            foreach (double f in o.Fractions)
            {
                int k = (int)Math.Round(f * scored.Length, MidpointRounding.AwayFromZero);
                calibrated.Add(new RoutingPoint(method, Percent(f), null, c.Routed[k], c.Quality[k], c.MsPerExample[k]));
            }
        }
        var reach = curves.ToDictionary(c => c.Method, c => c.FractionReaching(superQ));
        var comparisons = new[] { ("energy-first", "random"), ("energy-mean", "random"), ("energy-first", "maxprob-first"), ("energy-mean", "maxprob-mean") }
            .Select(p => Compare(scored, p.Item1, p.Item2)).ToList();
        return new RoutingStudyResult(swiftName, superName, router.Swift.Model.ParameterCount, router.Super.Model.ParameterCount, data, scored.Length, calibrationData, calib.Length,
            o.MaxNewTokens, o.Temperature, MetricName(o.Metric), swiftQ, superQ, Median(scored.Select(e => e.SwiftMs)), Median(scored.Select(e => e.SwiftScoreMs)), Median(scored.Select(e => e.SuperMs)),
            calibrated, reachSuper, curves, reach, comparisons, loadBefore, loadAfter, sw.Elapsed.TotalSeconds);
    }

    static RoutingExample[] AnswerAll(RoutedGenerator router, IReadOnlyList<TextPair> pairs, GenerationOptions generation, RoutingMetric metric, string what, Action<string>? progress, CancellationToken ct)
    {
        var answers = new RoutingExample[pairs.Count];
        for (int i = 0; i < pairs.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            answers[i] = Answer(router, pairs[i], generation, i, metric);
            if ((i + 1) % 50 == 0 || i + 1 == pairs.Count) progress?.Invoke($"{what} examples: {i + 1} of {pairs.Count}");
        }
        return answers;
    }

    /// <summary>Both models' answers to one example, batch 1; the order alternates with <paramref name="index"/> so neither always runs second.</summary>
    static RoutingExample Answer(RoutedGenerator router, TextPair pair, GenerationOptions generation, int index, RoutingMetric metric)
    {
        string reference = pair.Target.Trim();
        SwiftPass? swift = null;
        GenerationResult? super = null;
        double superMs = 0;
        void RunSwift() => swift = router.RunSwift(router.Swift.EncodePrompt(pair.Source), generation);
        void RunSuper()
        {
            var t = Stopwatch.StartNew();
            super = router.Super.Generate(pair.Source, generation);
            superMs = t.Elapsed.TotalMilliseconds;
        }
        if (index % 2 == 0)
        {
            RunSwift();
            RunSuper();
        }
        else
        {
            RunSuper();
            RunSwift();
        }
        var scores = Signals.ToDictionary(s => s.Key, s => swift!.Trace.Score(s.Signal, s.Span));
        return new RoutingExample(Score(metric, swift!.Result.Text, reference), Score(metric, super!.Text, reference), scores,
            swift.ScoreSeconds * 1000, swift.Seconds * 1000, superMs);
    }

    static double Score(RoutingMetric metric, string output, string reference) => metric switch
    {
        RoutingMetric.ExactMatch => TextMetrics.ExactMatch([output.Trim()], [reference]),
        _ => TextMetrics.RougeL([output.Trim()], [reference]),
    };

    /// <summary>The metric's name in tables and the result ("ROUGE-L", "exact match").</summary>
    public static string MetricName(RoutingMetric metric) => metric == RoutingMetric.ExactMatch ? "exact match" : "ROUGE-L";

    /// <summary>Milliseconds of one example under a router: <paramref name="span"/> null for one that needs no swift pass (random, oracle).</summary>
    static double Cost(RoutingExample e, bool routed, RoutingSpan? span) => (routed, span) switch
    {
        (false, _) => e.SwiftMs,
        (true, RoutingSpan.FirstStep) => e.SwiftScoreMs + e.SuperMs,
        (true, RoutingSpan.Mean) => e.SwiftMs + e.SuperMs,
        _ => e.SuperMs,
    };

    static RoutingPoint Apply(string key, string target, RoutingSpan span, double threshold, RoutingExample[] scored)
    {
        int routed = 0;
        double quality = 0, ms = 0;
        foreach (var e in scored)
        {
            bool r = e.Scores[key] > threshold;
            routed += r ? 1 : 0;
            quality += r ? e.SuperQuality : e.SwiftQuality;
            ms += Cost(e, r, span);
        }
        int n = scored.Length;
        return new RoutingPoint(key, target, threshold, routed / (double)n, quality / n, ms / n);
    }

    /// <summary>The curve of one method over k = 0…n routed examples (random: the expectation, exact).</summary>
    internal static RoutingCurve Curve(string method, IReadOnlyList<RoutingExample> scored)
    {
        int n = scored.Count;
        var routed = Enumerable.Range(0, n + 1).Select(k => k / (double)n).ToArray();
        var quality = new double[n + 1];
        var ms = new double[n + 1];
        if (method == "random")
        {
            double sq = scored.Average(e => e.SwiftQuality), pq = scored.Average(e => e.SuperQuality);
            double st = scored.Average(e => e.SwiftMs), pt = scored.Average(e => e.SuperMs);
            for (int k = 0; k <= n; k++)
            {
                quality[k] = (1 - routed[k]) * sq + routed[k] * pq;
                ms[k] = (1 - routed[k]) * st + routed[k] * pt;
            }
            return new RoutingCurve(method, routed, quality, ms);
        }
        var signal = Signals.FirstOrDefault(s => s.Key == method);
        RoutingSpan? span = signal.Key is null ? null : signal.Span;
        // Routed first: the least confident (the highest score), or for the oracle the largest gain; ties by index.
        var order = Enumerable.Range(0, n)
            .OrderByDescending(i => method == "oracle" ? scored[i].SuperQuality - scored[i].SwiftQuality : scored[i].Scores[method])
            .ThenBy(i => i).ToArray();
        double q = scored.Sum(e => e.SwiftQuality), t = scored.Sum(e => e.SwiftMs);
        quality[0] = q / n;
        ms[0] = t / n;
        for (int k = 1; k <= n; k++)
        {
            var e = scored[order[k - 1]];
            q += e.SuperQuality - e.SwiftQuality;
            t += Cost(e, true, span) - e.SwiftMs;
            quality[k] = q / n;
            ms[k] = t / n;
        }
        return new RoutingCurve(method, routed, quality, ms);
    }

    /// <summary>
    /// <paramref name="method"/> against <paramref name="baseline"/> (<see cref="RoutingComparison"/>): the observed
    /// difference of mean quality over all routed fractions, and the 2.5th and 97.5th percentiles of the same
    /// difference over <paramref name="resamples"/> resamples of the examples with replacement (a fixed seed, so
    /// a study reports the same interval every time).
    /// </summary>
    internal static RoutingComparison Compare(IReadOnlyList<RoutingExample> scored, string method, string baseline, int resamples = 1000, ulong seed = 17)
    {
        static double Area(RoutingCurve c) => c.Quality.Average();
        double observed = Area(Curve(method, scored)) - Area(Curve(baseline, scored));
        var rng = new DataRng(seed);
        var differences = new double[resamples];
        var sample = new RoutingExample[scored.Count];
        for (int b = 0; b < resamples; b++)
        {
            for (int i = 0; i < sample.Length; i++) sample[i] = scored[rng.NextInt(sample.Length)];
            differences[b] = Area(Curve(method, sample)) - Area(Curve(baseline, sample));
        }
        Array.Sort(differences);
        return new RoutingComparison(method, baseline, observed, Percentile(differences, 0.025), Percentile(differences, 0.975), resamples);
    }

    // Linear interpolation between the closest ranks of a sorted array.
    static double Percentile(double[] sorted, double p)
    {
        double at = p * (sorted.Length - 1);
        int lo = (int)Math.Floor(at), hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (at - lo) * (sorted[hi] - sorted[lo]);
    }

    static string Percent(double f) => (f * 100).ToString("0.#", CultureInfo.InvariantCulture) + "%";

    static double Median(IEnumerable<double> xs)
    {
        var a = xs.Order().ToArray();
        return a.Length == 0 ? double.NaN : a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }

    /// <summary>The 1, 5 and 15 minute load averages (/proc/loadavg), or null where there is none.</summary>
    static string? Load()
    {
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return parts.Length >= 3 ? $"{parts[0]} {parts[1]} {parts[2]}" : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
