// The ONNX values the reader hands out (onnx/onnx.proto): TensorProto, NodeProto and AttributeProto, as
// far as weight import needs them. Tensor values stay in the mapped file until OnnxModel reads them.
namespace Encore.Formats.Onnx;

/// <summary>TensorProto.DataType values Encore reads.</summary>
public enum OnnxDataType
{
    /// <summary>float32.</summary>
    Float = 1,
    /// <summary>int32.</summary>
    Int32 = 6,
    /// <summary>int64.</summary>
    Int64 = 7,
    /// <summary>float16.</summary>
    Float16 = 10,
    /// <summary>float64.</summary>
    Double = 11,
    /// <summary>bfloat16.</summary>
    BFloat16 = 16,
}

/// <summary>
/// A TensorProto: its name, shape and element type, and where its values lie in the file (raw_data,
/// or one of the packed typed fields). Values are read on demand by <see cref="OnnxModel"/>.
/// </summary>
public sealed record OnnxTensor
{
    /// <summary>The tensor's name (an initializer's name, or the output a Constant node defines).</summary>
    public required string Name { get; init; }
    /// <summary>Dimensions (empty for a scalar).</summary>
    public required long[] Dims { get; init; }
    /// <summary>TensorProto.data_type as stored (see <see cref="OnnxDataType"/>).</summary>
    public required int DataType { get; init; }
    /// <summary>Number of elements (the product of <see cref="Dims"/>).</summary>
    public required long Elements { get; init; }
    internal int PayloadField { get; init; }      // 9 raw_data, 4 float_data, 5 int32_data, 7 int64_data, 10 double_data; 0 none
    internal int PayloadOffset { get; init; }
    internal int PayloadLength { get; init; }
    internal long[]? Unpacked { get; init; }      // repeated scalars written one field each (unpacked), as read

    /// <summary>The shape in Encore's int dimensions.</summary>
    public int[] Shape => Dims.Select(d => (int)d).ToArray();

    /// <summary>"float32 [384, 384]"-style description for messages.</summary>
    public string Describe() => $"{OnnxModel.TypeName(DataType)} [{string.Join(", ", Dims)}]";
}

/// <summary>A NodeProto: operator, inputs and outputs by name, and its attributes.</summary>
public sealed record OnnxNode
{
    /// <summary>The node's name (may be empty).</summary>
    public required string Name { get; init; }
    /// <summary>The operator, e.g. "MatMul".</summary>
    public required string OpType { get; init; }
    /// <summary>Input value names; an empty name is an omitted optional input.</summary>
    public required string[] Inputs { get; init; }
    /// <summary>Output value names.</summary>
    public required string[] Outputs { get; init; }
    /// <summary>Attributes by name.</summary>
    public required IReadOnlyDictionary<string, OnnxAttribute> Attributes { get; init; }

    /// <summary>The integer attribute <paramref name="name"/>, or <paramref name="fallback"/>.</summary>
    public long Int(string name, long fallback) => Attributes.TryGetValue(name, out var a) && a.Int is long v ? v : fallback;

    /// <summary>How messages name the node: its name, else its operator and first output.</summary>
    public string Label => Name.Length > 0 ? Name : $"{OpType} → {(Outputs.Length > 0 ? Outputs[0] : "?")}";
}

/// <summary>An AttributeProto, as far as weight import needs it: one int, float, int list or tensor.</summary>
public sealed record OnnxAttribute
{
    /// <summary>The attribute's name.</summary>
    public required string Name { get; init; }
    /// <summary>AttributeProto.i.</summary>
    public long? Int { get; init; }
    /// <summary>AttributeProto.f.</summary>
    public float? Float { get; init; }
    /// <summary>AttributeProto.ints.</summary>
    public long[]? Ints { get; init; }
    /// <summary>AttributeProto.s as UTF-8 text.</summary>
    public string? String { get; init; }
    /// <summary>AttributeProto.t (a Constant node's value).</summary>
    public OnnxTensor? Tensor { get; init; }
}
