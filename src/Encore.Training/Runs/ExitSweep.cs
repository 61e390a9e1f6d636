using System.Diagnostics;
using System.Globalization;
using System.Text;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Metrics;

namespace Encore.Training.Runs;

/// <summary>What an early-exit sweep runs (see <see cref="ExitSweep"/>). One documented default each.</summary>
public sealed record ExitSweepOptions
{
    /// <summary>The thresholds tried, in order. Default: none (give at least one).</summary>
    public IReadOnlyList<EarlyExitOptions> Points { get; init; } = [];

    /// <summary>
    /// Timed passes over the examples per point; the points take turns within a round (each round starting
    /// one point later), so a load that comes and goes on a shared machine falls on all of them. Default 3.
    /// </summary>
    public int Rounds { get; init; } = 3;

    /// <summary>Tokens generated per example (greedy). Default 32.</summary>
    public int MaxNewTokens { get; init; } = 32;

    /// <summary>Storage of the key/value caches. Default f32.</summary>
    public KvCacheDType KvCache { get; init; } = KvCacheDType.F32;

    /// <summary>Throws naming the first option out of range.</summary>
    public ExitSweepOptions Validate()
    {
        if (Points.Count == 0) throw new ArgumentException("an exit sweep needs at least one --exit-threshold");
        foreach (var p in Points) p.Validate();
        if (Rounds is < 1 or > 100) throw new ArgumentException($"--exit-rounds must be in [1, 100], got {Rounds}");
        if (MaxNewTokens < 1) throw new ArgumentException($"--max-new-tokens must be positive, got {MaxNewTokens}");
        return this;
    }
}

/// <summary>One threshold pair of a sweep: the layers it ran, its metrics (0–100) and its wall times.</summary>
/// <param name="Exit">The thresholds.</param>
/// <param name="Layers">Encoder and decoder layers run over all examples.</param>
/// <param name="Metrics">The metrics of the greedy outputs (<see cref="TextMetrics.All"/>).</param>
/// <param name="Seconds">Wall time of one pass over the examples, per round.</param>
public sealed record ExitSweepPoint(EarlyExitOptions Exit, EarlyExitStats Layers, IReadOnlyDictionary<string, double> Metrics, IReadOnlyList<double> Seconds)
{
    /// <summary>The median of <see cref="Seconds"/>.</summary>
    public double MedianSeconds
    {
        get
        {
            var s = Seconds.Order().ToArray();
            return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
        }
    }
}

/// <summary>
/// An early-exit sweep: batch-1 greedy generation of every example at each threshold pair
/// (<see cref="GenerationOptions.EarlyExit"/>), scored against the references, with the encoder and
/// decoder layers each point ran and its wall time (median over interleaved rounds).
/// </summary>
public static class ExitSweep
{
    /// <summary>Runs the sweep of <paramref name="options"/> over <paramref name="examples"/>; <paramref name="progress"/> hears each round.</summary>
    public static IReadOnlyList<ExitSweepPoint> Run(LanguageModel model, TextTokenizer tokenizer, IReadOnlyList<TextPair> examples, ExitSweepOptions options, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(examples);
        var o = options.Validate();
        if (examples.Count == 0) throw new ArgumentException("no examples to evaluate");
        var generator = new Generator(model, tokenizer);
        var prompts = examples.Select(e => generator.EncodePrompt(e.Source)).ToArray();
        var references = examples.Select(e => e.Target.Trim()).ToList();
        int n = o.Points.Count;
        var seconds = Enumerable.Range(0, n).Select(_ => new List<double>()).ToArray();
        var outputs = new string[n][];
        var layers = new EarlyExitStats[n];
        // Untimed passes first, every point on a few examples: the JIT (tiered compilation of the exit
        // paths too) and the caches warm up outside every point's clock.
        foreach (var point in o.Points) Generate(generator, prompts[..Math.Min(8, prompts.Length)], o, point, out _);
        for (int round = 0; round < o.Rounds; round++)
        {
            progress?.Invoke($"exit sweep: round {round + 1} of {o.Rounds}, {n} points × {prompts.Length} examples");
            for (int k = 0; k < n; k++)
            {
                int p = (k + round) % n;
                var sw = Stopwatch.StartNew();
                var texts = Generate(generator, prompts, o, o.Points[p], out var stats);
                seconds[p].Add(sw.Elapsed.TotalSeconds);
                if (outputs[p] is null)
                {
                    outputs[p] = texts;
                    layers[p] = stats;
                }
                else if (!outputs[p].SequenceEqual(texts))
                    throw new InvalidOperationException($"the outputs at {Describe(o.Points[p])} changed between rounds: greedy decoding should repeat itself");
            }
        }
        return Enumerable.Range(0, n).Select(p => new ExitSweepPoint(o.Points[p], layers[p], TextMetrics.All(outputs[p], references), seconds[p])).ToArray();
    }

