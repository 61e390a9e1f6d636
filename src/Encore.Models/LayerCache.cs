using System.Buffers;
using Encore.Autograd;
using Encore.Tensors;
using Encore.Tensors.Kernels;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Models;

/// <summary>How a KV cache stores keys and values.</summary>
public enum KvCacheDType
{
    /// <summary>IEEE binary32, as the model computes them (4 bytes a value).</summary>
    F32,
    /// <summary>
    /// Symmetric int8 per vector: each head's key or value at each position is hd int8 quants and one
    /// binary32 scale, max|x|/127 (see <see cref="Encore.Tensors.Kernels.Int8Quantizer"/>); hd + 4 bytes
    /// a vector, 68/256 of binary32 at hd = 64. Attention reads the quants in place.
    /// </summary>
    Int8,
}

/// <summary>Names of <see cref="KvCacheDType"/> values, as the command line and configuration spell them.</summary>
public static class KvCacheDTypes
{
    /// <summary>The lower-case name: f32 or int8.</summary>
    public static string Name(this KvCacheDType t) => t switch
    {
        KvCacheDType.F32 => "f32",
        KvCacheDType.Int8 => "int8",
        _ => t.ToString(),
    };

    /// <summary>Bytes of one key or value vector of <paramref name="headDim"/> values: 4·hd (f32), hd + 4 (int8: the quants and the scale).</summary>
    public static long VectorBytes(this KvCacheDType t, int headDim) => t switch
    {
        KvCacheDType.F32 => 4L * headDim,
        KvCacheDType.Int8 => headDim + 4L,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown KV cache dtype"),
    };

    /// <summary>Parses f32 (float32) or int8 (i8), case-insensitively; <paramref name="option"/> names the setting in the error.</summary>
    public static KvCacheDType Parse(string name, string option = "kv cache dtype") => name?.ToLowerInvariant() switch
    {
        "f32" or "float32" => KvCacheDType.F32,
        "int8" or "i8" => KvCacheDType.Int8,
        _ => throw new ArgumentException($"{option}: unknown KV cache dtype '{name}' (expected f32 or int8)"),
    };
}

/// <summary>
/// Keys and values of one attention layer kept across decoding steps, head-major: one head's
/// positions lie next to each other, so a decoding step streams each head's keys in order (with
/// every head of a position in one row instead, a head's keys lie a row apart and each is a new
/// memory page, which halves the rate the attention reads the cache at). Stored as binary32
/// (<see cref="K"/>, <see cref="V"/>) or int8 (<see cref="KInt8"/>, <see cref="VInt8"/>), quantized
/// as they are appended.
/// </summary>
public sealed class LayerCache : IDisposable
{
    internal LayerCache(int batch, int capacity, int kvHeads, int headDim, KvCacheDType dtype = KvCacheDType.F32)
    {
        DType = dtype;
        Rows = batch;
        Capacity = capacity;
        Heads = kvHeads;
        HeadDim = headDim;
        switch (dtype)
        {
            case KvCacheDType.F32:
                K = Tensor.Zeros(Encore.Tensors.DType.F32, batch, kvHeads, capacity, headDim);
                V = Tensor.Zeros(Encore.Tensors.DType.F32, batch, kvHeads, capacity, headDim);
                break;
            case KvCacheDType.Int8:
                KInt8 = new Int8Heads(batch, kvHeads, capacity, headDim);
                VInt8 = new Int8Heads(batch, kvHeads, capacity, headDim);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown KV cache dtype");
        }
    }

    /// <summary>How keys and values are stored.</summary>
    public KvCacheDType DType { get; }

    /// <summary>Keys of an f32 cache, (B, Hkv, capacity, hd); null for int8.</summary>
    public Tensor? K { get; }
    /// <summary>Values of an f32 cache, (B, Hkv, capacity, hd); null for int8.</summary>
    public Tensor? V { get; }
    /// <summary>Keys of an int8 cache, (B, Hkv, capacity, hd) with a scale per vector; null for f32.</summary>
    public Int8Heads? KInt8 { get; }
    /// <summary>Values of an int8 cache; null for f32.</summary>
    public Int8Heads? VInt8 { get; }

    /// <summary>Positions filled.</summary>
    public int Length { get; internal set; }
    /// <summary>Positions the cache holds at most.</summary>
    public int Capacity { get; }
    /// <summary>Rows (B).</summary>
    public int Rows { get; }
    /// <summary>Hkv.</summary>
    public int Heads { get; }
    /// <summary>hd.</summary>
    public int HeadDim { get; }

    /// <summary>Bytes held (int8: the quants and the scales).</summary>
    public long Bytes => DType == KvCacheDType.Int8 ? KInt8!.ByteLength + VInt8!.ByteLength : K!.ByteLength + V!.ByteLength;

