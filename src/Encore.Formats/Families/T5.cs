// The T5 family ("model_type": "t5"): the original T5 (Raffel et al. 2020, arXiv 1910.10683;
// t5-small … t5-11b) and T5 v1.1 / Flan-T5 (gated-GELU feed-forward, untied LM head), read top to
// bottom: the preset, the config.json mapping, the checkpoint name map. It follows transformers'
// models/t5/configuration_t5.py (fields and defaults) and modeling_t5.py (tensor names and math);
// tools/reference/t5_reference.py is the same model written out in PyTorch for the parity fixtures.
//
// Its peculiarities, and the shared-layer options that carry them (set by Preset below):
// - T5Attention has no 1/√d_kv scaling (it is folded into the initialization) and no biases; the
//   attention width num_heads·d_kv may differ from d_model → AttentionScale = 1, HeadDim = d_kv;
// - one relative-position bias table per stack, stored in block 0's self-attention and shared by
//   every layer of the stack (bidirectional buckets in the encoder, causal in the decoder); the
//   cross-attention carries no positions → PositionKind.T5Relative (TransformerStack's
//   RelativeBias; buckets in Kernels/PositionBias.cs);
// - T5LayerNorm is RMSNorm without bias; pre-norm blocks and a final norm per stack;
// - with tie_word_embeddings (the default) the decoder output is scaled by d_model^−½ before the
//   tied head (T5ForConditionalGeneration.forward) → ScaleTiedLogits (LanguageModel.Logits);
//   otherwise a separate lm_head.
//
// The file sits in Encore.Formats rather than Encore.Models: the mapping implements IArchitecture
// and fails with CheckpointFormatException, both Formats types, and Formats is the layer above
// Models (DESIGN.md), so the model math stays in the shared layers below and is chosen by the
// options above.
using System.Globalization;
using System.Text.Json.Nodes;
using Encore.Models;
using Encore.Tensors.Kernels;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// T5 v1.0 and v1.1 / Flan-T5 as Hugging Face publishes them: <c>config.json</c> fields to an Encore
/// encoder–decoder <see cref="ModelConfig"/> and Encore parameter names to <c>shared.weight</c>,
/// <c>encoder.block.{i}.layer.{j}.…</c>, <c>lm_head.weight</c>.
/// </summary>
public sealed class T5Architecture : IArchitecture
{
    // Bounds on config values, so a damaged config.json fails before the model allocates. They hold
    // every published T5 with room to spare (t5-11b: d_ff 65536, 128 heads; mT5: 250112 tokens).
    const int MaxWidth = 1 << 18;
    const int MaxVocab = 1 << 22;
    const int MaxLayers = 1024;
    const int MaxHeads = 4096;
    const int MaxBuckets = 1 << 16;

    /// <inheritdoc />
    public string ModelType => "t5";

    /// <summary>
    /// A T5 v1.0 model (t5-small: 512, 6, 8, 2048, 32128; t5-base: 768, 12, 12, 3072, 32128): ReLU
    /// feed-forward, d_kv = d_model / heads, 32 buckets up to distance 128, pad 0 = decoder start,
    /// eos 1, no dropout. <paramref name="tied"/> ties the LM head to the embedding, with T5's rescale.
    /// </summary>
    public static ModelConfig Preset(int dModel, int layers, int heads, int ffn, int vocab, bool tied = true)
    {
        var relative = new PositionConfig { Kind = PositionKind.T5Relative, RelativeBuckets = 32, RelativeMaxDistance = 128 };
        return new ModelConfig
        {
            Family = ModelFamily.EncoderDecoder,
            VocabSize = vocab,
            DModel = dModel,
            EncoderLayers = layers,
            DecoderLayers = layers,
            Heads = heads,
            KvHeads = heads,
            HeadDim = dModel / heads,
            FfnDim = ffn,
            Activation = ActivationKind.Relu,
            GatedFfn = false,
            Norm = NormKind.RmsNorm,
            NormEps = 1e-6f,
            TieEmbeddings = tied,
            ScaleTiedLogits = tied,
            AttentionScale = 1f,
            EncoderPositions = relative,
            DecoderPositions = relative,
            FinalNorm = true,
            PadTokenId = 0,
            EosTokenId = 1,
            BosTokenId = -1,
            DecoderStartTokenId = 0,
        };
    }

