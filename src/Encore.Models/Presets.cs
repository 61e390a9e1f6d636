using Encore.Tensors.Kernels;

namespace Encore.Models;

/// <summary>
/// Named configurations. <c>mu-330m</c> is the encoder–decoder of "Return of the Encoder"
/// (arXiv 2501.16273, §3): 20 encoder and 10 decoder layers (a 2/3 – 1/3 split), width 1024, a
/// narrow 384-wide attention (6 heads of 64, 3 KV heads), FFN 4096, tanh-GELU, RMSNorm, RoPE with
/// centered encoder positions, tied embeddings, T5's 32128 vocabulary. <c>decoder-330m</c> is a
/// decoder-only model with the same blocks and (within 1%) the same parameter count. The
/// <c>*-25m</c> pair scales both down for experiments; <c>quickstart</c> and <c>quickstart-decoder</c>
/// are the quickstart's pair (with a 1024-id vocabulary); the <c>tiny-*</c> sizes are for tests.
/// </summary>
public static class Presets
{
    static ModelConfig Mu(int d, int heads, int kvHeads, int ffn, int enc, int dec) => new()
    {
        Family = ModelFamily.EncoderDecoder,
        VocabSize = 32128,
        DModel = d,
        EncoderLayers = enc,
        DecoderLayers = dec,
        Heads = heads,
        KvHeads = kvHeads,
        HeadDim = 64,
        FfnDim = ffn,
        Activation = ActivationKind.GeluTanh,
        Norm = NormKind.RmsNorm,
        TieEmbeddings = true,
        EncoderPositions = new PositionConfig { Kind = PositionKind.Rope, RopeCentered = true },
        DecoderPositions = new PositionConfig { Kind = PositionKind.Rope },
    };

    static ModelConfig DecoderOf(ModelConfig encDec, int layers) => encDec with
    {
        Family = ModelFamily.DecoderOnly,
        EncoderLayers = 0,
        DecoderLayers = layers,
    };

    static ModelConfig Tiny(ModelFamily family) => new()
    {
        Family = family,
        VocabSize = 64,
        DModel = 32,
        EncoderLayers = family == ModelFamily.DecoderOnly ? 0 : 2,
        DecoderLayers = family == ModelFamily.EncoderOnly ? 0 : (family == ModelFamily.DecoderOnly ? 3 : 1),
        Heads = 4,
        KvHeads = 2,
        HeadDim = 8,
        FfnDim = 64,
        EncoderPositions = new PositionConfig { Kind = PositionKind.Rope, RopeCentered = true },
    };

    static ModelConfig Quickstart() => new()
    {
        Family = ModelFamily.EncoderDecoder,
        VocabSize = 1024,
        DModel = 128,
        EncoderLayers = 4,
        DecoderLayers = 2,
        Heads = 4,
        KvHeads = 2,
        HeadDim = 32,
        FfnDim = 512,
        Activation = ActivationKind.GeluTanh,
        EncoderPositions = new PositionConfig { Kind = PositionKind.Rope, RopeCentered = true },
        DecoderPositions = new PositionConfig { Kind = PositionKind.Rope },
    };

    /// <summary>
    /// The decoder-only model with <paramref name="encDec"/>'s blocks and the layer count whose
    /// parameters come closest to the encoder–decoder's (same parameters, for a fair comparison).
    /// </summary>
    public static ModelConfig MatchingDecoderOnly(ModelConfig encDec)
    {
        long target = ParameterCounter.Count(encDec);
        var best = encDec with { Family = ModelFamily.DecoderOnly, EncoderLayers = 0, DecoderLayers = 1 };
        for (int layers = 1; layers <= 64; layers++)
        {
            var c = best with { DecoderLayers = layers };
            if (Math.Abs(ParameterCounter.Count(c) - target) < Math.Abs(ParameterCounter.Count(best) - target)) best = c;
        }
        return best;
    }

    /// <summary>Every preset by name.</summary>
    public static IReadOnlyDictionary<string, ModelConfig> All { get; } = new Dictionary<string, ModelConfig>(StringComparer.OrdinalIgnoreCase)
    {
        ["mu-330m"] = Mu(1024, 6, 3, 4096, 20, 10),
        ["decoder-330m"] = DecoderOf(Mu(1024, 6, 3, 4096, 20, 10), 31),
        ["mu-25m"] = Mu(256, 4, 2, 1024, 14, 7),
        ["decoder-25m"] = DecoderOf(Mu(256, 4, 2, 1024, 14, 7), 23),
        ["quickstart"] = Quickstart(),
        ["quickstart-decoder"] = MatchingDecoderOnly(Quickstart()),
        ["tiny-encdec"] = Tiny(ModelFamily.EncoderDecoder),
        ["tiny-decoder"] = Tiny(ModelFamily.DecoderOnly),
        ["tiny-encoder"] = Tiny(ModelFamily.EncoderOnly) with { EncoderPositions = new PositionConfig { Kind = PositionKind.Learned }, MaxPositions = 128 },
    };

    /// <summary>The preset named <paramref name="name"/>, or a clear error listing the names.</summary>
    public static ModelConfig Get(string name) => All.TryGetValue(name, out var c) ? c
        : throw new ArgumentException($"unknown preset '{name}'; presets: {string.Join(", ", All.Keys)}");
}
