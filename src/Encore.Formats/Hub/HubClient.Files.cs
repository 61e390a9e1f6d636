// One file of a hub snapshot: its metadata from a HEAD on /resolve/ (file_download.py get_hf_file_metadata),
// its bytes into blobs/<etag>.incomplete, resumed with a Range request where a partial file is held
// (http_get's resume_size), checked against the sha256 an LFS ETag names, then renamed to blobs/<etag>.
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;

namespace Encore.Formats.Hub;

public sealed partial class HubClient
{
    /// <summary>
    /// Makes sure the blob of <paramref name="file"/> at <paramref name="commit"/> is cached and returns its path,
    /// or null when the snapshot already holds the file (no request is made then).
    /// </summary>
    async Task<string?> EnsureBlobAsync(HubModelId id, string commit, string file, CancellationToken ct)
    {
        if (!IsSafeRelativePath(file)) throw new HubException($"{id}: '{file}' is not a file name inside the repository");
        if (File.Exists(SnapshotEntry(id, commit, file))) return null;
        var url = new Uri($"{_options.Endpoint.TrimEnd('/')}/{id.RepoId}/resolve/{commit}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");
        var meta = await HeadAsync(id, file, url, ct).ConfigureAwait(false);
        if (meta.Commit is { } c && c != commit) throw new HubException($"{id}: {file}: the hub answered for commit {c}, not {commit}");
        var blob = Cache.BlobPath(id, meta.ETag);
        if (!File.Exists(blob)) await FetchBlobAsync(id, file, meta, blob, ct).ConfigureAwait(false);
        return blob;
    }

    sealed record FileMeta(string ETag, long? Size, Uri Location, string? Commit);

