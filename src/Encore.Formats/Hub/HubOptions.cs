// Where the hub is and where its files are kept, read from the environment variables huggingface_hub
// reads (constants.py): HF_ENDPOINT, HF_HOME (default $XDG_CACHE_HOME/huggingface, else
// ~/.cache/huggingface), HF_HUB_CACHE (default $HF_HOME/hub; the older HUGGINGFACE_HUB_CACHE too),
// HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE: 1, ON, YES, TRUE), HF_TOKEN (or the token file at
// HF_TOKEN_PATH, default $HF_HOME/token, which `hf auth login` writes) and HF_HUB_DOWNLOAD_TIMEOUT.
namespace Encore.Formats.Hub;

/// <summary>One download's progress: bytes of <see cref="File"/> on disk so far, of <see cref="TotalBytes"/> (null when the server did not say).</summary>
public readonly record struct HubDownloadProgress(string RepoId, string File, long BytesDone, long? TotalBytes, bool Done);

/// <summary>How hub models are found and fetched. The defaults are huggingface_hub's; <see cref="FromEnvironment"/> reads its variables.</summary>
public sealed record HubOptions
{
    /// <summary>The hub's default address.</summary>
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>The hub's base address (HF_ENDPOINT), without a trailing '/'. Default https://huggingface.co.</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>The cache folder holding <c>models--org--name</c> folders (HF_HUB_CACHE).</summary>
    public required string CacheDirectory { get; init; }

    /// <summary>Sent as <c>Authorization: Bearer …</c> to the hub (HF_TOKEN); null sends none.</summary>
    public string? Token { get; init; }

    /// <summary>Never touch the network; only the cache is read (HF_HUB_OFFLINE). Default false.</summary>
    public bool Offline { get; init; }

    /// <summary>
    /// Longest wait for a response's headers and, while a body streams, between two reads
    /// (HF_HUB_DOWNLOAD_TIMEOUT, in seconds). Default 10 s, as huggingface_hub's.
    /// </summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Attempts per file when a body breaks off part way: each resumes where the last stopped. Default 3.</summary>
    public int Attempts { get; init; } = 3;

    /// <summary>Told of every download's bytes as they arrive; null tells nobody.</summary>
    public IProgress<HubDownloadProgress>? Progress { get; init; }

    /// <summary>Told when the hub could not be reached and a cached snapshot is used instead; null tells nobody.</summary>
    public Action<string>? Warning { get; init; }

    /// <summary>Largest token file read (bytes).</summary>
    const long MaxTokenFileBytes = 64 << 10;

    static readonly string[] TrueValues = ["1", "ON", "YES", "TRUE"];

    /// <summary>
    /// The options the environment variables give (<paramref name="environment"/> reads one; default
    /// <see cref="Environment.GetEnvironmentVariable(string)"/>). Throws naming the variable when one is malformed.
    /// </summary>
    public static HubOptions FromEnvironment(Func<string, string?>? environment = null)
    {
        var env = environment ?? Environment.GetEnvironmentVariable;
        string? Get(string name) => env(name) is { Length: > 0 } v ? v : null;
        string home = Expand(Get("HF_HOME") ?? Path.Combine(Get("XDG_CACHE_HOME") is { } xdg ? Expand(xdg) : DefaultCacheHome(), "huggingface"));
        string cache = Expand(Get("HF_HUB_CACHE") ?? Get("HUGGINGFACE_HUB_CACHE") ?? Path.Combine(home, "hub"));
        string endpoint = (Get("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/');
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new ArgumentException($"HF_ENDPOINT '{endpoint}' is not an http:// or https:// address");
        bool offline = (Get("HF_HUB_OFFLINE") ?? Get("TRANSFORMERS_OFFLINE")) is { } o && TrueValues.Contains(o.Trim().ToUpperInvariant());
        var timeout = TimeSpan.FromSeconds(10);
        if (Get("HF_HUB_DOWNLOAD_TIMEOUT") is { } t)
        {
            if (!double.TryParse(t, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double seconds) || !(seconds > 0) || seconds > 86_400)
                throw new ArgumentException($"HF_HUB_DOWNLOAD_TIMEOUT '{t}' is not a number of seconds in (0, 86400]");
            timeout = TimeSpan.FromSeconds(seconds);
        }
        string? token = Get("HF_TOKEN") ?? Get("HUGGING_FACE_HUB_TOKEN");
        token ??= ReadTokenFile(Expand(Get("HF_TOKEN_PATH") ?? Path.Combine(home, "token")));
        return new HubOptions { Endpoint = endpoint, CacheDirectory = cache, Offline = offline, Token = token?.Trim() is { Length: > 0 } k ? k : null, Timeout = timeout };
    }

    static string DefaultCacheHome() => Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");

    // os.path.expanduser for a leading "~".
    static string Expand(string path) =>
        path == "~" || path.StartsWith("~/", StringComparison.Ordinal)
            ? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) + path[1..]
            : path;

    static string? ReadTokenFile(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) return null;
        if (info.Length > MaxTokenFileBytes) throw new ArgumentException($"{path}: {info.Length} bytes is too large for a hub token file");
        try
        {
            return File.ReadAllText(path);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ArgumentException($"{path}: the hub token file cannot be read ({e.Message})", e);
        }
    }
}
