// The BART family ("model_type": "bart", and "mbart" below; Marian.cs derives from it), read top to
// bottom: the config.json mapping, then the checkpoint name map. BART (Lewis et al. 2019, arXiv
// 1910.13461) and mBART (Liu et al. 2020, arXiv 2001.08210) as transformers' configuration_bart.py /
// modeling_bart.py and configuration_mbart.py / modeling_mbart.py define them;
// tools/reference/bart_reference.py restates their forward in plain torch for the parity fixtures.
//
// Their peculiarities, and the shared-layer options that carry them:
// - BartScaledWordEmbedding: embed_tokens(ids) · √d_model with scale_embedding → ScaleEmbeddings;
// - BartLearnedPositionalEmbedding: a table of max_position_embeddings + 2 rows read at position + 2
//   (fairseq kept the first two rows for padding) → PositionKind.Learned with LearnedOffset = 2;
// - layernorm_embedding after token + position embeddings, one per stack → EmbeddingNorm;
// - BART's layers are post-norm (x = LN(x + f(x)) for self-attention, cross-attention and fc1/fc2);
//   mBART's are pre-norm with a final layer_norm per stack → PostNorm / FinalNorm;
// - biases on every linear, LayerNorm with transformers' nn.LayerNorm ε = 1e-5, q scaled by hd^−½;
// - lm_head tied to model.shared, plus a final_logits_bias (1, V) buffer → FinalLogitsBias;
// - generation starts from decoder_start_token_id (BART: 2, </s>).
//
// Correspondence with Encore's parameter names (per stack; encoder layers lack the cross-attention):
//   model.shared                                    → embed_tokens (model.{encoder,decoder}.embed_tokens are tied copies)
//   model.{stack}.embed_positions                   → {stack}.embed_positions
//   model.{stack}.layernorm_embedding               → {stack}.embed_norm
//   model.{stack}.layers.i.self_attn.{q,k,v,out}_proj → {stack}.layers.i.self_attn.{q,k,v,o}_proj
//   model.{stack}.layers.i.self_attn_layer_norm     → {stack}.layers.i.self_attn_norm
//   model.decoder.layers.i.encoder_attn(_layer_norm) → decoder.layers.i.cross_attn(_norm)
//   model.{stack}.layers.i.{fc1,fc2}                → {stack}.layers.i.mlp.{up,down}_proj
//   model.{stack}.layers.i.final_layer_norm         → {stack}.layers.i.mlp_norm
//   model.{stack}.layer_norm (mBART)                → {stack}.final_norm
//   final_logits_bias, lm_head (untied only)        → final_logits_bias, lm_head
//
// The file sits in Encore.Formats rather than Encore.Models because the mapping implements
// IArchitecture and fails with CheckpointFormatException (Formats types; Formats is the layer above
// Models, DESIGN.md); the model math is the shared layers', chosen by the options the mapping sets.
using System.Globalization;
using System.Text.Json.Nodes;
using Encore.Models;
using Encore.Tensors.Kernels;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// <c>model_type: "bart"</c> (BartForConditionalGeneration). d_model, encoder_layers, decoder_layers,
/// encoder_attention_heads, decoder_attention_heads, encoder_ffn_dim, decoder_ffn_dim and vocab_size are
/// required; the two stacks must agree on heads and FFN width (Encore's stacks share them).
/// activation_function defaults to "gelu" (erf), max_position_embeddings to 1024, scale_embedding to false,
/// dropout to 0.1 (training only), tie_word_embeddings to true, pad/bos/eos to 1/0/2 and
/// decoder_start_token_id to 2. The legacy fields of configs written by old transformers
/// (normalize_before, add_final_layer_norm, static_position_embeddings, …) are ignored, as transformers does.
/// </summary>
public class BartArchitecture : IArchitecture
{
    // Bounds on config values, so a damaged config.json fails before the model allocates.
    const int MaxWidth = ModelConfig.MaxWidth;
    const int MaxLayers = ModelConfig.MaxLayers;

    /// <summary>The unused rows before position 0 of BART's learned position tables.</summary>
    public const int PositionOffset = 2;

    /// <summary>transformers' nn.LayerNorm default ε, which BART, mBART and Marian do not configure.</summary>
    public const float LayerNormEps = 1e-5f;

    /// <inheritdoc />
    public virtual string ModelType => "bart";

