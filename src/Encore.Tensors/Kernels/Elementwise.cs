using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

/// <summary>
/// Element-wise arithmetic on float spans: add, multiply, scale, axpy, a row-vector (bias) add and its
/// backward, the column sums.
/// Each value takes one or two IEEE operations in a fixed order (no FMA), so every path — scalar,
/// each vector width, and <see cref="TensorPrimitives"/>, which the widest path calls — gives
/// bit-identical results. Outputs may alias inputs exactly (in place); partial overlaps are not allowed.
/// Large inputs are split over <see cref="KernelPool"/> in blocks of 64 values.
/// </summary>
public static unsafe class Elementwise
{
    /// <summary>dst = x + y.</summary>
    public static void Add(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst) => AddCore(x, y, dst, Simd.Current, usePrimitives: true);

    /// <summary>dst = x ⊙ y.</summary>
    public static void Multiply(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst) => MultiplyCore(x, y, dst, Simd.Current, usePrimitives: true);

    /// <summary>dst = α·x.</summary>
    public static void Scale(ReadOnlySpan<float> x, float alpha, Span<float> dst) => ScaleCore(x, alpha, dst, Simd.Current, usePrimitives: true);

    /// <summary>y = y + α·x (BLAS axpy; the product is rounded before the add, as the reference).</summary>
    public static void AddScaled(ReadOnlySpan<float> x, float alpha, Span<float> y) => AddScaledCore(x, alpha, y, Simd.Current, usePrimitives: true);

    /// <summary>dst[r, c] = x[r, c] + bias[c] for a row-major (rows, cols) x (a linear layer's bias).</summary>
    public static void AddRowBroadcast(ReadOnlySpan<float> x, ReadOnlySpan<float> bias, Span<float> dst, int rows, int cols)
        => AddRowBroadcastCore(x, bias, dst, rows, cols, Simd.Current, usePrimitives: true);

    /// <summary>
    /// dst[c] += Σ_r x[r, c] over a row-major (rows, cols) x: the backward of <see cref="AddRowBroadcast"/>
    /// (a bias gradient). Each column sums its rows in order on one thread, so every width and thread
    /// count gives the bits of <see cref="SumRowsReference"/>.
    /// </summary>
    public static void SumRows(ReadOnlySpan<float> x, int rows, int cols, Span<float> dst)
    {
        CheckSumRows(x.Length, dst.Length, rows, cols, "Elementwise.SumRows");
        fixed (float* px = x, pd = dst)
            RowDriver.RunColumns(new ColumnSums(px, pd, rows, cols), rows, cols, Simd.Current);
    }

    /// <summary>Scalar specification of <see cref="SumRows"/>: a float sum over rows in order, then added to dst.</summary>
    public static void SumRowsReference(ReadOnlySpan<float> x, int rows, int cols, Span<float> dst)
    {
        CheckSumRows(x.Length, dst.Length, rows, cols, "Elementwise.SumRowsReference");
        for (int c = 0; c < cols; c++)
        {
            float s = 0;
            for (int r = 0; r < rows; r++) s += x[r * cols + c];
            dst[c] += s;
        }
    }

    /// <summary>Scalar specification of <see cref="Add"/>.</summary>
    public static void AddReference(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst)
    {
        CheckBinary(x.Length, y.Length, dst.Length, "Elementwise.AddReference");
        for (int i = 0; i < x.Length; i++) dst[i] = x[i] + y[i];
    }

    /// <summary>Scalar specification of <see cref="Multiply"/>.</summary>
    public static void MultiplyReference(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst)
    {
        CheckBinary(x.Length, y.Length, dst.Length, "Elementwise.MultiplyReference");
        for (int i = 0; i < x.Length; i++) dst[i] = x[i] * y[i];
    }

    /// <summary>Scalar specification of <see cref="Scale"/>.</summary>
    public static void ScaleReference(ReadOnlySpan<float> x, float alpha, Span<float> dst)
    {
        CheckBinary(x.Length, x.Length, dst.Length, "Elementwise.ScaleReference");
        for (int i = 0; i < x.Length; i++) dst[i] = alpha * x[i];
    }

    /// <summary>Scalar specification of <see cref="AddScaled"/>.</summary>
    public static void AddScaledReference(ReadOnlySpan<float> x, float alpha, Span<float> y)
    {
        CheckBinary(x.Length, y.Length, y.Length, "Elementwise.AddScaledReference");
        for (int i = 0; i < x.Length; i++) y[i] = alpha * x[i] + y[i];
    }

