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
/// Runs a row operator over rows [0, rows): the one place that splits rows across the kernel pool
/// (inline below <see cref="RowSplit.ParallelThreshold"/> elements) and picks the vector width
/// (<see cref="Simd.Current"/> on the calling thread, so <see cref="Simd.Override"/> reaches every row).
/// </summary>
internal static class RowDriver
{
    /// <summary>Runs <paramref name="op"/> on every row; <paramref name="rowWork"/> is the elements a row touches.</summary>
    public static void Run<TOp>(in TOp op, int rows, long rowWork) where TOp : struct, IRowOperator
    {
        var task = new Rows<TOp> { Op = op, Count = rows, Width = Simd.Current, Tasks = RowSplit.Tasks(rows, rowWork, KernelPool.Default) };
        if (task.Tasks <= 1) task.Execute(0);
        else KernelPool.Default.Run(task.Tasks, ref task);
    }

    struct Rows<TOp> : IParallelTask where TOp : struct, IRowOperator
    {
        public TOp Op;
        public int Count, Tasks;
        public SimdWidth Width;

        public void Execute(int index)
        {
            var (r0, r1) = Tasks <= 1 ? (0, Count) : Partition.Range(Count, Tasks, index);
            switch (Width)
            {
                case SimdWidth.V512: for (int r = r0; r < r1; r++) Op.Row<V512>(r); break;
                case SimdWidth.V256: for (int r = r0; r < r1; r++) Op.Row<V256>(r); break;
                case SimdWidth.V128: for (int r = r0; r < r1; r++) Op.Row<V128>(r); break;
                default: for (int r = r0; r < r1; r++) Op.RowScalar(r); break;
            }
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
