using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Encore.Tensors.Numerics;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

/// <summary>
/// Token embedding lookup: rows of a (V, D) table in any weight dtype (F32, BF16, F16, Q8_0, as
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
        var width = Simd.Current;
        fixed (int* pi = ids)
        fixed (float* pd = dst)
        {
            var task = new GatherTask { Table = table, Ids = pi, Dst = pd, Count = ids.Length, Width = width };
            task.Tasks = RowSplit.Tasks(ids.Length, table.Cols, KernelPool.Default);
            if (task.Tasks <= 1) task.Execute(0);
            else KernelPool.Default.Run(task.Tasks, ref task);
        }
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
        var width = Simd.Current;
        fixed (int* pi = ids)
        fixed (float* pdy = dy, pdt = dTable)
        {
            int chunks = (dim + 63) / 64;
            var task = new BackwardTask { Ids = pi, Dy = pdy, DTable = pdt, Count = ids.Length, Dim = dim, Chunks = chunks, PaddingId = paddingId, Width = width };
            task.Tasks = (long)ids.Length * dim <= RowSplit.ParallelThreshold ? 1 : Math.Min(chunks, KernelPool.Default.ThreadCount * 4);
            if (task.Tasks <= 1) task.Execute(0);
            else KernelPool.Default.Run(task.Tasks, ref task);
        }
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

    struct GatherTask : IParallelTask
    {
        public WeightMatrix Table;
        public int* Ids;
        public float* Dst;
        public int Count, Tasks;
        public SimdWidth Width;

        public readonly void Execute(int index)
        {
            var (i0, i1) = Tasks <= 1 ? (0, Count) : Partition.Range(Count, Tasks, index);
            int d = Table.Cols;
            for (int i = i0; i < i1; i++)
            {
                byte* row = Table.Row(Ids[i]);
                float* dst = Dst + (long)i * d;
                switch (Table.DType)
                {
                    case DType.F32: Buffer.MemoryCopy(row, dst, 4L * d, 4L * d); break;
                    case DType.BF16: BFloat16.ToSingle(new ReadOnlySpan<ushort>(row, d), new Span<float>(dst, d), Width); break;
                    case DType.F16: HalfRow((ushort*)row, dst, d, Width); break;
                    case DType.Q8_0:
                        switch (Width)
                        {
                            case SimdWidth.V512: Q8Row<V512>((BlockQ8_0*)row, dst, d); break;
                            case SimdWidth.V256: Q8Row<V256>((BlockQ8_0*)row, dst, d); break;
                            case SimdWidth.V128: Q8Row<V128>((BlockQ8_0*)row, dst, d); break;
                            default: Q8.Dequantize(new ReadOnlySpan<BlockQ8_0>(row, d / DTypes.Q8BlockSize), new Span<float>(dst, d)); break;
                        }
                        break;
                    default: throw new InvalidOperationException($"Embedding: {Table.DType} is not a table dtype");
                }
            }
        }
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

    // binary16 → binary32 by bit manipulation (the branch-free form of Giesen's half_to_float): move
    // exponent and mantissa into place and rebias the exponent by 127 − 15; Inf/NaN get the rest of the
    // exponent range (NaNs made quiet, as Half's conversion does); zero and subnormals are renormalized
    // by a float subtraction of 2⁻¹⁴ (exact).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void HalfRow(ushort* src, float* dst, int n, SimdWidth width)
    {
        int i = 0;
        if (width >= SimdWidth.V512)
        {
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(src + i));
                var u = Vector512.Create(lo, hi);
                var o = (u & Vector512.Create(0x7FFFu)) << 13;
                var e = o & Vector512.Create(0x0F80_0000u);
                o += Vector512.Create(0x3800_0000u);
                var special = o + Vector512.Create(0x3800_0000u);
                special |= ~Vector512.Equals(special & Vector512.Create(0x007F_FFFFu), Vector512<uint>.Zero) & Vector512.Create(0x0040_0000u);
                o = Vector512.ConditionalSelect(Vector512.Equals(e, Vector512.Create(0x0F80_0000u)), special, o);
                var sub = ((o + Vector512.Create(0x0080_0000u)).AsSingle() - Vector512.Create(0x3880_0000u).AsSingle()).AsUInt32();
                o = Vector512.ConditionalSelect(Vector512.Equals(e, Vector512<uint>.Zero), sub, o);
                (o | ((u & Vector512.Create(0x8000u)) << 16)).AsSingle().Store(dst + i);
            }
        }
        if (width >= SimdWidth.V256)
        {
            for (; i + 8 <= n; i += 8)
            {
                var (lo, hi) = Vector128.Widen(Vector128.Load(src + i));
                var u = Vector256.Create(lo, hi);
                var o = (u & Vector256.Create(0x7FFFu)) << 13;
                var e = o & Vector256.Create(0x0F80_0000u);
                o += Vector256.Create(0x3800_0000u);
                var special = o + Vector256.Create(0x3800_0000u);
                special |= ~Vector256.Equals(special & Vector256.Create(0x007F_FFFFu), Vector256<uint>.Zero) & Vector256.Create(0x0040_0000u);
                o = Vector256.ConditionalSelect(Vector256.Equals(e, Vector256.Create(0x0F80_0000u)), special, o);
                var sub = ((o + Vector256.Create(0x0080_0000u)).AsSingle() - Vector256.Create(0x3880_0000u).AsSingle()).AsUInt32();
                o = Vector256.ConditionalSelect(Vector256.Equals(e, Vector256<uint>.Zero), sub, o);
                (o | ((u & Vector256.Create(0x8000u)) << 16)).AsSingle().Store(dst + i);
            }
        }
        if (width >= SimdWidth.V128)
        {
            for (; i + 4 <= n; i += 4)
            {
                var u = Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)(src + i)).AsUInt16());
                var o = (u & Vector128.Create(0x7FFFu)) << 13;
                var e = o & Vector128.Create(0x0F80_0000u);
                o += Vector128.Create(0x3800_0000u);
                var special = o + Vector128.Create(0x3800_0000u);
                special |= ~Vector128.Equals(special & Vector128.Create(0x007F_FFFFu), Vector128<uint>.Zero) & Vector128.Create(0x0040_0000u);
                o = Vector128.ConditionalSelect(Vector128.Equals(e, Vector128.Create(0x0F80_0000u)), special, o);
                var sub = ((o + Vector128.Create(0x0080_0000u)).AsSingle() - Vector128.Create(0x3880_0000u).AsSingle()).AsUInt32();
                o = Vector128.ConditionalSelect(Vector128.Equals(e, Vector128<uint>.Zero), sub, o);
                (o | ((u & Vector128.Create(0x8000u)) << 16)).AsSingle().Store(dst + i);
            }
        }
        for (; i < n; i++) dst[i] = Half16.ToSingle(src[i]);
    }

    struct BackwardTask : IParallelTask
    {
        public int* Ids;
        public float* Dy, DTable;
        public int Count, Dim, Chunks, Tasks, PaddingId;
        public SimdWidth Width;

        public readonly void Execute(int index)
        {
            var (k0, k1) = Tasks <= 1 ? (0, Chunks) : Partition.Range(Chunks, Tasks, index);
            int c0 = k0 * 64, c1 = Math.Min(Dim, k1 * 64);
            for (int i = 0; i < Count; i++)
            {
                if (Ids[i] == PaddingId) continue;
                float* src = Dy + (long)i * Dim, dst = DTable + (long)Ids[i] * Dim;
                switch (Width)
                {
                    case SimdWidth.V512: AddTo<V512>(src, dst, c0, c1); break;
                    case SimdWidth.V256: AddTo<V256>(src, dst, c0, c1); break;
                    case SimdWidth.V128: AddTo<V128>(src, dst, c0, c1); break;
                    default: for (int j = c0; j < c1; j++) dst[j] += src[j]; break;
                }
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
