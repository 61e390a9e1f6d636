using System.Runtime.CompilerServices;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

/// <summary>
/// Token embedding lookup: rows of a (V, D) table in any weight dtype (F32, BF16, F16, Q8_0, Q4_0, as
/// <see cref="WeightMatrix"/> holds them) widened to binary32, and the scatter-add backward into an F32
/// table gradient. Widening is exact (Q8_0 is d·q with one float multiply, as ggml dequantizes), so
/// every SIMD width is bit-identical to <see cref="GatherReference"/>.
/// </summary>
public static unsafe class Embedding
{
    /// <summary>dst (n, D) = table[ids[i]] for the n ids, widened to float.</summary>
    /// <exception cref="ArgumentException">An id is outside [0, V) (the message names it, its position and V).</exception>
    public static void Gather(WeightMatrix table, ReadOnlySpan<int> ids, Span<float> dst)
    {
        Check(table.Rows, table.Cols, ids, dst.Length, "dst", "Embedding.Gather");
        fixed (int* pi = ids)
        fixed (float* pd = dst)
            RowDriver.Run(new GatherRows(table, pi, pd), ids.Length, table.Cols);
    }

    /// <summary>The scalar specification of <see cref="Gather"/>: <see cref="WeightMatrix.RowToSingle"/> per id.</summary>
    public static void GatherReference(WeightMatrix table, ReadOnlySpan<int> ids, Span<float> dst)
    {
        Check(table.Rows, table.Cols, ids, dst.Length, "dst", "Embedding.GatherReference");
        for (int i = 0; i < ids.Length; i++) table.RowToSingle(ids[i], dst.Slice(i * table.Cols, table.Cols));
    }

    /// <summary>
    /// Backward of <see cref="Gather"/> for an F32 table: dTable[ids[i]] += dy[i] for every position i,
    /// repeated ids accumulating. Positions whose id is <paramref name="paddingId"/> contribute nothing
    /// (PyTorch's <c>padding_idx</c>; −1, the default, for none). Each column sums positions in order on one
    /// thread, so the result is the same for any thread count.
    /// </summary>
    /// <param name="ids">The n ids of the forward.</param>
    /// <param name="dy">Gradient of the gathered rows, (n, D).</param>
    /// <param name="dTable">Gradient of the table, (V, D), accumulated into.</param>
    /// <param name="vocab">V.</param>
    /// <param name="dim">D.</param>
    /// <param name="paddingId">An id whose rows get no gradient, or −1.</param>
    public static void Backward(ReadOnlySpan<int> ids, ReadOnlySpan<float> dy, Span<float> dTable, int vocab, int dim, int paddingId = -1)
    {
        CheckBackward(ids, dy, dTable, vocab, dim, "Embedding.Backward");
        fixed (int* pi = ids)
        fixed (float* pdy = dy, pdt = dTable)
            RowDriver.RunColumns(new ScatterColumns(pi, pdy, pdt, ids.Length, dim, paddingId), ids.Length, dim, Simd.Current);
    }

    /// <summary>The scalar specification of <see cref="Backward"/>.</summary>
    public static void BackwardReference(ReadOnlySpan<int> ids, ReadOnlySpan<float> dy, Span<float> dTable, int vocab, int dim, int paddingId = -1)
    {
        CheckBackward(ids, dy, dTable, vocab, dim, "Embedding.BackwardReference");
        for (int i = 0; i < ids.Length; i++)
        {
            if (ids[i] == paddingId) continue;
            for (int j = 0; j < dim; j++) dTable[ids[i] * dim + j] += dy[i * dim + j];
        }
    }

