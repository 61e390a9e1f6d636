// The three families on one set of layers. Token embeddings are shared by every stack and, when
// tied, by the LM head (T5, Mu). Inputs are row-major id arrays (B·L) with their batch size; padded
// batches pass their valid lengths (right padding).
using Encore.Autograd;

namespace Encore.Models;

/// <summary>Common parts of every family: configuration, parameters, embeddings and LM head.</summary>
public abstract class LanguageModel : IDisposable
{
    /// <summary>Token embedding parameter name.</summary>
    public const string EmbedTokens = "embed_tokens.weight";
    /// <summary>Untied LM head parameter name.</summary>
    public const string LmHead = "lm_head.weight";
    /// <summary>Parameter name of the logits bias (1, V) of <see cref="ModelConfig.FinalLogitsBias"/> (BART's <c>final_logits_bias</c>).</summary>
    public const string LogitsBias = "final_logits_bias";

    private protected LanguageModel(ModelConfig config, ParameterSet parameters)
    {
        Config = config.Validate();
        ModelMemory.EnsureFits(Config);
        Parameters = parameters;
        // Rows start at unit RMS when a tied head rescales by D^-0.5 (T5's initializer, factor 1.0),
        // else at norm 1; both give logits of unit scale at initialization.
        float std = config.TieEmbeddings && config.ScaleTiedLogits ? 1f : 1.0f / MathF.Sqrt(config.DModel);
        Parameters.Create(EmbedTokens, [config.VocabSize, config.DModel], ParameterSet.Init.Normal, std);
    }

    /// <summary>The configuration.</summary>
    public ModelConfig Config { get; }

    /// <summary>All parameters by checkpoint name.</summary>
    public ParameterSet Parameters { get; }

    /// <summary>The model's transformer stacks (encoder first).</summary>
    public abstract IReadOnlyList<TransformerStack> Stacks { get; }

    /// <summary>
    /// Activation checkpointing per block while a tape records (training): each block's forward runs
    /// unrecorded and again in the backward pass (<see cref="Ops.Checkpoint"/>), so only the blocks'
    /// inputs stay alive between forward and backward. About one more forward pass per step.
    /// </summary>
    public bool CheckpointActivations
    {
        get => Stacks.Any(s => s.CheckpointActivations);
        set { foreach (var stack in Stacks) stack.CheckpointActivations = value; }
    }

    /// <summary>
    /// Collects every attention layer's entropy (self-attention of each stack and cross-attention) in the forward passes
    /// that run without a cache, while set; null (the default) records nothing. Not with activation checkpointing, whose
    /// recomputed blocks would record again.
    /// </summary>
    public AttentionEntropyProbe? AttentionEntropy
    {
        get => Stacks.Count == 0 ? null : Stacks[0].EntropyProbe;
        set { foreach (var stack in Stacks) stack.EntropyProbe = value; }
    }

    /// <summary>
    /// Collects which codes every codebook (<see cref="ModelConfig.Codebook"/>) chooses in the forward passes, cached or not,
    /// while set; null (the default) records nothing. Not with activation checkpointing, whose recomputed blocks would record again.
    /// </summary>
    public CodebookProbe? Codebooks
    {
        get => Stacks.Count == 0 ? null : Stacks[0].CodebookProbe;
        set { foreach (var stack in Stacks) stack.CodebookProbe = value; }
    }

    /// <summary>The low-rank adapters applied to this model's linear layers (none until one is made active or selected).</summary>
    public LoraAdapters Adapters => Parameters.Lora ??= new LoraAdapters(Parameters);

    /// <summary>Creates the LM head parameter when embeddings are not tied (call after the stacks, so names stay in file order).</summary>
    private protected void CreateHead()
    {
        if (!Config.TieEmbeddings) Parameters.Create(LmHead, [Config.VocabSize, Config.DModel], ParameterSet.Init.Normal);
        // (1, V) as transformers stores it; an F32 table, so converting the weight matrices leaves it alone.
        if (Config.FinalLogitsBias) Parameters.CreateF32Table(LogitsBias, [1, Config.VocabSize], ParameterSet.Init.Zeros).Decay = false;
    }

