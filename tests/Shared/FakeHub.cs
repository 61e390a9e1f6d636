using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Encore.Testing;

/// <summary>
/// A Hugging Face hub on 127.0.0.1 (a free port), answering as huggingface.co does: the model-info API
/// with the commit and the file list, HEAD and GET on /resolve/ with X-Repo-Commit, ETag (a non-LFS
/// file's git blob hash) or X-Linked-Etag and X-Linked-Size (an LFS file's sha256 and size) and a
/// redirect to a CDN path for LFS files, Range requests on the CDN, X-Error-Code on 404s. Faults are
/// switched on per test; every request is logged.
/// </summary>
internal sealed class FakeHub : IAsyncDisposable
{
    /// <summary>One file of a commit, as served; <see cref="Served"/> replaces the bytes on the wire (a corrupt download).</summary>
    public sealed record HubFile(byte[] Content, bool Lfs)
    {
        public byte[]? Served { get; set; }
        public string ETag => Lfs ? Convert.ToHexStringLower(SHA256.HashData(Content)) : GitBlobHash(Content);
    }

    public sealed record Request(string Method, string Path, string? Range, string? Authorization);

    readonly WebApplication _app;
    readonly ConcurrentDictionary<string, Dictionary<string, string>> _refs = new();                       // repo -> branch -> commit
    readonly ConcurrentDictionary<(string Repo, string Commit), Dictionary<string, HubFile>> _commits = new();

    /// <summary>Every request received, in order.</summary>
    public ConcurrentQueue<Request> Requests { get; } = new();

    /// <summary>When set, every request without "Authorization: Bearer {token}" is a 401.</summary>
    public string? RequiredToken { get; set; }

    /// <summary>When set, the model-info API answers this body (200, application/json) instead.</summary>
    public string? GarbageInfo { get; set; }

    /// <summary>When set, a CDN GET of a file sends only this many bytes of it (chunked, no Content-Length), then ends the body.</summary>
    public int? TruncateAfter { get; set; }

    /// <summary>The hub's address, e.g. http://127.0.0.1:41234 (no trailing '/').</summary>
    public string Endpoint { get; private set; } = "";

    FakeHub(WebApplication app) => _app = app;

