using System.Runtime.CompilerServices;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

/// <summary>
/// Root-mean-square layer normalization (Zhang &amp; Sennrich 2019) as T5 and Llama apply it:
/// y = x / √(mean(x²) + ε) · w, the mean of squares taken in binary32 (HF <c>T5LayerNorm</c>,
/// <c>LlamaRMSNorm</c>), no mean subtraction and no bias. Rows are the (rows, cols) row-major input's
/// rows. The vector paths sum squares in float vector partial sums; against the double reference
/// they agree to a few float ulps (about 1e-6 relative) for rows of a few thousand values.
/// </summary>
public static unsafe class RmsNorm
{
    /// <summary>
    /// y = x·rstd·w per row with rstd = 1/√(mean(x²) + ε). <paramref name="y"/> may be <paramref name="x"/>.
    /// </summary>
    /// <param name="x">Input, (rows, cols).</param>
    /// <param name="weight">Scale w, (cols); empty for none (w = 1).</param>
    /// <param name="y">Output, (rows, cols).</param>
    /// <param name="rows">Rows (e.g. B·T).</param>
    /// <param name="cols">Columns normalized over (D).</param>
    /// <param name="eps">ε, added to the mean square (T5 1e-6, Llama 1e-5/1e-6).</param>
    /// <param name="rstd">Optional (rows) output of each row's rstd, which <see cref="Backward"/> needs.</param>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int rows, int cols, float eps,
        Span<float> rstd = default)
    {
        Check(x, weight, y, rows, cols, eps, rstd, "RmsNorm.Forward");
        fixed (float* px = x, pw = weight, py = y, pr = rstd)
            RowDriver.Run(new ForwardRows(px, pw, py, pr, cols, eps), rows, cols);
    }

    /// <summary>The scalar specification of <see cref="Forward"/>: sums and the reciprocal square root in double.</summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int rows, int cols, float eps,
        Span<float> rstd = default)
    {
        Check(x, weight, y, rows, cols, eps, rstd, "RmsNorm.Reference");
        fixed (float* px = x, pw = weight, py = y, pr = rstd)
            for (int r = 0; r < rows; r++) RowReference(px, pw, py, pr, r, cols, eps);
    }

    /// <summary>
    /// Backward of <see cref="Forward"/>, from the input x and the forward's rstd. With x̂ = x·rstd and
    /// g = dy·w: dx = rstd·(g − x̂·mean(g·x̂)), and dw += Σ_rows dy·x̂ (accumulated into
    /// <paramref name="dWeight"/>; empty to skip, and it must be empty when <paramref name="weight"/> is).
    /// <paramref name="dx"/> may be <paramref name="dy"/>. The weight gradient sums rows in order
    /// for every column, so it is the same for any thread count.
    /// </summary>
    public static void Backward(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> rstd, ReadOnlySpan<float> dy,
        Span<float> dx, Span<float> dWeight, int rows, int cols)
    {
        CheckBackward(x, weight, rstd, dy, dx, dWeight, rows, cols, "RmsNorm.Backward");
        fixed (float* px = x, pw = weight, pr = rstd, pdy = dy, pdx = dx, pdw = dWeight)
        {
            // Parameter gradients first: they read dy, which the row pass may overwrite (dx = dy).
            if (pdw != null) NormColumns.Accumulate(px, null, pr, pdy, pdw, null, rows, cols, Simd.Current);
            RowDriver.Run(new NormRows.BackwardRows(px, pw, null, pr, pdy, pdx, cols), rows, cols);
        }
    }

    /// <summary>The scalar specification of <see cref="Backward"/>, in double.</summary>
    public static void BackwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> rstd, ReadOnlySpan<float> dy,
        Span<float> dx, Span<float> dWeight, int rows, int cols)
    {
        CheckBackward(x, weight, rstd, dy, dx, dWeight, rows, cols, "RmsNorm.BackwardReference");
        for (int c = 0; c < cols && !dWeight.IsEmpty; c++)
        {
            double s = 0;
            for (int r = 0; r < rows; r++) s += (double)dy[r * cols + c] * x[r * cols + c] * rstd[r];
            dWeight[c] += (float)s;
        }
        for (int r = 0; r < rows; r++)
        {
            double dot = 0, rs = rstd[r];
            for (int c = 0; c < cols; c++)
                dot += (double)dy[r * cols + c] * (weight.IsEmpty ? 1 : weight[c]) * x[r * cols + c] * rs;
            dot /= cols;
            for (int c = 0; c < cols; c++)
            {
                double g = (double)dy[r * cols + c] * (weight.IsEmpty ? 1 : weight[c]);
                dx[r * cols + c] = (float)(rs * (g - x[r * cols + c] * rs * dot));
            }
        }
    }

    static void Check(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int rows, int cols, float eps, Span<float> rstd, string op)
    {
        RowChecks.Size(rows, cols);
        RowChecks.Matrix(op, nameof(x), x.Length, rows, cols);
        RowChecks.Matrix(op, nameof(y), y.Length, rows, cols);
        RowChecks.PerColumnOrEmpty(op, nameof(weight), weight.Length, cols);
        if (!rstd.IsEmpty) RowChecks.PerRow(op, nameof(rstd), rstd.Length, rows);
        if (!(eps >= 0)) throw new ArgumentException($"{op}: eps must be ≥ 0, got {eps}", nameof(eps));
    }

    static void CheckBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> rstd, ReadOnlySpan<float> dy,
        Span<float> dx, Span<float> dWeight, int rows, int cols, string op)
    {
        RowChecks.NormBackward(op, x.Length, dy.Length, dx.Length, rstd.Length, rows, cols);
        RowChecks.PerColumnOrEmpty(op, nameof(weight), weight.Length, cols);
        if (!dWeight.IsEmpty && (weight.IsEmpty || dWeight.Length != cols))
            throw new ArgumentException($"{op}: dWeight needs {cols} values and a weight, got {dWeight.Length}", nameof(dWeight));
    }

    readonly struct ForwardRows(float* x, float* w, float* y, float* rstd, int cols, float eps) : IRowOperator
    {
        public void Row<TV>(int r) where TV : unmanaged, IVec<TV> => RmsNorm.Row<TV>(x, w, y, rstd, r, cols, eps);
        public void RowScalar(int r) => RowReference(x, w, y, rstd, r, cols, eps);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Row<TV>(float* x0, float* w, float* y0, float* rstdOut, int r, int cols, float eps) where TV : unmanaged, IVec<TV>
    {
        float* x = x0 + (long)r * cols, y = y0 + (long)r * cols;
        int n = TV.Count, j = 0;
        var acc = TV.Splat(0f);
        float sum = 0;
        for (; j + n <= cols; j += n) { var v = TV.Load(x + j); acc = TV.Fma(v, v, acc); }
        for (; j < cols; j++) sum += x[j] * x[j];
        sum += TV.Sum(acc);
        float rstd = 1f / MathF.Sqrt(sum / cols + eps);
        if (rstdOut != null) rstdOut[r] = rstd;
        var vr = TV.Splat(rstd);
        j = 0;
        if (w == null)
        {
            for (; j + n <= cols; j += n) TV.Store(TV.Load(x + j) * vr, y + j);
            for (; j < cols; j++) y[j] = x[j] * rstd;
        }
        else
        {
            for (; j + n <= cols; j += n) TV.Store(TV.Load(x + j) * vr * TV.Load(w + j), y + j);
            for (; j < cols; j++) y[j] = x[j] * rstd * w[j];
        }
    }

    static void RowReference(float* x0, float* w, float* y0, float* rstdOut, int r, int cols, float eps)
    {
        float* x = x0 + (long)r * cols, y = y0 + (long)r * cols;
        double sum = 0;
        for (int j = 0; j < cols; j++) sum += (double)x[j] * x[j];
        double rstd = 1 / Math.Sqrt(sum / cols + eps);
        if (rstdOut != null) rstdOut[r] = (float)rstd;
        for (int j = 0; j < cols; j++) y[j] = (float)(x[j] * rstd * (w == null ? 1 : w[j]));
    }
}
