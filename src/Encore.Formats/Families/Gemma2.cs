// The Gemma 2 family ("model_type": "gemma2", Gemma2ForCausalLM), read top to bottom: the config.json
// mapping, then the checkpoint name map. Gemma 2 (Gemma Team 2024, arXiv 2408.00118) as transformers'
// configuration_gemma2.py / modeling_gemma2.py define it; tools/reference/gemma2_reference.py restates its
// forward in plain torch for the parity fixture.
//
// Its peculiarities, and the shared-layer options that carry them:
// - Gemma2RMSNorm computes x̂·(1 + w) in float32 with w stored (initialized 0) → NormUnitOffset;
// - four norms per layer: x + post_attention_layernorm(attn(input_layernorm(x))), then
//   x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x))) → SandwichNorms;
// - the embeddings times √hidden_size (the normalizer cast to the model dtype) → ScaleEmbeddings;
// - scores scaled by query_pre_attn_scalar^−½ → AttentionScale; head_dim independent of hidden_size;
// - attn_logit_softcapping: scores → c·tanh(scores/c) before the mask → AttentionSoftCap;
// - final_logit_softcapping on the logits → FinalLogitSoftCap;
// - sliding_window on the "sliding_attention" layers of layer_types (by default the even ones,
//   layer i slides when (i + 1) is odd) → SlidingWindow with GlobalLayerEvery = 2;
// - GeGLU feed-forward down(gelu_tanh(gate(x)) ⊙ up(x)); RoPE with rotate_half; GQA; a tied head.
//
// Correspondence with Encore's parameter names:
//   model.embed_tokens                              → embed_tokens (lm_head tied; untied: lm_head)
//   model.layers.i.input_layernorm                  → decoder.layers.i.self_attn_norm
//   model.layers.i.post_attention_layernorm         → decoder.layers.i.self_attn_post_norm
//   model.layers.i.pre_feedforward_layernorm        → decoder.layers.i.mlp_norm
//   model.layers.i.post_feedforward_layernorm       → decoder.layers.i.mlp_post_norm
//   model.layers.i.{self_attn,mlp}.*                → decoder.layers.i.{self_attn,mlp}.*
//   model.norm                                      → decoder.final_norm
//
// The file sits in Encore.Formats rather than Encore.Models because the mapping implements
// IArchitecture and fails with CheckpointFormatException (Formats types; Formats is the layer above
// Models, DESIGN.md); the model math is the shared layers', chosen by the options the mapping sets.
using System.Text.Json.Nodes;
using Encore.Models;
using Encore.Tensors.Kernels;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// <c>model_type: "gemma2"</c>. hidden_size, intermediate_size, num_hidden_layers, num_attention_heads and
/// vocab_size are required; the rest default as <c>Gemma2Config</c>: num_key_value_heads to the heads, head_dim
/// 256, hidden_activation "gelu_pytorch_tanh" (hidden_act read when it is absent), rms_norm_eps 1e-6,
/// rope_theta 10000 (or rope_parameters.rope_theta), query_pre_attn_scalar 256, attn_logit_softcapping 50,
/// final_logit_softcapping 30, sliding_window 4096 (null: caps or window off), max_position_embeddings 8192,
/// tie_word_embeddings true, attention_bias false, pad/eos/bos 0/1/2. layer_types must alternate as
/// Encore's <see cref="ModelConfig.GlobalLayerEvery"/> can express (every k-th layer full, the others
/// sliding); rope scaling and use_bidirectional_attention are rejected.
/// </summary>
public sealed class Gemma2Architecture : IArchitecture
{
    /// <inheritdoc />
    public string ModelType => "gemma2";

    /// <inheritdoc />
    public ModelConfig ReadConfig(JsonObject json, string path)
    {
        var f = new HfConfigFields(json, path);
        return f.Validated(ReadModule(f, json), FieldNames);
    }

