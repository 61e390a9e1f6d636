namespace Encore.Formats.Checkpoints;

/// <summary>Finds the checkpoint a user means when they name a directory: the directory itself, or a training run's newest checkpoint.</summary>
public static class CheckpointDirectory
{
    /// <summary>
    /// <paramref name="dir"/> when it holds a <c>config.json</c>; otherwise, when it is a run folder,
    /// its newest complete <c>checkpoint-N</c> (highest N with a config.json). Throws naming the
    /// directory when it is neither.
    /// </summary>
    public static string Resolve(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (File.Exists(Path.Combine(dir, "config.json"))) return dir;
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: no such directory");
        var newest = Directory.GetDirectories(dir, "checkpoint-*")
            .Select(d => (Dir: d, Step: long.TryParse(Path.GetFileName(d)["checkpoint-".Length..], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out long s) ? s : -1))
            .Where(c => c.Step >= 0 && File.Exists(Path.Combine(c.Dir, "config.json")))
            .OrderByDescending(c => c.Step)
            .FirstOrDefault();
        return newest.Dir ?? throw new CheckpointFormatException($"{dir}: no config.json, and no checkpoint-N folder with one (is it a checkpoint or a training run?)");
    }
}