    async Task<FileMeta> HeadAsync(HubModelId id, string file, Uri url, CancellationToken ct)
    {
        for (int hop = 0; ; hop++)
        {
            using var response = await SendAsync(id, file, HttpMethod.Head, url, followRedirects: false,
                r => r.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity")), ct).ConfigureAwait(false);
            bool redirect = (int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is not null;
            if (redirect && !response.Headers.Location!.IsAbsoluteUri)
            {
                // A relative redirect (a renamed repository) is followed; an absolute one is the CDN holding the bytes.
                if (hop >= MaxRedirects) throw new HubException($"{id}: {file}: more than {MaxRedirects} redirects from {url}");
                url = new Uri(url, response.Headers.Location);
                continue;
            }
            if (!redirect) ThrowForStatus(id, file, response, url);
            string? raw = Header(response, "X-Linked-Etag") ?? Header(response, "ETag");
            if (raw is null) throw new HubException($"{id}: {file}: the hub sent no ETag for {url}, so the file cannot be named in the cache");
            string etag = NormalizeETag(raw);
            if (!IsSafeRelativePath(etag) || etag.Contains('/') || etag.Contains(' ') || etag.Length > 128)
                throw new HubException($"{id}: {file}: the ETag '{(raw.Length > 80 ? raw[..80] + "…" : raw)}' from {url} is not usable as a blob name");
            string? sizeText = Header(response, "X-Linked-Size") ?? (redirect ? null : response.Content.Headers.ContentLength?.ToString(System.Globalization.CultureInfo.InvariantCulture));
            long? size = null;
            if (sizeText is not null)
            {
                if (!long.TryParse(sizeText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n) || n > MaxFileBytes)
                    throw new HubException($"{id}: {file}: the size '{sizeText}' from {url} is not a byte count up to {MaxFileBytes}");
                size = n;
            }
            return new FileMeta(etag, size, redirect ? response.Headers.Location! : url, Header(response, "X-Repo-Commit"));
        }
    }

    /// <summary>huggingface_hub's _normalize_etag: drops a weak "W/" prefix and the quotes.</summary>
    internal static string NormalizeETag(string etag)
    {
        etag = etag.Trim();
        if (etag.StartsWith("W/", StringComparison.Ordinal)) etag = etag[2..];
        return etag.Trim('"');
    }

    static bool IsSha256(string etag) => etag.Length == 64 && etag.All(char.IsAsciiHexDigit);

    async Task FetchBlobAsync(HubModelId id, string file, FileMeta meta, string blob, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        string incomplete = blob + ".incomplete";
        FileStream fs;
        try
        {
            // FileShare.None takes a lock: a second process fetching the same blob is refused instead of appending to it.
            fs = new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1 << 16, useAsync: true);
        }
        catch (IOException e)
        {
            throw new HubException($"{id}: {file}: cannot open {incomplete} (is another download of it running?): {e.Message}", e);
        }
        try
        {
            long? size = meta.Size;
            string? lastBreak = null;
            for (int attempt = 1; ; attempt++)
            {
                long have = fs.Length;
                if (size is long n && have > n) { fs.SetLength(0); have = 0; }
                if (size is long full && have == full) break;
                var outcome = await GetIntoAsync(id, file, meta, fs, have, ct).ConfigureAwait(false);
                if (outcome is null) break;
                lastBreak = outcome;
                if (attempt >= _options.Attempts)
                    throw new HubException($"{id}: {file}: the download broke off at {fs.Length} of {(size is long s ? s.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?")} bytes after {attempt} attempt(s) ({lastBreak}); " +
                        $"run again to resume from {incomplete}");
            }
            if (IsSha256(meta.ETag))
            {
                fs.Position = 0;
                string actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(fs, ct).ConfigureAwait(false));
                if (!string.Equals(actual, meta.ETag, StringComparison.OrdinalIgnoreCase))
                {
                    fs.Dispose();
                    File.Delete(incomplete);
                    throw new HubException($"{id}: {file}: the downloaded bytes have sha256 {actual}, not {meta.ETag.ToLowerInvariant()} as the hub announced; the partial file was deleted, nothing was cached");
                }
            }
            await fs.FlushAsync(ct).ConfigureAwait(false);
            fs.Flush(flushToDisk: true);
        }
        finally
        {
            fs.Dispose();
        }
        File.Move(incomplete, blob, overwrite: true);
        _options.Progress?.Report(new HubDownloadProgress(id.RepoId, file, new FileInfo(blob).Length, meta.Size, Done: true));
    }

    /// <summary>
    /// Fetches <paramref name="meta"/>'s bytes from offset <paramref name="have"/> into <paramref name="fs"/>.
    /// Returns null when the body ended as announced, or why it broke off (what it brought stays, to resume from).
    /// </summary>
    async Task<string?> GetIntoAsync(HubModelId id, string file, FileMeta meta, FileStream fs, long have, CancellationToken ct)
    {
        var url = meta.Location;
        HttpResponseMessage sent;
        try
        {
            sent = await SendAsync(id, file, HttpMethod.Get, url, followRedirects: true, r =>
            {
                r.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
                if (have > 0) r.Headers.Range = new RangeHeaderValue(have, null);
            }, ct).ConfigureAwait(false);
        }
        catch (HubException e) when (e.Unreachable)
        {
            return e.InnerException?.Message ?? e.Message;
        }
        using var response = sent;
        long offset;
        if (response.StatusCode == HttpStatusCode.PartialContent && have > 0)
        {
            var range = response.Content.Headers.ContentRange;
            if (range?.From != have)
                throw new HubException($"{id}: {file}: asked for bytes from {have}, the server sent {(range is null ? "a partial answer without Content-Range" : $"bytes from {range.From}")} ({url})");
            offset = have;
        }
        else if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && have > 0)
        {
            // Nothing past what is held: it is complete if the size says so, else it is restarted.
            fs.SetLength(0);
            return "the server refused to resume";
        }
        else
        {
            ThrowForStatus(id, file, response, url);
            offset = 0; // a 200 answer to a Range request is the whole file
        }
        long? length = response.Content.Headers.ContentLength;
        if (meta.Size is long size && length is long l && offset + l != size)
            throw new HubException($"{id}: {file}: the server announced {offset + l} bytes, the hub {size} ({url})");
        long limit = meta.Size ?? MaxFileBytes;
        fs.SetLength(offset);
        fs.Position = offset;
        var buffer = new byte[1 << 20];
        long done = offset;
        _options.Progress?.Report(new HubDownloadProgress(id.RepoId, file, done, meta.Size, Done: false));
        Stream body;
        try
        {
            body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            return e.Message;
        }
        using (body)
            while (true)
            {
                int read;
                using (var idle = CancellationTokenSource.CreateLinkedTokenSource(ct))
                {
                    idle.CancelAfter(_options.Timeout);
                    try
                    {
                        read = await body.ReadAsync(buffer, idle.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                        await fs.FlushAsync(ct).ConfigureAwait(false);
                        return $"no bytes for {_options.Timeout.TotalSeconds:0.#} s";
                    }
                    catch (Exception e) when (e is HttpRequestException or IOException)
                    {
                        await fs.FlushAsync(ct).ConfigureAwait(false);
                        return e.Message;
                    }
                }
                if (read == 0) break;
                if (done + read > limit)
                {
                    fs.SetLength(0);
                    throw new HubException($"{id}: {file}: the server sent more than the {limit} bytes announced ({url}); the partial file was emptied");
                }
                await fs.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
                done += read;
                _options.Progress?.Report(new HubDownloadProgress(id.RepoId, file, done, meta.Size, Done: false));
            }
        await fs.FlushAsync(ct).ConfigureAwait(false);
        if (meta.Size is long expected && done != expected) return $"the body ended at {done} of {expected} bytes";
        return null;
    }
}
