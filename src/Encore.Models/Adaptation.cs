// Decoder-only → encoder–decoder adaptation, after T5Gemma ("Encoder-Decoder Gemma", arXiv 2504.06225):
// a pretrained decoder-only checkpoint initializes both stacks of an encoder–decoder, which is then
// trained further (PrefixLM, UL2). The encoder is the source's first N blocks with bidirectional
// attention; the decoder is the same blocks (balanced) or a smaller decoder-only model's (unbalanced,
// T5Gemma's 9B-2B); its cross-attention starts from the same block's self-attention (q, k, v, o and
// the attention norm) or fresh, and a fresh one is trained alone for a warm-up
// (TrainingOptions.CrossAttentionOnlySteps) before the rest is unfrozen.
//
// The decoder source may be narrower or wider than the source (T5Gemma's 9B-2B pairs a wide encoder with a
// narrow decoder): the encoder keeps the source's widths (ModelConfig.EncoderShape) and its own token table,
// the source's, and the decoder's cross-attention reads the encoder output at the encoder's width. Then
// cross-attention's k and v cannot come from the decoder's self-attention, which reads the decoder's width,
// so it starts fresh. At one width the self-attention shapes fit cross-attention, and whether it is copied
// or fresh is a choice (fresh by default when unbalanced, as T5Gemma does, since the small decoder's
// projections were never trained on the large encoder's states). Every other option (vocabulary,
// activation, norms, biases, scales) must agree.
namespace Encore.Models;

/// <summary>How the decoder's cross-attention starts.</summary>
public enum CrossAttentionInit
{
    /// <summary>q, k, v and o copied from the same block's self-attention, the norm from its attention norm.</summary>
    Copy,
    /// <summary>Initialized as a new model's (random projections, unit norm gains), from <see cref="AdaptationOptions.Seed"/>.</summary>
    Fresh,
}

/// <summary>Settings of <see cref="ModelAdaptation.Adapt"/>; each has one documented default.</summary>
public sealed record AdaptationOptions
{
    /// <summary>Encoder blocks: the source's first N. Default null (all of them).</summary>
    public int? EncoderLayers { get; init; }
    /// <summary>Decoder blocks: the decoder source's first M. Default null (all of them).</summary>
    public int? DecoderLayers { get; init; }
    /// <summary>
    /// How cross-attention starts. Default null: <see cref="CrossAttentionInit.Copy"/> when the decoder
    /// comes from the source itself (balanced), <see cref="CrossAttentionInit.Fresh"/> when it comes from
    /// another model (unbalanced).
    /// </summary>
    public CrossAttentionInit? CrossAttention { get; init; }
    /// <summary>Seed of the parameters that start fresh. Default 0.</summary>
    public ulong Seed { get; init; }
    /// <summary>
    /// The decoder's first input. Default null: the source's BOS when it has one (what its blocks saw
    /// first, and a tokenizer's decoder-start id), else its pad id.
    /// </summary>
    public int? DecoderStartTokenId { get; init; }
}

/// <summary>What <see cref="ModelAdaptation.Adapt"/> built and where each parameter came from.</summary>
/// <param name="Config">The encoder–decoder's configuration.</param>
/// <param name="Unbalanced">True when the decoder's blocks came from a second model.</param>
/// <param name="CrossAttention">How cross-attention started.</param>
/// <param name="FromSource">Parameters copied from the source (the encoder; everything when balanced).</param>
/// <param name="FromDecoderSource">Parameters copied from the decoder source (unbalanced only: the decoder, embeddings and head).</param>
/// <param name="FromSelfAttention">Cross-attention parameters copied from self-attention.</param>
/// <param name="Fresh">Names of the parameters that started fresh.</param>
public sealed record AdaptationReport(ModelConfig Config, bool Unbalanced, CrossAttentionInit CrossAttention,
    int FromSource, int FromDecoderSource, int FromSelfAttention, IReadOnlyList<string> Fresh);

