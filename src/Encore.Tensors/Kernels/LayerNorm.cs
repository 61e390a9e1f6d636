using System.Runtime.CompilerServices;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

/// <summary>
/// Layer normalization (Ba et al. 2016) as PyTorch's <c>nn.LayerNorm</c> computes it:
/// y = (x − mean)/√(var + ε)·γ + β with the biased variance (divided by cols), over each row of a
/// row-major (rows, cols) input. The variance is taken in a second pass over the deviations rather
/// than as E[x²] − mean², and both passes work on x shifted by its first value, so rows with a large
/// mean keep their precision. The vector paths sum in float vector partial sums; against the double
/// reference they agree to about 1e-6 relative (rows of thousands of values, mean up to 1e4·std).
/// </summary>
public static unsafe class LayerNorm
{
    /// <summary>
    /// y = (x − mean)·rstd·γ + β per row. <paramref name="y"/> may be <paramref name="x"/>.
    /// </summary>
    /// <param name="x">Input, (rows, cols).</param>
    /// <param name="gamma">Scale γ, (cols); empty for none.</param>
    /// <param name="beta">Shift β, (cols); empty for none.</param>
    /// <param name="y">Output, (rows, cols).</param>
    /// <param name="rows">Rows (e.g. B·T).</param>
    /// <param name="cols">Columns normalized over (D).</param>
    /// <param name="eps">ε added to the variance (PyTorch default 1e-5; BERT 1e-12).</param>
    /// <param name="mean">Optional (rows) output of each row's mean, for <see cref="Backward"/>.</param>
    /// <param name="rstd">Optional (rows) output of each row's 1/√(var + ε), for <see cref="Backward"/>.</param>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Span<float> y,
        int rows, int cols, float eps, Span<float> mean = default, Span<float> rstd = default)
    {
        Check(x, gamma, beta, y, rows, cols, eps, mean, rstd, "LayerNorm.Forward");
        fixed (float* px = x, pg = gamma, pb = beta, py = y, pm = mean, pr = rstd)
            RowDriver.Run(new ForwardRows { X = px, G = pg, B = pb, Y = py, Mean = pm, Rstd = pr, Cols = cols, Eps = eps }, rows, cols);
    }

    /// <summary>The scalar specification of <see cref="Forward"/>, in double.</summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Span<float> y,
        int rows, int cols, float eps, Span<float> mean = default, Span<float> rstd = default)
    {
        Check(x, gamma, beta, y, rows, cols, eps, mean, rstd, "LayerNorm.Reference");
        fixed (float* px = x, pg = gamma, pb = beta, py = y, pm = mean, pr = rstd)
            for (int r = 0; r < rows; r++) RowReference(px, pg, pb, py, pm, pr, r, cols, eps);
    }

    /// <summary>
    /// Backward of <see cref="Forward"/> from x and the forward's mean and rstd. With x̂ = (x − mean)·rstd
    /// and g = dy·γ: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); dγ += Σ_rows dy·x̂ and dβ += Σ_rows dy
    /// (accumulated; either may be empty to skip). <paramref name="dx"/> may be <paramref name="dy"/>.
    /// Parameter gradients sum rows in order per column, independent of the thread count.
    /// </summary>
    public static void Backward(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> mean, ReadOnlySpan<float> rstd,
        ReadOnlySpan<float> dy, Span<float> dx, Span<float> dGamma, Span<float> dBeta, int rows, int cols)
    {
        CheckBackward(x, gamma, mean, rstd, dy, dx, dGamma, dBeta, rows, cols, "LayerNorm.Backward");
        fixed (float* px = x, pg = gamma, pm = mean, pr = rstd, pdy = dy, pdx = dx, pdg = dGamma, pdb = dBeta)
        {
            // Parameter gradients first: they read dy, which the row pass may overwrite (dx = dy).
            if (pdg != null || pdb != null) NormColumns.Accumulate(px, pm, pr, pdy, pdg, pdb, rows, cols, Simd.Current);
            RowDriver.Run(new NormRows.BackwardRows(px, pg, pm, pr, pdy, pdx, cols), rows, cols);
        }
    }

    /// <summary>The scalar specification of <see cref="Backward"/>, in double.</summary>
    public static void BackwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> mean, ReadOnlySpan<float> rstd,
        ReadOnlySpan<float> dy, Span<float> dx, Span<float> dGamma, Span<float> dBeta, int rows, int cols)
    {
        CheckBackward(x, gamma, mean, rstd, dy, dx, dGamma, dBeta, rows, cols, "LayerNorm.BackwardReference");
        for (int c = 0; c < cols; c++)
        {
            double sg = 0, sb = 0;
            for (int r = 0; r < rows; r++)
            {
                sg += (double)dy[r * cols + c] * (x[r * cols + c] - (double)mean[r]) * rstd[r];
                sb += dy[r * cols + c];
            }
            if (!dGamma.IsEmpty) dGamma[c] += (float)sg;
            if (!dBeta.IsEmpty) dBeta[c] += (float)sb;
        }
        for (int r = 0; r < rows; r++)
        {
            double sg = 0, sgx = 0, m = mean[r], rs = rstd[r];
            for (int c = 0; c < cols; c++)
            {
                double g = (double)dy[r * cols + c] * (gamma.IsEmpty ? 1 : gamma[c]);
                sg += g;
                sgx += g * (x[r * cols + c] - m) * rs;
            }
            sg /= cols;
            sgx /= cols;
            for (int c = 0; c < cols; c++)
            {
                double g = (double)dy[r * cols + c] * (gamma.IsEmpty ? 1 : gamma[c]);
                dx[r * cols + c] = (float)(rs * (g - sg - (x[r * cols + c] - m) * rs * sgx));
            }
        }
    }

    static void Check(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Span<float> y, int rows, int cols, float eps,
        Span<float> mean, Span<float> rstd, string op)
    {
        RowChecks.Size(rows, cols);
        RowChecks.Matrix(op, nameof(x), x.Length, rows, cols);
        RowChecks.Matrix(op, nameof(y), y.Length, rows, cols);
        RowChecks.PerColumnOrEmpty(op, nameof(gamma), gamma.Length, cols);
        RowChecks.PerColumnOrEmpty(op, nameof(beta), beta.Length, cols);
        if (!mean.IsEmpty) RowChecks.PerRow(op, nameof(mean), mean.Length, rows);
        if (!rstd.IsEmpty) RowChecks.PerRow(op, nameof(rstd), rstd.Length, rows);
        if (!(eps >= 0)) throw new ArgumentException($"{op}: eps must be ≥ 0, got {eps}", nameof(eps));
    }

    static void CheckBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> mean, ReadOnlySpan<float> rstd,
        ReadOnlySpan<float> dy, Span<float> dx, Span<float> dGamma, Span<float> dBeta, int rows, int cols, string op)
    {
        RowChecks.NormBackward(op, x.Length, dy.Length, dx.Length, rstd.Length, rows, cols);
        RowChecks.PerRow(op, nameof(mean), mean.Length, rows);
        RowChecks.PerColumnOrEmpty(op, nameof(gamma), gamma.Length, cols);
        RowChecks.PerColumnOrEmpty(op, nameof(dGamma), dGamma.Length, cols);
        RowChecks.PerColumnOrEmpty(op, nameof(dBeta), dBeta.Length, cols);
    }

    readonly struct ForwardRows : IRowOperator
    {
        public float* X { get; init; }
        public float* G { get; init; }
        public float* B { get; init; }
        public float* Y { get; init; }
        public float* Mean { get; init; }
        public float* Rstd { get; init; }
        public int Cols { get; init; }
        public float Eps { get; init; }

        public void Row<TV>(int r) where TV : unmanaged, IVec<TV> => LayerNorm.Row<TV>(this, r);
        public void RowScalar(int r) => RowReference(X, G, B, Y, Mean, Rstd, r, Cols, Eps);
    }

    // Sums are taken of x − k with k = x[0], and deviations formed as (x − k) − m with m = mean − k: for
    // a row far from zero (|mean| ≫ std) x − k is exact and small, so neither the sum nor the rounding of
    // the mean to float costs the precision that E[x] − x would.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Row<TV>(in ForwardRows t, int r) where TV : unmanaged, IVec<TV>
    {
        int cols = t.Cols, n = TV.Count, j = 0;
        float* x = t.X + (long)r * cols, y = t.Y + (long)r * cols;
        float k = cols > 0 ? x[0] : 0f;
        var vk = TV.Splat(k);
        var acc = TV.Splat(0f);
        float sum = 0;
        for (; j + n <= cols; j += n) acc += TV.Load(x + j) - vk;
        for (; j < cols; j++) sum += x[j] - k;
        float m = cols == 0 ? 0 : (sum + TV.Sum(acc)) / cols;
        var vm = TV.Splat(m);
        acc = TV.Splat(0f);
        sum = 0;
        for (j = 0; j + n <= cols; j += n) { var d = TV.Load(x + j) - vk - vm; acc = TV.Fma(d, d, acc); }
        for (; j < cols; j++) { float d = x[j] - k - m; sum += d * d; }
        float rstd = 1f / MathF.Sqrt((sum + TV.Sum(acc)) / cols + t.Eps);
        if (t.Mean != null) t.Mean[r] = k + m;
        if (t.Rstd != null) t.Rstd[r] = rstd;
        var vr = TV.Splat(rstd);
        for (j = 0; j + n <= cols; j += n)
        {
            var v = (TV.Load(x + j) - vk - vm) * vr;
            if (t.G != null) v *= TV.Load(t.G + j);
            if (t.B != null) v += TV.Load(t.B + j);
            TV.Store(v, y + j);
        }
        for (; j < cols; j++)
        {
            float v = (x[j] - k - m) * rstd;
            if (t.G != null) v *= t.G[j];
            if (t.B != null) v += t.B[j];
            y[j] = v;
        }
    }

    static void RowReference(float* x0, float* g, float* b, float* y0, float* meanOut, float* rstdOut, int r, int cols, float eps)
    {
        float* x = x0 + (long)r * cols, y = y0 + (long)r * cols;
        double sum = 0;
        for (int j = 0; j < cols; j++) sum += x[j];
        double mean = cols == 0 ? 0 : sum / cols, ss = 0;
        for (int j = 0; j < cols; j++) ss += (x[j] - mean) * (x[j] - mean);
        double rstd = 1 / Math.Sqrt(ss / cols + eps);
        if (meanOut != null) meanOut[r] = (float)mean;
        if (rstdOut != null) rstdOut[r] = (float)rstd;
        for (int j = 0; j < cols; j++)
            y[j] = (float)((x[j] - mean) * rstd * (g == null ? 1 : g[j]) + (b == null ? 0 : b[j]));
    }
}
