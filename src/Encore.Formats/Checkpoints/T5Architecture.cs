// Hugging Face T5 checkpoints ("model_type": "t5"): the original T5 (Raffel et al. 2020, arXiv
// 1910.10683; t5-small … t5-11b) and T5 v1.1 / Flan-T5 (gated-GELU feed-forward, untied LM head).
// The mapping follows transformers' models/t5/configuration_t5.py (fields and defaults) and
// modeling_t5.py (tensor names and math):
// - T5Attention has no 1/√d_kv scaling (it is folded into the initialization) and no biases; the
//   attention width num_heads·d_kv may differ from d_model;
// - one relative-position bias table per stack, stored in block 0's self-attention and shared by
//   every layer of the stack (bidirectional buckets in the encoder, causal in the decoder); the
//   cross-attention carries no positions;
// - T5LayerNorm is RMSNorm without bias; pre-norm blocks and a final norm per stack;
// - with tie_word_embeddings (the default) the decoder output is scaled by d_model^−½ before the
//   tied head (T5ForConditionalGeneration.forward); otherwise a separate lm_head.
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

    /// <inheritdoc />
    public ModelConfig ReadConfig(JsonObject json, string path)
    {
        int dModel = Int(json, path, "d_model", null, MaxWidth);
        int dKv = Int(json, path, "d_kv", null, MaxWidth);
        int dFf = Int(json, path, "d_ff", null, MaxWidth);
        int layers = Int(json, path, "num_layers", null, MaxLayers);
        // configuration_t5.py: num_decoder_layers defaults to num_layers (symmetry).
        int decoderLayers = Int(json, path, "num_decoder_layers", layers, MaxLayers);
        int heads = Int(json, path, "num_heads", null, MaxHeads);
        if ((long)heads * dKv > MaxWidth) throw Error(path, "d_kv", $"num_heads·d_kv = {(long)heads * dKv} exceeds {MaxWidth}");
        int vocab = Int(json, path, "vocab_size", null, MaxVocab);
        int buckets = Int(json, path, "relative_attention_num_buckets", 32, MaxBuckets);
        // Configs written before the field existed used 128, its default.
        int maxDistance = Int(json, path, "relative_attention_max_distance", 128, int.MaxValue);
        if (buckets < 2) throw Error(path, "relative_attention_num_buckets", $"must be at least 2, got {buckets}");
        double eps = Number(json, path, "layer_norm_epsilon", 1e-6);
        if (!(eps > 0) || eps > 1) throw Error(path, "layer_norm_epsilon", $"must be in (0, 1], got {eps}");
        double dropout = Number(json, path, "dropout_rate", 0.1);
        if (dropout is < 0 or >= 1) throw Error(path, "dropout_rate", $"must be in [0, 1), got {dropout}");
        var (activation, gated) = ParseFeedForward(String(json, path, "feed_forward_proj", "relu"), path);
        // configuration_t5.py derives dense_act_fn and is_gated_act from feed_forward_proj, but
        // config.json files written by newer transformers store them too, and PretrainedConfig sets
        // stored keys after that derivation: where present, they decide.
        if (Field(json, "dense_act_fn") is not null)
        {
            var name = String(json, path, "dense_act_fn", "");
            activation = Activation(name) ?? throw Error(path, "dense_act_fn", $"activation '{name}' is not supported (supported: {SupportedActivations})");
        }
        gated = Bool(json, path, "is_gated_act", gated);
        bool tied = Bool(json, path, "tie_word_embeddings", true);
        int pad = Int(json, path, "pad_token_id", 0, vocab - 1, min: 0);
        int eos = Int(json, path, "eos_token_id", 1, vocab - 1, min: 0);
        // T5 starts decoding from the pad token; published configs state it (0) explicitly.
        int start = Int(json, path, "decoder_start_token_id", pad, vocab - 1, min: 0);

        var relative = new PositionConfig { Kind = PositionKind.T5Relative, RelativeBuckets = buckets, RelativeMaxDistance = maxDistance };
        var config = new ModelConfig
        {
            Family = ModelFamily.EncoderDecoder,
            VocabSize = vocab,
            DModel = dModel,
            EncoderLayers = layers,
            DecoderLayers = decoderLayers,
            Heads = heads,
            KvHeads = heads,
            HeadDim = dKv,
            FfnDim = dFf,
            Activation = activation,
            GatedFfn = gated,
            Norm = NormKind.RmsNorm,
            NormEps = (float)eps,
            TieEmbeddings = tied,
            ScaleTiedLogits = tied,
            AttentionScale = 1f,
            EncoderPositions = relative,
            DecoderPositions = relative,
            FinalNorm = true,
            Dropout = (float)dropout,
            PadTokenId = pad,
            EosTokenId = eos,
            BosTokenId = -1,
            DecoderStartTokenId = start,
        };
        try
        {
            return config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CheckpointFormatException($"{path}: {e.Message}", e);
        }
    }

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
            ["dense_act_fn"] = ActivationName(config.Activation),
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
    static (ActivationKind Activation, bool Gated) ParseFeedForward(string value, string path)
    {
        var parts = value.Split('-');
        if (parts.Length > 2 || (parts.Length == 2 && parts[0] != "gated"))
            throw Error(path, "feed_forward_proj", $"'{value}' is not of the form '{{ACT}}' or 'gated-{{ACT}}'");
        bool gated = parts.Length == 2;
        string act = value == "gated-gelu" ? "gelu_new" : parts[^1];
        return Activation(act) is { } k ? (k, gated)
            : throw Error(path, "feed_forward_proj", $"activation '{act}' of '{value}' is not supported (supported: {SupportedActivations}, each optionally 'gated-')");
    }

    const string SupportedActivations = "relu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu, swish";

    /// <summary>The Encore activation of a transformers ACT2FN name, or null for one Encore does not compute.</summary>
    static ActivationKind? Activation(string name) => name switch
    {
        "relu" => ActivationKind.Relu,
        "gelu" => ActivationKind.GeluErf,
        // gelu_fast is the same tanh formula written with 0.7978845608 for √(2/π).
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => ActivationKind.GeluTanh,
        "silu" or "swish" => ActivationKind.Silu,
        _ => null,
    };

    static string ActivationName(ActivationKind activation) => activation switch
    {
        ActivationKind.Relu => "relu",
        ActivationKind.GeluErf => "gelu",
        ActivationKind.GeluTanh => "gelu_new",
        ActivationKind.Silu => "silu",
        _ => throw new ArgumentException($"t5: activation {activation} has no transformers name"),
    };

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
        if (problem != null) throw new ArgumentException($"t5: the model cannot be written as model_type t5: {problem}");
        FeedForwardName(c.Activation, c.GatedFfn);
    }

    // 1e-6f as a double is 9.99999997e-7; write the float's shortest decimal so the file reads as people write it.
    static double ShortestDouble(float value) => double.Parse(value.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    static CheckpointFormatException Error(string path, string field, string problem) => new($"{path}: '{field}' {problem}");

    static JsonNode? Field(JsonObject json, string field) => json.TryGetPropertyValue(field, out var node) ? node : null;

    static int Int(JsonObject json, string path, string field, int? fallback, int max, int min = 1)
    {
        var node = Field(json, field);
        if (node is null) return fallback ?? throw Error(path, field, "is missing (a T5 config.json must state it)");
        if (node is not JsonValue v || !v.TryGetValue(out long value))
            throw Error(path, field, $"must be an integer, got {node.ToJsonString()}");
        if (value < min || value > max) throw Error(path, field, $"{value} is outside [{min}, {max}]");
        return (int)value;
    }

    static double Number(JsonObject json, string path, string field, double fallback)
    {
        var node = Field(json, field);
        if (node is null) return fallback;
        if (node is not JsonValue v || !v.TryGetValue(out double value) || !double.IsFinite(value))
            throw Error(path, field, $"must be a number, got {node.ToJsonString()}");
        return value;
    }

    static bool Bool(JsonObject json, string path, string field, bool fallback)
    {
        var node = Field(json, field);
        if (node is null) return fallback;
        return node is JsonValue v && v.TryGetValue(out bool value) ? value : throw Error(path, field, $"must be true or false, got {node.ToJsonString()}");
    }

    static string String(JsonObject json, string path, string field, string fallback)
    {
        var node = Field(json, field);
        if (node is null) return fallback;
        return node is JsonValue v && v.TryGetValue(out string? value) ? value : throw Error(path, field, $"must be a string, got {node.ToJsonString()}");
    }
}
