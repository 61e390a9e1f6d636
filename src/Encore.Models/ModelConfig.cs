using System.Text.Json.Serialization;
using Encore.Tensors.Kernels;

namespace Encore.Models;

/// <summary>Which stacks a model has.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ModelFamily>))]
public enum ModelFamily
{
    /// <summary>Encoder and decoder with cross-attention (T5, Mu / Return of the Encoder).</summary>
    EncoderDecoder,
    /// <summary>A causal decoder only (Llama, Qwen2, GPT).</summary>
    DecoderOnly,
    /// <summary>A bidirectional encoder only (BERT, Ettin encoders).</summary>
    EncoderOnly,
}

/// <summary>How a stack encodes token positions.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PositionKind>))]
public enum PositionKind
{
    /// <summary>No positional information (NoPE; causal masking alone carries order).</summary>
    None,
    /// <summary>A learned embedding per absolute position, added to the input (BERT, GPT-2).</summary>
    Learned,
    /// <summary>Fixed sinusoids added to the input (Vaswani et al. 2017).</summary>
    Sinusoidal,
    /// <summary>T5's learned, bucketed relative-position bias, shared by the layers of a stack.</summary>
    T5Relative,
    /// <summary>ALiBi's fixed per-head linear distance penalties.</summary>
    Alibi,
    /// <summary>Rotary embeddings of queries and keys (RoFormer, Llama).</summary>
    Rope,
    /// <summary>
    /// ComRoPE-LD (arXiv 2506.03737): rotary embeddings whose rotations exp(p·λ·(P − Pᵀ)) over blocks of
    /// <see cref="PositionConfig.ComRopeBlock"/> dimensions are trained, per layer and kv head; initialized to RoPE.
    /// </summary>
    ComRope,
    /// <summary>
    /// URPE (arXiv 2205.13401): T5's relative bias inside the softmax, and the probabilities multiplied
    /// elementwise by a learned Toeplitz matrix per layer and head (initialized to ones, i.e. plain T5 relative attention).
    /// </summary>
    Urpe,
}

/// <summary>Normalization layer type.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<NormKind>))]
public enum NormKind
{
    /// <summary>RMSNorm (T5, Llama).</summary>
    RmsNorm,
    /// <summary>LayerNorm with bias (BERT, GPT-2, BART).</summary>
    LayerNorm,
    /// <summary>No normalization: every norm layer is the identity and has no parameters (the LayerNorm-free models of arXiv 2501.03489).</summary>
    None,
}

/// <summary>The positional encoding of one stack.</summary>
public sealed record PositionConfig
{
    /// <summary>The scheme. Default RoPE.</summary>
    public PositionKind Kind { get; init; } = PositionKind.Rope;
    /// <summary>RoPE θ. Default 10000.</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>NTK-aware RoPE scaling factor. Default 1 (none).</summary>
    public double RopeNtkScale { get; init; } = 1;
    /// <summary>
    /// Linear RoPE position scaling (position interpolation, Chen et al. arXiv 2306.15595; HF
    /// <c>rope_scaling {"type": "linear", "factor": s}</c>): positions are divided by s. Default 1 (none).
    /// </summary>
    public double RopeLinearScale { get; init; } = 1;
    /// <summary>
    /// RoPE positions centered on the middle of the sequence, p_i = i − (S−1)/2, as the Mu encoder
    /// does (Return of the Encoder, arXiv 2501.16273). Only for bidirectional stacks. Default false.
    /// </summary>
    public bool RopeCentered { get; init; }
    /// <summary>T5 relative-position buckets. Default 32.</summary>
    public int RelativeBuckets { get; init; } = 32;
    /// <summary>T5 distance beyond which all positions share the last bucket. Default 128.</summary>
    public int RelativeMaxDistance { get; init; } = 128;
    /// <summary>ComRoPE block size b: each head rotates in blocks of b dimensions; even, dividing head_dim, at most 16. b = 2 is RoPE with trained angles. Default 4.</summary>
    public int ComRopeBlock { get; init; } = 4;
    /// <summary>
    /// Standard deviation of the normal noise added to ComRoPE's generator P at initialization (the
    /// reference code starts from random generators); 0 starts exactly at RoPE with <see cref="RopeTheta"/>. Default 0.
    /// </summary>
    public double ComRopeInitStd { get; init; }
    /// <summary>URPE: the Toeplitz matrix has its own coefficient for distances |i − j| ≤ this; farther ones share the last. Default 128.</summary>
    public int UrpeMaxDistance { get; init; } = 128;
    /// <summary>
    /// Learned positions: position p reads row p + this of a table of <see cref="ModelConfig.MaxPositions"/> + this rows
    /// (BART and mBART keep 2 unused rows first, modeling_bart.py's BartLearnedPositionalEmbedding). Default 0.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int LearnedOffset { get; init; }
    /// <summary>
    /// Sinusoidal positions in Marian's layout (modeling_marian.py's MarianSinusoidalPositionalEmbedding): the sines of
    /// every frequency in the first ⌈D/2⌉ columns, the cosines in the rest, instead of interleaved sin/cos pairs. Default false.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool SinusoidHalves { get; init; }

