using Encore.Autograd;
using Encore.Tensors.Kernels;

namespace Encore.Models.Tests;

/// <summary>
/// Encoder–decoders whose encoder has other widths than the decoder (<see cref="ModelConfig.EncoderShape"/>,
/// T5Gemma's unbalanced models): configuration, parameter shapes and counts, gradients, and the cached and
/// batched decoding paths. The published-weights parity is T5GemmaParityTests' "t5gemma-unbalanced" fixture.
/// </summary>
public class EncoderShapeTests
{
    // A 48-wide encoder (6 heads of 8 over 3 kv heads, FFN 80) under the tiny 32-wide decoder (4 heads of 8 over 2, FFN 64).
    static readonly StackShape s_wide = new() { DModel = 48, Heads = 6, KvHeads = 3, HeadDim = 8, FfnDim = 80 };

    static ModelConfig Unbalanced() => Presets.Get("tiny-encdec") with { EncoderShape = s_wide, EncoderEmbeddings = true, EncoderLayers = 2, DecoderLayers = 2 };

    static int[] Shape(LanguageModel m, string name) => m.Parameters[name].Value.Shape.ToArray();

    [Fact]
    public void TheEncoderIsBuiltAtItsOwnWidthsAndCrossAttentionReadsThem()
    {
        using var m = new EncoderDecoderModel(Unbalanced(), seed: 1);
        Assert.Equal([64, 48], Shape(m, EncoderDecoderModel.EncoderEmbedTokens));
        Assert.Equal([64, 32], Shape(m, LanguageModel.EmbedTokens));
        Assert.Equal([48, 48], Shape(m, "encoder.layers.0.self_attn.q_proj.weight"));
        Assert.Equal([24, 48], Shape(m, "encoder.layers.1.self_attn.k_proj.weight"));
        Assert.Equal([80, 48], Shape(m, "encoder.layers.0.mlp.up_proj.weight"));
        Assert.Equal([48], Shape(m, "encoder.final_norm.weight"));
        Assert.Equal([16, 32], Shape(m, "decoder.layers.0.self_attn.k_proj.weight"));
        Assert.Equal([32, 32], Shape(m, "decoder.layers.0.cross_attn.q_proj.weight"));
        Assert.Equal([16, 48], Shape(m, "decoder.layers.1.cross_attn.v_proj.weight"));
        Assert.Equal([32, 32], Shape(m, "decoder.layers.1.cross_attn.o_proj.weight"));
        using var memory = m.Encode([5, 6, 7], 1);
        Assert.Equal([1, 3, 48], memory.Shape.ToArray());
        using var logits = m.Decode(memory, null, [0, 9], 1);
        Assert.Equal([1, 2, 64], logits.Shape.ToArray());
    }

    public static TheoryData<string> Variants => ["rope", "t5", "urpe", "comrope", "learned-layernorm-biases", "sandwich-embedding-norm"];

