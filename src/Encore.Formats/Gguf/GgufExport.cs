// Encore models to llama.cpp's GGUF, in the layout llama.cpp's convert_hf_to_gguf.py writes and its
// loaders read (src/llama-arch.cpp names, src/models/t5.cpp and llama.cpp load_arch_hparams keys):
// - "t5": encoder–decoder with T5 relative buckets; tensors token_embd, output, enc.output_norm,
//   dec.output_norm, enc.blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_o,attn_rel_b,ffn_norm,ffn_gate,
//   ffn_up,ffn_down}, dec.blk.N.{… the same …, cross_attn_norm, cross_attn_q/k/v/o}. llama.cpp's T5
//   graph uses q·kᵀ unscaled, max distance 128, GELU (tanh) for a gated FFN and ReLU otherwise, and a
//   tied head without T5's d_model^−½ rescale, so a tied model is written with output = scaled embedding.
// - "llama": decoder-only RMSNorm / SwiGLU / RoPE; tensors blk.N.{attn_norm,attn_q,attn_k,attn_v,
//   attn_output,ffn_norm,ffn_gate,ffn_up,ffn_down}, output_norm, output. llama.cpp rotates adjacent
//   pairs (GGML_ROPE_TYPE_NORM) while Hugging Face / Encore rotate the two halves of each head, so q
//   and k rows are permuted within each head as convert_hf_to_gguf.py's LlamaModel.permute does.
// - "gemma2": decoder-only Gemma 2 (convert_hf_to_gguf.py Gemma2Model, llama.cpp LLM_ARCH_GEMMA2); tensors as
//   llama's plus blk.N.post_attention_norm and blk.N.post_ffw_norm (the sandwich norms), the head tied to
//   token_embd. The converter writes every norm weight as 1 + w (llama.cpp multiplies by the weight as
//   stored), keeps q and k in Hugging Face's order (gemma2 ropes in NEOX order, the two halves), and writes
//   attn_logit_softcapping, final_logit_softcapping and attention.sliding_window; llama.cpp slides on the
//   even layers and scales scores by 1/√head_dim (1/√(n_embd/n_head) for the 46-layer 27B), not by
//   query_pre_attn_scalar, so a model whose scale differs is refused.
// Matrices take the chosen type (F32, F16, Q8_0, Q4_0); vectors (norms) and the relative-bias tables stay
// F32, as the converter keeps 1-D tensors and the tables are gathered by row. A matrix whose rows are
// not whole Q8_0 blocks falls back to F16, as the converter does.
using System.Runtime.InteropServices;
using System.Text.Json;
using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Tensors;
using Encore.Tensors.Kernels;
using Encore.Tensors.Numerics;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Formats.Gguf;

/// <summary>Options of <see cref="GgufExport"/>.</summary>
public sealed record GgufExportOptions
{
    /// <summary>Type of the weight matrices: F32, F16, Q8_0 or Q4_0. Default F32.</summary>
    public GgmlType Matrices { get; init; } = GgmlType.F32;
    /// <summary>general.name. Default null (not written).</summary>
    public string? Name { get; init; }
    /// <summary>The checkpoint directory, for tokenizer files the tokenizer object does not expose (BPE merges). Default null.</summary>
    public string? TokenizerDirectory { get; init; }
}

/// <summary>Writes an Encore model (and its tokenizer) as a llama.cpp GGUF file.</summary>
public static class GgufExport
{
    // llama_token_type (llama.h), the same numbering as SentencePiece's piece types.
    const int TokenNormal = 1, TokenUnknown = 2, TokenControl = 3, TokenUserDefined = 4, TokenUnused = 5, TokenByte = 6;

