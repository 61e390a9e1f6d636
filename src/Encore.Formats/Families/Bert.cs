// The BERT family ("model_type": "bert"), read top to bottom: the config.json mapping and the
// checkpoint name map (transformers' configuration_bert.py / modeling_bert.py; fixtures from
// tools/reference/bert_reference.py). It has no Encore preset of its own. A
// post-norm bidirectional encoder with learned absolute positions, token types, an embedding
// LayerNorm, biases everywhere and the BertLMPredictionHead, mapped onto Encore's EncoderOnlyModel.
//
// Post-norm correspondence with Encore's Block (x = norm(x + f(x)) per sublayer):
//   BertSelfOutput: LayerNorm(dense(ctx) + input)   → self_attn.o_proj, then self_attn_norm
//   BertOutput:     LayerNorm(dense(h) + attn_out)  → mlp.down_proj, then mlp_norm
//   BertEmbeddings.LayerNorm                        → embed_norm
//   cls.predictions.transform.{dense,LayerNorm}     → mlm_head.{dense,norm}; decoder tied to word embeddings
//   (absent in a bare BertModel: the encoder then loads without a head, ModelConfig.MaskedLmHead false)
//
// The file sits in Encore.Formats rather than Encore.Models because the mapping implements
// IArchitecture and fails with CheckpointFormatException (Formats types; Formats is the layer above
// Models, DESIGN.md); the model math is the shared layers', chosen by the options the mapping sets.
using System.Text.Json.Nodes;
using Encore.Models;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// <c>model_type: "bert"</c>. vocab_size, hidden_size, num_hidden_layers, num_attention_heads and
/// intermediate_size are required; hidden_act defaults to "gelu" (erf), max_position_embeddings to 512,
/// type_vocab_size to 2, layer_norm_eps to 1e-12, hidden_dropout_prob to 0.1 (training only),
/// tie_word_embeddings to true, pad_token_id to 0. Only absolute positions are supported.
/// <para>
/// Tensors are read under <c>bert.</c> (BertForMaskedLM, BertForPreTraining) or without it (a BertModel
/// saved alone); the pooler and next-sentence head are not used. A checkpoint with <c>cls.predictions.*</c>
/// loads with the masked-LM head; one with none of those tensors (a BertModel, every sentence-transformers
/// BERT) loads as a bare encoder (<see cref="ModelConfig.MaskedLmHead"/> false), for hidden states and
/// embeddings; one with part of the head fails naming the tensor it lacks, rather than loading a random head.
/// </para>
/// </summary>
public sealed class BertArchitecture : IArchitecture
{
    /// <inheritdoc />
    public string ModelType => "bert";

    /// <inheritdoc />
    public ModelConfig ReadConfig(JsonObject json, string path)
    {
        var f = new HfConfigFields(json, path);
        int d = f.Positive("hidden_size");
        int heads = f.Positive("num_attention_heads");
        if (d % heads != 0) throw f.Error("num_attention_heads", $"{heads} does not divide hidden_size {d}");
        string positions = f.StringOrNull("position_embedding_type") ?? "absolute";
        if (positions != "absolute")
            throw f.Error("position_embedding_type", $"'{positions}' is not supported (supported: absolute)");
        if (f.Bool("is_decoder", false) || f.Bool("add_cross_attention", false))
            throw f.Error("is_decoder", "a BERT decoder is not supported; Encore reads BERT as a bidirectional encoder");
        int vocab = f.Positive("vocab_size");
        var config = new ModelConfig
        {
            Family = ModelFamily.EncoderOnly,
            VocabSize = vocab,
            DModel = d,
            EncoderLayers = f.Positive("num_hidden_layers"),
            DecoderLayers = 0,
            Heads = heads,
            KvHeads = heads,
            HeadDim = d / heads,
            FfnDim = f.Positive("intermediate_size"),
            Activation = f.Activation("hidden_act", "gelu"),
            GatedFfn = false,
            Norm = NormKind.LayerNorm,
            PostNorm = true,
            NormEps = (float)f.PositiveDouble("layer_norm_eps", 1e-12),
            QkvBias = true,
            OutputBias = true,
            MlpBias = true,
            TieEmbeddings = f.Bool("tie_word_embeddings", true),
            EncoderPositions = new PositionConfig { Kind = PositionKind.Learned },
            DecoderPositions = new PositionConfig { Kind = PositionKind.None },
            MaxPositions = f.Positive("max_position_embeddings", 512),
            TypeVocabSize = f.IntOrNull("type_vocab_size") is int t ? (t >= 0 ? t : throw f.Error("type_vocab_size", $"must not be negative, got {t}")) : 2,
            EmbeddingNorm = true,
            FinalNorm = false,
            Dropout = (float)f.Probability("hidden_dropout_prob", 0.1),
            PadTokenId = f.TokenId("pad_token_id", vocab) ?? 0,
            EosTokenId = f.TokenId("eos_token_id", vocab) ?? new ModelConfig().EosTokenId,
            BosTokenId = f.TokenId("bos_token_id", vocab) ?? -1,
        };
        return f.Validated(config, HfConfigFields.LlamaFieldNames);
    }

