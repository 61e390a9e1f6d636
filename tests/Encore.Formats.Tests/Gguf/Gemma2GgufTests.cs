using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Formats.Gguf;
using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Formats.Tests.Gguf;

// Gemma 2 to GGUF "gemma2" as convert_hf_to_gguf.py's Gemma2Model writes it: the metadata llama.cpp reads,
// the sandwich-norm tensors, norms stored as 1 + w, q and k unpermuted; and the file read back into a model
// of the same configuration gives the same logits.
public sealed partial class GgufTests
{
    // The parity fixture with scores scaled by 1/√head_dim, as llama.cpp's gemma2 graph scales them.
    string Gemma2WithHeadDimScale()
    {
        var dir = Temp("gemma2-hd");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(Fixture("gemma2"), "model.safetensors"), Path.Combine(dir, "model.safetensors"));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture("gemma2"), "config.json")))!.AsObject();
        json["query_pre_attn_scalar"] = 16;
        File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString());
        return dir;
    }

    [Fact]
    public void Gemma2_exports_with_llama_cpp_names_keys_and_unit_offset_norms()
    {
        using var model = Checkpoint.Load(Gemma2WithHeadDimScale());
        var path = Temp("gemma2.gguf");
        GgufExport.Write(model, null, path);
        var r = GgufReader.Open(path);
        Assert.Equal("gemma2", r["general.architecture"].Value);
        Assert.Equal((4u, 64u, 96u, 4u, 2u, 16u), ((uint)r["gemma2.block_count"].Value, (uint)r["gemma2.embedding_length"].Value, (uint)r["gemma2.feed_forward_length"].Value,
            (uint)r["gemma2.attention.head_count"].Value, (uint)r["gemma2.attention.head_count_kv"].Value, (uint)r["gemma2.attention.key_length"].Value));
        Assert.Equal((5f, 3f, 8u), ((float)r["gemma2.attn_logit_softcapping"].Value, (float)r["gemma2.final_logit_softcapping"].Value, (uint)r["gemma2.attention.sliding_window"].Value));
        Assert.Equal(1e-6f, r["gemma2.attention.layer_norm_rms_epsilon"].Value);
        // Tied head: no output tensor; 11 per layer (q, k, v, o, gate, up, down and four norms).
        Assert.Equal(["output_norm.weight", "token_embd.weight"], r.Tensors.Select(t => t.Name).Where(n => !n.StartsWith("blk.")).Order());
        Assert.Equal(11 * 4, r.Tensors.Count(t => t.Name.StartsWith("blk.")));
        var post = model.Parameters["decoder.layers.2.mlp_post_norm.weight"].Value.ToFloatArray();
        Assert.Equal(post.Select(w => w + 1).ToArray(), Floats(r, r.Tensor("blk.2.post_ffw_norm.weight")!));
        Assert.Equal(model.Parameters["decoder.layers.1.self_attn_post_norm.weight"].Value.ToFloatArray().Select(w => w + 1).ToArray(),
            Floats(r, r.Tensor("blk.1.post_attention_norm.weight")!));
        Assert.Equal(model.Parameters["decoder.layers.0.self_attn.q_proj.weight"].Value.ToFloatArray(), Floats(r, r.Tensor("blk.0.attn_q.weight")!));
        // Without tokenizer files: llama.cpp's SentencePiece-BPE placeholder, bos added as Gemma does.
        Assert.Equal(("llama", true), ((string)r["tokenizer.ggml.model"].Value, (bool)r["tokenizer.ggml.add_bos_token"].Value));
    }

    [Fact]
    public void Gemma2_with_a_gemma_tokenizer_writes_its_sentencepiece_vocabulary()
    {
        var tok = TokenizerLoader.FromDirectory(Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", "gemma"));
        var (c, _) = Checkpoint.ReadConfig(Fixture("gemma2"));
        using var model = LanguageModel.Create(c with { AttentionScale = 0.25f, VocabSize = tok.VocabSize, MaxPositions = 64 }, seed: 2);
        var path = Temp("gemma2-tok.gguf");
        GgufExport.Write(model, tok, path);
        var r = GgufReader.Open(path);
        Assert.Equal("llama", r["tokenizer.ggml.model"].Value);
        Assert.Equal(false, r["tokenizer.ggml.add_space_prefix"].Value);
        Assert.Equal((2u, 1u, 0u), ((uint)r["tokenizer.ggml.bos_token_id"].Value, (uint)r["tokenizer.ggml.eos_token_id"].Value, (uint)r["tokenizer.ggml.padding_token_id"].Value));
        var tokens = (string[])r["tokenizer.ggml.tokens"].Value;
        Assert.Equal("<start_of_turn>", tokens[4]);
    }

    [Fact]
    public void Gemma2_gguf_read_back_gives_the_same_logits()
    {
        using var model = (DecoderOnlyModel)Checkpoint.Load(Gemma2WithHeadDimScale());
        var path = Temp("gemma2-back.gguf");
        GgufExport.Write(model, null, path);
        var r = GgufReader.Open(path);
        using var back = new DecoderOnlyModel(model.Config, seed: 99);
        foreach (var p in back.Parameters.All.ToArray())
        {
            var name = GgufExport.TensorName("gemma2", p.Name, back.Config)!;
            var values = Floats(r, r.Tensor(name)!);
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) values = values.Select(x => x - 1).ToArray();
            values.CopyTo(p.Value.AsSpan<float>());
        }
        int[] ids = [5, 17, 3, 88, 41, 9, 60, 22, 71, 14, 30, 2];
        Assert.Equal(model.Forward(ids, 1).Value.ToFloatArray(), back.Forward(ids, 1).Value.ToFloatArray());
    }

    [Fact]
    public void Gemma2_models_llama_cpp_cannot_compute_are_refused_naming_why()
    {
        var (c, _) = Checkpoint.ReadConfig(Fixture("gemma2"));
        Assert.Contains("scales scores by 0.25 (1/√head_dim), not by this model's query_pre_attn_scalar",
            Assert.Throws<ArgumentException>(() => GgufExport.ArchitectureOf(c)).Message);
        var hd = c with { AttentionScale = 0.25f };
        Assert.Equal("gemma2", GgufExport.ArchitectureOf(hd));
        Assert.Contains("both caps must be set", Assert.Throws<ArgumentException>(() => GgufExport.ArchitectureOf(hd with { FinalLogitSoftCap = 0 })).Message);
        Assert.Contains("every other layer", Assert.Throws<ArgumentException>(() => GgufExport.ArchitectureOf(hd with { GlobalLayerEvery = 0 })).Message);
        Assert.Contains("ties the head", Assert.Throws<ArgumentException>(() => GgufExport.ArchitectureOf(hd with { TieEmbeddings = false })).Message);
        // A llama-shaped model that soft-caps is not silently written as "llama".
        var llama = Presets.Get("tiny-decoder") with { Activation = Encore.Tensors.Kernels.ActivationKind.Silu, GatedFfn = true, EncoderPositions = new PositionConfig { Kind = PositionKind.None }, AttentionSoftCap = 5 };
        Assert.Throws<ArgumentException>(() => GgufExport.ArchitectureOf(llama));
        // T5Gemma has no llama.cpp architecture.
        var (t5gemma, _) = Checkpoint.ReadConfig(Fixture("t5gemma"));
        Assert.Contains("llama.cpp has no T5Gemma architecture", Assert.Throws<ArgumentException>(() => GgufExport.ArchitectureOf(t5gemma)).Message);
    }
}
