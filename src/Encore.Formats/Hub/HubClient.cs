// Fetches a model's files from the Hugging Face hub into the shared cache, with the requests
// huggingface_hub makes (_snapshot_download.py, file_download.py):
//   GET  {endpoint}/api/models/{repo}/revision/{revision}   -> {"sha": commit, "siblings": [{"rfilename": …}]}
//   HEAD {endpoint}/{repo}/resolve/{commit}/{file}           -> X-Repo-Commit, X-Linked-Etag or ETag (the blob's
//        name: an LFS file's sha256, else its git hash), X-Linked-Size or Content-Length; relative redirects
//        (a renamed repo) are followed, an absolute one (the LFS CDN) is where the bytes are fetched
//   GET  that location, with "Range: bytes=N-" when blobs/<etag>.incomplete already holds N bytes
// An LFS file's bytes are checked against its sha256 before the blob is named; a mismatch deletes the
// partial file. Only the files Encore reads are fetched: config and generation config, tokenizer files,
// safetensors weights (one file, or the shards its index names), PEFT adapter files and the
// sentence-transformers pipeline (modules.json and its modules' settings); never pytorch_model.bin.
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Encore.Formats.Hub;

/// <summary>Resolves hub models to cached snapshot folders, downloading what is missing unless offline.</summary>
public sealed partial class HubClient : IDisposable
{
    /// <summary>Largest model-info or JSON index answer read (bytes).</summary>
    const long MaxJsonBytes = 64L << 20;

    /// <summary>Largest file accepted (bytes): far above any safetensors shard the hub serves.</summary>
    const long MaxFileBytes = 1L << 40;

    /// <summary>Redirects followed for one request.</summary>
    const int MaxRedirects = 10;

    /// <summary>Files of a checkpoint folder that Encore reads, by name.</summary>
    static readonly HashSet<string> WantedNames = new(StringComparer.Ordinal)
    {
        "config.json", "generation_config.json",
        Tokenization.TokenizerLoader.TokenizerJson, Tokenization.TokenizerLoader.TokenizerConfigJson, Tokenization.TokenizerLoader.SpecialTokensMapJson,
        Tokenization.TokenizerLoader.AddedTokensJson, Tokenization.TokenizerLoader.SpieceModel, Tokenization.TokenizerLoader.TokenizerModel,
        Tokenization.TokenizerLoader.VocabJson, Tokenization.TokenizerLoader.MergesTxt, Tokenization.TokenizerLoader.VocabTxt,
        SafetensorsCheckpoint.SingleFile, SafetensorsCheckpoint.IndexFile,
        Checkpoints.PeftAdapter.ConfigFile, Checkpoints.PeftAdapter.WeightsFile,
        Checkpoints.SentenceTransformersConfig.ModulesJson, Checkpoints.SentenceTransformersConfig.SentenceBertConfigJson, "config_sentence_transformers.json",
    };

    readonly HubOptions _options;
    readonly HttpClient _http;
    readonly Uri _endpoint;

