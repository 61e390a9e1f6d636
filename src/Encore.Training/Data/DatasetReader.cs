using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Encore.Training.Data;

/// <summary>A source → target text pair (one JSONL line).</summary>
public sealed record TextPair(string Source, string Target);

/// <summary>How a plain-text file splits into documents.</summary>
public enum TextLayout
{
    /// <summary>Every non-blank line is one document.</summary>
    LinePerDocument,
    /// <summary>Documents are separated by blank lines; the lines of a document are joined with "\n".</summary>
    BlankLineSeparated,
}

/// <summary>Limits that keep a dataset file from allocating without bound. Each has one default.</summary>
public sealed record DatasetReadOptions
{
    /// <summary>Longest line, in UTF-8 bytes; longer lines fail before they are buffered whole. Default 1 MiB.</summary>
    public int MaxLineBytes { get; init; } = 1 << 20;
    /// <summary>Longest blank-line-separated document, in UTF-8 bytes. Default 1 MiB.</summary>
    public int MaxDocumentBytes { get; init; } = 1 << 20;
    /// <summary>Largest file, in bytes, checked before reading. Default 2 GiB.</summary>
    public long MaxFileBytes { get; init; } = 2L << 30;
    /// <summary>Most examples (pairs or documents) read from one file. Default 50 million.</summary>
    public int MaxExamples { get; init; } = 50_000_000;
    /// <summary>The JSONL field read as a pair's target (e.g. "section" of data/debian). Default "target".</summary>
    public string TargetField { get; init; } = "target";
    /// <summary>
    /// The JSONL fields read as a pair's source, joined by ": " (e.g. ["package", "source"] of
    /// data/debian gives "name: description"). Default ["source"].
    /// </summary>
    public IReadOnlyList<string> SourceFields { get; init; } = ["source"];
}

/// <summary>
/// Reads dataset files: JSONL source/target pairs and plain text. Every failure is a
/// <see cref="DatasetFormatException"/> naming the file and line. The SHA-256 of the bytes read is
/// returned with the content so tokenized copies can be cached by content.
/// </summary>
public static class DatasetReader
{
    /// <summary>Whether <paramref name="path"/> names JSONL pairs (<c>.jsonl</c>, <c>.json</c>, optionally <c>.gz</c>) rather than plain text.</summary>
    public static bool IsPairFile(string path)
    {
        var p = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? path[..^3] : path;
        return p.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) || p.EndsWith(".json", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Reads JSONL: one JSON object per line with string fields "source" and "target" (other fields
    /// are ignored; blank lines are skipped).
    /// </summary>
    public static List<TextPair> ReadPairs(string path, DatasetReadOptions? options = null) => ReadPairs(path, options, out _);

    /// <summary>As <see cref="ReadPairs(string, DatasetReadOptions?)"/>, also giving the SHA-256 of the file (hex).</summary>
    public static List<TextPair> ReadPairs(string path, DatasetReadOptions? options, out string sha256)
    {
        options ??= new DatasetReadOptions();
        if (options.SourceFields.Count == 0 || options.SourceFields.Any(string.IsNullOrEmpty) || string.IsNullOrEmpty(options.TargetField))
            throw new ArgumentException("source and target field names must be given and not empty", nameof(options));
        var pairs = new List<TextPair>();
        using var reader = BoundedLineReader.Open(path, options);
        while (reader.ReadLine() is { } line)
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            if (pairs.Count >= options.MaxExamples) throw new DatasetFormatException(path, reader.LineNumber, $"more than {options.MaxExamples} examples");
            pairs.Add(ParsePair(line, path, reader.LineNumber, options.TargetField, options.SourceFields));
        }
        sha256 = reader.FinishHash();
        return pairs;
    }

    /// <summary>Reads plain-text documents laid out as <paramref name="layout"/> says.</summary>
    public static List<string> ReadDocuments(string path, TextLayout layout, DatasetReadOptions? options = null) => ReadDocuments(path, layout, options, out _);

    /// <summary>As <see cref="ReadDocuments(string, TextLayout, DatasetReadOptions?)"/>, also giving the SHA-256 of the file (hex).</summary>
    public static List<string> ReadDocuments(string path, TextLayout layout, DatasetReadOptions? options, out string sha256)
    {
        options ??= new DatasetReadOptions();
        var docs = new List<string>();
        using var reader = BoundedLineReader.Open(path, options);
        var current = new StringBuilder();
        long currentBytes = 0, startLine = 0;
        void Flush()
        {
            if (current.Length == 0) return;
            if (docs.Count >= options.MaxExamples) throw new DatasetFormatException(path, startLine, $"more than {options.MaxExamples} documents");
            docs.Add(current.ToString());
            current.Clear();
            currentBytes = 0;
        }
        while (reader.ReadLine() is { } line)
        {
            if (string.IsNullOrWhiteSpace(line))
            {
                Flush();
                continue;
            }
            if (layout == TextLayout.LinePerDocument)
            {
                startLine = reader.LineNumber;
                current.Append(line);
                Flush();
                continue;
            }
            if (current.Length == 0) startLine = reader.LineNumber;
            else current.Append('\n');
            currentBytes += reader.LastLineBytes + 1;
            if (currentBytes > options.MaxDocumentBytes)
                throw new DatasetFormatException(path, startLine, $"the document starting here is longer than {options.MaxDocumentBytes} bytes");
            current.Append(line);
        }
        Flush();
        sha256 = reader.FinishHash();
        return docs;
    }

    internal static TextPair ParsePair(string line, string path, long lineNumber, string targetField = "target", IReadOnlyList<string>? sourceFields = null)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new DatasetFormatException(path, lineNumber, $"not valid JSON ({e.Message})", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new DatasetFormatException(path, lineNumber, $"expected a JSON object with \"source\" and \"target\", found {Describe(doc.RootElement.ValueKind)}");
            string Field(string name)
            {
                if (!doc.RootElement.TryGetProperty(name, out var v))
                    throw new DatasetFormatException(path, lineNumber, $"missing field \"{name}\"");
                if (v.ValueKind != JsonValueKind.String)
                    throw new DatasetFormatException(path, lineNumber, $"field \"{name}\" must be a string, found {Describe(v.ValueKind)}");
                try
                {
                    return v.GetString()!;
                }
                catch (InvalidOperationException e)
                {
                    // JsonDocument accepts an escaped lone surrogate ("\ud800") and fails only here.
                    throw new DatasetFormatException(path, lineNumber, $"field \"{name}\" holds an escape that is not valid UTF-16 (a lone surrogate)", e);
                }
            }
            string source = sourceFields is null ? Field("source") : string.Join(": ", sourceFields.Select(Field));
            return new TextPair(source, Field(targetField));
        }
    }