    /// <inheritdoc />
    public JsonObject WriteConfig(ModelConfig c)
    {
        EnsureWritable(c);
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray(c.MaskedLmHead ? "BertForMaskedLM" : "BertModel"),
            ["model_type"] = ModelType,
            ["vocab_size"] = c.VocabSize,
            ["hidden_size"] = c.DModel,
            ["num_hidden_layers"] = c.EncoderLayers,
            ["num_attention_heads"] = c.Heads,
            ["intermediate_size"] = c.FfnDim,
            ["hidden_act"] = HfConfigFields.ActivationName(c.Activation),
            ["hidden_dropout_prob"] = (double)c.Dropout,
            ["attention_probs_dropout_prob"] = (double)c.Dropout,
            ["max_position_embeddings"] = c.MaxPositions,
            ["type_vocab_size"] = c.TypeVocabSize,
            ["layer_norm_eps"] = (double)c.NormEps,
            ["position_embedding_type"] = "absolute",
            ["tie_word_embeddings"] = c.TieEmbeddings,
            ["pad_token_id"] = c.PadTokenId,
            ["eos_token_id"] = c.EosTokenId,
            ["bos_token_id"] = c.BosTokenId < 0 ? null : c.BosTokenId,
            ["torch_dtype"] = "float32",
        };
        return json;
    }

    /// <inheritdoc />
    public IReadOnlyList<string> TensorNames(string encoreName, ModelConfig config)
    {
        EnsureWritable(config);
        switch (encoreName)
        {
            case LanguageModel.EmbedTokens: return Encoder("embeddings.word_embeddings.weight");
            case "encoder.embed_positions.weight": return Encoder("embeddings.position_embeddings.weight");
            case EncoderOnlyModel.TokenTypes: return Encoder("embeddings.token_type_embeddings.weight");
            case "embed_norm.weight": return Encoder("embeddings.LayerNorm.weight");
            case "embed_norm.bias": return Encoder("embeddings.LayerNorm.bias");
            case "mlm_head.dense.weight": return ["cls.predictions.transform.dense.weight"];
            case "mlm_head.dense.bias": return ["cls.predictions.transform.dense.bias"];
            case "mlm_head.norm.weight": return ["cls.predictions.transform.LayerNorm.weight"];
            case "mlm_head.norm.bias": return ["cls.predictions.transform.LayerNorm.bias"];
            // BertLMPredictionHead ties decoder.bias to this bias; older files store only the decoder's copy.
            case EncoderOnlyModel.MlmBias: return ["cls.predictions.bias", "cls.predictions.decoder.bias"];
            case LanguageModel.LmHead: return ["cls.predictions.decoder.weight"];
        }
        // encoder.layers.{i}.{sublayer}.{weight|bias} → bert.encoder.layer.{i}.{HF module}.{weight|bias}
        var parts = encoreName.Split('.');
        if (parts.Length == 6 && parts[0] == "encoder" && parts[1] == "layers" && parts[5] is "weight" or "bias")
        {
            string module = (parts[3] + "." + parts[4]) switch
            {
                "self_attn.q_proj" => "attention.self.query",
                "self_attn.k_proj" => "attention.self.key",
                "self_attn.v_proj" => "attention.self.value",
                "self_attn.o_proj" => "attention.output.dense",
                "mlp.up_proj" => "intermediate.dense",
                "mlp.down_proj" => "output.dense",
                _ => "",
            };
            if (module.Length > 0) return Encoder($"encoder.layer.{parts[2]}.{module}.{parts[5]}");
        }
        if (parts.Length == 5 && parts[0] == "encoder" && parts[1] == "layers" && parts[4] is "weight" or "bias")
        {
            string? module = parts[3] switch
            {
                "self_attn_norm" => "attention.output.LayerNorm",
                "mlp_norm" => "output.LayerNorm",
                _ => null,
            };
            if (module != null) return Encoder($"encoder.layer.{parts[2]}.{module}.{parts[4]}");
        }
        throw new ArgumentException($"model_type 'bert' has no tensor for Encore parameter '{encoreName}'");
    }

    // What BertForMaskedLM computes; anything else would save under names that load as another model.
    static void EnsureWritable(ModelConfig c)
    {
        static ArgumentException Unwritable(string why) => new($"this model cannot be written as model_type 'bert': {why}");
        if (c.Family != ModelFamily.EncoderOnly) throw Unwritable($"it is a {c.Family} model");
        if (c.Norm != NormKind.LayerNorm || !c.PostNorm || !c.EmbeddingNorm)
            throw Unwritable("it needs post-norm LayerNorm blocks and an embedding LayerNorm");
        if (c.GatedFfn || !c.QkvBias || !c.OutputBias || !c.MlpBias)
            throw Unwritable("its feed-forward is ungated and every projection has a bias");
        if (c.KvHeads != c.Heads || c.HeadDim * c.Heads != c.DModel)
            throw Unwritable("it has one key/value head per head and head_dim = hidden_size / heads");
        if (c.EncoderPositions.Kind != PositionKind.Learned) throw Unwritable("its positions are learned absolute embeddings");
        if (c.ScaleTiedLogits || (c.AttentionScale is float s && s != 1 / MathF.Sqrt(c.HeadDim)))
            throw Unwritable("scores are scaled by 1/√head_dim and tied logits are not rescaled");
    }

    // The encoder's tensors: under "bert." in the task models (written first), bare in a saved BertModel.
    static string[] Encoder(string name) => ["bert." + name, name];
}
