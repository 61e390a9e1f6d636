// The Marian family ("model_type": "marian"): the Helsinki-NLP opus-mt translation models (Junczys-Dowmunt
// et al. 2018, Marian NMT; Tiedemann & Thottingal 2020, OPUS-MT) as transformers' configuration_marian.py /
// modeling_marian.py define MarianMTModel. It is BART's post-norm encoder–decoder (Bart.cs) with three
// differences, each carried by a shared-layer option:
// - MarianSinusoidalPositionalEmbedding: fixed sinusoids of max_position_embeddings rows, not interleaved
//   but the sines of every frequency first and the cosines second, read at position p with no offset →
//   PositionKind.Sinusoidal with SinusoidHalves. The table is computed, never read: published checkpoints
//   may store model.{encoder,decoder}.embed_positions.weight, and those tensors are ignored;
// - no layernorm_embedding;
// - generation starts from the pad token (decoder_start_token_id = pad_token_id, 58100 in opus-mt-en-de),
//   whose embedding the converted checkpoints keep at zero; opus-mt configs use "swish" (SiLU) and scale_embedding.
// tools/reference/bart_reference.py writes the parity fixture. The tokenizer pair (source.spm, target.spm
// and the shared vocab.json) is read by Tokenization/MarianTokenizer.cs.
using System.Text.Json.Nodes;
using Encore.Models;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// <c>model_type: "marian"</c> (MarianMTModel). Fields as BART's (<see cref="BartArchitecture"/>), with
/// MarianConfig's defaults: pad 58100, eos 0, no bos, decoder_start_token_id = pad_token_id. A separate
/// decoder vocabulary (<c>share_encoder_decoder_embeddings</c> false, or a <c>decoder_vocab_size</c> other
/// than vocab_size) is refused: Encore's stacks share one embedding.
/// </summary>
public sealed class MarianArchitecture : BartArchitecture
{
    /// <inheritdoc />
    public override string ModelType => "marian";

    /// <inheritdoc />
    protected override string HfClassName => "MarianMTModel";

    /// <inheritdoc />
    protected override (int Pad, int Bos, int Eos) DefaultSpecialTokens => (58100, -1, 0);

    /// <inheritdoc />
    protected override int DefaultDecoderStart(int pad, int bos, int eos) => pad;

    /// <inheritdoc />
    protected override PositionConfig Positions => new() { Kind = PositionKind.Sinusoidal, SinusoidHalves = true };

    /// <inheritdoc />
    protected override bool EmbeddingNorm => false;

    /// <inheritdoc />
    protected override void CheckVocabulary(HfConfigFields f, int vocab)
    {
        if (!f.Bool("share_encoder_decoder_embeddings", true))
            throw f.Error("share_encoder_decoder_embeddings", "is false: separate source and target embeddings are not supported (Encore's stacks share one)");
        if (f.IntOrNull("decoder_vocab_size") is int dv && dv != vocab)
            throw f.Error("decoder_vocab_size", $"{dv} differs from vocab_size {vocab}: a separate decoder vocabulary is not supported");
    }

    /// <inheritdoc />
    protected override void AddConfigFields(JsonObject json, ModelConfig c)
    {
        json["decoder_vocab_size"] = c.VocabSize;
        json["share_encoder_decoder_embeddings"] = true;
    }
}
