// The T5Gemma family ("model_type": "t5gemma", T5GemmaForConditionalGeneration), read top to bottom: the
// config.json mapping, then the checkpoint name map. T5Gemma (Zhang et al. 2025, "Encoder-Decoder Gemma",
// arXiv 2504.06225) adapts a Gemma 2 into an encoder–decoder, as transformers' configuration_t5gemma.py /
// modeling_t5gemma.py define it; tools/reference/t5gemma_reference.py restates its forward in plain torch.
//
// Each stack is Gemma 2's (Gemma2.cs: unit-offset RMSNorm, sandwich norms, √hidden_size embeddings,
// query_pre_attn_scalar, score soft cap, sliding-window layers, GeGLU, RoPE), with:
// - an encoder whose attention is bidirectional, its sliding layers seeing |i − j| < sliding_window
//   (sliding_window_bidirectional_mask_function) → the window of a non-causal stack;
// - decoder layers with cross-attention between the self-attention and the MLP, sandwiched by
//   pre_cross_attn_layernorm / post_cross_attn_layernorm, soft-capped, without RoPE;
// - separate token tables for the encoder and the decoder (model.{encoder,decoder}.embed_tokens), the head
//   lm_head.out_proj tied to the decoder's → EncoderEmbeddings;
// - the final soft cap of the decoder config on the logits; generation starts from decoder.bos_token_id.
// The two module configs may differ in their widths (hidden_size, intermediate_size, heads, kv heads,
// head_dim: an unbalanced T5Gemma such as 9B-2B) → ModelConfig.EncoderShape, the decoder's cross-attention
// k and v reading cross_attention_hidden_size = encoder hidden_size inputs; they must agree on every other
// option (one activation, ε, θ, score scale, caps, window), or the load is refused naming the field.
//
// Correspondence with Encore's parameter names:
//   model.encoder.embed_tokens / model.decoder.embed_tokens → encoder.embed_tokens / embed_tokens
//   lm_head.out_proj (untied only)                          → lm_head
//   model.{stack}.norm                                      → {stack}.final_norm
//   model.{stack}.layers.i.{pre,post}_self_attn_layernorm   → {stack}.layers.i.self_attn_{norm,post_norm}
//   model.decoder.layers.i.{pre,post}_cross_attn_layernorm  → decoder.layers.i.cross_attn_{norm,post_norm}
//   model.{stack}.layers.i.{pre,post}_feedforward_layernorm → {stack}.layers.i.mlp_{norm,post_norm}
//   model.{stack}.layers.i.{self_attn,cross_attn,mlp}.*     → {stack}.layers.i.{self_attn,cross_attn,mlp}.*
using System.Text.Json.Nodes;
using Encore.Models;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// <c>model_type: "t5gemma"</c>. The <c>encoder</c> object is required and holds a Gemma 2 config
/// (<see cref="Gemma2Architecture"/>'s fields and defaults); <c>decoder</c> defaults to the encoder's. The two
/// may differ in widths (an unbalanced model, <see cref="ModelConfig.EncoderShape"/>) and must agree on every other
/// option (a difference is rejected naming the field). Top level:
/// tie_word_embeddings (default true) and dropout_rate (default 0, training only).
/// </summary>
public sealed class T5GemmaArchitecture : IArchitecture
{
    /// <inheritdoc />
    public string ModelType => "t5gemma";