    /// <summary>Embeds ids (B·L) → (B, L, D) through <paramref name="table"/> (default: the shared token embeddings).</summary>
    private protected Var Embed(int[] ids, int batch, int length, string table = EmbedTokens)
    {
        if (ids.Length != batch * length) throw new ArgumentException($"{ids.Length} ids do not fill a batch of {batch}×{length}");
        return ScaleEmbedding(Ops.Embedding(Var.Of(Parameters[table]), ids, batch, length));
    }

    // BART / Marian scale_embedding: embed_tokens(ids) * sqrt(d_model) (modeling_bart.py BartScaledWordEmbedding); each
    // stack by its own width (T5Gemma's encoder and decoder each by √ of their hidden_size).
    Var ScaleEmbedding(Var x) => Config.ScaleEmbeddings ? Ops.Scale(x, MathF.Sqrt(x.Shape[^1])) : x;

    /// <summary>Embeds mixtures of tokens (B·L positions) → (B, L, D); see <see cref="TokenMixture"/>.</summary>
    private protected Var Embed(TokenMixture inputs, int batch, int length)
    {
        if (inputs.Positions != batch * length) throw new ArgumentException($"{inputs.Positions} mixed positions do not fill a batch of {batch}×{length}");
        return ScaleEmbedding(Ops.EmbeddingMix(Var.Of(Parameters[EmbedTokens]), inputs.Ids, inputs.Weights, batch, length, inputs.PerPosition));
    }

