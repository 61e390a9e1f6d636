using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>encore compress-context train|eval</c> end to end on a tiny decoder-only checkpoint made here; bad inputs fail
/// with one line naming the option or file.
/// </summary>
public sealed class CompressContextTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-arc-cli-").FullName;
    readonly string _corpus;
    readonly string _decoder;

    public CompressContextTests()
    {
        var lines = Enumerable.Range(0, 60).Select(i => $"package {i} parses images and fonts for the tools of release {i % 5} and more").ToList();
        _corpus = Path.Combine(_dir, "corpus.txt");
        File.WriteAllLines(_corpus, lines);
        var tokenizer = BundledData.TrainTokenizer(lines.Select(l => new TextPair(l, "")), vocabSize: 400);
        _decoder = Path.Combine(_dir, "decoder");
        Directory.CreateDirectory(_decoder);
        var config = TrainingRun.ForTokenizer(Presets.Get("tiny-decoder"), tokenizer) with { DecoderLayers = 2, MaxPositions = 64 };
        using var model = LanguageModel.Create(config, seed: 3);
        Checkpoint.Save(model, _decoder);
        TrainingRun.SaveTokenizer(tokenizer, _decoder);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // The training command line with small settings; an option in `changes` replaces the default's value or is added.
    string[] Train(string output, params string[] changes)
    {
        var options = new List<(string Name, string Value)>
        {
            ("--decoder", _decoder), ("--data", _corpus), ("--context-tokens", "8"), ("--continuation-tokens", "6"), ("--held-out", "0.2"),
            ("--steps", "6"), ("--batch", "4"), ("--log-every", "2"), ("--threads", "1"), ("--out", output),
        };
        var flags = new List<string>();
        for (int i = 0; i < changes.Length; i++)
        {
            if (changes[i] == "--json") { flags.Add("--json"); continue; }
            int at = options.FindIndex(o => o.Name == changes[i]);
            if (at >= 0) options[at] = (changes[i], changes[i + 1]);
            else options.Add((changes[i], changes[i + 1]));
            i++;
        }
        return ["compress-context", "train", .. options.SelectMany(o => new[] { o.Name, o.Value }), .. flags];
    }

    [Fact]
    public void TrainThenEvalATinyCompressor()
    {
        var output = Path.Combine(_dir, "arc");
        var r = CliRunner.Run(Train(output, "--pooling", "2", "--drop-layers", "1", "--json"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var events = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal("start", events[0].GetProperty("event").GetString());
        Assert.Equal(4, events[0].GetProperty("compressed_vectors").GetInt32());
        Assert.Equal(1, events[0].GetProperty("encoder_layers").GetInt32());
        Assert.Equal(3, events.Count(e => e.GetProperty("event").GetString() == "step"));
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
        Assert.True(ContextCompressorCheckpoint.IsCompressorDirectory(output));

        // Evaluation reads the chunking from the run and the decoder from the compressor's config.json.
        var e = CliRunner.Run("compress-context", "eval", "--model", output, "--data", _corpus, "--chunks", "5", "--timed", "2", "--threads", "1", "--json");
        Assert.True(e.ExitCode == 0, e.Stderr);
        var j = JsonDocument.Parse(e.Stdout).RootElement;
        Assert.Equal(8, j.GetProperty("context_tokens").GetInt32());
        Assert.Equal(6, j.GetProperty("continuation_tokens").GetInt32());
        Assert.Equal(4, j.GetProperty("compressed_vectors").GetInt32());
        Assert.InRange(j.GetProperty("reconstruction_accuracy").GetDouble(), 0, 1);
        var losses = j.GetProperty("continuation_loss");
        foreach (var name in new[] { "compressed", "no_context", "full_context" }) Assert.InRange(losses.GetProperty(name).GetDouble(), 0.1, 20);
        Assert.True(j.GetProperty("prefill_ms").GetProperty("full").GetDouble() > 0);

        var table = CliRunner.Run("compress-context", "eval", "--model", output, "--data", _corpus, "--chunks", "3", "--timed", "1", "--threads", "1");
        Assert.True(table.ExitCode == 0, table.Stderr);
        Assert.Contains("reconstruction token accuracy", table.Stdout);
        Assert.Contains("prefill, full text", table.Stdout);
    }

    [Fact]
    public void ProgressLinesOfARunWithOneTaskShowADashForTheOther()
    {
        var r = CliRunner.Run(Train(Path.Combine(_dir, "rec"), "--reconstruction-share", "1"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var steps = r.Stdout.Split('\n').Where(l => l.StartsWith("step ", StringComparison.Ordinal)).ToArray();
        Assert.Equal(3, steps.Length);
        Assert.All(steps, l => Assert.Contains("  cont –  ", l));
        Assert.DoesNotContain("NaN", r.Stdout);
    }

    [Fact]
    public void InitStartsFromATrainedCompressorAndMayChangeItsPooling()
    {
        var first = Path.Combine(_dir, "first");
        Assert.True(CliRunner.Run(Train(first, "--pooling", "2")) is { ExitCode: 0 });

        // A learning rate of 1e-9 leaves every weight where --init put it: the projector is the trained one, not a fresh draw.
        var again = Path.Combine(_dir, "again");
        var r = CliRunner.Run(Train(again, "--init", first, "--lr", "1e-9", "--projector-lr", "1e-9", "--steps", "1", "--json"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var start = JsonDocument.Parse(r.Stdout.Split('\n')[0]).RootElement;
        Assert.Equal(first, start.GetProperty("init").GetString());
        Assert.Equal(2, start.GetProperty("pooling").GetInt32());
        Assert.Equal(4, start.GetProperty("compressed_vectors").GetInt32());
        var (a, _) = ContextCompressorCheckpoint.Load(first);
        var (b, _) = ContextCompressorCheckpoint.Load(again);
        var fresh = Path.Combine(_dir, "fresh");
        Assert.True(CliRunner.Run(Train(fresh, "--pooling", "2", "--lr", "1e-9", "--projector-lr", "1e-9", "--steps", "1")) is { ExitCode: 0 });
        var (c, _) = ContextCompressorCheckpoint.Load(fresh);
        using (a)
        using (b)
        using (c)
        {
            foreach (var p in a.Parameters.All)
            {
                var x = p.Value.AsReadOnlySpan<float>().ToArray();
                var y = b.Parameters[p.Name].Value.AsReadOnlySpan<float>().ToArray();
                Assert.True(x.Zip(y).Max(t => Math.Abs(t.First - t.Second)) < 1e-5, p.Name);
            }
            var trained = a.Parameters.All.Single(p => p.Name.StartsWith("projector.1", StringComparison.Ordinal)).Value.AsReadOnlySpan<float>().ToArray();
            var untrained = c.Parameters.All.Single(p => p.Name.StartsWith("projector.1", StringComparison.Ordinal)).Value.AsReadOnlySpan<float>().ToArray();
            Assert.True(trained.Zip(untrained).Max(t => Math.Abs(t.First - t.Second)) > 1e-4);
        }

        // A new --pooling applies to the loaded encoder (ARC-Encoder fine-tunes at PF 4 what it pretrained at PF 8).
        var repooled = CliRunner.Run(Train(Path.Combine(_dir, "pf4"), "--init", first, "--pooling", "4", "--steps", "2", "--json"));
        Assert.True(repooled.ExitCode == 0, repooled.Stderr);
        Assert.Equal(2, JsonDocument.Parse(repooled.Stdout.Split('\n')[0]).RootElement.GetProperty("compressed_vectors").GetInt32());
        Assert.Equal(4, ContextCompressorCheckpoint.ReadConfig(Path.Combine(_dir, "pf4")).Config.Pooling);

        AssertOneLine(CliRunner.Run(Train(Path.Combine(_dir, "bad"), "--init", first, "--drop-layers", "1")), "--drop-layers shapes a fresh compressor");
        var nowhere = Path.Combine(_dir, "nowhere");
        AssertOneLine(CliRunner.Run(Train(Path.Combine(_dir, "bad"), "--init", nowhere)), $"--init {nowhere}: no such directory");
        AssertOneLine(CliRunner.Run(Train(Path.Combine(_dir, "bad"), "--init", _decoder)), "expected 'encore-context-compressor'");
    }

    [Fact]
    public void SaveEveryKeepsTheNewestCopiesAsCheckpointDirectories()
    {
        var run = Path.Combine(_dir, "saved");
        var r = CliRunner.Run(Train(run, "--steps", "7", "--save-every", "2", "--keep-checkpoints", "2"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        // Saves at 2, 4 and 6 leave copies of the newest two; the last step's compressor is --out itself.
        Assert.Equal(new[] { "checkpoint-4", "checkpoint-6" }, Directory.GetDirectories(run).Select(d => Path.GetFileName(d)!).Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(7, JsonNode.Parse(File.ReadAllText(Path.Combine(run, "compression_run.json")))!["step"]!.GetValue<int>());
        var copy = Path.Combine(run, "checkpoint-4");
        Assert.Equal(4, JsonNode.Parse(File.ReadAllText(Path.Combine(copy, "compression_run.json")))!["step"]!.GetValue<int>());
        Assert.True(File.Exists(Path.Combine(copy, "tokenizer.json")));
        // A copy is a whole compressor: eval and --init take it.
        var e = CliRunner.Run(["compress-context", "eval", "--model", copy, "--data", _corpus, "--chunks", "4", "--threads", "1", "--json"]);
        Assert.True(e.ExitCode == 0, e.Stderr);
        using (var a = ContextCompressorCheckpoint.Load(copy).Compressor)
        using (var b = ContextCompressorCheckpoint.Load(run).Compressor)
        {
            var early = a.Parameters.All.First().Value.AsReadOnlySpan<float>().ToArray();
            var late = b.Parameters.All.First().Value.AsReadOnlySpan<float>().ToArray();
            Assert.True(early.Zip(late).Max(t => Math.Abs(t.First - t.Second)) > 0, "the step-4 copy must hold step 4's weights, not the last step's");
        }

        AssertOneLine(CliRunner.Run(Train(Path.Combine(_dir, "bad"), "--save-every", "2", "--keep-checkpoints", "0")), "--keep-checkpoints must be ≥ 1");
    }

    [Theory]
    [InlineData("--pooling", "0", "--pooling must be ≥ 1")]
    [InlineData("--steps", "0", "--steps must be ≥ 1")]
    [InlineData("--reconstruction-share", "1.5", "--reconstruction-share must be in [0, 1]")]
    [InlineData("--drop-layers", "3", "leaves none")]
    [InlineData("--context-tokens", "1", "--context-tokens must be ≥ 2")]
    public void BadTrainingOptionsFailWithOneLine(string option, string value, string message)
    {
        var r = CliRunner.Run(Train(Path.Combine(_dir, "bad"), option, value));
        AssertOneLine(r, message);
    }

    [Fact]
    public void MissingFilesAndWrongModelsFailWithOneLineNamingThem()
    {
        var missing = Path.Combine(_dir, "nope.txt");
        AssertOneLine(CliRunner.Run(["compress-context", "train", "--decoder", _decoder, "--data", missing, "--out", Path.Combine(_dir, "x")]), $"--data {missing}: no such file");
        var noDecoder = Path.Combine(_dir, "no-decoder");
        AssertOneLine(CliRunner.Run(["compress-context", "train", "--decoder", noDecoder, "--data", _corpus, "--out", Path.Combine(_dir, "x")]), $"--decoder {noDecoder}: no such directory");
        // An encoder-only checkpoint is no decoder.
        var encoder = Path.Combine(_dir, "encoder");
        Directory.CreateDirectory(encoder);
        using (var m = LanguageModel.Create(Presets.Get("tiny-encoder") with { VocabSize = 400 })) Checkpoint.Save(m, encoder);
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(_decoder, f), Path.Combine(encoder, f));
        AssertOneLine(CliRunner.Run(["compress-context", "train", "--decoder", encoder, "--data", _corpus, "--out", Path.Combine(_dir, "x")]), "needs a decoder-only model");
        // eval of a folder that is not a compressor names its config.json.
        AssertOneLine(CliRunner.Run(["compress-context", "eval", "--model", _decoder, "--data", _corpus]), "model_type is 'encore', expected 'encore-context-compressor'");
        AssertOneLine(CliRunner.Run(["compress-context", "eval", "--model", noDecoder, "--data", _corpus]), $"--model {noDecoder}: no such directory");
    }

    static void AssertOneLine(CliRunner.Result r, string fragment)
    {
        Assert.Equal(1, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, r.Stderr);
        Assert.StartsWith("encore: ", lines[0]);
        Assert.Contains(fragment, lines[0]);
    }
}