    /// <inheritdoc />
    public ModelConfig ReadConfig(JsonObject json, string path)
    {
        var f = new HfConfigFields(json, path);
        if (f.Node("encoder") is not JsonObject encoderJson) throw f.Error("encoder", "must be an object (the encoder's Gemma 2 config)");
        var decoderJson = f.Node("decoder") switch
        {
            null => encoderJson,
            JsonObject o => o,
            _ => throw f.Error("decoder", "must be an object (the decoder's Gemma 2 config)"),
        };
        var ef = new HfConfigFields(encoderJson, path, "encoder.");
        var df = new HfConfigFields(decoderJson, path, "decoder.");
        var e = Gemma2Architecture.ReadModule(ef, encoderJson);
        var d = Gemma2Architecture.ReadModule(df, decoderJson);
        if (f.Node("cross_attention_hidden_size") is not null || decoderJson.ContainsKey("cross_attention_hidden_size"))
        {
            var crossField = decoderJson.ContainsKey("cross_attention_hidden_size") ? df : f;
            int? cross = crossField.PositiveOrNull("cross_attention_hidden_size");
            if (cross is int width && width != e.DModel)
                throw crossField.Error("cross_attention_hidden_size", $"{width} differs from encoder.hidden_size {e.DModel}");
        }
        // The stacks may differ in widths (EncoderShape) and share every other option.
        foreach (var (name, a, b) in new (string, object?, object?)[]
        {
            ("vocab_size", e.VocabSize, d.VocabSize), ("hidden_activation", e.Activation, d.Activation), ("rms_norm_eps", e.NormEps, d.NormEps),
            ("rope_theta", e.DecoderPositions.RopeTheta, d.DecoderPositions.RopeTheta), ("attention_bias", e.QkvBias, d.QkvBias),
            ("query_pre_attn_scalar", e.AttentionScale, d.AttentionScale), ("attn_logit_softcapping", e.AttentionSoftCap, d.AttentionSoftCap),
            ("sliding_window", e.SlidingWindow, d.SlidingWindow), ("layer_types", e.GlobalLayerEvery, d.GlobalLayerEvery),
        })
            if (!Equals(a, b))
                throw df.Error(name, $"{b} differs from encoder.{name} {a} (Encore's encoder and decoder may differ in widths only)");
        var shape = StackShape.Of(e);
        var config = d with
        {
            EncoderShape = shape == StackShape.Of(d) ? null : shape,
            Family = ModelFamily.EncoderDecoder,
            EncoderLayers = e.DecoderLayers,
            EncoderEmbeddings = true,
            TieEmbeddings = f.Bool("tie_word_embeddings", true),
            EncoderPositions = e.DecoderPositions,
            MaxPositions = Math.Max(e.MaxPositions, d.MaxPositions),
            Dropout = (float)f.Probability("dropout_rate", 0),
            // T5GemmaForConditionalGeneration._shift_right starts from decoder.bos_token_id.
            DecoderStartTokenId = d.BosTokenId < 0 ? 0 : d.BosTokenId,
        };
        return f.Validated(config, Gemma2Architecture.FieldNames);
    }

    /// <inheritdoc />
    public JsonObject WriteConfig(ModelConfig config)
    {
        EnsureWritable(config);
        var c = config;
        var encoder = Gemma2Architecture.WriteModule(c.ForEncoder(), c.EncoderLayers);
        var decoder = Gemma2Architecture.WriteModule(c, c.DecoderLayers);
        decoder["cross_attention_hidden_size"] = c.EncoderDModel;
        decoder["bos_token_id"] = c.DecoderStartTokenId;
        return new JsonObject
        {
            ["architectures"] = new JsonArray("T5GemmaForConditionalGeneration"),
            ["model_type"] = ModelType,
            ["encoder"] = encoder,
            ["decoder"] = decoder,
            ["is_encoder_decoder"] = true,
            ["dropout_rate"] = (double)c.Dropout,
            ["tie_word_embeddings"] = c.TieEmbeddings,
            ["vocab_size"] = c.VocabSize,
            ["bos_token_id"] = c.DecoderStartTokenId,
            ["eos_token_id"] = c.EosTokenId,
            ["pad_token_id"] = c.PadTokenId,
            ["torch_dtype"] = "float32",
        };
    }

    void EnsureWritable(ModelConfig c)
    {
        if (c.Family != ModelFamily.EncoderDecoder || !c.EncoderEmbeddings)
            throw new ArgumentException($"this model cannot be written as model_type '{ModelType}': it needs an encoder–decoder with the encoder's own token table");
        Gemma2Architecture.EnsureGemmaBlocks(c, ModelType);
        if (c.EncoderPositions != c.DecoderPositions)
            throw new ArgumentException($"this model cannot be written as model_type '{ModelType}': both stacks use the same plain RoPE");
        if (c.BosTokenId >= 0 && c.BosTokenId != c.DecoderStartTokenId)
            throw new ArgumentException($"this model cannot be written as model_type '{ModelType}': generation starts from decoder.bos_token_id, so bos and decoder start must agree");
    }

    /// <inheritdoc />
    public IReadOnlyList<string> TensorNames(string encoreName, ModelConfig config)
    {
        EnsureWritable(config);
        switch (encoreName)
        {
            case EncoderDecoderModel.EncoderEmbedTokens: return ["model.encoder.embed_tokens.weight"];
            case LanguageModel.EmbedTokens: return ["model.decoder.embed_tokens.weight"];
            case LanguageModel.LmHead: return ["lm_head.out_proj.weight"];
            case "encoder.final_norm.weight": return ["model.encoder.norm.weight"];
            case "decoder.final_norm.weight": return ["model.decoder.norm.weight"];
        }
        var parts = encoreName.Split('.', 4);
        if (parts.Length == 4 && parts[0] is "encoder" or "decoder" && parts[1] == "layers" && Gemma2Architecture.BlockTensor(parts[3], t5: true) is string name)
            return [$"model.{parts[0]}.layers.{parts[2]}.{name}"];
        throw new ArgumentException($"model_type '{ModelType}' has no tensor for Encore parameter '{encoreName}'");
    }
}
