using System.Runtime.InteropServices;
using System.Text;
using Encore.Tensors.Numerics;
using Encore.Tensors.Storage;

namespace Encore.Tensors;

/// <summary>
/// An n-dimensional view of a <see cref="TensorStorage"/>: a dtype, a shape, strides and an offset,
/// all counted in elements. Views (slice, transpose, permute, reshape of a contiguous tensor) share the
/// storage without copying; each view holds one reference to it, so the memory is freed
/// deterministically when the last view is disposed.
/// Q8_0 tensors are views at block granularity: the innermost dimension is contiguous, and it, the
/// offset and every other stride are whole blocks of 32.
/// </summary>
public sealed unsafe class Tensor : IDisposable
{
    readonly int[] _shape;
    readonly long[] _strides;
    int _disposed;

    Tensor(TensorStorage storage, DType dtype, int[] shape, long[] strides, long offset, bool addRef)
    {
        if (addRef) storage.AddRef();
        Storage = storage;
        DType = dtype;
        _shape = shape;
        _strides = strides;
        Offset = offset;
        long n = 1;
        foreach (int d in shape) n *= d;
        Length = n;
    }

    /// <summary>The memory viewed.</summary>
    public TensorStorage Storage { get; }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Size of each dimension.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>Step between neighbours along each dimension, in elements.</summary>
    public ReadOnlySpan<long> Strides => _strides;

    /// <summary>Index of the first element in the storage, in elements.</summary>
    public long Offset { get; }

    /// <summary>Number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    /// <summary>Size of dimension <paramref name="dim"/> (negative counts from the end).</summary>
    public int Dim(int dim) => _shape[Axis(dim)];

    /// <summary>True when the elements lie in row-major order with no gaps.</summary>
    public bool IsContiguous
    {
        get
        {
            long expected = 1;
            for (int d = Rank - 1; d >= 0; d--)
            {
                if (_shape[d] != 1 && _strides[d] != expected) return false;
                expected *= _shape[d];
            }
            return true;
        }
    }

    /// <summary>Address of the first element (of its block for Q8_0).</summary>
    public byte* DataPointer
    {
        get
        {
            ThrowIfDisposed();
            return Storage.Pointer + DType.ByteCount(Offset);
        }
    }

    /// <summary>Bytes the elements occupy when contiguous.</summary>
    public long ByteLength => DType.ByteCount(Length);

    // ---------------------------------------------------------------- creation

    /// <summary>A new contiguous tensor filled with zeros.</summary>
    public static Tensor Zeros(DType dtype, params int[] shape) => Allocate(dtype, shape, zero: true);

    /// <summary>A new contiguous tensor whose contents are unspecified (for outputs that are fully written).</summary>
    public static Tensor Empty(DType dtype, params int[] shape) => Allocate(dtype, shape, zero: false);

    static Tensor Allocate(DType dtype, int[] shape, bool zero)
    {
        shape = (int[])shape.Clone();
        long n = CheckShape(dtype, shape);
        var buffer = NativeBuffer.Allocate(dtype.ByteCount(n), zero);
        return new Tensor(buffer, dtype, shape, ContiguousStrides(shape), 0, addRef: false);
    }

    /// <summary>A new F32 tensor holding a copy of <paramref name="data"/>.</summary>
    public static Tensor FromArray(float[] data, params int[] shape) => FromSpan<float>(DType.F32, data, shape);

    /// <summary>A new I32 tensor holding a copy of <paramref name="data"/>.</summary>
    public static Tensor FromArray(int[] data, params int[] shape) => FromSpan<int>(DType.I32, data, shape);

    /// <summary>A new tensor of <paramref name="dtype"/> holding a copy of <paramref name="data"/> (raw elements or blocks).</summary>
    public static Tensor FromSpan<T>(DType dtype, ReadOnlySpan<T> data, params int[] shape) where T : unmanaged
    {
        var t = Empty(dtype, shape);
        var bytes = MemoryMarshal.AsBytes(data);
        if (bytes.Length != t.ByteLength)
        {
            t.Dispose();
            throw new ArgumentException($"{bytes.Length} bytes of data do not fill a {dtype.Name()} tensor of shape {FormatShape(shape)} ({t.ByteLength} bytes)", nameof(data));
        }
        bytes.CopyTo(new Span<byte>(t.DataPointer, bytes.Length));
        return t;
    }

