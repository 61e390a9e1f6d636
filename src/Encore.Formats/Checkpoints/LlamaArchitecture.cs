// Hugging Face "llama" checkpoints (transformers' configuration_llama.py / modeling_llama.py):
// a pre-norm causal decoder with RMSNorm, half-split RoPE on q and k (rotate_half), grouped-query
// attention, a SwiGLU feed-forward down(act(gate(x)) ⊙ up(x)) and a final norm, mapped onto
// Encore's DecoderOnlyModel. Qwen2 (Qwen2Architecture) is the same model with q/k/v biases.
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
        return f.Validated(config);
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

/// <summary>
/// Reads Hugging Face config.json fields with errors that name the file and the field: required
/// fields fail when absent, optional ones take the documented default when absent or null.
/// </summary>
public readonly struct HfConfigFields
{
    readonly JsonObject _json;
    readonly string _prefix;

    /// <summary>Fields of <paramref name="json"/>, read from <paramref name="path"/>; <paramref name="prefix"/> qualifies nested field names.</summary>
    public HfConfigFields(JsonObject json, string path, string prefix = "")
    {
        _json = json;
        Path = path;
        _prefix = prefix;
    }

    /// <summary>The file the fields come from.</summary>
    public string Path { get; }

    /// <summary>An error about field <paramref name="name"/>.</summary>
    public CheckpointFormatException Error(string name, string problem) => new($"{Path}: field '{_prefix}{name}' {problem}");

    /// <summary>The raw node of <paramref name="name"/>; null when absent or JSON null.</summary>
    public JsonNode? Node(string name) => _json.TryGetPropertyValue(name, out var n) ? n : null;

    /// <summary>A required positive integer.</summary>
    public int Positive(string name) => PositiveOrNull(name) ?? throw Error(name, "is required");

    /// <summary>A positive integer, <paramref name="fallback"/> when absent or null.</summary>
    public int Positive(string name, int fallback) => PositiveOrNull(name) ?? fallback;

    /// <summary>A positive integer or null when absent.</summary>
    public int? PositiveOrNull(string name)
    {
        var v = IntOrNull(name);
        if (v is < 1) throw Error(name, $"must be positive, got {v}");
        return v;
    }

    /// <summary>An integer (written as 32 or 32.0) or null when absent.</summary>
    public int? IntOrNull(string name)
    {
        var n = Node(name);
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue(out double x) && x == Math.Floor(x) && Math.Abs(x) <= int.MaxValue) return (int)x;
        throw Error(name, $"must be an integer, got {n.ToJsonString()}");
    }

    /// <summary>A token id below <paramref name="vocab"/>: an integer, the first of a list of integers, or null when absent.</summary>
    public int? TokenId(string name, int vocab)
    {
        var id = TokenId(name);
        if (id >= vocab) throw Error(name, $"{id} is outside the vocabulary (vocab_size {vocab})");
        return id;
    }

    int? TokenId(string name)
    {
        var n = Node(name);
        if (n is JsonArray a)
        {
            if (a.Count == 0) return null;
            if (a[0] is JsonValue v && v.TryGetValue(out double x) && x == Math.Floor(x) && x is >= 0 and <= int.MaxValue) return (int)x;
            throw Error(name, $"must hold integer ids, got {n.ToJsonString()}");
        }
        var id = IntOrNull(name);
        if (id is < 0) throw Error(name, $"must not be negative, got {id}");
        return id;
    }

    /// <summary>A required positive finite number.</summary>
    public double PositiveDouble(string name) => PositiveDoubleOrNull(name) ?? throw Error(name, "is required");

    /// <summary>A positive finite number, <paramref name="fallback"/> when absent or null.</summary>
    public double PositiveDouble(string name, double fallback) => PositiveDoubleOrNull(name) ?? fallback;

    double? PositiveDoubleOrNull(string name)
    {
        var n = Node(name);
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue(out double x))
            return x > 0 && double.IsFinite(x) ? x : throw Error(name, $"must be positive, got {x}");
        throw Error(name, $"must be a number, got {n.ToJsonString()}");
    }

    /// <summary>A number in [0, 1), <paramref name="fallback"/> when absent or null.</summary>
    public double Probability(string name, double fallback)
    {
        var n = Node(name);
        if (n is null) return fallback;
        if (n is JsonValue v && v.TryGetValue(out double x))
            return x is >= 0 and < 1 ? x : throw Error(name, $"must be in [0, 1), got {x}");
        throw Error(name, $"must be a number, got {n.ToJsonString()}");
    }

    /// <summary>A boolean, <paramref name="fallback"/> when absent or null.</summary>
    public bool Bool(string name, bool fallback)
    {
        var n = Node(name);
        if (n is null) return fallback;
        if (n is JsonValue v && v.TryGetValue(out bool b)) return b;
        throw Error(name, $"must be true or false, got {n.ToJsonString()}");
    }

    /// <summary>A string or null when absent.</summary>
    public string? StringOrNull(string name)
    {
        var n = Node(name);
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue(out string? s)) return s;
        throw Error(name, $"must be a string, got {n.ToJsonString()}");
    }

    /// <summary>
    /// An activation by transformers' ACT2FN name: "gelu" (exact erf), "gelu_new" / "gelu_pytorch_tanh" /
    /// "gelu_fast" (tanh approximation, the same formula), "silu" / "swish", "relu".
    /// </summary>
    public ActivationKind Activation(string name, string fallback)
    {
        string act = StringOrNull(name) ?? fallback;
        return act switch
        {
            "gelu" => ActivationKind.GeluErf,
            "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => ActivationKind.GeluTanh,
            "silu" or "swish" => ActivationKind.Silu,
            "relu" => ActivationKind.Relu,
            _ => throw Error(name, $"'{act}' is not a supported activation (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu, swish, relu)"),
        };
    }

    /// <summary>The ACT2FN name written for <paramref name="kind"/>.</summary>
    public static string ActivationName(ActivationKind kind) => kind switch
    {
        ActivationKind.GeluErf => "gelu",
        ActivationKind.GeluTanh => "gelu_new",
        ActivationKind.Silu => "silu",
        ActivationKind.Relu => "relu",
        _ => throw new ArgumentException($"activation {kind} has no transformers name"),
    };

    // Encore's field names in ModelConfig.Validate's messages and the transformers names they come from.
    static readonly (string Encore, string Hf)[] s_fieldNames =
    [
        ("d_model", "hidden_size"), ("kv_heads", "num_key_value_heads"), ("heads", "num_attention_heads"),
        ("ffn_dim", "intermediate_size"), ("encoder_layers", "num_hidden_layers"), ("decoder_layers", "num_hidden_layers"),
        ("max_positions", "max_position_embeddings"), ("vocab_size", "vocab_size"), ("head_dim", "head_dim"),
        ("type_vocab_size", "type_vocab_size"), ("rope_theta", "rope_theta"),
    ];

    /// <summary>Runs <see cref="ModelConfig.Validate"/>, turning its errors into format errors naming the file and the config.json field.</summary>
    public ModelConfig Validated(ModelConfig config)
    {
        try
        {
            return config.Validate();
        }
        catch (ArgumentException e)
        {
            var field = s_fieldNames.FirstOrDefault(f => e.Message.Contains(f.Encore + " ", StringComparison.Ordinal));
            string named = field.Hf is null ? "" : $" (field '{_prefix}{field.Hf}')";
            throw new CheckpointFormatException($"{Path}: {e.Message}{named}", e);
        }
    }
}
