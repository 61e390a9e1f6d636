// The cache layout huggingface_hub writes (file_download.py, _snapshot_download.py), which Encore reads
// and writes the same way so the two share one cache:
//   <cache>/models--org--name/
//     refs/<revision>                 the commit hash a branch or tag pointed at (no newline)
//     blobs/<etag>                    the file's bytes, named by its ETag: the sha256 of an LFS file,
//                                     the git blob hash of any other
//     blobs/<etag>.incomplete         a download in progress, resumed with an HTTP Range request
//     snapshots/<commit>/<filename>   a relative symlink ../../blobs/<etag> (one more ../ per
//                                     subfolder), or a plain copy where symlinks fail
// A snapshot entry appears only once its blob is complete and verified, so a failed download never
// leaves a file under snapshots/.
namespace Encore.Formats.Hub;

/// <summary>The Hugging Face hub cache under one folder (HF_HUB_CACHE).</summary>
public sealed class HubCache(string root)
{
    /// <summary>Longest refs/ file read (a commit hash is 40 bytes).</summary>
    const long MaxRefBytes = 4096;

    /// <summary>The cache folder.</summary>
    public string Root { get; } = root;

    /// <summary>The folder of <paramref name="id"/>'s repository: <c>models--org--name</c>.</summary>
    public string RepoFolder(HubModelId id) => Path.Combine(Root, id.CacheFolderName);

    /// <summary>The ref file of <paramref name="id"/>'s revision.</summary>
    public string RefPath(HubModelId id) => Path.Combine(RepoFolder(id), "refs", id.Revision.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>The snapshot folder of <paramref name="commit"/>.</summary>
    public string SnapshotFolder(HubModelId id, string commit) => Path.Combine(RepoFolder(id), "snapshots", commit);

    /// <summary>The blob named <paramref name="etag"/>.</summary>
    public string BlobPath(HubModelId id, string etag) => Path.Combine(RepoFolder(id), "blobs", etag);

    /// <summary>
    /// The commit <paramref name="id"/>'s revision names in the cache: the revision itself when it is a
    /// commit hash, else what refs/&lt;revision&gt; holds; null when no ref was written.
    /// Throws naming the file when a ref holds anything but a commit hash.
    /// </summary>
    public string? ReadCommit(HubModelId id)
    {
        if (id.RevisionIsCommit) return id.Revision;
        var path = RefPath(id);
        var info = new FileInfo(path);
        if (!info.Exists) return null;
        if (info.Length > MaxRefBytes) throw new CheckpointFormatException($"{path}: {info.Length} bytes is not a commit hash");
        var commit = File.ReadAllText(path).Trim();
        return HubModelId.IsCommitHash(commit) ? commit : throw new CheckpointFormatException($"{path}: '{(commit.Length > 60 ? commit[..60] + "…" : commit)}' is not a commit hash (40 hex digits)");
    }

    /// <summary>The cached snapshot folder of <paramref name="id"/>, or null when the cache has none for its revision.</summary>
    public string? FindSnapshot(HubModelId id) =>
        ReadCommit(id) is { } commit && Directory.Exists(SnapshotFolder(id, commit)) ? SnapshotFolder(id, commit) : null;

    /// <summary>Records that <paramref name="id"/>'s revision points at <paramref name="commit"/> (atomically; nothing for a commit revision).</summary>
    public void WriteRef(HubModelId id, string commit)
    {
        if (id.RevisionIsCommit || !HubModelId.IsCommitHash(commit)) return;
        var path = RefPath(id);
        if (new FileInfo(path) is { Exists: true, Length: 40 } && File.ReadAllText(path) == commit) return;
        AtomicFile.WriteAllText(path, commit);
    }

    /// <summary>
    /// Makes <c>snapshots/&lt;commit&gt;/&lt;filename&gt;</c> point at the blob <paramref name="etag"/>: a relative
    /// symlink, or, where the file system refuses one, a copy (written to a temporary name and renamed).
    /// Returns the snapshot entry's path.
    /// </summary>
    public string Link(HubModelId id, string commit, string filename, string etag)
    {
        var blob = BlobPath(id, etag);
        var entry = Path.Combine(SnapshotFolder(id, commit), filename.Replace('/', Path.DirectorySeparatorChar));
        var folder = Path.GetDirectoryName(entry)!;
        Directory.CreateDirectory(folder);
        var relative = Path.GetRelativePath(folder, blob);
        var temp = Path.Combine(folder, $".{Path.GetFileName(entry)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            try
            {
                File.CreateSymbolicLink(temp, relative);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
            {
                File.Copy(blob, temp);
            }
            File.Move(temp, entry, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
        return entry;
    }
}