    static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };
}

/// <summary>
/// Reads UTF-8 lines from a file with a cap on the line length: a line is rejected as soon as its
/// bytes pass the cap, so a file without newlines never gets buffered whole. Accepts LF and CRLF,
/// drops a leading byte-order mark, rejects invalid UTF-8, and hashes every byte it reads
/// (decompressed, for a <c>.gz</c> file).
/// </summary>
internal sealed class BoundedLineReader : IDisposable
{
    static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    readonly Stream _stream;
    readonly string _path;
    readonly int _maxLine;
    readonly byte[] _buffer = new byte[1 << 16];
    readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    byte[] _line = new byte[256];
    int _pos, _len;
    bool _eof;

    readonly long _maxBytes;
    long _read;

    BoundedLineReader(Stream stream, string path, int maxLine, long maxBytes)
    {
        _stream = stream;
        _path = path;
        _maxLine = maxLine;
        _maxBytes = maxBytes;
    }

    /// <summary>Opens <paramref name="path"/> after checking that it exists and is within the size limit.</summary>
    public static BoundedLineReader Open(string path, DatasetReadOptions options)
    {
        ArgumentNullException.ThrowIfNull(path);
        var info = new FileInfo(path);
        if (!info.Exists) throw new DatasetFormatException(path, 0, "file not found");
        if (info.Length > options.MaxFileBytes)
            throw new DatasetFormatException(path, 0, $"file is {info.Length} bytes, over the {options.MaxFileBytes}-byte limit");
        Stream stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        // A .gz file is read through gzip; the size limit then also bounds the decompressed bytes.
        if (path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)) stream = new GZipStream(stream, CompressionMode.Decompress);
        return new BoundedLineReader(stream, path, options.MaxLineBytes, options.MaxFileBytes);
    }

    /// <summary>1-based number of the line last returned.</summary>
    public long LineNumber { get; private set; }

    /// <summary>UTF-8 bytes of the line last returned (without its line break).</summary>
    public int LastLineBytes { get; private set; }

    /// <summary>The next line, or null at the end of the file.</summary>
    public string? ReadLine()
    {
        int n = 0;
        bool any = false;
        while (true)
        {
            if (_pos == _len)
            {
                if (_eof || !Fill())
                {
                    if (!any) return null;
                    break;
                }
            }
            any = true;
            int nl = Array.IndexOf(_buffer, (byte)'\n', _pos, _len - _pos);
            int end = nl < 0 ? _len : nl;
            int take = end - _pos;
            if (n + take > _maxLine + 1) // +1 leaves room for the '\r' of a CRLF line at the cap
                throw new DatasetFormatException(_path, LineNumber + 1, $"line is longer than {_maxLine} bytes");
            if (n + take > _line.Length) Array.Resize(ref _line, Math.Min(Math.Max(_line.Length * 2, n + take), _maxLine + 1));
            Buffer.BlockCopy(_buffer, _pos, _line, n, take);
            n += take;
            _pos = end;
            if (nl >= 0)
            {
                _pos++;
                break;
            }
        }
        LineNumber++;
        if (n > 0 && _line[n - 1] == '\r') n--;
        if (n > _maxLine) throw new DatasetFormatException(_path, LineNumber, $"line is longer than {_maxLine} bytes");
        int start = 0;
        if (LineNumber == 1 && n >= 3 && _line[0] == 0xEF && _line[1] == 0xBB && _line[2] == 0xBF) start = 3;
        LastLineBytes = n - start;
        try
        {
            return Strict.GetString(_line, start, n - start);
        }
        catch (DecoderFallbackException e)
        {
            throw new DatasetFormatException(_path, LineNumber, "not valid UTF-8", e);
        }
    }

    /// <summary>The SHA-256 (lowercase hex) of every byte read; call after the last line.</summary>
    public string FinishHash() => Convert.ToHexStringLower(_hash.GetHashAndReset());

    bool Fill()
    {
        try
        {
            _len = _stream.Read(_buffer, 0, _buffer.Length);
        }
        catch (InvalidDataException e)
        {
            throw new DatasetFormatException(_path, LineNumber + 1, $"not valid gzip ({e.Message})", e);
        }
        _pos = 0;
        _read += _len;
        if (_read > _maxBytes) throw new DatasetFormatException(_path, LineNumber + 1, $"more than {_maxBytes} bytes of text");
        if (_len == 0)
        {
            _eof = true;
            return false;
        }
        _hash.AppendData(_buffer, 0, _len);
        return true;
    }

    public void Dispose()
    {
        _stream.Dispose();
        _hash.Dispose();
    }
}
