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
    /// Puts the checkpoint folder <paramref name="built"/> (complete, under a temporary name in the run folder) in place
    /// as <paramref name="final"/>, replacing an older one of that name, then removes the oldest <c>checkpoint-N</c>
    /// folders holding <paramref name="requiredFile"/> beyond the newest <paramref name="keep"/>, each by <see cref="Delete"/>.
    /// </summary>
    public static void Publish(string built, string final, int keep, string requiredFile)
    {
        if (Directory.Exists(final)) Delete(final);
        Directory.Move(built, final);
        var runDir = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(final)))!;
        foreach (var old in List(runDir, requiredFile).SkipLast(keep)) Delete(old);
    }

    /// <summary>
    /// Removes the checkpoint folder <paramref name="dir"/> so that a kill at any moment leaves it whole or gone: it is
    /// first renamed to a temporary sibling (<c>.NAME.PID.deleting.tmp</c>, which a trainer starting in the run folder
    /// clears as a dead run's leftover), then deleted. Deleting it in place could leave a <c>checkpoint-N</c> folder
    /// without its state file, which no listing counts and so nothing would ever prune.
    /// </summary>
    public static void Delete(string dir)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));
        var doomed = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.deleting.tmp");
        if (Directory.Exists(doomed)) Directory.Delete(doomed, recursive: true);
        Directory.Move(full, doomed);
        Directory.Delete(doomed, recursive: true);
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
