namespace Encore.Formats.Checkpoints;

/// <summary>Finds the checkpoint a user means when they name a directory: the directory itself, or a training run's newest checkpoint.</summary>
public static class CheckpointDirectory
{
    /// <summary>
    /// <paramref name="dir"/> when it holds a <c>config.json</c>; otherwise, when it is a run folder,
    /// its newest complete <c>checkpoint-N</c> (highest N with a config.json). Throws naming the
    /// directory when it is neither.
    /// </summary>
    public static string Resolve(string dir) => ResolveOrSelf(dir) ?? throw new CheckpointFormatException($"{dir}: no config.json, and no checkpoint-N folder with one (is it a checkpoint or a training run?)");

    /// <summary>
    /// As <see cref="Resolve"/> for a training run folder (a directory with <c>checkpoint-N</c>
    /// folders and no config.json of its own); any other path comes back unchanged, for the caller's
    /// own checks (a tokenizer folder, a missing path).
    /// </summary>
    public static string ResolveRun(string dir) =>
        Directory.Exists(dir) && !File.Exists(Path.Combine(dir, "config.json")) && ResolveOrSelf(dir) is { } newest ? newest : dir;

    static string? ResolveOrSelf(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (File.Exists(Path.Combine(dir, "config.json"))) return dir;
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: no such directory");
        return List(dir).LastOrDefault();
    }

    /// <summary>
    /// The <c>checkpoint-N</c> folders of a run folder that hold <paramref name="requiredFile"/>, oldest (lowest N) first;
    /// none when <paramref name="runDir"/> does not exist.
    /// </summary>
    public static IReadOnlyList<string> List(string runDir, string requiredFile = "config.json") => Directory.Exists(runDir)
        ? Directory.GetDirectories(runDir, "checkpoint-*")
            .Select(d => (Dir: d, Step: long.TryParse(Path.GetFileName(d)["checkpoint-".Length..], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out long s) ? s : -1))
            .Where(c => c.Step >= 0 && File.Exists(Path.Combine(c.Dir, requiredFile)))
            .OrderBy(c => c.Step)
            .Select(c => c.Dir)
            .ToList()
        : [];
}
