namespace Encore.Formats.Hub;

/// <summary>Turns what a user names as a model into a local path: the path itself, or a hub model's cached snapshot.</summary>
public static class HubModels
{
    /// <summary>
    /// <paramref name="spec"/> unchanged when it exists locally (a file or folder always wins) or does not look
    /// like a hub id (<see cref="HubModelId.LooksLikeHubId"/>: a preset name, an absolute or ./ path); otherwise
    /// the snapshot folder of the hub model "org/name[@revision]" it names, downloaded into
    /// <paramref name="options"/>' cache when missing. Errors say that no local path of that name exists and why
    /// the hub model could not be had.
    /// </summary>
    public static string ResolvePath(string spec, HubOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(options);
        if (File.Exists(spec) || Directory.Exists(spec) || !HubModelId.LooksLikeHubId(spec)) return spec;
        if (!HubModelId.TryParse(spec, out var id, out var error))
            throw new DirectoryNotFoundException($"{spec}: no such directory, and {error}");
        using var client = new HubClient(options);
        try
        {
            return client.Resolve(id, ct);
        }
        catch (HubException e)
        {
            throw new HubException($"{spec}: no such directory; as a Hugging Face model: {e.Message}", e) { StatusCode = e.StatusCode, Unreachable = e.Unreachable };
        }
    }
}
