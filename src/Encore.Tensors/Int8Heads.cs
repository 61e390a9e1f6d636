using Encore.Tensors.Kernels;
using Encore.Tensors.Storage;

namespace Encore.Tensors;

/// <summary>
/// Int8 vectors (B, heads, length, hd), each with one binary32 scale (see <see cref="Int8Quantizer"/>),
/// in native memory: the storage of an int8 KV cache. Head-major like an f32 cache, so one head's
/// positions lie next to each other: quants (B, heads, length, hd) and scales (B, heads, length).
/// </summary>
public sealed unsafe class Int8Heads : IDisposable
{
    readonly NativeBuffer _quants, _scales;

    /// <summary>Zeroed storage (every vector 0 with scale 0) for <paramref name="batch"/> × <paramref name="heads"/> × <paramref name="length"/> vectors of <paramref name="headDim"/>.</summary>
    public Int8Heads(int batch, int heads, int length, int headDim)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfNegative(heads);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfLessThan(headDim, 1);
        long vectors = (long)batch * heads * length;
        if (vectors * headDim > int.MaxValue)
            throw new ArgumentException($"an int8 cache of ({batch}, {heads}, {length}, {headDim}) holds {vectors * headDim} values, more than {int.MaxValue}");
        Batch = batch;
        Heads = heads;
        Length = length;
        HeadDim = headDim;
        _quants = NativeBuffer.Allocate(vectors * headDim);
        _scales = NativeBuffer.Allocate(vectors * sizeof(float));
    }

    /// <summary>B.</summary>
    public int Batch { get; }
    /// <summary>Heads.</summary>
    public int Heads { get; }
    /// <summary>Positions.</summary>
    public int Length { get; }
    /// <summary>hd.</summary>
    public int HeadDim { get; }

    /// <summary>Bytes held: one per value and four per vector's scale.</summary>
    public long ByteLength => (long)Batch * Heads * Length * (HeadDim + sizeof(float));

    /// <summary>The quants, (B, heads, length, hd) packed.</summary>
    public Span<sbyte> Quants => new(Pointer(_quants), Batch * Heads * Length * HeadDim);

    /// <summary>The scales, (B, heads, length) packed.</summary>
    public Span<float> Scales => new(Pointer(_scales), Batch * Heads * Length);

    /// <summary>Strides of <see cref="Quants"/>.</summary>
    public AttentionStrides QuantStrides => AttentionStrides.HeadMajor(Heads, Length, HeadDim);

    /// <summary>Strides of <see cref="Scales"/>.</summary>
    public AttentionStrides ScaleStrides => AttentionStrides.HeadMajor(Heads, Length, 1);

    /// <summary>The attention kernel's view of every vector.</summary>
    public AttentionInt8Operand Operand => new(Quants, QuantStrides, Scales, ScaleStrides);

    /// <summary>Quantizes <paramref name="x"/> (hd) into the vector of row <paramref name="row"/>, head <paramref name="head"/>, position <paramref name="position"/>.</summary>
    public void Write(int row, int head, int position, ReadOnlySpan<float> x)
    {
        long v = Vector(row, head, position);
        Scales[(int)v] = Int8Quantizer.Quantize(x, Quants.Slice((int)(v * HeadDim), HeadDim));
    }

    /// <summary>Dequantizes the vector of row <paramref name="row"/>, head <paramref name="head"/>, position <paramref name="position"/> into <paramref name="x"/> (hd).</summary>
    public void Read(int row, int head, int position, Span<float> x)
    {
        long v = Vector(row, head, position);
        Int8Quantizer.Dequantize(Quants.Slice((int)(v * HeadDim), HeadDim), Scales[(int)v], x);
    }

    /// <summary>Copies positions [0, <paramref name="positions"/>) of every head of <paramref name="source"/>'s row <paramref name="sourceRow"/> into row <paramref name="row"/>.</summary>
    public void CopyPositions(int row, Int8Heads source, int sourceRow, int positions)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Heads != Heads || source.HeadDim != HeadDim)
            throw new ArgumentException($"int8 vectors of {source.Heads}×{source.HeadDim} and {Heads}×{HeadDim} do not mix");
        if ((uint)row >= (uint)Batch) throw new ArgumentOutOfRangeException(nameof(row), $"row {row} is outside [0, {Batch})");
        if ((uint)sourceRow >= (uint)source.Batch) throw new ArgumentOutOfRangeException(nameof(sourceRow), $"row {sourceRow} is outside [0, {source.Batch})");
        if (positions < 0 || positions > Length || positions > source.Length)
            throw new ArgumentOutOfRangeException(nameof(positions), $"{positions} positions do not fit lengths {source.Length} → {Length}");
        var fromQ = source.Quants;
        var toQ = Quants;
        var fromS = source.Scales;
        var toS = Scales;
        for (int h = 0; h < Heads; h++)
        {
            int from = (sourceRow * Heads + h) * source.Length, to = (row * Heads + h) * Length;
            // Overlapping runs only occur for the same row of the same storage, where the copy is a no-op.
            fromQ.Slice(from * HeadDim, positions * HeadDim).CopyTo(toQ.Slice(to * HeadDim, positions * HeadDim));
            fromS.Slice(from, positions).CopyTo(toS.Slice(to, positions));
        }
    }

    long Vector(int row, int head, int position)
    {
        if ((uint)row >= (uint)Batch || (uint)head >= (uint)Heads || (uint)position >= (uint)Length)
            throw new ArgumentOutOfRangeException(nameof(position), $"vector ({row}, {head}, {position}) is outside ({Batch}, {Heads}, {Length})");
        return ((long)row * Heads + head) * Length + position;
    }

    static byte* Pointer(NativeBuffer b) => b.IsReleased ? throw new ObjectDisposedException(nameof(Int8Heads)) : b.Pointer;

    /// <summary>Frees the memory.</summary>
    public void Dispose()
    {
        if (!_quants.IsReleased) _quants.Release();
        if (!_scales.IsReleased) _scales.Release();
    }
}