    static void Check(int vocab, int dim, ReadOnlySpan<int> ids, int outLength, string outName, string op)
    {
        long n = (long)ids.Length * dim;
        if (outLength < n) throw new ArgumentException($"{op}: {outName} needs {n} values ({ids.Length} ids × {dim}), got {outLength}", outName);
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)vocab)
                throw new ArgumentException($"{op}: id {ids[i]} at position {i} is outside the vocabulary of {vocab} rows [0, {vocab})", nameof(ids));
    }

    static void CheckBackward(ReadOnlySpan<int> ids, ReadOnlySpan<float> dy, Span<float> dTable, int vocab, int dim, string op)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(vocab);
        ArgumentOutOfRangeException.ThrowIfNegative(dim);
        if (dTable.Length < (long)vocab * dim) throw new ArgumentException($"{op}: dTable needs {(long)vocab * dim} values ({vocab}×{dim}), got {dTable.Length}", nameof(dTable));
        Check(vocab, dim, ids, dy.Length, "dy", op);
    }

    // Row i of the output: table row ids[i], widened. The scalar twin is the reference's own widening.
    readonly struct GatherRows(WeightMatrix table, int* ids, float* dst) : IRowOperator
    {
        public void Row<TV>(int i) where TV : unmanaged, IVec<TV>
        {
            int d = table.Cols;
            byte* row = table.Row(ids[i]);
            float* o = dst + (long)i * d;
            switch (table.DType)
            {
                case DType.F32: Buffer.MemoryCopy(row, o, 4L * d, 4L * d); break;
                case DType.BF16: BFloat16Row<TV>((ushort*)row, o, d); break;
                case DType.F16: HalfRow<TV>((ushort*)row, o, d); break;
                case DType.Q8_0: Q8Row<TV>((BlockQ8_0*)row, o, d); break;
                case DType.Q4_0: Q4Row<TV>(row, o, d, regrouped: false); break;
                case DType.Q4_0R8: Q4Row<TV>(row, o, d, regrouped: true); break;
                default: throw new InvalidOperationException($"Embedding: {table.DType} is not a table dtype");
            }
        }

        public void RowScalar(int i) => table.RowToSingle(ids[i], new Span<float>(dst + (long)i * table.Cols, table.Cols));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Q8Row<TV>(BlockQ8_0* blocks, float* dst, int d) where TV : unmanaged, IVec<TV>
    {
        int n = TV.Count;
        for (int b = 0; b < d / DTypes.Q8BlockSize; b++)
        {
            var scale = TV.Splat(Half16.ToSingle(blocks[b].D));
            sbyte* q = blocks[b].Qs;
            float* o = dst + b * DTypes.Q8BlockSize;
            for (int j = 0; j < DTypes.Q8BlockSize; j += n) TV.Store(scale * TV.LoadSBytes(q + j), o + j);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Q4Row<TV>(byte* row, float* dst, int d, bool regrouped) where TV : unmanaged, IVec<TV>
    {
        int n = TV.Count;
        sbyte* q = stackalloc sbyte[DTypes.Q4BlockSize];
        BlockQ4_0 scratch;
        for (int b = 0; b < d / DTypes.Q4BlockSize; b++)
        {
            var blk = Q4R8.BlockOf(row, b, regrouped, &scratch);
            var scale = TV.Splat(Half16.ToSingle(blk->D));
            Q4.Unpack(blk, q);
            float* o = dst + b * DTypes.Q4BlockSize;
            for (int j = 0; j < DTypes.Q4BlockSize; j += n) TV.Store(scale * TV.LoadSBytes(q + j), o + j);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void BFloat16Row<TV>(ushort* src, float* dst, int n) where TV : unmanaged, IVec<TV>
    {
        int i = 0;
        for (; i + TV.Count <= n; i += TV.Count) TV.Store(TV.LoadBFloat16(src + i), dst + i);
        for (; i < n; i++) dst[i] = BFloat16.ToSingle(src[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void HalfRow<TV>(ushort* src, float* dst, int n) where TV : unmanaged, IVec<TV>
    {
        int i = 0;
        for (; i + TV.Count <= n; i += TV.Count) TV.Store(TV.LoadHalf(src + i), dst + i);
        for (; i < n; i++) dst[i] = Half16.ToSingle(src[i]);
    }

    // Columns [c0, c1) of dTable[ids[i]] += dy[i] over every position i in order.
    readonly struct ScatterColumns(int* ids, float* dy, float* dTable, int count, int dim, int paddingId) : IRangeOperator
    {
        public void Range<TV>(int c0, int c1) where TV : unmanaged, IVec<TV>
        {
            for (int i = 0; i < count; i++)
                if (ids[i] != paddingId) AddTo<TV>(dy + (long)i * dim, dTable + (long)ids[i] * dim, c0, c1);
        }

        public void RangeScalar(int c0, int c1)
        {
            for (int i = 0; i < count; i++)
            {
                if (ids[i] == paddingId) continue;
                float* src = dy + (long)i * dim, dst = dTable + (long)ids[i] * dim;
                for (int j = c0; j < c1; j++) dst[j] += src[j];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void AddTo<TV>(float* src, float* dst, int c0, int c1) where TV : unmanaged, IVec<TV>
    {
        int j = c0;
        for (; j + TV.Count <= c1; j += TV.Count) TV.Store(TV.Load(dst + j) + TV.Load(src + j), dst + j);
        for (; j < c1; j++) dst[j] += src[j];
    }
}
