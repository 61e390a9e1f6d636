// The Llama family ("model_type": "llama", and "qwen2" below), read top to bottom: the preset, the
// config.json mapping, the checkpoint name map. transformers' configuration_llama.py /
// modeling_llama.py: a pre-norm causal decoder with RMSNorm, half-split RoPE on q and k
// (rotate_half), grouped-query attention, a SwiGLU feed-forward down(act(gate(x)) ⊙ up(x)) and a
// final norm, on Encore's DecoderOnlyModel; tools/reference/llama_reference.py writes the parity
// fixtures. Qwen2 is the same model with biases on q, k and v (the Biases hooks).
//
// The file sits in Encore.Formats rather than Encore.Models because the mapping implements
// IArchitecture and fails with CheckpointFormatException (Formats types; Formats is the layer above
// Models, DESIGN.md); the model math is the shared layers', chosen by the options the mapping sets.
using System.Text.Json.Nodes;
using Encore.Models;
using Encore.Tensors.Kernels;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// <c>model_type: "llama"</c>. config.json fields and their defaults follow <c>LlamaConfig</c>: hidden_size,
/// intermediate_size, num_hidden_layers, num_attention_heads and vocab_size are required;
/// num_key_value_heads defaults to the heads, head_dim to hidden_size / heads, hidden_act to "silu",
/// rms_norm_eps to 1e-6, rope_theta to 10000, tie_word_embeddings, attention_bias and mlp_bias to false.
/// rope_scaling may be null, "default" or "linear" (positions divided by its factor); the other kinds
/// (dynamic, yarn, llama3, longrope) are rejected. A list of eos ids keeps the first; a null
/// pad_token_id reads as the eos id, as <c>generate</c> pads.
/// </summary>
public class LlamaArchitecture : IArchitecture
{
    /// <inheritdoc />
    public virtual string ModelType => "llama";

    /// <summary>The <c>architectures</c> entry written to config.json.</summary>
    protected virtual string HfClassName => "LlamaForCausalLM";

    /// <summary>LlamaConfig's max_position_embeddings default.</summary>
    protected virtual int DefaultMaxPositions => 2048;

    /// <summary>
    /// A Llama of the given size (llama-330m: 1024, 20, 16, 2816, 32128): MHA with hd = D / H, SwiGLU,
    /// RMSNorm ε 1e-5, RoPE θ 10000, an untied head, bos 1, eos 2, pad 0, up to 4096 positions.
    /// </summary>
    public static ModelConfig Preset(int dModel, int layers, int heads, int ffn, int vocab) => new()
    {
        Family = ModelFamily.DecoderOnly,
        VocabSize = vocab,
        DModel = dModel,
        EncoderLayers = 0,
        DecoderLayers = layers,
        Heads = heads,
        KvHeads = heads,
        HeadDim = dModel / heads,
        FfnDim = ffn,
        Activation = ActivationKind.Silu,
        GatedFfn = true,
        Norm = NormKind.RmsNorm,
        NormEps = 1e-5f,
        TieEmbeddings = false,
        EncoderPositions = new PositionConfig { Kind = PositionKind.None },
        DecoderPositions = new PositionConfig { Kind = PositionKind.Rope, RopeTheta = 10000 },
        MaxPositions = 4096,
        BosTokenId = 1,
        EosTokenId = 2,
        PadTokenId = 0,
    };

    /// <inheritdoc />
    public ModelConfig ReadConfig(JsonObject json, string path)
    {
        var f = new HfConfigFields(json, path);
        int d = f.Positive("hidden_size");
        int heads = f.Positive("num_attention_heads");
        int headDim = f.PositiveOrNull("head_dim") ?? (d % heads == 0 ? d / heads
            : throw f.Error("num_attention_heads", $"{heads} does not divide hidden_size {d}, and there is no head_dim"));
        int kvHeads = f.Positive("num_key_value_heads", heads);
        if (heads % kvHeads != 0)
            throw f.Error("num_key_value_heads", $"{kvHeads} does not divide num_attention_heads {heads}");
        if (headDim % 2 != 0) throw f.Error("head_dim", $"RoPE needs an even head dimension, got {headDim}");
        var (qkvBias, outputBias, mlpBias) = ReadBiases(f);
        int vocab = f.Positive("vocab_size");
        int eos = f.TokenId("eos_token_id", vocab) ?? 2;
        var config = new ModelConfig
        {
            Family = ModelFamily.DecoderOnly,
            VocabSize = vocab,
            DModel = d,
            EncoderLayers = 0,
            DecoderLayers = f.Positive("num_hidden_layers"),
            Heads = heads,
            KvHeads = kvHeads,
            HeadDim = headDim,
            FfnDim = f.Positive("intermediate_size"),
            // LlamaMLP: down_proj(act_fn(gate_proj(x)) * up_proj(x)), the activation on the gate.
            Activation = f.Activation("hidden_act", "silu"),
            GatedFfn = true,
            Norm = NormKind.RmsNorm,
            NormEps = (float)f.PositiveDouble("rms_norm_eps", 1e-6),
            QkvBias = qkvBias,
            OutputBias = outputBias,
            MlpBias = mlpBias,
            TieEmbeddings = f.Bool("tie_word_embeddings", false),
            EncoderPositions = new PositionConfig { Kind = PositionKind.None },
            DecoderPositions = new PositionConfig
            {
                Kind = PositionKind.Rope,
                RopeTheta = f.PositiveDouble("rope_theta", 10000),
                RopeLinearScale = RopeLinearScale(f),
            },
            MaxPositions = f.Positive("max_position_embeddings", DefaultMaxPositions),
            FinalNorm = true,
            BosTokenId = f.TokenId("bos_token_id", vocab) ?? DefaultBos,
            EosTokenId = eos,
            PadTokenId = f.TokenId("pad_token_id", vocab) ?? eos,
        };
        return f.Validated(config, HfConfigFields.LlamaFieldNames);
    }

