// Context compression after ARC-Encoder (arXiv 2510.20535; reference code kyutai-labs/ARC-Encoder): a bidirectional
// encoder, made from a decoder-only model's first blocks, reads n tokens; its last block pools its queries over
// consecutive groups of PF positions (keys and values stay unpooled), so it outputs ⌈n/PF⌉ vectors; a two-layer linear
// projector (no activation) maps them to the width of a frozen decoder-only model, whose input they replace token
// embeddings in, followed by a learned special embedding: <Rec> when the decoder must reproduce the text, <Cont> when
// it must continue it.
using Encore.Autograd;

namespace Encore.Models;

/// <summary>Which task the special embedding after the compressed vectors announces.</summary>
public enum CompressionTask
{
    /// <summary>&lt;Rec&gt;: the decoder reproduces the compressed text.</summary>
    Reconstruction,
    /// <summary>&lt;Cont&gt;: the decoder continues the compressed text.</summary>
    Continuation,
}

/// <summary>The shape of a <see cref="ContextCompressor"/>; each field has one documented default.</summary>
public sealed record ContextCompressorConfig
{
    /// <summary>The encoder stack's configuration (a bidirectional stack of <see cref="ModelConfig.EncoderLayers"/> blocks at <see cref="ModelConfig.EncoderPositions"/>).</summary>
    public required ModelConfig Encoder { get; init; }
    /// <summary>Pooling factor PF: the last block outputs one vector per group of about PF tokens. Default 4.</summary>
    public int Pooling { get; init; } = 4;
    /// <summary>Width of the projector's hidden layer. Default 0: the encoder's width.</summary>
    public int ProjectorHidden { get; init; }
    /// <summary>Width of the decoder the vectors feed (its D).</summary>
    public required int DecoderDModel { get; init; }

    /// <summary>The projector's hidden width (<see cref="ProjectorHidden"/>, or the encoder's width when 0).</summary>
    public int Hidden => ProjectorHidden > 0 ? ProjectorHidden : Encoder.DModel;

    /// <summary>Checks the fields; throws <see cref="ArgumentException"/> naming the first wrong one.</summary>
    public ContextCompressorConfig Validate()
    {
        if (Encoder is null) throw new ArgumentException("encoder: missing");
        Encoder.Validate();
        if (Encoder.Family != ModelFamily.EncoderOnly) throw new ArgumentException($"encoder: family must be EncoderOnly, got {Encoder.Family}");
        if (Pooling is < 1 or > 1024) throw new ArgumentException($"pooling must be in [1, 1024], got {Pooling}");
        if (ProjectorHidden is < 0 or > 65536) throw new ArgumentException($"projector_hidden must be in [0, 65536], got {ProjectorHidden}");
        if (DecoderDModel is < 1 or > 65536) throw new ArgumentException($"decoder_d_model must be in [1, 65536], got {DecoderDModel}");
        return this;
    }
}

/// <summary>
/// ARC-Encoder's compressor: token embeddings → bidirectional stack with a pooled-query last block →
/// projector (two linear layers, no activation) → ⌈n/PF⌉ vectors of the decoder's width, plus the learned
/// special embeddings &lt;Rec&gt; and &lt;Cont&gt; (initialized to ones, as in the paper).
/// </summary>
public sealed class ContextCompressor : IDisposable
{
    /// <summary>Parameter name of the encoder's token embeddings.</summary>
    public const string EmbedTokens = "embed_tokens.weight";
    /// <summary>Parameter name of the special embeddings (2, D_dec): row 0 &lt;Rec&gt;, row 1 &lt;Cont&gt;.</summary>
    public const string SpecialTokens = "special_tokens.weight";
    const string Projector0 = "projector.0", Projector1 = "projector.1";

    readonly LinearLayer _proj0, _proj1;

    /// <summary>A randomly initialized compressor (seeded).</summary>
    public ContextCompressor(ContextCompressorConfig config, ulong seed = 0)
    {
        Config = config.Validate();
        Parameters = new ParameterSet(seed);
        try
        {
            var e = Config.Encoder;
            Parameters.Create(EmbedTokens, [e.VocabSize, e.DModel], ParameterSet.Init.Normal, 1f / MathF.Sqrt(e.DModel));
            Encoder = new TransformerStack(Parameters, "encoder", e, e.EncoderLayers, causal: false, cross: false);
            // Fan-in scale for both (the paper: Kaiming-uniform); no activation between them.
            _proj0 = new LinearLayer(Parameters, Projector0, e.DModel, Config.Hidden, bias: false, InitScale.Input(e.DModel));
            _proj1 = new LinearLayer(Parameters, Projector1, Config.Hidden, Config.DecoderDModel, bias: false, InitScale.Input(Config.Hidden));
            Parameters.Create(SpecialTokens, [2, Config.DecoderDModel], ParameterSet.Init.Ones).Decay = false;
        }
        catch
        {
            Parameters.Dispose();
            throw;
        }
    }

    /// <summary>The configuration.</summary>
    public ContextCompressorConfig Config { get; }

    /// <summary>All parameters by name.</summary>
    public ParameterSet Parameters { get; }

    /// <summary>The bidirectional encoder stack.</summary>
    public TransformerStack Encoder { get; }

    /// <summary>Compressed vectors of n tokens at factor PF: ⌈n/PF⌉ (<see cref="TransformerStack.PoolingGroups"/>).</summary>
    public int CompressedLength(int tokens) => (tokens + Config.Pooling - 1) / Config.Pooling;

