using System.Runtime.InteropServices;

namespace Encore.Tensors.Kernels;

/// <summary>
/// A weight matrix W (N, K) converted to binary32 and packed once into the GEMM's B panels
/// (Wᵀ in K slices of <c>Gemm.KC</c> rows, each slice a run of 32-column panels), so repeated
/// <see cref="Gemm.Linear(ReadOnlySpan{float}, int, PackedMatrix, Span{float}, ReadOnlySpan{float})"/>
/// calls (prefill, training steps with frozen weights) skip the per-call packing and dtype conversion.
/// The layout serves every SIMD width. Results equal those of the unpacked GEMM path bit for bit.
/// For batch-1 decoding keep the <see cref="WeightMatrix"/>: the GEMV path reads fewer bytes.
/// </summary>
public sealed unsafe class PackedMatrix : IDisposable
{
    float* _data;

    PackedMatrix(float* data, int rows, int cols, int paddedRows)
    {
        _data = data;
        Rows = rows;
        Cols = cols;
        PaddedRows = paddedRows;
    }

    /// <summary>Packs <paramref name="w"/> (any weight dtype); W itself is not referenced afterwards.</summary>
    public static PackedMatrix Pack(WeightMatrix w)
    {
        int n = w.Rows, k = w.Cols;
        int padded = (n + Gemm.PanelWidth - 1) / Gemm.PanelWidth * Gemm.PanelWidth;
        long floats = Math.Max(1L, (long)padded * k);
        var data = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
        if (data == null) throw new OutOfMemoryException($"could not allocate {floats * 4} bytes for packed weights");
        GC.AddMemoryPressure(floats * sizeof(float));
        var src = new Gemm.BSource { Kind = Gemm.BKind.WeightRows, W = w };
        var width = Simd.Current;
        for (int pc = 0; pc < k; pc += Gemm.KC)
        {
            int kc = Math.Min(Gemm.KC, k - pc);
            Gemm.PackB(src, pc, kc, 0, n, data + (long)pc * padded, width);
        }
        return new PackedMatrix(data, n, k, padded);
    }

    /// <summary>N: output features (rows of W).</summary>
    public int Rows { get; }

    /// <summary>K: input features (columns of W).</summary>
    public int Cols { get; }

    /// <summary>Rows rounded up to whole 32-column panels.</summary>
    internal int PaddedRows { get; }

    internal float* Pointer => _data != null ? _data : throw new ObjectDisposedException(nameof(PackedMatrix));

    /// <summary>Frees the packed panels.</summary>
    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the packed panels if <see cref="Dispose"/> was not called.</summary>
    ~PackedMatrix() => Free();

    void Free()
    {
        var p = _data;
        _data = null;
        if (p == null) return;
        NativeMemory.AlignedFree(p);
        GC.RemoveMemoryPressure(Math.Max(1L, (long)PaddedRows * Cols) * sizeof(float));
    }
}