    /// <summary>RoPE kernel options of this configuration.</summary>
    [JsonIgnore] public RopeOptions Rope => new() { Theta = RopeTheta, NtkScale = RopeNtkScale, LinearScale = RopeLinearScale };
}

/// <summary>
/// The widths of an encoder–decoder's encoder where they differ from the decoder's (T5Gemma's unbalanced
/// models, arXiv 2504.06225: a 9B encoder under a 2B decoder): its residual width, head layout and
/// feed-forward width. Every other option is the model's. The decoder's cross-attention reads the encoder
/// output at <see cref="DModel"/> wide (its k and v projections take that many inputs), and the encoder reads
/// its tokens from a table of its own width (<see cref="ModelConfig.EncoderEmbeddings"/>).
/// </summary>
public sealed record StackShape
{
    /// <summary>The stack's residual width D.</summary>
    public required int DModel { get; init; }
    /// <summary>The stack's query heads H.</summary>
    public required int Heads { get; init; }
    /// <summary>The stack's key/value heads Hkv.</summary>
    public required int KvHeads { get; init; }
    /// <summary>The stack's head dimension hd.</summary>
    public required int HeadDim { get; init; }
    /// <summary>The stack's feed-forward width F.</summary>
    public required int FfnDim { get; init; }

    /// <summary>The shape of the stacks of <paramref name="c"/> (its top-level widths).</summary>
    public static StackShape Of(ModelConfig c) => new() { DModel = c.DModel, Heads = c.Heads, KvHeads = c.KvHeads, HeadDim = c.HeadDim, FfnDim = c.FfnDim };
}

