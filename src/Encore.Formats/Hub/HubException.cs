namespace Encore.Formats.Hub;

/// <summary>A hub model could not be found or fetched. The message names the repository, the revision or file, and the cause.</summary>
public class HubException(string message, Exception? inner = null) : IOException(message, inner)
{
    /// <summary>The HTTP status the hub answered with, or null when the failure was not an HTTP answer.</summary>
    public int? StatusCode { get; init; }

    /// <summary>True when the hub could not be reached at all (no connection, no answer in time): the cache may still serve.</summary>
    public bool Unreachable { get; init; }
}