    /// <summary>A client for <paramref name="options"/>' endpoint and cache.</summary>
    public HubClient(HubOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!Uri.TryCreate(options.Endpoint.TrimEnd('/'), UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
            throw new ArgumentException($"hub endpoint '{options.Endpoint}' is not an http:// or https:// address");
        if (options.Token is { } token && (token.Length > 4096 || token.Any(c => c is <= ' ' or > '~')))
            throw new ArgumentException("the hub token (HF_TOKEN or the token file) holds spaces or characters outside printable ASCII");
        if (options.Attempts < 1) throw new ArgumentException($"hub download attempts must be at least 1, got {options.Attempts}");
        _options = options;
        _endpoint = endpoint;
        Cache = new HubCache(options.CacheDirectory);
        // Redirects are followed by hand: a HEAD must stop at the CDN's redirect to read the LFS headers,
        // and the token goes to the hub only, never to another host.
        _http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None, ConnectTimeout = options.Timeout })
        {
            Timeout = System.Threading.Timeout.InfiniteTimeSpan,
        };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("encore/1.0");
    }

    /// <summary>The cache this client reads and fills.</summary>
    public HubCache Cache { get; }

    /// <inheritdoc/>
    public void Dispose() => _http.Dispose();

    /// <summary>Synchronous <see cref="ResolveAsync"/>.</summary>
    public string Resolve(HubModelId id, CancellationToken ct = default) => ResolveAsync(id, ct).GetAwaiter().GetResult();

    /// <summary>
    /// The snapshot folder holding <paramref name="id"/>'s files. Online, the hub names the revision's
    /// commit and files and every missing one is downloaded; when the hub cannot be reached (no connection,
    /// no answer in time, a 5xx), a snapshot already cached for the revision is used, with a warning.
    /// Offline, only the cache is read. Every failure is a <see cref="HubException"/> naming the repository
    /// and revision (and file), and, when the cache is what was missing, the folder looked in.
    /// </summary>
    public async Task<string> ResolveAsync(HubModelId id, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (_options.Offline)
            return Cache.FindSnapshot(id) ?? throw new HubException(
                $"{id}: revision '{id.Revision}' is not in the hub cache and HF_HUB_OFFLINE is set (looked in {Cache.RepoFolder(id)} for " +
                (id.RevisionIsCommit ? $"snapshots/{id.Revision}" : $"refs/{id.Revision} and its snapshot") + "); unset HF_HUB_OFFLINE to download it");
        ModelInfo info;
        try
        {
            info = await GetModelInfoAsync(id, ct).ConfigureAwait(false);
        }
        catch (HubException e) when (e.Unreachable || e.StatusCode is >= 500)
        {
            if (Cache.FindSnapshot(id) is { } cached)
            {
                _options.Warning?.Invoke($"{e.Message}; using the cached snapshot {cached}");
                return cached;
            }
            throw new HubException($"{e.Message}; and the hub cache has no snapshot of it (looked in {Cache.RepoFolder(id)})", e)
            {
                StatusCode = e.StatusCode, Unreachable = e.Unreachable,
            };
        }

        // Every blob is fetched (and verified) before any snapshot entry is made: a failed download leaves
        // nothing under snapshots/ and no ref, only blobs to reuse and an .incomplete file to resume.
        var siblings = info.Files;
        var wanted = WantedIn("", siblings);
        var blobs = new SortedDictionary<string, string?>(StringComparer.Ordinal); // file -> blob (null: already in the snapshot)
        async Task<string> Fetch(string file) =>
            (blobs[file] = await EnsureBlobAsync(id, info.Commit, file, ct).ConfigureAwait(false)) ?? SnapshotEntry(id, info.Commit, file);
        // The index names the shards, so it comes first.
        if (wanted.Remove(SafetensorsCheckpoint.IndexFile))
        {
            string index = await Fetch(SafetensorsCheckpoint.IndexFile).ConfigureAwait(false);
            foreach (var shard in ShardsOf(id, SafetensorsCheckpoint.IndexFile, index))
            {
                if (!siblings.Contains(shard)) throw new HubException($"{id}: {SafetensorsCheckpoint.IndexFile} names the shard '{shard}', which the repository does not hold");
                wanted.Add(shard);
            }
        }
        string? modules = null;
        foreach (var file in wanted.Order(StringComparer.Ordinal))
        {
            string path = await Fetch(file).ConfigureAwait(false);
            if (file == Checkpoints.SentenceTransformersConfig.ModulesJson) modules = path;
        }
        if (modules is not null)
            foreach (var folder in ModuleFolders(id, modules))
                foreach (var file in WantedIn(folder, siblings).Order(StringComparer.Ordinal))
                    await Fetch(file).ConfigureAwait(false);
        foreach (var (file, blob) in blobs)
            if (blob is not null) Cache.Link(id, info.Commit, file, Path.GetFileName(blob));
        Directory.CreateDirectory(Cache.SnapshotFolder(id, info.Commit));
        Cache.WriteRef(id, info.Commit);
        return Cache.SnapshotFolder(id, info.Commit);
    }

    string SnapshotEntry(HubModelId id, string commit, string file) =>
        Path.Combine(Cache.SnapshotFolder(id, commit), file.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>
    /// The files of <paramref name="folder"/> ("" for the top) among <paramref name="siblings"/> that Encore
    /// reads: <see cref="WantedNames"/> directly in that folder (the shards of a sharded checkpoint come from its index).
    /// </summary>
    internal static HashSet<string> WantedIn(string folder, IReadOnlySet<string> siblings)
    {
        string prefix = folder.Length == 0 ? "" : folder + "/";
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in WantedNames)
            if (siblings.Contains(prefix + name)) set.Add(prefix + name);
        return set;
    }

    sealed record ModelInfo(string Commit, IReadOnlySet<string> Files);

    async Task<ModelInfo> GetModelInfoAsync(HubModelId id, CancellationToken ct)
    {
        var url = new Uri($"{_options.Endpoint.TrimEnd('/')}/api/models/{id.RepoId}/revision/{Uri.EscapeDataString(id.Revision)}");
        using var response = await SendAsync(id, null, HttpMethod.Get, url, followRedirects: true, configure: null, ct).ConfigureAwait(false);
        ThrowForStatus(id, null, response, url);
        byte[] body = await ReadBoundedAsync(id, response, url, ct).ConfigureAwait(false);
        string Bad(string why) => $"{id}: the hub's answer to GET {url} is not a model description ({why})";
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new HubException(Bad("not a JSON object"));
            if (!root.TryGetProperty("sha", out var sha) || sha.ValueKind != JsonValueKind.String || !HubModelId.IsCommitHash(sha.GetString()))
                throw new HubException(Bad("no 'sha' commit hash of 40 hex digits"));
            if (id.RevisionIsCommit && sha.GetString() != id.Revision)
                throw new HubException(Bad($"commit {sha.GetString()} was asked as {id.Revision}"));
            if (!root.TryGetProperty("siblings", out var siblings) || siblings.ValueKind != JsonValueKind.Array)
                throw new HubException(Bad("no 'siblings' array of files"));
            var files = new HashSet<string>(StringComparer.Ordinal);
            foreach (var s in siblings.EnumerateArray())
                if (s.ValueKind == JsonValueKind.Object && s.TryGetProperty("rfilename", out var name) && name.ValueKind == JsonValueKind.String)
                    files.Add(name.GetString()!);
                else throw new HubException(Bad("a sibling without a string 'rfilename'"));
            return new ModelInfo(sha.GetString()!, files);
        }
        catch (JsonException e)
        {
            throw new HubException(Bad($"invalid JSON: {e.Message}"), e);
        }
    }

    // The shard files a model.safetensors.index.json names in its weight_map.
    static IEnumerable<string> ShardsOf(HubModelId id, string indexFile, string path)
    {
        using var doc = ReadJsonFile(id, indexFile, path);
        string indexPath = indexFile;
        if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            throw new HubException($"{id}: {indexPath} has no 'weight_map' object");
        var shards = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in map.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String || !IsSafeRelativePath(p.Value.GetString()!) || p.Value.GetString()!.Contains('/'))
                throw new HubException($"{id}: {indexPath}: weight '{p.Name}' maps to {p.Value.GetRawText()}, not a file name beside the index");
            shards.Add(p.Value.GetString()!);
        }
        return shards.Order(StringComparer.Ordinal).ToList();
    }

    // The module folders modules.json names (the top folder, "", is already fetched).
    static IEnumerable<string> ModuleFolders(HubModelId id, string path)
    {
        string modulesPath = Checkpoints.SentenceTransformersConfig.ModulesJson;
        using var doc = ReadJsonFile(id, modulesPath, path);
        if (doc.RootElement.ValueKind != JsonValueKind.Array) throw new HubException($"{id}: {modulesPath} is not a JSON array of modules");
        var folders = new List<string>();
        foreach (var m in doc.RootElement.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("path", out var p) || p.ValueKind != JsonValueKind.String) continue;
            string folder = p.GetString()!.TrimEnd('/');
            if (folder.Length == 0 || folders.Contains(folder)) continue;
            if (!IsSafeRelativePath(folder)) throw new HubException($"{id}: {modulesPath}: module path '{folder}' is not a folder inside the repository");
            folders.Add(folder);
        }
        return folders;
    }

    // A downloaded JSON file (its blob at path), named in errors as the repository's file.
    static JsonDocument ReadJsonFile(HubModelId id, string file, string path)
    {
        var info = new FileInfo(path);
        if (info.Length > MaxJsonBytes) throw new HubException($"{id}: {file}: {info.Length} bytes is too large");
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new HubException($"{id}: {file}: invalid JSON: {e.Message}", e);
        }
    }

    /// <summary>A relative path of '/'-separated segments of letters, digits, '-', '_', '.' and spaces, none of them "." or "..".</summary>
    internal static bool IsSafeRelativePath(string path) =>
        path.Length is > 0 and <= 1024 && path.Split('/').All(s => s.Length > 0 && s != "." && s != ".." && s[0] != '.' &&
            s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ' '));

    static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values) ? values.FirstOrDefault() : null;

    bool SameOrigin(Uri url) =>
        url.Scheme == _endpoint.Scheme && string.Equals(url.Host, _endpoint.Host, StringComparison.OrdinalIgnoreCase) && url.Port == _endpoint.Port;

    /// <summary>
    /// Sends one request (and, with <paramref name="followRedirects"/>, the redirects after it), waiting at most
    /// the timeout for the headers. The token goes only to the hub's own host. A connection failure or a timeout is
    /// a <see cref="HubException"/> marked <see cref="HubException.Unreachable"/>.
    /// </summary>
    async Task<HttpResponseMessage> SendAsync(HubModelId id, string? file, HttpMethod method, Uri url, bool followRedirects,
        Action<HttpRequestMessage>? configure, CancellationToken ct)
    {
        string what = file is null ? $"{id}" : $"{id}: {file}";
        for (int hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(method, url);
            configure?.Invoke(request);
            if (_options.Token is { } token && SameOrigin(url)) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            HttpResponseMessage response;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                timeout.CancelAfter(_options.Timeout);
                try
                {
                    response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
                {
                    throw new HubException($"{what}: no answer from {url} within {_options.Timeout.TotalSeconds:0.#} s", e) { Unreachable = true };
                }
                catch (HttpRequestException e)
                {
                    throw new HubException($"{what}: cannot reach {url}: {e.Message}", e) { Unreachable = true };
                }
            }
            if (!followRedirects || (int)response.StatusCode is < 300 or >= 400 || response.Headers.Location is null) return response;
            var next = new Uri(url, response.Headers.Location);
            response.Dispose();
            if (hop >= MaxRedirects) throw new HubException($"{what}: more than {MaxRedirects} redirects from {url}");
            if (next.Scheme is not ("http" or "https")) throw new HubException($"{what}: {url} redirects to {next.Scheme}:, not http(s)");
            url = next;
        }
    }

    static async Task<byte[]> ReadBoundedAsync(HubModelId id, HttpResponseMessage response, Uri url, CancellationToken ct)
    {
        if (response.Content.Headers.ContentLength is long n && n > MaxJsonBytes)
            throw new HubException($"{id}: the answer to GET {url} is {n} bytes; at most {MaxJsonBytes} are read");
        using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        try
        {
            int read;
            while ((read = await body.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + read > MaxJsonBytes) throw new HubException($"{id}: the answer to GET {url} is longer than {MaxJsonBytes} bytes");
                buffer.Write(chunk, 0, read);
            }
        }
        catch (Exception e) when (e is HttpRequestException or IOException and not HubException)
        {
            throw new HubException($"{id}: the answer to GET {url} broke off: {e.Message}", e) { Unreachable = true };
        }
        return buffer.ToArray();
    }

    /// <summary>Throws a <see cref="HubException"/> for any answer but a success, saying what the status means on the hub.</summary>
    void ThrowForStatus(HubModelId id, string? file, HttpResponseMessage response, Uri url)
    {
        int status = (int)response.StatusCode;
        if (status is >= 200 and < 300) return;
        string what = file is null ? $"{id}" : $"{id}: {file}";
        string code = Header(response, "X-Error-Code") ?? "";
        string? serverMessage = Header(response, "X-Error-Message") is { } m ? Sanitize(m) : null;
        string tail = $"({status} {response.ReasonPhrase} from {url}{(serverMessage is null ? "" : $": {serverMessage}")})";
        string message = (status, code) switch
        {
            (_, "RevisionNotFound") => $"{what}: revision '{id.Revision}' not found in {id.RepoId} {tail}",
            (_, "EntryNotFound") => $"{what}: no such file in {id.RepoId} at this revision {tail}",
            (_, "GatedRepo") => $"{what}: {id.RepoId} is gated: accept its terms on the hub and set HF_TOKEN {tail}",
            (401 or 403, _) => $"{what}: not authorized: {id.RepoId} is private or gated, or does not exist; " +
                (_options.Token is null ? "set HF_TOKEN (or log in with `hf auth login`)" : "the token given (HF_TOKEN or the token file) is not allowed to read it") + $" {tail}",
            (404, _) when file is null => $"{what}: repository not found at {_options.Endpoint} {tail}",
            (404, _) => $"{what}: no such file in {id.RepoId} at this revision {tail}",
            _ => $"{what}: the hub answered {status} {response.ReasonPhrase} {tail}",
        };
        throw new HubException(message) { StatusCode = status };
    }

    static string Sanitize(string s)
    {
        var clean = new string(s.Select(c => char.IsControl(c) ? ' ' : c).ToArray()).Trim();
        return clean.Length > 200 ? clean[..200] + "…" : clean;
    }
}