    /// <summary>
    /// One step of a batch cache through <paramref name="decoder"/>: logits (b, 1, V) for one next token
    /// per active row (b = ActiveRows), each at its row's own position; or, with one active row, logits
    /// (1, t, V) after each of t tokens fed at once (causal among them).
    /// </summary>
    private protected Var DecodeStep(TransformerStack decoder, int[] tokens, DecoderCache cache, bool cross)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        int b = BatchStepRows(cache, cross, tokens.Length, "tokens");
        return Logits(decoder.Forward(Embed(tokens, b, tokens.Length / b), null, null, null, cache, 0));
    }

    /// <summary>As <see cref="DecodeStep(TransformerStack, int[], DecoderCache, bool)"/> with mixtures of token embeddings as inputs.</summary>
    private protected Var DecodeStep(TransformerStack decoder, TokenMixture inputs, DecoderCache cache, bool cross)
    {
        int b = BatchStepRows(cache, cross, inputs.Positions, "mixed positions");
        return Logits(decoder.Forward(Embed(inputs, b, inputs.Positions / b), null, null, null, cache, 0));
    }

    // The active rows of a batch-cache step of `count` inputs, after checking the cache is this model's.
    static int BatchStepRows(DecoderCache cache, bool cross, int count, string what)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (cache.RowLengths is null || (cache.Cross is null) == cross)
            throw new ArgumentException("DecodeStep needs a batch cache of this model (CreateBatchCache)");
        int b = cache.ActiveRows;
        if (b == 0 || count % b != 0) throw new ArgumentException($"{count} {what} do not split over {b} active rows");
        return b;
    }

    /// <summary>Hidden states (…, D) → logits (…, V) through the tied or separate head.</summary>
    public Var Logits(Var hidden)
    {
        Var logits;                                                                                  // (…, V)
        if (!Config.TieEmbeddings) logits = Ops.Linear(hidden, Var.Of(Parameters[LmHead]));
        else
        {
            // T5 rescales before the tied head (modeling_t5: sequence_output * model_dim**-0.5).
            var h = Config.ScaleTiedLogits ? Ops.Scale(hidden, 1f / MathF.Sqrt(Config.DModel)) : hidden;
            logits = Ops.Linear(h, Var.Of(Parameters[EmbedTokens]));
        }
        // BartForConditionalGeneration: lm_logits = lm_head(outputs[0]) + final_logits_bias.
        if (Config.FinalLogitsBias) logits = Ops.AddBias(logits, Ops.Reshape(Var.Of(Parameters[LogitsBias]), Config.VocabSize));
        // Gemma2ForCausalLM: logits = tanh(logits / final_logit_softcapping) * final_logit_softcapping.
        return Config.FinalLogitSoftCap > 0 ? Ops.SoftCap(logits, Config.FinalLogitSoftCap) : logits;
    }

    /// <summary>
    /// Converts the weight matrices to <paramref name="dtype"/> (inference only; see <see cref="ParameterSet.MayStayCompact"/>).
    /// For a block-quantized dtype, matrices whose rows are not whole blocks keep their dtype. Q4_0 then takes the
    /// layout this machine's kernels read fastest (<see cref="UseKernelLayouts"/>).
    /// </summary>
    public void ConvertWeights(Encore.Tensors.DType dtype)
    {
        foreach (var p in Parameters.All.ToArray())
            if (Parameters.MayStayCompact(p.Name) && p.Value.DType != dtype && p.Value.Shape[^1] % Encore.Tensors.DTypes.BlockSize(dtype) == 0
                && !(dtype == Encore.Tensors.DType.Q4_0 && p.Value.DType == Encore.Tensors.DType.Q4_0R8))   // already Q4_0, regrouped
                Parameters.Assign(p.Name, p.Value.To(dtype));
        UseKernelLayouts();
    }

    /// <summary>
    /// Regroups Q4_0 weight matrices whose rows are whole groups of 256 as <see cref="Encore.Tensors.DType.Q4_0R8"/> where
    /// this machine's GEMV decodes that layout faster (<see cref="Encore.Tensors.Kernels.Gemv.RegroupsQ4()"/>), and puts
    /// Q4_0R8 back into Q4_0 where it does not. A move of bytes, not a quantization: the values stay the same. Loaders for
    /// inference call it; a Q4_0 checkpoint then costs one pass over its 4-bit matrices at load instead of mapping them.
    /// </summary>
    public void UseKernelLayouts()
    {
        bool regroup = Encore.Tensors.Kernels.Gemv.RegroupsQ4();
        foreach (var p in Parameters.All.ToArray())
        {
            var t = p.Value;
            if (regroup && t.DType == Encore.Tensors.DType.Q4_0 && Parameters.MayStayCompact(p.Name) && t.Shape[^1] % Encore.Tensors.DTypes.Q4R8GroupSize == 0)
                Parameters.Assign(p.Name, t.To(Encore.Tensors.DType.Q4_0R8));
            else if (!regroup && t.DType == Encore.Tensors.DType.Q4_0R8)
                Parameters.Assign(p.Name, t.To(Encore.Tensors.DType.Q4_0));
        }
    }

    /// <summary>Number of parameter values (tied weights counted once).</summary>
    public long ParameterCount => Parameters.Count;

    /// <summary>Frees the parameters.</summary>
    public void Dispose()
    {
        Parameters.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Builds the model family of <paramref name="config"/>.</summary>
    public static LanguageModel Create(ModelConfig config, ulong seed = 0) => Create(config, new ParameterSet(seed));

    /// <summary>
    /// A model whose parameters are allocated but not yet initialized, for a loader that assigns most of
    /// them: it then calls <see cref="ParameterSet.InitializeRemaining"/>, which gives every parameter not
    /// assigned the values <see cref="Create(ModelConfig, ulong)"/> would have (seed 0). Skips writing
    /// hundreds of megabytes of random values that the checkpoint replaces.
    /// </summary>
    public static LanguageModel CreateForLoading(ModelConfig config) => Create(config, new ParameterSet(0, deferInitialization: true));

    static LanguageModel Create(ModelConfig config, ParameterSet parameters)
    {
        try
        {
            return config.Family switch
            {
                ModelFamily.EncoderDecoder => new EncoderDecoderModel(config, parameters),
                ModelFamily.DecoderOnly => new DecoderOnlyModel(config, parameters),
                ModelFamily.EncoderOnly => new EncoderOnlyModel(config, parameters),
                _ => throw new ArgumentException($"unknown family {config.Family}"),
            };
        }
        catch
        {
            parameters.Dispose();
            throw;
        }
    }
}

/// <summary>
/// Encoder–decoder (T5; Mu from "Return of the Encoder", arXiv 2501.16273): the source is encoded
/// once; the decoder attends causally to its own prefix and, through cross-attention, to the encoder
/// output, whose keys and values a <see cref="DecoderCache"/> computes once per request.
/// </summary>
public sealed class EncoderDecoderModel : LanguageModel
{
    /// <summary>Builds a randomly initialized model (seeded).</summary>
    public EncoderDecoderModel(ModelConfig config, ulong seed = 0) : this(config, new ParameterSet(seed))
    {
    }