    /// <summary>
    /// The GGUF architecture of <paramref name="c"/> ("t5", "llama" or "gemma2"); throws
    /// <see cref="ArgumentException"/> naming what llama.cpp cannot compute.
    /// </summary>
    public static string ArchitectureOf(ModelConfig c)
    {
        string? Problem(string arch, string? why) => why is null ? null : $"this model cannot be written as GGUF '{arch}': {why}";
        if (c.Codebook != null)
            throw new ArgumentException("this model cannot be written as GGUF: llama.cpp has no codebook layers (model config codebook); keep it as safetensors");
        if (c.Family == ModelFamily.EncoderDecoder && (c.SandwichNorms || c.EncoderEmbeddings || c.NormUnitOffset || c.AttentionSoftCap > 0 || c.FinalLogitSoftCap > 0 || c.SlidingWindow > 0))
            throw new ArgumentException("this model cannot be written as GGUF: llama.cpp has no T5Gemma architecture "
                + "(Gemma 2 stacks in an encoder–decoder: sandwich norms, soft caps, sliding windows, two token tables); keep it as safetensors");
        if (c.Family == ModelFamily.EncoderDecoder && (c.FinalLogitsBias || c.ScaleEmbeddings || c.EmbeddingNorm
            || c.EncoderPositions.Kind is PositionKind.Learned or PositionKind.Sinusoidal))
            throw new ArgumentException("this model cannot be written as GGUF: llama.cpp has no BART, mBART or Marian architecture "
                + "(learned or sinusoidal positions, embedding scaling or norms, a final logits bias); keep it as safetensors");
        if (c.Family == ModelFamily.EncoderDecoder)
        {
            var p = c.EncoderPositions;
            string? why =
                p.Kind != PositionKind.T5Relative || c.DecoderPositions != p
                    ? $"llama.cpp's T5 graph has T5 relative-position buckets only, and this model's positions are {p.Kind} (encoder) / {c.DecoderPositions.Kind} (decoder)"
                : p.RelativeMaxDistance != 128 ? $"llama.cpp fixes the relative max distance at 128, this model has {p.RelativeMaxDistance}"
                : c.Norm != NormKind.RmsNorm || c.PostNorm || !c.FinalNorm || c.EmbeddingNorm ? "llama.cpp's T5 has pre-norm RMSNorm blocks and a final norm per stack"
                : c.QkvBias || c.OutputBias || c.MlpBias ? "llama.cpp's T5 has no biases"
                : c.KvHeads != c.Heads ? $"T5 attention has as many key/value heads as query heads ({c.KvHeads} ≠ {c.Heads})"
                : c.AttentionScale != 1f ? "llama.cpp's T5 does not scale q·kᵀ (attention scale must be 1)"
                : (c.GatedFfn, c.Activation) is not ((true, ActivationKind.GeluTanh) or (false, ActivationKind.Relu))
                    ? $"llama.cpp's T5 feed-forward is gated tanh-GELU or plain ReLU, not {(c.GatedFfn ? "gated " : "")}{c.Activation}"
                : c.TieEmbeddings && !c.ScaleTiedLogits ? "a tied head without T5's d_model^-0.5 rescale"
                : !c.TieEmbeddings && c.ScaleTiedLogits ? "a logit rescale without a tied head"
                : c.TypeVocabSize != 0 ? "token types"
                : c.Unbalanced ? "llama.cpp's T5 has one width for both stacks (this model's encoder_shape differs)" : null;
            return Problem("t5", why) is { } m ? throw new ArgumentException(m) : "t5";
        }
        if (c.Family == ModelFamily.DecoderOnly && (c.SandwichNorms || c.NormUnitOffset || c.AttentionSoftCap > 0 || c.FinalLogitSoftCap > 0 || c.SlidingWindow > 0))
        {
            var p = c.DecoderPositions;
            float scale = c.DecoderLayers == 46 ? 1 / MathF.Sqrt(c.DModel / c.Heads) : 1 / MathF.Sqrt(c.HeadDim);
            string? why =
                p.Kind != PositionKind.Rope || p.RopeNtkScale != 1 || p.RopeLinearScale != 1 || p.RopeCentered ? $"llama.cpp's gemma2 graph uses plain RoPE, this model's positions are {p.Kind} (or scaled)"
                : c.Norm != NormKind.RmsNorm || !c.NormUnitOffset || !c.SandwichNorms || c.PostNorm || !c.FinalNorm || c.EmbeddingNorm
                    ? "gemma2 has unit-offset RMSNorm sandwich blocks and a final norm"
                : !c.GatedFfn || c.Activation != ActivationKind.GeluTanh ? "gemma2's feed-forward is GeGLU (gated tanh-GELU)"
                : c.QkvBias || c.OutputBias || c.MlpBias || c.FinalLogitsBias ? "biases"
                : !c.ScaleEmbeddings || !c.TieEmbeddings || c.ScaleTiedLogits ? "gemma2 scales the embeddings by √d_model and ties the head to them"
                : !(c.AttentionSoftCap > 0 && c.FinalLogitSoftCap > 0) ? "llama.cpp's gemma2 always soft-caps the scores and the logits (both caps must be set)"
                : c.SlidingWindow > 0 && c.GlobalLayerEvery != 2 ? "llama.cpp's gemma2 slides on every other layer (global_layer_every 2)"
                : (c.AttentionScale ?? 1 / MathF.Sqrt(c.HeadDim)) != scale ? $"llama.cpp's gemma2 scales scores by {scale} (1/√head_dim), not by this model's query_pre_attn_scalar^-0.5"
                : c.TypeVocabSize != 0 ? "token types" : null;
            return Problem("gemma2", why) is { } m ? throw new ArgumentException(m) : "gemma2";
        }
        if (c.Family == ModelFamily.DecoderOnly)
        {
            var p = c.DecoderPositions;
            string? why =
                p.Kind != PositionKind.Rope || p.RopeNtkScale != 1 || p.RopeCentered ? $"llama.cpp's llama graph uses plain RoPE, this model's positions are {p.Kind}"
                : c.Norm != NormKind.RmsNorm || c.PostNorm || !c.FinalNorm || c.EmbeddingNorm ? "llama has pre-norm RMSNorm blocks and a final norm"
                : !c.GatedFfn || c.Activation != ActivationKind.Silu ? "llama's feed-forward is SwiGLU (gated SiLU)"
                : c.QkvBias || c.OutputBias || c.MlpBias ? "biases"
                : c.ScaleTiedLogits || c.ScaleEmbeddings || c.FinalLogitsBias ? "a rescaled tied head, scaled embeddings or a logits bias"
                : c.AttentionScale is float s && s != 1 / MathF.Sqrt(c.HeadDim) ? "attention scaled other than by 1/√head_dim"
                : c.HeadDim % 2 != 0 ? "an odd head dimension"
                : c.TypeVocabSize != 0 ? "token types" : null;
            return Problem("llama", why) is { } m ? throw new ArgumentException(m) : "llama";
        }
        throw new ArgumentException($"this model cannot be written as GGUF: llama.cpp runs encoder–decoder (T5) and decoder-only (llama) models, not {c.Family}");
    }

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> (atomically).</summary>
    public static void Write(LanguageModel model, TextTokenizer? tokenizer, string path, GgufExportOptions? options = null) =>
        Build(model, tokenizer, options ?? new GgufExportOptions()).Write(path);

