namespace Encore.Models;

/// <summary>
/// Floating-point operations of a training step, by the usual accounting (Kaplan et al. 2020;
/// PaLM's appendix B): every weight matrix costs 2 FLOPs per multiply-add per token it is applied
/// to, attention adds 2·2·T·S·(heads·head_dim) per layer and sequence (scores and the weighted sum,
/// counted over the full T×S square even when causal), and the backward pass costs twice the
/// forward, so a step is 3 × forward. Norms, activations, softmax and the optimizer are not counted.
/// Matrices count where they are applied: the encoder's on source tokens; the decoder's, the
/// cross-attention's query and output projections and the LM head on target tokens; the
/// cross-attention's key and value projections on source tokens. A decoder-only model reads one
/// sequence of S + T tokens. The embedding lookup is not a product and is not counted.
/// </summary>
public static class ModelFlops
{
    /// <summary>Forward FLOPs of one batch of <paramref name="batch"/> sequences of <paramref name="source"/> + <paramref name="target"/> tokens.</summary>
    public static double Forward(ModelConfig c, int batch, int source, int target)
    {
        double d = c.DModel, a = c.AttentionDim, kv = (double)c.KvHeads * c.HeadDim, f = c.FfnDim, v = c.VocabSize;
        double q = d * a, o = a * d, kvProj = 2 * d * kv, mlp = (c.GatedFfn ? 3 : 2) * d * f;
        double selfBlock = q + kvProj + o + mlp;
        double Attention(double t, double s) => 2 * 2 * t * s * a;
        double macsTimesTwo;
        switch (c.Family)
        {
            case ModelFamily.EncoderDecoder:
            {
                // The encoder at its own widths (EncoderShape); cross-attention's k and v read it at its width.
                var e = c.ForEncoder();
                double de = e.DModel, ae = e.AttentionDim, kve = (double)e.KvHeads * e.HeadDim;
                double encoderBlock = 2 * de * ae + 2 * de * kve + (c.GatedFfn ? 3 : 2) * de * e.FfnDim;
                double encoder = e.EncoderLayers * (2 * encoderBlock * source + 2 * 2 * (double)source * source * ae);
                double decoder = c.DecoderLayers * (2 * (selfBlock + q + o) * target + 2 * (2 * de * kv) * source
                                                     + Attention(target, target) + Attention(target, source));
                macsTimesTwo = encoder + decoder + 2 * v * d * target;
                break;
            }
            case ModelFamily.DecoderOnly:
            {
                double n = source + target;
                macsTimesTwo = c.DecoderLayers * (2 * selfBlock * n + Attention(n, n)) + 2 * v * d * n;
                break;
            }
            default:
            {
                double n = source;
                macsTimesTwo = c.EncoderLayers * (2 * selfBlock * n + Attention(n, n)) + 2 * (d * d + v * d) * n;
                break;
            }
        }
        return batch * macsTimesTwo;
    }

    /// <summary>FLOPs of one training step (forward and backward): 3 × <see cref="Forward"/>.</summary>
    public static double TrainingStep(ModelConfig c, int batch, int source, int target) => 3 * Forward(c, batch, source, target);
}
