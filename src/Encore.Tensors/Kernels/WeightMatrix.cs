using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

/// <summary>
/// A read-only weight matrix W of shape (Rows, Cols) = (N out-features, K in-features), row-major
/// with contiguous rows, in any weight dtype: F32, BF16, F16 (2-byte bit patterns), Q8_0 or Q4_0
/// (Cols a multiple of 32, each row Cols/32 blocks), or Q4_0R8 (Cols a multiple of 256). This is the layout of a PyTorch <c>nn.Linear</c> weight
/// and of a GGUF/safetensors tensor, so checkpoints are used as they are stored.
/// </summary>
public readonly unsafe struct WeightMatrix
{
    /// <summary>Wraps raw memory; <paramref name="rowStrideBytes"/> defaults to the packed row size.</summary>
    public WeightMatrix(DType dtype, void* data, int rows, int cols, long rowStrideBytes = 0)
    {
        if (dtype == DType.I32) throw new ArgumentException("I32 is not a weight dtype", nameof(dtype));
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (dtype.IsBlocked() && cols % dtype.BlockSize() != 0)
            throw new ArgumentException($"{dtype.Name()} weights need Cols to be a multiple of {dtype.BlockSize()}, got {cols}", nameof(cols));
        DType = dtype;
        Data = (byte*)data;
        Rows = rows;
        Cols = cols;
        long packed = dtype.ByteCount(cols);
        RowStrideBytes = rowStrideBytes == 0 ? packed : rowStrideBytes;
        if (RowStrideBytes < packed) throw new ArgumentException("row stride is shorter than a row", nameof(rowStrideBytes));
    }

    /// <summary>Views a rank-2 tensor (N, K) whose rows are contiguous.</summary>
    public static WeightMatrix From(Tensor w)
    {
        if (w.Rank != 2) throw new ArgumentException($"a weight matrix is rank 2, got {w.Describe()}", nameof(w));
        if (w.Strides[1] != 1 && w.Shape[1] > 1) throw new ArgumentException($"weight rows must be contiguous ({w.Describe()})", nameof(w));
        return new WeightMatrix(w.DType, w.DataPointer, w.Shape[0], w.Shape[1], w.DType.ByteCount(w.Shape[0] > 1 ? w.Strides[0] : w.Shape[1]));
    }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Address of row 0.</summary>
    public byte* Data { get; }

    /// <summary>N: rows (output features).</summary>
    public int Rows { get; }

    /// <summary>K: columns (input features).</summary>
    public int Cols { get; }

    /// <summary>Bytes from one row to the next.</summary>
    public long RowStrideBytes { get; }

    /// <summary>Address of row <paramref name="r"/>.</summary>
    public byte* Row(int r) => Data + r * RowStrideBytes;

    /// <summary>Bytes of weight data (what one pass over W reads).</summary>
    public long ByteLength => Rows * DType.ByteCount(Cols);

    /// <summary>Widens row <paramref name="r"/> to binary32 (scalar reference, for tests and fallbacks).</summary>
    public void RowToSingle(int r, Span<float> dst)
    {
        byte* p = Row(r);
        switch (DType)
        {
            case DType.F32: new ReadOnlySpan<float>(p, Cols).CopyTo(dst); break;
            case DType.BF16:
                for (int j = 0; j < Cols; j++) dst[j] = BFloat16.ToSingle(((ushort*)p)[j]);
                break;
            case DType.F16:
                for (int j = 0; j < Cols; j++) dst[j] = Half16.ToSingle(((ushort*)p)[j]);
                break;
            case DType.Q8_0: Q8.Dequantize(new ReadOnlySpan<BlockQ8_0>(p, Cols / DTypes.Q8BlockSize), dst); break;
            case DType.Q4_0: Q4.Dequantize(new ReadOnlySpan<BlockQ4_0>(p, Cols / DTypes.Q4BlockSize), dst); break;
            case DType.Q4_0R8: Q4R8.Dequantize(new ReadOnlySpan<GroupQ4_0R8>(p, Cols / DTypes.Q4R8GroupSize), dst); break;
            default: throw new InvalidOperationException();
        }
    }
}
