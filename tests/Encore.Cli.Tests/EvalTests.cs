using System.Diagnostics;
using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>encore eval</c> end to end on untrained tiny checkpoints made here (seed 0): several models in one
/// table, <c>--speed</c>, <c>--plot</c>, <c>--markdown</c>, one model's JSON as before, and a missing model.
/// </summary>
public sealed class EvalTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-eval-cli-").FullName;
    readonly string _data;
    readonly string _encDecRun;
    readonly string _decoder;

    public EvalTests()
    {
        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair(
            $"package number {i} provides a library for parsing {(i % 2 == 0 ? "images" : "fonts")} quickly and safely",
            i % 3 == 0 ? "image library" : $"font parser {i}")).ToList();
        _data = Path.Combine(_dir, "pairs.jsonl");
        File.WriteAllLines(_data, pairs.Select(p => JsonSerializer.Serialize(new { source = p.Source, target = p.Target })));
        // Two tokenizers of different sizes: each model decodes with its own.
        _encDecRun = Path.Combine(_dir, "runs", "ed");
        Save("tiny-encdec", BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0), Path.Combine(_encDecRun, "checkpoint-2"));
        File.WriteAllLines(Path.Combine(_encDecRun, "metrics.jsonl"),
        [
            """{"step":1,"loss":5.7,"tokens":120}""",
            """{"step":2,"loss":5.5,"tokens":250}""",
            """{"step":2,"eval_loss":5.6,"perplexity":270.4}""",
        ]);
        _decoder = Path.Combine(_dir, "decoder");
        Save("tiny-decoder", BundledData.TrainTokenizer(pairs, vocabSize: 320, sentinels: 0), _decoder);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static void Save(string preset, Formats.Tokenization.TextTokenizer tokenizer, string dir) => TestCheckpoints.Save(dir, preset, tokenizer);

    static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "encore.dll"));
        psi.ArgumentList.Add("eval");
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--threads");
        psi.ArgumentList.Add("1");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(300_000), $"encore eval {string.Join(' ', args)} did not finish");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    static JsonElement Json(params string[] args)
    {
        var (code, stdout, stderr) = Run([.. args, "--json"]);
        Assert.True(code == 0, $"encore eval {string.Join(' ', args)} failed: {stderr}");
        return JsonDocument.Parse(stdout).RootElement;
    }

    [Fact]
    public void SeveralModelsShareTheExamplesAndGetSpeedAndALossPlot()
    {
        var png = Path.Combine(_dir, "out", "loss.png");
        var r = Json("-m", $"ed={_encDecRun}", "--model", _decoder, "--data", _data, "--examples", "8", "--max-new-tokens", "3",
            "--speed", "--speed-prompts", "2", "--plot", png);
        Assert.Equal(8, r.GetProperty("examples").GetInt32());
        Assert.False(r.GetProperty("shared_tokenizer").GetBoolean());
        Assert.Equal(2, r.GetProperty("baselines").GetArrayLength());
        var models = r.GetProperty("models").EnumerateArray().ToList();
        Assert.Equal(["ed", "decoder"], models.Select(m => m.GetProperty("name").GetString()));
        Assert.Equal(Path.Combine(_encDecRun, "checkpoint-2"), models[0].GetProperty("checkpoint").GetString());
        string References(JsonElement m) => string.Join("\n", m.GetProperty("result").GetProperty("samples").EnumerateArray().Select(s => s.GetProperty("reference").GetString()));
        Assert.Equal(References(models[0]), References(models[1]));
        Assert.All(models, m =>
        {
            Assert.Equal(8, m.GetProperty("result").GetProperty("examples").GetInt32());
            var speed = m.GetProperty("speed");
            Assert.True(speed.GetProperty("first_token_ms").GetDouble() > 0);
            Assert.True(speed.GetProperty("decode_tokens_per_second").GetDouble() > 0);
            Assert.True(speed.GetProperty("cache_bytes_per_request").GetInt64() > 0);
            Assert.Equal(2, speed.GetProperty("prompts").GetInt32());
        });
        Assert.Equal(png, r.GetProperty("plot").GetString());
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, File.ReadAllBytes(png)[..8]);
        // The decoder checkpoint has no run log beside it: it is left out of the plot, with a note.
        Assert.Contains(r.GetProperty("notes").EnumerateArray(), n => n.GetString()!.StartsWith("decoder: no metrics.jsonl", StringComparison.Ordinal));
    }

    [Fact]
    public void MarkdownPrintsOneRowPerModelThenTheBaselines()
    {
        var (code, stdout, stderr) = Run("-m", $"ed={_encDecRun}", "-m", $"dec={_decoder}", "--data", _data, "--examples", "6", "--max-new-tokens", "2", "--markdown");
        Assert.True(code == 0, stderr);
        var rows = stdout.Split('\n').Where(l => l.StartsWith('|')).ToList();
        Assert.Equal(6, rows.Count);
        Assert.StartsWith("| model | params | loss | ppl | ROUGE-L | ROUGE-1 | ROUGE-2 | chrF | BLEU | exact |", rows[0]);
        Assert.StartsWith("|---|---:|", rows[1]);
        Assert.StartsWith("| ed | ", rows[2]);
        Assert.StartsWith("| dec | ", rows[3]);
        Assert.Matches(@"^\| lead-\d+ baseline \|", rows[4]);
        Assert.StartsWith("| majority baseline |", rows[5]);
        Assert.All(rows, row => Assert.Equal(rows[0].Count(c => c == '|'), row.Count(c => c == '|')));
    }

    [Fact]
    public void OneModelKeepsItsJsonShape()
    {
        var r = Json("-m", _decoder, "--data", _data, "--examples", "4", "--max-new-tokens", "2");
        Assert.Equal(_decoder, r.GetProperty("checkpoint").GetString());
        Assert.Equal(_data, r.GetProperty("data").GetString());
        var result = r.GetProperty("result");
        Assert.Equal(4, result.GetProperty("examples").GetInt32());
        Assert.True(result.GetProperty("loss").GetDouble() > 0);
        Assert.Equal(7, result.GetProperty("metrics").EnumerateObject().Count());
        Assert.Equal(2, result.GetProperty("baselines").GetArrayLength());
        Assert.Equal("DecoderOnly", r.GetProperty("family").GetString());
        Assert.Equal(JsonValueKind.Null, r.GetProperty("speed").ValueKind);
        Assert.False(r.TryGetProperty("models", out _));
    }

    [Fact]
    public void AMissingModelIsNamed()
    {
        var missing = Path.Combine(_dir, "no-such-teacher");
        var (code, stdout, stderr) = Run("-m", $"teacher={missing}", "-m", _decoder, "--data", _data, "--json");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Contains("teacher", stderr);
        Assert.Contains(missing, stderr);
    }

    [Fact]
    public void ACheckpointWithoutTokenizerFilesTakesTokenizerAndOtherwiseSaysSo()
    {
        // The decoder's weights alone, in a directory of their own; its tokenizer files stay where they were.
        var bare = Path.Combine(_dir, "bare-decoder");
        Directory.CreateDirectory(bare);
        foreach (var f in Directory.GetFiles(_decoder).Where(f => Path.GetFileName(f) is "config.json" or "model.safetensors"))
            File.Copy(f, Path.Combine(bare, Path.GetFileName(f)));

        var (code, _, stderr) = Run("-m", bare, "--data", _data, "--examples", "4", "--loss-only", "--json");
        Assert.Equal(1, code);
        Assert.Contains("no tokenizer found", stderr);
        Assert.Contains("--tokenizer", stderr);

        var withTokenizer = Json("-m", bare, "--tokenizer", _decoder, "--data", _data, "--examples", "4", "--loss-only");
        var own = Json("-m", _decoder, "--data", _data, "--examples", "4", "--loss-only");
        Assert.Equal(own.GetProperty("result").GetProperty("loss").GetDouble(), withTokenizer.GetProperty("result").GetProperty("loss").GetDouble());
    }
}