    internal EncoderDecoderModel(ModelConfig config, ParameterSet parameters) : base(config with { Family = ModelFamily.EncoderDecoder }, parameters)
    {
        // T5Gemma: the encoder has a token table of its own (model.encoder.embed_tokens); the shared one is the decoder's.
        // An unbalanced model's encoder has its own widths (ModelConfig.EncoderShape), its table among them.
        int de = Config.EncoderDModel;
        if (Config.EncoderEmbeddings)
            Parameters.Create(EncoderEmbedTokens, [Config.VocabSize, de], ParameterSet.Init.Normal, 1.0f / MathF.Sqrt(de));
        Encoder = new TransformerStack(Parameters, "encoder", Config.ForEncoder(), Config.EncoderLayers, causal: false, cross: false, embeddingNorm: Config.EmbeddingNorm);
        Decoder = new TransformerStack(Parameters, "decoder", Config, Config.DecoderLayers, causal: true, cross: true, embeddingNorm: Config.EmbeddingNorm, memoryWidth: de);
        CreateHead();
    }

    /// <summary>Parameter name of the encoder's own token embeddings (<see cref="ModelConfig.EncoderEmbeddings"/>).</summary>
    public const string EncoderEmbedTokens = "encoder.embed_tokens.weight";

    // The table the encoder reads its tokens from.
    string EncoderTable => Config.EncoderEmbeddings ? EncoderEmbedTokens : EmbedTokens;

    /// <summary>The bidirectional encoder.</summary>
    public TransformerStack Encoder { get; }

    /// <summary>The causal decoder with cross-attention.</summary>
    public TransformerStack Decoder { get; }

    /// <inheritdoc />
    public override IReadOnlyList<TransformerStack> Stacks => [Encoder, Decoder];

    /// <summary>Encodes source ids (B·S) → memory (B, S, D_enc), D_enc the encoder's width (<see cref="ModelConfig.EncoderDModel"/>).</summary>
    public Var Encode(int[] source, int batch, int[]? sourceLengths = null, ulong dropoutSeed = 0)
    {
        int s = source.Length / Math.Max(1, batch);
        return Encoder.Forward(Embed(source, batch, s, EncoderTable), sourceLengths, null, null, null, dropoutSeed);
    }

    /// <summary>
    /// Encodes source ids (B·S) → memory (B, S, D) under an early-exit rule (inference): each example
    /// leaves the encoder once a layer barely changes its states (see <see cref="StackExit"/>, whose
    /// counts this pass adds to), and its memory is the final norm of the state it reached.
    /// </summary>
    public Var Encode(int[] source, int batch, int[]? sourceLengths, StackExit exit)
    {
        ArgumentNullException.ThrowIfNull(exit);
        int s = source.Length / Math.Max(1, batch);
        return Encoder.Forward(Embed(source, batch, s, EncoderTable), sourceLengths, null, null, null, 0, exit: exit);
    }

    /// <summary>
    /// Logits (B, S, V) of the encoder's own tokens read back from its memory (B, S, D_enc): through the LM head, or,
    /// when the encoder is of another width than the head, through its own token table (tied).
    /// </summary>
    public Var EncoderTokenLogits(Var memory) =>
        Config.EncoderDModel == Config.DModel ? Logits(memory) : Ops.Linear(memory, Var.Of(Parameters[EncoderEmbedTokens]));

    /// <summary>
    /// The encoder's memory after each of its layers, (B, S, D) each, every one through the final norm
    /// (the last is <see cref="Encode(int[], int, int[], ulong)"/>'s): what the decoder reads when the
    /// encoder exits after that layer. An early-exit loss trains the decoder on them.
    /// </summary>
    public IReadOnlyList<Var> EncodeLayers(int[] source, int batch, int[]? sourceLengths = null, ulong dropoutSeed = 0)
    {
        int s = source.Length / Math.Max(1, batch);
        var layers = new List<Var>(Encoder.Layers);
        Encoder.Forward(Embed(source, batch, s, EncoderTable), sourceLengths, null, null, null, dropoutSeed, layerOutputs: layers);
        return layers;
    }

