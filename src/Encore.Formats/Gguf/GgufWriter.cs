using System.Text;

namespace Encore.Formats.Gguf;

/// <summary>
/// Builds a GGUF v3 file: metadata in insertion order, then tensor infos, then the tensor data,
/// each tensor at a multiple of <see cref="GgufFormat.DefaultAlignment"/>. Tensor data is produced by
/// a callback when the file is written, so a model is streamed out one tensor at a time.
/// </summary>
public sealed class GgufWriter
{
    readonly List<KeyValuePair<string, GgufValue>> _metadata = [];
    readonly List<PendingTensor> _tensors = [];
    readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    readonly HashSet<string> _names = new(StringComparer.Ordinal);

    sealed record PendingTensor(string Name, long[] Ne, GgmlType Type, long Bytes, Action<Stream> Write);

    /// <summary>Adds one metadata pair; keys are unique.</summary>
    public GgufWriter Add(string key, GgufValue value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(value);
        if (!_keys.Add(key)) throw new ArgumentException($"GGUF metadata key '{key}' given twice");
        _metadata.Add(new(key, value));
        return this;
    }

    /// <summary>
    /// Adds a tensor of ggml dims <paramref name="ne"/> (innermost first: a PyTorch (rows, cols)
    /// matrix is ne = {cols, rows}); <paramref name="write"/> must write exactly its byte count.
    /// </summary>
    public GgufWriter AddTensor(string name, long[] ne, GgmlType type, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(write);
        if (!_names.Add(name)) throw new ArgumentException($"GGUF tensor '{name}' given twice");
        if (ne.Length is < 1 or > GgufFormat.MaxDims || ne.Any(d => d < 1)) throw new ArgumentException($"GGUF tensor '{name}': bad dims [{string.Join(", ", ne)}]");
        if (ne[0] % GgufFormat.BlockSize(type) != 0)
            throw new ArgumentException($"GGUF tensor '{name}': its rows of {ne[0]} values are not whole {type} blocks of {GgufFormat.BlockSize(type)}");
        _tensors.Add(new(name, (long[])ne.Clone(), type, GgufFormat.ByteCount(type, ne), write));
        return this;
    }

    /// <summary>Metadata pairs added so far.</summary>
    public int MetadataCount => _metadata.Count;

    /// <summary>Tensors added so far.</summary>
    public int TensorCount => _tensors.Count;

    /// <summary>Writes the file to <paramref name="path"/> atomically (temporary file, then rename).</summary>
    public void Write(string path) => AtomicFile.Write(path, WriteTo);

    /// <summary>Writes the file to <paramref name="stream"/>.</summary>
    public void WriteTo(Stream stream)
    {
        var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFormat.Magic);
        w.Write(GgufFormat.Version);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)(_metadata.Count + (_keys.Contains("general.alignment") ? 0 : 1)));
        foreach (var (key, value) in _metadata) WriteKeyValue(w, key, value);
        int alignment = GgufFormat.DefaultAlignment;
        if (!_keys.Contains("general.alignment")) WriteKeyValue(w, "general.alignment", GgufValue.U32((uint)alignment));
        else alignment = (int)_metadata.First(m => m.Key == "general.alignment").Value.AsUInt64();
        long offset = 0;
        foreach (var t in _tensors)
        {
            WriteString(w, t.Name);
            w.Write((uint)t.Ne.Length);
            foreach (var d in t.Ne) w.Write((ulong)d);
            w.Write((uint)t.Type);
            w.Write((ulong)offset);
            offset = GgufFormat.Align(offset + t.Bytes, alignment);
        }
        w.Flush();
        // The stream may not be seekable: the header's length is counted by writing it to a null stream.
        long position = HeaderLength();
        Pad(stream, GgufFormat.Align(position, alignment) - position);
        foreach (var t in _tensors)
        {
            var counting = new CountingStream(stream);
            t.Write(counting);
            if (counting.Count != t.Bytes)
                throw new InvalidOperationException($"GGUF tensor '{t.Name}': wrote {counting.Count} bytes, expected {t.Bytes}");
            Pad(stream, GgufFormat.Align(t.Bytes, alignment) - t.Bytes);
        }
        stream.Flush();
    }

    long HeaderLength()
    {
        using var counter = new CountingStream(Stream.Null);
        var w = new BinaryWriter(counter, Encoding.UTF8, leaveOpen: true);
        w.Write(0u); w.Write(0u); w.Write(0ul); w.Write(0ul);
        foreach (var (key, value) in _metadata) WriteKeyValue(w, key, value);
        if (!_keys.Contains("general.alignment")) WriteKeyValue(w, "general.alignment", GgufValue.U32(GgufFormat.DefaultAlignment));
        foreach (var t in _tensors)
        {
            WriteString(w, t.Name);
            w.Write(0u);
            foreach (var _ in t.Ne) w.Write(0ul);
            w.Write(0u); w.Write(0ul);
        }
        w.Flush();
        return counter.Count;
    }

    static void Pad(Stream s, long n)
    {
        Span<byte> zeros = stackalloc byte[64];
        zeros.Clear();
        while (n > 0)
        {
            int k = (int)Math.Min(n, zeros.Length);
            s.Write(zeros[..k]);
            n -= k;
        }
    }

    static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    static void WriteKeyValue(BinaryWriter w, string key, GgufValue v)
    {
        WriteString(w, key);
        w.Write((uint)v.Type);
        if (v.Type == GgufValueType.Array)
        {
            w.Write((uint)v.ElementType);
            var items = (Array)v.Value;
            w.Write((ulong)items.Length);
            foreach (var item in items) WriteScalar(w, v.ElementType, item!);
        }
        else WriteScalar(w, v.Type, v.Value);
    }

    static void WriteScalar(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write((byte)value); break;
            case GgufValueType.Int8: w.Write((sbyte)value); break;
            case GgufValueType.UInt16: w.Write((ushort)value); break;
            case GgufValueType.Int16: w.Write((short)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((byte)((bool)value ? 1 : 0)); break;
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt64: w.Write((ulong)value); break;
            case GgufValueType.Int64: w.Write((long)value); break;
            case GgufValueType.Float64: w.Write((double)value); break;
            default: throw new ArgumentException($"GGUF value type {type} cannot be an array element or scalar here");
        }
    }

    /// <summary>Forwards writes and counts the bytes.</summary>
    sealed class CountingStream(Stream inner) : Stream
    {
        public long Count { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            Count += buffer.Length;
        }
    }
}
