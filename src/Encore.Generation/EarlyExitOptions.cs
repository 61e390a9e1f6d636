// Early exit at inference (MuE, arXiv 2211.11152): the encoder and the decoder each stop once a layer
// barely changes its states. The rule and its cache handling are in Encore.Models' StackExit; here are
// the request's settings and the counts a generation reports. See docs/adaptive-compute.md.
using Encore.Models;

namespace Encore.Generation;

/// <summary>
/// Early exit of the encoder and the decoder: after each layer but the last, a unit whose state moved by
/// a cosine similarity of at least the stack's threshold τ, cos(h_l, h_{l−1}) ≥ τ, stops there and goes on
/// through the stack's final norm (see <see cref="StackExit"/>). The encoder decides per example (the mean
/// cosine over its positions), the decoder per generated token. τ ≥ 1 never exits (plain generation,
/// with the layers counted); τ ≤ 0 exits after the first layer. A model trained with an early-exit loss
/// (<c>encore train --early-exit-loss</c>) reads well at every layer; another may lose much quality.
/// </summary>
public sealed record EarlyExitOptions
{
    /// <summary>τ of the encoder (an encoder–decoder's; a decoder-only model has none). Default 1 (never exits).</summary>
    public float EncoderThreshold { get; init; } = 1f;

    /// <summary>τ of the decoder. Default 1 (never exits).</summary>
    public float DecoderThreshold { get; init; } = 1f;

    /// <summary>Both stacks at one threshold.</summary>
    public static EarlyExitOptions Both(float threshold) => new() { EncoderThreshold = threshold, DecoderThreshold = threshold };

    /// <summary>Checks the thresholds and returns this; throws <see cref="ArgumentException"/> naming the one out of range.</summary>
    public EarlyExitOptions Validate()
    {
        if (!float.IsFinite(EncoderThreshold)) throw new ArgumentException($"encoder exit threshold must be a finite number, got {EncoderThreshold}");
        if (!float.IsFinite(DecoderThreshold)) throw new ArgumentException($"decoder exit threshold must be a finite number, got {DecoderThreshold}");
        return this;
    }
}

/// <summary>
/// The layers a generation ran under <see cref="GenerationOptions.EarlyExit"/>: the encoder counts examples
/// and the blocks each ran, the decoder tokens (one per decoder pass of a row) and the blocks each ran.
/// </summary>
/// <param name="EncoderLayers">Encoder blocks run, summed over the examples.</param>
/// <param name="EncoderExamples">Examples encoded.</param>
/// <param name="EncoderDepth">Blocks of the encoder (0 for a decoder-only model).</param>
/// <param name="DecoderLayers">Decoder blocks run, summed over the tokens (skipped blocks that only wrote cache entries not counted).</param>
/// <param name="DecoderTokens">Tokens passed through the decoder (a decoder-only model's prompt included; in a batch, a row that finished still steps with the others until the batch ends).</param>
/// <param name="DecoderDepth">Blocks of the decoder.</param>
public readonly record struct EarlyExitStats(long EncoderLayers, long EncoderExamples, int EncoderDepth, long DecoderLayers, long DecoderTokens, int DecoderDepth)
{
    /// <summary>Encoder blocks run as a fraction of a full encoder for every example (1 without exits; NaN with no example).</summary>
    public double EncoderFraction => EncoderExamples == 0 || EncoderDepth == 0 ? double.NaN : EncoderLayers / ((double)EncoderExamples * EncoderDepth);

    /// <summary>Decoder blocks run as a fraction of a full decoder for every token.</summary>
    public double DecoderFraction => DecoderTokens == 0 ? double.NaN : DecoderLayers / ((double)DecoderTokens * DecoderDepth);

    /// <summary>Both stacks' blocks run as a fraction of the full stacks (encoder blocks counted once per example, decoder blocks once per token).</summary>
    public double LayerFraction
    {
        get
        {
            double full = (double)EncoderExamples * EncoderDepth + (double)DecoderTokens * DecoderDepth;
            return full == 0 ? double.NaN : (EncoderLayers + DecoderLayers) / full;
        }
    }

    /// <summary>The sum of two counts (of one model).</summary>
    public static EarlyExitStats operator +(EarlyExitStats a, EarlyExitStats b) => new(
        a.EncoderLayers + b.EncoderLayers, a.EncoderExamples + b.EncoderExamples, Math.Max(a.EncoderDepth, b.EncoderDepth),
        a.DecoderLayers + b.DecoderLayers, a.DecoderTokens + b.DecoderTokens, Math.Max(a.DecoderDepth, b.DecoderDepth));

    /// <summary>The counts of rows [<paramref name="firstRow"/>, +<paramref name="rows"/>) of a decoder rule and, when given, row <paramref name="encoderRow"/> of an encoder rule.</summary>
    internal static EarlyExitStats From(StackExit? encoder, int encoderRow, int encoderDepth, StackExit decoder, int firstRow, int rows, int decoderDepth)
    {
        long layers = 0, tokens = 0;
        for (int r = firstRow; r < firstRow + rows; r++)
        {
            layers += decoder.LayersByRow[r];
            tokens += decoder.UnitsByRow[r];
        }
        return new EarlyExitStats(encoder?.LayersByRow[encoderRow] ?? 0, encoder?.UnitsByRow[encoderRow] ?? 0, encoderDepth, layers, tokens, decoderDepth);
    }
}
