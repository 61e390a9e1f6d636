using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;

namespace Encore.Cli.Commands;

/// <summary>
/// The swift/super routing options of <c>serve</c> and <c>generate</c> (E-LANG, arXiv 2203.00748; docs/adaptive-compute.md):
/// the loaded model is the swift one, <c>--super-model</c> the large one, and the threshold is given
/// (<c>--route-threshold</c>) or calibrated at start on validation sources to route a fraction (<c>--route-fraction</c>).
/// </summary>
internal sealed class RoutingCli
{
    public readonly Option<string?> SuperModel = new("--super-model")
    {
        Description = "Swift/super routing: this larger checkpoint (or run folder), with the same tokenizer, answers the inputs the model (the swift one) is unsure of, judged by the energy of its first-step logits (docs/adaptive-compute.md). Needs --route-threshold or --route-fraction.",
    };
    public readonly Option<double?> Threshold = new("--route-threshold") { Description = "With --super-model: inputs whose swift-model score is above this go to the super model (the energy −T·logsumexp(logits/T); with --route-signal max-probability, 1 − max p)." };
    public readonly Option<double?> Fraction = new("--route-fraction") { Description = "With --super-model: calibrate the threshold at start so that this fraction of --route-data's sources is routed." };
    public readonly Option<string?> Data = new("--route-data") { Description = "With --route-fraction: JSONL validation pairs whose sources calibrate the threshold (their \"source\" field)." };
    public readonly Option<int> Examples = new("--route-examples") { Description = "With --route-fraction: sources of --route-data scored, from the start.", DefaultValueFactory = _ => 300 };
    public readonly Option<string> Signal = new("--route-signal") { Description = "With --super-model: energy (E-LANG) or max-probability (the max-softmax baseline).", DefaultValueFactory = _ => "energy" };
    public readonly Option<double> Temperature = new("--route-temperature") { Description = "With --super-model: T of the energy.", DefaultValueFactory = _ => 1.0 };

    /// <summary><c>generate</c> only (a server decides at the first step): where the score is read.</summary>
    public readonly Option<string?> Span = new("--route-span") { Description = "With --super-model: mean (over the swift model's generated tokens: it runs to the end first; the default) or first-step (decide before the swift model generates)." };

    public IEnumerable<Option> All => [SuperModel, Threshold, Fraction, Data, Examples, Signal, Temperature];

    /// <summary>The routing signal named <paramref name="text"/>, or an error naming the option.</summary>
    internal static RoutingSignal ParseSignal(string text) => text switch
    {
        "energy" => RoutingSignal.Energy,
        "max-probability" or "maxprob" => RoutingSignal.MaxProbability,
        _ => throw new ArgumentException($"--route-signal must be energy or max-probability, got '{text}'"),
    };

    /// <summary>
    /// The super model of --super-model, checked against the swift <paramref name="model"/> (loaded from <paramref name="modelDir"/>
    /// with <paramref name="tokenizer"/>): a generating model with the same tokenizer; and the routing options with the threshold
    /// given or calibrated. Null (and default options) without --super-model; the routing options alone are an error then.
    /// </summary>
    /// <remarks><paramref name="generation"/>: how <c>generate</c> decodes, for calibrating a mean-span threshold; null for a server (first step only).</remarks>
    public LanguageModel? LoadSuper(ParseResult parse, string? dtype, LanguageModel model, string modelDir, TextTokenizer tokenizer, out RoutingOptions options, out string? note,
        GenerationOptions? generation = null)
    {
        note = null;
        options = new RoutingOptions();
        string? path = parse.GetValue(SuperModel);
        double? threshold = parse.GetValue(Threshold), fraction = parse.GetValue(Fraction);
        if (path is null)
        {
            if (threshold != null || fraction != null || parse.GetValue(Data) != null)
                throw new ArgumentException("--route-threshold, --route-fraction and --route-data need --super-model");
            return null;
        }
        if ((threshold is null) == (fraction is null)) throw new ArgumentException("--super-model needs one of --route-threshold and --route-fraction");
        if (threshold is { } t && double.IsNaN(t)) throw new ArgumentException("--route-threshold must be a number");
        if (fraction is { } f && !(f >= 0 && f <= 1)) throw new ArgumentException($"--route-fraction must be in [0, 1], got {f}");
        // A server decides at the first step; generate reads --route-span (default: the library's, the mean).
        var span = (generation is null ? "first-step" : parse.GetValue(Span)) switch
        {
            null => new RoutingOptions().Span,
            "first-step" => RoutingSpan.FirstStep,
            "mean" => RoutingSpan.Mean,
            var other => throw new ArgumentException($"--route-span must be first-step or mean, got '{other}'"),
        };
        options = new RoutingOptions { Signal = ParseSignal(parse.GetValue(Signal)!), Span = span, Temperature = parse.GetValue(Temperature), Threshold = threshold ?? double.PositiveInfinity };
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"--route-temperature: {e.Message}", e);
        }
        string dir = CheckpointDirectory.Resolve(path);
        var super = Common.LoadForInference(dir, dtype);
        try
        {
            if (super is not (EncoderDecoderModel or DecoderOnlyModel)) throw new ArgumentException($"--super-model {dir} is an encoder-only model and generates no text");
            var superTokenizer = TokenizerLoader.FromDirectory(dir);
            var router = new RoutedGenerator(new Generator(model, tokenizer), new Generator(super, superTokenizer), options, $"--model {modelDir}", $"--super-model {dir}");
            if (fraction is { } wanted)
            {
                string data = parse.GetValue(Data) ?? throw new ArgumentException("--route-fraction needs --route-data FILE (validation pairs to calibrate on)");
                int n = parse.GetValue(Examples);
                if (n < 1) throw new ArgumentException($"--route-examples must be positive, got {n}");
                var sources = DatasetReader.ReadPairs(data).Take(n).Select(p => p.Source).ToList();
                if (sources.Count == 0) throw new ArgumentException($"--route-data {data} has no examples");
                var scoring = options;
                var scores = sources.Select(s => span == RoutingSpan.FirstStep ? router.ScorePrompt(router.Swift.EncodePrompt(s))
                    : scoring.Score(router.RunSwift(router.Swift.EncodePrompt(s), generation).Trace)).ToArray();
                options = options with { Threshold = RoutingCalibration.ThresholdForFraction(scores, wanted) };
                note = string.Create(CultureInfo.InvariantCulture,
                    $"routing to --super-model {dir}: threshold {options.Threshold:0.####} routes {RoutingCalibration.RoutedFraction(scores, options.Threshold) * 100:0.#}% of {scores.Length} sources of {data}");
            }
            else note = string.Create(CultureInfo.InvariantCulture, $"routing to --super-model {dir} above {options.Signal.ToString().ToLowerInvariant()} {options.Threshold:0.####}");
            return super;
        }
        catch
        {
            super.Dispose();
            throw;
        }
    }
}