    public static async Task<FakeHub> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        var app = builder.Build();
        var hub = new FakeHub(app);
        app.Run(hub.HandleAsync);
        await app.StartAsync();
        hub.Endpoint = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');
        return hub;
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    /// <summary>Publishes <paramref name="files"/> as a new commit of <paramref name="repo"/> on <paramref name="branch"/>; returns the commit hash.</summary>
    public string Publish(string repo, IReadOnlyDictionary<string, byte[]> files, string branch = "main")
    {
        var commit = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes($"{repo}/{branch}/{_commits.Count}/{string.Join(",", files.Keys)}")));
        _commits[(repo, commit)] = files.ToDictionary(kv => kv.Key, kv => new HubFile(kv.Value, Lfs: kv.Key.EndsWith(".safetensors", StringComparison.Ordinal)));
        _refs.GetOrAdd(repo, _ => new())[branch] = commit;
        return commit;
    }

    /// <summary>The served file <paramref name="name"/> of <paramref name="commit"/>.</summary>
    public HubFile File(string repo, string commit, string name) => _commits[(repo, commit)][name];

    /// <summary>git's object hash of a blob: sha1("blob {length}\0" + content), the ETag the hub sends for non-LFS files.</summary>
    public static string GitBlobHash(byte[] content) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {content.Length}\0"), .. content]));

    async Task HandleAsync(HttpContext c)
    {
        var path = c.Request.Path.Value ?? "";
        Requests.Enqueue(new Request(c.Request.Method, path, c.Request.Headers.Range.ToString() is { Length: > 0 } r ? r : null,
            c.Request.Headers.Authorization.ToString() is { Length: > 0 } a ? a : null));
        if (RequiredToken is { } token && c.Request.Headers.Authorization.ToString() != $"Bearer {token}")
        {
            c.Response.StatusCode = 401;
            c.Response.Headers["X-Error-Message"] = "Invalid credentials in Authorization header";
            return;
        }
        var parts = path.Trim('/').Split('/');
        // /api/models/{org}/{name}/revision/{revision}
        if (parts.Length == 6 && parts[0] == "api" && parts[1] == "models" && parts[4] == "revision")
        {
            string repo = $"{parts[2]}/{parts[3]}", revision = Uri.UnescapeDataString(parts[5]);
            if (!_refs.TryGetValue(repo, out var branches)) { NotFound(c, "RepoNotFound", "Repository not found"); return; }
            string? commit = branches.TryGetValue(revision, out var b) ? b : _commits.ContainsKey((repo, revision)) ? revision : null;
            if (commit is null) { NotFound(c, "RevisionNotFound", $"Invalid rev id: {revision}"); return; }
            c.Response.ContentType = "application/json";
            await c.Response.WriteAsync(GarbageInfo ?? JsonSerializer.Serialize(new
            {
                id = repo,
                sha = commit,
                siblings = _commits[(repo, commit)].Keys.Select(k => new { rfilename = k }),
            }));
            return;
        }
        // /{org}/{name}/resolve/{commit}/{file...}
        if (parts.Length >= 5 && parts[2] == "resolve")
        {
            string repo = $"{parts[0]}/{parts[1]}", revision = parts[3], name = string.Join('/', parts[4..].Select(Uri.UnescapeDataString));
            if (!_refs.TryGetValue(repo, out var branches)) { NotFound(c, "RepoNotFound", "Repository not found"); return; }
            string commit = branches.TryGetValue(revision, out var b) ? b : revision;
            if (!_commits.TryGetValue((repo, commit), out var files)) { NotFound(c, "RevisionNotFound", $"Invalid rev id: {revision}"); return; }
            if (!files.TryGetValue(name, out var file)) { NotFound(c, "EntryNotFound", $"{name} does not exist on \"{revision}\""); return; }
            c.Response.Headers["X-Repo-Commit"] = commit;
            if (file.Lfs)
            {
                // As huggingface.co: a 302 to the CDN, the LFS object's sha256 and size on the redirect.
                c.Response.StatusCode = 302;
                c.Response.Headers["X-Linked-Etag"] = $"\"{file.ETag}\"";
                c.Response.Headers["X-Linked-Size"] = file.Content.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
                c.Response.Headers.Location = $"{Endpoint}/cdn/{repo}/{commit}/{string.Join('/', name.Split('/').Select(Uri.EscapeDataString))}";
                return;
            }
            c.Response.Headers.ETag = $"\"{file.ETag}\"";
            await ServeAsync(c, file);
            return;
        }
        // /cdn/{org}/{name}/{commit}/{file...}
        if (parts.Length >= 5 && parts[0] == "cdn")
        {
            string repo = $"{parts[1]}/{parts[2]}", commit = parts[3], name = string.Join('/', parts[4..].Select(Uri.UnescapeDataString));
            if (!_commits.TryGetValue((repo, commit), out var files) || !files.TryGetValue(name, out var file)) { c.Response.StatusCode = 404; return; }
            await ServeAsync(c, file);
            return;
        }
        c.Response.StatusCode = 404;
    }

    static void NotFound(HttpContext c, string code, string message)
    {
        c.Response.StatusCode = 404;
        c.Response.Headers["X-Error-Code"] = code;
        c.Response.Headers["X-Error-Message"] = message;
    }

    async Task ServeAsync(HttpContext c, HubFile file)
    {
        var bytes = file.Served ?? file.Content;
        long from = 0;
        if (c.Request.Headers.Range.ToString() is { Length: > 0 } range && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            from = long.Parse(range["bytes=".Length..^1], System.Globalization.CultureInfo.InvariantCulture);
            if (from >= bytes.Length)
            {
                c.Response.StatusCode = 416;
                c.Response.Headers.ContentRange = $"bytes */{bytes.Length}";
                return;
            }
            c.Response.StatusCode = 206;
            c.Response.Headers.ContentRange = $"bytes {from}-{bytes.Length - 1}/{bytes.Length}";
        }
        if (TruncateAfter is int cut && c.Request.Path.StartsWithSegments("/cdn") && !HttpMethods.IsHead(c.Request.Method))
        {
            // Chunked, so the body can end early without the server breaking its own Content-Length.
            await c.Response.Body.WriteAsync(bytes.AsMemory((int)from, Math.Min(cut, bytes.Length - (int)from)));
            return;
        }
        c.Response.ContentLength = bytes.Length - from;
        if (HttpMethods.IsHead(c.Request.Method)) return;
        await c.Response.Body.WriteAsync(bytes.AsMemory((int)from));
    }
}