    /// <summary>
    /// Decoder logits (B, T, V) after each decoder layer, each through the decoder's final norm and the LM
    /// head (the last is <see cref="Decode(Var, int[], int[], int, DecoderCache?, ulong)"/>'s): the shared head
    /// an early-exit loss applies at every layer (MuE's layer-wise task loss).
    /// </summary>
    public IReadOnlyList<Var> DecodeLayers(Var memory, int[]? sourceLengths, int[] targetInputs, int batch, ulong dropoutSeed = 0)
    {
        int t = targetInputs.Length / Math.Max(1, batch);
        var layers = new List<Var>(Decoder.Layers);
        Decoder.Forward(Embed(targetInputs, batch, t), null, memory, sourceLengths, null, dropoutSeed ^ 0x5DEECE66DUL, layerOutputs: layers);
        return layers.Select(Logits).ToArray();
    }

    /// <summary>
    /// Decoder logits (B, T, V) for target inputs (B·T) given the encoder memory; with a cache, the
    /// inputs are the next positions after those already cached.
    /// </summary>
    public Var Decode(Var memory, int[]? sourceLengths, int[] targetInputs, int batch, DecoderCache? cache = null, ulong dropoutSeed = 0)
    {
        int t = targetInputs.Length / Math.Max(1, batch);
        var h = Decoder.Forward(Embed(targetInputs, batch, t), null, memory, sourceLengths, cache, dropoutSeed ^ 0x5DEECE66DUL);
        return Logits(h);
    }

    /// <summary>
    /// <see cref="Decode(Var, int[], int[], int, DecoderCache?, ulong)"/> with each target input a mixture of token
    /// embeddings (B·T positions; see <see cref="TokenMixture"/>): Superposed Decoding feeds its drafts this way.
    /// </summary>
    public Var Decode(Var memory, int[]? sourceLengths, TokenMixture targetInputs, int batch, DecoderCache? cache = null)
    {
        int t = targetInputs.Positions / Math.Max(1, batch);
        return Logits(Decoder.Forward(Embed(targetInputs, batch, t), null, memory, sourceLengths, cache, 0));
    }

    /// <summary>Training forward: logits (B, T, V) of teacher-forced target inputs.</summary>
    public Var Forward(int[] source, int[]? sourceLengths, int[] targetInputs, int batch, ulong dropoutSeed = 0)
        => Decode(Encode(source, batch, sourceLengths, dropoutSeed), sourceLengths, targetInputs, batch, null, dropoutSeed);

    /// <summary>
    /// Caches for incremental decoding of <paramref name="batch"/> sequences against a source of
    /// <paramref name="sourceLength"/>; self- and cross-attention keys and values stored as <paramref name="dtype"/>.
    /// </summary>
    public DecoderCache CreateCache(int batch, int capacity, int sourceLength, KvCacheDType dtype = KvCacheDType.F32) =>
        new(Decoder.CreateCaches(batch, capacity, dtype), Decoder.CreateCaches(batch, sourceLength, dtype));

    /// <summary>
    /// A batch cache for continuous batching (see <see cref="DecoderCache.RowLengths"/>): <paramref name="rows"/>
    /// rows of up to <paramref name="capacity"/> decoder positions against sources of up to <paramref name="sourceCapacity"/>,
    /// stored as <paramref name="dtype"/>.
    /// </summary>
    public DecoderCache CreateBatchCache(int rows, int capacity, int sourceCapacity, KvCacheDType dtype = KvCacheDType.F32) =>
        DecoderCache.Batch(Decoder.CreateCaches(rows, capacity, dtype), Decoder.CreateCaches(rows, sourceCapacity, dtype));

    /// <summary>
    /// One step of a batch cache: logits (b, 1, V) for one next token per active row (b = ActiveRows),
    /// each at its row's own position; the cross-attention keys are the rows' own, loaded with them.
    /// A lone active row may take several tokens at once: logits (1, t, V), one row per token.
    /// </summary>
    public Var DecodeStep(int[] tokens, DecoderCache cache) => DecodeStep(Decoder, tokens, cache, cross: true);

    /// <summary>One step of a batch cache with each active row's input a mixture of token embeddings (see <see cref="TokenMixture"/>).</summary>
    public Var DecodeStep(TokenMixture inputs, DecoderCache cache) => DecodeStep(Decoder, inputs, cache, cross: true);
}

