using System.Runtime.CompilerServices;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

/// <summary>
/// One row of a row-wise kernel (a norm, a softmax, their backward passes): the vector path at any
/// width TV, and the scalar twin that specifies it and serves when no vector width is available.
/// An operator holds its arguments; <see cref="RowDriver"/> decides which rows it runs and how.
/// </summary>
internal interface IRowOperator
{
    /// <summary>Row <paramref name="row"/> at vector width <typeparamref name="TV"/>.</summary>
    void Row<TV>(int row) where TV : unmanaged, IVec<TV>;

    /// <summary>Row <paramref name="row"/> in scalar code (the reference).</summary>
    void RowScalar(int row);
}

/// <summary>
/// A kernel over a contiguous range of its items in one call: values of a flat span, columns of a
/// column reduction, or rows that share per-call scratch. For the element-wise kernels a call per
/// item, or per 64-value block, would cost as much as the work.
/// </summary>
internal interface IRangeOperator
{
    /// <summary>Items [<paramref name="first"/>, <paramref name="end"/>) at vector width <typeparamref name="TV"/>.</summary>
    void Range<TV>(int first, int end) where TV : unmanaged, IVec<TV>;

    /// <summary>Items [<paramref name="first"/>, <paramref name="end"/>) in scalar code (the reference).</summary>
    void RangeScalar(int first, int end);
}

/// <summary>
/// Runs row and range operators: the one place that splits a kernel's work across the kernel pool
/// (inline below <see cref="RowSplit.ParallelThreshold"/> elements) and dispatches on the vector width
/// (by default <see cref="Simd.Current"/> on the calling thread, so <see cref="Simd.Override"/> reaches
/// every task).
/// </summary>
internal static class RowDriver
{
    /// <summary>Values per block of a flat span and columns per chunk of a column reduction: a multiple of every vector width, so no vector straddles two tasks.</summary>
    public const int Block = 64;

    /// <summary>Runs <paramref name="op"/> on every row; <paramref name="rowWork"/> is the elements a row touches.</summary>
    public static void Run<TOp>(in TOp op, int rows, long rowWork) where TOp : struct, IRowOperator
        => Run(op, rows, rowWork, Simd.Current);

    /// <summary>Runs <paramref name="op"/> on every row at <paramref name="width"/>.</summary>
    public static void Run<TOp>(in TOp op, int rows, long rowWork, SimdWidth width) where TOp : struct, IRowOperator
        => RunRows(new EachRow<TOp> { Op = op }, rows, rowWork, width);

    /// <summary>Runs <paramref name="op"/> over rows [0, rows), split into ranges as <see cref="Run{TOp}(in TOp, int, long)"/> splits rows.</summary>
    public static void RunRows<TOp>(in TOp op, int rows, long rowWork, SimdWidth width) where TOp : struct, IRangeOperator
        => Execute(op, rows, 1, RowSplit.Tasks(rows, rowWork, KernelPool.Default), width);

    /// <summary>
    /// Runs <paramref name="op"/> over the <paramref name="n"/> values of a flat span in whole 64-value
    /// blocks, no task smaller than <paramref name="minPerTask"/> values.
    /// </summary>
    public static void RunFlat<TOp>(in TOp op, int n, int minPerTask, SimdWidth width) where TOp : struct, IRangeOperator
    {
        int blocks = (int)(((long)n + Block - 1) / Block);
        int tasks = n <= RowSplit.ParallelThreshold ? 1 : Partition.Tasks(blocks, minPerTask / Block, KernelPool.Default);
        Execute(op, n, Block, tasks, width);
    }

    /// <summary>
    /// Runs <paramref name="op"/> over the <paramref name="cols"/> columns of a (rows, cols) reduction in
    /// whole 64-column chunks: each column sums its rows in order on one thread, so the result does
    /// not depend on the thread count.
    /// </summary>
    public static void RunColumns<TOp>(in TOp op, int rows, int cols, SimdWidth width) where TOp : struct, IRangeOperator
    {
        int chunks = (cols + Block - 1) / Block;
        int tasks = (long)rows * cols <= RowSplit.ParallelThreshold ? 1 : Math.Min(chunks, KernelPool.Default.ThreadCount * 4);
        Execute(op, cols, Block, tasks, width);
    }

