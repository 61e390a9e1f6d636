// A reader for the parts of an ONNX model (onnx/onnx.proto, IR version 3 and later) that hold
// weights: ModelProto → GraphProto → initializers (TensorProto) and the nodes (NodeProto) that use
// them, with the attributes a weight importer needs to follow the graph. The file is memory-mapped and
// walked with ProtobufReader; tensor payloads are located, not copied, until one is read. Every length,
// offset, count and shape is checked against the message holding it and the file's size, so a
// truncated or hostile file fails with a CheckpointFormatException naming the file and what is wrong.
// Weights stored as external data (files of 2 GiB and more) are refused.
using System.Buffers.Binary;
using Encore.Tensors;
using Encore.Tensors.Storage;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Formats.Onnx;

/// <summary>An ONNX model file opened for its weights and graph structure (see the file header).</summary>
public sealed unsafe class OnnxModel : IDisposable
{
    /// <summary>Most nodes, initializers, or values per list accepted (published models have a few thousand).</summary>
    public const int MaxCount = 1 << 20;
    /// <summary>Longest name accepted (bytes).</summary>
    public const int MaxNameBytes = 4096;
    /// <summary>Highest tensor rank accepted.</summary>
    public const int MaxRank = 8;
    /// <summary>Most values of a repeated field written unpacked (one field per value) that are collected.</summary>
    const int MaxUnpacked = 1 << 16;

    readonly MappedStorage _storage;

    OnnxModel(string path, MappedStorage storage)
    {
        Path = path;
        _storage = storage;
    }

    /// <summary>The file.</summary>
    public string Path { get; }
    /// <summary>ModelProto.ir_version.</summary>
    public long IrVersion { get; private set; }
    /// <summary>ModelProto.producer_name (e.g. "pytorch").</summary>
    public string ProducerName { get; private set; } = "";
    /// <summary>ModelProto.producer_version.</summary>
    public string ProducerVersion { get; private set; } = "";
    /// <summary>The default-domain opset version (0 when not given).</summary>
    public long OpsetVersion { get; private set; }
    /// <summary>The graph's initializers, in file order.</summary>
    public IReadOnlyList<OnnxTensor> Initializers => _initializers;
    /// <summary>The graph's nodes, in file (topological) order.</summary>
    public IReadOnlyList<OnnxNode> Nodes => _nodes;
    /// <summary>The graph's input names.</summary>
    public IReadOnlyList<string> Inputs => _inputs;
    /// <summary>The graph's output names.</summary>
    public IReadOnlyList<string> Outputs => _outputs;

    readonly List<OnnxTensor> _initializers = [];
    readonly List<OnnxNode> _nodes = [];
    readonly List<string> _inputs = [];
    readonly List<string> _outputs = [];

    ReadOnlySpan<byte> Data => new(_storage.Pointer, (int)_storage.ByteLength);