    /// <inheritdoc />
    public ModelConfig ReadConfig(JsonObject json, string path)
    {
        var f = new HfConfigFields(json, path);
        int dModel = f.Int("d_model", null, 1, MaxWidth);
        int dKv = f.Int("d_kv", null, 1, MaxWidth);
        int dFf = f.Int("d_ff", null, 1, MaxWidth);
        int layers = f.Int("num_layers", null, 1, MaxLayers);
        // configuration_t5.py: num_decoder_layers defaults to num_layers (symmetry).
        int decoderLayers = f.Int("num_decoder_layers", layers, 1, MaxLayers);
        int heads = f.Int("num_heads", null, 1, MaxHeads);
        if ((long)heads * dKv > MaxWidth) throw f.Error("d_kv", $"num_heads·d_kv = {(long)heads * dKv} exceeds {MaxWidth}");
        int vocab = f.Int("vocab_size", null, 1, MaxVocab);
        int buckets = f.Int("relative_attention_num_buckets", 32, 1, MaxBuckets);
        // Configs written before the field existed used 128, its default.
        int maxDistance = f.Int("relative_attention_max_distance", 128, 1, int.MaxValue);
        if (buckets < 2) throw f.Error("relative_attention_num_buckets", $"must be at least 2, got {buckets}");
        double eps = f.Number("layer_norm_epsilon", 1e-6);
        if (!(eps > 0) || eps > 1) throw f.Error("layer_norm_epsilon", $"must be in (0, 1], got {eps}");
        double dropout = f.Number("dropout_rate", 0.1);
        if (dropout is < 0 or >= 1) throw f.Error("dropout_rate", $"must be in [0, 1), got {dropout}");
        var (activation, gated) = ParseFeedForward(f.StringOrNull("feed_forward_proj") ?? "relu", f);
        // configuration_t5.py derives dense_act_fn and is_gated_act from feed_forward_proj, but
        // config.json files written by newer transformers store them too, and PretrainedConfig sets
        // stored keys after that derivation: where present, they decide.
        if (f.StringOrNull("dense_act_fn") is { } name)
            activation = HfConfigFields.ActivationOf(name) ?? throw f.Error("dense_act_fn", $"activation '{name}' is not supported (supported: {HfConfigFields.SupportedActivations})");
        gated = f.Bool("is_gated_act", gated);
        bool tied = f.Bool("tie_word_embeddings", true);
        int pad = f.Int("pad_token_id", 0, 0, vocab - 1);
        int eos = f.Int("eos_token_id", 1, 0, vocab - 1);
        // T5 starts decoding from the pad token; published configs state it (0) explicitly.
        int start = f.Int("decoder_start_token_id", pad, 0, vocab - 1);

        var relative = new PositionConfig { Kind = PositionKind.T5Relative, RelativeBuckets = buckets, RelativeMaxDistance = maxDistance };
        return f.Validated(Preset(dModel, layers, heads, dFf, vocab, tied) with
        {
            DecoderLayers = decoderLayers,
            HeadDim = dKv,
            Activation = activation,
            GatedFfn = gated,
            NormEps = (float)eps,
            EncoderPositions = relative,
            DecoderPositions = relative,
            Dropout = (float)dropout,
            PadTokenId = pad,
            EosTokenId = eos,
            DecoderStartTokenId = start,
        }, FieldNames);
    }

    // Encore's field names in ModelConfig.Validate's messages and T5's config.json names.
    static readonly (string Encore, string Hf)[] FieldNames =
    [
        ("d_model", "d_model"), ("heads", "num_heads"), ("kv_heads", "num_heads"), ("ffn_dim", "d_ff"), ("head_dim", "d_kv"),
        ("encoder_layers", "num_layers"), ("decoder_layers", "num_decoder_layers"), ("vocab_size", "vocab_size"),
    ];

