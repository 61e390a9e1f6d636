using System.Text.Json.Nodes;
using Encore.Autograd;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Xunit.Abstractions;

namespace Encore.Formats.Tests.Parity;

/// <summary>
/// A tiny random balanced T5Gemma (4 encoder and 3 decoder layers of width 64, GQA 4 over 2 heads of 16,
/// windows of 4 on the even layers, soft caps 5 and 3, separate encoder and decoder token tables, tied head)
/// written in the published layout by tools/reference/t5gemma_reference.py, which also computed its
/// teacher-forced logits over a padded batch of two and 32 greedy ids by full recomputation in plain torch
/// following modeling_t5gemma.py. Its unbalanced twin ("t5gemma-unbalanced", as T5Gemma 9B-2B) has a wider
/// encoder (3 layers of 64, 4 heads of 16, FFN 96) than decoder (2 layers of 48, 2 query heads over 1 kv head of 24,
/// FFN 64), the decoder's cross-attention reading the encoder's 64 features.
/// </summary>
public class T5GemmaParityTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-t5gemma-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Fixture => ParityFixtures.Dir("t5gemma");

    [Fact]
    public void ConfigMapsOntoAnEncoderDecoderWithGemmaStacks()
    {
        var (c, arch) = Checkpoint.ReadConfig(Fixture);
        Assert.IsType<T5GemmaArchitecture>(arch);
        Assert.Equal(ModelFamily.EncoderDecoder, c.Family);
        Assert.Equal((96, 64, 4, 3, 4, 2, 16, 96), (c.VocabSize, c.DModel, c.EncoderLayers, c.DecoderLayers, c.Heads, c.KvHeads, c.HeadDim, c.FfnDim));
        Assert.Equal((true, true, true, true, true), (c.NormUnitOffset, c.SandwichNorms, c.ScaleEmbeddings, c.EncoderEmbeddings, c.TieEmbeddings));
        Assert.Equal((5f, 3f, 4, 2), (c.AttentionSoftCap, c.FinalLogitSoftCap, c.SlidingWindow, c.GlobalLayerEvery));
        Assert.Equal((PositionKind.Rope, false), (c.EncoderPositions.Kind, c.EncoderPositions.RopeCentered));
        Assert.Equal((2, 0, 1), (c.DecoderStartTokenId, c.PadTokenId, c.EosTokenId));
    }

    [Fact]
    public void AnUnbalancedConfigGivesTheEncoderItsOwnWidths()
    {
        var (c, _) = Checkpoint.ReadConfig(ParityFixtures.Dir("t5gemma-unbalanced"));
        Assert.Equal((48, 2, 1, 24, 64), (c.DModel, c.Heads, c.KvHeads, c.HeadDim, c.FfnDim));
        Assert.Equal(new StackShape { DModel = 64, Heads = 4, KvHeads = 2, HeadDim = 16, FfnDim = 96 }, c.EncoderShape);
        Assert.Equal((3, 2, true), (c.EncoderLayers, c.DecoderLayers, c.Unbalanced));
        using var model = (EncoderDecoderModel)Checkpoint.Load(ParityFixtures.Dir("t5gemma-unbalanced"));
        Assert.Equal([96, 64], model.Parameters[EncoderDecoderModel.EncoderEmbedTokens].Value.Shape.ToArray());
        Assert.Equal([24, 64], model.Parameters["decoder.layers.0.cross_attn.k_proj.weight"].Value.Shape.ToArray());
        Assert.Equal([48, 48], model.Parameters["decoder.layers.0.cross_attn.q_proj.weight"].Value.Shape.ToArray());
        Assert.Equal(ParameterCounter.Count(c), model.ParameterCount);
    }

    public static TheoryData<string> Fixtures => ["t5gemma", "t5gemma-unbalanced"];

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void LogitsOfAPaddedBatchMatchTheReference(string fixture)
    {
        var e = ParityFixtures.Expected(fixture);
        using var model = (EncoderDecoderModel)Checkpoint.Load(ParityFixtures.Dir(fixture));
        int[] lengths = ParityFixtures.Ints(e["source_lengths"]);
        using var logits = model.Forward(ParityFixtures.Ints(e["source_ids"]), lengths, ParityFixtures.Ints(e["decoder_input_ids"]), 2);
        var expected = ParityFixtures.Floats(e["logits"]);
        float err = ParityFixtures.MaxAbsError(expected, logits.Value.ToFloatArray());
        output.WriteLine($"{fixture}: max abs logit error {err:E2} over {expected.Length} logits");
        Assert.InRange(err, 0, 1e-4f);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void CachedGreedyDecodingMatchesTheReference(string fixture)
    {
        var e = ParityFixtures.Expected(fixture);
        var source = ParityFixtures.Ints(e["greedy_source"]);
        var expected = ParityFixtures.Ints(e["greedy"]);
        using var model = (EncoderDecoderModel)Checkpoint.Load(ParityFixtures.Dir(fixture));
        using var memory = model.Encode(source, 1);
        using var cache = model.CreateCache(1, expected.Length, source.Length);
        int v = model.Config.VocabSize, next = model.Config.DecoderStartTokenId;
        var ids = new List<int>();
        while (ids.Count < expected.Length)
        {
            using var logits = model.Decode(memory, null, [next], 1, cache);
            var row = logits.Value.ToFloatArray();
            next = Array.IndexOf(row, row.Max());
            ids.Add(next);
        }
        Assert.Equal(expected, ids);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void SavedT5GemmaLoadsBackIdenticallyUnderThePublishedNames(string fixture) => ParityFixtures.AssertRoundTrip(fixture, _dir);

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void TrainingStepsLowerTheLossAndTheResultSavesAndReloads(string fixture)
    {
        var e = ParityFixtures.Expected(fixture);
        using var model = (EncoderDecoderModel)Checkpoint.Load(ParityFixtures.Dir(fixture));
        int[] source = ParityFixtures.Ints(e["source_ids"]), lengths = ParityFixtures.Ints(e["source_lengths"]);
        var (inputs, labels) = ParityFixtures.Shifted(ParityFixtures.Ints(e["decoder_input_ids"]), 2);
        // Both token tables learn: the encoder's is not the decoder's after training.
        ParityFixtures.AssertTrainsAndSavesBack(model, () => Ops.CrossEntropy(model.Forward(source, lengths, inputs, 2), labels), "t5gemma", _dir, output);
        Assert.NotEqual(model.Parameters[EncoderDecoderModel.EncoderEmbedTokens].Value.ToFloatArray().Take(64), model.Parameters[LanguageModel.EmbedTokens].Value.ToFloatArray().Take(64));
    }

    [Theory]
    [InlineData("encoder", null, "field 'encoder' must be an object")]
    [InlineData("decoder.num_attention_heads", "3", "field 'decoder.num_key_value_heads' 2 does not divide num_attention_heads 3")]
    [InlineData("decoder.query_pre_attn_scalar", "32", "field 'decoder.query_pre_attn_scalar' 0.17677669 differs from encoder.query_pre_attn_scalar 0.20412415")]
    [InlineData("decoder.rms_norm_eps", "1e-5", "field 'decoder.rms_norm_eps' 1E-05 differs from encoder.rms_norm_eps 1E-06")]
    [InlineData("decoder.sliding_window", "6", "field 'decoder.sliding_window' 6 differs from encoder.sliding_window 4")]
    [InlineData("decoder.cross_attention_hidden_size", "128", "field 'decoder.cross_attention_hidden_size' 128 differs from encoder.hidden_size 64")]
    [InlineData("encoder.head_dim", "15", "field 'encoder.head_dim' RoPE needs an even head dimension")]
    [InlineData("decoder.attn_logit_softcapping", "-1", "field 'decoder.attn_logit_softcapping' must be positive")]
    [InlineData("decoder.bos_token_id", "96", "field 'decoder.bos_token_id' 96 is outside")]
    public void BadConfigsFailNamingTheFileAndField(string field, string? value, string expected)
    {
        var dir = ParityFixtures.WithConfig("t5gemma", _dir, json =>
        {
            var path = field.Split('.');
            var target = path.Length == 2 ? json[path[0]]!.AsObject() : json;
            if (value is null) target.Remove(path[^1]);
            else target[path[^1]] = JsonNode.Parse(value);
        });
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir));
        Assert.StartsWith(Path.Combine(dir, "config.json") + ":", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void UnexpressibleModelsFailClearly()
    {
        using var gemma = Checkpoint.Load(ParityFixtures.Dir("gemma2"));
        Assert.Contains("cannot be written as model_type 't5gemma'",
            Assert.Throws<ArgumentException>(() => Checkpoint.Save(gemma, Path.Combine(_dir, "x"), "t5gemma")).Message);
        // One d_model for both stacks in T5's config.json and in llama.cpp's T5: an unbalanced model is neither.
        var t5 = Presets.Get("tiny-encdec") with
        {
            KvHeads = 4, AttentionScale = 1, TieEmbeddings = true, ScaleTiedLogits = true, GatedFfn = true,
            EncoderPositions = new PositionConfig { Kind = PositionKind.T5Relative }, DecoderPositions = new PositionConfig { Kind = PositionKind.T5Relative },
        };
        using var unbalanced = new EncoderDecoderModel(t5 with { EncoderShape = StackShape.Of(t5) with { Heads = 2, KvHeads = 2, FfnDim = 48 } });
        Assert.Contains("an encoder of other widths than the decoder (encoder_shape",
            Assert.Throws<ArgumentException>(() => Checkpoint.Save(unbalanced, Path.Combine(_dir, "t5"), "t5")).Message);
        Assert.Contains("llama.cpp's T5 has one width for both stacks",
            Assert.Throws<ArgumentException>(() => Encore.Formats.Gguf.GgufExport.ArchitectureOf(unbalanced.Config)).Message);
        using var balanced = new EncoderDecoderModel(t5);
        Assert.Equal("t5", Encore.Formats.Gguf.GgufExport.ArchitectureOf(balanced.Config));
        Checkpoint.Save(balanced, Path.Combine(_dir, "t5-balanced"), "t5");
    }
}