/// <summary>A causal decoder-only language model (Llama, Qwen2, GPT): one growing KV cache over prompt and output.</summary>
public sealed class DecoderOnlyModel : LanguageModel
{
    /// <summary>Builds a randomly initialized model (seeded).</summary>
    public DecoderOnlyModel(ModelConfig config, ulong seed = 0) : this(config, new ParameterSet(seed))
    {
    }

    internal DecoderOnlyModel(ModelConfig config, ParameterSet parameters) : base(config with { Family = ModelFamily.DecoderOnly, EncoderLayers = 0 }, parameters)
    {
        Decoder = new TransformerStack(Parameters, "decoder", Config, Config.DecoderLayers, causal: true, cross: false);
        CreateHead();
    }

    /// <summary>The causal stack.</summary>
    public TransformerStack Decoder { get; }

    /// <inheritdoc />
    public override IReadOnlyList<TransformerStack> Stacks => [Decoder];

    /// <summary>Logits (B, T, V) for ids (B·T); with a cache, the ids follow the cached positions.</summary>
    public Var Forward(int[] ids, int batch, int[]? lengths = null, DecoderCache? cache = null, ulong dropoutSeed = 0)
    {
        int t = ids.Length / Math.Max(1, batch);
        return Logits(Decoder.Forward(Embed(ids, batch, t), lengths, null, null, cache, dropoutSeed));
    }

    /// <summary>
    /// Hidden states (B, T, D) for ids (B·T) with valid lengths (B): the last layer's output after the final
    /// norm, the input of the LM head (what an embedding pools from a decoder-only model).
    /// </summary>
    public Var Hidden(int[] ids, int batch, int[]? lengths = null)
    {
        int t = ids.Length / Math.Max(1, batch);
        return Decoder.Forward(Embed(ids, batch, t), lengths, null, null, null, 0);
    }

    /// <summary>
    /// Logits (B, T, V) after each decoder layer, each through the final norm and the LM head (the last is
    /// <see cref="Forward(int[], int, int[], DecoderCache?, ulong)"/>'s): what an early-exit loss trains.
    /// </summary>
    public IReadOnlyList<Var> ForwardLayers(int[] ids, int batch, int[]? lengths = null, ulong dropoutSeed = 0)
    {
        int t = ids.Length / Math.Max(1, batch);
        var layers = new List<Var>(Decoder.Layers);
        Decoder.Forward(Embed(ids, batch, t), lengths, null, null, null, dropoutSeed, layerOutputs: layers);
        return layers.Select(Logits).ToArray();
    }

    /// <summary>
    /// Logits (B, T, V) for inputs that are mixtures of token embeddings (B·T positions; see <see cref="TokenMixture"/>);
    /// with a cache, they follow the cached positions. Superposed Decoding feeds its drafts this way.
    /// </summary>
    public Var Forward(TokenMixture inputs, int batch, DecoderCache? cache = null)
    {
        int t = inputs.Positions / Math.Max(1, batch);
        return Logits(Decoder.Forward(Embed(inputs, batch, t), null, null, null, cache, 0));
    }

    /// <summary>
    /// The input embeddings (B, T, D) of ids (B·T) as the stack reads them (scaled when the configuration scales
    /// embeddings): <see cref="ForwardEmbeddings"/> of them is <see cref="Forward(int[], int, int[], DecoderCache?, ulong)"/> of the ids.
    /// </summary>
    public Var TokenEmbeddings(int[] ids, int batch)
    {
        int t = ids.Length / Math.Max(1, batch);
        return Embed(ids, batch, t);
    }

    /// <summary>
    /// Logits (B, T, V) for input embeddings (B, T, D) given directly (vectors that replace token embeddings, such as a
    /// context compressor's, joined to <see cref="TokenEmbeddings"/> of ids); with a cache, they follow the cached positions.
    /// Gradients flow into the inputs, so a frozen decoder trains what feeds it.
    /// </summary>
    public Var ForwardEmbeddings(Var inputs, int[]? lengths = null, DecoderCache? cache = null, ulong dropoutSeed = 0)
    {
        CheckEmbeddings(inputs);
        return Logits(Decoder.Forward(inputs, lengths, null, null, cache, dropoutSeed));
    }