    /// <summary>The <c>architectures</c> entry written to config.json.</summary>
    protected virtual string HfClassName => "BartForConditionalGeneration";

    /// <summary>Pre-norm blocks with a final layer_norm per stack (mBART) instead of post-norm blocks (BART, Marian).</summary>
    protected virtual bool PreNorm => false;

    /// <summary>Default pad, bos and eos ids of the type's configuration class (BartConfig: 1, 0, 2).</summary>
    protected virtual (int Pad, int Bos, int Eos) DefaultSpecialTokens => (1, 0, 2);

    /// <summary>The decoder start id when config.json does not state it (BartConfig: 2, its eos).</summary>
    protected virtual int DefaultDecoderStart(int pad, int bos, int eos) => 2;

    /// <summary>The positions of both stacks: learned, with BART's offset of 2.</summary>
    protected virtual PositionConfig Positions => new() { Kind = PositionKind.Learned, LearnedOffset = PositionOffset };

    /// <summary>A layernorm_embedding in each stack (BART, mBART; not Marian).</summary>
    protected virtual bool EmbeddingNorm => true;

    /// <inheritdoc />
    public ModelConfig ReadConfig(JsonObject json, string path)
    {
        var f = new HfConfigFields(json, path);
        int d = f.Int("d_model", null, 1, MaxWidth);
        int heads = f.Int("encoder_attention_heads", null, 1, ModelConfig.MaxHeads);
        if (d % heads != 0) throw f.Error("encoder_attention_heads", $"{heads} does not divide d_model {d}");
        int decoderHeads = f.Int("decoder_attention_heads", null, 1, ModelConfig.MaxHeads);
        if (decoderHeads != heads)
            throw f.Error("decoder_attention_heads", $"{decoderHeads} differs from encoder_attention_heads {heads} (Encore's encoder and decoder share one head count)");
        int ffn = f.Int("encoder_ffn_dim", null, 1, MaxWidth);
        int decoderFfn = f.Int("decoder_ffn_dim", null, 1, MaxWidth);
        if (decoderFfn != ffn)
            throw f.Error("decoder_ffn_dim", $"{decoderFfn} differs from encoder_ffn_dim {ffn} (Encore's encoder and decoder share one feed-forward width)");
        int vocab = f.Int("vocab_size", null, 1, ModelConfig.MaxVocabSize);
        CheckVocabulary(f, vocab);
        // The learned table holds max_position_embeddings + 2 rows; position p reads row p + 2.
        int maxPositions = f.Int("max_position_embeddings", 1024, 1, ModelConfig.MaxSequence - PositionOffset);
        var (defaultPad, defaultBos, defaultEos) = DefaultSpecialTokens;
        int pad = f.Int("pad_token_id", defaultPad, 0, vocab - 1);
        // A type without a bos token (Marian: −1) has none unless config.json states one.
        int bos = defaultBos < 0 && f.Node("bos_token_id") is null ? -1 : f.Int("bos_token_id", defaultBos, 0, vocab - 1);
        int eos = f.Int("eos_token_id", defaultEos, 0, vocab - 1);
        int start = f.Int("decoder_start_token_id", DefaultDecoderStart(pad, bos, eos), 0, vocab - 1);
        bool tied = f.Bool("tie_word_embeddings", true);
        var positions = Positions;
        var config = new ModelConfig
        {
            Family = ModelFamily.EncoderDecoder,
            VocabSize = vocab,
            DModel = d,
            EncoderLayers = f.Int("encoder_layers", null, 1, MaxLayers),
            DecoderLayers = f.Int("decoder_layers", null, 1, MaxLayers),
            Heads = heads,
            KvHeads = heads,
            HeadDim = d / heads,
            FfnDim = ffn,
            Activation = f.Activation("activation_function", "gelu"),
            GatedFfn = false,
            Norm = NormKind.LayerNorm,
            PostNorm = !PreNorm,
            FinalNorm = PreNorm,
            NormEps = LayerNormEps,
            QkvBias = true,
            OutputBias = true,
            MlpBias = true,
            TieEmbeddings = tied,
            ScaleTiedLogits = false,
            ScaleEmbeddings = f.Bool("scale_embedding", false),
            FinalLogitsBias = true,
            EmbeddingNorm = EmbeddingNorm,
            EncoderPositions = positions,
            DecoderPositions = positions,
            MaxPositions = maxPositions,
            Dropout = (float)f.Probability("dropout", 0.1),
            PadTokenId = pad,
            EosTokenId = eos,
            BosTokenId = bos,
            DecoderStartTokenId = start,
        };
        return f.Validated(config, FieldNames);
    }