    /// <summary>The writer holding <paramref name="model"/>'s metadata and tensors (data produced when written).</summary>
    public static GgufWriter Build(LanguageModel model, TextTokenizer? tokenizer, GgufExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (options.Matrices is not (GgmlType.F32 or GgmlType.F16 or GgmlType.Q8_0 or GgmlType.Q4_0))
            throw new ArgumentException($"GGUF export writes f32, f16, q8_0 or q4_0 matrices, not {options.Matrices}");
        var c = model.Config;
        string arch = ArchitectureOf(c);
        if (tokenizer != null && tokenizer.VocabSize > c.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens but the model only {c.VocabSize}");
        var w = new GgufWriter();
        w.Add("general.architecture", GgufValue.Str(arch));
        if (options.Name is { } name) w.Add("general.name", GgufValue.Str(name));
        w.Add("general.file_type", GgufValue.U32(GgufFormat.FileType(options.Matrices)));
        w.Add("general.quantization_version", GgufValue.U32(2));
        w.Add($"{arch}.vocab_size", GgufValue.U32((uint)c.VocabSize));
        w.Add($"{arch}.context_length", GgufValue.U32((uint)c.MaxPositions));
        w.Add($"{arch}.embedding_length", GgufValue.U32((uint)c.DModel));
        w.Add($"{arch}.feed_forward_length", GgufValue.U32((uint)c.FfnDim));
        w.Add($"{arch}.attention.head_count", GgufValue.U32((uint)c.Heads));
        w.Add($"{arch}.attention.head_count_kv", GgufValue.U32((uint)c.KvHeads));
        w.Add($"{arch}.attention.key_length", GgufValue.U32((uint)c.HeadDim));
        w.Add($"{arch}.attention.value_length", GgufValue.U32((uint)c.HeadDim));
        w.Add($"{arch}.attention.layer_norm_rms_epsilon", GgufValue.F32(c.NormEps));
        if (arch == "t5")
        {
            w.Add("t5.block_count", GgufValue.U32((uint)c.EncoderLayers));
            w.Add("t5.decoder_block_count", GgufValue.U32((uint)c.DecoderLayers));
            w.Add("t5.attention.relative_buckets_count", GgufValue.U32((uint)c.EncoderPositions.RelativeBuckets));
            w.Add("t5.decoder_start_token_id", GgufValue.U32((uint)c.DecoderStartTokenId));
        }
        else
        {
            w.Add($"{arch}.block_count", GgufValue.U32((uint)c.DecoderLayers));
            w.Add($"{arch}.rope.dimension_count", GgufValue.U32((uint)c.HeadDim));
            w.Add($"{arch}.rope.freq_base", GgufValue.F32((float)c.DecoderPositions.RopeTheta));
            if (arch == "gemma2")
            {
                w.Add("gemma2.attn_logit_softcapping", GgufValue.F32(c.AttentionSoftCap));
                w.Add("gemma2.final_logit_softcapping", GgufValue.F32(c.FinalLogitSoftCap));
                // No window: one as long as the context slides nowhere.
                w.Add("gemma2.attention.sliding_window", GgufValue.U32((uint)(c.SlidingWindow > 0 ? c.SlidingWindow : c.MaxPositions)));
            }
            if (c.DecoderPositions.RopeLinearScale != 1)
            {
                w.Add("llama.rope.scaling.type", GgufValue.Str("linear"));
                w.Add("llama.rope.scaling.factor", GgufValue.F32((float)c.DecoderPositions.RopeLinearScale));
            }
        }
        AddVocabulary(w, arch, c, tokenizer, options.TokenizerDirectory);
        AddTensors(w, arch, model, options.Matrices);
        return w;
    }

    /// <summary>The GGUF tensor name of an Encore parameter ("t5", "llama" or "gemma2"), or null when it is not written (a tied head).</summary>
    public static string? TensorName(string arch, string encoreName, ModelConfig c)
    {
        if (encoreName == LanguageModel.EmbedTokens) return "token_embd.weight";
        if (encoreName == LanguageModel.LmHead) return c.TieEmbeddings ? null : "output.weight";
        var parts = encoreName.Split('.');
        if (arch == "t5")
        {
            if (parts is [("encoder" or "decoder") and var stack, "relative_attention_bias", "weight"]) return $"{stack[..3]}.blk.0.attn_rel_b.weight";
            if (parts is [("encoder" or "decoder") and var s2, "final_norm", "weight"]) return $"{s2[..3]}.output_norm.weight";
            if (parts is [("encoder" or "decoder") and var s3, "layers", var i, var sub, .. var rest])
            {
                string p = $"{s3[..3]}.blk.{i}.";
                string? n = (sub, rest) switch
                {
                    ("self_attn", [var proj, "weight"]) => "attn_" + Proj(proj, "o"),
                    ("self_attn_norm", ["weight"]) => "attn_norm",
                    ("cross_attn", [var proj, "weight"]) => "cross_attn_" + Proj(proj, "o"),
                    ("cross_attn_norm", ["weight"]) => "cross_attn_norm",
                    ("mlp_norm", ["weight"]) => "ffn_norm",
                    ("mlp", [var proj, "weight"]) => "ffn_" + proj[..proj.IndexOf('_')],
                    _ => null,
                };
                if (n != null) return p + n + ".weight";
            }
        }
        else
        {
            if (encoreName == "decoder.final_norm.weight") return "output_norm.weight";
            if (parts is ["decoder", "layers", var i, var sub, .. var rest])
            {
                string? n = (sub, rest) switch
                {
                    ("self_attn", [var proj, "weight"]) => "attn_" + Proj(proj, "output"),
                    ("self_attn_norm", ["weight"]) => "attn_norm",
                    ("self_attn_post_norm", ["weight"]) when arch == "gemma2" => "post_attention_norm",
                    ("mlp_norm", ["weight"]) => "ffn_norm",
                    ("mlp_post_norm", ["weight"]) when arch == "gemma2" => "post_ffw_norm",
                    ("mlp", [var proj, "weight"]) => "ffn_" + proj[..proj.IndexOf('_')],
                    _ => null,
                };
                if (n != null) return $"blk.{i}.{n}.weight";
            }
        }
        throw new ArgumentException($"GGUF '{arch}' has no tensor for Encore parameter '{encoreName}'");
    }

    static string Proj(string proj, string output) => proj switch
    {
        "q_proj" => "q",
        "k_proj" => "k",
        "v_proj" => "v",
        "o_proj" => output,
        _ => throw new ArgumentException($"unknown attention projection '{proj}'"),
    };

    static void AddTensors(GgufWriter w, string arch, LanguageModel model, GgmlType matrices)
    {
        var c = model.Config;
        foreach (var p in model.Parameters.All)
        {
            var name = TensorName(arch, p.Name, c);
            if (name == null) continue;
            var value = p.Value;
            int rows = value.Rank == 2 ? value.Dim(0) : 1, cols = value.Dim(-1);
            var type = !model.Parameters.MayStayCompact(p.Name) ? GgmlType.F32 : GgufFormat.BlockSize(matrices) > 1 && cols % 32 != 0 ? GgmlType.F16 : matrices;
            long[] ne = value.Rank == 2 ? [cols, rows] : [cols];
            Func<float[], float[]>? transform = null;
            if (arch == "llama" && p.Name.EndsWith(".self_attn.q_proj.weight", StringComparison.Ordinal))
                transform = x => PermuteForNormRope(x, c.Heads, c.HeadDim, cols);
            else if (arch == "llama" && p.Name.EndsWith(".self_attn.k_proj.weight", StringComparison.Ordinal))
                transform = x => PermuteForNormRope(x, c.KvHeads, c.HeadDim, cols);
            else if (arch == "gemma2" && p.Name.EndsWith("norm.weight", StringComparison.Ordinal))
                transform = AddOne;
            w.AddTensor(name, ne, type, s => WriteData(s, value, rows, cols, type, transform));
        }
        // llama.cpp's tied T5 head reads token_embd unscaled: write the rescaled copy as output.
        if (arch == "t5" && c.TieEmbeddings)
        {
            var embed = model.Parameters[LanguageModel.EmbedTokens].Value;
            float scale = 1 / MathF.Sqrt(c.DModel);
            var type = GgufFormat.BlockSize(matrices) > 1 && c.DModel % 32 != 0 ? GgmlType.F16 : matrices;
            w.AddTensor("output.weight", [c.DModel, c.VocabSize], type, s => WriteData(s, embed, c.VocabSize, c.DModel, type, x =>
            {
                for (int i = 0; i < x.Length; i++) x[i] *= scale;
                return x;
            }));
        }
    }

    // Gemma's RMSNorm scale 1 + w as llama.cpp multiplies by it (convert_hf_to_gguf.py Gemma2Model: data_torch + 1).
    static float[] AddOne(float[] x)
    {
        for (int i = 0; i < x.Length; i++) x[i] += 1;
        return x;
    }

    /// <summary>
    /// Rows of q or k from Hugging Face's half-split RoPE order to llama.cpp's adjacent pairs:
    /// convert_hf_to_gguf.py reshapes (heads, 2, hd/2, D), swaps axes 1 and 2, and flattens, so new
    /// row h·hd + 2j + t is old row h·hd + t·hd/2 + j.
    /// </summary>
    public static float[] PermuteForNormRope(float[] w, int heads, int headDim, int cols)
    {
        if (w.Length != heads * headDim * cols) throw new ArgumentException($"{w.Length} values is not {heads}×{headDim}×{cols}");
        var dst = new float[w.Length];
        int half = headDim / 2;
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < half; j++)
                for (int t = 0; t < 2; t++)
                    w.AsSpan((h * headDim + t * half + j) * cols, cols).CopyTo(dst.AsSpan((h * headDim + 2 * j + t) * cols, cols));
        return dst;
    }