    /// <summary>As <see cref="Prefill"/> for input embeddings (B, T, D): runs them into <paramref name="cache"/> and returns the last position's logits (B, 1, V).</summary>
    public Var PrefillEmbeddings(Var inputs, DecoderCache cache)
    {
        CheckEmbeddings(inputs);
        return Logits(Ops.LastPosition(Decoder.Forward(inputs, null, null, null, cache, 0)));
    }

    void CheckEmbeddings(Var inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Value.Rank != 3 || inputs.Shape[2] != Config.DModel)
            throw new ArgumentException($"input embeddings {inputs.Value.Describe()} must be (B, T, {Config.DModel})");
    }

    /// <summary>A cache for <paramref name="batch"/> sequences of up to <paramref name="capacity"/> positions, stored as <paramref name="dtype"/>.</summary>
    public DecoderCache CreateCache(int batch, int capacity, KvCacheDType dtype = KvCacheDType.F32) => new(Decoder.CreateCaches(batch, capacity, dtype), null);

    /// <summary>A batch cache for continuous batching (see <see cref="DecoderCache.RowLengths"/>) of <paramref name="rows"/> rows of up to <paramref name="capacity"/> positions, stored as <paramref name="dtype"/>.</summary>
    public DecoderCache CreateBatchCache(int rows, int capacity, KvCacheDType dtype = KvCacheDType.F32) => DecoderCache.Batch(Decoder.CreateCaches(rows, capacity, dtype), null);

    /// <summary>
    /// Runs prompts (B·T) into <paramref name="cache"/> and returns the logits of the last position
    /// only, (B, 1, V): the first generated token needs nothing else, and the LM head over every
    /// prompt position would cost T times more.
    /// </summary>
    public Var Prefill(int[] ids, int batch, DecoderCache cache)
    {
        int t = ids.Length / Math.Max(1, batch);
        return Logits(Ops.LastPosition(Decoder.Forward(Embed(ids, batch, t), null, null, null, cache, 0)));
    }

    /// <summary>
    /// One step of a batch cache: logits (b, 1, V) for one next token per active row (b = ActiveRows), each
    /// at its row's own position. A lone active row may take several tokens at once: logits (1, t, V).
    /// </summary>
    public Var DecodeStep(int[] tokens, DecoderCache cache) => DecodeStep(Decoder, tokens, cache, cross: false);

    /// <summary>One step of a batch cache with each active row's input a mixture of token embeddings (see <see cref="TokenMixture"/>).</summary>
    public Var DecodeStep(TokenMixture inputs, DecoderCache cache) => DecodeStep(Decoder, inputs, cache, cross: false);
}

/// <summary>
/// A bidirectional encoder (BERT, Ettin): hidden states for every token, with an optional
/// masked-LM head (dense → activation → norm → tied projection + bias; absent when
/// <see cref="ModelConfig.MaskedLmHead"/> is false, as in a bare BertModel or a sentence-transformers encoder).
/// </summary>
public sealed class EncoderOnlyModel : LanguageModel
{
    readonly NormLayer? _embedNorm;
    readonly LinearLayer? _mlmDense;
    readonly NormLayer? _mlmNorm;

    /// <summary>Builds a randomly initialized model (seeded).</summary>
    public EncoderOnlyModel(ModelConfig config, ulong seed = 0) : this(config, new ParameterSet(seed))
    {
    }

    internal EncoderOnlyModel(ModelConfig config, ParameterSet parameters) : base(config with { Family = ModelFamily.EncoderOnly, DecoderLayers = 0 }, parameters)
    {
        if (Config.TypeVocabSize > 0) Parameters.Create(TokenTypes, [Config.TypeVocabSize, Config.DModel], ParameterSet.Init.Normal);
        if (Config.EmbeddingNorm) _embedNorm = new NormLayer(Parameters, "embed_norm", Config.DModel, Config.Norm, Config.NormEps);
        Encoder = new TransformerStack(Parameters, "encoder", Config, Config.EncoderLayers, causal: false, cross: false);
        if (Config.MaskedLmHead)
        {
            _mlmDense = new LinearLayer(Parameters, MlmDense, Config.DModel, Config.DModel, bias: true, 0.02f);
            _mlmNorm = new NormLayer(Parameters, "mlm_head.norm", Config.DModel, Config.Norm, Config.NormEps);
            Parameters.Create(MlmBias, [Config.VocabSize], ParameterSet.Init.Zeros);
            CreateHead();
        }
    }

