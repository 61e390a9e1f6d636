// `encore bench peers`: the same random weights and prompts, greedy generation timed in Encore, in
// llama.cpp (through LLamaSharp, loading the GGUF that Encore's exporter writes) and in PyTorch eager
// with a KV cache (bench/peers/torch_generate.py reading the same safetensors). Greedy outputs are
// compared token by token: equal outputs show that the three engines time the same computation.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Formats.Gguf;
using Encore.Generation;
using Encore.Models;
using Encore.Tensors;
using Encore.Tensors.Kernels;

namespace Encore.Bench;

/// <summary>
/// The models of <see cref="PeersBenchmark"/>: their configurations (the T5 and Llama ones from their
/// family presets) and the weight initialization every engine loads.
/// </summary>
public static class PeerModels
{
    /// <summary>
    /// The models: <c>t5-base</c> (T5 v1.0 base: d_model 768, 12 + 12 layers, 12 heads, d_ff 3072 ReLU,
    /// 32128 tokens, 32 relative buckets, tied head with the d_model^−½ rescale), <c>llama-330m</c> (a
    /// Llama of decoder-330m's size: d 1024, 20 layers, 16 heads, SwiGLU 2816, RMSNorm, RoPE θ 10000,
    /// untied head), <c>mu-330m</c> (Encore's encoder–decoder preset; Encore only: neither peer has
    /// its architecture, so it is set against llama.cpp's llama-330m in <see cref="ArchitectureClaim"/>),
    /// and <c>tiny-t5</c> / <c>tiny-llama</c> / <c>tiny-mu</c> for smoke runs.
    /// </summary>
    public static IReadOnlyList<string> Names { get; } = ["t5-base", "llama-330m", "mu-330m", "tiny-t5", "tiny-llama", "tiny-mu"];

    /// <summary>Whether the peers can run <paramref name="name"/> (T5 and Llama architectures); the others run in Encore only.</summary>
    public static bool HasPeers(string name) => name.ToLowerInvariant() is not ("mu-330m" or "tiny-mu");

    /// <summary>The configuration of model <paramref name="name"/>.</summary>
    public static ModelConfig Config(string name) => name.ToLowerInvariant() switch
    {
        "t5-base" => T5(768, 12, 12, 3072, 32128),
        "llama-330m" => Llama(1024, 20, 16, 2816, 32128),
        "tiny-t5" => T5(64, 2, 4, 128, 512),
        "tiny-llama" => Llama(64, 2, 4, 128, 512),
        "mu-330m" => (Presets.Get("mu-330m") with { MaxPositions = 4096 }).Validate(),
        "tiny-mu" => (Presets.Get("mu-330m") with { VocabSize = 512, DModel = 64, EncoderLayers = 2, DecoderLayers = 1, Heads = 4, KvHeads = 2, HeadDim = 16, FfnDim = 128, MaxPositions = 4096 }).Validate(),
        _ => throw new ArgumentException($"unknown model '{name}'; models: {string.Join(", ", Names)}"),
    };

    // The family presets, untied as the peers' T5 is built, with room for the longest runs.
    static ModelConfig T5(int d, int layers, int heads, int ffn, int vocab) =>
        (T5Architecture.Preset(d, layers, heads, ffn, vocab, tied: false) with { MaxPositions = 4096 }).Validate();

    static ModelConfig Llama(int d, int layers, int heads, int ffn, int vocab) => LlamaArchitecture.Preset(d, layers, heads, ffn, vocab).Validate();

    /// <summary>
    /// Overwrites the weights with the scaled Gaussians of tools/reference/t5_reference.py's init_weights,
    /// under which greedy decoding of a random model does not collapse onto one token: matrices
    /// N(0, 1/fan_in), output projections of each block × <paramref name="outGain"/>, norm gains
    /// 1 + 0.1·N, relative-bias tables 0.5·N, embeddings <paramref name="embedStd"/>·N.
    /// </summary>
    public static void ScaleWeights(LanguageModel model, ulong seed, float embedStd, float outGain)
    {
        ulong state = seed;
        double? spare = null;
        float Gaussian()
        {
            if (spare is { } s) { spare = null; return (float)s; }
            // SplitMix64 uniforms, Box–Muller pairs.
            double u1 = (Next(ref state) >> 11) * (1.0 / (1UL << 53)), u2 = (Next(ref state) >> 11) * (1.0 / (1UL << 53));
            double r = Math.Sqrt(-2 * Math.Log(1 - u1));
            spare = r * Math.Sin(2 * Math.PI * u2);
            return (float)(r * Math.Cos(2 * Math.PI * u2));
        }
        foreach (var p in model.Parameters.All)
        {
            var span = p.Value.AsSpan<float>();
            bool output = p.Name.EndsWith(".o_proj.weight", StringComparison.Ordinal) || p.Name.EndsWith(".down_proj.weight", StringComparison.Ordinal);
            if (p.Value.Rank == 1) for (int i = 0; i < span.Length; i++) span[i] = 1 + 0.1f * Gaussian();
            else if (p.Name.EndsWith("relative_attention_bias.weight", StringComparison.Ordinal)) for (int i = 0; i < span.Length; i++) span[i] = 0.5f * Gaussian();
            else if (p.Name == LanguageModel.EmbedTokens) for (int i = 0; i < span.Length; i++) span[i] = embedStd * Gaussian();
            else
            {
                float scale = (output ? outGain : 1f) / MathF.Sqrt(p.Value.Dim(-1));
                for (int i = 0; i < span.Length; i++) span[i] = scale * Gaussian();
            }
        }
    }

    static ulong Next(ref ulong s)
    {
        ulong z = s += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
