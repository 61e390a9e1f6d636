using Encore.Autograd;
using Encore.Tensors.Kernels;

namespace Encore.Models;

/// <summary>
/// The attention entropy of one attention layer in one forward pass (see <see cref="AttentionEntropyProbe"/>).
/// </summary>
/// <param name="Scope">The layer's checkpoint scope, e.g. <c>decoder.layers.0.self_attn</c>.</param>
/// <param name="Cross">Whether it is cross-attention (queries from the decoder, keys from the encoder).</param>
/// <param name="Entropy">(B, H, T) entropy in nats of each query row's probabilities; recorded with its gradient under a tape.</param>
/// <param name="VisibleKeys">(B·H·T) keys each query row sees (causality and padding); the row's maximum entropy is their log.</param>
/// <param name="QueryLengths">(B) valid query rows per batch item (right padding), or null when none is padded.</param>
/// <param name="KeyLength">S, the width of the attention matrix (the paper's context size for its maximum entropy log S).</param>
public sealed record AttentionEntropyRecord(string Scope, bool Cross, Var Entropy, float[] VisibleKeys, int[]? QueryLengths, int KeyLength);

/// <summary>
/// Collects the attention entropy of every attention layer a forward pass runs without a cache (training, evaluation),
/// self-attention of each stack and cross-attention, in the order the layers run. Set it with
/// <see cref="LanguageModel.AttentionEntropy"/>; each layer then makes one extra pass over its scores
/// (<see cref="Ops.AttentionEntropy"/>). URPE layers report the softmax before their Toeplitz multiplier.
/// </summary>
public sealed class AttentionEntropyProbe
{
    /// <summary>What the layers recorded, in order.</summary>
    public List<AttentionEntropyRecord> Records { get; } = [];

    internal void Add(string scope, bool cross, Var q, Var k, int heads, int kvHeads, AttentionOptions options, AttentionMaskOptions masks, Var? bias, int[]? queryLengths)
    {
        var visible = new float[q.Shape[0] * heads * q.Shape[1]];
        var entropy = Ops.AttentionEntropy(q, k, heads, kvHeads, options, masks, bias, visible);   // (B, H, T)
        Records.Add(new AttentionEntropyRecord(scope, cross, entropy, visible, queryLengths, k.Shape[1]));
    }
}