/// <summary>Builds an encoder–decoder from decoder-only models (see the file header).</summary>
public static class ModelAdaptation
{
    /// <summary>
    /// The encoder–decoder configuration adapted from <paramref name="source"/> (and
    /// <paramref name="decoderSource"/>, unbalanced): every block option carries over; the encoder's
    /// positions are the source's decoder positions, now read bidirectionally. Throws
    /// <see cref="ArgumentException"/> naming the field that does not fit: a source that is not
    /// decoder-only, layer counts outside the sources', a decoder source whose vocabulary or block options
    /// differ (<see cref="Mismatches"/>; its widths may differ: the encoder then keeps the source's, see the file
    /// header), or cross-attention to copy from self-attention when the two widths differ. <paramref name="sourceName"/> and
    /// <paramref name="decoderSourceName"/> name the two in messages (a checkpoint's config.json path).
    /// </summary>
    public static ModelConfig AdaptedConfig(ModelConfig source, ModelConfig? decoderSource, AdaptationOptions? options = null,
        string sourceName = "the source", string decoderSourceName = "the decoder source")
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= new AdaptationOptions();
        RequireDecoderOnly(source, sourceName);
        var dec = decoderSource ?? source;
        if (decoderSource != null)
        {
            RequireDecoderOnly(decoderSource, decoderSourceName);
            var bad = Mismatches(source, decoderSource);
            if (bad.Count > 0)
                throw new ArgumentException($"{decoderSourceName} does not fit {sourceName}: {string.Join(", ", bad)} differ " +
                    "(an encoder–decoder has one vocabulary and one set of block options for both stacks; the decoder's model may differ in its widths, number of blocks and positions only)");
        }
        int n = options.EncoderLayers ?? source.DecoderLayers;
        int m = options.DecoderLayers ?? dec.DecoderLayers;
        if (n < 1 || n > source.DecoderLayers)
            throw new ArgumentException($"encoder_layers {n} is outside the blocks of {sourceName}: give 1 … {source.DecoderLayers} (its decoder_layers)");
        if (m < 1 || m > dec.DecoderLayers)
            throw new ArgumentException($"decoder_layers {m} is outside the blocks of {(decoderSource is null ? sourceName : decoderSourceName)}: give 1 … {dec.DecoderLayers} (its decoder_layers)");
        int start = options.DecoderStartTokenId ?? (source.BosTokenId >= 0 ? source.BosTokenId : source.PadTokenId);
        // The decoder's widths are the decoder source's; the encoder keeps the source's when they differ.
        var encoderShape = StackShape.Of(source);
        bool unbalanced = encoderShape != StackShape.Of(dec);
        if (unbalanced && source.DModel != dec.DModel && options.CrossAttention == CrossAttentionInit.Copy)
            throw new ArgumentException($"cross-attention cannot be copied from self-attention: its keys and values read the encoder's {source.DModel} features " +
                $"({sourceName}'s d_model) and the decoder's self-attention reads {dec.DModel} ({decoderSourceName}'s); start it fresh");
        var config = source with
        {
            Family = ModelFamily.EncoderDecoder,
            DModel = dec.DModel,
            Heads = dec.Heads,
            KvHeads = dec.KvHeads,
            HeadDim = dec.HeadDim,
            FfnDim = dec.FfnDim,
            EncoderShape = unbalanced ? encoderShape : null,
            EncoderEmbeddings = unbalanced && source.DModel != dec.DModel,
            EncoderLayers = n,
            DecoderLayers = m,
            EncoderPositions = source.DecoderPositions,
            DecoderPositions = dec.DecoderPositions,
            DecoderStartTokenId = start,
        };
        try
        {
            return config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"the adapted encoder–decoder is not a valid model: {e.Message}", e);
        }
    }

    /// <summary>
    /// The fields in which <paramref name="decoderSource"/> differs from <paramref name="source"/> although
    /// an encoder–decoder made of both needs them equal, each as "field (source's vs decoder source's)",
    /// vocab_size first. Widths (d_model, heads, kv_heads, head_dim, ffn_dim) may differ and are not listed.
    /// </summary>
    public static IReadOnlyList<string> Mismatches(ModelConfig source, ModelConfig decoderSource)
    {
        var bad = new List<string>();
        void Check<T>(string field, T a, T b)
        {
            if (!EqualityComparer<T>.Default.Equals(a, b)) bad.Add($"{field} ({a?.ToString() ?? "null"} vs {b?.ToString() ?? "null"})");
        }
        Check("vocab_size", source.VocabSize, decoderSource.VocabSize);
        Check("activation", source.Activation, decoderSource.Activation);
        Check("gated_ffn", source.GatedFfn, decoderSource.GatedFfn);
        Check("norm", source.Norm, decoderSource.Norm);
        Check("post_norm", source.PostNorm, decoderSource.PostNorm);
        Check("norm_eps", source.NormEps, decoderSource.NormEps);
        Check("qkv_bias", source.QkvBias, decoderSource.QkvBias);
        Check("output_bias", source.OutputBias, decoderSource.OutputBias);
        Check("mlp_bias", source.MlpBias, decoderSource.MlpBias);
        Check("tie_embeddings", source.TieEmbeddings, decoderSource.TieEmbeddings);
        Check("scale_tied_logits", source.ScaleTiedLogits, decoderSource.ScaleTiedLogits);
        Check("attention_scale", source.AttentionScale, decoderSource.AttentionScale);
        Check("final_norm", source.FinalNorm, decoderSource.FinalNorm);
        Check("norm_unit_offset", source.NormUnitOffset, decoderSource.NormUnitOffset);
        Check("sandwich_norms", source.SandwichNorms, decoderSource.SandwichNorms);
        Check("scale_embeddings", source.ScaleEmbeddings, decoderSource.ScaleEmbeddings);
        Check("attention_soft_cap", source.AttentionSoftCap, decoderSource.AttentionSoftCap);
        Check("final_logit_soft_cap", source.FinalLogitSoftCap, decoderSource.FinalLogitSoftCap);
        Check("sliding_window", source.SlidingWindow, decoderSource.SlidingWindow);
        Check("global_layer_every", source.GlobalLayerEvery, decoderSource.GlobalLayerEvery);
        Check("pad_token_id", source.PadTokenId, decoderSource.PadTokenId);
        Check("eos_token_id", source.EosTokenId, decoderSource.EosTokenId);
        Check("bos_token_id", source.BosTokenId, decoderSource.BosTokenId);
        // Learned and sinusoidal tables are sized by max_positions, which the stacks share.
        bool absolute = source.DecoderPositions.Kind is PositionKind.Learned or PositionKind.Sinusoidal
            || decoderSource.DecoderPositions.Kind is PositionKind.Learned or PositionKind.Sinusoidal;
        if (absolute) Check("max_positions", source.MaxPositions, decoderSource.MaxPositions);
        return bad;
    }

    /// <summary>
    /// The encoder–decoder made of <paramref name="source"/>'s first blocks (the encoder, bidirectional)
    /// and <paramref name="decoderSource"/>'s — or, when it is null, <paramref name="source"/>'s own — first
    /// blocks (the decoder), with cross-attention copied from self-attention or fresh (see
    /// <see cref="AdaptationOptions"/>). Token embeddings and an untied head come from the decoder's
    /// source, which reads and writes them; the encoder's final norm is the source's, and so is its own token
    /// table when the two differ in width. Parameters are
    /// copied as writable F32 (the sources may be memory-mapped in another dtype) and the sources are
    /// left as they were. Throws as <see cref="AdaptedConfig"/> does.
    /// </summary>
    public static (EncoderDecoderModel Model, AdaptationReport Report) Adapt(DecoderOnlyModel source, DecoderOnlyModel? decoderSource = null, AdaptationOptions? options = null,
        string sourceName = "the source", string decoderSourceName = "the decoder source")
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= new AdaptationOptions();
        var config = AdaptedConfig(source.Config, decoderSource?.Config, options, sourceName, decoderSourceName);
        var cross = options.CrossAttention ?? (decoderSource is null ? CrossAttentionInit.Copy : CrossAttentionInit.Fresh);
        var dec = decoderSource ?? source;
        var model = new EncoderDecoderModel(config, new ParameterSet(options.Seed, deferInitialization: true));
        int fromSource = 0, fromDecoder = 0, fromSelf = 0;
        var fresh = new List<string>();
        try
        {
            foreach (var p in model.Parameters.All.ToArray())
            {
                var (from, name, isCross) = SourceOf(p.Name, source, dec, cross);
                if (from is null)
                {
                    fresh.Add(p.Name);
                    continue;
                }
                if (!from.Parameters.Contains(name))
                    throw new ArgumentException($"{(ReferenceEquals(from, source) ? sourceName : decoderSourceName)} has no parameter '{name}' for '{p.Name}'");
                var t = from.Parameters[name].Value;
                if (name.EndsWith(".urpe.weight", StringComparison.Ordinal) && t.Shape[1] != p.Value.Shape[1])
                    model.Parameters.Assign(p.Name, SymmetricToeplitz(t, p.Value.Shape[1]));
                else model.Parameters.Assign(p.Name, t.DType == Encore.Tensors.DType.F32 ? t.Clone() : t.To(Encore.Tensors.DType.F32));
                if (isCross) fromSelf++;
                else if (ReferenceEquals(from, source)) fromSource++;
                else fromDecoder++;
            }
            // Fresh cross-attention (and nothing else) starts as a new model's would, from the seed.
            model.Parameters.InitializeRemaining();
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return (model, new AdaptationReport(config, decoderSource != null, cross, fromSource, fromDecoder, fromSelf, fresh));
    }

    // A causal URPE table c[0 … M] (H, M + 1) read bidirectionally, as ALiBi's distances are: c[−d] = c[d], (H, 2M + 1).
    static Encore.Tensors.Tensor SymmetricToeplitz(Encore.Tensors.Tensor causal, int width)
    {
        int h = causal.Shape[0], m = causal.Shape[1] - 1;
        if (width != 2 * m + 1) throw new ArgumentException($"a causal URPE table of {m + 1} coefficients does not give a bidirectional one of {width}");
        var c = causal.ToFloatArray();
        var result = new float[h * width];
        for (int i = 0; i < h; i++)
            for (int d = -m; d <= m; d++) result[i * width + d + m] = c[i * (m + 1) + Math.Abs(d)];
        return Encore.Tensors.Tensor.FromArray(result, h, width);
    }

    static void RequireDecoderOnly(ModelConfig c, string what)
    {
        if (c.Family == ModelFamily.DecoderOnly) return;
        throw new ArgumentException(c.Family == ModelFamily.EncoderOnly
            ? $"{what} is an encoder-only model (family EncoderOnly): it has no causal blocks to adapt; give a decoder-only model"
            : $"{what} is already an encoder–decoder (family EncoderDecoder); give a decoder-only model");
    }

    // Where parameter `name` of the encoder–decoder comes from: (model, its parameter, copied from self-attention),
    // or a null model for a fresh one. Block indices carry over: the first N (M) blocks of each source.
    static (DecoderOnlyModel? From, string Name, bool Cross) SourceOf(string name, DecoderOnlyModel source, DecoderOnlyModel dec, CrossAttentionInit cross)
    {
        const string Encoder = "encoder.", Decoder = "decoder.";
        if (name == EncoderDecoderModel.EncoderEmbedTokens) return (source, LanguageModel.EmbedTokens, false);   // an unbalanced encoder's own table
        if (name.StartsWith(Encoder, StringComparison.Ordinal)) return (source, Decoder + name[Encoder.Length..], false);
        if (name.StartsWith(Decoder, StringComparison.Ordinal))
        {
            // decoder.layers.{i}.cross_attn.{rest} ← decoder.layers.{i}.self_attn.{rest}; cross_attn_norm ← self_attn_norm.
            var parts = name.Split('.', 4);
            if (parts.Length == 4 && parts[1] == "layers" && parts[3].StartsWith("cross_attn", StringComparison.Ordinal))
                return cross == CrossAttentionInit.Fresh ? (null, name, true)
                    : (dec, $"decoder.layers.{parts[2]}.self_attn{parts[3]["cross_attn".Length..]}", true);
            return (dec, name, false);
        }
        if (name is LanguageModel.EmbedTokens or LanguageModel.LmHead) return (dec, name, false);
        throw new InvalidOperationException($"adaptation has no source for parameter '{name}'");
    }
}
