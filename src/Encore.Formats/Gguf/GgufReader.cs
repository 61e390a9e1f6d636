using System.Text;

namespace Encore.Formats.Gguf;

/// <summary>One tensor of a GGUF file: ggml dims (innermost first), type, and absolute data offset.</summary>
public sealed record GgufTensorInfo(string Name, long[] Ne, GgmlType Type, long Offset, long ByteCount)
{
    /// <summary>The PyTorch-order shape (outermost first).</summary>
    public long[] Shape => Ne.Reverse().ToArray();
}

/// <summary>
/// Reads a GGUF file's header (versions 2 and 3): metadata, tensor infos and where the data lies.
/// Every count, length and offset is checked against the file size before anything is allocated,
/// and every failure is a <see cref="CheckpointFormatException"/> naming the file. Used to validate
/// what <see cref="GgufWriter"/> writes; tensor data is read on request.
/// </summary>
public sealed class GgufReader
{
    /// <summary>Longest string accepted (keys, tensor names, vocabulary entries).</summary>
    const long MaxStringBytes = 1 << 20;
    /// <summary>Most elements in one metadata array (vocabularies and merges stay far below).</summary>
    const long MaxArrayLength = 1 << 24;

    GgufReader(string path) => Path = path;

    /// <summary>The file read.</summary>
    public string Path { get; }
    /// <summary>The format version.</summary>
    public uint Version { get; private set; }
    /// <summary>Metadata in file order.</summary>
    public IReadOnlyDictionary<string, GgufValue> Metadata => _metadata;
    /// <summary>Metadata keys in file order.</summary>
    public IReadOnlyList<string> Keys => _keys;
    /// <summary>Tensors in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors => _tensors;
    /// <summary>general.alignment, or 32.</summary>
    public int Alignment { get; private set; } = GgufFormat.DefaultAlignment;
    /// <summary>Absolute offset of the data section.</summary>
    public long DataOffset { get; private set; }

    readonly Dictionary<string, GgufValue> _metadata = new(StringComparer.Ordinal);
    readonly List<string> _keys = [];
    readonly List<GgufTensorInfo> _tensors = [];

    /// <summary>The tensor named <paramref name="name"/>, or null.</summary>
    public GgufTensorInfo? Tensor(string name) => _tensors.FirstOrDefault(t => t.Name == name);

    /// <summary>A metadata value, or a clear error when absent.</summary>
    public GgufValue this[string key] => _metadata.TryGetValue(key, out var v) ? v : throw new CheckpointFormatException($"{Path}: no metadata key '{key}'");

    /// <summary>Reads the header of <paramref name="path"/>.</summary>
    public static GgufReader Open(string path)
    {
        var r = new GgufReader(path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        r.ReadHeader(fs);
        return r;
    }

    /// <summary>The raw bytes of one tensor.</summary>
    public byte[] ReadTensorBytes(GgufTensorInfo t)
    {
        if (t.ByteCount > int.MaxValue) throw new CheckpointFormatException($"{Path}: tensor '{t.Name}' is too large to read into one array");
        using var fs = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read);
        fs.Position = t.Offset;
        var bytes = new byte[t.ByteCount];
        fs.ReadExactly(bytes);
        return bytes;
    }