/// <summary>
/// One configuration for all three families, written as <c>config.json</c> with
/// <c>"model_type": "encore"</c>. Every option has one documented default; stack-specific options
/// carry an Encoder/Decoder prefix. Shapes: D = <see cref="DModel"/>, H = <see cref="Heads"/>,
/// Hkv = <see cref="KvHeads"/>, hd = <see cref="HeadDim"/>, F = <see cref="FfnDim"/>, V = <see cref="VocabSize"/>.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>Stacks present. Default encoder–decoder.</summary>
    public ModelFamily Family { get; init; } = ModelFamily.EncoderDecoder;
    /// <summary>V. Default 32128 (T5's SentencePiece vocabulary with 100 sentinels, padded).</summary>
    public int VocabSize { get; init; } = 32128;
    /// <summary>D, the residual width. Default 512.</summary>
    public int DModel { get; init; } = 512;
    /// <summary>Encoder blocks. Default 6.</summary>
    public int EncoderLayers { get; init; } = 6;
    /// <summary>Decoder blocks. Default 6.</summary>
    public int DecoderLayers { get; init; } = 6;
    /// <summary>H, query heads. Default 8.</summary>
    public int Heads { get; init; } = 8;
    /// <summary>Hkv, key/value heads: H for MHA, fewer for GQA, 1 for MQA. Default 8.</summary>
    public int KvHeads { get; init; } = 8;
    /// <summary>hd; the attention width H·hd may differ from D (Mu uses 384 with D = 1024). Default 64.</summary>
    public int HeadDim { get; init; } = 64;
    /// <summary>F, the feed-forward width. Default 2048.</summary>
    public int FfnDim { get; init; } = 2048;
    /// <summary>Feed-forward activation. Default GELU (tanh approximation).</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<ActivationKind>))]
    public ActivationKind Activation { get; init; } = ActivationKind.GeluTanh;
    /// <summary>Gated feed-forward, act(x·W_gate)⊙(x·W_up) (GeGLU, SwiGLU). Default false.</summary>
    public bool GatedFfn { get; init; }
    /// <summary>Normalization. Default RMSNorm.</summary>
    public NormKind Norm { get; init; } = NormKind.RmsNorm;
    /// <summary>Post-norm blocks (BERT, BART, Marian): normalize after each residual add instead of before each sublayer. Default false (pre-norm).</summary>
    public bool PostNorm { get; init; }
    /// <summary>ε of the norms. Default 1e-6.</summary>
    public float NormEps { get; init; } = 1e-6f;
    /// <summary>Biases on the q, k and v projections (BERT, Qwen2). Default false.</summary>
    public bool QkvBias { get; init; }
    /// <summary>Bias on the attention output projection (BERT). Default false.</summary>
    public bool OutputBias { get; init; }
    /// <summary>Biases in the feed-forward (BERT, GPT-2). Default false.</summary>
    public bool MlpBias { get; init; }
    /// <summary>LM head shares the token embedding. Default true.</summary>
    public bool TieEmbeddings { get; init; } = true;
    /// <summary>
    /// Scale the decoder output by D^−½ before a tied LM head (T5, <c>tie_word_embeddings</c> rescale). Default false.
    /// </summary>
    public bool ScaleTiedLogits { get; init; }
    /// <summary>Multiplier of q·kᵀ; null means 1/√hd. T5 uses 1 (its scaling is folded into the weights). Default null.</summary>
    public float? AttentionScale { get; init; }
    /// <summary>Positions of the encoder stack. Default RoPE with centered positions.</summary>
    public PositionConfig EncoderPositions { get; init; } = new() { RopeCentered = true };
    /// <summary>Positions of the decoder stack. Default RoPE.</summary>
    public PositionConfig DecoderPositions { get; init; } = new();
    /// <summary>Longest sequence for learned or sinusoidal positions. Default 2048.</summary>
    public int MaxPositions { get; init; } = 2048;
    /// <summary>Token-type (segment) vocabulary, BERT's 2; 0 for none. Default 0.</summary>
    public int TypeVocabSize { get; init; }
    /// <summary>
    /// Normalize the summed embeddings: BERT's <c>embed_norm</c>; in an encoder–decoder, each stack's own
    /// (<c>encoder.embed_norm</c>, <c>decoder.embed_norm</c>; BART's and mBART's layernorm_embedding). Default false.
    /// </summary>
    public bool EmbeddingNorm { get; init; }
    /// <summary>
    /// Multiply the token embeddings by √D before positions are added (BART, mBART and Marian
    /// <c>scale_embedding</c>; Vaswani et al. 2017 §3.4). Default false.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool ScaleEmbeddings { get; init; }
    /// <summary>
    /// A bias (1, V) added to the logits, parameter <c>final_logits_bias</c> (BART, mBART, Marian; transformers keeps it
    /// a fixed buffer, Encore trains it like a bias). Encoder–decoder and decoder-only models only. Default false.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool FinalLogitsBias { get; init; }
    /// <summary>
    /// An encoder-only model carries a masked-LM head (dense → activation → norm → tied projection + bias;
    /// BertForMaskedLM). False for a bare encoder (BertModel, every sentence-transformers model), which
    /// gives hidden states and embeddings only. Ignored by the other families. Default true.
    /// </summary>
    public bool MaskedLmHead { get; init; } = true;
    /// <summary>
    /// RMSNorm computes x̂·(1 + w), its weights stored as w and starting at 0 (Gemma's RMSNorm, modeling_gemma2.py
    /// Gemma2RMSNorm), for every norm of the model. Default false (x̂·w).
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool NormUnitOffset { get; init; }
    /// <summary>
    /// Sandwich norms (Gemma 2, T5Gemma): each pre-norm sublayer's output is normalized again before the residual add,
    /// x + post_norm(f(pre_norm(x))), by <c>self_attn_post_norm</c>, <c>cross_attn_post_norm</c> and <c>mlp_post_norm</c>.
    /// Pre-norm blocks only. Default false.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool SandwichNorms { get; init; }
    /// <summary>
    /// Soft cap c of the attention scores, s → c·tanh(s/c) before masks and softmax, in self- and cross-attention
    /// (Gemma 2 <c>attn_logit_softcapping</c>). Default 0: none.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public float AttentionSoftCap { get; init; }
    /// <summary>Soft cap c of the logits, z → c·tanh(z/c) (Gemma 2 <c>final_logit_softcapping</c>). Default 0: none.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public float FinalLogitSoftCap { get; init; }
    /// <summary>
    /// Sliding window W of self-attention: a position sees the W − 1 positions before it and itself (and, in a
    /// bidirectional stack, the W − 1 after it); which layers slide is <see cref="GlobalLayerEvery"/>'s. Default 0: none.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int SlidingWindow { get; init; }
    /// <summary>
    /// With a <see cref="SlidingWindow"/>: layer i of each stack attends globally when (i + 1) is a multiple of this,
    /// and through the window otherwise; Gemma 2's alternation (even layers slide, modeling_gemma2.py
    /// <c>not bool(layer_idx % 2)</c>) is 2. Default 0: every layer slides.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int GlobalLayerEvery { get; init; }
    /// <summary>
    /// An encoder–decoder's encoder reads its own token table, <c>encoder.embed_tokens.weight</c>, and the decoder and a
    /// tied head the shared one (T5Gemma: model.encoder.embed_tokens and model.decoder.embed_tokens are separate).
    /// Encoder–decoder models only. Default false.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool EncoderEmbeddings { get; init; }
    /// <summary>
    /// The encoder's widths when they differ from the decoder's (see <see cref="StackShape"/>); the top-level D, H,
    /// Hkv, hd and F are then the decoder's. A different D needs <see cref="EncoderEmbeddings"/>. Encoder–decoder
    /// models only. Default null: both stacks have the top-level widths.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public StackShape? EncoderShape { get; init; }
    /// <summary>
    /// Codebook features (arXiv 2310.17230, <see cref="CodebookConfig"/>): every block's attention and/or feed-forward output
    /// snapped to the sum of its k nearest codes of a learned codebook, in training and inference alike. Default null: none.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public CodebookConfig? Codebook { get; init; }
    /// <summary>A final norm after the last block of each stack (pre-norm models). Default true.</summary>
    public bool FinalNorm { get; init; } = true;
    /// <summary>Dropout probability in training. Default 0.</summary>
    public float Dropout { get; init; }
    /// <summary>Padding token. Default 0.</summary>
    public int PadTokenId { get; init; }
    /// <summary>End-of-sequence token. Default 1.</summary>
    public int EosTokenId { get; init; } = 1;
    /// <summary>Beginning-of-sequence token, or −1 for none. Default −1.</summary>
    public int BosTokenId { get; init; } = -1;
    /// <summary>First decoder input of an encoder–decoder (T5: the pad token). Default 0.</summary>
    public int DecoderStartTokenId { get; init; }

    /// <summary>The sliding window of layer <paramref name="layer"/> of a stack (0: the layer attends globally).</summary>
    public int WindowOfLayer(int layer) => SlidingWindow > 0 && (GlobalLayerEvery == 0 || (layer + 1) % GlobalLayerEvery != 0) ? SlidingWindow : 0;

    /// <summary>H·hd, the attention width.</summary>
    [JsonIgnore] public int AttentionDim => Heads * HeadDim;

    /// <summary>The encoder's residual width: <see cref="EncoderShape"/>'s D, else <see cref="DModel"/>.</summary>
    [JsonIgnore] public int EncoderDModel => EncoderShape?.DModel ?? DModel;

    /// <summary>Whether the encoder's widths differ from the decoder's (an <see cref="EncoderShape"/> other than the top-level widths).</summary>
    [JsonIgnore] public bool Unbalanced => EncoderShape is { } s && s != StackShape.Of(this);

    /// <summary>
    /// The configuration the encoder stack is built from: this one with <see cref="EncoderShape"/>'s widths at the
    /// top level (and no shape of its own); this one itself when there is no shape.
    /// </summary>
    public ModelConfig ForEncoder() => EncoderShape is { } s
        ? this with { DModel = s.DModel, Heads = s.Heads, KvHeads = s.KvHeads, HeadDim = s.HeadDim, FfnDim = s.FfnDim, EncoderShape = null }
        : this;

    /// <summary>Largest V accepted (published vocabularies stay under 300,000; mT5 has 250,112).</summary>
    public const int MaxVocabSize = 1 << 22;
    /// <summary>Largest D, F, H·hd and Hkv·hd accepted (t5-11b's F is 65,536).</summary>
    public const int MaxWidth = 1 << 18;
    /// <summary>Largest H accepted.</summary>
    public const int MaxHeads = 4096;
    /// <summary>Largest number of blocks in one stack.</summary>
    public const int MaxLayers = 1024;
    /// <summary>Largest <see cref="MaxPositions"/> accepted (2^24 positions).</summary>
    public const int MaxSequence = 1 << 24;
    /// <summary>Largest token-type vocabulary and number of T5 relative buckets.</summary>
    public const int MaxSmallTable = 1 << 16;
    /// <summary>
    /// Most parameters a configuration may describe, 2^36 (about 69 billion values, 275 GB in f32):
    /// far past the small models Encore is for, and low enough that products of the bounded fields
    /// cannot overflow. Whether a model fits this machine is checked when it is built (<see cref="ModelMemory"/>).
    /// </summary>
    public const long MaxParameters = 1L << 36;
    /// <summary>RoPE θ range accepted: θ ≤ 1 gives no decreasing frequencies, and published models stay within 10^4 … 10^8.</summary>
    public const double MaxRopeTheta = 1e12;

    /// <summary>Throws with a message naming the field when the configuration is inconsistent or exceeds a documented limit.</summary>
    public ModelConfig Validate()
    {
        static void InRange(long value, long min, long max, string name)
        {
            if (value < min || value > max) throw new ArgumentException($"model config: {name} must be in [{min}, {max}], got {value}");
        }
        void Shape(int d, int heads, int kvHeads, int headDim, int ffn, string prefix)
        {
            InRange(d, 1, MaxWidth, prefix + "d_model");
            InRange(heads, 1, MaxHeads, prefix + "heads");
            InRange(kvHeads, 1, MaxHeads, prefix + "kv_heads");
            InRange(headDim, 1, MaxWidth, prefix + "head_dim");
            InRange(ffn, 1, MaxWidth, prefix + "ffn_dim");
            // H·hd is computed in int everywhere (AttentionDim): bounded here, in 64-bit, before anything uses it.
            if ((long)heads * headDim > MaxWidth)
                throw new ArgumentException($"model config: {prefix}heads × {prefix}head_dim = {heads} × {headDim} = {(long)heads * headDim} exceeds {MaxWidth}");
            if (heads % kvHeads != 0) throw new ArgumentException($"model config: {prefix}heads ({heads}) must be a multiple of {prefix}kv_heads ({kvHeads})");
        }
        InRange(VocabSize, 1, MaxVocabSize, "vocab_size");
        Shape(DModel, Heads, KvHeads, HeadDim, FfnDim, "");
        if (EncoderShape is { } es)
        {
            if (Family != ModelFamily.EncoderDecoder) throw new ArgumentException("model config: encoder_shape is for encoder–decoder models");
            Shape(es.DModel, es.Heads, es.KvHeads, es.HeadDim, es.FfnDim, "encoder_shape.");
            if (es.DModel != DModel && !EncoderEmbeddings)
                throw new ArgumentException($"model config: encoder_shape.d_model {es.DModel} differs from d_model {DModel}, so the encoder needs its own token table (encoder_embeddings true)");
        }
        if (EncoderLayers < 0 || DecoderLayers < 0) throw new ArgumentException("model config: layer counts cannot be negative");
        InRange(EncoderLayers, Family == ModelFamily.DecoderOnly ? 0 : 1, MaxLayers, "encoder_layers");
        InRange(DecoderLayers, Family == ModelFamily.EncoderOnly ? 0 : 1, MaxLayers, "decoder_layers");
        InRange(MaxPositions, 1, MaxSequence, "max_positions");
        foreach (var (p, name) in new[] { (EncoderPositions, "encoder_positions"), (DecoderPositions, "decoder_positions") })
        {
            if (p is null) throw new ArgumentException($"model config: {name} is missing");
            InRange(p.LearnedOffset, 0, MaxSmallTable, name + " learned_offset");
            if (p.LearnedOffset != 0 && p.Kind != PositionKind.Learned)
                throw new ArgumentException($"model config: {name} learned_offset {p.LearnedOffset} needs learned positions, got {p.Kind}");
            if ((long)MaxPositions + p.LearnedOffset > MaxSequence)
                throw new ArgumentException($"model config: max_positions {MaxPositions} + {name} learned_offset {p.LearnedOffset} exceeds {MaxSequence}");
            if (p.SinusoidHalves && p.Kind != PositionKind.Sinusoidal)
                throw new ArgumentException($"model config: {name} sinusoid_halves needs sinusoidal positions, got {p.Kind}");
        }
        if (FinalLogitsBias && Family == ModelFamily.EncoderOnly)
            throw new ArgumentException("model config: final_logits_bias is for encoder–decoder and decoder-only models (an encoder's masked-LM head has its own bias)");
        InRange(TypeVocabSize, 0, MaxSmallTable, "type_vocab_size");
        if (Dropout is < 0 or >= 1) throw new ArgumentException($"model config: dropout {Dropout} is outside [0, 1)");
        if (!(NormEps > 0) || !float.IsFinite(NormEps)) throw new ArgumentException($"model config: norm_eps must be positive and finite, got {NormEps}");
        if (!(AttentionSoftCap >= 0 && float.IsFinite(AttentionSoftCap))) throw new ArgumentException($"model config: attention_soft_cap must be 0 (none) or positive and finite, got {AttentionSoftCap}");
        if (!(FinalLogitSoftCap >= 0 && float.IsFinite(FinalLogitSoftCap))) throw new ArgumentException($"model config: final_logit_soft_cap must be 0 (none) or positive and finite, got {FinalLogitSoftCap}");
        InRange(SlidingWindow, 0, MaxSequence, "sliding_window");
        InRange(GlobalLayerEvery, 0, MaxLayers, "global_layer_every");
        if (EncoderEmbeddings && Family != ModelFamily.EncoderDecoder) throw new ArgumentException("model config: encoder_embeddings is for encoder–decoder models");
        if (SandwichNorms && PostNorm) throw new ArgumentException("model config: sandwich_norms needs pre-norm blocks (post_norm is true)");
        if (NormUnitOffset && Norm != NormKind.RmsNorm) throw new ArgumentException("model config: norm_unit_offset is for RMSNorm");
        foreach (var (p, name) in new[] { (EncoderPositions, "encoder_positions"), (DecoderPositions, "decoder_positions") })
            if (p?.Kind == PositionKind.Urpe && (AttentionSoftCap > 0 || SlidingWindow > 0))
                throw new ArgumentException($"model config: {name} URPE does not take attention_soft_cap or sliding_window");
        if (AttentionScale is { } scale && !(float.IsFinite(scale) && scale > 0))
            throw new ArgumentException($"model config: attention_scale must be positive and finite, got {scale}");
        foreach (var (p, name, headDim) in new[] { (EncoderPositions, "encoder_positions", EncoderShape?.HeadDim ?? HeadDim), (DecoderPositions, "decoder_positions", HeadDim) })
        {
            if (p is null) throw new ArgumentException($"model config: {name} is missing");
            if (p.Kind == PositionKind.Rope && headDim % 2 != 0) throw new ArgumentException($"model config: {name} RoPE needs an even head_dim, got {headDim}");
            if (p.Kind == PositionKind.Rope && !(p.RopeTheta > 1 && p.RopeTheta <= MaxRopeTheta))
                throw new ArgumentException($"model config: {name} rope_theta must be in (1, {MaxRopeTheta:0e0}], got {p.RopeTheta}");
            if (p.Kind == PositionKind.Rope && !(p.RopeNtkScale > 0 && double.IsFinite(p.RopeNtkScale)))
                throw new ArgumentException($"model config: {name} rope_ntk_scale must be positive and finite, got {p.RopeNtkScale}");
            if (p.Kind == PositionKind.Rope && !(p.RopeLinearScale > 0 && double.IsFinite(p.RopeLinearScale)))
                throw new ArgumentException($"model config: {name} rope_linear_scale must be positive, got {p.RopeLinearScale}");
            if (p.Kind is PositionKind.ComRope)
            {
                if (p.ComRopeBlock < 2 || p.ComRopeBlock % 2 != 0 || p.ComRopeBlock > ComRope.MaxBlock || headDim % p.ComRopeBlock != 0)
                    throw new ArgumentException($"model config: {name} com_rope_block must be even, in [2, {ComRope.MaxBlock}] and divide head_dim {headDim}, got {p.ComRopeBlock}");
                if (!(p.RopeTheta > 1 && p.RopeTheta <= MaxRopeTheta))
                    throw new ArgumentException($"model config: {name} rope_theta (ComRoPE's initial angles) must be in (1, {MaxRopeTheta:0e0}], got {p.RopeTheta}");
                if (!(p.ComRopeInitStd >= 0 && p.ComRopeInitStd <= 10))
                    throw new ArgumentException($"model config: {name} com_rope_init_std must be in [0, 10], got {p.ComRopeInitStd}");
            }
            if (p.Kind == PositionKind.Urpe && (p.UrpeMaxDistance < 1 || p.UrpeMaxDistance > MaxSmallTable))
                throw new ArgumentException($"model config: {name} urpe_max_distance must be in [1, {MaxSmallTable}], got {p.UrpeMaxDistance}");
            if (p.Kind is PositionKind.T5Relative or PositionKind.Urpe && (p.RelativeBuckets < 2 || p.RelativeBuckets > MaxSmallTable || p.RelativeMaxDistance < 1))
                throw new ArgumentException($"model config: {name} needs 2 to {MaxSmallTable} relative buckets and a positive max distance, got {p.RelativeBuckets} and {p.RelativeMaxDistance}");
        }
        Codebook?.Validate();
        long parameters = ParameterCounter.Count(this);
        if (parameters > MaxParameters)
            throw new ArgumentException($"model config: {parameters:N0} parameters exceed the {MaxParameters:N0} limit ({ModelMemory.LargestTerm(this)})");
        if (DecoderPositions.RopeCentered) throw new ArgumentException("model config: centered RoPE positions are for bidirectional stacks; a causal decoder's positions must grow");
        if (PadTokenId < 0 || PadTokenId >= VocabSize) throw new ArgumentException($"model config: pad_token_id {PadTokenId} is outside the vocabulary");
        if (EosTokenId < 0 || EosTokenId >= VocabSize) throw new ArgumentException($"model config: eos_token_id {EosTokenId} is outside the vocabulary");
        if (BosTokenId < -1 || BosTokenId >= VocabSize) throw new ArgumentException($"model config: bos_token_id {BosTokenId} is outside the vocabulary (−1 for none)");
        if (DecoderStartTokenId < 0 || DecoderStartTokenId >= VocabSize) throw new ArgumentException($"model config: decoder_start_token_id {DecoderStartTokenId} is outside the vocabulary");
        return this;
    }
}
