using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Tensors.Kernels;
using Xunit.Abstractions;

namespace Encore.Formats.Tests.Parity;

/// <summary>
/// Hugging Face BART, mBART and Marian checkpoints against tools/reference/bart_reference.py: logits and
/// 32 greedy steps, the config.json mappings, saving in the published layout, and the errors of damaged configs.
/// </summary>
public class BartParityTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-bart-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("bart")]
    [InlineData("mbart")]
    [InlineData("marian")]
    public void LogitsAndGreedyIdsMatchTheReference(string fixture)
    {
        var (logits, greedy) = Seq2SeqParity.Check(Seq2SeqParity.Fixture(fixture));
        output.WriteLine($"{fixture}: max abs error {logits:E2} (teacher-forced logits), {greedy:E2} (32 greedy steps)");
    }

    [Fact]
    public void BartConfigMapsToPostNormLearnedOffsetPositionsAndALogitsBias()
    {
        var (c, arch) = Checkpoint.ReadConfig(Seq2SeqParity.Fixture("bart"));
        Assert.IsType<BartArchitecture>(arch);
        Assert.Equal(ModelFamily.EncoderDecoder, c.Family);
        Assert.Equal((96, 32, 8, 64, 4, 4, 2, 2), (c.VocabSize, c.DModel, c.HeadDim, c.FfnDim, c.Heads, c.KvHeads, c.EncoderLayers, c.DecoderLayers));
        Assert.Equal((ActivationKind.GeluErf, false), (c.Activation, c.GatedFfn));
        Assert.Equal((NormKind.LayerNorm, 1e-5f, true, false, true), (c.Norm, c.NormEps, c.PostNorm, c.FinalNorm, c.EmbeddingNorm));
        Assert.True(c.QkvBias && c.OutputBias && c.MlpBias && c.TieEmbeddings && c.FinalLogitsBias);
        Assert.False(c.ScaleEmbeddings || c.ScaleTiedLogits);
        Assert.Null(c.AttentionScale);
        var learned = new PositionConfig { Kind = PositionKind.Learned, LearnedOffset = 2 };
        Assert.Equal(learned, c.EncoderPositions);
        Assert.Equal(learned, c.DecoderPositions);
        Assert.Equal(40, c.MaxPositions);
        Assert.Equal((1, 0, 2, 2), (c.PadTokenId, c.BosTokenId, c.EosTokenId, c.DecoderStartTokenId));
        using var model = Checkpoint.Load(Seq2SeqParity.Fixture("bart"));
        // max_position_embeddings + 2 rows, as BartLearnedPositionalEmbedding allocates them.
        Assert.Equal([42, 32], model.Parameters["encoder.embed_positions.weight"].Value.Shape.ToArray());
        Assert.Equal([1, 96], model.Parameters[LanguageModel.LogitsBias].Value.Shape.ToArray());
    }

    [Fact]
    public void MBartConfigMapsToPreNormWithFinalNormsAndBosAsTheDefaultDecoderStart()
    {
        var (c, arch) = Checkpoint.ReadConfig(Seq2SeqParity.Fixture("mbart"));
        Assert.IsType<MBartArchitecture>(arch);
        Assert.Equal((false, true, true, true), (c.PostNorm, c.FinalNorm, c.EmbeddingNorm, c.ScaleEmbeddings));
        Assert.False(c.TieEmbeddings);
        Assert.Equal((2, 3, 2, 16, 48), (c.EncoderLayers, c.DecoderLayers, c.Heads, c.HeadDim, c.FfnDim));
        // The fixture's config.json has no decoder_start_token_id: generate falls back to bos_token_id.
        Assert.Equal(0, c.DecoderStartTokenId);
        using var model = Checkpoint.Load(Seq2SeqParity.Fixture("mbart"));
        Assert.True(model.Parameters.Contains("decoder.final_norm.bias"));
        Assert.True(model.Parameters.Contains(LanguageModel.LmHead));
    }

    [Fact]
    public void MarianConfigMapsToHalvedSinusoidsSwishAndThePadTokenAsDecoderStart()
    {
        var (c, arch) = Checkpoint.ReadConfig(Seq2SeqParity.Fixture("marian"));
        Assert.IsType<MarianArchitecture>(arch);
        Assert.Equal((ActivationKind.Silu, true, false, true), (c.Activation, c.PostNorm, c.EmbeddingNorm, c.ScaleEmbeddings));
        var sinusoids = new PositionConfig { Kind = PositionKind.Sinusoidal, SinusoidHalves = true };
        Assert.Equal(sinusoids, c.EncoderPositions);
        Assert.Equal(sinusoids, c.DecoderPositions);
        Assert.Equal((95, -1, 0, 95), (c.PadTokenId, c.BosTokenId, c.EosTokenId, c.DecoderStartTokenId));
        using var model = Checkpoint.Load(Seq2SeqParity.Fixture("marian"));
        Assert.False(model.Parameters.Contains("encoder.embed_positions.weight"));
    }

    [Theory]
    [InlineData("bart")]
    [InlineData("mbart")]
    [InlineData("marian")]
    public void SavedDirectoriesLoadBackIdenticallyUnderThePublishedNames(string fixture)
    {
        using var model = Checkpoint.Load(Seq2SeqParity.Fixture(fixture));
        var dir = Path.Combine(_dir, fixture);
        Checkpoint.Save(model, dir, fixture);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        Assert.Equal(fixture, (string?)json["model_type"]);
        using (var file = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors")))
        using (var original = SafetensorsFile.Open(Path.Combine(Seq2SeqParity.Fixture(fixture), "model.safetensors")))
        {
            // Marian's sinusoid tables are computed, not saved (transformers ignores them on load too).
            var want = original.Names.Where(n => !(fixture == "marian" && n.Contains("embed_positions", StringComparison.Ordinal))).Order();
            Assert.Equal(want, file.Names.Order());
            Assert.Contains("model.shared.weight", file.Names);
            Assert.Contains("model.decoder.layers.1.encoder_attn.out_proj.bias", file.Names);
            Assert.Contains("final_logits_bias", file.Names);
            Assert.Equal(original.Read("final_logits_bias").ToFloatArray(), file.Read("final_logits_bias").ToFloatArray());
        }

        using var back = Checkpoint.Load(dir);
        Assert.Equal(model.Config, back.Config);
        foreach (var p in model.Parameters.All)
            Assert.Equal(p.Value.ToFloatArray(), back.Parameters[p.Name].Value.ToFloatArray());
        // And the saved directory still matches the reference.
        foreach (var f in new[] { "expected.json", "expected.safetensors" }) File.Copy(Path.Combine(Seq2SeqParity.Fixture(fixture), f), Path.Combine(dir, f));
        Seq2SeqParity.Check(dir);
    }

    [Theory]
    [InlineData("bart", "d_model", null, "'d_model' is missing")]
    [InlineData("bart", "encoder_attention_heads", "5", "'encoder_attention_heads' 5 does not divide d_model 32")]
    [InlineData("bart", "decoder_attention_heads", "8", "'decoder_attention_heads' 8 differs from encoder_attention_heads 4")]
    [InlineData("bart", "decoder_ffn_dim", "32", "'decoder_ffn_dim' 32 differs from encoder_ffn_dim 64")]
    [InlineData("bart", "activation_function", "\"mish\"", "'activation_function' 'mish' is not a supported activation")]
    [InlineData("bart", "max_position_embeddings", "0", "'max_position_embeddings' 0 is outside")]
    [InlineData("bart", "scale_embedding", "\"yes\"", "'scale_embedding' must be true or false")]
    [InlineData("bart", "decoder_start_token_id", "96", "'decoder_start_token_id' 96 is outside [0, 95]")]
    [InlineData("mbart", "encoder_layers", "0", "'encoder_layers' 0 is outside")]
    [InlineData("marian", "pad_token_id", null, "'pad_token_id' 58100 is outside [0, 95]")]
    [InlineData("marian", "decoder_vocab_size", "100", "'decoder_vocab_size' 100 differs from vocab_size 96")]
    [InlineData("marian", "share_encoder_decoder_embeddings", "false", "'share_encoder_decoder_embeddings' is false")]
    public void BadConfigFieldsFailNamingFileAndField(string fixture, string field, string? value, string message)
    {
        var dir = CopyFixture(fixture, $"{fixture}-{field}");
        var path = Path.Combine(dir, "config.json");
        var json = Config(fixture);
        if (value is null) json.Remove(field);
        else json[field] = JsonNode.Parse(value);
        File.WriteAllText(path, json.ToJsonString());
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir));
        Assert.Contains(path, e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void APositionTableWithoutTheOffsetRowsFailsNamingTheTensorAndShapes()
    {
        // max_position_embeddings 40 → 42: the stored (42, 32) table now lacks the two offset rows.
        var dir = CopyFixture("bart", "positions");
        var json = Config("bart");
        json["max_position_embeddings"] = 42;
        File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString());
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir));
        Assert.Contains("'model.encoder.embed_positions.weight' is f32[42, 32]", e.Message);
        Assert.Contains("needs f32[44, 32]", e.Message);
    }

    [Fact]
    public void ASequencePastMaxPositionsFailsInsteadOfReadingPastTheTable()
    {
        using var model = (EncoderDecoderModel)Checkpoint.Load(Seq2SeqParity.Fixture("bart"));
        var e = Assert.Throws<ArgumentException>(() => model.Encode(new int[41], 1));
        Assert.Contains("exceeds max_positions 40", e.Message);
    }

    [Theory]
    [InlineData("bart")]
    [InlineData("mbart")]
    [InlineData("marian")]
    public void ModelsTheTypeCannotExpressAreNotSaved(string modelType)
    {
        using var t5 = Checkpoint.Load(Seq2SeqParity.Fixture("t5_v1_0"));
        var dir = Path.Combine(_dir, "t5-as-" + modelType);
        var e = Assert.Throws<ArgumentException>(() => Checkpoint.Save(t5, dir, modelType));
        Assert.Contains($"cannot be written as model_type {modelType}", e.Message);
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));
        // BART's post-norm blocks are not mBART's.
        using var bart = Checkpoint.Load(Seq2SeqParity.Fixture("bart"));
        if (modelType != "bart") Assert.Throws<ArgumentException>(() => Checkpoint.Save(bart, dir, modelType));
    }

    [Theory]
    [InlineData("bart")]
    [InlineData("mbart")]
    [InlineData("marian")]
    public void GgufExportIsRefusedBecauseLlamaCppHasNoSuchArchitecture(string fixture)
    {
        var (c, _) = Checkpoint.ReadConfig(Seq2SeqParity.Fixture(fixture));
        var e = Assert.Throws<ArgumentException>(() => Encore.Formats.Gguf.GgufExport.ArchitectureOf(c));
        Assert.Contains("llama.cpp has no BART, mBART or Marian architecture", e.Message);
    }

    static JsonObject Config(string fixture) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Seq2SeqParity.Fixture(fixture), "config.json")))!.AsObject();

    string CopyFixture(string fixture, string name)
    {
        var dir = Path.Combine(_dir, name);
        Directory.CreateDirectory(dir);
        foreach (var f in new[] { "config.json", "model.safetensors" })
            File.Copy(Path.Combine(Seq2SeqParity.Fixture(fixture), f), Path.Combine(dir, f));
        return dir;
    }
}
