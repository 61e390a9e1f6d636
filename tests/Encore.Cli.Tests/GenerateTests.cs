using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>encore generate</c> end to end on a tiny untrained encoder–decoder made here: sampling options
/// without <c>--do-sample</c> warn, <c>--input-file -</c> reads standard input, and <c>--tokenizer</c>
/// serves a checkpoint saved without tokenizer files.
/// </summary>
public sealed class GenerateTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-generate-cli-").FullName;
    readonly string _model, _bare, _tokenizer;

    public GenerateTests()
    {
        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        _model = Path.Combine(_dir, "model");
        _bare = Path.Combine(_dir, "bare");
        _tokenizer = Path.Combine(_dir, "tokenizer");
        foreach (var d in new[] { _model, _bare, _tokenizer }) Directory.CreateDirectory(d);
        using var model = TrainingRun.LoadModel("tiny-encdec", tokenizer);
        Checkpoint.Save(model, _model);
        Checkpoint.Save(model, _bare);
        TrainingRun.SaveTokenizer(tokenizer, _model);
        TrainingRun.SaveTokenizer(tokenizer, _tokenizer);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string[] Generate(params string[] extra) =>
        ["generate", "--model", _model, "--max-new-tokens", "4", "--min-new-tokens", "4", "--threads", "1", .. extra];

    [Fact]
    public void SamplingOptionsWithoutDoSampleWarnOnceAndDecodeGreedily()
    {
        var greedy = CliRunner.Run(Generate("--prompt", "package 3 parses fonts", "--json"));
        Assert.True(greedy.ExitCode == 0, greedy.Stderr);
        Assert.Equal("", greedy.Stderr.Trim());

        var r = CliRunner.Run(Generate("--prompt", "package 3 parses fonts", "--json", "--temperature", "0.7", "--top-k", "5"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("encore: --temperature, --top-k have no effect without --do-sample; decoding greedily", r.Stderr.Trim());
        Assert.Equal(JsonDocument.Parse(greedy.Stdout).RootElement.GetProperty("tokens").ToString(),
            JsonDocument.Parse(r.Stdout).RootElement.GetProperty("tokens").ToString());

        var sampled = CliRunner.Run(Generate("--prompt", "package 3 parses fonts", "--json", "--temperature", "0.7", "--do-sample", "--seed", "1"));
        Assert.True(sampled.ExitCode == 0, sampled.Stderr);
        Assert.Equal("", sampled.Stderr.Trim());
    }

    [Fact]
    public void InputFileDashReadsPromptsFromStandardInput()
    {
        var r = CliRunner.Run(Generate("--input-file", "-"), "{\"prompt\": \"package 1 parses images\"}\n\n{\"prompt\": \"package 2 parses fonts\"}\n");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal([1, 3], lines.Select(l => l.GetProperty("line").GetInt32()));
        Assert.Equal("package 2 parses fonts", lines[1].GetProperty("prompt").GetString());

        var bad = CliRunner.Run(Generate("--input-file", "-"), "{\"text\": \"x\"}\n");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("<stdin>:1: missing \"prompt\"", bad.Stderr);
    }

    [Fact]
    public void ACheckpointWithoutTokenizerFilesTakesTokenizerAndOtherwiseSaysSo()
    {
        var missing = CliRunner.Run("generate", "--model", _bare, "--prompt", "package 1", "--threads", "1");
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("no tokenizer found", missing.Stderr);
        Assert.Contains("--tokenizer", missing.Stderr);

        var withTokenizer = CliRunner.Run("generate", "--model", _bare, "--tokenizer", _tokenizer, "--prompt", "package 3 parses fonts",
            "--max-new-tokens", "4", "--min-new-tokens", "4", "--threads", "1", "--json");
        Assert.True(withTokenizer.ExitCode == 0, withTokenizer.Stderr);
        var own = CliRunner.Run(Generate("--prompt", "package 3 parses fonts", "--json"));
        Assert.Equal(JsonDocument.Parse(own.Stdout).RootElement.GetProperty("tokens").ToString(),
            JsonDocument.Parse(withTokenizer.Stdout).RootElement.GetProperty("tokens").ToString());
    }

    [Fact]
    public void TheCheckpointsGenerationConfigSetsWhatTheCommandLineDoesNot()
    {
        var configured = Path.Combine(_dir, "configured");
        Directory.CreateDirectory(configured);
        foreach (var f in Directory.GetFiles(_model)) File.Copy(f, Path.Combine(configured, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(configured, "generation_config.json"), """{"max_new_tokens": 3, "min_new_tokens": 3, "forced_bos_token_id": 7}""");
        int[] Tokens(CliRunner.Result r)
        {
            Assert.True(r.ExitCode == 0, r.Stderr);
            return [.. JsonDocument.Parse(r.Stdout).RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32())];
        }
        string[] Run(params string[] extra) => ["generate", "--model", configured, "--prompt", "package 3 parses fonts", "--threads", "1", .. extra];

        var plain = Tokens(CliRunner.Run(Generate("--prompt", "package 3 parses fonts", "--json")));
        Assert.NotEqual(7, plain[0]);
        var fromFile = Tokens(CliRunner.Run(Run("--json")));
        Assert.Equal(3, fromFile.Length);
        Assert.Equal(7, fromFile[0]);
        // A given option wins over the file's; the others still come from it.
        var longer = Tokens(CliRunner.Run(Run("--json", "--max-new-tokens", "5", "--min-new-tokens", "5")));
        Assert.Equal(5, longer.Length);
        Assert.Equal(7, longer[0]);
        // The note names the file and what it set; --ignore-generation-config decodes with the library's defaults.
        var text = CliRunner.Run(Run());
        Assert.True(text.ExitCode == 0, text.Stderr);
        Assert.Equal($"encore: decoding defaults from {Path.Combine(configured, "generation_config.json")}: max_new_tokens=3, min_new_tokens=3, forced_bos_token_id=7 " +
            "(options given here take precedence; --ignore-generation-config drops them)", text.Stderr.Trim());
        var ignored = Tokens(CliRunner.Run(Run("--json", "--ignore-generation-config", "--max-new-tokens", "4", "--min-new-tokens", "4")));
        Assert.Equal(plain, ignored);
        // A damaged file is one line naming it and the field.
        File.WriteAllText(Path.Combine(configured, "generation_config.json"), """{"num_beams": "four"}""");
        var bad = CliRunner.Run(Run("--json"));
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Equal($"encore: {Path.Combine(configured, "generation_config.json")}: num_beams must be an integer, got \"four\"", bad.Stderr.Trim());
    }
}