    /// <summary>Copies new keys and values (B, t, Hkv·hd) in at positions [Length, Length + t).</summary>
    internal void Append(Var k, Var v)
    {
        int b = k.Shape[0], t = k.Shape[1];
        if (Length + t > Capacity) throw new InvalidOperationException($"KV cache is full: {Length} + {t} positions exceed its capacity of {Capacity}");
        var ks = k.Value.AsReadOnlySpan<float>();
        var vs = v.Value.AsReadOnlySpan<float>();
        for (int i = 0; i < b; i++)
            for (int p = 0; p < t; p++)
                Put(ks, vs, i * t + p, i, Length + p);
        // Spans of native memory do not keep their owner alive: without these, keys and values that the caller no
        // longer references could be finalized, and their memory reused by another thread, in the middle of the copy.
        GC.KeepAlive(k);
        GC.KeepAlive(v);
    }

    // Scatters position row `src` of (·, Hkv·hd) keys and values into batch row `row`, position `pos`.
    void Put(ReadOnlySpan<float> ks, ReadOnlySpan<float> vs, int src, int row, int pos)
    {
        int h = Heads, hd = HeadDim, w = h * hd;
        if (DType == KvCacheDType.Int8)
        {
            for (int j = 0; j < h; j++)
            {
                KInt8!.Write(row, j, pos, ks.Slice(src * w + j * hd, hd));
                VInt8!.Write(row, j, pos, vs.Slice(src * w + j * hd, hd));
            }
            return;
        }
        var kd = K!.AsSpan<float>();
        var vd = V!.AsSpan<float>();
        for (int j = 0; j < h; j++)
        {
            int dst = ((row * h + j) * Capacity + pos) * hd;
            ks.Slice(src * w + j * hd, hd).CopyTo(kd.Slice(dst, hd));
            vs.Slice(src * w + j * hd, hd).CopyTo(vd.Slice(dst, hd));
        }
    }

    /// <summary>
    /// Copies new keys and values (b, t, Hkv·hd) of the first b rows in at positions of each row's own,
    /// [<paramref name="positions"/>[i], positions[i] + t) (continuous batching: rows joined at different steps).
    /// </summary>
    internal void AppendAt(Var k, Var v, ReadOnlySpan<int> positions)
    {
        int b = k.Shape[0], t = k.Shape[1];
        var ks = k.Value.AsReadOnlySpan<float>();
        var vs = v.Value.AsReadOnlySpan<float>();
        for (int i = 0; i < b; i++)
        {
            int p = positions[i];
            if (p < 0 || p + t > Capacity) throw new InvalidOperationException($"KV cache row {i} is full: positions {p} + {t} exceed its capacity of {Capacity}");
            for (int j = 0; j < t; j++) Put(ks, vs, i * t + j, i, p + j);
        }
        GC.KeepAlive(k); // as in Append
        GC.KeepAlive(v);
    }

    /// <summary>
    /// Attention of new queries q (b, T, H·hd) over the first <paramref name="length"/> positions of
    /// rows [0, b), read in place (an int8 cache is never dequantized as a whole).
    /// </summary>
    internal Var Attend(Var q, int length, int heads, int kvHeads, AttentionOptions options, AttentionMaskOptions masks, Var? bias = null)
    {
        int b = q.Shape[0];
        return DType == KvCacheDType.Int8
            ? Ops.AttentionCached(q, KInt8!, VInt8!, length, heads, kvHeads, options, masks, bias)
            : Ops.AttentionCached(q, KeysOf(b), ValuesOf(b), length, heads, kvHeads, options, masks, bias);
    }

    /// <summary>
    /// URPE attention (<see cref="Ops.ToeplitzAttention"/>) of new queries q (b, T, H·hd) over the first
    /// <paramref name="length"/> positions of rows [0, b). An f32 cache is read in place; an int8 cache's
    /// used positions are widened to f32 first (the Toeplitz kernel reads f32 keys and values).
    /// </summary>
    internal Var AttendToeplitz(Var q, int length, Var weights, bool bidirectional, int heads, int kvHeads,
        AttentionOptions options, AttentionMaskOptions masks, Var? bias, int[]? queryOffsets)
    {
        int b = q.Shape[0];
        if (DType == KvCacheDType.F32)
            return Ops.ToeplitzAttentionCached(q, KeysOf(b), ValuesOf(b), length, weights, bidirectional, heads, kvHeads, options, masks, bias, queryOffsets);
        using var k = Tensor.Empty(Encore.Tensors.DType.F32, b, Heads, Math.Max(1, length), HeadDim);
        using var v = Tensor.Empty(Encore.Tensors.DType.F32, b, Heads, Math.Max(1, length), HeadDim);
        var kd = k.AsSpan<float>();
        var vd = v.AsSpan<float>();
        for (int i = 0; i < b; i++)
            for (int j = 0; j < Heads; j++)
                for (int p = 0; p < length; p++)
                {
                    int at = ((i * Heads + j) * Math.Max(1, length) + p) * HeadDim;
                    KInt8!.Read(i, j, p, kd.Slice(at, HeadDim));
                    VInt8!.Read(i, j, p, vd.Slice(at, HeadDim));
                }
        return Ops.ToeplitzAttentionCached(q, k, v, length, weights, bidirectional, heads, kvHeads, options, masks, bias, queryOffsets);
    }