    /// <summary>Encore's field names in Validate's messages → Gemma 2's config.json names.</summary>
    internal static readonly IReadOnlyList<(string Encore, string Hf)> FieldNames = [.. HfConfigFields.LlamaFieldNames, ("sliding_window", "sliding_window"),
        ("attention_soft_cap", "attn_logit_softcapping"), ("final_logit_soft_cap", "final_logit_softcapping")];

    /// <summary>
    /// The decoder-only configuration of a Gemma 2 config (or a T5Gemma module config, whose fields are Gemma 2's),
    /// not yet validated; errors name the field through <paramref name="f"/>'s prefix.
    /// </summary>
    internal static ModelConfig ReadModule(HfConfigFields f, JsonObject json)
    {
        int d = f.Positive("hidden_size");
        int heads = f.Positive("num_attention_heads");
        int kvHeads = f.Positive("num_key_value_heads", heads);
        if (heads % kvHeads != 0) throw f.Error("num_key_value_heads", $"{kvHeads} does not divide num_attention_heads {heads}");
        int headDim = f.Positive("head_dim", 256);
        if (headDim % 2 != 0) throw f.Error("head_dim", $"RoPE needs an even head dimension, got {headDim}");
        int layers = f.Positive("num_hidden_layers");
        int vocab = f.Positive("vocab_size");
        if (f.Node("rope_scaling") is not null) throw f.Error("rope_scaling", "is not supported for gemma2 (null only)");
        if (f.Bool("use_bidirectional_attention", false)) throw f.Error("use_bidirectional_attention", "true is not supported (Gemma 2 is causal)");
        bool bias = f.Bool("attention_bias", false);
        int window = json.ContainsKey("sliding_window") ? f.PositiveOrNull("sliding_window") ?? 0 : 4096;
        var config = new ModelConfig
        {
            Family = ModelFamily.DecoderOnly,
            VocabSize = vocab,
            DModel = d,
            EncoderLayers = 0,
            DecoderLayers = layers,
            Heads = heads,
            KvHeads = kvHeads,
            HeadDim = headDim,
            FfnDim = f.Positive("intermediate_size"),
            Activation = f.StringOrNull("hidden_activation") is not null ? f.Activation("hidden_activation", "gelu_pytorch_tanh") : f.Activation("hidden_act", "gelu_pytorch_tanh"),
            GatedFfn = true,
            Norm = NormKind.RmsNorm,
            NormEps = (float)f.PositiveDouble("rms_norm_eps", 1e-6),
            NormUnitOffset = true,
            SandwichNorms = true,
            ScaleEmbeddings = true,
            QkvBias = bias,
            OutputBias = bias,
            TieEmbeddings = f.Bool("tie_word_embeddings", true),
            AttentionScale = (float)Math.Pow(f.PositiveDouble("query_pre_attn_scalar", 256), -0.5),
            AttentionSoftCap = SoftCap(f, json, "attn_logit_softcapping", 50),
            FinalLogitSoftCap = SoftCap(f, json, "final_logit_softcapping", 30),
            SlidingWindow = window,
            GlobalLayerEvery = window == 0 ? 0 : GlobalLayerEvery(f, layers),
            EncoderPositions = new PositionConfig { Kind = PositionKind.None },
            DecoderPositions = new PositionConfig { Kind = PositionKind.Rope, RopeTheta = RopeTheta(f) },
            MaxPositions = f.Positive("max_position_embeddings", 8192),
            FinalNorm = true,
            BosTokenId = f.TokenId("bos_token_id", vocab) ?? 2,
            EosTokenId = f.TokenId("eos_token_id", vocab) ?? 1,
            PadTokenId = f.TokenId("pad_token_id", vocab) ?? 0,
        };
        return config;
    }

    // A soft cap: absent → Gemma2Config's default, null → none, else positive.
    static float SoftCap(HfConfigFields f, JsonObject json, string name, double fallback) =>
        !json.ContainsKey(name) ? (float)fallback : f.Node(name) is null ? 0 : (float)f.PositiveDouble(name);

