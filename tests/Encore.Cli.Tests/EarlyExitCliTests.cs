using System.Text.Json;
using Encore.Training.Data;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>generate --exit-threshold</c> and <c>eval --exit-threshold</c> on a tiny untrained encoder–decoder made
/// here (2 encoder layers, 1 decoder layer): threshold 1 gives the plain tokens with every layer counted,
/// 0 runs the encoder's first layer only, and a bad value is refused naming the option.
/// </summary>
public sealed class EarlyExitCliTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-exit-cli-").FullName;
    readonly string _model, _data;

    public EarlyExitCliTests()
    {
        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        _model = TestCheckpoints.Save(Path.Combine(_dir, "encdec"), "tiny-encdec", tokenizer);
        _data = Path.Combine(_dir, "pairs.jsonl");
        File.WriteAllLines(_data, pairs.Take(5).Select(p => JsonSerializer.Serialize(new { source = p.Source, target = p.Target })));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string[] Generate(string model, params string[] extra) =>
        ["generate", "--model", model, "--prompt", "package 3 parses fonts", "--max-new-tokens", "6", "--min-new-tokens", "6", "--threads", "1", "--json", .. extra];

    [Fact]
    public void GenerateReportsTheLayersRun()
    {
        var plain = CliRunner.Run(Generate(_model));
        Assert.True(plain.ExitCode == 0, plain.Stderr);
        var one = CliRunner.Run(Generate(_model, "--exit-threshold", "1", "--stats"));
        Assert.True(one.ExitCode == 0, one.Stderr);
        var root = JsonDocument.Parse(one.Stdout).RootElement;
        Assert.Equal(JsonDocument.Parse(plain.Stdout).RootElement.GetProperty("tokens").ToString(), root.GetProperty("tokens").ToString());
        var e = root.GetProperty("early_exit");
        Assert.Equal(2, e.GetProperty("encoder_layers").GetInt64());
        Assert.Equal(6, e.GetProperty("decoder_tokens").GetInt64());
        Assert.Contains("early exit: encoder 2 of 2 layer evaluations (100.0%), decoder 6 of 6 (100.0%)", one.Stderr);

        var zero = CliRunner.Run(Generate(_model, "--encoder-exit-threshold", "0"));
        Assert.True(zero.ExitCode == 0, zero.Stderr);
        Assert.Equal(1, JsonDocument.Parse(zero.Stdout).RootElement.GetProperty("early_exit").GetProperty("encoder_layers").GetInt64());

        var bad = CliRunner.Run(Generate(_model, "--decoder-exit-threshold", "NaN"));
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("--decoder-exit-threshold", bad.Stderr);
    }

    [Fact]
    public void EvalSweepsThresholds()
    {
        var r = CliRunner.Run(["eval", "-m", _model, "--data", _data, "--max-new-tokens", "4", "--threads", "1", "--exit-rounds", "1",
            "--exit-threshold", "1", "--exit-threshold", "0:1", "--json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var points = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("models")[0].GetProperty("points");
        Assert.Equal(2, points.GetArrayLength());
        Assert.Equal(1.0, points[0].GetProperty("encoder_fraction").GetDouble());
        Assert.Equal(0.5, points[1].GetProperty("encoder_fraction").GetDouble());
        Assert.Equal(5, points[1].GetProperty("encoder_examples").GetInt64());

        var bad = CliRunner.Run(["eval", "-m", _model, "--data", _data, "--exit-threshold", "0.9:0.8:0.7"]);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("--exit-threshold", bad.Stderr);
    }
}
