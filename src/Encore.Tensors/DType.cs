namespace Encore.Tensors;

/// <summary>Element types a <see cref="Tensor"/> can hold.</summary>
public enum DType
{
    /// <summary>IEEE-754 binary32.</summary>
    F32,
    /// <summary>bfloat16: the upper 16 bits of a binary32 (8-bit exponent, 7-bit mantissa).</summary>
    BF16,
    /// <summary>IEEE-754 binary16.</summary>
    F16,
    /// <summary>32-bit signed integer (token ids, positions, masks).</summary>
    I32,
    /// <summary>
    /// ggml's Q8_0: blocks of 32 values stored as one binary16 scale d followed by 32 signed bytes q,
    /// value = d·q. 34 bytes per block; the innermost dimension must be a multiple of 32.
    /// </summary>
    Q8_0,
    /// <summary>
    /// ggml's Q4_0: blocks of 32 values stored as one binary16 scale d followed by 16 bytes; byte j holds
    /// value j in its low nibble and value j + 16 in its high nibble, each an unsigned q in [0, 15] with
    /// value = d·(q − 8). 18 bytes per block; the innermost dimension must be a multiple of 32.
    /// </summary>
    Q4_0,
    /// <summary>
    /// Q4_0 regrouped for 512-bit kernels: the same blocks, eight at a time (256 values, 144 bytes), with the quant
    /// bytes of the eight first and their eight binary16 scales after them. In-memory only (checkpoints and GGUF
    /// files hold Q4_0); see <see cref="Numerics.Q4R8"/> for the byte order. The innermost dimension must be a
    /// multiple of 256.
    /// </summary>
    Q4_0R8,
}

/// <summary>Sizes and names of <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>Values per Q8_0 block.</summary>
    public const int Q8BlockSize = 32;

    /// <summary>Bytes per Q8_0 block: a binary16 scale and 32 int8 quants.</summary>
    public const int Q8BlockBytes = 2 + Q8BlockSize;

    /// <summary>Values per Q4_0 block.</summary>
    public const int Q4BlockSize = 32;

    /// <summary>Bytes per Q4_0 block: a binary16 scale and 16 bytes of two 4-bit quants each.</summary>
    public const int Q4BlockBytes = 2 + Q4BlockSize / 2;

    /// <summary>Q4_0 blocks per group of <see cref="DType.Q4_0R8"/>.</summary>
    public const int Q4R8Blocks = 8;

    /// <summary>Values per group of <see cref="DType.Q4_0R8"/>.</summary>
    public const int Q4R8GroupSize = Q4R8Blocks * Q4BlockSize;

    /// <summary>Bytes per group of <see cref="DType.Q4_0R8"/> (eight Q4_0 blocks' worth).</summary>
    public const int Q4R8GroupBytes = Q4R8Blocks * Q4BlockBytes;

    /// <summary>True for dtypes stored in blocks rather than one element at a time.</summary>
    public static bool IsBlocked(this DType t) => t is DType.Q8_0 or DType.Q4_0 or DType.Q4_0R8;

    /// <summary>Values that share one storage unit (1, or the block size).</summary>
    public static int BlockSize(this DType t) => t switch { DType.Q8_0 => Q8BlockSize, DType.Q4_0 => Q4BlockSize, DType.Q4_0R8 => Q4R8GroupSize, _ => 1 };

    /// <summary>Bytes of one storage unit (an element, or a block).</summary>
    public static int UnitBytes(this DType t) => t switch
    {
        DType.F32 => 4,
        DType.I32 => 4,
        DType.BF16 => 2,
        DType.F16 => 2,
        DType.Q8_0 => Q8BlockBytes,
        DType.Q4_0 => Q4BlockBytes,
        DType.Q4_0R8 => Q4R8GroupBytes,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown dtype"),
    };

    /// <summary>Bytes needed for <paramref name="count"/> values (count must be whole blocks for a blocked dtype).</summary>
    public static long ByteCount(this DType t, long count)
    {
        int bs = t.BlockSize();
        if (count % bs != 0)
            throw new ArgumentException($"{t} holds whole blocks of {bs} values; {count} is not a multiple", nameof(count));
        return count / bs * t.UnitBytes();
    }

    /// <summary>The lower-case name used in checkpoints and on the command line.</summary>
    public static string Name(this DType t) => t switch
    {
        DType.F32 => "f32",
        DType.BF16 => "bf16",
        DType.F16 => "f16",
        DType.I32 => "i32",
        DType.Q8_0 => "q8_0",
        DType.Q4_0 => "q4_0",
        DType.Q4_0R8 => "q4_0r8",
        _ => t.ToString(),
    };

    /// <summary>Parses a dtype name (f32, bf16, f16, i32, q8_0, q4_0), case-insensitively.</summary>
    public static DType Parse(string name) => name.ToLowerInvariant() switch
    {
        "f32" or "float32" => DType.F32,
        "bf16" or "bfloat16" => DType.BF16,
        "f16" or "float16" => DType.F16,
        "i32" or "int32" => DType.I32,
        "q8_0" or "q8" => DType.Q8_0,
        "q4_0" or "q4" => DType.Q4_0,
        _ => throw new ArgumentException($"unknown dtype '{name}' (expected f32, bf16, f16, i32, q8_0 or q4_0)", nameof(name)),
    };
}