    // rope_theta, or rope_parameters.rope_theta in the configs of newer transformers (default rope only).
    static double RopeTheta(HfConfigFields f)
    {
        if (f.Node("rope_parameters") is not JsonObject o) return f.PositiveDouble("rope_theta", 10000);
        var inner = new HfConfigFields(o, f.Path, "rope_parameters.");
        string kind = inner.StringOrNull("rope_type") ?? "default";
        if (kind != "default") throw f.Error("rope_parameters", $"rope_type '{kind}' is not supported (default only)");
        return inner.PositiveDouble("rope_theta", f.PositiveDouble("rope_theta", 10000));
    }

    // layer_types → the period k of full-attention layers (layer i full when (i + 1) % k == 0), 0 when
    // every layer slides; absent: Gemma2Config's alternation, k = 2.
    static int GlobalLayerEvery(HfConfigFields f, int layers)
    {
        if (f.Node("layer_types") is not JsonArray types) return f.Node("layer_types") is null ? 2 : throw f.Error("layer_types", "must be a list");
        if (types.Count != layers) throw f.Error("layer_types", $"has {types.Count} entries for {layers} layers");
        var full = new bool[layers];
        for (int i = 0; i < layers; i++)
            full[i] = (types[i] as JsonValue)?.TryGetValue(out string? s) == true ? s switch
            {
                "full_attention" => true,
                "sliding_attention" => false,
                _ => throw f.Error("layer_types", $"entry {i} '{s}' is neither 'sliding_attention' nor 'full_attention'"),
            } : throw f.Error("layer_types", $"entry {i} must be a string");
        if (!full.Contains(true)) return 0;
        int k = Array.IndexOf(full, true) + 1;
        for (int i = 0; i < layers; i++)
            if (full[i] != ((i + 1) % k == 0))
                throw f.Error("layer_types", $"must repeat {k - 1} sliding layer(s) then one full layer; layer {i} breaks the pattern");
        return k;
    }

    /// <inheritdoc />
    public JsonObject WriteConfig(ModelConfig config)
    {
        EnsureWritable(config);
        var json = WriteModule(config, config.DecoderLayers);
        json.Insert(0, "architectures", new JsonArray("Gemma2ForCausalLM"));
        json.Insert(1, "model_type", ModelType);
        return json;
    }

    /// <summary>The Gemma 2 fields of <paramref name="c"/> for a stack of <paramref name="layers"/> layers (a T5Gemma module config too).</summary>
    internal static JsonObject WriteModule(ModelConfig c, int layers)
    {
        float scale = c.AttentionScale!.Value;
        return new JsonObject
        {
            ["vocab_size"] = c.VocabSize,
            ["hidden_size"] = c.DModel,
            ["intermediate_size"] = c.FfnDim,
            ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = c.Heads,
            ["num_key_value_heads"] = c.KvHeads,
            ["head_dim"] = c.HeadDim,
            ["hidden_activation"] = "gelu_pytorch_tanh",
            ["hidden_act"] = "gelu_pytorch_tanh",
            ["max_position_embeddings"] = c.MaxPositions,
            ["rms_norm_eps"] = (double)c.NormEps,
            ["rope_theta"] = c.DecoderPositions.RopeTheta,
            ["attention_bias"] = c.QkvBias,
            ["query_pre_attn_scalar"] = Math.Round(1 / ((double)scale * scale), 3),
            ["attn_logit_softcapping"] = c.AttentionSoftCap > 0 ? (double)c.AttentionSoftCap : null,
            ["final_logit_softcapping"] = c.FinalLogitSoftCap > 0 ? (double)c.FinalLogitSoftCap : null,
            ["sliding_window"] = c.SlidingWindow > 0 ? c.SlidingWindow : null,
            ["layer_types"] = c.SlidingWindow > 0
                ? new JsonArray(Enumerable.Range(0, layers).Select(i => (JsonNode)(c.WindowOfLayer(i) > 0 ? "sliding_attention" : "full_attention")).ToArray())
                : null,
            ["tie_word_embeddings"] = c.TieEmbeddings,
            ["bos_token_id"] = c.BosTokenId < 0 ? null : c.BosTokenId,
            ["eos_token_id"] = c.EosTokenId,
            ["pad_token_id"] = c.PadTokenId,
            ["torch_dtype"] = "float32",
        };
    }