    /// <inheritdoc />
    public JsonObject WriteConfig(ModelConfig config)
    {
        CheckExpressible(config);
        var p = config.EncoderPositions;
        return new JsonObject
        {
            ["architectures"] = new JsonArray("T5ForConditionalGeneration"),
            ["model_type"] = ModelType,
            ["d_model"] = config.DModel,
            ["d_kv"] = config.HeadDim,
            ["d_ff"] = config.FfnDim,
            ["num_layers"] = config.EncoderLayers,
            ["num_decoder_layers"] = config.DecoderLayers,
            ["num_heads"] = config.Heads,
            ["relative_attention_num_buckets"] = p.RelativeBuckets,
            ["relative_attention_max_distance"] = p.RelativeMaxDistance,
            ["dropout_rate"] = ShortestDouble(config.Dropout),
            ["layer_norm_epsilon"] = ShortestDouble(config.NormEps),
            ["feed_forward_proj"] = FeedForwardName(config.Activation, config.GatedFfn),
            ["dense_act_fn"] = HfConfigFields.ActivationName(config.Activation),
            ["is_gated_act"] = config.GatedFfn,
            ["tie_word_embeddings"] = config.TieEmbeddings,
            ["is_encoder_decoder"] = true,
            ["vocab_size"] = config.VocabSize,
            ["pad_token_id"] = config.PadTokenId,
            ["eos_token_id"] = config.EosTokenId,
            ["decoder_start_token_id"] = config.DecoderStartTokenId,
        };
    }

    /// <inheritdoc />
    public IReadOnlyList<string> TensorNames(string encoreName, ModelConfig config)
    {
        // Checked here too, because saving names the tensors (and writes them) before it writes the
        // config: a model T5 cannot express must fail before any file is written.
        CheckExpressible(config);
        switch (encoreName)
        {
            // T5ForConditionalGeneration ties encoder.embed_tokens and decoder.embed_tokens to shared;
            // some exports keep only the per-stack copies.
            case LanguageModel.EmbedTokens: return ["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"];
            case LanguageModel.LmHead: return ["lm_head.weight"];
            case "encoder.relative_attention_bias.weight":
            case "decoder.relative_attention_bias.weight":
                return [$"{encoreName[..7]}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"];
            case "encoder.final_norm.weight":
            case "decoder.final_norm.weight":
                return [$"{encoreName[..7]}.final_layer_norm.weight"];
        }
        var parts = encoreName.Split('.');
        if (parts is [("encoder" or "decoder") and var stack, "layers", var index, var sub, .. var rest] && int.TryParse(index, NumberStyles.None, CultureInfo.InvariantCulture, out _))
        {
            var block = $"{stack}.block.{index}";
            bool decoder = stack == "decoder";
            int ffLayer = decoder ? 2 : 1;
            string? name = (sub, rest) switch
            {
                ("self_attn", [var proj, "weight"]) => $"{block}.layer.0.SelfAttention.{Projection(proj)}.weight",
                ("self_attn_norm", ["weight"]) => $"{block}.layer.0.layer_norm.weight",
                ("cross_attn", [var proj, "weight"]) when decoder => $"{block}.layer.1.EncDecAttention.{Projection(proj)}.weight",
                ("cross_attn_norm", ["weight"]) when decoder => $"{block}.layer.1.layer_norm.weight",
                ("mlp", [var proj, "weight"]) => $"{block}.layer.{ffLayer}.DenseReluDense.{FeedForwardProjection(proj, config.GatedFfn)}.weight",
                ("mlp_norm", ["weight"]) => $"{block}.layer.{ffLayer}.layer_norm.weight",
                _ => null,
            };
            if (name != null) return [name];
        }
        throw new ArgumentException($"t5: Encore parameter '{encoreName}' has no T5 tensor");
    }

    static string Projection(string proj) => proj switch
    {
        "q_proj" => "q",
        "k_proj" => "k",
        "v_proj" => "v",
        "o_proj" => "o",
        _ => throw new ArgumentException($"t5: unknown attention projection '{proj}'"),
    };