    /// <summary>Compresses ids (B·n) → (B, ⌈n/PF⌉, D_dec), the vectors that replace the text's token embeddings in the decoder.</summary>
    public Var Compress(int[] ids, int batch, ulong dropoutSeed = 0)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (batch < 1 || ids.Length == 0 || ids.Length % batch != 0) throw new ArgumentException($"{ids.Length} ids do not split into {batch} rows");
        int n = ids.Length / batch;
        var x = Ops.Embedding(Var.Of(Parameters[EmbedTokens]), ids, batch, n);                          // (B, n, D_enc)
        if (Config.Encoder.ScaleEmbeddings) x = Ops.Scale(x, MathF.Sqrt(Config.Encoder.DModel));
        var h = Encoder.Forward(x, null, null, null, null, dropoutSeed, pooling: Config.Pooling);       // (B, G, D_enc)
        return _proj1.Forward(_proj0.Forward(h));                                                        // (B, G, D_dec)
    }

    /// <summary>The special embedding of <paramref name="task"/> for each of <paramref name="batch"/> rows: (B, 1, D_dec).</summary>
    public Var Special(CompressionTask task, int batch)
    {
        var ids = new int[batch];
        Array.Fill(ids, task == CompressionTask.Reconstruction ? 0 : 1);
        return Ops.Embedding(Var.Of(Parameters[SpecialTokens]), ids, batch, 1);
    }

    /// <summary>
    /// The encoder of a compressor for <paramref name="decoder"/>, its blocks the first L − <paramref name="dropLayers"/> of
    /// <paramref name="source"/> (a decoder-only model) made bidirectional, with its token table and final norm; the
    /// projector and special embeddings start fresh (seeded). The paper drops the source's last 2 of 28 layers.
    /// </summary>
    public static ContextCompressor FromDecoder(DecoderOnlyModel source, DecoderOnlyModel decoder, int pooling, int dropLayers = 0, int projectorHidden = 0, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(decoder);
        var sc = source.Config;
        int layers = sc.DecoderLayers - dropLayers;
        if (dropLayers < 0 || layers < 1) throw new ArgumentException($"dropping {dropLayers} of the source's {sc.DecoderLayers} layers leaves none (at least one block must stay)");
        if (sc.VocabSize != decoder.Config.VocabSize) throw new ArgumentException($"the encoder source's vocabulary ({sc.VocabSize}) differs from the decoder's ({decoder.Config.VocabSize}); they must share a tokenizer");
        // The encoder reads positions as the source's blocks did (the source's decoder positions), only bidirectionally.
        var encoder = sc with
        {
            Family = ModelFamily.EncoderOnly,
            EncoderLayers = layers,
            DecoderLayers = 0,
            EncoderPositions = sc.DecoderPositions,
            MaskedLmHead = false,
            TieEmbeddings = true,
            FinalLogitsBias = false,
            FinalLogitSoftCap = 0,
        };
        var compressor = new ContextCompressor(new ContextCompressorConfig { Encoder = encoder, Pooling = pooling, ProjectorHidden = projectorHidden, DecoderDModel = decoder.Config.DModel }, seed);
        try
        {
            foreach (var p in compressor.Parameters.All)
            {
                string? from = p.Name == EmbedTokens ? LanguageModel.EmbedTokens
                    : p.Name.StartsWith("encoder.", StringComparison.Ordinal) ? "decoder." + p.Name["encoder.".Length..]
                    : null;
                if (from is null) continue;
                if (!source.Parameters.Contains(from)) throw new ArgumentException($"the encoder source has no parameter '{from}' for '{p.Name}'");
                var t = source.Parameters[from].Value;
                if (!t.Shape.SequenceEqual(p.Value.Shape)) throw new ArgumentException($"the encoder source's '{from}' is {t.Describe()}, but '{p.Name}' is {p.Value.Describe()}");
                using var f32 = t.To(Encore.Tensors.DType.F32);
                f32.AsReadOnlySpan<float>().CopyTo(p.Value.AsSpan<float>());
            }
            return compressor;
        }
        catch
        {
            compressor.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The frozen decoder's input for <paramref name="compressed"/> (B, G, D) vectors: the vectors, the task's special
    /// embedding, then the token embeddings of <paramref name="ids"/> (B·T, may be empty) → (B, G + 1 + T, D).
    /// </summary>
    public Var DecoderInput(DecoderOnlyModel decoder, Var compressed, CompressionTask task, int[] ids)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        ArgumentNullException.ThrowIfNull(compressed);
        int b = compressed.Shape[0];
        if (compressed.Value.Rank != 3 || compressed.Shape[2] != decoder.Config.DModel)
            throw new ArgumentException($"compressed vectors {compressed.Value.Describe()} do not match the decoder's width {decoder.Config.DModel}");
        var special = Special(task, b);                                                                 // (B, 1, D)
        if (ids.Length == 0) return Ops.ConcatPositions(compressed, special);
        return Ops.ConcatPositions(compressed, special, decoder.TokenEmbeddings(ids, b));               // (B, G + 1 + T, D)
    }

    /// <summary>Number of parameter values.</summary>
    public long ParameterCount => Parameters.Count;

    /// <summary>Frees the parameters.</summary>
    public void Dispose() => Parameters.Dispose();
}