    // What Gemma2ForCausalLM computes; anything else would save under names that load as another model.
    void EnsureWritable(ModelConfig c)
    {
        if (c.Family != ModelFamily.DecoderOnly) throw Unwritable(ModelType, $"it is a {c.Family} model");
        EnsureGemmaBlocks(c, ModelType);
    }

    /// <summary>Throws unless <paramref name="c"/>'s blocks, embeddings and head are Gemma 2's (see the file header).</summary>
    internal static void EnsureGemmaBlocks(ModelConfig c, string modelType)
    {
        var p = c.DecoderPositions;
        ArgumentException Fail(string why) => Unwritable(modelType, why);
        if (c.Norm != NormKind.RmsNorm || !c.NormUnitOffset || !c.SandwichNorms || c.PostNorm || !c.FinalNorm || c.EmbeddingNorm)
            throw Fail("it needs unit-offset RMSNorm sandwich blocks with a final norm and no embedding norm");
        if (!c.GatedFfn || c.Activation != ActivationKind.GeluTanh || c.MlpBias) throw Fail("its feed-forward is a GeGLU (gelu_pytorch_tanh) without biases");
        if (c.QkvBias != c.OutputBias) throw Fail("attention_bias covers q, k, v and o together");
        if (p.Kind != PositionKind.Rope || p.RopeNtkScale != 1 || p.RopeLinearScale != 1 || p.RopeCentered) throw Fail("its positions are plain RoPE");
        if (!c.ScaleEmbeddings || c.AttentionScale is null || c.TypeVocabSize != 0 || c.ScaleTiedLogits || c.FinalLogitsBias)
            throw Fail("it scales the embeddings by √hidden_size and the scores by query_pre_attn_scalar^−½, with no token types or logit bias");
    }

    static ArgumentException Unwritable(string modelType, string why) => new($"this model cannot be written as model_type '{modelType}': {why}");

    /// <summary>The name of a block's parameter below <c>layers.{i}.</c> in Gemma 2's (and T5Gemma's, <paramref name="t5"/>) checkpoints, or null.</summary>
    internal static string? BlockTensor(string rest, bool t5) => rest switch
    {
        "self_attn_norm.weight" => t5 ? "pre_self_attn_layernorm.weight" : "input_layernorm.weight",
        "self_attn_post_norm.weight" => t5 ? "post_self_attn_layernorm.weight" : "post_attention_layernorm.weight",
        "cross_attn_norm.weight" when t5 => "pre_cross_attn_layernorm.weight",
        "cross_attn_post_norm.weight" when t5 => "post_cross_attn_layernorm.weight",
        "mlp_norm.weight" => "pre_feedforward_layernorm.weight",
        "mlp_post_norm.weight" => "post_feedforward_layernorm.weight",
        _ when rest.StartsWith("self_attn.", StringComparison.Ordinal) || rest.StartsWith("mlp.", StringComparison.Ordinal)
            || (t5 && rest.StartsWith("cross_attn.", StringComparison.Ordinal)) => rest,
        _ => null,
    };

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
        var parts = encoreName.Split('.', 4);
        if (parts.Length == 4 && parts[0] == "decoder" && parts[1] == "layers" && BlockTensor(parts[3], t5: false) is string name)
            return [$"model.layers.{parts[2]}.{name}"];
        throw new ArgumentException($"model_type '{ModelType}' has no tensor for Encore parameter '{encoreName}'");
    }
}