    static void Execute<TOp>(in TOp op, int count, int unit, int tasks, SimdWidth width) where TOp : struct, IRangeOperator
    {
        var task = new Ranges<TOp> { Op = op, Count = count, Unit = unit, Tasks = tasks, Width = width };
        if (tasks <= 1) task.Execute(0);
        else KernelPool.Default.Run(tasks, ref task);
    }

    // Items [0, Count) in units of Unit items (1: rows; 64: blocks and chunks), whole units per task.
    struct Ranges<TOp> : IParallelTask where TOp : struct, IRangeOperator
    {
        public TOp Op;
        public int Count, Unit, Tasks;
        public SimdWidth Width;

        public void Execute(int index)
        {
            int first = 0, end = Count;
            if (Tasks > 1)
            {
                var (u0, u1) = Partition.Range((int)(((long)Count + Unit - 1) / Unit), Tasks, index);
                first = (int)Math.Min(Count, (long)u0 * Unit);
                end = (int)Math.Min(Count, (long)u1 * Unit);
            }
            switch (Width)
            {
                case SimdWidth.V512: Op.Range<V512>(first, end); break;
                case SimdWidth.V256: Op.Range<V256>(first, end); break;
                case SimdWidth.V128: Op.Range<V128>(first, end); break;
                default: Op.RangeScalar(first, end); break;
            }
        }
    }

    struct EachRow<TOp> : IRangeOperator where TOp : struct, IRowOperator
    {
        public TOp Op;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Range<TV>(int first, int end) where TV : unmanaged, IVec<TV>
        {
            for (int r = first; r < end; r++) Op.Row<TV>(r);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void RangeScalar(int first, int end)
        {
            for (int r = first; r < end; r++) Op.RowScalar(r);
        }
    }
}

/// <summary>
/// The argument checks of the row kernels' public entries, one message per kind of mistake: a
/// (rows, cols) matrix too short, a per-row or per-column vector of the wrong length.
/// </summary>
internal static class RowChecks
{
    /// <summary>Throws unless rows and cols are non-negative; returns rows·cols.</summary>
    public static long Size(int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        return (long)rows * cols;
    }

    /// <summary>The checks every norm backward shares: x, dy and dx (rows, cols), and one rstd per row.</summary>
    public static void NormBackward(string op, int xLength, int dyLength, int dxLength, int rstdLength, int rows, int cols)
    {
        Size(rows, cols);
        Matrix(op, "x", xLength, rows, cols);
        Matrix(op, "dy", dyLength, rows, cols);
        Matrix(op, "dx", dxLength, rows, cols);
        PerRow(op, "rstd", rstdLength, rows);
    }

    /// <summary>Throws unless the <paramref name="name"/> span of <paramref name="op"/> holds a (rows, cols) matrix.</summary>
    public static void Matrix(string op, string name, int length, int rows, int cols)
    {
        long n = (long)rows * cols;
        if (length < n) throw new ArgumentException($"{op}: {name} needs {n} values ({rows}×{cols}), got {length}", name);
    }

    /// <summary>Throws unless the <paramref name="name"/> span holds at least one value per row.</summary>
    public static void PerRow(string op, string name, int length, int rows)
    {
        if (length < rows) throw new ArgumentException($"{op}: {name} has {length} values for {rows} rows", name);
    }

    /// <summary>Throws unless the <paramref name="name"/> span is empty or holds one value per column.</summary>
    public static void PerColumnOrEmpty(string op, string name, int length, int cols)
    {
        if (length != 0 && length != cols) throw new ArgumentException($"{op}: {name} has {length} values for {cols} columns", name);
    }
}
