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
/// following modeling_t5gemma.py.
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
    public void LogitsOfAPaddedBatchMatchTheReference()
    {
        var e = ParityFixtures.Expected("t5gemma");
        using var model = (EncoderDecoderModel)Checkpoint.Load(Fixture);
        int[] lengths = ParityFixtures.Ints(e["source_lengths"]);
        using var logits = model.Forward(ParityFixtures.Ints(e["source_ids"]), lengths, ParityFixtures.Ints(e["decoder_input_ids"]), 2);
        var expected = ParityFixtures.Floats(e["logits"]);
        float err = ParityFixtures.MaxAbsError(expected, logits.Value.ToFloatArray());
        output.WriteLine($"t5gemma: max abs logit error {err:E2} over {expected.Length} logits");
        Assert.InRange(err, 0, 1e-4f);
    }

    [Fact]
    public void CachedGreedyDecodingMatchesTheReference()
    {
        var e = ParityFixtures.Expected("t5gemma");
        var source = ParityFixtures.Ints(e["greedy_source"]);
        var expected = ParityFixtures.Ints(e["greedy"]);
        using var model = (EncoderDecoderModel)Checkpoint.Load(Fixture);
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

    [Fact]
    public void SavedT5GemmaLoadsBackIdenticallyUnderThePublishedNames() => ParityFixtures.AssertRoundTrip("t5gemma", _dir);

    [Fact]
    public void TrainingStepsLowerTheLossAndTheResultSavesAndReloads()
    {
        var e = ParityFixtures.Expected("t5gemma");
        using var model = (EncoderDecoderModel)Checkpoint.Load(Fixture);
        int[] source = ParityFixtures.Ints(e["source_ids"]), lengths = ParityFixtures.Ints(e["source_lengths"]);
        var (inputs, labels) = ParityFixtures.Shifted(ParityFixtures.Ints(e["decoder_input_ids"]), 2);
        // Both token tables learn: the encoder's is not the decoder's after training.
        ParityFixtures.AssertTrainsAndSavesBack(model, () => Ops.CrossEntropy(model.Forward(source, lengths, inputs, 2), labels), "t5gemma", _dir, output);
        Assert.NotEqual(model.Parameters[EncoderDecoderModel.EncoderEmbedTokens].Value.ToFloatArray(), model.Parameters[LanguageModel.EmbedTokens].Value.ToFloatArray());
    }

    [Theory]
    [InlineData("encoder", null, "field 'encoder' must be an object")]
    [InlineData("decoder.hidden_size", "128", "field 'decoder.hidden_size' 128 differs from encoder.hidden_size 64")]
    [InlineData("decoder.num_attention_heads", "8", "field 'decoder.num_attention_heads' 8 differs from encoder.num_attention_heads 4")]
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
    }
}
