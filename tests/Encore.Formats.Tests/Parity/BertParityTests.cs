using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Tensors.Kernels;
using Xunit.Abstractions;

namespace Encore.Formats.Tests.Parity;

/// <summary>
/// A tiny random BERT (2 post-norm layers, erf GELU, token types, learned positions, tied MLM head)
/// in the published BertForMaskedLM layout, written by tools/reference/bert_reference.py with the hidden
/// states and masked-LM logits of a right-padded batch of two from plain torch following modeling_bert.py.
/// </summary>
public class BertParityTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-bert-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ConfigMapsOntoAPostNormEncoder()
    {
        var (c, arch) = Checkpoint.ReadConfig(ParityFixtures.Dir("bert"));
        Assert.IsType<BertArchitecture>(arch);
        Assert.Equal(ModelFamily.EncoderOnly, c.Family);
        Assert.Equal((64, 32, 2, 4, 4, 8, 48), (c.VocabSize, c.DModel, c.EncoderLayers, c.Heads, c.KvHeads, c.HeadDim, c.FfnDim));
        Assert.Equal((ActivationKind.GeluErf, false, NormKind.LayerNorm, true, 1e-12f), (c.Activation, c.GatedFfn, c.Norm, c.PostNorm, c.NormEps));
        Assert.Equal((true, true, true, true, true), (c.QkvBias, c.OutputBias, c.MlpBias, c.TieEmbeddings, c.EmbeddingNorm));
        Assert.Equal((PositionKind.Learned, 32, 2, 0.1f), (c.EncoderPositions.Kind, c.MaxPositions, c.TypeVocabSize, c.Dropout));
    }

    // Every position is compared, padding included: BERT's extended mask hides padded keys from every
    // query, as Encore's key lengths do, so padded rows are defined and equal too.
    (float Hidden, float Logits) Errors(string dir)
    {
        var e = ParityFixtures.Expected("bert");
        using var model = (EncoderOnlyModel)Checkpoint.Load(dir);
        using var hidden = model.Forward(ParityFixtures.Ints(e["input_ids"]), batch: 2, ParityFixtures.Ints(e["lengths"]), ParityFixtures.Ints(e["token_type_ids"]));
        using var logits = model.MaskedLmLogits(hidden);
        return (ParityFixtures.MaxAbsError(ParityFixtures.Floats(e["hidden"]), hidden.Value.ToFloatArray()),
                ParityFixtures.MaxAbsError(ParityFixtures.Floats(e["logits"]), logits.Value.ToFloatArray()));
    }

    [Fact]
    public void HiddenStatesAndMaskedLmLogitsOfAPaddedBatchMatchTheReference()
    {
        var (hidden, logits) = Errors(ParityFixtures.Dir("bert"));
        output.WriteLine($"bert: max abs error hidden {hidden:E2}, MLM logits {logits:E2}");
        Assert.InRange(hidden, 0, 1e-4f);
        Assert.InRange(logits, 0, 1e-4f);
    }

    [Fact]
    public void ABareBertModelLayoutWithAStoredDecoderLoadsTheSame()
    {
        // BertModel saved alone has no "bert." prefix; older files also store the tied decoder copies.
        var dir = Path.Combine(_dir, "bare");
        ParityFixtures.CopyRenamed("bert", dir, n => n.StartsWith("bert.", StringComparison.Ordinal) ? n["bert.".Length..] : n,
            [("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"), ("cls.predictions.decoder.bias", "cls.predictions.bias")]);
        using (var st = SafetensorsCheckpoint.Open(dir))
            Assert.Contains("encoder.layer.1.attention.output.LayerNorm.bias", st.Names);
        var (hidden, logits) = Errors(dir);
        Assert.InRange(hidden, 0, 1e-4f);
        Assert.InRange(logits, 0, 1e-4f);
    }

    [Fact]
    public void AHeadlessCheckpointWithAPoolerLoadsAsABareEncoderWithTheSameHiddenStates()
    {
        // A BertModel as sentence-transformers publishes it: no "bert." prefix, no cls.*, the pooler kept.
        var dir = Path.Combine(_dir, "headless");
        ParityFixtures.CopyRenamed("bert", dir, n => n.StartsWith("cls.", StringComparison.Ordinal) ? null : n.StartsWith("bert.", StringComparison.Ordinal) ? n["bert.".Length..] : n,
            [("pooler.dense.weight", "bert.encoder.layer.0.attention.self.query.weight"), ("pooler.dense.bias", "bert.encoder.layer.0.attention.self.query.bias")]);
        var e = ParityFixtures.Expected("bert");
        using var model = (EncoderOnlyModel)Checkpoint.Load(dir);
        Assert.False(model.HasMaskedLmHead);
        Assert.False(model.Config.MaskedLmHead);
        Assert.DoesNotContain(model.Parameters.All, p => p.Name.StartsWith("mlm_head", StringComparison.Ordinal));
        Assert.Equal(ParameterCounter.Count(model.Config), model.ParameterCount);
        using var hidden = model.Forward(ParityFixtures.Ints(e["input_ids"]), batch: 2, ParityFixtures.Ints(e["lengths"]), ParityFixtures.Ints(e["token_type_ids"]));
        Assert.InRange(ParityFixtures.MaxAbsError(ParityFixtures.Floats(e["hidden"]), hidden.Value.ToFloatArray()), 0, 1e-4f);
        Assert.Contains("no masked-LM head", Assert.Throws<InvalidOperationException>(() => model.MaskedLmLogits(hidden)).Message);

        // Saved back, it is a BertModel with the same weights.
        var saved = Path.Combine(_dir, "saved-headless");
        Checkpoint.Save(model, saved, "bert");
        Assert.Equal("BertModel", JsonNode.Parse(File.ReadAllText(Path.Combine(saved, "config.json")))!["architectures"]![0]!.GetValue<string>());
        using var back = (EncoderOnlyModel)Checkpoint.Load(saved);
        Assert.False(back.HasMaskedLmHead);
        foreach (var p in model.Parameters.All) Assert.Equal(p.Value.ToFloatArray(), back.Parameters[p.Name].Value.ToFloatArray());
    }

    [Fact]
    public void APartialMaskedLmHeadFailsNamingTheMissingTensor()
    {
        var dir = Path.Combine(_dir, "partial");
        ParityFixtures.CopyRenamed("bert", dir, n => n.StartsWith("cls.predictions.transform.LayerNorm.", StringComparison.Ordinal) ? null : n);
        Assert.Contains("no tensor for parameter 'mlm_head.norm.weight' (looked for cls.predictions.transform.LayerNorm.weight)",
            Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir)).Message);
    }

    [Fact]
    public void SavedBertLoadsBackIdenticallyUnderThePublishedNames()
    {
        ParityFixtures.AssertRoundTrip("bert", _dir);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "saved-bert", "config.json")))!.AsObject();
        Assert.Equal(("BertForMaskedLM", "gelu", 2), (json["architectures"]![0]!.GetValue<string>(), json["hidden_act"]!.GetValue<string>(), json["type_vocab_size"]!.GetValue<int>()));
        using var llama = Checkpoint.Load(ParityFixtures.Dir("llama"));
        Assert.Contains("cannot be written as model_type 'bert'",
            Assert.Throws<ArgumentException>(() => Checkpoint.Save(llama, Path.Combine(_dir, "x"), "bert")).Message);
    }

    [Theory]
    [InlineData("gelu_new", ActivationKind.GeluTanh)]
    [InlineData("relu", ActivationKind.Relu)]
    public void ActivationNamesFollowAct2Fn(string name, ActivationKind kind)
    {
        var dir = ParityFixtures.WithConfig("bert", _dir, json => json["hidden_act"] = name);
        Assert.Equal(kind, Checkpoint.ReadConfig(dir).Config.Activation);
    }

    [Theory]
    [InlineData("hidden_size", null, "field 'hidden_size' is required")]
    [InlineData("hidden_act", "\"quick_gelu\"", "field 'hidden_act' 'quick_gelu' is not a supported activation")]
    [InlineData("num_attention_heads", "5", "field 'num_attention_heads' 5 does not divide hidden_size 32")]
    [InlineData("position_embedding_type", "\"relative_key\"", "field 'position_embedding_type' 'relative_key' is not supported")]
    [InlineData("layer_norm_eps", "\"small\"", "field 'layer_norm_eps' must be a number")]
    [InlineData("is_decoder", "true", "field 'is_decoder' a BERT decoder is not supported")]
    public void BadConfigsFailNamingTheFileAndField(string field, string? value, string expected)
    {
        var dir = ParityFixtures.WithConfig("bert", _dir, json => json[field] = value is null ? null : JsonNode.Parse(value), remove: value is null ? field : null);
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir));
        Assert.StartsWith(Path.Combine(dir, "config.json") + ":", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