    /// <summary>Maps and parses <paramref name="path"/>; throws <see cref="CheckpointFormatException"/> naming it.</summary>
    public static OnnxModel Open(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"{path}: no such file", path);
        // A protobuf message is at most 2 GiB; larger models keep their weights as external data.
        if (info.Length > int.MaxValue)
            throw new CheckpointFormatException($"{path}: {info.Length} bytes; an ONNX file holds at most 2 GiB, and weights stored as external data are not read");
        var storage = MappedStorage.Open(path);
        var model = new OnnxModel(path, storage);
        try
        {
            if (storage.ByteLength > int.MaxValue) throw new CheckpointFormatException($"{path}: grew past 2 GiB while being opened");
            model.Parse();
            return model;
        }
        catch (FormatException e)
        {
            model.Dispose();
            throw new CheckpointFormatException($"{path}: not a valid ONNX model ({e.Message})", e);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    void Parse()
    {
        var data = Data;
        var r = new ProtobufReader(data, 0, data.Length);
        bool graph = false;
        while (r.More)
        {
            var (field, wire) = r.Tag();
            switch (field, wire)
            {
                case (1, 0): IrVersion = r.Varint(); break;
                case (2, 2): ProducerName = Name(ref r); break;
                case (3, 2): ProducerVersion = Name(ref r); break;
                case (7, 2):
                    if (graph) throw new FormatException("the model holds two graphs");
                    var (go, gl) = r.Bytes();
                    ParseGraph(data, go, gl);
                    graph = true;
                    break;
                case (8, 2):
                    var (oo, ol) = r.Bytes();
                    ParseOpset(data, oo, ol);
                    break;
                default: r.Skip(wire); break;
            }
        }
        if (!graph) throw new FormatException("no graph (is this an ONNX model file?)");
    }

    void ParseOpset(ReadOnlySpan<byte> data, int offset, int length)
    {
        var r = new ProtobufReader(data, offset, length);
        string domain = "";
        long version = 0;
        while (r.More)
        {
            var (field, wire) = r.Tag();
            if (field == 1 && wire == 2) domain = Name(ref r);
            else if (field == 2 && wire == 0) version = r.Varint();
            else r.Skip(wire);
        }
        if (domain is "" or "ai.onnx") OpsetVersion = version;
    }

    void ParseGraph(ReadOnlySpan<byte> data, int offset, int length)
    {
        var r = new ProtobufReader(data, offset, length);
        while (r.More)
        {
            var (field, wire) = r.Tag();
            switch (field, wire)
            {
                case (1, 2):
                    var (no, nl) = r.Bytes();
                    Add(_nodes, ParseNode(data, no, nl), "nodes");
                    break;
                case (5, 2):
                    var (io, il) = r.Bytes();
                    Add(_initializers, ParseTensor(data, io, il, null), "initializers");
                    break;
                case (11, 2) or (12, 2):
                    var (vo, vl) = r.Bytes();
                    Add(field == 11 ? _inputs : _outputs, ValueInfoName(data, vo, vl), "graph inputs or outputs");
                    break;
                case (15, 2):
                    throw new FormatException("sparse initializers are not supported");
                default: r.Skip(wire); break;
            }
        }
    }

    static void Add<T>(List<T> list, T item, string what)
    {
        if (list.Count >= MaxCount) throw new FormatException($"more than {MaxCount} {what}");
        list.Add(item);
    }

    static string ValueInfoName(ReadOnlySpan<byte> data, int offset, int length)
    {
        var r = new ProtobufReader(data, offset, length);
        string name = "";
        while (r.More)
        {
            var (field, wire) = r.Tag();
            if (field == 1 && wire == 2) name = Name(ref r);
            else r.Skip(wire);
        }
        return name;
    }

    static OnnxNode ParseNode(ReadOnlySpan<byte> data, int offset, int length)
    {
        var r = new ProtobufReader(data, offset, length);
        var inputs = new List<string>();
        var outputs = new List<string>();
        var attributes = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        string name = "", op = "";
        while (r.More)
        {
            var (field, wire) = r.Tag();
            switch (field, wire)
            {
                case (1, 2): Add(inputs, Name(ref r), "node inputs"); break;
                case (2, 2): Add(outputs, Name(ref r), "node outputs"); break;
                case (3, 2): name = Name(ref r); break;
                case (4, 2): op = Name(ref r); break;
                case (5, 2):
                    var (ao, al) = r.Bytes();
                    var a = ParseAttribute(data, ao, al);
                    if (attributes.Count >= MaxCount) throw new FormatException($"more than {MaxCount} attributes on one node");
                    attributes[a.Name] = a;
                    break;
                default: r.Skip(wire); break;
            }
        }
        if (op.Length == 0) throw new FormatException($"node '{name}' has no op_type");
        return new OnnxNode { Name = name, OpType = op, Inputs = [.. inputs], Outputs = [.. outputs], Attributes = attributes };
    }

    static OnnxAttribute ParseAttribute(ReadOnlySpan<byte> data, int offset, int length)
    {
        var r = new ProtobufReader(data, offset, length);
        string name = "";
        long? i = null;
        float? f = null;
        string? s = null;
        List<long>? ints = null;
        (int Offset, int Length)? tensor = null;
        while (r.More)
        {
            var (field, wire) = r.Tag();
            switch (field, wire)
            {
                case (1, 2): name = Name(ref r); break;
                case (2, 5): f = r.Float(); break;
                case (3, 0): i = r.Varint(); break;
                case (4, 2): s = Name(ref r); break;
                case (5, 2): tensor = r.Bytes(); break;
                case (8, 0):
                    ints ??= [];
                    if (ints.Count >= MaxUnpacked) throw new FormatException($"an attribute holds more than {MaxUnpacked} integers");
                    ints.Add(r.Varint());
                    break;
                case (8, 2):
                    var (po, pl) = r.Bytes();
                    ints ??= [];
                    ReadPackedVarints(data, po, pl, ints);
                    break;
                default: r.Skip(wire); break;
            }
        }
        // The tensor is parsed once the name is known (it names a Constant's value after its output).
        var t = tensor is { } span ? ParseTensor(data, span.Offset, span.Length, name) : null;
        return new OnnxAttribute { Name = name, Int = i, Float = f, String = s, Ints = ints?.ToArray(), Tensor = t };
    }

    static void ReadPackedVarints(ReadOnlySpan<byte> data, int offset, int length, List<long> into)
    {
        var r = new ProtobufReader(data, offset, length);
        while (r.More)
        {
            if (into.Count >= MaxUnpacked) throw new FormatException($"a list holds more than {MaxUnpacked} integers");
            into.Add(r.Varint());
        }
    }

    static OnnxTensor ParseTensor(ReadOnlySpan<byte> data, int offset, int length, string? fallbackName)
    {
        var r = new ProtobufReader(data, offset, length);
        var dims = new List<long>();
        int dataType = 0;
        string name = "";
        (int Field, int Offset, int Length) payload = (0, 0, 0);
        int unpackedField = 0;
        List<long>? unpacked = null;
        bool external = false;
        void Unpacked(long value, int field)
        {
            if (unpackedField != 0 && unpackedField != field) throw new FormatException($"tensor '{name}' stores its values in two fields");
            unpackedField = field;
            unpacked ??= [];
            if (unpacked.Count >= MaxUnpacked) throw new FormatException($"tensor '{name}' has more than {MaxUnpacked} unpacked values");
            unpacked.Add(value);
        }
        while (r.More)
        {
            var (field, wire) = r.Tag();
            switch (field, wire)
            {
                case (1, 0):
                    if (dims.Count >= MaxRank) throw new FormatException($"a tensor has more than {MaxRank} dimensions");
                    dims.Add(r.Varint());
                    break;
                case (1, 2):
                    var (dO, dL) = r.Bytes();
                    var dr = new ProtobufReader(data, dO, dL);
                    while (dr.More)
                    {
                        if (dims.Count >= MaxRank) throw new FormatException($"a tensor has more than {MaxRank} dimensions");
                        dims.Add(dr.Varint());
                    }
                    break;
                case (2, 0): dataType = r.Int32(); break;
                case (8, 2): name = Name(ref r); break;
                case (9, 2) or (4, 2) or (5, 2) or (7, 2) or (10, 2):
                    var (po, pl) = r.Bytes();
                    if (payload.Field != 0) throw new FormatException($"tensor '{name}' stores its values in two fields");
                    payload = (field, po, pl);
                    break;
                case (4, 5): Unpacked(BitConverter.SingleToInt32Bits(r.Float()), 4); break;
                case (5, 0) or (7, 0): Unpacked(r.Varint(), field); break;
                case (13, 2): external = true; r.Skip(wire); break;
                case (14, 0): external |= r.Varint() == 1; break;
                default: r.Skip(wire); break;
            }
        }
        if (payload.Field != 0 && unpackedField != 0) throw new FormatException($"tensor '{name}' stores its values in two fields");
        if (unpackedField != 0) payload = (unpackedField, 0, 0);
        if (name.Length == 0) name = fallbackName ?? "";
        if (external) throw new FormatException($"tensor '{name}' is stored as external data, which is not read");
        long elements = 1;
        foreach (long d in dims)
        {
            if (d < 0 || d > int.MaxValue) throw new FormatException($"tensor '{name}' has dimension {d}");
            elements = d == 0 ? 0 : elements > long.MaxValue / d ? throw new FormatException($"tensor '{name}' has too many elements") : elements * d;
        }
        var t = new OnnxTensor
        {
            Name = name, Dims = [.. dims], DataType = dataType, Elements = elements,
            PayloadField = payload.Field, PayloadOffset = payload.Offset, PayloadLength = payload.Length,
            Unpacked = unpacked?.ToArray(),
        };
        CheckPayload(data, t);
        return t;
    }

    // The payload must hold exactly the elements the shape says, in a field that fits the data type.
    static void CheckPayload(ReadOnlySpan<byte> data, OnnxTensor t)
    {
        if (t.PayloadField == 0)
        {
            if (t.Elements != 0) throw new FormatException($"tensor '{t.Name}' ({t.Describe()}) has no values");
            return;
        }
        bool fits = (OnnxDataType)t.DataType switch
        {
            OnnxDataType.Float => t.PayloadField is 9 or 4,
            OnnxDataType.Int32 or OnnxDataType.Float16 or OnnxDataType.BFloat16 => t.PayloadField is 9 or 5,
            OnnxDataType.Int64 => t.PayloadField is 9 or 7,
            OnnxDataType.Double => t.PayloadField is 9 or 10,
            _ => false,
        };
        if (!fits)
        {
            string field = t.PayloadField switch { 9 => "raw_data", 4 => "float_data", 5 => "int32_data", 7 => "int64_data", _ => "double_data" };
            throw new FormatException($"tensor '{t.Name}' has data type {TypeName(t.DataType)} in {field}, which is not read");
        }
        long count;
        if (t.Unpacked is { } u) count = u.Length;
        else if (t.PayloadField is 9 or 4 or 10)
        {
            int size = t.PayloadField switch { 4 => 4, 10 => 8, _ => ElementBytes(t.DataType) };
            if (t.PayloadLength % size != 0)
                throw new FormatException($"tensor '{t.Name}' ({t.Describe()}) has {t.PayloadLength} bytes of values, not a whole number of {size}-byte elements");
            count = t.PayloadLength / size;
        }
        else
        {
            // Varints: counted (bounded by the field's length) before anyone allocates for them.
            count = 0;
            var r = new ProtobufReader(data, t.PayloadOffset, t.PayloadLength);
            while (r.More)
            {
                r.Varint();
                count++;
            }
        }
        if (count != t.Elements) throw new FormatException($"tensor '{t.Name}' ({t.Describe()}) holds {count} values");
    }

    static string Name(ref ProtobufReader r) => r.String(MaxNameBytes);

    /// <summary>Bytes per element of a data type Encore reads, or 0.</summary>
    internal static int ElementBytes(int dataType) => (OnnxDataType)dataType switch
    {
        OnnxDataType.Float or OnnxDataType.Int32 => 4,
        OnnxDataType.Int64 or OnnxDataType.Double => 8,
        OnnxDataType.Float16 or OnnxDataType.BFloat16 => 2,
        _ => 0,
    };

    /// <summary>The ONNX name of a data type, for messages.</summary>
    public static string TypeName(int dataType) => dataType switch
    {
        1 => "float32", 2 => "uint8", 3 => "int8", 4 => "uint16", 5 => "int16", 6 => "int32", 7 => "int64", 8 => "string",
        9 => "bool", 10 => "float16", 11 => "float64", 12 => "uint32", 13 => "uint64", 16 => "bfloat16",
        _ => $"data type {dataType}",
    };

    /// <summary>True for float32, float16 and bfloat16 tensors (weights).</summary>
    public static bool IsFloating(OnnxTensor t) => t.DataType is (int)OnnxDataType.Float or (int)OnnxDataType.Float16 or (int)OnnxDataType.BFloat16;

    /// <summary>
    /// A copy of weight tensor <paramref name="t"/> (float32, float16 or bfloat16) as an Encore tensor of
    /// the same shape and type; dispose it.
    /// </summary>
    public Tensor ReadTensor(OnnxTensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (!IsFloating(t)) throw new CheckpointFormatException($"{Path}: tensor '{t.Name}' is {t.Describe()}, not a float32, float16 or bfloat16 weight");
        if (t.Dims.Length == 0 || t.Elements > int.MaxValue) throw new CheckpointFormatException($"{Path}: tensor '{t.Name}' ({t.Describe()}) is not a weight Encore reads");
        var dtype = t.DataType switch { (int)OnnxDataType.Float => DType.F32, (int)OnnxDataType.Float16 => DType.F16, _ => DType.BF16 };
        int n = (int)t.Elements;
        switch (t.PayloadField)
        {
            case 9 or 4 when t.Unpacked is null:
                // raw_data and packed float_data are the same little-endian bytes.
                return Tensor.FromSpan<byte>(dtype, Data.Slice(t.PayloadOffset, t.PayloadLength), t.Shape);
            default:
                // int32_data holds one 16-bit value per element (float16, bfloat16); float_data unpacked holds float bits.
                var values = Longs(t);
                if (dtype == DType.F32)
                {
                    var f = new float[n];
                    for (int i = 0; i < n; i++) f[i] = BitConverter.Int32BitsToSingle((int)values[i]);
                    return Tensor.FromSpan<float>(DType.F32, f, t.Shape);
                }
                var h = new ushort[n];
                for (int i = 0; i < n; i++) h[i] = (ushort)values[i];
                return Tensor.FromSpan<ushort>(dtype, h, t.Shape);
        }
    }

    /// <summary>
    /// The values of integer tensor <paramref name="t"/> (int64 or int32) when it holds at most
    /// <paramref name="max"/> of them (shape constants and the like), else null.
    /// </summary>
    public long[]? ReadIntegers(OnnxTensor t, int max = 64)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (t.DataType is not ((int)OnnxDataType.Int64 or (int)OnnxDataType.Int32) || t.Elements > max) return null;
        if (t.PayloadField == 9)
        {
            var raw = Data.Slice(t.PayloadOffset, t.PayloadLength);
            var result = new long[t.Elements];
            for (int i = 0; i < result.Length; i++)
                result[i] = t.DataType == (int)OnnxDataType.Int64 ? BinaryPrimitives.ReadInt64LittleEndian(raw[(i * 8)..]) : BinaryPrimitives.ReadInt32LittleEndian(raw[(i * 4)..]);
            return result;
        }
        return Longs(t);
    }

    /// <summary>The value of a one-element float32 or float64 tensor <paramref name="t"/> (a scalar constant), else null.</summary>
    public float? ReadScalar(OnnxTensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (t.Elements != 1) return null;
        if (t.Unpacked is { } u) return t.DataType == (int)OnnxDataType.Float ? BitConverter.Int32BitsToSingle((int)u[0]) : null;
        return (OnnxDataType)t.DataType switch
        {
            OnnxDataType.Float when t.PayloadField is 9 or 4 => BinaryPrimitives.ReadSingleLittleEndian(Data.Slice(t.PayloadOffset, 4)),
            OnnxDataType.Double when t.PayloadField is 9 or 10 => (float)BinaryPrimitives.ReadDoubleLittleEndian(Data.Slice(t.PayloadOffset, 8)),
            _ => null,
        };
    }

    long[] Longs(OnnxTensor t)
    {
        if (t.Unpacked is { } u) return u;
        var r = new ProtobufReader(Data, t.PayloadOffset, t.PayloadLength);
        var result = new long[t.Elements];
        for (int i = 0; i < result.Length; i++) result[i] = r.Varint();
        return result;
    }

    /// <summary>Unmaps the file.</summary>
    public void Dispose() => _storage.Release();
}