    /// <summary>Checks fields about the vocabulary beyond vocab_size (Marian's separate decoder vocabulary).</summary>
    protected virtual void CheckVocabulary(HfConfigFields f, int vocab)
    {
    }

    // Encore's field names in ModelConfig.Validate's messages and this family's config.json names.
    static readonly (string Encore, string Hf)[] FieldNames =
    [
        ("d_model", "d_model"), ("heads", "encoder_attention_heads"), ("kv_heads", "encoder_attention_heads"),
        ("ffn_dim", "encoder_ffn_dim"), ("encoder_layers", "encoder_layers"), ("decoder_layers", "decoder_layers"),
        ("max_positions", "max_position_embeddings"), ("vocab_size", "vocab_size"),
    ];

    /// <inheritdoc />
    public JsonObject WriteConfig(ModelConfig c)
    {
        CheckExpressible(c);
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray(HfClassName),
            ["model_type"] = ModelType,
            ["vocab_size"] = c.VocabSize,
            ["d_model"] = c.DModel,
            ["encoder_layers"] = c.EncoderLayers,
            ["decoder_layers"] = c.DecoderLayers,
            ["encoder_attention_heads"] = c.Heads,
            ["decoder_attention_heads"] = c.Heads,
            ["encoder_ffn_dim"] = c.FfnDim,
            ["decoder_ffn_dim"] = c.FfnDim,
            ["activation_function"] = HfConfigFields.ActivationName(c.Activation),
            ["max_position_embeddings"] = c.MaxPositions,
            ["scale_embedding"] = c.ScaleEmbeddings,
            ["dropout"] = ShortestDouble(c.Dropout),
            ["attention_dropout"] = 0.0,
            ["activation_dropout"] = 0.0,
            ["tie_word_embeddings"] = c.TieEmbeddings,
            ["is_encoder_decoder"] = true,
            ["pad_token_id"] = c.PadTokenId,
            ["bos_token_id"] = c.BosTokenId < 0 ? null : c.BosTokenId,
            ["eos_token_id"] = c.EosTokenId,
            ["decoder_start_token_id"] = c.DecoderStartTokenId,
        };
        AddConfigFields(json, c);
        return json;
    }

    /// <summary>Adds the type's own fields to a written config.json.</summary>
    protected virtual void AddConfigFields(JsonObject json, ModelConfig c)
    {
    }

    /// <inheritdoc />
    public IReadOnlyList<string> TensorNames(string encoreName, ModelConfig config)
    {
        // Checked here too: saving names the tensors (and writes them) before it writes the config.
        CheckExpressible(config);
        switch (encoreName)
        {
            // The per-stack embed_tokens are tied to model.shared; some exports keep only those copies.
            case LanguageModel.EmbedTokens: return ["model.shared.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"];
            case LanguageModel.LmHead: return ["lm_head.weight"];
            case LanguageModel.LogitsBias: return ["final_logits_bias"];
            case "encoder.embed_positions.weight":
            case "decoder.embed_positions.weight":
                return [$"model.{encoreName}"];
            case "encoder.embed_norm.weight":
            case "encoder.embed_norm.bias":
            case "decoder.embed_norm.weight":
            case "decoder.embed_norm.bias":
                return [$"model.{encoreName[..7]}.layernorm_embedding.{encoreName[(encoreName.LastIndexOf('.') + 1)..]}"];
            case "encoder.final_norm.weight":
            case "encoder.final_norm.bias":
            case "decoder.final_norm.weight":
            case "decoder.final_norm.bias":
                return [$"model.{encoreName[..7]}.layer_norm.{encoreName[(encoreName.LastIndexOf('.') + 1)..]}"];
        }
        var parts = encoreName.Split('.');
        if (parts is [("encoder" or "decoder") and var stack, "layers", var index, var sub, .. var rest]
            && int.TryParse(index, NumberStyles.None, CultureInfo.InvariantCulture, out _) && rest is [.., "weight" or "bias"])
        {
            var layer = $"model.{stack}.layers.{index}";
            bool decoder = stack == "decoder";
            string? name = (sub, rest) switch
            {
                ("self_attn", [var proj, var kind]) when Projection(proj) is { } p => $"{layer}.self_attn.{p}.{kind}",
                ("self_attn_norm", [var kind]) => $"{layer}.self_attn_layer_norm.{kind}",
                ("cross_attn", [var proj, var kind]) when decoder && Projection(proj) is { } p => $"{layer}.encoder_attn.{p}.{kind}",
                ("cross_attn_norm", [var kind]) when decoder => $"{layer}.encoder_attn_layer_norm.{kind}",
                ("mlp", ["up_proj", var kind]) => $"{layer}.fc1.{kind}",
                ("mlp", ["down_proj", var kind]) => $"{layer}.fc2.{kind}",
                ("mlp_norm", [var kind]) => $"{layer}.final_layer_norm.{kind}",
                _ => null,
            };
            if (name != null) return [name];
        }
        throw new ArgumentException($"{ModelType}: Encore parameter '{encoreName}' has no {ModelType} tensor");
    }

    static string? Projection(string proj) => proj switch
    {
        "q_proj" or "k_proj" or "v_proj" => proj,
        "o_proj" => "out_proj",
        _ => null,
    };

    /// <summary>
    /// Throws when <paramref name="c"/> uses something this model type cannot state: saving a model under
    /// names that would load back as another model is refused before any file is written.
    /// </summary>
    protected void CheckExpressible(ModelConfig c)
    {
        string? problem =
            c.Family != ModelFamily.EncoderDecoder ? $"family {c.Family} ({ModelType} is an encoder–decoder)"
            : c.Norm != NormKind.LayerNorm || c.NormEps != LayerNormEps ? $"norms other than LayerNorm with ε = 1e-5"
            : c.PostNorm == PreNorm || (PreNorm && !c.FinalNorm) ? (PreNorm ? "blocks other than pre-norm with a final layer_norm per stack" : "blocks other than post-norm")
            : c.EmbeddingNorm != EmbeddingNorm ? (EmbeddingNorm ? "no layernorm_embedding" : "an embedding norm")
            : !c.QkvBias || !c.OutputBias || !c.MlpBias ? "linears without biases"
            : c.GatedFfn ? "a gated feed-forward"
            : c.KvHeads != c.Heads || c.HeadDim * c.Heads != c.DModel ? "attention other than multi-head with head_dim = d_model / heads"
            : c.AttentionScale is float s && s != 1 / MathF.Sqrt(c.HeadDim) ? "attention scaled other than by 1/√head_dim"
            : c.EncoderPositions != Positions || c.DecoderPositions != Positions ? $"positions other than {Describe(Positions)} in both stacks"
            : c.ScaleTiedLogits ? "a rescaled tied head"
            : !c.FinalLogitsBias ? "no final_logits_bias"
            : c.TypeVocabSize != 0 ? "token types"
            : c.Unbalanced ? "an encoder of other widths than the decoder (encoder_shape)"
            : null;
        if (problem != null) throw new ArgumentException($"{ModelType}: the model cannot be written as model_type {ModelType}: {problem}");
        HfConfigFields.ActivationName(c.Activation);
    }

    static string Describe(PositionConfig p) => p.Kind == PositionKind.Learned
        ? $"learned positions with offset {p.LearnedOffset}"
        : p.SinusoidHalves ? "Marian's sinusoidal positions" : p.Kind.ToString();

    // 0.1f as a double is 0.10000000149; write the float's shortest decimal so the file reads as people write it.
    static double ShortestDouble(float value) => double.Parse(value.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
}

/// <summary>
/// <c>model_type: "mbart"</c> (MBartForConditionalGeneration): BART with pre-norm blocks and a final
/// layer_norm after each stack. Fields and defaults as BART's, except that decoder_start_token_id, when
/// config.json does not state it, is bos_token_id (0), as <c>generate</c> falls back.
/// </summary>
public sealed class MBartArchitecture : BartArchitecture
{
    /// <inheritdoc />
    public override string ModelType => "mbart";

    /// <inheritdoc />
    protected override string HfClassName => "MBartForConditionalGeneration";

    /// <inheritdoc />
    protected override bool PreNorm => true;

    /// <inheritdoc />
    protected override int DefaultDecoderStart(int pad, int bos, int eos) => bos >= 0 ? bos : eos;
}
