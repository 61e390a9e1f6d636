using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary><c>encore distill</c> end to end, two steps, on a tiny untrained teacher made here.</summary>
public sealed class DistillTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-distill-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void WithoutTokenizerTheStudentTakesTheTeachers()
    {
        var pairs = Enumerable.Range(0, 24).Select(i => new TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        string data = Path.Combine(_dir, "data.jsonl"), teacher = Path.Combine(_dir, "teacher"), output = Path.Combine(_dir, "student");
        File.WriteAllLines(data, pairs.Select(p => JsonSerializer.Serialize(new { source = p.Source, target = p.Target })));
        // A vocabulary other than the one `distill` would train on the data by default, so only the teacher's can match.
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        Directory.CreateDirectory(teacher);
        using (var model = TrainingRun.LoadModel("tiny-encdec", tokenizer))
            Checkpoint.Save(model, teacher);
        TrainingRun.SaveTokenizer(tokenizer, teacher);

        var r = CliRunner.Run("distill", "--teacher", teacher, "--student", "tiny-encdec", "--data", data, "--steps", "2", "--warmup", "1",
            "--eval-every", "2", "--save-every", "2", "--eval-examples", "0", "--out", output, "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var saved = Directory.GetFiles(output, "tokenizer.json", SearchOption.AllDirectories);
        Assert.NotEmpty(saved);
        Assert.Equal(File.ReadAllText(Path.Combine(teacher, "tokenizer.json")), File.ReadAllText(saved[0]));
    }
}