    /// <summary>Scalar specification of <see cref="AddRowBroadcast"/>.</summary>
    public static void AddRowBroadcastReference(ReadOnlySpan<float> x, ReadOnlySpan<float> bias, Span<float> dst, int rows, int cols)
    {
        CheckBroadcast(x.Length, bias.Length, dst.Length, rows, cols, "Elementwise.AddRowBroadcastReference");
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) dst[r * cols + c] = x[r * cols + c] + bias[c];
    }

    // The entries below take the width and whether the widest path may hand off to TensorPrimitives,
    // so tests can run the own vector loop at every width, the widest included.

    internal static void AddCore(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst, SimdWidth width, bool usePrimitives)
    {
        CheckBinary(x.Length, y.Length, dst.Length, "Elementwise.Add");
        fixed (float* px = x, py = y, pd = dst) RowDriver.RunFlat(new Flat<AddOp>(new(), px, py, pd, usePrimitives && width == Simd.Best), x.Length, MinPerTask, width);
    }

    internal static void MultiplyCore(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst, SimdWidth width, bool usePrimitives)
    {
        CheckBinary(x.Length, y.Length, dst.Length, "Elementwise.Multiply");
        fixed (float* px = x, py = y, pd = dst) RowDriver.RunFlat(new Flat<MultiplyOp>(new(), px, py, pd, usePrimitives && width == Simd.Best), x.Length, MinPerTask, width);
    }

    internal static void ScaleCore(ReadOnlySpan<float> x, float alpha, Span<float> dst, SimdWidth width, bool usePrimitives)
    {
        CheckBinary(x.Length, x.Length, dst.Length, "Elementwise.Scale");
        fixed (float* px = x, pd = dst) RowDriver.RunFlat(new Flat<ScaleOp>(new(alpha), px, px, pd, usePrimitives && width == Simd.Best), x.Length, MinPerTask, width);
    }

    internal static void AddScaledCore(ReadOnlySpan<float> x, float alpha, Span<float> y, SimdWidth width, bool usePrimitives)
    {
        CheckBinary(x.Length, y.Length, y.Length, "Elementwise.AddScaled");
        fixed (float* px = x, py = y) RowDriver.RunFlat(new Flat<AxpyOp>(new(alpha), px, py, py, usePrimitives && width == Simd.Best), x.Length, MinPerTask, width);
    }

    internal static void AddRowBroadcastCore(ReadOnlySpan<float> x, ReadOnlySpan<float> bias, Span<float> dst, int rows, int cols, SimdWidth width, bool usePrimitives)
    {
        CheckBroadcast(x.Length, bias.Length, dst.Length, rows, cols, "Elementwise.AddRowBroadcast");
        fixed (float* px = x, pb = bias, pd = dst) RowDriver.Run(new BroadcastRows<AddOp>(new(), px, pb, pd, cols, usePrimitives && width == Simd.Best), rows, cols, width);
    }

    static void CheckBinary(int x, int y, int dst, string op)
    {
        if (y != x) throw new ArgumentException($"{op}: the inputs have {x} and {y} values", "y");
        if (dst < x) throw new ArgumentException($"{op}: the output has {dst} values for {x} inputs", "dst");
    }

    static void CheckSumRows(int x, int dst, int rows, int cols, string op)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (x < (long)rows * cols) throw new ArgumentException($"{op}: x needs {(long)rows * cols} values ({rows}×{cols}), got {x}", "x");
        if (dst < cols) throw new ArgumentException($"{op}: dst has {dst} values for {cols} columns", "dst");
    }

    static void CheckBroadcast(int x, int bias, int dst, int rows, int cols, string op)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        long n = (long)rows * cols;
        if (x < n) throw new ArgumentException($"{op}: x needs {n} values ({rows}×{cols}), got {x}", "x");
        if (dst < n) throw new ArgumentException($"{op}: dst needs {n} values ({rows}×{cols}), got {dst}", "dst");
        if (bias != cols) throw new ArgumentException($"{op}: bias has {bias} values for {cols} columns", "bias");
    }

    readonly struct ColumnSums(float* x, float* dst, int rows, int cols) : IRangeOperator
    {
        public void Range<TV>(int c0, int c1) where TV : unmanaged, IVec<TV> => SumColumns<TV>(x, dst, rows, cols, c0, c1);
        public void RangeScalar(int c0, int c1) => SumColumnsScalar(x, dst, rows, cols, c0, c1);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void SumColumns<TV>(float* x, float* dst, int rows, int cols, int c0, int c1) where TV : unmanaged, IVec<TV>
    {
        int j = c0;
        for (; j + TV.Count <= c1; j += TV.Count)
        {
            var acc = TV.Splat(0f);
            for (int r = 0; r < rows; r++) acc += TV.Load(x + (long)r * cols + j);
            TV.Store(TV.Load(dst + j) + acc, dst + j);
        }
        SumColumnsScalar(x, dst, rows, cols, j, c1);
    }

    static void SumColumnsScalar(float* x, float* dst, int rows, int cols, int c0, int c1)
    {
        for (int j = c0; j < c1; j++)
        {
            float s = 0;
            for (int r = 0; r < rows; r++) s += x[(long)r * cols + j];
            dst[j] += s;
        }
    }

    /// <summary>dst = f(x, y) per value, as a scalar, a vector, and a TensorPrimitives call.</summary>
    interface IOp
    {
        float Invoke(float x, float y);
        TV Invoke<TV>(TV x, TV y) where TV : unmanaged, IVec<TV>;
        void Primitives(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst);
    }

    readonly struct AddOp : IOp
    {
        public float Invoke(float x, float y) => x + y;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Invoke<TV>(TV x, TV y) where TV : unmanaged, IVec<TV> => x + y;
        public void Primitives(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst) => TensorPrimitives.Add(x, y, dst);
    }

    readonly struct MultiplyOp : IOp
    {
        public float Invoke(float x, float y) => x * y;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Invoke<TV>(TV x, TV y) where TV : unmanaged, IVec<TV> => x * y;
        public void Primitives(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst) => TensorPrimitives.Multiply(x, y, dst);
    }

    readonly struct ScaleOp(float alpha) : IOp
    {
        public float Invoke(float x, float y) => alpha * x;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Invoke<TV>(TV x, TV y) where TV : unmanaged, IVec<TV> => TV.Splat(alpha) * x;
        public void Primitives(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst) => TensorPrimitives.Multiply(x, alpha, dst);
    }

    // TensorPrimitives.MultiplyAdd rounds the product, then adds (it is not the fused form).
    readonly struct AxpyOp(float alpha) : IOp
    {
        public float Invoke(float x, float y) => alpha * x + y;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public TV Invoke<TV>(TV x, TV y) where TV : unmanaged, IVec<TV> => TV.Splat(alpha) * x + y;
        public void Primitives(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> dst) => TensorPrimitives.MultiplyAdd(x, alpha, y, dst);
    }

    // Tasks of at least 16384 values: an add is cheap next to a dispatch.
    const int MinPerTask = 16384;

    // Values [first, end) of dst = op(x, y); with primitives (the widest width only), through TensorPrimitives.
    readonly struct Flat<TOp>(TOp op, float* x, float* y, float* dst, bool primitives) : IRangeOperator where TOp : struct, IOp
    {
        public void Range<TV>(int first, int end) where TV : unmanaged, IVec<TV> => Segment<TOp, TV>(op, x + first, y + first, dst + first, end - first, primitives);
        public void RangeScalar(int first, int end) => SegmentScalar(op, x + first, y + first, dst + first, end - first, primitives);
    }

    // Row r of dst = op(x, bias) with the bias row broadcast.
    readonly struct BroadcastRows<TOp>(TOp op, float* x, float* bias, float* dst, int cols, bool primitives) : IRowOperator where TOp : struct, IOp
    {
        public void Row<TV>(int r) where TV : unmanaged, IVec<TV> => Segment<TOp, TV>(op, x + (long)r * cols, bias, dst + (long)r * cols, cols, primitives);
        public void RowScalar(int r) => SegmentScalar(op, x + (long)r * cols, bias, dst + (long)r * cols, cols, primitives);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Segment<TOp, TV>(TOp op, float* x, float* y, float* dst, int n, bool primitives) where TOp : struct, IOp where TV : unmanaged, IVec<TV>
    {
        if (primitives)
        {
            op.Primitives(new ReadOnlySpan<float>(x, n), new ReadOnlySpan<float>(y, n), new Span<float>(dst, n));
            return;
        }
        int w = TV.Count, i = 0;
        for (; i + w <= n; i += w) TV.Store(op.Invoke(TV.Load(x + i), TV.Load(y + i)), dst + i);
        for (; i < n; i++) dst[i] = op.Invoke(x[i], y[i]);
    }

    static void SegmentScalar<TOp>(TOp op, float* x, float* y, float* dst, int n, bool primitives) where TOp : struct, IOp
    {
        if (primitives)
        {
            op.Primitives(new ReadOnlySpan<float>(x, n), new ReadOnlySpan<float>(y, n), new Span<float>(dst, n));
            return;
        }
        for (int i = 0; i < n; i++) dst[i] = op.Invoke(x[i], y[i]);
    }
}