    void ReadHeader(FileStream fs)
    {
        long size = fs.Length;
        var r = new BinaryReader(fs, Encoding.UTF8, leaveOpen: true);
        try
        {
            if (size < 24) throw Fail($"{size} bytes is too short for a GGUF header");
            uint magic = r.ReadUInt32();
            if (magic != GgufFormat.Magic) throw Fail($"not a GGUF file (magic 0x{magic:X8}, expected 0x{GgufFormat.Magic:X8} \"GGUF\")");
            Version = r.ReadUInt32();
            if (Version is not (2 or 3)) throw Fail($"GGUF version {Version} is not supported (2 or 3)");
            ulong tensorCount = r.ReadUInt64(), kvCount = r.ReadUInt64();
            // Every pair and tensor info takes at least 8 + 4 bytes: a count beyond that is damage.
            if (kvCount > (ulong)size / 12 || tensorCount > (ulong)size / 12) throw Fail($"counts ({kvCount} metadata, {tensorCount} tensors) exceed what {size} bytes can hold");
            for (ulong i = 0; i < kvCount; i++)
            {
                string key = ReadString(r, size, "metadata key");
                var type = (GgufValueType)r.ReadUInt32();
                var value = ReadValue(r, size, type, key);
                if (!_metadata.TryAdd(key, value)) throw Fail($"metadata key '{key}' appears twice");
                _keys.Add(key);
            }
            if (_metadata.TryGetValue("general.alignment", out var a))
            {
                if (a.Type != GgufValueType.UInt32 || a.AsUInt64() is 0 or > 1 << 20 || (a.AsUInt64() & (a.AsUInt64() - 1)) != 0)
                    throw Fail($"general.alignment must be a u32 power of two, got {a.Type} {a.Value}");
                Alignment = (int)a.AsUInt64();
            }
            var infos = new List<(string Name, long[] Ne, GgmlType Type, long Offset)>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            for (ulong i = 0; i < tensorCount; i++)
            {
                string name = ReadString(r, size, "tensor name");
                if (!names.Add(name)) throw Fail($"tensor '{name}' appears twice");
                uint dims = r.ReadUInt32();
                if (dims is < 1 or > GgufFormat.MaxDims) throw Fail($"tensor '{name}' has {dims} dims (1 to {GgufFormat.MaxDims})");
                var ne = new long[dims];
                for (int d = 0; d < dims; d++)
                {
                    ulong n = r.ReadUInt64();
                    if (n is 0 or > int.MaxValue) throw Fail($"tensor '{name}' dim {d} is {n}");
                    ne[d] = (long)n;
                }
                var type = (GgmlType)r.ReadUInt32();
                if (!GgufFormat.IsKnown(type)) throw Fail($"tensor '{name}' has ggml type {(uint)type}, which this reader does not support (F32, F16, BF16, Q8_0, Q4_0)");
                if (ne[0] % GgufFormat.BlockSize(type) != 0) throw Fail($"tensor '{name}': ne[0] = {ne[0]} is not a multiple of the {type} block size");
                ulong offset = r.ReadUInt64();
                if (offset > (ulong)size || offset % (ulong)Alignment != 0) throw Fail($"tensor '{name}' offset {offset} is out of range or not aligned to {Alignment}");
                infos.Add((name, ne, type, (long)offset));
            }
            DataOffset = GgufFormat.Align(fs.Position, Alignment);
            foreach (var (name, ne, type, offset) in infos)
            {
                long bytes;
                try { bytes = GgufFormat.ByteCount(type, ne); }
                catch (OverflowException) { throw Fail($"tensor '{name}' is too large"); }
                // Subtracted, not added: offset + bytes can wrap past long.MaxValue and pass a sum check.
                if (DataOffset > size || offset > size - DataOffset || bytes > size - DataOffset - offset)
                    throw Fail($"tensor '{name}' ({bytes} bytes at {offset}) runs past the end of the file ({size} bytes)");
                _tensors.Add(new GgufTensorInfo(name, ne, type, DataOffset + offset, bytes));
            }
        }
        catch (EndOfStreamException)
        {
            throw Fail("the file ends inside its header");
        }
    }

    GgufValue ReadValue(BinaryReader r, long size, GgufValueType type, string key)
    {
        if (type != GgufValueType.Array) return new GgufValue(type, ReadScalar(r, size, type, key));
        var element = (GgufValueType)r.ReadUInt32();
        ulong count = r.ReadUInt64();
        if (element == GgufValueType.Array) throw Fail($"'{key}': nested arrays are not supported");
        if (count > MaxArrayLength || count > (ulong)size) throw Fail($"'{key}': array of {count} elements exceeds the limit");
        Array items = element switch
        {
            GgufValueType.UInt8 => new byte[count],
            GgufValueType.Int8 => new sbyte[count],
            GgufValueType.UInt16 => new ushort[count],
            GgufValueType.Int16 => new short[count],
            GgufValueType.UInt32 => new uint[count],
            GgufValueType.Int32 => new int[count],
            GgufValueType.Float32 => new float[count],
            GgufValueType.Bool => new bool[count],
            GgufValueType.String => new string[count],
            GgufValueType.UInt64 => new ulong[count],
            GgufValueType.Int64 => new long[count],
            GgufValueType.Float64 => new double[count],
            _ => throw Fail($"'{key}': unknown array element type {(uint)element}"),
        };
        for (int i = 0; i < (int)count; i++) items.SetValue(ReadScalar(r, size, element, key), i);
        return new GgufValue(GgufValueType.Array, items, element);
    }

    object ReadScalar(BinaryReader r, long size, GgufValueType type, string key) => type switch
    {
        GgufValueType.UInt8 => r.ReadByte(),
        GgufValueType.Int8 => r.ReadSByte(),
        GgufValueType.UInt16 => r.ReadUInt16(),
        GgufValueType.Int16 => r.ReadInt16(),
        GgufValueType.UInt32 => r.ReadUInt32(),
        GgufValueType.Int32 => r.ReadInt32(),
        GgufValueType.Float32 => r.ReadSingle(),
        GgufValueType.Bool => r.ReadByte() switch
        {
            0 => false,
            1 => true,
            var b => throw Fail($"'{key}': bool byte {b} is neither 0 nor 1"),
        },
        GgufValueType.String => ReadString(r, size, $"value of '{key}'"),
        GgufValueType.UInt64 => r.ReadUInt64(),
        GgufValueType.Int64 => r.ReadInt64(),
        GgufValueType.Float64 => r.ReadDouble(),
        _ => throw Fail($"'{key}': unknown value type {(uint)type}"),
    };

    string ReadString(BinaryReader r, long size, string what)
    {
        ulong n = r.ReadUInt64();
        if (n > MaxStringBytes || (long)n > size - r.BaseStream.Position) throw Fail($"{what}: string of {n} bytes is too long or runs past the end");
        var bytes = r.ReadBytes((int)n);
        if (bytes.Length != (int)n) throw new EndOfStreamException();
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw Fail($"{what}: not valid UTF-8");
        return Encoding.UTF8.GetString(bytes);
    }

    CheckpointFormatException Fail(string problem) => new($"{Path}: {problem}");
}
