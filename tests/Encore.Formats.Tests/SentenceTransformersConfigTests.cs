using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Models;

namespace Encore.Formats.Tests;

/// <summary>The sentence-transformers pipeline files as published (all-MiniLM-L6-v2's modules.json and 1_Pooling/config.json) and their refusals.</summary>
public sealed class SentenceTransformersConfigTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-st-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// Writes modules.json (Transformer at <paramref name="transformerPath"/>, Pooling, and Normalize when
    /// asked), 1_Pooling/config.json with <paramref name="pooling"/> set and sentence_bert_config.json.
    /// </summary>
    internal static void WritePipeline(string dir, string transformerPath, string pooling, bool normalize, int? maxSeq, JsonArray? extraModules = null)
    {
        var modules = new JsonArray
        {
            new JsonObject { ["idx"] = 0, ["name"] = "0", ["path"] = transformerPath, ["type"] = "sentence_transformers.models.Transformer" },
            new JsonObject { ["idx"] = 1, ["name"] = "1", ["path"] = "1_Pooling", ["type"] = "sentence_transformers.models.Pooling" },
        };
        if (normalize) modules.Add(new JsonObject { ["idx"] = 2, ["name"] = "2", ["path"] = "2_Normalize", ["type"] = "sentence_transformers.models.Normalize" });
        foreach (var m in extraModules ?? []) modules.Add(m!.DeepClone());
        Directory.CreateDirectory(Path.Combine(dir, "1_Pooling"));
        File.WriteAllText(Path.Combine(dir, "modules.json"), modules.ToJsonString());
        var poolingConfig = new JsonObject { ["word_embedding_dimension"] = 32 };
        foreach (var f in new[] { "pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken" })
            poolingConfig[f] = f == pooling;
        poolingConfig["include_prompt"] = true;
        File.WriteAllText(Path.Combine(dir, "1_Pooling", "config.json"), poolingConfig.ToJsonString());
        var transformer = Path.Combine(dir, transformerPath);
        Directory.CreateDirectory(transformer);
        if (maxSeq is int n) File.WriteAllText(Path.Combine(transformer, "sentence_bert_config.json"), $"{{\"max_seq_length\": {n}, \"do_lower_case\": false}}");
    }

    [Fact]
    public void ThePublishedLayoutReadsAsMeanPoolingWithNormalization()
    {
        WritePipeline(_dir, "", "pooling_mode_mean_tokens", normalize: true, maxSeq: 256);
        var c = SentenceTransformersConfig.Read(_dir)!;
        Assert.Equal((PoolingMode.Mean, true, 256, false, 32), (c.Pooling, c.Normalize, c.MaxSeqLength, c.LowercaseInput, c.WordEmbeddingDimension));
        Assert.Equal(_dir, c.TransformerDirectory);
        c.EnsureFits(32);
        Assert.Contains("word_embedding_dimension 32 does not match the encoder's hidden size 384", Assert.Throws<CheckpointFormatException>(() => c.EnsureFits(384)).Message);
    }

    [Theory]
    [InlineData("pooling_mode_cls_token", PoolingMode.Cls)]
    [InlineData("pooling_mode_max_tokens", PoolingMode.Max)]
    public void OtherPoolingsAndAnOlderTransformerFolderRead(string flag, PoolingMode mode)
    {
        WritePipeline(_dir, "0_Transformer", flag, normalize: false, maxSeq: null);
        var c = SentenceTransformersConfig.Read(_dir)!;
        Assert.Equal((mode, false, (int?)null), (c.Pooling, c.Normalize, c.MaxSeqLength));
        Assert.Equal(Path.Combine(_dir, "0_Transformer"), c.TransformerDirectory);
    }

    [Fact]
    public void ADirectoryWithoutModulesJsonIsNotAPipeline() => Assert.Null(SentenceTransformersConfig.Read(_dir));

    [Fact]
    public void AnUnsupportedModuleIsNamed()
    {
        WritePipeline(_dir, "", "pooling_mode_mean_tokens", normalize: false, maxSeq: 128,
            new JsonArray(new JsonObject { ["idx"] = 2, ["name"] = "2", ["path"] = "2_Dense", ["type"] = "sentence_transformers.models.Dense" }));
        var e = Assert.Throws<CheckpointFormatException>(() => SentenceTransformersConfig.Read(_dir));
        Assert.StartsWith(Path.Combine(_dir, "modules.json") + ":", e.Message);
        Assert.Contains("module 2 'sentence_transformers.models.Dense' (path '2_Dense') is not supported (supported: Transformer, Pooling, Normalize)", e.Message);
    }

    [Theory]
    [InlineData("pooling_mode_lasttoken", "pooling_mode_lasttoken is not supported (supported: mean, cls, max)")]
    [InlineData("pooling_mode_weightedmean_tokens", "pooling_mode_weightedmean_tokens is not supported")]
    [InlineData("none", "no pooling mode is set")]
    public void UnsupportedPoolingsAreNamed(string flag, string expected)
    {
        WritePipeline(_dir, "", flag, normalize: false, maxSeq: 128);
        var e = Assert.Throws<CheckpointFormatException>(() => SentenceTransformersConfig.Read(_dir));
        Assert.StartsWith(Path.Combine(_dir, "1_Pooling", "config.json") + ":", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("modules.json", "{}", "not a JSON array of modules")]
    [InlineData("modules.json", "[{\"path\": \"\"}]", "module 0 has no string 'type'")]
    [InlineData("modules.json", "[{\"type\": \"sentence_transformers.models.Pooling\", \"path\": \"1_Pooling\"}]", "is out of place")]
    [InlineData("modules.json", "[{\"type\": \"sentence_transformers.models.Transformer\", \"path\": \"../x\"}]", "must be a folder inside the model directory")]
    [InlineData("modules.json", "[{\"type\": \"sentence_transformers.models.Transformer\", \"path\": \"\"}]", "no sentence_transformers.models.Pooling module")]
    [InlineData("sentence_bert_config.json", "{\"max_seq_length\": 0}", "max_seq_length must be an integer")]
    [InlineData("sentence_bert_config.json", "{\"do_lower_case\": 1}", "do_lower_case must be true or false")]
    [InlineData("1_Pooling/config.json", "{\"pooling_mode_mean_tokens\": true, \"pooling_mode_cls_token\": true}", "are both set")]
    [InlineData("1_Pooling/config.json", "[1]", "not a JSON object")]
    public void MalformedFilesFailNamingTheFile(string file, string content, string expected)
    {
        WritePipeline(_dir, "", "pooling_mode_mean_tokens", normalize: true, maxSeq: 128);
        var path = Path.Combine(_dir, file);
        File.WriteAllText(path, content);
        var e = Assert.Throws<CheckpointFormatException>(() => SentenceTransformersConfig.Read(_dir));
        Assert.StartsWith(path + ":", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
