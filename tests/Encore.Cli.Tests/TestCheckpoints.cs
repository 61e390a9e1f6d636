using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>Untrained checkpoints of a preset with a given tokenizer, saved as the CLI reads them.</summary>
static class TestCheckpoints
{
    /// <summary>A tiny source/target JSONL training file (24 rows) in <paramref name="dir"/>; returns its path.</summary>
    public static string TinyTrainingData(string dir)
    {
        string path = Path.Combine(dir, "data.jsonl");
        File.WriteAllLines(path, Enumerable.Range(0, 24).Select(i => System.Text.Json.JsonSerializer.Serialize(new { source = $"package number {i} of the archive", target = $"tool {i % 5}" })));
        return path;
    }

    /// <summary>Saves <paramref name="preset"/> (its vocabulary following <paramref name="tokenizer"/>) and the tokenizer into <paramref name="dir"/>; returns it.</summary>
    public static string Save(string dir, string preset, TextTokenizer tokenizer)
    {
        Directory.CreateDirectory(dir);
        using var model = TrainingRun.LoadModel(preset, tokenizer);
        Checkpoint.Save(model, dir);
        TrainingRun.SaveTokenizer(tokenizer, dir);
        return dir;
    }
}
