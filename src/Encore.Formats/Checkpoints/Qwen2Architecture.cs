// Hugging Face "qwen2" checkpoints (transformers' configuration_qwen2.py / modeling_qwen2.py): the
// Llama decoder (same tensor names, RMSNorm, half-split RoPE, GQA, SwiGLU) with biases on the q, k
// and v projections only (Qwen2Attention: q/k/v_proj bias=True, o_proj bias=False).
using System.Text.Json.Nodes;
using Encore.Models;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// <c>model_type: "qwen2"</c>. Fields as <see cref="LlamaArchitecture"/> with <c>Qwen2Config</c>'s defaults
/// (max_position_embeddings 32768, no bos default); biases are fixed by the type (q, k, v yes; o and
/// the feed-forward no). <c>use_sliding_window: true</c> is rejected: Encore attends to every cached position.
/// </summary>
public sealed class Qwen2Architecture : LlamaArchitecture
{
    /// <inheritdoc />
    public override string ModelType => "qwen2";

    /// <inheritdoc />
    protected override string HfClassName => "Qwen2ForCausalLM";

    /// <inheritdoc />
    protected override int DefaultMaxPositions => 32768;

    /// <inheritdoc />
    protected override int DefaultBos => -1;

    /// <inheritdoc />
    protected override (bool Qkv, bool Output, bool Mlp) ReadBiases(HfConfigFields f)
    {
        // Sliding-window layers (Qwen2Attention with use_sliding_window) would see fewer keys than Encore gives them.
        if (f.Bool("use_sliding_window", false)) throw f.Error("use_sliding_window", "true is not supported (Encore attends to the whole context)");
        return (true, false, false);
    }

    /// <inheritdoc />
    protected override void WriteBiases(ModelConfig c, JsonObject json)
    {
        if (!c.QkvBias || c.OutputBias || c.MlpBias)
            throw Unwritable(c, "qwen2 has biases on q, k and v and nowhere else");
    }

    /// <inheritdoc />
    protected override void WriteExtra(ModelConfig c, JsonObject json)
    {
        json["use_sliding_window"] = false;
        json["sliding_window"] = c.MaxPositions;
        json["max_window_layers"] = c.DecoderLayers;
    }
}
