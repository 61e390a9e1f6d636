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
        long d = c.DModel, a = c.AttentionDim, kv = (long)c.KvHeads * c.HeadDim, f = c.FfnDim, v = c.VocabSize;
        long norm = c.Norm switch { NormKind.LayerNorm => 2 * d, NormKind.None => 0, _ => d };
        long attn = d * a + 2 * d * kv + a * d
                    + (c.QkvBias ? a + 2 * kv : 0) + (c.OutputBias ? d : 0);
        long mlp = (c.GatedFfn ? 3 : 2) * d * f + (c.MlpBias ? (c.GatedFfn ? 2 * f : f) + d : 0);
        long Stack(int layers, bool cross, bool causal, PositionConfig pos)
        {
            if (layers == 0) return 0;
            long block = attn + norm + mlp + norm + (cross ? attn + norm : 0) + (c.SandwichNorms ? (cross ? 3 : 2) * norm : 0)
                + pos.Kind switch
                {
                    // Per layer: ComRoPE's generator P (Hkv, nb, b, b) and scale λ (Hkv, nb); URPE's Toeplitz table (H, width).
                    PositionKind.ComRope => (long)c.KvHeads * (c.HeadDim / Math.Max(2, pos.ComRopeBlock)) * ((long)pos.ComRopeBlock * pos.ComRopeBlock + 1),
                    PositionKind.Urpe => (long)c.Heads * UrpeWidth(pos, causal),
                    _ => 0,
                };
            long extra = (c.FinalNorm && !c.PostNorm ? norm : 0)
                + pos.Kind switch
                {
                    PositionKind.Learned => ((long)c.MaxPositions + pos.LearnedOffset) * d,
                    PositionKind.T5Relative or PositionKind.Urpe => (long)pos.RelativeBuckets * c.Heads,
                    _ => 0,
                };
            return layers * block + extra;
        }
        // A bare encoder (no masked-LM head) has no output projection, tied or not.
        bool head = c.Family != ModelFamily.EncoderOnly || c.MaskedLmHead;
        long total = v * d + (c.TieEmbeddings || !head ? 0 : v * d) + (c.FinalLogitsBias ? v : 0);
        switch (c.Family)
        {
            case ModelFamily.EncoderDecoder:
                total += Stack(c.EncoderLayers, false, false, c.EncoderPositions) + Stack(c.DecoderLayers, true, true, c.DecoderPositions)
                    + (c.EmbeddingNorm ? 2 * norm : 0)    // each stack's embedding norm
                    + (c.EncoderEmbeddings ? v * d : 0);  // the encoder's own token table
                break;
            case ModelFamily.DecoderOnly:
                total += Stack(c.DecoderLayers, false, true, c.DecoderPositions);
                break;
            case ModelFamily.EncoderOnly:
                total += Stack(c.EncoderLayers, false, false, c.EncoderPositions)
                    + ((long)c.TypeVocabSize * d) + (c.EmbeddingNorm ? norm : 0)
                    + (c.MaskedLmHead ? d * d + d + norm + v : 0);   // masked-LM head: dense, norm, output bias
                break;
        }
        return total;
    }
}
