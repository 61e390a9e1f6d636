using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Encore.Formats;
using Encore.Formats.Checkpoints;
using Encore.Formats.Gguf;
using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Tensors;
using Encore.Tensors.Numerics;

namespace Encore.Formats.Tests.Gguf;

public sealed partial class GgufTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "encore-gguf-" + Guid.NewGuid().ToString("N")[..8]);

    public GgufTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    string Temp(string name) => Path.Combine(_dir, name);

    [Fact]
    public void Header_bytes_follow_the_spec()
    {
        var path = Temp("h.gguf");
        new GgufWriter().Add("general.architecture", GgufValue.Str("t5"))
            .AddTensor("a", [3], GgmlType.F32, s => s.Write(MemoryMarshal.AsBytes<float>([1f, 2f, 3f])))
            .Write(path);
        var b = File.ReadAllBytes(path);
        // "GGUF", version 3, 1 tensor, 2 metadata pairs (general.alignment is added).
        Assert.Equal("GGUF"u8.ToArray(), b[..4]);
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(4)));
        Assert.Equal(1ul, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(8)));
        Assert.Equal(2ul, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(16)));
        // First pair: u64 key length 20, the key, u32 type 8 (string), u64 length 2, "t5".
        Assert.Equal(20ul, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(24)));
        Assert.Equal("general.architecture", Encoding.UTF8.GetString(b, 32, 20));
        Assert.Equal(8u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(52)));
        Assert.Equal(2ul, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(56)));
        Assert.Equal("t5", Encoding.UTF8.GetString(b, 64, 2));
        // Second pair: general.alignment, u32 (type 4) 32.
        Assert.Equal(17ul, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(66)));
        Assert.Equal("general.alignment", Encoding.UTF8.GetString(b, 74, 17));
        Assert.Equal(4u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(91)));
        Assert.Equal(32u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(95)));
        // Tensor info: name "a", 1 dim of 3, type 0 (F32), offset 0; then padding to 32 and the data.
        Assert.Equal(1ul, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(99)));
        Assert.Equal((byte)'a', b[107]);
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(108)));
        Assert.Equal(3ul, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(112)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(120)));
        Assert.Equal(0ul, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(124)));
        Assert.All(b[132..160], x => Assert.Equal(0, x));
        Assert.Equal(2f, BinaryPrimitives.ReadSingleLittleEndian(b.AsSpan(164)));
        Assert.Equal(160 + 32, b.Length);
    }

    [Fact]
    public void Metadata_and_tensors_round_trip()
    {
        var path = Temp("rt.gguf");
        var f32 = Enumerable.Range(0, 64).Select(i => i * 0.25f - 3).ToArray();
        var blocks = new BlockQ8_0[2];
        Q8.Quantize(f32, blocks);
        new GgufWriter()
            .Add("u8", new GgufValue(GgufValueType.UInt8, (byte)7))
            .Add("i16", new GgufValue(GgufValueType.Int16, (short)-5))
            .Add("u32", GgufValue.U32(123456))
            .Add("i32", GgufValue.I32(-9))
            .Add("f32", GgufValue.F32(1e-6f))
            .Add("b", GgufValue.Bool(true))
            .Add("s", GgufValue.Str("héllo ▁"))
            .Add("u64", new GgufValue(GgufValueType.UInt64, ulong.MaxValue))
            .Add("f64", new GgufValue(GgufValueType.Float64, Math.PI))
            .Add("strs", GgufValue.Strings(["a", "", "▁b"]))
            .Add("floats", GgufValue.Floats([0.5f, -1f]))
            .Add("ints", GgufValue.Ints([1, -2, 3]))
            .AddTensor("x.f32", [16, 4], GgmlType.F32, s => s.Write(MemoryMarshal.AsBytes(f32.AsSpan())))
            .AddTensor("x.f16", [64], GgmlType.F16, s => { var h = new ushort[64]; Half16.FromSingle(f32, h); s.Write(MemoryMarshal.AsBytes(h.AsSpan())); })
            .AddTensor("x.q8", [32, 2], GgmlType.Q8_0, s => s.Write(MemoryMarshal.AsBytes(blocks.AsSpan())))
            .Write(path);
        var r = GgufReader.Open(path);
        Assert.Equal(3u, r.Version);
        Assert.Equal(["u8", "i16", "u32", "i32", "f32", "b", "s", "u64", "f64", "strs", "floats", "ints", "general.alignment"], r.Keys);
        Assert.Equal((byte)7, r["u8"].Value);
        Assert.Equal((short)-5, r["i16"].Value);
        Assert.Equal(123456u, r["u32"].Value);
        Assert.Equal(-9, r["i32"].Value);
        Assert.Equal(1e-6f, r["f32"].Value);
        Assert.Equal(true, r["b"].Value);
        Assert.Equal("héllo ▁", r["s"].Value);
        Assert.Equal(ulong.MaxValue, r["u64"].Value);
        Assert.Equal(Math.PI, r["f64"].Value);
        Assert.Equal(new[] { "a", "", "▁b" }, (string[])r["strs"].Value);
        Assert.Equal(GgufValueType.String, r["strs"].ElementType);
        Assert.Equal(new[] { 0.5f, -1f }, (float[])r["floats"].Value);
        Assert.Equal(new[] { 1, -2, 3 }, (int[])r["ints"].Value);
        Assert.Equal(["x.f32", "x.f16", "x.q8"], r.Tensors.Select(t => t.Name));
        var t32 = r.Tensor("x.f32")!;
        Assert.Equal(new long[] { 4, 16 }, t32.Shape);
        Assert.Equal(f32, MemoryMarshal.Cast<byte, float>(r.ReadTensorBytes(t32)).ToArray());
        var t16 = r.Tensor("x.f16")!;
        Assert.Equal(128, t16.ByteCount);
        var halves = MemoryMarshal.Cast<byte, ushort>(r.ReadTensorBytes(t16)).ToArray();
        Assert.Equal(f32, halves.Select(Half16.ToSingle));   // every value is exact in binary16
        var tq = r.Tensor("x.q8")!;
        Assert.Equal(68, tq.ByteCount);
        Assert.Equal(MemoryMarshal.AsBytes(blocks.AsSpan()).ToArray(), r.ReadTensorBytes(tq));
        Assert.All(r.Tensors, t => Assert.Equal(0, (t.Offset - r.DataOffset) % 32));
        Assert.Equal(0, r.DataOffset % 32);
    }

    [Theory]
    [InlineData(0, "not a GGUF file")]
    [InlineData(1, "version")]
    [InlineData(2, "exceed")]
    [InlineData(3, "ends inside")]
    public void Damaged_headers_fail_naming_the_file(int damage, string expected)
    {
        var path = Temp("d.gguf");
        new GgufWriter().Add("k", GgufValue.Str("value")).AddTensor("t", [4], GgmlType.F32, s => s.Write(new byte[16])).Write(path);
        var b = File.ReadAllBytes(path);
        switch (damage)
        {
            case 0: b[0] = (byte)'X'; break;
            case 1: BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), 9); break;
            case 2: BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(16), ulong.MaxValue / 2); break;
            case 3: b = b[..40]; break;
        }
        File.WriteAllBytes(path, b);
        var e = Assert.Throws<CheckpointFormatException>(() => GgufReader.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Rope_rows_move_from_half_split_to_adjacent_pairs()
    {
        // One head of 4 rows, 1 column: rows (x0, x1 | y0, y1) become pairs (x0, y0), (x1, y1).
        Assert.Equal(new[] { 0f, 2f, 1f, 3f }, GgufExport.PermuteForNormRope([0, 1, 2, 3], 1, 4, 1));
        // Two heads of 4, 2 columns: each head is permuted on its own.
        float[] w = Enumerable.Range(0, 16).Select(i => (float)i).ToArray();
        Assert.Equal(new float[] { 0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15 }, GgufExport.PermuteForNormRope(w, 2, 4, 2));
    }

    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.Q8_0)]
    public void T5_checkpoint_exports_with_llama_cpp_names_keys_and_data(GgmlType type)
    {
        using var model = Checkpoint.Load(Fixture("t5_v1_0"));
        var c = model.Config;
        var path = Temp("t5.gguf");
        GgufExport.Write(model, null, path, new GgufExportOptions { Matrices = type });
        var r = GgufReader.Open(path);
        Assert.Equal("t5", r["general.architecture"].Value);
        Assert.Equal(GgufFormat.FileType(type), r["general.file_type"].Value);
        Assert.Equal(16u, r["t5.embedding_length"].Value);
        Assert.Equal(2u, r["t5.block_count"].Value);
        Assert.Equal(2u, r["t5.decoder_block_count"].Value);
        Assert.Equal(2u, r["t5.attention.head_count"].Value);
        Assert.Equal(6u, r["t5.attention.key_length"].Value);
        Assert.Equal(32u, r["t5.feed_forward_length"].Value);
        Assert.Equal(16u, r["t5.attention.relative_buckets_count"].Value);
        Assert.Equal(0u, r["t5.decoder_start_token_id"].Value);
        Assert.Equal(1e-6f, r["t5.attention.layer_norm_rms_epsilon"].Value);
        Assert.Equal("t5", r["tokenizer.ggml.model"].Value);
        var tokens = (string[])r["tokenizer.ggml.tokens"].Value;
        Assert.Equal(64, tokens.Length);
        Assert.Equal(64, tokens.Distinct().Count());
        Assert.Equal(("<pad>", "</s>"), (tokens[0], tokens[1]));
        Assert.Equal(3, ((int[])r["tokenizer.ggml.token_type"].Value)[1]);

        // Two stacks of two layers: 5 tensors per encoder layer (q, k, v, o … 4 + 2 norms + 2 ffn = 8),
        // 13 per decoder layer, 2 relative tables, 2 final norms, embedding and (tied, rescaled) output.
        var names = r.Tensors.Select(t => t.Name).ToHashSet();
        foreach (var n in new[] { "token_embd.weight", "output.weight", "enc.output_norm.weight", "dec.output_norm.weight",
            "enc.blk.0.attn_rel_b.weight", "dec.blk.0.attn_rel_b.weight", "enc.blk.1.attn_q.weight", "enc.blk.1.attn_o.weight",
            "enc.blk.0.ffn_up.weight", "enc.blk.0.ffn_down.weight", "enc.blk.0.ffn_norm.weight", "enc.blk.0.attn_norm.weight",
            "dec.blk.1.cross_attn_k.weight", "dec.blk.1.cross_attn_o.weight", "dec.blk.1.cross_attn_norm.weight", "dec.blk.0.attn_v.weight" })
            Assert.Contains(n, names);
        Assert.Equal(2 * 8 + 2 * 13 + 2 + 2 + 2, r.Tensors.Count);
        Assert.DoesNotContain(r.Tensors, t => t.Name.Contains("gate"));   // relu T5 has no gate

        var rel = r.Tensor("enc.blk.0.attn_rel_b.weight")!;
        Assert.Equal(new long[] { 2, 16 }, rel.Ne);                       // {n_head, buckets}
        Assert.Equal(GgmlType.F32, rel.Type);
        Assert.Equal(model.Parameters["encoder.relative_attention_bias.weight"].Value.ToFloatArray(), Floats(r, rel));
        Assert.Equal(GgmlType.F32, r.Tensor("dec.blk.0.cross_attn_norm.weight")!.Type);

        var q = r.Tensor("dec.blk.1.cross_attn_q.weight")!;
        Assert.Equal(new long[] { 16, 12 }, q.Ne);                        // {d_model, heads·d_kv}
        var expected = model.Parameters["decoder.layers.1.cross_attn.q_proj.weight"].Value.ToFloatArray();
        // Q8_0 needs rows of 32 values: these 16-wide rows fall back to F16.
        Assert.Equal(type == GgmlType.Q8_0 ? GgmlType.F16 : type, q.Type);
        AssertData(r, q, expected, 16);

        var output = r.Tensor("output.weight")!;
        var embed = model.Parameters[LanguageModel.EmbedTokens].Value.ToFloatArray();
        AssertData(r, output, embed.Select(x => x / MathF.Sqrt(16)).ToArray(), 16);
    }

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    public void Quantized_matrices_hold_ggml_blocks(GgmlType type)
    {
        var config = Presets.Get("tiny-decoder") with
        {
            Activation = Encore.Tensors.Kernels.ActivationKind.Silu, GatedFfn = true, TieEmbeddings = false,
            EncoderPositions = new PositionConfig { Kind = PositionKind.None }, BosTokenId = 1, EosTokenId = 2,
        };
        using var model = LanguageModel.Create(config, seed: 3);
        var path = Temp("q.gguf");
        GgufExport.Write(model, null, path, new GgufExportOptions { Matrices = type });
        var r = GgufReader.Open(path);
        var up = r.Tensor("blk.2.ffn_up.weight")!;
        Assert.Equal(type, up.Type);
        Assert.Equal(new long[] { 32, 64 }, up.Ne);
        var values = model.Parameters["decoder.layers.2.mlp.up_proj.weight"].Value.ToFloatArray();
        byte[] expected;
        if (type == GgmlType.Q8_0)
        {
            var blocks = new BlockQ8_0[64];
            Q8.Quantize(values, blocks);
            expected = MemoryMarshal.AsBytes(blocks.AsSpan()).ToArray();
        }
        else
        {
            var blocks = new BlockQ4_0[64];
            Q4.Quantize(values, blocks);
            expected = MemoryMarshal.AsBytes(blocks.AsSpan()).ToArray();
        }
        Assert.Equal(64 * GgufFormat.BlockBytes(type), expected.Length);
        Assert.Equal(expected, r.ReadTensorBytes(up));
        Assert.Equal(GgmlType.F32, r.Tensor("blk.0.attn_norm.weight")!.Type);
        Assert.Equal(type == GgmlType.Q8_0 ? 7u : 2u, r["general.file_type"].Value);
    }

    [Fact]
    public void Llama_checkpoint_exports_with_permuted_q_and_k()
    {
        using var model = Checkpoint.Load(Fixture("llama"));
        var c = model.Config;
        var path = Temp("llama.gguf");
        GgufExport.Write(model, null, path);
        var r = GgufReader.Open(path);
        Assert.Equal("llama", r["general.architecture"].Value);
        Assert.Equal(2u, r["llama.block_count"].Value);
        Assert.Equal(4u, r["llama.attention.head_count"].Value);
        Assert.Equal(2u, r["llama.attention.head_count_kv"].Value);
        Assert.Equal(8u, r["llama.rope.dimension_count"].Value);
        Assert.Equal(10000f, r["llama.rope.freq_base"].Value);
        Assert.Equal("linear", r["llama.rope.scaling.type"].Value);
        Assert.Equal(2f, r["llama.rope.scaling.factor"].Value);
        Assert.Equal(1e-5f, r["llama.attention.layer_norm_rms_epsilon"].Value);
        Assert.Equal("llama", r["tokenizer.ggml.model"].Value);
        Assert.Equal(1u, r["tokenizer.ggml.bos_token_id"].Value);
        Assert.Equal(true, r["tokenizer.ggml.add_bos_token"].Value);
        Assert.Equal(["output.weight", "output_norm.weight", "token_embd.weight"], r.Tensors.Select(t => t.Name).Where(n => !n.StartsWith("blk.")).Order());
        Assert.Equal(9 * 2, r.Tensors.Count(t => t.Name.StartsWith("blk.")));
        var k = r.Tensor("blk.1.attn_k.weight")!;
        Assert.Equal(new long[] { 32, 16 }, k.Ne);
        var hf = model.Parameters["decoder.layers.1.self_attn.k_proj.weight"].Value.ToFloatArray();
        var got = Floats(r, k);
        // Row 1 of kv head 0 is old row 4 (the second half's first entry); row 9 of head 1 is old 12.
        Assert.Equal(hf.AsSpan(4 * 32, 32).ToArray(), got.AsSpan(1 * 32, 32).ToArray());
        Assert.Equal(hf.AsSpan(12 * 32, 32).ToArray(), got.AsSpan(9 * 32, 32).ToArray());
        Assert.Equal(GgufExport.PermuteForNormRope(model.Parameters["decoder.layers.0.self_attn.q_proj.weight"].Value.ToFloatArray(), 4, 8, 32),
            Floats(r, r.Tensor("blk.0.attn_q.weight")!));
        Assert.Equal(model.Parameters["decoder.layers.0.self_attn.v_proj.weight"].Value.ToFloatArray(), Floats(r, r.Tensor("blk.0.attn_v.weight")!));
        Assert.NotNull(r.Tensor("blk.0.attn_output.weight"));
    }

    [Fact]
    public void SentencePiece_and_bpe_vocabularies_are_embedded()
    {
        var t5dir = TokenizerFixtureDir("t5");
        var tok = TokenizerLoader.FromDirectory(t5dir);
        var config = Presets.Get("tiny-encdec") with
        {
            VocabSize = tok.VocabSize + 3, KvHeads = 4, Activation = Encore.Tensors.Kernels.ActivationKind.Relu, AttentionScale = 1f,
            EncoderPositions = new PositionConfig { Kind = PositionKind.T5Relative }, DecoderPositions = new PositionConfig { Kind = PositionKind.T5Relative },
            TieEmbeddings = false,
        };
        using var model = LanguageModel.Create(config, seed: 1);
        var path = Temp("sp.gguf");
        GgufExport.Write(model, tok, path);
        var r = GgufReader.Open(path);
        Assert.Equal("t5", r["tokenizer.ggml.model"].Value);
        var tokens = (string[])r["tokenizer.ggml.tokens"].Value;
        var types = (int[])r["tokenizer.ggml.token_type"].Value;
        Assert.Equal(config.VocabSize, tokens.Length);
        Assert.Equal(tok.IdToToken(10), tokens[10]);
        Assert.Equal(tok.EosId, (int)(uint)r["tokenizer.ggml.eos_token_id"].Value);
        Assert.Equal(5, types[^1]);                                      // padding entries are unused
        Assert.Contains(((float[])r["tokenizer.ggml.scores"].Value).Take(tok.VocabSize), s => s < 0);
        Assert.Equal(true, r["tokenizer.ggml.add_eos_token"].Value);
        Assert.Equal(true, r["tokenizer.ggml.add_space_prefix"].Value);
        Assert.Equal(GgufValueType.Bool, r["tokenizer.ggml.remove_extra_whitespaces"].Type);

        var gptDir = TokenizerFixtureDir("gpt2");
        var bpe = TokenizerLoader.FromDirectory(gptDir);
        var llama = Presets.Get("tiny-decoder") with
        {
            VocabSize = bpe.VocabSize, Activation = Encore.Tensors.Kernels.ActivationKind.Silu, GatedFfn = true,
            EncoderPositions = new PositionConfig { Kind = PositionKind.None },
        };
        using var m2 = LanguageModel.Create(llama, seed: 1);
        var p2 = Temp("bpe.gguf");
        GgufExport.Write(m2, bpe, p2, new GgufExportOptions { TokenizerDirectory = gptDir });
        var r2 = GgufReader.Open(p2);
        Assert.Equal("gpt2", r2["tokenizer.ggml.model"].Value);
        Assert.NotEmpty((string[])r2["tokenizer.ggml.merges"].Value);
        Assert.All((string[])r2["tokenizer.ggml.merges"].Value, m => Assert.Equal(2, m.Split(' ').Length));
        Assert.Equal(bpe.IdToToken(bpe.VocabSize - 1), ((string[])r2["tokenizer.ggml.tokens"].Value)[^1]);
        Assert.False(r2.Metadata.ContainsKey("tokenizer.chat_template"));

        // A checkpoint with a chat template carries it into the GGUF, as llama.cpp's converter does.
        var chatDir = Temp("with-template");
        Directory.CreateDirectory(chatDir);
        foreach (var f in Directory.GetFiles(gptDir)) File.Copy(f, Path.Combine(chatDir, Path.GetFileName(f)));
        const string template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";
        File.WriteAllText(Path.Combine(chatDir, "chat_template.jinja"), template);
        var withTemplate = TokenizerLoader.FromDirectory(chatDir);
        var p3 = Temp("chat.gguf");
        GgufExport.Write(m2, withTemplate, p3, new GgufExportOptions { TokenizerDirectory = chatDir });
        Assert.Equal(template, GgufReader.Open(p3)["tokenizer.chat_template"].Value);
    }

    [Fact]
    public void Models_llama_cpp_cannot_run_fail_clearly()
    {
        using var mu = LanguageModel.Create(Presets.Get("tiny-encdec"), seed: 1);
        var e = Assert.Throws<ArgumentException>(() => GgufExport.Write(mu, null, Temp("mu.gguf")));
        Assert.Contains("GGUF 't5'", e.Message);
        Assert.Contains("relative-position buckets", e.Message);
        Assert.False(File.Exists(Temp("mu.gguf")));
        var gelu = Presets.Get("tiny-decoder");                          // ungated tanh-GELU decoder
        Assert.Contains("SwiGLU", Assert.Throws<ArgumentException>(() => GgufExport.ArchitectureOf(gelu)).Message);
        Assert.Contains("not EncoderOnly", Assert.Throws<ArgumentException>(() => GgufExport.ArchitectureOf(Presets.Get("tiny-encoder"))).Message);
    }

    static string TokenizerFixtureDir(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", name);

    static float[] Floats(GgufReader r, GgufTensorInfo t) => MemoryMarshal.Cast<byte, float>(r.ReadTensorBytes(t)).ToArray();

    static void AssertData(GgufReader r, GgufTensorInfo t, float[] expected, int cols)
    {
        var bytes = r.ReadTensorBytes(t);
        float[] got = t.Type switch
        {
            GgmlType.F32 => MemoryMarshal.Cast<byte, float>(bytes).ToArray(),
            GgmlType.F16 => MemoryMarshal.Cast<byte, ushort>(bytes).ToArray().Select(Half16.ToSingle).ToArray(),
            GgmlType.Q8_0 => Dequantize(bytes),
            _ => throw new InvalidOperationException(),
        };
        Assert.Equal(expected.Length, got.Length);
        float tolerance = t.Type == GgmlType.F32 ? 0 : 1e-2f;
        for (int i = 0; i < got.Length; i++) Assert.True(Math.Abs(expected[i] - got[i]) <= tolerance * Math.Max(1, Math.Abs(expected[i])), $"{t.Name}[{i}]: {got[i]} vs {expected[i]}");
        if (t.Type == GgmlType.F16)
            Assert.Equal(expected.Select(x => Half16.FromSingle(x)), MemoryMarshal.Cast<byte, ushort>(bytes).ToArray());
    }

    static float[] Dequantize(byte[] bytes)
    {
        var blocks = MemoryMarshal.Cast<byte, BlockQ8_0>(bytes);
        var dst = new float[blocks.Length * 32];
        Q8.Dequantize(blocks, dst);
        return dst;
    }
}