    static string[] Generate(Generator generator, int[][] prompts, ExitSweepOptions o, EarlyExitOptions exit, out EarlyExitStats stats)
    {
        var options = new GenerationOptions { MaxNewTokens = o.MaxNewTokens, KvCacheDType = o.KvCache, EarlyExit = exit };
        var texts = new string[prompts.Length];
        var sum = default(EarlyExitStats);
        for (int i = 0; i < prompts.Length; i++)
        {
            var r = generator.GenerateIds([prompts[i]], options)[0];
            texts[i] = r.Text.Trim();
            sum += r.EarlyExit!.Value;
        }
        stats = sum;
        return texts;
    }

    /// <summary>"τ 0.9" or "τ_enc 0.9 / τ_dec 0.99".</summary>
    public static string Describe(EarlyExitOptions e) => e.EncoderThreshold == e.DecoderThreshold
        ? string.Create(CultureInfo.InvariantCulture, $"τ {e.EncoderThreshold}")
        : string.Create(CultureInfo.InvariantCulture, $"τ_enc {e.EncoderThreshold} / τ_dec {e.DecoderThreshold}");

    /// <summary>
    /// The sweep as a GitHub markdown table: per point the thresholds, the layers run as fractions of the
    /// full stacks, ROUGE-L and its change relative to the plain point (both thresholds ≥ 1, when there is
    /// one), ROUGE-1, chrF, and the median wall time with its ratio to the plain point's and per decoder
    /// pass (the encoder's time included): exits change the outputs' lengths, and with them the time.
    /// </summary>
    public static string Markdown(IReadOnlyList<ExitSweepPoint> points)
    {
        var inv = CultureInfo.InvariantCulture;
        var plain = points.FirstOrDefault(p => p.Exit.EncoderThreshold >= 1 && p.Exit.DecoderThreshold >= 1);
        var sb = new StringBuilder();
        sb.AppendLine("| τ encoder | τ decoder | encoder layers | decoder layers | all layers | ROUGE-L | Δ ROUGE-L | ROUGE-1 | chrF | median s | time vs plain | ms per decoder pass |");
        sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var p in points)
        {
            double rouge = p.Metrics["rouge_l"];
            string delta = plain is null ? "" : string.Create(inv, $"{100 * (rouge - plain.Metrics["rouge_l"]) / plain.Metrics["rouge_l"]:+0.0;−0.0;0.0}%");
            string time = plain is null ? "" : string.Create(inv, $"{p.MedianSeconds / plain.MedianSeconds:0.00}×");
            string encoder = double.IsNaN(p.Layers.EncoderFraction) ? "" : string.Create(inv, $"{100 * p.Layers.EncoderFraction:0.0}%");
            sb.AppendLine(string.Create(inv, $"| {p.Exit.EncoderThreshold} | {p.Exit.DecoderThreshold} | {encoder} | {100 * p.Layers.DecoderFraction:0.0}% | {100 * p.Layers.LayerFraction:0.0}% | {rouge:0.0} | {delta} | {p.Metrics["rouge1"]:0.0} | {p.Metrics["chrf"]:0.0} | {p.MedianSeconds:0.00} | {time} | {1000 * p.MedianSeconds / p.Layers.DecoderTokens:0.000} |"));
        }
        return sb.ToString();
    }
}