    /// <summary>LlamaConfig's bos_token_id default (1); −1 when the type has none.</summary>
    protected virtual int DefaultBos => 1;

    /// <summary>
    /// Biases of (q/k/v, o, mlp). Llama: <c>attention_bias</c> puts biases on all four attention
    /// projections (LlamaAttention), <c>mlp_bias</c> on the three feed-forward ones (LlamaMLP).
    /// </summary>
    protected virtual (bool Qkv, bool Output, bool Mlp) ReadBiases(HfConfigFields f)
    {
        bool attention = f.Bool("attention_bias", false);
        return (attention, attention, f.Bool("mlp_bias", false));
    }

    /// <summary>Writes the biases back as this type's fields; throws when the type cannot express them.</summary>
    protected virtual void WriteBiases(ModelConfig c, JsonObject json)
    {
        if (c.QkvBias != c.OutputBias)
            throw Unwritable(c, "llama's attention_bias covers q, k, v and o together, so QkvBias and OutputBias must be equal");
        json["attention_bias"] = c.QkvBias;
        json["mlp_bias"] = c.MlpBias;
    }

    /// <summary>Fields specific to the type written after the common ones.</summary>
    protected virtual void WriteExtra(ModelConfig c, JsonObject json) { }

    // Rotary scaling of LlamaConfig.rope_scaling (modeling_rope_utils.py): "linear" divides positions by
    // the factor; the length-adaptive kinds change frequencies per band or per length, which Encore's
    // RoPE cache does not model, so they fail rather than load with different numerics.
    static double RopeLinearScale(HfConfigFields f)
    {
        var node = f.Node("rope_scaling");
        if (node is null) return 1;
        if (node is not JsonObject o) throw f.Error("rope_scaling", "must be null or an object");
        var inner = new HfConfigFields(o, f.Path, "rope_scaling.");
        string kind = inner.StringOrNull("rope_type") ?? inner.StringOrNull("type")
            ?? throw f.Error("rope_scaling", "has neither 'rope_type' nor 'type'");
        return kind switch
        {
            "default" => 1,
            "linear" => inner.PositiveDouble("factor"),
            _ => throw f.Error("rope_scaling", $"type '{kind}' is not supported (supported: linear, default)"),
        };
    }

