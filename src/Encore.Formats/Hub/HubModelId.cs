// A model on the Hugging Face hub as the command line names it: "org/name" or "org/name@revision".
// The rules are huggingface_hub's (utils/_validators.py validate_repo_id): a namespace and a name of
// ASCII letters, digits, '-', '_' and '.', each starting and ending with a letter or digit, the name at
// most 96 characters, no "--" (the cache's separator) and no "..". A revision is a branch, a tag or a
// commit hash (40 lowercase hex digits, file_download.py REGEX_COMMIT_HASH); it becomes a path under
// refs/, so it is held to git's ref characters and never climbs out of that folder.
namespace Encore.Formats.Hub;

/// <summary>A hub repository and the revision wanted of it (default <c>main</c>).</summary>
public sealed record HubModelId
{
    /// <summary>The revision read when none is given.</summary>
    public const string DefaultRevision = "main";

    /// <summary>Longest repository name, as the hub allows.</summary>
    public const int MaxNameLength = 96;

    /// <summary>Longest revision accepted.</summary>
    public const int MaxRevisionLength = 256;

    /// <summary>The repository, "org/name".</summary>
    public string RepoId { get; }

    /// <summary>A branch, tag or commit hash.</summary>
    public string Revision { get; }

    HubModelId(string repoId, string revision)
    {
        RepoId = repoId;
        Revision = revision;
    }

    /// <summary>True when <see cref="Revision"/> is a full commit hash, which names one snapshot for good.</summary>
    public bool RevisionIsCommit => IsCommitHash(Revision);

    /// <summary>The repository's folder in the cache: <c>models--org--name</c> (file_download.py repo_folder_name).</summary>
    public string CacheFolderName => "models--" + RepoId.Replace("/", "--", StringComparison.Ordinal);

    /// <summary>"org/name@revision".</summary>
    public override string ToString() => $"{RepoId}@{Revision}";

    /// <summary>Whether <paramref name="s"/> is a full commit hash: 40 lowercase hex digits.</summary>
    public static bool IsCommitHash(string? s) => s is { Length: 40 } && s.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f');

    /// <summary>
    /// Whether <paramref name="spec"/> is meant as a hub id rather than a local path: a relative name
    /// holding a '/', not starting with '.' or '~' (so "./x/y", "../x" and "~/x" stay paths).
    /// Whether it is a valid id is <see cref="TryParse"/>'s question.
    /// </summary>
    public static bool LooksLikeHubId(string spec) =>
        !string.IsNullOrEmpty(spec) && spec.Contains('/') && !Path.IsPathRooted(spec) && spec[0] is not ('.' or '~') && !spec.Contains('\\');

    /// <summary>Parses "org/name[@revision]"; throws an <see cref="ArgumentException"/> naming <paramref name="spec"/> and the rule it breaks.</summary>
    public static HubModelId Parse(string spec) =>
        TryParse(spec, out var id, out var error) ? id : throw new ArgumentException(error);

    /// <summary>Parses "org/name[@revision]"; on failure <paramref name="error"/> names <paramref name="spec"/> and the rule it breaks.</summary>
    public static bool TryParse(string spec, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out HubModelId? id,
        [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        ArgumentNullException.ThrowIfNull(spec);
        id = null;
        string Bad(string why) => $"'{spec}' is not a Hugging Face model id (org/name or org/name@revision): {why}";
        if (spec.Length == 0) { error = Bad("it is empty"); return false; }
        if (Path.IsPathRooted(spec) || spec[0] == '/' || spec[0] == '\\') { error = Bad("it is an absolute path"); return false; }
        int at = spec.IndexOf('@');
        string repo = at < 0 ? spec : spec[..at], revision = at < 0 ? DefaultRevision : spec[(at + 1)..];
        var parts = repo.Split('/');
        if (parts.Length != 2) { error = Bad(parts.Length == 1 ? "it has no namespace (org/)" : "it has more than one '/'"); return false; }
        foreach (var part in parts)
            if (NameError(part) is { } why) { error = Bad(why); return false; }
        if (RevisionError(revision) is { } revisionWhy) { error = Bad(revisionWhy); return false; }
        id = new HubModelId(repo, revision);
        error = null;
        return true;
    }

    /// <summary>The id of <paramref name="repoId"/> ("org/name") at <paramref name="revision"/>, validated as <see cref="Parse"/> does.</summary>
    public static HubModelId Create(string repoId, string revision = DefaultRevision) => Parse($"{repoId}@{revision}");

    static string? NameError(string part)
    {
        if (part.Length == 0) return "an empty namespace or name";
        if (part.Length > MaxNameLength) return $"'{Shorten(part)}' is longer than {MaxNameLength} characters";
        if (part.Contains("..", StringComparison.Ordinal)) return $"'{part}' holds '..'";
        if (part.Contains("--", StringComparison.Ordinal)) return $"'{part}' holds '--'";
        foreach (char c in part)
            if (!IsNameChar(c)) return $"'{Shorten(part)}' holds '{Printable(c)}' (allowed: ASCII letters, digits, '-', '_', '.')";
        if (!char.IsAsciiLetterOrDigit(part[0]) || !char.IsAsciiLetterOrDigit(part[^1])) return $"'{part}' must start and end with a letter or digit";
        if (part.EndsWith(".git", StringComparison.Ordinal)) return $"'{part}' ends with .git";
        return null;
    }

    static string? RevisionError(string revision)
    {
        if (revision.Length == 0) return "an empty revision after '@'";
        if (revision.Length > MaxRevisionLength) return $"the revision is longer than {MaxRevisionLength} characters";
        foreach (char c in revision)
            if (!(IsNameChar(c) || c == '/')) return $"the revision '{Shorten(revision)}' holds '{Printable(c)}' (allowed: ASCII letters, digits, '-', '_', '.', '/')";
        foreach (var segment in revision.Split('/'))
            if (segment.Length == 0 || segment == "." || segment == ".." || segment.EndsWith(".lock", StringComparison.Ordinal))
                return $"the revision '{revision}' is not a valid git ref (empty, '.' or '..' segments, or a segment ending in .lock)";
        if (revision.Contains("..", StringComparison.Ordinal)) return $"the revision '{revision}' holds '..'";
        return null;
    }

    static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.';

    static string Printable(char c) => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString();

    static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "…";
}
