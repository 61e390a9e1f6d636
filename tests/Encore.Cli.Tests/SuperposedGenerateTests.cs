using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>encore ngram build</c> and <c>encore generate --superposed</c> on tiny untrained checkpoints made here: one
/// draft is the greedy output, k drafts are printed as k alternatives (and as k sequences in JSON), and a bad k
/// or an n-gram file that is corrupt or of another tokenizer fails with one line naming it.
/// </summary>
public sealed class SuperposedGenerateTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-superposed-cli-").FullName;
    readonly string _encdec, _decoder, _other, _corpus;

    public SuperposedGenerateTests()
    {
        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair($"package {i} parses images and fonts", $"parser {i} of images")).ToList();
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        var other = BundledData.TrainTokenizer(pairs.Select(p => p with { Source = p.Source.ToUpperInvariant() }).ToList(), vocabSize: 300, sentinels: 0);
        _encdec = Save("encdec", "tiny-encdec", tokenizer);
        _decoder = Save("decoder", "tiny-decoder", tokenizer);
        _other = Save("other", "tiny-encdec", other);
        _corpus = Path.Combine(_dir, "corpus.jsonl");
        File.WriteAllLines(_corpus, pairs.Select(p => JsonSerializer.Serialize(new { source = p.Source, target = p.Target })));
    }

    string Save(string name, string preset, Encore.Formats.Tokenization.TextTokenizer tokenizer) =>
        TestCheckpoints.Save(Path.Combine(_dir, name), preset, tokenizer);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string[] Generate(string model, params string[] extra) =>
        ["generate", "--model", model, "--prompt", "package 3 parses fonts", "--max-new-tokens", "10", "--threads", "1", .. extra];

    string BuildTable(string tokenizerDir, string name)
    {
        string path = Path.Combine(_dir, name);
        var r = CliRunner.Run("ngram", "build", "--tokenizer", tokenizerDir, "--data", _corpus, "--order", "4", "--out", path, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(12, o.GetProperty("documents").GetInt32());
        Assert.True(o.GetProperty("tokens").GetInt64() > 24);
        return path;
    }

    [Fact]
    public void ATrainingRunFolderGivesTheTokenizerOfItsNewestCheckpoint()
    {
        var run = Path.Combine(_dir, "run");
        foreach (var f in Directory.GetFiles(_encdec)) { Directory.CreateDirectory(Path.Combine(run, "checkpoint-8")); File.Copy(f, Path.Combine(run, "checkpoint-8", Path.GetFileName(f))); }
        var fromRun = File.ReadAllBytes(BuildTable(run, "run.ngram"));
        Assert.Equal(File.ReadAllBytes(BuildTable(_encdec, "direct.ngram")), fromRun);
    }

    [Theory]
    [InlineData("encdec")]
    [InlineData("decoder")]
    public void OneDraftIsGreedyAndKDraftsArePrintedAsAlternatives(string family)
    {
        string model = family == "encdec" ? _encdec : _decoder;
        var plain = CliRunner.Run(Generate(model, "--json"));
        Assert.True(plain.ExitCode == 0, plain.Stderr);
        var one = CliRunner.Run(Generate(model, "--json", "--superposed", "1", "--stats"));
        Assert.True(one.ExitCode == 0, one.Stderr);
        var p = JsonDocument.Parse(plain.Stdout).RootElement;
        var o = JsonDocument.Parse(one.Stdout).RootElement;
        Assert.Equal(p.GetProperty("tokens").ToString(), o.GetProperty("tokens").ToString());
        Assert.Equal(o.GetProperty("tokens").GetArrayLength(), o.GetProperty("superposed_passes").GetInt32());
        Assert.Contains("superposed decoding with 1 drafts", one.Stderr);

        string table = BuildTable(model, $"{family}.ngram");
        var three = CliRunner.Run(Generate(model, "--json", "--superposed", "3", "--ngram", table, "--ngram-weights", "0.2,0.3,0.5"));
        Assert.True(three.ExitCode == 0, three.Stderr);
        var seqs = JsonDocument.Parse(three.Stdout).RootElement.GetProperty("sequences");
        Assert.Equal(3, seqs.GetArrayLength());
        Assert.Equal(3, seqs.EnumerateArray().Select(s => s.GetProperty("tokens").ToString()).Distinct().Count());

        var text = CliRunner.Run(Generate(model, "--superposed", "3"));
        Assert.True(text.ExitCode == 0, text.Stderr);
        var lines = text.Stdout.TrimEnd('\n').Split('\n');
        Assert.Equal(3, lines.Length);
        for (int i = 0; i < 3; i++) Assert.StartsWith($"[{i}] ", lines[i]);
    }

    [Fact]
    public void BadDraftsOrNgramFilesFailWithOneLineNamingThem()
    {
        var zero = CliRunner.Run(Generate(_encdec, "--superposed", "0"));
        Assert.Equal(1, zero.ExitCode);
        Assert.Equal("encore: superposed drafts (k) must be in [1, 64], got 0", zero.Stderr.Trim());

        string table = BuildTable(_encdec, "t.ngram");
        var bytes = File.ReadAllBytes(table);
        string truncated = Path.Combine(_dir, "truncated.ngram");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length - 20)]);
        var cut = CliRunner.Run(Generate(_encdec, "--superposed", "2", "--ngram", truncated));
        Assert.Equal(1, cut.ExitCode);
        Assert.Single(cut.Stderr.Trim().Split('\n'));
        Assert.Contains(truncated, cut.Stderr);
        Assert.Contains("corrupt or truncated", cut.Stderr);

        // Built with another tokenizer: refused naming the file and the field, before anything is generated.
        string foreign = BuildTable(_other, "other.ngram");
        var wrong = CliRunner.Run(Generate(_encdec, "--superposed", "2", "--ngram", foreign));
        Assert.Equal(1, wrong.ExitCode);
        Assert.Single(wrong.Stderr.Trim().Split('\n'));
        Assert.Contains(foreign, wrong.Stderr);
        // (Trained on other text, that tokenizer may differ in size too: either field is named.)
        Assert.Matches("vocab_size|tokenizer_fingerprint", wrong.Stderr);

        var stream = CliRunner.Run(Generate(_encdec, "--superposed", "2", "--stream"));
        Assert.Equal(1, stream.ExitCode);
        Assert.Contains("does not stream", stream.Stderr);
        var warn = CliRunner.Run(Generate(_encdec, "--ngram-alpha", "0.3", "--json"));
        Assert.Equal(0, warn.ExitCode);
        Assert.Contains("--ngram-alpha has no effect without --superposed", warn.Stderr);
    }
}
