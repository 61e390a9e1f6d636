using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>encore quantize</c> and the <c>--dtype</c> of <c>generate</c> end to end on a tiny untrained
/// encoder–decoder made here: the quantized copy carries its tokenizer, is several times smaller, and
/// generates the same tokens as the original quantized at load; bad requests fail with one line.
/// </summary>
public sealed class QuantizeTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-quantize-cli-").FullName;
    readonly string _model;

    public QuantizeTests()
    {
        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        _model = Path.Combine(_dir, "model");
        Directory.CreateDirectory(_model);
        using var model = TrainingRun.LoadModel("tiny-encdec", tokenizer);
        Checkpoint.Save(model, _model);
        TrainingRun.SaveTokenizer(tokenizer, _model);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    int[] Tokens(string model, params string[] extra)
    {
        var r = CliRunner.Run(["generate", "--model", model, "--prompt", "package 3 parses fonts", "--max-new-tokens", "6", "--min-new-tokens", "6", "--json", "--threads", "1", .. extra]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonDocument.Parse(r.Stdout).RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
    }

    [Fact]
    public void QuantizedCopyIsSmallerCarriesItsTokenizerAndGeneratesAsQuantizingAtLoad()
    {
        foreach (var dtype in new[] { "q4_0", "q8_0" })
        {
            var output = Path.Combine(_dir, dtype);
            var r = CliRunner.Run("quantize", "--model", _model, "--dtype", dtype, "--out", output, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            var j = JsonDocument.Parse(r.Stdout).RootElement;
            Assert.Equal(dtype, j.GetProperty("dtype").GetString());
            double ratio = (double)j.GetProperty("input_bytes").GetInt64() / j.GetProperty("output_bytes").GetInt64();
            Assert.True(ratio > (dtype == "q4_0" ? 4.0 : 2.5), $"{dtype}: only {ratio:F2}× smaller");
            Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
            Assert.Equal(Tokens(_model, "--dtype", dtype), Tokens(output));
        }
    }

    [Fact]
    public void BadRequestsFailWithOneLine()
    {
        var taken = Path.Combine(_dir, "taken");
        Directory.CreateDirectory(taken);
        File.WriteAllText(Path.Combine(taken, "keep.txt"), "mine");
        var r = CliRunner.Run("quantize", "--model", _model, "--dtype", "q4_0", "--out", taken);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("exists and is not empty", r.Stderr);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(taken, "keep.txt")));
        r = CliRunner.Run("quantize", "--model", _model, "--dtype", "q3_k", "--out", Path.Combine(_dir, "x"));
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--dtype 'q3_k' is not one of", r.Stderr);
        r = CliRunner.Run("generate", "--model", _model, "--prompt", "a", "--dtype", "int4");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--dtype 'int4' is not one of", r.Stderr);
    }
}
