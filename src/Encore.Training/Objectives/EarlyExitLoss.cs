using Encore.Autograd;
using Encore.Models;

namespace Encore.Training.Objectives;

/// <summary>
/// What an early-exit loss adds to training (see <see cref="EarlyExitLoss"/>). One documented default
/// each.
/// </summary>
public sealed record EarlyExitLossOptions
{
    /// <summary>
    /// Also train the decoder on the memory of an intermediate encoder layer, so the encoder can exit
    /// early at inference: each step draws one layer e in [1, encoder layers − 1] from the step's seed
    /// (a resumed run draws the same) and runs the decoder a second time on the final norm of layer e's
    /// output; the loss is the mean of the two decoder passes' layer-averaged losses. One extra decoder
    /// pass per step instead of MuE's pass per encoder layer; over a run every layer is drawn about
    /// equally often. Encoder–decoder models with ≥ 2 encoder layers only. Default true.
    /// </summary>
    public bool Encoder { get; init; } = true;
}

/// <summary>
/// The early-exit training loss after MuE (Tang et al. 2023, arXiv 2211.11152): the model's own final
/// norm and LM head are applied to every decoder layer's output, and the per-layer cross-entropies are
/// averaged with equal weights, as MuE averages its layer-wise task losses. Equal weights rather than
/// CALM's weights rising with depth (Schuster et al. 2022): at inference the exit rule lets a token leave
/// after any layer, so every layer's output must read well, and the full depth still holds the largest
/// single weight (1/L of the average, and the only term when L = 1). With
/// <see cref="EarlyExitLossOptions.Encoder"/>, the decoder also trains on an intermediate encoder layer's
/// memory (see there):
/// <code>
/// L_dec(m)  = (1/L_d) Σ_{l=1..L_d} CE(head(norm(h_l(m))))
/// loss      = ½·(L_dec(m_E) + L_dec(m_e))      (encoder exits trained)
///           = L_dec(m_E)                        (otherwise, and for a decoder-only model)
/// </code>
/// where m_k is the final norm of encoder layer k's output and E the encoder's depth.
/// </summary>
public static class EarlyExitLoss
{
    /// <summary>The loss, the full model's logits (B, T, V) and, for an encoder–decoder, the full encoder's memory (B, S, D).</summary>
    public readonly record struct Result(Var Loss, Var FinalLogits, Var? Memory);

    /// <summary>
    /// The early-exit loss of <paramref name="model"/> (encoder–decoder or decoder-only) on
    /// <paramref name="batch"/>, each cross-entropy with <paramref name="labelSmoothing"/>;
    /// <paramref name="seed"/> seeds dropout and the encoder layer drawn.
    /// </summary>
    public static Result Compute(LanguageModel model, Batch batch, EarlyExitLossOptions options, float labelSmoothing = 0, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(options);
        var ce = new CrossEntropyOptions { LabelSmoothing = labelSmoothing };
        switch (model)
        {
            case EncoderDecoderModel ed:
            {
                var memories = ed.EncodeLayers(batch.Source, batch.Size, batch.SourceLengths, seed);       // E × (B, S, D)
                var full = ed.DecodeLayers(memories[^1], batch.SourceLengths, batch.Inputs, batch.Size, seed);   // L_d × (B, T, V)
                var loss = LayerMean(full, batch, model.Config.VocabSize, ce);
                if (options.Encoder && memories.Count > 1)
                {
                    int e = EncoderLayer(seed, memories.Count);
                    var early = ed.DecodeLayers(memories[e - 1], batch.SourceLengths, batch.Inputs, batch.Size, seed);
                    loss = Ops.Scale(Ops.Add(loss, LayerMean(early, batch, model.Config.VocabSize, ce)), 0.5f);
                }
                return new Result(loss, full[^1], memories[^1]);
            }
            case DecoderOnlyModel dec:
            {
                var layers = dec.ForwardLayers(batch.Inputs, batch.Size, batch.InputLengths, seed);
                return new Result(LayerMean(layers, batch, model.Config.VocabSize, ce), layers[^1], null);
            }
            default:
                throw new ArgumentException($"an early-exit loss needs a decoder; {model.GetType().Name} has none");
        }
    }

    /// <summary>The intermediate encoder layer (1-based, in [1, <paramref name="encoderLayers"/> − 1]) a step of seed <paramref name="seed"/> trains the decoder on.</summary>
    public static int EncoderLayer(ulong seed, int encoderLayers)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(encoderLayers, 2);
        // SplitMix64's finalizer: the dropout seed's low bits alone would repeat with the step.
        ulong z = seed + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return 1 + (int)(z % (ulong)(encoderLayers - 1));
    }

    // (1/L) Σ_l CE(logits_l) over the batch's targets.
    static Var LayerMean(IReadOnlyList<Var> logits, Batch b, int v, CrossEntropyOptions ce)
    {
        Var? sum = null;
        foreach (var l in logits)
        {
            var term = Ops.CrossEntropy(Ops.Reshape(l, b.Size * b.InputLength, v), b.Targets, ce);
            sum = sum is null ? term : Ops.Add(sum, term);
        }
        return logits.Count == 1 ? sum! : Ops.Scale(sum!, 1f / logits.Count);
    }
}
