using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>Untrained checkpoints of a preset with a given tokenizer, saved as the CLI reads them.</summary>
static class TestCheckpoints
{
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