    static void WriteData(Stream s, Tensor value, int rows, int cols, GgmlType type, Func<float[], float[]>? transform)
    {
        float[] data = value.ToFloatArray();
        if (transform != null) data = transform(data);
        switch (type)
        {
            case GgmlType.F32:
                s.Write(MemoryMarshal.AsBytes(data.AsSpan()));
                break;
            case GgmlType.F16:
            {
                var row = new ushort[cols];
                for (int r = 0; r < rows; r++)
                {
                    Half16.FromSingle(data.AsSpan(r * cols, cols), row);
                    s.Write(MemoryMarshal.AsBytes(row.AsSpan()));
                }
                break;
            }
            case GgmlType.Q8_0:
            {
                var blocks = new BlockQ8_0[cols / DTypes.Q8BlockSize];
                for (int r = 0; r < rows; r++)
                {
                    Q8.Quantize(data.AsSpan(r * cols, cols), blocks);
                    s.Write(MemoryMarshal.AsBytes(blocks.AsSpan()));
                }
                break;
            }
            case GgmlType.Q4_0:
            {
                var blocks = new BlockQ4_0[cols / DTypes.Q4BlockSize];
                for (int r = 0; r < rows; r++)
                {
                    Q4.Quantize(data.AsSpan(r * cols, cols), blocks);
                    s.Write(MemoryMarshal.AsBytes(blocks.AsSpan()));
                }
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    static void AddVocabulary(GgufWriter w, string arch, ModelConfig c, TextTokenizer? tokenizer, string? dir)
    {
        int v = c.VocabSize;
        string model;
        string[] tokens = new string[v];
        float[] scores = new float[v];
        int[] types = new int[v];
        string[]? merges = null;
        byte[]? charsMap = null;
        (bool AddSpacePrefix, bool RemoveExtraWhitespaces)? normalizer = null;
        int? bos, eos, unk, pad;
        bool addBos, addEos;
        if (tokenizer is SentencePieceTextTokenizer sp)
        {
            var bytes = File.ReadAllBytes(sp.Path);
            var proto = SentencePieceModelProto.Parse(sp.Path, bytes);
            // llama.cpp's "t5" vocabulary is SentencePiece unigram (UGM), "llama" SentencePiece BPE (SPM).
            model = proto.ModelType == 2 ? "llama" : "t5";
            for (int i = 0; i < v; i++)
            {
                if (i < proto.Pieces.Count)
                {
                    var piece = proto.Pieces[i];
                    (tokens[i], scores[i], types[i]) = (piece.Text, piece.Score, (int)piece.Type);
                }
                else if (tokenizer.IdToToken(i) is { } added)
                    (tokens[i], types[i]) = (added, tokenizer.IsSpecial(i) ? TokenControl : TokenUserDefined);
                else
                    (tokens[i], types[i]) = ($"[PAD{i}]", TokenUnused);
            }
            if (proto.CharsMapSpan is { Offset: >= 0, Length: > 0 } span) charsMap = bytes.AsSpan(span.Offset, span.Length).ToArray();
            // convert_hf_to_gguf.py copies the normalizer flags the unigram tokenizer of llama.cpp reads.
            normalizer = (proto.AddDummyPrefix, proto.RemoveExtraWhitespaces);
            (bos, eos, unk, pad) = (tokenizer.BosId, tokenizer.EosId, tokenizer.UnkId, tokenizer.PadId);
            (addBos, addEos) = (tokenizer.AddsBos, tokenizer.AddsEos);
        }
        else if (tokenizer is ByteLevelBpeTextTokenizer bpe)
        {
            model = "gpt2";
            for (int i = 0; i < v; i++)
            {
                if (bpe.IdToToken(i) is { } t) (tokens[i], types[i]) = (t, bpe.IsSpecial(i) ? TokenControl : TokenNormal);
                else (tokens[i], types[i]) = ($"[PAD{i}]", TokenUnused);
            }
            merges = ReadMerges(dir) ?? throw new ArgumentException("a byte-level BPE vocabulary needs its merges: give the checkpoint directory (tokenizer.json or merges.txt)");
            (bos, eos, unk, pad) = (tokenizer.BosId, tokenizer.EosId, tokenizer.UnkId, tokenizer.PadId);
            (addBos, addEos) = (tokenizer.AddsBos, tokenizer.AddsEos);
        }
        else if (tokenizer is null)
        {
            (model, bos, eos, unk, pad, addBos, addEos) = SyntheticVocabulary(arch, c, tokens, scores, types);
        }
        else throw new ArgumentException($"a {tokenizer.Kind} tokenizer has no GGUF form here (SentencePiece and byte-level BPE do)");

        w.Add("tokenizer.ggml.model", GgufValue.Str(model));
        w.Add("tokenizer.ggml.tokens", GgufValue.Strings(tokens));
        w.Add("tokenizer.ggml.scores", GgufValue.Floats(scores));
        w.Add("tokenizer.ggml.token_type", GgufValue.Ints(types));
        if (merges != null) w.Add("tokenizer.ggml.merges", GgufValue.Strings(merges));
        if (charsMap != null) w.Add("tokenizer.ggml.precompiled_charsmap", new GgufValue(GgufValueType.Array, charsMap, GgufValueType.UInt8));
        if (normalizer is { } n)
        {
            w.Add("tokenizer.ggml.add_space_prefix", GgufValue.Bool(n.AddSpacePrefix));
            w.Add("tokenizer.ggml.remove_extra_whitespaces", GgufValue.Bool(n.RemoveExtraWhitespaces));
        }
        if (bos is { } b && b < v) w.Add("tokenizer.ggml.bos_token_id", GgufValue.U32((uint)b));
        if (eos is { } e && e < v) w.Add("tokenizer.ggml.eos_token_id", GgufValue.U32((uint)e));
        if (unk is { } u && u < v) w.Add("tokenizer.ggml.unknown_token_id", GgufValue.U32((uint)u));
        if (pad is { } p && p < v) w.Add("tokenizer.ggml.padding_token_id", GgufValue.U32((uint)p));
        w.Add("tokenizer.ggml.add_bos_token", GgufValue.Bool(addBos));
        w.Add("tokenizer.ggml.add_eos_token", GgufValue.Bool(addEos));
        // The checkpoint's Hugging Face chat template, under the key llama.cpp reads it from.
        if (tokenizer?.ChatTemplate is { } chat) w.Add("tokenizer.chat_template", GgufValue.Str(chat.Template));
    }

    /// <summary>
    /// A placeholder vocabulary for a model without tokenizer files (random-weight benchmarks): the
    /// config's pad/eos/bos ids as control tokens, one unknown token, for "llama" and "gemma2" the 256 byte tokens
    /// llama.cpp's SentencePiece-BPE vocabulary looks up (byte fallback, the newline token), and
    /// distinct placeholder pieces for the rest. Ids are what llama.cpp runs on; text is not meaningful.
    /// </summary>
    static (string Model, int? Bos, int? Eos, int? Unk, int? Pad, bool AddBos, bool AddEos) SyntheticVocabulary(
        string arch, ModelConfig c, string[] tokens, float[] scores, int[] types)
    {
        int v = c.VocabSize;
        Array.Fill(types, 0);
        void Set(int id, string text, int type)
        {
            if (id >= 0 && id < v && types[id] == 0) (tokens[id], types[id]) = (text, type);
        }
        Set(c.PadTokenId, "<pad>", TokenControl);
        Set(c.EosTokenId, "</s>", TokenControl);
        if (c.BosTokenId >= 0) Set(c.BosTokenId, "<s>", TokenControl);
        int next = 0;
        int NextFree()
        {
            while (next < v && types[next] != 0) next++;
            return next;
        }
        int unk = NextFree();
        Set(unk, "<unk>", TokenUnknown);
        if (arch is ("llama" or "gemma2") && v >= 256 + 8)
            for (int b = 0; b < 256; b++) Set(NextFree(), $"<0x{b:X2}>", TokenByte);
        for (int i = 0; i < v; i++)
        {
            if (types[i] != 0) continue;
            (tokens[i], types[i], scores[i]) = ($"\u2581t{i}", TokenNormal, -i);
        }
        return (arch == "t5" ? "t5" : "llama", c.BosTokenId >= 0 ? c.BosTokenId : null, c.EosTokenId, unk < v ? unk : null, c.PadTokenId,
            c.BosTokenId >= 0 && arch is ("llama" or "gemma2"), arch == "t5");
    }

    /// <summary>BPE merges ("left right") from tokenizer.json's model.merges (strings or pairs) or merges.txt.</summary>
    static string[]? ReadMerges(string? dir)
    {
        if (dir is null) return null;
        var json = Path.Combine(dir, TokenizerLoader.TokenizerJson);
        if (File.Exists(json))
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(json), new JsonDocumentOptions { MaxDepth = 64 });
            if (doc.RootElement.TryGetProperty("model", out var m) && m.TryGetProperty("merges", out var list) && list.ValueKind == JsonValueKind.Array)
                return list.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Array
                    ? $"{e[0].GetString()} {e[1].GetString()}"
                    : e.GetString() ?? throw new CheckpointFormatException($"{json}: a merge is not a string")).ToArray();
        }
        var txt = Path.Combine(dir, TokenizerLoader.MergesTxt);
        if (File.Exists(txt))
            return File.ReadAllLines(txt).Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal)).ToArray();
        return null;
    }
}