    static ModelConfig Variant(string name)
    {
        var c = Unbalanced();
        return name switch
        {
            "t5" => c with { EncoderPositions = new PositionConfig { Kind = PositionKind.T5Relative }, DecoderPositions = new PositionConfig { Kind = PositionKind.T5Relative } },
            "urpe" => c with { EncoderPositions = new PositionConfig { Kind = PositionKind.Urpe, UrpeMaxDistance = 8 }, DecoderPositions = new PositionConfig { Kind = PositionKind.Urpe, UrpeMaxDistance = 8 } },
            "comrope" => c with { EncoderPositions = new PositionConfig { Kind = PositionKind.ComRope }, DecoderPositions = new PositionConfig { Kind = PositionKind.ComRope } },
            "learned-layernorm-biases" => c with
            {
                EncoderPositions = new PositionConfig { Kind = PositionKind.Learned }, DecoderPositions = new PositionConfig { Kind = PositionKind.Learned }, MaxPositions = 32,
                Norm = NormKind.LayerNorm, QkvBias = true, OutputBias = true, MlpBias = true, GatedFfn = true, TieEmbeddings = false,
            },
            "sandwich-embedding-norm" => c with { SandwichNorms = true, NormUnitOffset = true, EmbeddingNorm = true, ScaleEmbeddings = true, FinalLogitsBias = true },
            _ => c,
        };
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void TheParameterCounterCountsWhatIsBuilt(string variant)
    {
        using var m = new EncoderDecoderModel(Variant(variant), seed: 2);
        Assert.Equal(ParameterCounter.Count(m.Config), m.ParameterCount);
        Assert.Equal(m.Parameters.All.Sum(p => (long)p.Value.Length), m.ParameterCount);
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void CachedAndBatchedDecodingEqualTheFullForward(string variant)
    {
        using var m = new EncoderDecoderModel(Variant(variant), seed: 3);
        int[][] sources = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14]];
        int[] targets = [0, 21, 22, 23];
        using var batch = m.CreateBatchCache(2, 8, 8);
        var alone = new DecoderCache[2];
        var memories = new Var[2];
        try
        {
            for (int r = 0; r < 2; r++)
            {
                memories[r] = m.Encode(sources[r], 1);
                using var full = m.Decode(memories[r], null, targets, 1);                              // (1, 4, V) teacher-forced
                alone[r] = m.CreateCache(1, 8, sources[r].Length);
                for (int i = 0; i < targets.Length; i++)
                {
                    using var step = m.Decode(memories[r], null, [targets[i]], 1, alone[r]);
                    AssertClose(Row(full, i), Row(step, 0), $"{variant}: row {r} position {i}");
                }
                batch.LoadRow(r, alone[r], 0, sources[r].Length);
            }
            batch.ActiveRows = 2;
            using var together = m.DecodeStep([30, 31], batch);
            for (int r = 0; r < 2; r++)
            {
                using var one = m.Decode(memories[r], null, [30 + r], 1, alone[r]);
                AssertClose(Row(one, 0), Row(together, r), $"{variant}: batch row {r}");
            }
        }
        finally
        {
            foreach (var c in alone) c?.Dispose();
            foreach (var v in memories) v?.Dispose();
        }
    }

    [Fact]
    public void AnEncoderExitingAfterItsFirstLayerGivesThatLayersMemory()
    {
        using var m = new EncoderDecoderModel(Unbalanced() with { EncoderLayers = 3 }, seed: 4);
        int[] source = [5, 6, 7, 8];
        var layers = m.EncodeLayers(source, 1);
        using var first = m.Encode(source, 1, null, new StackExit(-1, 1));
        using var whole = m.Encode(source, 1, null, new StackExit(1, 1));
        Assert.Equal(layers[0].Value.ToFloatArray(), first.Value.ToFloatArray());
        Assert.Equal(layers[^1].Value.ToFloatArray(), whole.Value.ToFloatArray());
        foreach (var l in layers) l.Dispose();
    }

    [Fact]
    public void GradientsThroughBothWidthsMatchFiniteDifferences()
    {
        var c = Unbalanced() with { ScaleEmbeddings = true, VocabSize = 20, EncoderLayers = 1 };
        using var m = new EncoderDecoderModel(c, seed: 7);
        int[] src = [3, 7, 1, 12, 4], tgt = [0, 5, 9, 11, 2], labels = [5, 9, 2, 3, 8];
        Var Loss() => Ops.CrossEntropy(m.Forward(src, null, tgt, 1), labels);
        foreach (var p in m.Parameters.All) p.ZeroGrad();
        using (var tape = Tape.Record()) tape.Backward(Loss());
        FiniteDifferences.AssertGradients(m.Parameters,
        [
            (EncoderDecoderModel.EncoderEmbedTokens, [7 * 48 + 2, 12 * 48 + 40]),   // √48 scaling, the encoder's own table
            ("encoder.layers.0.self_attn.q_proj.weight", [5, 1000]),
            ("encoder.layers.0.mlp.down_proj.weight", [3, 2000]),
            ("encoder.final_norm.weight", [0, 47]),
            ("decoder.layers.0.cross_attn.k_proj.weight", [7, 47, 700]),           // (16, 48): reads the encoder's width
            ("decoder.layers.1.cross_attn.v_proj.weight", [10, 500]),
            ("decoder.layers.1.cross_attn.q_proj.weight", [4, 150]),
            (LanguageModel.EmbedTokens, [5 * 32 + 11, 9 * 32]),
        ], Loss);
    }