    /// <summary>Token-type embedding parameter name.</summary>
    public const string TokenTypes = "embed_token_types.weight";
    /// <summary>Masked-LM output bias parameter name.</summary>
    public const string MlmBias = "mlm_head.bias";
    /// <summary>Scope of the masked-LM head's dense layer (its weight is <c>mlm_head.dense.weight</c>).</summary>
    public const string MlmDense = "mlm_head.dense";

    /// <summary>Names of every parameter of the masked-LM head (untied output projection included), present only with <see cref="ModelConfig.MaskedLmHead"/>.</summary>
    public static IReadOnlyList<string> MaskedLmHeadParameters { get; } =
        [MlmDense + ".weight", MlmDense + ".bias", "mlm_head.norm.weight", "mlm_head.norm.bias", MlmBias, LmHead];

    /// <summary>True when the model has a masked-LM head (<see cref="MaskedLmLogits"/> works).</summary>
    public bool HasMaskedLmHead => _mlmDense != null;

    /// <summary>The bidirectional stack.</summary>
    public TransformerStack Encoder { get; }

    /// <inheritdoc />
    public override IReadOnlyList<TransformerStack> Stacks => [Encoder];

    /// <summary>Hidden states (B, S, D) for ids (B·S), optional token types (B·S) and valid lengths (B).</summary>
    public Var Forward(int[] ids, int batch, int[]? lengths = null, int[]? tokenTypes = null, ulong dropoutSeed = 0)
    {
        int s = ids.Length / Math.Max(1, batch);
        var x = Embed(ids, batch, s);
        if (Config.TypeVocabSize > 0)
            x = Ops.Add(x, Ops.Embedding(Var.Of(Parameters[TokenTypes]), tokenTypes ?? new int[ids.Length], batch, s));
        // BERT sums token, type and position embeddings, then normalizes them.
        x = Encoder.AddAbsolutePositions(x, null);
        if (_embedNorm != null) x = _embedNorm.Forward(x);
        return Encoder.Forward(x, lengths, null, null, null, dropoutSeed, absoluteAdded: true);
    }

    /// <summary>Masked-LM logits (…, V) from hidden states.</summary>
    public Var MaskedLmLogits(Var hidden)
    {
        if (_mlmDense is null || _mlmNorm is null)
            throw new InvalidOperationException("this encoder has no masked-LM head (a bare encoder checkpoint): it gives hidden states and embeddings only");
        var h = _mlmNorm.Forward(Ops.Activation(_mlmDense.Forward(hidden), Config.Activation));
        return Ops.AddBias(Logits(h), Var.Of(Parameters[MlmBias]));
    }
}

/// <summary>
/// Decoder inputs given as weighted mixtures of token embeddings instead of single tokens: position p's
/// input is Σ_j Weights[p·M + j] · E[Ids[p·M + j]] with M = <see cref="PerPosition"/> (Superposed Decoding,
/// Shen et al. 2024, arXiv 2405.18400, feeds the decoder a superposition of its drafts' last tokens this way;
/// its reference implementation multiplies a (V)-sized mixing vector by the embedding matrix, which is the
/// same sum). Only the embedding changes: the positions, caches and layers are those of a token input.
/// The arrays are read when the model runs, so a decoding loop may refill them between steps.
/// </summary>
/// <param name="Ids">(positions·M) token ids.</param>
/// <param name="Weights">(positions·M) weights, one per id.</param>
/// <param name="PerPosition">M ≥ 1, the tokens mixed at each position.</param>
public readonly record struct TokenMixture(int[] Ids, float[] Weights, int PerPosition)
{
    /// <summary>Positions the mixture fills (Ids.Length / M); throws when the arrays do not match.</summary>
    public int Positions
    {
        get
        {
            if (PerPosition < 1) throw new ArgumentException($"a token mixture needs ≥ 1 token per position, got {PerPosition}");
            if (Ids is null || Weights is null || Ids.Length != Weights.Length || Ids.Length % PerPosition != 0)
                throw new ArgumentException($"a token mixture of {Ids?.Length ?? 0} ids and {Weights?.Length ?? 0} weights does not split into positions of {PerPosition}");
            return Ids.Length / PerPosition;
        }
    }
}