    /// <summary>Copies positions [0, <paramref name="positions"/>) of <paramref name="source"/>'s row <paramref name="sourceRow"/> into row <paramref name="row"/>.</summary>
    public void CopyRow(int row, LayerCache source, int sourceRow, int positions)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Heads != Heads || source.HeadDim != HeadDim)
            throw new ArgumentException($"caches of {source.Heads}×{source.HeadDim} and {Heads}×{HeadDim} do not mix");
        if (source.DType != DType)
            throw new ArgumentException($"a {source.DType.Name()} cache row does not copy into a {DType.Name()} cache (create both with one KV cache dtype)");
        if ((uint)row >= (uint)Rows || (uint)sourceRow >= (uint)source.Rows) throw new ArgumentOutOfRangeException(nameof(row));
        if (positions < 0 || positions > Capacity || positions > source.Capacity)
            throw new ArgumentOutOfRangeException(nameof(positions), $"{positions} positions do not fit capacities {source.Capacity} → {Capacity}");
        if (DType == KvCacheDType.Int8)
        {
            KInt8!.CopyPositions(row, source.KInt8!, sourceRow, positions);
            VInt8!.CopyPositions(row, source.VInt8!, sourceRow, positions);
            return;
        }
        int n = positions * HeadDim;
        for (int j = 0; j < Heads; j++)
        {
            int from = (sourceRow * Heads + j) * source.Capacity * HeadDim, to = (row * Heads + j) * Capacity * HeadDim;
            source.K!.AsReadOnlySpan<float>().Slice(from, n).CopyTo(K!.AsSpan<float>().Slice(to, n));
            source.V!.AsReadOnlySpan<float>().Slice(from, n).CopyTo(V!.AsSpan<float>().Slice(to, n));
        }
    }

    /// <summary>
    /// Makes row i a copy of row <paramref name="parents"/>[i] for every row (beam search keeps the
    /// beams that survived and duplicates the ones that branched). Only the filled positions move.
    /// </summary>
    public void SelectRows(ReadOnlySpan<int> parents)
    {
        if (parents.Length != Rows) throw new ArgumentException($"{parents.Length} parents for a cache of {Rows} rows");
        foreach (int p in parents)
            if ((uint)p >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(parents), $"parent row {p} outside [0, {Rows})");
        if (DType == KvCacheDType.Int8)
        {
            SelectRows(KInt8!.Quants, parents, HeadDim);
            SelectRows(KInt8.Scales, parents, 1);
            SelectRows(VInt8!.Quants, parents, HeadDim);
            SelectRows(VInt8.Scales, parents, 1);
        }
        else
        {
            SelectRows(K!.AsSpan<float>(), parents, HeadDim);
            SelectRows(V!.AsSpan<float>(), parents, HeadDim);
        }
    }

    // (B, Hkv, capacity, perPosition): a row's filled positions are one run of Length·perPosition per head.
    void SelectRows<T>(Span<T> data, ReadOnlySpan<int> parents, int perPosition)
    {
        int b = Rows, heads = Heads, n = Length * perPosition, stride = Capacity * perPosition;
        var scratch = ArrayPool<T>.Shared.Rent(Math.Max(1, b * heads * n));
        try
        {
            for (int i = 0; i < b; i++)
                for (int h = 0; h < heads; h++) data.Slice((parents[i] * heads + h) * stride, n).CopyTo(scratch.AsSpan((i * heads + h) * n, n));
            for (int i = 0; i < b; i++)
                for (int h = 0; h < heads; h++) scratch.AsSpan((i * heads + h) * n, n).CopyTo(data.Slice((i * heads + h) * stride, n));
        }
        finally
        {
            ArrayPool<T>.Shared.Return(scratch);
        }
    }

    Tensor?[]? _kRows, _vRows;

    /// <summary>Keys of the first <paramref name="rows"/> rows of an f32 cache, (rows, Hkv, capacity, hd): the whole tensor, or a view kept for reuse.</summary>
    internal Tensor KeysOf(int rows) => rows == K!.Shape[0] ? K : RowView(ref _kRows, K, rows);

    /// <summary>Values of the first <paramref name="rows"/> rows, as <see cref="KeysOf"/>.</summary>
    internal Tensor ValuesOf(int rows) => rows == V!.Shape[0] ? V : RowView(ref _vRows, V, rows);

    // Views are cached per row count, so a step over a partly filled batch allocates nothing once warm.
    static Tensor RowView(ref Tensor?[]? views, Tensor t, int rows)
    {
        views ??= new Tensor?[t.Shape[0]];
        return views[rows] ??= t.Slice(0, 0, rows);
    }

    /// <summary>Frees the buffers.</summary>
    public void Dispose()
    {
        foreach (var views in new[] { _kRows, _vRows })
            if (views != null) foreach (var t in views) t?.Dispose();
        K?.Dispose();
        V?.Dispose();
        KInt8?.Dispose();
        VInt8?.Dispose();
    }
}