    [Fact]
    public void EncoderTokenLogitsReadTheEncodersOwnTable()
    {
        using var m = new EncoderDecoderModel(Unbalanced(), seed: 5);
        using var memory = m.Encode([5, 6, 7], 1);
        using var logits = m.EncoderTokenLogits(memory);
        Assert.Equal([1, 3, 64], logits.Shape.ToArray());
        // Row 0, id 9: the memory row dotted with the encoder table's row 9.
        var mem = memory.Value.ToFloatArray();
        var table = m.Parameters[EncoderDecoderModel.EncoderEmbedTokens].Value.ToFloatArray();
        double dot = 0;
        for (int i = 0; i < 48; i++) dot += mem[i] * table[9 * 48 + i];
        Assert.Equal(dot, logits.Value.ToFloatArray()[9], 1e-4);
    }

    [Fact]
    public void TheShapeRoundTripsThroughConfigJsonAndStaysOutOfItWhenAbsent()
    {
        var c = Unbalanced();
        var json = ModelConfigJson.Serialize(c);
        Assert.Contains("\"encoder_shape\"", json);
        Assert.Contains("\"ffn_dim\": 80", json);
        Assert.Equal(c, ModelConfigJson.Deserialize(json));
        Assert.DoesNotContain("encoder_shape", ModelConfigJson.Serialize(Presets.Get("tiny-encdec")));
        Assert.False(Presets.Get("tiny-encdec").Unbalanced);
        Assert.False((Presets.Get("tiny-encdec") with { EncoderShape = StackShape.Of(Presets.Get("tiny-encdec")) }).Unbalanced);
        var e = Assert.Throws<FormatException>(() => ModelConfigJson.Deserialize(json.Replace("\"ffn_dim\": 80", "\"ffn_dim\": 80, \"layers\": 2")));
        Assert.Contains("layers", e.Message);
    }

    [Fact]
    public void InconsistentShapesAreRefusedNamingTheField()
    {
        var c = Unbalanced();
        string Error(ModelConfig bad) => Assert.Throws<ArgumentException>(() => bad.Validate()).Message;
        Assert.Contains("encoder_shape is for encoder–decoder models", Error(Presets.Get("tiny-decoder") with { EncoderShape = s_wide }));
        Assert.Contains("encoder_shape.d_model 48 differs from d_model 32, so the encoder needs its own token table (encoder_embeddings true)", Error(c with { EncoderEmbeddings = false }));
        Assert.Contains("encoder_shape.heads (6) must be a multiple of encoder_shape.kv_heads (4)", Error(c with { EncoderShape = s_wide with { KvHeads = 4 } }));
        Assert.Contains("encoder_shape.ffn_dim must be in", Error(c with { EncoderShape = s_wide with { FfnDim = 0 } }));
        Assert.Contains("encoder_shape.heads × encoder_shape.head_dim", Error(c with { EncoderShape = s_wide with { Heads = 4096, KvHeads = 1, HeadDim = 4096 } }));
        Assert.Contains("encoder_positions RoPE needs an even head_dim, got 7", Error(c with { EncoderShape = s_wide with { HeadDim = 7 } }));
        Assert.Contains("com_rope_block must be even, in [2, 16] and divide head_dim 6",
            Error(c with { EncoderShape = s_wide with { HeadDim = 6 }, EncoderPositions = new PositionConfig { Kind = PositionKind.ComRope } }));
        // Same D, other heads: the shared table serves both stacks.
        (c with { EncoderEmbeddings = false, EncoderShape = s_wide with { DModel = 32 } }).Validate();
    }

    static float[] Row(Var logits, int position)
    {
        int v = logits.Shape[2];
        return logits.Value.AsReadOnlySpan<float>().Slice(position * v, v).ToArray();
    }

    static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4f, $"{what}, logit {i}: {expected[i]} vs {actual[i]}");
    }
}
