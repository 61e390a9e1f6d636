using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Models;

namespace Encore.Formats.Tests;

/// <summary>
/// <see cref="CheckpointAdaptation"/>: the published decoder-only fixtures (llama, qwen2) and Encore's own
/// become encoder–decoder checkpoints that load back with the source's weights; bad inputs fail with
/// one message naming the file or field, and leave nothing behind.
/// </summary>
public sealed class CheckpointAdaptationTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-adapt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    string Out(string name) => Path.Combine(_dir, name);

    // An Encore decoder-only checkpoint of the tiny preset with `change` applied, and a BPE tokenizer when a corpus is given.
    string Decoder(string name, Func<ModelConfig, ModelConfig>? change = null, string[]? corpus = null, ulong seed = 1)
    {
        var dir = Out(name);
        var config = (change ?? (c => c))(Presets.Get("tiny-decoder"));
        if (corpus != null)
        {
            var tok = BpeTrainer.Train(corpus, 300, ["<pad>", "</s>", "<s>"], new SpecialTokenRoles(Bos: "<s>", Eos: "</s>", Pad: "<pad>"));
            config = config with { VocabSize = 300, PadTokenId = tok.PadId!.Value, EosTokenId = tok.EosId!.Value, BosTokenId = tok.BosId!.Value };
            Directory.CreateDirectory(dir);
            tok.Save(dir);
        }
        using var m = LanguageModel.Create(config, seed);
        Checkpoint.Save(m, dir);
        return dir;
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("qwen2")]
    public void PublishedDecodersBecomeEncoderDecodersWithTheirWeights(string family)
    {
        var output = Out(family + "-encdec");
        var r = CheckpointAdaptation.Write(Fixture(family), output);
        using var source = Checkpoint.Load(Fixture(family));
        using var adapted = Checkpoint.Load(output);
        Assert.IsType<EncoderDecoderModel>(adapted);
        var c = adapted.Config;
        Assert.Equal((2, 2), (c.EncoderLayers, c.DecoderLayers));
        Assert.Equal(source.Config.DecoderPositions, c.EncoderPositions);       // llama: RoPE with linear scaling 2 carries over
        Assert.Equal(source.Config.BosTokenId, c.DecoderStartTokenId);           // no tokenizer files: the config's BOS
        Assert.Equal((source.Config.KvHeads, source.Config.QkvBias, source.Config.TieEmbeddings, source.Config.GatedFfn), (c.KvHeads, c.QkvBias, c.TieEmbeddings, c.GatedFfn));
        Assert.Equal("encore", System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["model_type"]!.GetValue<string>());
        foreach (var p in source.Parameters.All)
        {
            var v = p.Value.ToFloatArray();
            if (p.Name.StartsWith("decoder.layers.", StringComparison.Ordinal) || p.Name == "decoder.final_norm.weight")
                Assert.Equal(v, adapted.Parameters["encoder." + p.Name["decoder.".Length..]].Value.ToFloatArray());
            Assert.Equal(v, adapted.Parameters[p.Name].Value.ToFloatArray());
            if (p.Name.Contains(".self_attn.", StringComparison.Ordinal))
                Assert.Equal(v, adapted.Parameters[p.Name.Replace(".self_attn.", ".cross_attn.")].Value.ToFloatArray());
        }
        Assert.Equal(CrossAttentionInit.Copy, r.Report.CrossAttention);
        Assert.Empty(r.CopiedFiles);
        Assert.Empty(Directory.GetFileSystemEntries(_dir, ".*.tmp"));
    }

    [Fact]
    public void TokenizerFilesAreCopiedAndTheDecoderStartsAtItsBos()
    {
        string[] corpus = ["a package of fonts", "tools to parse images", "a library for fonts and images"];
        var source = Decoder("src", corpus: corpus);
        const string template = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
        File.WriteAllText(Path.Combine(source, ChatTemplateFiles.ChatTemplateJinja), template);
        var r = CheckpointAdaptation.Write(source, Out("encdec"));
        Assert.Contains(TokenizerLoader.TokenizerJson, r.CopiedFiles);
        Assert.Equal(template, TokenizerLoader.FromDirectory(r.OutputDirectory).ChatTemplate?.Template);
        Assert.Equal(File.ReadAllText(Path.Combine(source, "tokenizer.json")), File.ReadAllText(Path.Combine(r.OutputDirectory, "tokenizer.json")));
        var tok = TokenizerLoader.FromDirectory(r.OutputDirectory);
        Assert.Equal(tok.BosId, r.Report.Config.DecoderStartTokenId);
        Assert.Equal(tok.DecoderStartId, r.Report.Config.DecoderStartTokenId);
    }

    [Fact]
    public void AnUnbalancedPairTakesItsDecoderFromTheSecondCheckpoint()
    {
        var big = Decoder("big", c => c with { DecoderLayers = 4 }, seed: 1);
        var small = Decoder("small", c => c with { DecoderLayers = 2 }, seed: 2);
        var r = CheckpointAdaptation.Write(big, Out("4-2"), small, new AdaptationOptions { EncoderLayers = 3 });
        Assert.Equal((3, 2), (r.Report.Config.EncoderLayers, r.Report.Config.DecoderLayers));
        Assert.True(r.Report.Unbalanced);
        Assert.Equal(CrossAttentionInit.Fresh, r.Report.CrossAttention);
        using var s = Checkpoint.Load(small);
        using var b = Checkpoint.Load(big);
        using var a = Checkpoint.Load(r.OutputDirectory);
        Assert.Equal(b.Parameters["decoder.layers.2.mlp.up_proj.weight"].Value.ToFloatArray(), a.Parameters["encoder.layers.2.mlp.up_proj.weight"].Value.ToFloatArray());
        Assert.Equal(s.Parameters["decoder.layers.1.mlp.up_proj.weight"].Value.ToFloatArray(), a.Parameters["decoder.layers.1.mlp.up_proj.weight"].Value.ToFloatArray());
        Assert.Equal(s.Parameters[LanguageModel.EmbedTokens].Value.ToFloatArray(), a.Parameters[LanguageModel.EmbedTokens].Value.ToFloatArray());
    }

    [Fact]
    public void ADecoderSourceOfAnotherVocabularyOrTokenizerIsRefusedNamingItAndOneOfAnotherWidthFits()
    {
        var source = Decoder("src");
        var words = Decoder("words", c => c with { VocabSize = 80 });
        var e = Assert.Throws<ArgumentException>(() => CheckpointAdaptation.Write(source, Out("x"), words));
        Assert.Contains(Path.Combine(words, "config.json") + " does not fit " + Path.Combine(source, "config.json"), e.Message);
        Assert.Contains("vocab_size (64 vs 80)", e.Message);

        // A narrower decoder source: the written encoder–decoder keeps the source's widths for its encoder.
        var wide = Decoder("wide", c => c with { DModel = 48 });
        CheckpointAdaptation.Write(wide, Out("unbalanced"), source);
        var written = Checkpoint.ReadConfig(Out("unbalanced")).Config;
        Assert.Equal((48, 32, true), (written.EncoderDModel, written.DModel, written.EncoderEmbeddings));
        using (var model = (EncoderDecoderModel)Checkpoint.Load(Out("unbalanced")))
            Assert.Equal([64, 48], model.Parameters[EncoderDecoderModel.EncoderEmbedTokens].Value.Shape.ToArray());

        // Same vocabulary size, different vocabularies: the tokenizers tell.
        var a = Decoder("tok-a", corpus: ["fonts and images", "a parser of fonts", "images of fonts"]);
        var b = Decoder("tok-b", corpus: ["kernels and drivers", "a driver for disks", "disks and kernels"]);
        Assert.Equal(Checkpoint.ReadConfig(a).Config.VocabSize, Checkpoint.ReadConfig(b).Config.VocabSize);
        e = Assert.Throws<ArgumentException>(() => CheckpointAdaptation.Write(a, Out("x"), b));
        Assert.Contains($"{b}: its tokenizer differs from {a}'s", e.Message);
        Assert.False(Directory.Exists(Out("x")));
    }

    [Fact]
    public void BadSourcesFailWithOneMessageNamingTheFileAndLeaveNothing()
    {
        var missing = Out("missing");
        var e1 = Assert.Throws<DirectoryNotFoundException>(() => CheckpointAdaptation.Write(missing, Out("x")));
        Assert.Contains(missing, e1.Message);

        var empty = Out("empty");
        Directory.CreateDirectory(empty);
        var e2 = Assert.Throws<CheckpointFormatException>(() => CheckpointAdaptation.Write(empty, Out("x")));
        Assert.Contains("no config.json", e2.Message);

        var e3 = Assert.Throws<ArgumentException>(() => CheckpointAdaptation.Write(Fixture("bert"), Out("x")));
        Assert.Contains(Path.Combine(Fixture("bert"), "config.json") + " (model_type bert) is an encoder-only model", e3.Message);
        e3 = Assert.Throws<ArgumentException>(() => CheckpointAdaptation.Write(Fixture("t5_v1_1"), Out("x")));
        Assert.Contains("(model_type t5) is already an encoder–decoder", e3.Message);
        e3 = Assert.Throws<ArgumentException>(() => CheckpointAdaptation.Write(Fixture("llama"), Out("x"), options: new AdaptationOptions { EncoderLayers = 3 }));
        Assert.Contains("encoder_layers 3 is outside the blocks of", e3.Message);

        // A config.json that does not describe its weights: the tensor is named, nothing is written.
        var lying = Out("lying");
        Directory.CreateDirectory(lying);
        foreach (var f in Directory.GetFiles(Fixture("llama"))) File.Copy(f, Path.Combine(lying, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(lying, "config.json"), File.ReadAllText(Path.Combine(lying, "config.json")).Replace("\"intermediate_size\": 48", "\"intermediate_size\": 40"));
        var e4 = Assert.Throws<CheckpointFormatException>(() => CheckpointAdaptation.Write(lying, Out("x")));
        Assert.Contains(lying, e4.Message);
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", e4.Message);

        // An output that holds something is refused before anything is read.
        var taken = Out("taken");
        Directory.CreateDirectory(taken);
        File.WriteAllText(Path.Combine(taken, "keep.txt"), "mine");
        Assert.Throws<IOException>(() => CheckpointAdaptation.Write(Fixture("llama"), taken));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(taken, "keep.txt")));
        Assert.Throws<ArgumentException>(() => CheckpointAdaptation.Write(lying, lying));

        Assert.False(Directory.Exists(Out("x")));
        Assert.Empty(Directory.GetFileSystemEntries(_dir, ".*.tmp"));
    }
}
