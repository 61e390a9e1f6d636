// GGUF, the single-file model format of ggml / llama.cpp (ggml/docs/gguf.md, version 3):
//   u32 magic "GGUF" (bytes 47 47 55 46), u32 version, u64 tensor count, u64 metadata count,
//   metadata: (string key, u32 value type, value)…, tensor infos: (string name, u32 n_dims,
//   u64 ne[n_dims] innermost first, u32 ggml type, u64 offset into the data section)…,
//   zero padding to general.alignment (default 32), then the tensor data, each tensor at an
//   aligned offset. Strings are u64 length + UTF-8 bytes; everything is little-endian.
namespace Encore.Formats.Gguf;

/// <summary>GGUF metadata value types (gguf.md, <c>gguf_metadata_value_type</c>).</summary>
public enum GgufValueType : uint
{
    /// <summary>u8.</summary>
    UInt8 = 0,
    /// <summary>i8.</summary>
    Int8 = 1,
    /// <summary>u16.</summary>
    UInt16 = 2,
    /// <summary>i16.</summary>
    Int16 = 3,
    /// <summary>u32.</summary>
    UInt32 = 4,
    /// <summary>i32.</summary>
    Int32 = 5,
    /// <summary>binary32.</summary>
    Float32 = 6,
    /// <summary>One byte, 0 or 1.</summary>
    Bool = 7,
    /// <summary>u64 length + UTF-8 bytes.</summary>
    String = 8,
    /// <summary>u32 element type, u64 count, elements.</summary>
    Array = 9,
    /// <summary>u64.</summary>
    UInt64 = 10,
    /// <summary>i64.</summary>
    Int64 = 11,
    /// <summary>binary64.</summary>
    Float64 = 12,
}

/// <summary>The ggml tensor types Encore writes and reads (ggml.h <c>ggml_type</c>).</summary>
public enum GgmlType : uint
{
    /// <summary>binary32.</summary>
    F32 = 0,
    /// <summary>binary16.</summary>
    F16 = 1,
    /// <summary>Blocks of 32: a binary16 scale and 16 bytes of 4-bit quants, value = d·(q − 8) (18 bytes).</summary>
    Q4_0 = 2,
    /// <summary>Blocks of 32: a binary16 scale and 32 signed bytes (34 bytes).</summary>
    Q8_0 = 8,
    /// <summary>bfloat16.</summary>
    BF16 = 30,
}

/// <summary>
/// A metadata value: <see cref="Value"/> is a <c>byte, sbyte, ushort, short, uint, int, float, bool,
/// string, ulong, long, double</c>, or for <see cref="GgufValueType.Array"/> an array of those
/// (<c>string[]</c>, <c>float[]</c>, <c>int[]</c>, …) with its <see cref="ElementType"/>.
/// </summary>
public sealed record GgufValue(GgufValueType Type, object Value, GgufValueType ElementType = GgufValueType.UInt8)
{
    /// <summary>A u32 value.</summary>
    public static GgufValue U32(uint v) => new(GgufValueType.UInt32, v);
    /// <summary>An i32 value.</summary>
    public static GgufValue I32(int v) => new(GgufValueType.Int32, v);
    /// <summary>An f32 value.</summary>
    public static GgufValue F32(float v) => new(GgufValueType.Float32, v);
    /// <summary>A bool value.</summary>
    public static GgufValue Bool(bool v) => new(GgufValueType.Bool, v);
    /// <summary>A string value.</summary>
    public static GgufValue Str(string v) => new(GgufValueType.String, v);
    /// <summary>An array of strings.</summary>
    public static GgufValue Strings(string[] v) => new(GgufValueType.Array, v, GgufValueType.String);
    /// <summary>An array of f32.</summary>
    public static GgufValue Floats(float[] v) => new(GgufValueType.Array, v, GgufValueType.Float32);
    /// <summary>An array of i32.</summary>
    public static GgufValue Ints(int[] v) => new(GgufValueType.Array, v, GgufValueType.Int32);

    /// <summary>The value as an unsigned integer (any integer type); throws for others.</summary>
    public ulong AsUInt64() => Value switch
    {
        byte b => b,
        ushort s => s,
        uint u => u,
        ulong l => l,
        sbyte sb when sb >= 0 => (ulong)sb,
        short sh when sh >= 0 => (ulong)sh,
        int i when i >= 0 => (ulong)i,
        long l when l >= 0 => (ulong)l,
        _ => throw new InvalidOperationException($"GGUF value {Type} {Value} is not a non-negative integer"),
    };
}

/// <summary>Facts of the format shared by the writer and the reader.</summary>
public static class GgufFormat
{
    /// <summary>"GGUF" read as a little-endian u32.</summary>
    public const uint Magic = 0x46554747;
    /// <summary>The version written.</summary>
    public const uint Version = 3;
    /// <summary>general.alignment's default, and the alignment written.</summary>
    public const int DefaultAlignment = 32;
    /// <summary>Most dimensions a ggml tensor has (GGML_MAX_DIMS).</summary>
    public const int MaxDims = 4;

    /// <summary>Values per block of a type.</summary>
    public static int BlockSize(GgmlType t) => t is GgmlType.Q8_0 or GgmlType.Q4_0 ? 32 : 1;

    /// <summary>Bytes per block of a type.</summary>
    public static int BlockBytes(GgmlType t) => t switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 or GgmlType.BF16 => 2,
        GgmlType.Q8_0 => 34,
        GgmlType.Q4_0 => 18,
        _ => throw new ArgumentOutOfRangeException(nameof(t), $"ggml type {(uint)t} is not supported"),
    };

    /// <summary>True for the types this code reads and writes.</summary>
    public static bool IsKnown(GgmlType t) => t is GgmlType.F32 or GgmlType.F16 or GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.BF16;

    /// <summary>Bytes of a tensor of <paramref name="t"/> with dims <paramref name="ne"/> (ne[0] a multiple of the block size).</summary>
    public static long ByteCount(GgmlType t, ReadOnlySpan<long> ne)
    {
        long n = 1;
        foreach (var d in ne) n = checked(n * d);
        return checked(n / BlockSize(t) * BlockBytes(t));
    }

    /// <summary><paramref name="x"/> rounded up to a multiple of <paramref name="alignment"/>.</summary>
    public static long Align(long x, int alignment) => (x + alignment - 1) / alignment * alignment;

    /// <summary>
    /// llama_ftype of a whole file (llama.h): what general.file_type says the matrices are.
    /// </summary>
    public static uint FileType(GgmlType matrices) => matrices switch
    {
        GgmlType.F32 => 0,   // LLAMA_FTYPE_ALL_F32
        GgmlType.F16 => 1,   // LLAMA_FTYPE_MOSTLY_F16
        GgmlType.Q4_0 => 2,  // LLAMA_FTYPE_MOSTLY_Q4_0
        GgmlType.Q8_0 => 7,  // LLAMA_FTYPE_MOSTLY_Q8_0
        GgmlType.BF16 => 32, // LLAMA_FTYPE_MOSTLY_BF16
        _ => throw new ArgumentOutOfRangeException(nameof(matrices)),
    };
}
