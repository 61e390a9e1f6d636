// Swift/super routing (Akbari et al. 2022, "E-LANG: Energy-Based Joint Inferencing of Super and Swift
// Language Models", arXiv 2203.00748): a small, fast "swift" model answers every input it is confident
// about and a large "super" model the rest. Confidence is read from the swift model's own logits, with no
// training: the energy E(x) = −T·log Σ_i exp(f_i(x)/T) (Liu et al. 2020, "Energy-based Out-of-distribution
// Detection", arXiv 2010.03759) is low when one token dominates with a large logit and high when the
// logits are flat or small, so an input whose energy exceeds a threshold calibrated on validation data
// goes to the super model. The max-softmax probability (Hendrycks and Gimpel 2017) is the baseline signal.
//
// Sign convention: E as written above, and a higher score always means less confident; E-LANG's README
// threshold (+1.31) suggests its code compares −E, which routes the same inputs with the threshold negated.
namespace Encore.Generation;

/// <summary>What the router reads from the swift model's logits.</summary>
public enum RoutingSignal
{
    /// <summary>The energy −T·logsumexp(logits/T) (E-LANG); higher is less confident.</summary>
    Energy,
    /// <summary>1 − the largest softmax probability (the max-softmax baseline); higher is less confident.</summary>
    MaxProbability,
}

/// <summary>Which of the swift model's decoding steps the signal is read at.</summary>
public enum RoutingSpan
{
    /// <summary>The first decoder step only: decided before the swift model generates, so a routed input costs the swift model one step.</summary>
    FirstStep,
    /// <summary>The mean over every token the swift model generated: the swift model runs to the end before the decision.</summary>
    Mean,
}

/// <summary>Which model answered a routed input.</summary>
public enum RoutedModel
{
    /// <summary>The small model.</summary>
    Swift,
    /// <summary>The large model.</summary>
    Super,
}

/// <summary>How a <see cref="RoutedGenerator"/> decides; each option has one documented default.</summary>
public sealed record RoutingOptions
{
    /// <summary>The signal read from the swift model's logits. Default <see cref="RoutingSignal.Energy"/>.</summary>
    public RoutingSignal Signal { get; init; } = RoutingSignal.Energy;

    /// <summary>
    /// Where the signal is read. Default <see cref="RoutingSpan.Mean"/>: on the bundled Debian task the mean over the
    /// generated tokens ranks the inputs better than the first step, for both swift models measured, at equal fractions
    /// routed and at equal time, the swift pass it finishes being cheap beside the super model's (docs/adaptive-compute.md).
    /// A server routes on the first step, which decides before anything is streamed.
    /// </summary>
    public RoutingSpan Span { get; init; } = RoutingSpan.Mean;

    /// <summary>T of the energy (E-LANG and Liu et al. use 1). Default 1.</summary>
    public double Temperature { get; init; } = 1;

    /// <summary>
    /// An input whose score is above this goes to the super model (see <see cref="RoutingCalibration"/> for
    /// choosing it on validation data). Default +∞: nothing is routed.
    /// </summary>
    public double Threshold { get; init; } = double.PositiveInfinity;

    /// <summary>True when an input of score <paramref name="score"/> goes to the super model.</summary>
    public bool Routes(double score) => score > Threshold;

    /// <summary>Checks every option and returns this; throws <see cref="ArgumentException"/> naming the option.</summary>
    public RoutingOptions Validate()
    {
        if (!Enum.IsDefined(Signal)) throw new ArgumentException($"routing signal {(int)Signal} is not energy or max-probability");
        if (!Enum.IsDefined(Span)) throw new ArgumentException($"routing span {(int)Span} is not first-step or mean");
        if (!(double.IsFinite(Temperature) && Temperature > 0)) throw new ArgumentException($"the routing temperature must be a finite number > 0, got {Temperature}");
        if (double.IsNaN(Threshold)) throw new ArgumentException("the routing threshold must be a number (±∞ allowed), got NaN");
        return this;
    }

    /// <summary>The score of a swift pass under these options: its first step's or its mean.</summary>
    public double Score(UncertaintyTrace trace)
    {
        ArgumentNullException.ThrowIfNull(trace);
        return trace.Score(Signal, Span);
    }
}