    /// <summary>
    /// A tensor over existing storage (for example a memory-mapped checkpoint), starting
    /// <paramref name="byteOffset"/> bytes in. The bytes must lie inside the storage.
    /// </summary>
    public static Tensor FromStorage(TensorStorage storage, DType dtype, int[] shape, long byteOffset)
    {
        ArgumentNullException.ThrowIfNull(storage);
        shape = (int[])shape.Clone();
        long n = CheckShape(dtype, shape);
        long bytes = dtype.ByteCount(n);
        int unit = dtype.UnitBytes();
        if (byteOffset < 0 || byteOffset > storage.ByteLength || bytes > storage.ByteLength - byteOffset)
            throw new ArgumentOutOfRangeException(nameof(byteOffset), $"{bytes} bytes at offset {byteOffset} lie outside the storage ({storage.ByteLength} bytes)");
        if (byteOffset % unit != 0)
            throw new ArgumentException($"offset {byteOffset} is not a multiple of the {dtype.Name()} unit ({unit} bytes)", nameof(byteOffset));
        return new Tensor(storage, dtype, shape, ContiguousStrides(shape), byteOffset / unit * dtype.BlockSize(), addRef: true);
    }

    static long CheckShape(DType dtype, int[] shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape {FormatShape(shape)}", nameof(shape));
            n = checked(n * d);
        }
        if (dtype.IsBlocked() && (shape.Length == 0 || shape[^1] % dtype.BlockSize() != 0))
            throw new ArgumentException($"{dtype.Name()} needs the last dimension to be a multiple of {dtype.BlockSize()}; shape is {FormatShape(shape)}", nameof(shape));
        return n;
    }

    static long[] ContiguousStrides(int[] shape)
    {
        var s = new long[shape.Length];
        long acc = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            s[d] = acc;
            acc *= shape[d];
        }
        return s;
    }

    // ---------------------------------------------------------------- views

    int Axis(int dim)
    {
        int a = dim < 0 ? dim + Rank : dim;
        if (a < 0 || a >= Rank) throw new ArgumentOutOfRangeException(nameof(dim), $"dimension {dim} is out of range for rank {Rank}");
        return a;
    }

    Tensor View(int[] shape, long[] strides, long offset)
    {
        ThrowIfDisposed();
        if (DType.IsBlocked())
        {
            int bs = DType.BlockSize();
            bool ok = shape.Length > 0 && strides[^1] == 1 && shape[^1] % bs == 0 && offset % bs == 0;
            for (int d = 0; ok && d < shape.Length - 1; d++) ok = shape[d] == 1 || strides[d] % bs == 0;
            if (!ok) throw new InvalidOperationException($"{DType.Name()} views must keep whole contiguous blocks of {bs} in the last dimension");
        }
        return new Tensor(Storage, DType, shape, strides, offset, addRef: true);
    }

    /// <summary>The elements [start, start+length) along <paramref name="dim"/>, as a view.</summary>
    public Tensor Slice(int dim, int start, int length)
    {
        int a = Axis(dim);
        if (start < 0 || length < 0 || start > _shape[a] - length)
            throw new ArgumentOutOfRangeException(nameof(start), $"slice [{start}, {start + length}) is outside dimension {a} of size {_shape[a]}");
        var shape = (int[])_shape.Clone();
        shape[a] = length;
        return View(shape, (long[])_strides.Clone(), Offset + start * _strides[a]);
    }

    /// <summary>Index <paramref name="index"/> of dimension <paramref name="dim"/>, with that dimension removed.</summary>
    public Tensor Select(int dim, int index)
    {
        int a = Axis(dim);
        if (index < 0 || index >= _shape[a]) throw new ArgumentOutOfRangeException(nameof(index), $"index {index} is outside dimension {a} of size {_shape[a]}");
        var shape = _shape.Where((_, i) => i != a).ToArray();
        var strides = _strides.Where((_, i) => i != a).ToArray();
        return View(shape, strides, Offset + index * _strides[a]);
    }

    /// <summary>Swaps two dimensions (a view).</summary>
    public Tensor Transpose(int dim0, int dim1)
    {
        int a = Axis(dim0), b = Axis(dim1);
        var shape = (int[])_shape.Clone();
        var strides = (long[])_strides.Clone();
        (shape[a], shape[b]) = (shape[b], shape[a]);
        (strides[a], strides[b]) = (strides[b], strides[a]);
        return View(shape, strides, Offset);
    }

    /// <summary>Reorders dimensions: result dimension i is this tensor's dimension <paramref name="order"/>[i] (a view).</summary>
    public Tensor Permute(params int[] order)
    {
        if (order.Length != Rank) throw new ArgumentException($"permutation has {order.Length} entries for rank {Rank}", nameof(order));
        var seen = new bool[Rank];
        var shape = new int[Rank];
        var strides = new long[Rank];
        for (int i = 0; i < Rank; i++)
        {
            int a = Axis(order[i]);
            if (seen[a]) throw new ArgumentException($"dimension {a} appears twice in the permutation", nameof(order));
            seen[a] = true;
            shape[i] = _shape[a];
            strides[i] = _strides[a];
        }
        return View(shape, strides, Offset);
    }

    /// <summary>
    /// The same elements in a new shape (one entry may be -1). A view when the strides allow it
    /// (always for contiguous tensors), otherwise a contiguous copy.
    /// </summary>
    public Tensor Reshape(params int[] shape)
    {
        shape = ResolveShape(shape);
        var strides = ViewStrides(shape);
        if (strides != null) return View(shape, strides, Offset);
        using var c = Contiguous();
        return c.Reshape(shape);
    }

    int[] ResolveShape(int[] shape)
    {
        shape = (int[])shape.Clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == -1)
            {
                if (infer >= 0) throw new ArgumentException("only one dimension may be -1", nameof(shape));
                infer = i;
            }
            else if (shape[i] < 0) throw new ArgumentException($"invalid shape {FormatShape(shape)}", nameof(shape));
            else known *= shape[i];
        }
        if (infer >= 0)
        {
            if (known == 0 || Length % known != 0) throw new ArgumentException($"cannot reshape {FormatShape(_shape)} to {FormatShape(shape)}", nameof(shape));
            shape[infer] = (int)(Length / known);
            known *= shape[infer];
        }
        if (known != Length) throw new ArgumentException($"cannot reshape {FormatShape(_shape)} ({Length} elements) to {FormatShape(shape)}", nameof(shape));
        return shape;
    }

    // Strides for viewing this tensor in `shape` without a copy, or null (the algorithm of
    // PyTorch's computeStride: merge runs of dimensions that are contiguous with each other).
    long[]? ViewStrides(int[] shape)
    {
        var result = new long[shape.Length];
        if (Length == 0)
        {
            return ContiguousStrides(shape);
        }
        int viewD = shape.Length - 1;
        long chunkBase = _strides.Length > 0 ? _strides[^1] : 1;
        long tensorNumel = 1, viewNumel = 1;
        for (int d = Rank - 1; d >= 0; d--)
        {
            tensorNumel *= _shape[d];
            if (d == 0 || (_shape[d - 1] != 1 && _strides[d - 1] != tensorNumel * chunkBase))
            {
                while (viewD >= 0 && (viewNumel < tensorNumel || shape[viewD] == 1))
                {
                    result[viewD] = viewNumel * chunkBase;
                    viewNumel *= shape[viewD];
                    viewD--;
                }
                if (viewNumel != tensorNumel) return null;
                if (d > 0)
                {
                    chunkBase = _strides[d - 1];
                    tensorNumel = 1;
                    viewNumel = 1;
                }
            }
        }
        if (viewD != -1)
        {
            // Leading size-1 dimensions of a rank-0 source.
            for (; viewD >= 0; viewD--) result[viewD] = 1;
        }
        return result;
    }

    /// <summary>This tensor if contiguous (another reference to it), else a contiguous copy.</summary>
    public Tensor Contiguous()
    {
        if (IsContiguous) return View((int[])_shape.Clone(), (long[])_strides.Clone(), Offset);
        return Clone();
    }

    /// <summary>A contiguous copy in new memory.</summary>
    public Tensor Clone()
    {
        ThrowIfDisposed();
        var dst = Empty(DType, _shape);
        CopyTo(dst);
        return dst;
    }

    /// <summary>Copies the elements into <paramref name="dst"/>, which must have the same dtype and shape.</summary>
    public void CopyTo(Tensor dst)
    {
        ThrowIfDisposed();
        if (dst.DType != DType || !dst.Shape.SequenceEqual(Shape))
            throw new ArgumentException($"cannot copy {Describe()} into {dst.Describe()}", nameof(dst));
        if (dst.Storage.IsReadOnly) throw new InvalidOperationException("destination storage is read-only");
        int unit = DType.UnitBytes();
        int bs = DType.BlockSize();
        // Copy row by row along the last dimension (contiguous for blocked dtypes).
        if (Rank == 0)
        {
            Buffer.MemoryCopy(DataPointer, dst.DataPointer, unit, unit);
            return;
        }
        int inner = _shape[^1];
        long rows = inner == 0 ? 0 : Length / inner;
        var idx = new int[Rank - 1];
        bool rowContiguous = _strides[^1] == 1 && dst._strides[^1] == 1;
        for (long r = 0; r < rows; r++)
        {
            long so = Offset, dO = dst.Offset;
            for (int d = 0; d < Rank - 1; d++)
            {
                so += idx[d] * _strides[d];
                dO += idx[d] * dst._strides[d];
            }
            if (rowContiguous)
            {
                long bytes = DType.ByteCount(inner);
                Buffer.MemoryCopy(Storage.Pointer + so / bs * unit, dst.Storage.Pointer + dO / bs * unit, bytes, bytes);
            }
            else
            {
                for (int j = 0; j < inner; j++)
                    Buffer.MemoryCopy(Storage.Pointer + (so + j * _strides[^1]) * unit, dst.Storage.Pointer + (dO + j * dst._strides[^1]) * unit, unit, unit);
            }
            for (int d = Rank - 2; d >= 0; d--)
            {
                if (++idx[d] < _shape[d]) break;
                idx[d] = 0;
            }
        }
    }

    // ---------------------------------------------------------------- data access

    /// <summary>The elements as a span; the tensor must be contiguous and <typeparamref name="T"/> its element (or block) type.</summary>
    public Span<T> AsSpan<T>() where T : unmanaged
    {
        ThrowIfDisposed();
        if (!IsContiguous) throw new InvalidOperationException($"AsSpan needs a contiguous tensor; call Contiguous() first ({Describe()})");
        if (sizeof(T) != DType.UnitBytes()) throw new InvalidOperationException($"{typeof(T).Name} ({sizeof(T)} bytes) is not the element type of a {DType.Name()} tensor");
        if (Storage.IsReadOnly) throw new InvalidOperationException("the storage is read-only; use AsReadOnlySpan");
        return new Span<T>(DataPointer, checked((int)(Length / DType.BlockSize())));
    }

    /// <summary>The elements as a read-only span (contiguous tensors only).</summary>
    public ReadOnlySpan<T> AsReadOnlySpan<T>() where T : unmanaged
    {
        ThrowIfDisposed();
        if (!IsContiguous) throw new InvalidOperationException($"AsReadOnlySpan needs a contiguous tensor; call Contiguous() first ({Describe()})");
        if (sizeof(T) != DType.UnitBytes()) throw new InvalidOperationException($"{typeof(T).Name} ({sizeof(T)} bytes) is not the element type of a {DType.Name()} tensor");
        return new ReadOnlySpan<T>(DataPointer, checked((int)(Length / DType.BlockSize())));
    }

    /// <summary>All elements converted to binary32, in row-major order.</summary>
    public float[] ToFloatArray()
    {
        using var c = Contiguous();
        var result = new float[Length];
        switch (DType)
        {
            case DType.F32: c.AsReadOnlySpan<float>().CopyTo(result); break;
            case DType.BF16: BFloat16.ToSingle(c.AsReadOnlySpan<ushort>(), result); break;
            case DType.F16: Half16.ToSingle(c.AsReadOnlySpan<ushort>(), result); break;
            case DType.I32:
                var ints = c.AsReadOnlySpan<int>();
                for (int i = 0; i < ints.Length; i++) result[i] = ints[i];
                break;
            case DType.Q8_0: Q8.Dequantize(c.AsReadOnlySpan<BlockQ8_0>(), result); break;
            case DType.Q4_0: Q4.Dequantize(c.AsReadOnlySpan<BlockQ4_0>(), result); break;
            case DType.Q4_0R8: Q4R8.Dequantize(c.AsReadOnlySpan<GroupQ4_0R8>(), result); break;
        }
        return result;
    }

    /// <summary>A contiguous copy converted to <paramref name="dtype"/> (rounded to nearest even; Q8_0 and Q4_0 quantized per block, Q4_0R8 as Q4_0 then regrouped).</summary>
    public Tensor To(DType dtype)
    {
        if (dtype == DType) return Clone();
        // Q4_0 ⇄ Q4_0R8 moves bytes; it does not quantize again.
        if (dtype == DType.Q4_0R8 && DType == DType.Q4_0 && _shape.Length > 0 && _shape[^1] % DTypes.Q4R8GroupSize == 0)
        {
            using var c = Contiguous();
            var r = Empty(dtype, _shape);
            Q4R8.Regroup(c.AsReadOnlySpan<BlockQ4_0>(), r.AsSpan<GroupQ4_0R8>());
            return r;
        }
        if (dtype == DType.Q4_0 && DType == DType.Q4_0R8)
        {
            using var c = Contiguous();
            var r = Empty(dtype, _shape);
            Q4R8.Ungroup(c.AsReadOnlySpan<GroupQ4_0R8>(), r.AsSpan<BlockQ4_0>());
            return r;
        }
        var values = ToFloatArray();
        var dst = Empty(dtype, _shape);
        switch (dtype)
        {
            case DType.F32: values.CopyTo(dst.AsSpan<float>()); break;
            case DType.BF16: BFloat16.FromSingle(values, dst.AsSpan<ushort>()); break;
            case DType.F16: Half16.FromSingle(values, dst.AsSpan<ushort>()); break;
            case DType.I32:
                var ints = dst.AsSpan<int>();
                for (int i = 0; i < values.Length; i++) ints[i] = checked((int)MathF.Round(values[i]));
                break;
            case DType.Q8_0: Q8.Quantize(values, dst.AsSpan<BlockQ8_0>()); break;
            case DType.Q4_0: Q4.Quantize(values, dst.AsSpan<BlockQ4_0>()); break;
            case DType.Q4_0R8: Q4R8.Quantize(values, dst.AsSpan<GroupQ4_0R8>()); break;
        }
        return dst;
    }

    /// <summary>One element as binary32 (for tests and debugging; not for hot loops).</summary>
    public float GetFloat(params int[] index)
    {
        ThrowIfDisposed();
        if (index.Length != Rank) throw new ArgumentException($"{index.Length} indices for rank {Rank}", nameof(index));
        long e = Offset;
        for (int d = 0; d < Rank; d++)
        {
            if ((uint)index[d] >= (uint)_shape[d]) throw new ArgumentOutOfRangeException(nameof(index), $"index {index[d]} is outside dimension {d} of size {_shape[d]}");
            e += index[d] * _strides[d];
        }
        byte* p = Storage.Pointer;
        return DType switch
        {
            DType.F32 => ((float*)p)[e],
            DType.I32 => ((int*)p)[e],
            DType.BF16 => BFloat16.ToSingle(((ushort*)p)[e]),
            DType.F16 => Half16.ToSingle(((ushort*)p)[e]),
            DType.Q8_0 => Half16.ToSingle(((BlockQ8_0*)p)[e / 32].D) * ((BlockQ8_0*)p)[e / 32].Qs[e % 32],
            DType.Q4_0 => Q4.Value(((BlockQ4_0*)p)[e / 32], (int)(e % 32)),
            DType.Q4_0R8 => Q4R8.Value(((GroupQ4_0R8*)p)[e / DTypes.Q4R8GroupSize], (int)(e % DTypes.Q4R8GroupSize)),
            _ => throw new InvalidOperationException(),
        };
    }

    // ---------------------------------------------------------------- misc

    /// <summary>"f32[2, 3]".</summary>
    public string Describe() => $"{DType.Name()}{FormatShape(_shape)}";

    /// <inheritdoc />
    public override string ToString() => Describe();

    internal static string FormatShape(ReadOnlySpan<int> shape)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0) sb.Append(", ");
            sb.Append(shape[i]);
        }
        return sb.Append(']').ToString();
    }

    void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0) throw new ObjectDisposedException(nameof(Tensor), $"the {Describe()} tensor was disposed");
    }

    /// <summary>Drops this view's reference to the storage.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) Storage.Release();
    }
}