    // T5DenseGatedActDense: wi_0 is the gate that goes through the activation, wi_1 the linear branch.
    static string FeedForwardProjection(string proj, bool gated) => proj switch
    {
        "gate_proj" when gated => "wi_0",
        "up_proj" => gated ? "wi_1" : "wi",
        "down_proj" => "wo",
        _ => throw new ArgumentException($"t5: unknown feed-forward projection '{proj}'"),
    };

    /// <summary>
    /// configuration_t5.py: <c>feed_forward_proj</c> is "{ACT}" or "gated-{ACT}", ACT a key of
    /// transformers' ACT2FN, and "gated-gelu" means gelu_new (kept for the v1.1 checkpoints).
    /// Only the activations Encore computes are accepted.
    /// </summary>
    static (ActivationKind Activation, bool Gated) ParseFeedForward(string value, HfConfigFields f)
    {
        var parts = value.Split('-');
        if (parts.Length > 2 || (parts.Length == 2 && parts[0] != "gated"))
            throw f.Error("feed_forward_proj", $"'{value}' is not of the form '{{ACT}}' or 'gated-{{ACT}}'");
        bool gated = parts.Length == 2;
        string act = value == "gated-gelu" ? "gelu_new" : parts[^1];
        return HfConfigFields.ActivationOf(act) is { } k ? (k, gated)
            : throw f.Error("feed_forward_proj", $"activation '{act}' of '{value}' is not supported (supported: {HfConfigFields.SupportedActivations}, each optionally 'gated-')");
    }

    static string FeedForwardName(ActivationKind activation, bool gated) => (activation, gated) switch
    {
        (ActivationKind.Relu, false) => "relu",
        (ActivationKind.GeluErf, false) => "gelu",
        (ActivationKind.GeluTanh, false) => "gelu_new",
        (ActivationKind.Silu, false) => "silu",
        (ActivationKind.Relu, true) => "gated-relu",
        (ActivationKind.GeluTanh, true) => "gated-gelu",
        (ActivationKind.Silu, true) => "gated-silu",
        // "gated-gelu" is read as gelu_new, so an exact-GELU gate has no T5 name.
        _ => throw new ArgumentException($"t5: a {(gated ? "gated " : "")}{activation} feed-forward has no feed_forward_proj name"),
    };

    /// <summary>Throws when <paramref name="c"/> uses something T5's config.json cannot state.</summary>
    static void CheckExpressible(ModelConfig c)
    {
        string? problem = null;
        if (c.Family != ModelFamily.EncoderDecoder) problem = $"family {c.Family} (T5 is an encoder–decoder)";
        else if (c.Norm != NormKind.RmsNorm || c.PostNorm || !c.FinalNorm || c.EmbeddingNorm) problem = "norms other than pre-norm RMSNorm with a final norm";
        else if (c.QkvBias || c.OutputBias || c.MlpBias) problem = "biases";
        else if (c.KvHeads != c.Heads) problem = $"grouped-query attention (kv_heads {c.KvHeads} ≠ heads {c.Heads})";
        else if (c.AttentionScale != 1f) problem = $"attention scale {c.AttentionScale?.ToString(CultureInfo.InvariantCulture) ?? "1/√hd"} (T5 uses 1)";
        else if (c.EncoderPositions.Kind != PositionKind.T5Relative || c.DecoderPositions != c.EncoderPositions)
            problem = "positions other than one T5 relative-bias setting shared by both stacks";
        else if (c.TieEmbeddings != c.ScaleTiedLogits) problem = "a tied head without the d_model^-0.5 rescale (or a rescale without tying)";
        else if (c.TypeVocabSize != 0) problem = "token types";
        else if (c.Unbalanced) problem = "an encoder of other widths than the decoder (encoder_shape; T5 has one d_model)";
        if (problem != null) throw new ArgumentException($"t5: the model cannot be written as model_type t5: {problem}");
        FeedForwardName(c.Activation, c.GatedFfn);
    }

    // 1e-6f as a double is 9.99999997e-7; write the float's shortest decimal so the file reads as people write it.
    static double ShortestDouble(float value) => double.Parse(value.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
}