    /// <inheritdoc />
    public JsonObject WriteConfig(ModelConfig config)
    {
        EnsureWritable(config);
        var c = config;
        var p = c.DecoderPositions;
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray(HfClassName),
            ["model_type"] = ModelType,
            ["vocab_size"] = c.VocabSize,
            ["hidden_size"] = c.DModel,
            ["intermediate_size"] = c.FfnDim,
            ["num_hidden_layers"] = c.DecoderLayers,
            ["num_attention_heads"] = c.Heads,
            ["num_key_value_heads"] = c.KvHeads,
            ["head_dim"] = c.HeadDim,
            ["hidden_act"] = HfConfigFields.ActivationName(c.Activation),
            ["max_position_embeddings"] = c.MaxPositions,
            ["rms_norm_eps"] = (double)c.NormEps,
            ["rope_theta"] = p.RopeTheta,
            ["rope_scaling"] = p.RopeLinearScale == 1 ? null : new JsonObject { ["type"] = "linear", ["factor"] = p.RopeLinearScale },
            ["tie_word_embeddings"] = c.TieEmbeddings,
            ["bos_token_id"] = c.BosTokenId < 0 ? null : c.BosTokenId,
            ["eos_token_id"] = c.EosTokenId,
            ["pad_token_id"] = c.PadTokenId,
            ["torch_dtype"] = "float32",
        };
        WriteBiases(c, json);
        WriteExtra(c, json);
        return json;
    }

    // What LlamaForCausalLM / Qwen2ForCausalLM compute; anything else would save under names that load as another model.
    void EnsureWritable(ModelConfig c)
    {
        var p = c.DecoderPositions;
        if (c.Family != ModelFamily.DecoderOnly) throw Unwritable(c, $"it is a {c.Family} model");
        if (c.Norm != NormKind.RmsNorm || c.PostNorm || !c.FinalNorm || c.EmbeddingNorm)
            throw Unwritable(c, "it needs pre-norm RMSNorm blocks with a final norm and no embedding norm");
        if (!c.GatedFfn) throw Unwritable(c, "its feed-forward is gated (gate_proj, up_proj, down_proj)");
        if (p.Kind != PositionKind.Rope || p.RopeNtkScale != 1 || p.RopeCentered)
            throw Unwritable(c, "its positions are plain or linearly scaled RoPE");
        if (c.TypeVocabSize != 0 || c.ScaleTiedLogits || (c.AttentionScale is float s && s != 1 / MathF.Sqrt(c.HeadDim)))
            throw Unwritable(c, "it has no token types, no tied-logit scaling and scores scaled by 1/√head_dim");
    }

    /// <summary>The error for a configuration this type cannot express.</summary>
    protected ArgumentException Unwritable(ModelConfig c, string why) =>
        new($"this model cannot be written as model_type '{ModelType}': {why}");

    /// <inheritdoc />
    public IReadOnlyList<string> TensorNames(string encoreName, ModelConfig config)
    {
        EnsureWritable(config);
        switch (encoreName)
        {
            case LanguageModel.EmbedTokens: return ["model.embed_tokens.weight"];
            case LanguageModel.LmHead: return ["lm_head.weight"];
            case "decoder.final_norm.weight": return ["model.norm.weight"];
        }
        // decoder.layers.{i}.{sublayer}.{rest} → model.layers.{i}.{HF sublayer}.{rest}
        var parts = encoreName.Split('.', 4);
        if (parts.Length == 4 && parts[0] == "decoder" && parts[1] == "layers")
        {
            string layer = $"model.layers.{parts[2]}.";
            switch (parts[3])
            {
                case "self_attn_norm.weight": return [layer + "input_layernorm.weight"];
                case "mlp_norm.weight": return [layer + "post_attention_layernorm.weight"];
            }
            if (parts[3].StartsWith("self_attn.", StringComparison.Ordinal) || parts[3].StartsWith("mlp.", StringComparison.Ordinal))
                return [layer + parts[3]];
        }
        throw new ArgumentException($"model_type '{ModelType}' has no tensor for Encore parameter '{encoreName}'");
    }
}

// ---- Qwen2 ----
// Hugging Face "qwen2" checkpoints (transformers' configuration_qwen2.py / modeling_qwen2.py): the
// Llama decoder (same tensor names, RMSNorm, half-split RoPE, GQA, SwiGLU) with biases on the q, k
// and v projections only (Qwen2Attention: q/k/v_proj bias=True, o_proj bias=False).

/// <summary>
/// <c>model_type: "qwen2"</c>. Fields as <see cref="LlamaArchitecture"/> with <c>Qwen2Config</c>'s defaults
/// (max_position_embeddings 32768, no bos default); biases are fixed by the type (q, k, v yes; o and
/// the feed-forward no). <c>use_sliding_window: true</c> is rejected: Encore attends to every cached position.
/// </summary>
public sealed class Qwen2Architecture : LlamaArchitecture
{
    /// <inheritdoc />
    public override string ModelType => "qwen2";

    /// <inheritdoc />
    protected override string HfClassName => "Qwen2ForCausalLM";

    /// <inheritdoc />
    protected override int DefaultMaxPositions => 32768;

    /// <inheritdoc />
    protected override int DefaultBos => -1;

    /// <inheritdoc />
    protected override (bool Qkv, bool Output, bool Mlp) ReadBiases(HfConfigFields f)
    {
        // Sliding-window layers (Qwen2Attention with use_sliding_window) would see fewer keys than Encore gives them.
        if (f.Bool("use_sliding_window", false)) throw f.Error("use_sliding_window", "true is not supported (Encore attends to the whole context)");
        return (true, false, false);
    }

    /// <inheritdoc />
    protected override void WriteBiases(ModelConfig c, JsonObject json)
    {
        if (!c.QkvBias || c.OutputBias || c.MlpBias)
            throw Unwritable(c, "qwen2 has biases on q, k and v and nowhere else");
    }

    /// <inheritdoc />
    protected override void WriteExtra(ModelConfig c, JsonObject json)
    {
        json["use_sliding_window"] = false;
        json["sliding_window"] = c.MaxPositions;
        json["max_window_layers"] = c.DecoderLayers;
    }
}
