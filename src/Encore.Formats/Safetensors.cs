using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Encore.Tensors;
using Encore.Tensors.Storage;

namespace Encore.Formats;

/// <summary>
/// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length n, n bytes
/// of JSON mapping each tensor name to {dtype, shape, data_offsets:[begin, end]} (offsets relative to
/// the end of the header) plus an optional "__metadata__" string map, then the raw little-endian data.
/// Reading maps the file and gives zero-copy tensors for F32, F16, BF16 and I32; F64, I64, I8, U8 and
/// BOOL are converted on load (to F32 or I32). Every size and offset is checked before use.
/// Encore adds two dtypes of its own for quantized checkpoints, "Q8_0" and "Q4_0": ggml's blocks of 32
/// values (34 and 18 bytes each) in row-major order, the shape being the logical one (its last
/// dimension a multiple of 32); they are mapped zero-copy like the others. Other safetensors readers
/// refuse these two dtypes.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>Largest header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    readonly MappedStorage _storage;
    readonly Dictionary<string, Entry> _entries;
    readonly long _dataStart;

    /// <summary>One tensor's record in the header.</summary>
    public sealed record Entry(string Name, string DType, int[] Shape, long Begin, long End);

    SafetensorsFile(string path, MappedStorage storage, Dictionary<string, Entry> entries, Dictionary<string, string> metadata, long dataStart)
    {
        Path = path;
        _storage = storage;
        _entries = entries;
        Metadata = metadata;
        _dataStart = dataStart;
    }

    /// <summary>The file read.</summary>
    public string Path { get; }

    /// <summary>The "__metadata__" map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensor names in file order of their data.</summary>
    public IEnumerable<string> Names => _entries.Values.OrderBy(e => e.Begin).Select(e => e.Name);

    /// <summary>The header record of <paramref name="name"/>.</summary>
    public Entry this[string name] => _entries.TryGetValue(name, out var e) ? e
        : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>True when the file holds <paramref name="name"/>.</summary>
    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>Maps and validates <paramref name="path"/>.</summary>
    public static SafetensorsFile Open(string path)
    {
        var storage = MappedStorage.Open(path);
        try
        {
            var (entries, metadata, dataStart) = ParseHeader(path, storage);
            return new SafetensorsFile(path, storage, entries, metadata, dataStart);
        }
        catch
        {
            storage.Release();
            throw;
        }
    }

    static unsafe (Dictionary<string, Entry>, Dictionary<string, string>, long) ParseHeader(string path, MappedStorage storage)
    {
        long fileLength = storage.ByteLength;
        if (fileLength < 8) throw new CheckpointFormatException($"{path}: {fileLength} bytes is too short for a safetensors file (needs an 8-byte header length)");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(storage.Pointer, 8));
        if (n > MaxHeaderBytes) throw new CheckpointFormatException($"{path}: header length {n} exceeds the {MaxHeaderBytes}-byte limit");
        if ((long)n > fileLength - 8) throw new CheckpointFormatException($"{path}: header length {n} runs past the end of the file ({fileLength} bytes)");
        var headerBytes = new ReadOnlySpan<byte>(storage.Pointer + 8, (int)n);
        long dataStart = 8 + (long)n;
        long dataLength = fileLength - dataStart;

        JsonText.Check(headerBytes, path + " (header)", maxDepth: 16);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(headerBytes.ToArray(), new JsonDocumentOptions { MaxDepth = 16, AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{path}: the header is not valid JSON ({e.Message})", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: the header is not a JSON object");
            var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: __metadata__ must be an object of strings");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw new CheckpointFormatException($"{path}: __metadata__ value '{m.Name}' is not a string");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                entries[prop.Name] = ParseEntry(path, prop, dataLength);
            }
            // Offsets must tile the data region without overlap (as the reference reader requires).
            long expected = 0;
            foreach (var e in entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.End))
            {
                if (e.Begin != expected)
                    throw new CheckpointFormatException(e.Begin < expected
                        ? $"{path}: tensor '{e.Name}' overlaps the previous tensor (starts at {e.Begin}, previous ends at {expected})"
                        : $"{path}: a gap of {e.Begin - expected} bytes precedes tensor '{e.Name}'");
                expected = e.End;
            }
            if (expected != dataLength)
                throw new CheckpointFormatException($"{path}: the tensors cover {expected} bytes but the data region holds {dataLength}");
            return (entries, metadata, dataStart);
        }
    }

    static Entry ParseEntry(string path, JsonProperty prop, long dataLength)
    {
        string name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: entry '{name}' is not an object");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new CheckpointFormatException($"{path}: tensor '{name}' has no string 'dtype'");
        string dtype = dt.GetString()!;
        var blocked = BlockedDType(dtype);
        int elemSize = blocked?.UnitBytes() ?? ElementSize(dtype) ?? throw new CheckpointFormatException($"{path}: tensor '{name}' has unsupported dtype '{dtype}'");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new CheckpointFormatException($"{path}: tensor '{name}' has no 'shape' array");
        if (sh.GetArrayLength() > 8) throw new CheckpointFormatException($"{path}: tensor '{name}' has rank {sh.GetArrayLength()} (at most 8 supported)");
        var shape = new int[sh.GetArrayLength()];
        long count = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0 || dim > int.MaxValue)
                throw new CheckpointFormatException($"{path}: tensor '{name}' has an invalid dimension {d}");
            shape[i++] = (int)dim;
            // Products beyond the file size are rejected below; this only keeps them from overflowing.
            count = count > long.MaxValue / 8 / Math.Max(1, dim) ? long.MaxValue / 8 : count * dim;
        }
        if (blocked is DType bt)
        {
            // Blocked dtypes count whole blocks of the innermost dimension.
            int bs = bt.BlockSize();
            if (shape.Length == 0 || shape[^1] % bs != 0)
                throw new CheckpointFormatException($"{path}: tensor '{name}' is {dtype}[{string.Join(", ", shape)}], but {dtype} needs the last dimension to be a multiple of {bs}");
            count /= bs;
        }
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new CheckpointFormatException($"{path}: tensor '{name}' needs 'data_offsets' [begin, end]");
        var o = off.EnumerateArray().ToArray();
        if (o[0].ValueKind != JsonValueKind.Number || o[1].ValueKind != JsonValueKind.Number
            || !o[0].TryGetInt64(out long begin) || !o[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new CheckpointFormatException($"{path}: tensor '{name}' has invalid data_offsets [{o[0]}, {o[1]}]");
        if (end > dataLength)
            throw new CheckpointFormatException($"{path}: tensor '{name}' data [{begin}, {end}) runs past the end of the data ({dataLength} bytes)");
        if (end - begin != count * elemSize)
            throw new CheckpointFormatException($"{path}: tensor '{name}' is {dtype}[{string.Join(", ", shape)}] = {count * elemSize} bytes but its data_offsets span {end - begin}");
        return new Entry(name, dtype, shape, begin, end);
    }

    // Encore's block-quantized dtypes, stored as ggml lays out their blocks (see docs/formats.md).
    static DType? BlockedDType(string dtype) => dtype switch
    {
        "Q8_0" => DType.Q8_0,
        "Q4_0" => DType.Q4_0,
        _ => null,
    };

    static int? ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" => 1,
        _ => null,
    };

    /// <summary>
    /// The tensor <paramref name="name"/>. F32, F16, BF16 and I32 are zero-copy read-only views of
    /// the mapped file; F64 becomes F32, and I64, I8, U8, BOOL become I32 (copies). Dispose the result.
    /// </summary>
    public unsafe Tensor Read(string name)
    {
        var e = this[name];
        long byteOffset = _dataStart + e.Begin;
        switch (e.DType)
        {
            case "F32": return Aligned(e, DType.F32, byteOffset, 4);
            case "F16": return Aligned(e, DType.F16, byteOffset, 2);
            case "BF16": return Aligned(e, DType.BF16, byteOffset, 2);
            case "I32": return Aligned(e, DType.I32, byteOffset, 4);
            case "Q8_0" or "Q4_0":
            {
                var dtype = BlockedDType(e.DType)!.Value;
                CheckScales(name, _storage.Pointer + byteOffset, (e.End - e.Begin) / dtype.UnitBytes(), dtype.UnitBytes());
                // Blocks are read unaligned, so the tensor maps the file wherever it starts.
                var range = SubStorage.Of(_storage, byteOffset, e.End - e.Begin);
                try { return Tensor.FromStorage(range, BlockedDType(e.DType)!.Value, e.Shape, 0); }
                finally { range.Release(); }
            }
        }
        long count = (e.End - e.Begin) / ElementSize(e.DType)!.Value;
        byte* p = _storage.Pointer + byteOffset;
        if (e.DType == "F64")
        {
            var t = Tensor.Empty(DType.F32, e.Shape);
            var dst = t.AsSpan<float>();
            for (long i = 0; i < count; i++) dst[(int)i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(new ReadOnlySpan<byte>(p + i * 8, 8));
            return t;
        }
        var ti = Tensor.Empty(DType.I32, e.Shape);
        var di = ti.AsSpan<int>();
        for (long i = 0; i < count; i++)
        {
            long value = e.DType switch
            {
                "I64" => BinaryPrimitives.ReadInt64LittleEndian(new ReadOnlySpan<byte>(p + i * 8, 8)),
                "I8" => ((sbyte*)p)[i],
                "U8" or "BOOL" => p[i],
                "I16" => BinaryPrimitives.ReadInt16LittleEndian(new ReadOnlySpan<byte>(p + i * 2, 2)),
                "U16" => BinaryPrimitives.ReadUInt16LittleEndian(new ReadOnlySpan<byte>(p + i * 2, 2)),
                _ => throw new CheckpointFormatException($"{Path}: tensor '{name}' has dtype {e.DType}, which Encore does not load"),
            };
            if (value is < int.MinValue or > int.MaxValue)
            {
                ti.Dispose();
                throw new CheckpointFormatException($"{Path}: tensor '{name}' value {value} does not fit in int32");
            }
            di[(int)i] = (int)value;
        }
        return ti;
    }

    // Every block starts with its binary16 scale; an infinity or NaN there would turn whole rows of every
    // product into NaN, so the tensor is refused with the first such block named.
    unsafe void CheckScales(string name, byte* p, long blocks, int blockBytes)
    {
        for (long b = 0; b < blocks; b++)
        {
            ushort d = (ushort)(p[b * blockBytes] | p[b * blockBytes + 1] << 8);
            if ((d & 0x7C00) == 0x7C00)
                throw new CheckpointFormatException($"{Path}: tensor '{name}' block {b} has a non-finite scale (binary16 0x{d:X4})");
        }
    }

    unsafe Tensor Aligned(Entry e, DType dtype, long byteOffset, int size)
    {
        if (byteOffset % size == 0) return Tensor.FromStorage(_storage, dtype, e.Shape, byteOffset);
        // A misaligned tensor (the format does not promise alignment): copy it out.
        var t = Tensor.Empty(dtype, e.Shape);
        Buffer.MemoryCopy(_storage.Pointer + byteOffset, t.DataPointer, t.ByteLength, e.End - e.Begin);
        return t;
    }

    /// <summary>Unmaps the file once every tensor read from it is disposed too.</summary>
    public void Dispose() => _storage.Release();

    /// <summary>
    /// Writes <paramref name="tensors"/> (F32, F16, BF16, I32, Q8_0 or Q4_0) to <paramref name="path"/>, atomically,
    /// in the order given, with the header padded so the data starts 8-byte aligned.
    /// </summary>
    public static unsafe void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in list)
            {
                if (!names.Add(name)) throw new ArgumentException($"tensor name '{name}' appears twice");
                if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved");
                string dtype = t.DType switch
                {
                    DType.F32 => "F32",
                    DType.F16 => "F16",
                    DType.BF16 => "BF16",
                    DType.I32 => "I32",
                    DType.Q8_0 => "Q8_0",
                    DType.Q4_0 => "Q4_0",
                    _ => throw new ArgumentException($"safetensors has no {t.DType.Name()} dtype (tensor '{name}')"),
                };
                w.WriteStartObject(name);
                w.WriteString("dtype", dtype);
                w.WriteStartArray("shape");
                foreach (int d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                offset += t.ByteLength;
                w.WriteNumberValue(offset);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        var json = ms.ToArray();
        int padded = (json.Length + 7) / 8 * 8;
        AtomicFile.Write(path, s =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            s.Write(len);
            s.Write(json);
            for (int i = json.Length; i < padded; i++) s.WriteByte((byte)' ');
            foreach (var (_, t) in list)
            {
                using var c = t.Contiguous();
                long remaining = c.ByteLength;
                byte* p = c.DataPointer;
                while (remaining > 0)
                {
                    int chunk = (int)Math.Min(remaining, 1 << 30);
                    s.Write(new ReadOnlySpan<byte>(p, chunk));
                    p += chunk;
                    remaining -= chunk;
                }
            }
        });
    }
}
