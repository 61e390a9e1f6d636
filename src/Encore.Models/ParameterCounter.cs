namespace Encore.Models;

/// <summary>Parameter counts computed from a configuration alone (no weights are allocated).</summary>
public static class ParameterCounter
{
    /// <summary>
    /// Values in a model of <paramref name="c"/> (tied weights counted once). The arithmetic is checked:
    /// an unvalidated configuration whose count does not fit 64 bits throws <see cref="OverflowException"/>.
    /// </summary>
    public static long Count(ModelConfig c) => checked(CountUnchecked(c));

    /// <summary>Coefficients per head of a URPE Toeplitz table: M + 1 in a causal stack (distances 0 … M), 2M + 1 in a bidirectional one.</summary>
    public static int UrpeWidth(PositionConfig pos, bool causal) => causal ? pos.UrpeMaxDistance + 1 : 2 * pos.UrpeMaxDistance + 1;

    static long CountUnchecked(ModelConfig c)
    {
        long v = c.VocabSize;
        long Norm(long width) => c.Norm switch { NormKind.LayerNorm => 2 * width, NormKind.None => 0, _ => width };
        // One stack of configuration s (the model's, or the encoder's own widths); cross-attention reads memory `memory` wide.
        long Stack(ModelConfig s, int layers, bool cross, bool causal, PositionConfig pos, long memory)
        {
            if (layers == 0) return 0;
            long d = s.DModel, a = s.AttentionDim, kv = (long)s.KvHeads * s.HeadDim, f = s.FfnDim, norm = Norm(d);
            long Attention(long input) => d * a + 2 * input * kv + a * d + (c.QkvBias ? a + 2 * kv : 0) + (c.OutputBias ? d : 0);
            long mlp = (c.GatedFfn ? 3 : 2) * d * f + (c.MlpBias ? (c.GatedFfn ? 2 * f : f) + d : 0);
            long block = Attention(d) + norm + mlp + norm + (cross ? Attention(memory) + norm : 0) + (c.SandwichNorms ? (cross ? 3 : 2) * norm : 0)
                + pos.Kind switch
                {
                    // Per layer: ComRoPE's generator P (Hkv, nb, b, b) and scale λ (Hkv, nb); URPE's Toeplitz table (H, width).
                    PositionKind.ComRope => (long)s.KvHeads * (s.HeadDim / Math.Max(2, pos.ComRopeBlock)) * ((long)pos.ComRopeBlock * pos.ComRopeBlock + 1),
                    PositionKind.Urpe => (long)s.Heads * UrpeWidth(pos, causal),
                    _ => 0,
                }
                // Codebook features: one (codes, D) codebook after each attention sublayer and/or the feed-forward.
                + (c.Codebook is { } cb ? ((cb.Attention ? (cross ? 2 : 1) : 0) + (cb.Mlp ? 1 : 0)) * (long)cb.Size * d : 0);
            long extra = (c.FinalNorm && !c.PostNorm ? norm : 0)
                + pos.Kind switch
                {
                    PositionKind.Learned => ((long)c.MaxPositions + pos.LearnedOffset) * d,
                    PositionKind.T5Relative or PositionKind.Urpe => (long)pos.RelativeBuckets * s.Heads,
                    _ => 0,
                };
            return layers * block + extra;
        }
        long dm = c.DModel;
        // A bare encoder (no masked-LM head) has no output projection, tied or not.
        bool head = c.Family != ModelFamily.EncoderOnly || c.MaskedLmHead;
        long total = v * dm + (c.TieEmbeddings || !head ? 0 : v * dm) + (c.FinalLogitsBias ? v : 0);
        switch (c.Family)
        {
            case ModelFamily.EncoderDecoder:
                var enc = c.ForEncoder();
                long de = enc.DModel;
                total += Stack(enc, c.EncoderLayers, false, false, c.EncoderPositions, 0) + Stack(c, c.DecoderLayers, true, true, c.DecoderPositions, de)
                    + (c.EmbeddingNorm ? Norm(de) + Norm(dm) : 0)    // each stack's embedding norm
                    + (c.EncoderEmbeddings ? v * de : 0);           // the encoder's own token table
                break;
            case ModelFamily.DecoderOnly:
                total += Stack(c, c.DecoderLayers, false, true, c.DecoderPositions, 0);
                break;
            case ModelFamily.EncoderOnly:
                total += Stack(c, c.EncoderLayers, false, false, c.EncoderPositions, 0)
                    + ((long)c.TypeVocabSize * dm) + (c.EmbeddingNorm ? Norm(dm) : 0)
                    + (c.MaskedLmHead ? dm * dm + dm + Norm(dm) + v : 0);   // masked-LM head: dense, norm, output bias
                break;
        }
        return total;
    }
}
