using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>encore embed</c> and <c>encore convert --from onnx</c> end to end: the vectors written (JSON lines or
/// .npy) are the library's Embedder's, for an encoder–decoder made here and for the tiny BERT fixture
/// exported to ONNX (fuzz/corpus/onnx/tiny-bert.onnx) imported with a sentence-transformers pipeline beside it.
/// </summary>
public sealed class EmbedTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-embed-cli-").FullName;
    readonly string _encdec;

    static readonly string[] s_texts = ["package 3 parses fonts", "package 11 parses images and fonts", "parser"];

    public EmbedTests()
    {
        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        _encdec = Path.Combine(_dir, "encdec");
        Directory.CreateDirectory(_encdec);
        using var model = TrainingRun.LoadModel("tiny-encdec", tokenizer);
        Checkpoint.Save(model, _encdec);
        TrainingRun.SaveTokenizer(tokenizer, _encdec);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static float[][] Library(string dir, IReadOnlyList<string> texts, Func<EmbeddingOptions, EmbeddingOptions>? edit = null)
    {
        using var m = Checkpoint.Load(dir);
        var options = EmbeddingOptions.FromSentenceTransformers(SentenceTransformersConfig.Read(dir));
        return new Embedder(m, TokenizerLoader.FromDirectory(dir), edit?.Invoke(options) ?? options).Embed(texts).Vectors;
    }

    static float[][] JsonLines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select((line, i) =>
        {
            var o = JsonNode.Parse(line)!;
            Assert.Equal(i, o["index"]!.GetValue<int>());
            return o["embedding"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
        }).ToArray();

    static float[][] ReadNpy(string path, out string header)
    {
        var b = File.ReadAllBytes(path);
        int length = b[8] | b[9] << 8;
        header = System.Text.Encoding.ASCII.GetString(b, 10, length).Trim();
        var values = new float[(b.Length - 10 - length) / 4];
        Buffer.BlockCopy(b, 10 + length, values, 0, values.Length * 4);
        return values.Chunk(32).ToArray();
    }

    [Fact]
    public void AnEncoderDecodersEncoderEmbedsToJsonLinesAndNpy()
    {
        var expected = Library(_encdec, s_texts);
        var r = CliRunner.Run(["embed", "-m", _encdec, "--threads", "1", .. s_texts.SelectMany(t => new[] { "--text", t })]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(expected, JsonLines(r.Stdout));

        // One text per line (an empty line is a text), written as a float32 (N, D) array.
        var input = Path.Combine(_dir, "texts.txt");
        File.WriteAllText(input, string.Join('\n', s_texts) + "\n\n");
        var npy = Path.Combine(_dir, "out.npy");
        r = CliRunner.Run("embed", "-m", _encdec, "--input", input, "--out", npy, "--json", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var summary = JsonNode.Parse(r.Stdout)!;
        Assert.Equal((4, 32, "mean", true, "npy"), (summary["count"]!.GetValue<int>(), summary["dimensions"]!.GetValue<int>(),
            summary["pooling"]!.GetValue<string>(), summary["normalize"]!.GetValue<bool>(), summary["format"]!.GetValue<string>()));
        var rows = ReadNpy(npy, out var header);
        Assert.Equal("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 32), }", header);
        Assert.Equal(Library(_encdec, [.. s_texts, ""]), rows);

        // JSONL input from standard input, max pooling, not normalized.
        r = CliRunner.Run(["embed", "-m", _encdec, "--input", "-", "--input-format", "jsonl", "--pooling", "max", "--normalize", "false", "--threads", "1"],
            string.Join('\n', s_texts.Select(t => new JsonObject { ["text"] = t, ["id"] = 7 }.ToJsonString())));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(Library(_encdec, s_texts, o => o with { Pooling = PoolingMode.Max, Normalize = false }), JsonLines(r.Stdout));

        // Truncation is reported.
        r = CliRunner.Run("embed", "-m", _encdec, "--text", s_texts[1], "--max-length", "3", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("1 of 1 texts were longer than 3 tokens and were truncated", r.Stderr);
    }

    /// <summary>A WordPiece vocabulary of the tiny BERT's 64 ids.</summary>
    static void WriteVocab(string dir)
    {
        var words = new List<string> { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "the", "a", "fox", "dog", "quick", "brown", "lazy", "jumps", "over", "##s", "##ing" };
        for (int i = 0; words.Count < 64; i++) words.Add("w" + i);
        File.WriteAllLines(Path.Combine(dir, "vocab.txt"), words);
    }

    [Fact]
    public void AnOnnxExportWithASentenceTransformersPipelineConvertsAndEmbeds()
    {
        var source = Path.Combine(_dir, "hub");
        Directory.CreateDirectory(Path.Combine(source, "1_Pooling"));
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "tiny-bert.onnx"), Path.Combine(source, "model.onnx"));
        WriteVocab(source);
        File.WriteAllText(Path.Combine(source, "modules.json"), """
            [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
             {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
            """);
        File.WriteAllText(Path.Combine(source, "1_Pooling", "config.json"), """{"word_embedding_dimension": 32, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}""");
        File.WriteAllText(Path.Combine(source, "sentence_bert_config.json"), """{"max_seq_length": 16, "do_lower_case": false}""");

        var converted = Path.Combine(_dir, "converted");
        var r = CliRunner.Run("convert", "--from", "onnx", "-m", Path.Combine(source, "model.onnx"), "--out", converted, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var summary = JsonNode.Parse(r.Stdout)!;
        Assert.Equal((12, 4, "the graph"), (summary["graph_named_tensors"]!.GetValue<int>(), summary["heads"]!.GetValue<int>(), summary["config"]!.GetValue<string>()));
        Assert.Contains("modules.json", summary["copied"]!.AsArray().Select(x => x!.GetValue<string>()));

        string[] texts = ["the quick brown fox jumps over the lazy dog.", "a dog", string.Join(' ', Enumerable.Repeat("fox", 40))];
        var output = Path.Combine(_dir, "bert.jsonl");
        r = CliRunner.Run(["embed", "-m", converted, "--out", output, "--json", "--threads", "1", .. texts.SelectMany(t => new[] { "--text", t })]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var written = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(("cls", true, 16, 1), (written["pooling"]!.GetValue<string>(), written["normalize"]!.GetValue<bool>(), written["max_length"]!.GetValue<int>(), written["truncated"]!.GetValue<int>()));
        Assert.Equal(Library(converted, texts), JsonLines(File.ReadAllText(output)));

        // The import refuses to overwrite, and a pipeline module Encore does not run is named.
        r = CliRunner.Run("convert", "--from", "onnx", "-m", Path.Combine(source, "model.onnx"), "--out", converted);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("already exists", r.Stderr);
        File.WriteAllText(Path.Combine(converted, "modules.json"), """[{"type": "sentence_transformers.models.Transformer", "path": ""}, {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}, {"type": "sentence_transformers.models.Dense", "path": "2_Dense"}]""");
        r = CliRunner.Run("embed", "-m", converted, "--text", "a dog");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("module 2 'sentence_transformers.models.Dense' (path '2_Dense') is not supported", r.Stderr);
    }

    [Theory]
    [InlineData("--pooling first", "--pooling 'first' is not one of mean, cls, max, last")]
    [InlineData("--format npy", "--format npy writes a file: give --out FILE.npy")]
    [InlineData("--format csv --out x.csv", "--format 'csv' is not one of jsonl, npy")]
    [InlineData("--batch 0", "--batch must be in [1, 4096], got 0")]
    [InlineData("--json", "--json describes the file written: give --out")]
    public void BadOptionsFailWithOneLine(string options, string expected)
    {
        var r = CliRunner.Run(["embed", "-m", _encdec, "--text", "a", .. options.Split(' ')]);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"encore: {expected}", r.Stderr.Trim());
    }

    [Fact]
    public void ADecoderOnlyCheckpointAndMissingInputsAreRefused()
    {
        var r = CliRunner.Run("embed", "-m", _encdec);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("give --text (one or more) or --input", r.Stderr);

        var decoder = Path.Combine(_dir, "decoder");
        using (var m = LanguageModel.Create(Presets.Get("tiny-decoder")))
            Checkpoint.Save(m, decoder);
        r = CliRunner.Run("embed", "-m", decoder, "--text", "a");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("has no encoder to embed with", r.Stderr);
    }
}
