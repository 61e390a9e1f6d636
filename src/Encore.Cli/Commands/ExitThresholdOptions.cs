using System.Globalization;
using System.Text.Json.Nodes;
using Encore.Generation;

namespace Encore.Cli.Commands;

/// <summary>
/// The early-exit options <c>generate</c> and <c>eval</c> share (<see cref="EarlyExitOptions"/>):
/// <c>--exit-threshold</c> for both stacks, or each stack's own.
/// </summary>
internal sealed class ExitThresholdOptions
{
    public Option<float?> Both = new("--exit-threshold") { Description = "Early exit (MuE): a stack stops for an example (encoder) or a token (decoder) once a layer's output has cosine similarity ≥ this with its input; 1 never exits (layers still counted), ≤ 0 exits after the first layer. For a model trained with `train --early-exit-loss` (docs/adaptive-compute.md)." };
    public Option<float?> Encoder = new("--encoder-exit-threshold") { Description = "The encoder's early-exit threshold (default: --exit-threshold, else 1)." };
    public Option<float?> Decoder = new("--decoder-exit-threshold") { Description = "The decoder's early-exit threshold (default: --exit-threshold, else 1)." };

    public IEnumerable<Option> All => [Both, Encoder, Decoder];

    /// <summary>The options given, or null when none of them is.</summary>
    public EarlyExitOptions? Parse(ParseResult parse)
    {
        float? both = parse.GetValue(Both), encoder = parse.GetValue(Encoder), decoder = parse.GetValue(Decoder);
        if (both is null && encoder is null && decoder is null) return null;
        foreach (var (value, name) in new[] { (both, "--exit-threshold"), (encoder, "--encoder-exit-threshold"), (decoder, "--decoder-exit-threshold") })
            if (value is { } v && !float.IsFinite(v)) throw new ArgumentException($"{name} must be a finite number, got {v}");
        return new EarlyExitOptions { EncoderThreshold = encoder ?? both ?? 1f, DecoderThreshold = decoder ?? both ?? 1f };
    }

    /// <summary>"encoder layers run: …" for a stats line.</summary>
    public static string StatsLine(EarlyExitStats s)
    {
        var inv = CultureInfo.InvariantCulture;
        string encoder = s.EncoderDepth == 0 ? "" : string.Create(inv, $"encoder {s.EncoderLayers} of {s.EncoderExamples * s.EncoderDepth} layer evaluations ({100 * s.EncoderFraction:0.0}%), ");
        return "early exit: " + encoder + string.Create(inv, $"decoder {s.DecoderLayers} of {s.DecoderTokens * s.DecoderDepth} ({100 * s.DecoderFraction:0.0}%)");
    }

    /// <summary>The counts as JSON.</summary>
    public static JsonObject Json(EarlyExitStats s) => new()
    {
        ["encoder_layers"] = s.EncoderLayers,
        ["encoder_examples"] = s.EncoderExamples,
        ["encoder_depth"] = s.EncoderDepth,
        ["decoder_layers"] = s.DecoderLayers,
        ["decoder_tokens"] = s.DecoderTokens,
        ["decoder_depth"] = s.DecoderDepth,
    };
}