/// <summary>The confidence signals of one row of next-token logits.</summary>
public static class RoutingScores
{
    /// <summary>
    /// The energy E = −T·log Σ_i exp(logits_i / T) of one row (V), in double, shifted by the largest
    /// logit so no exponent overflows. −∞ logits (banned tokens) add nothing; a row of them all is +∞.
    /// </summary>
    public static double Energy(ReadOnlySpan<float> logits, double temperature = 1)
    {
        if (logits.IsEmpty) throw new ArgumentException("no logits", nameof(logits));
        if (!(double.IsFinite(temperature) && temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "the temperature must be finite and > 0");
        double max = double.NegativeInfinity;
        foreach (float x in logits) if (x > max) max = x;
        if (double.IsNegativeInfinity(max)) return double.PositiveInfinity;
        double m = max / temperature, sum = 0;
        foreach (float x in logits) sum += Math.Exp(x / temperature - m);
        return -temperature * (m + Math.Log(sum));
    }

    /// <summary>The largest softmax probability of one row (V).</summary>
    public static double MaxProbability(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty) throw new ArgumentException("no logits", nameof(logits));
        double lse = Sampling.LogSumExp(logits);
        if (double.IsNegativeInfinity(lse)) return 0;
        double max = double.NegativeInfinity;
        foreach (float x in logits) if (x > max) max = x;
        return Math.Exp(max - lse);
    }

    /// <summary>The score of <paramref name="signal"/> for one row: higher is less confident.</summary>
    public static double Uncertainty(RoutingSignal signal, ReadOnlySpan<float> logits, double temperature = 1) => signal switch
    {
        RoutingSignal.Energy => Energy(logits, temperature),
        RoutingSignal.MaxProbability => 1 - MaxProbability(logits),
        _ => throw new ArgumentOutOfRangeException(nameof(signal), signal, "not a routing signal"),
    };
}

/// <summary>
/// The swift model's confidence at each token it generated, from the raw logits (before processors and
/// warpers) the token was chosen from: the first entry is the first decoder step's.
/// </summary>
/// <param name="Energies">E at temperature <paramref name="Temperature"/>, one per generated token.</param>
/// <param name="MaxProbabilities">The largest softmax probability, one per generated token.</param>
/// <param name="Temperature">T of the energies.</param>
public sealed record UncertaintyTrace(double[] Energies, double[] MaxProbabilities, double Temperature)
{
    /// <summary>Tokens traced.</summary>
    public int Steps => Energies.Length;

    /// <summary>The score of <paramref name="signal"/> over <paramref name="span"/>: higher is less confident.</summary>
    public double Score(RoutingSignal signal, RoutingSpan span)
    {
        if (Steps == 0) throw new InvalidOperationException("an empty trace has no score");
        double Uncertainty(int i) => signal switch
        {
            RoutingSignal.Energy => Energies[i],
            RoutingSignal.MaxProbability => 1 - MaxProbabilities[i],
            _ => throw new ArgumentOutOfRangeException(nameof(signal), signal, "not a routing signal"),
        };
        if (span == RoutingSpan.FirstStep) return Uncertainty(0);
        if (span != RoutingSpan.Mean) throw new ArgumentOutOfRangeException(nameof(span), span, "not a routing span");
        double sum = 0;
        for (int i = 0; i < Steps; i++) sum += Uncertainty(i);
        return sum / Steps;
    }
}

/// <summary>A routed input's answer, the model that gave it and the swift model's score that decided.</summary>
public sealed record RoutedResult(GenerationResult Result, RoutedModel AnsweredBy, double Score)
{
    /// <summary>The best sequence's text.</summary>
    public string Text => Result.Text;
}

/// <summary>
/// One swift generation with its trace and timing: what the router knows about an input after the swift
/// model has answered it.
/// </summary>
/// <param name="Result">The swift model's output: <see cref="Generator.Generate(string, GenerationOptions?, CancellationToken)"/>'s.</param>
/// <param name="Trace">The confidence at every generated token.</param>
/// <param name="ScoreSeconds">Seconds until the first step's logits were at hand (encoder and first step, or prefill): what a first-step decision costs.</param>
/// <param name="Seconds">Seconds of the whole generation.</param>
public sealed record SwiftPass(GenerationResult Result, UncertaintyTrace Trace, double ScoreSeconds, double Seconds);
