using System.IO.Compression;
using System.Text;
using Encore.Formats;
using Encore.Formats.Checkpoints;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Training.Tests;

/// <summary>The bundled Debian descriptions, gzip-compressed JSONL, and how runs use folders.</summary>
public class DebianDataTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-debian-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static List<TextPair> Split(string name) => DatasetReader.ReadPairs(TestData.Path($"debian/{name}.jsonl.gz"));

    static List<string> Packages(string name)
    {
        using var gz = new GZipStream(File.OpenRead(TestData.Path($"debian/{name}.jsonl.gz")), CompressionMode.Decompress);
        using var reader = new StreamReader(gz);
        var result = new List<string>();
        while (reader.ReadLine() is { } line)
            result.Add(System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("package").GetString()!);
        return result;
    }

    [Fact]
    public void TheSplitsHaveTheDocumentedSizesAndShareNoPackageNorText()
    {
        var train = Split("train");
        var valid = Split("validation");
        var test = Split("test");
        Assert.Equal(55_781, train.Count);
        Assert.Equal(2_626, valid.Count);
        Assert.Equal(2_604, test.Count);
        var trainPackages = Packages("train").ToHashSet();
        Assert.DoesNotContain(Packages("validation"), trainPackages.Contains);
        Assert.DoesNotContain(Packages("test"), trainPackages.Contains);
        // Near-duplicates never straddle splits: no held-out description repeats a training one.
        var trainSources = train.Select(p => p.Source).ToHashSet();
        Assert.DoesNotContain(valid, p => trainSources.Contains(p.Source));
        Assert.DoesNotContain(test, p => trainSources.Contains(p.Source));
        Assert.All(valid, p => Assert.False(string.IsNullOrWhiteSpace(p.Target)));
        // The splits are shuffled, not alphabetical, so the first N lines are a fair sample:
        // the first hundred validation packages are out of order and span many sections.
        var first = Packages("validation").Take(100).ToList();
        Assert.NotEqual(first.OrderBy(p => p, StringComparer.Ordinal), first);
        Assert.True(first.Count(p => p.StartsWith("lib", StringComparison.Ordinal)) >= 10);
    }

    [Fact]
    public void SourceAndTargetCanComeFromOtherFields()
    {
        var path = Path.Combine(_dir, "fields.jsonl");
        File.WriteAllText(path, "{\"source\":\"a puzzle game\",\"target\":\"t\",\"package\":\"2048\",\"section\":\"games\"}\n{\"source\":\"x\",\"target\":\"y\",\"section\":\"z\"}\n");
        var options = new DatasetReadOptions { TargetField = "section", SourceFields = ["package", "source"] };
        var e = Assert.Throws<DatasetFormatException>(() => DatasetReader.ReadPairs(path, options));
        Assert.Contains("\"package\"", e.Message);
        Assert.Contains("line 2", e.Message);
        File.WriteAllLines(path, File.ReadAllLines(path).Take(1));
        Assert.Equal(new TextPair("2048: a puzzle game", "games"), Assert.Single(DatasetReader.ReadPairs(path, options)));
        Assert.Equal(new TextPair("a puzzle game", "t"), Assert.Single(DatasetReader.ReadPairs(path)));
        Assert.Throws<ArgumentException>(() => DatasetReader.ReadPairs(path, new DatasetReadOptions { SourceFields = [] }));
        Assert.Throws<ArgumentException>(() => DatasetReader.ReadPairs(path, new DatasetReadOptions { SourceFields = [""] }));
        Assert.Throws<ArgumentException>(() => DatasetReader.ReadPairs(path, new DatasetReadOptions { TargetField = "" }));
    }

    [Fact]
    public void AGzipFileReadsLikeItsPlainTextAndACorruptOneNamesTheFile()
    {
        var plain = Path.Combine(_dir, "pairs.jsonl");
        File.WriteAllText(plain, "{\"source\":\"a b\",\"target\":\"c\"}\n{\"source\":\"d\",\"target\":\"e f\"}\n");
        var gz = plain + ".gz";
        using (var output = new GZipStream(File.Create(gz), CompressionLevel.Optimal))
            output.Write(File.ReadAllBytes(plain));
        Assert.Equal(DatasetReader.ReadPairs(plain), DatasetReader.ReadPairs(gz));
        Assert.True(DatasetReader.IsPairFile(gz));
        Assert.False(DatasetReader.IsPairFile(Path.Combine(_dir, "corpus.txt.gz")));

        var bad = Path.Combine(_dir, "bad.jsonl.gz");
        File.WriteAllBytes(bad, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0x00]);
        var e = Assert.Throws<DatasetFormatException>(() => DatasetReader.ReadPairs(bad));
        Assert.Contains(bad, e.Message);

        // A bomb: more decompressed bytes than the file-size limit allows is refused, not buffered.
        var bomb = Path.Combine(_dir, "bomb.jsonl.gz");
        using (var output = new GZipStream(File.Create(bomb), CompressionLevel.Optimal))
            for (int i = 0; i < 64; i++) output.Write(Encoding.UTF8.GetBytes(new string('\n', 1 << 16)));
        var b = Assert.Throws<DatasetFormatException>(() => DatasetReader.ReadPairs(bomb, new DatasetReadOptions { MaxFileBytes = 1 << 20 }));
        Assert.Contains("bytes of text", b.Message);
    }

    [Fact]
    public void ARunFolderResolvesToItsNewestCompleteCheckpoint()
    {
        var run = Path.Combine(_dir, "run");
        foreach (var (name, complete) in new[] { ("checkpoint-5", true), ("checkpoint-40", true), ("checkpoint-100", false), ("checkpoint-x", true) })
        {
            Directory.CreateDirectory(Path.Combine(run, name));
            if (complete) File.WriteAllText(Path.Combine(run, name, "config.json"), "{}");
        }
        Assert.Equal(Path.Combine(run, "checkpoint-40"), CheckpointDirectory.Resolve(run));
        // Where a checkpoint or a tokenizer folder is expected, a run folder stands for its newest
        // checkpoint and any other path is left for the caller's own checks.
        Assert.Equal(Path.Combine(run, "checkpoint-40"), CheckpointDirectory.ResolveRun(run));
        Assert.Equal(Path.Combine(run, "checkpoint-5"), CheckpointDirectory.ResolveRun(Path.Combine(run, "checkpoint-5")));
        Assert.Equal(Path.Combine(run, "checkpoint-x"), CheckpointDirectory.ResolveRun(Path.Combine(run, "checkpoint-x")));
        Assert.Equal(Path.Combine(_dir, "nowhere"), CheckpointDirectory.ResolveRun(Path.Combine(_dir, "nowhere")));
        Assert.Equal(Path.Combine(run, "checkpoint-5"), CheckpointDirectory.Resolve(Path.Combine(run, "checkpoint-5")));
        Assert.Throws<CheckpointFormatException>(() => CheckpointDirectory.Resolve(Path.Combine(run, "checkpoint-100")));
        Assert.Throws<DirectoryNotFoundException>(() => CheckpointDirectory.Resolve(Path.Combine(_dir, "nowhere")));
    }

    static TrainingRunOptions Options(string output, string data, bool resume = false, bool overwrite = false) => new()
    {
        Model = "tiny-encdec", Data = data, Output = output, TokenizerVocab = 400, EvalExamples = 0, Resume = resume, Overwrite = overwrite,
        Training = new Trainer.TrainingOptions { MaxSteps = 1, WarmupSteps = 0, EvalEvery = 0, CheckpointEvery = 0 },
    };

    [Fact]
    public void ARunRefusesAFolderThatHoldsAnotherRunUnlessToldToResumeOrOverwrite()
    {
        var data = Path.Combine(_dir, "d.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 30).Select(i => $"{{\"source\":\"word {i} and more\",\"target\":\"w {i}\"}}"));
        var output = Path.Combine(_dir, "out");
        using (var run = TrainingRun.Prepare(Options(output, data))) run.Trainer.Run();
        File.WriteAllText(Path.Combine(output, "notes.txt"), "mine");
        var metrics = File.ReadAllText(Path.Combine(output, "metrics.jsonl"));

        var e = Assert.Throws<ArgumentException>(() => TrainingRun.Prepare(Options(output, data)));
        Assert.Contains("--resume", e.Message);
        Assert.Contains("--overwrite", e.Message);
        // A bad option with --overwrite loses nothing: the run is deleted only once everything has loaded.
        Assert.ThrowsAny<IOException>(() => TrainingRun.Prepare(Options(output, Path.Combine(_dir, "missing.jsonl"), overwrite: true)));
        Assert.Equal(metrics, File.ReadAllText(Path.Combine(output, "metrics.jsonl")));
        Assert.Throws<ArgumentException>(() => TrainingRun.Prepare(Options(output, data, resume: true, overwrite: true)));
        // A fork into the folder it is forked from would delete its own checkpoint: refused, nothing lost.
        var fork = Assert.Throws<ArgumentException>(() => TrainingRun.Prepare(Options(output, data, overwrite: true) with { ResumeFrom = Path.Combine(output, "checkpoint-1") }));
        Assert.Contains("which this run writes", fork.Message);
        Assert.Equal(metrics, File.ReadAllText(Path.Combine(output, "metrics.jsonl")));

        using (var run = TrainingRun.Prepare(Options(output, data, overwrite: true)))
        {
            Assert.False(File.Exists(Path.Combine(output, "metrics.jsonl")));
            Assert.Empty(Directory.GetDirectories(output, "checkpoint-*"));
            Assert.True(run.EstimateRemaining() > TimeSpan.Zero);
            run.Trainer.Run();
        }
        Assert.Equal("mine", File.ReadAllText(Path.Combine(output, "notes.txt")));
        Assert.Single(File.ReadAllLines(Path.Combine(output, "metrics.jsonl")), l => l.Contains("\"loss\""));
    }
}
