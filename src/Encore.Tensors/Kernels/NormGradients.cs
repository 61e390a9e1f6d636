using System.Runtime.CompilerServices;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

/// <summary>The row and column halves of the normalization backward passes, shared by RMSNorm and LayerNorm.</summary>
internal static unsafe class NormRows
{
    /// <summary>
    /// The row pass of a norm backward as a row operator: LayerNorm passes each row's mean
    /// (<paramref name="mean"/>, centered), RMSNorm none (null: mean 0, not centered).
    /// </summary>
    public readonly struct BackwardRows(float* x, float* w, float* mean, float* rstd, float* dy, float* dx, int cols) : IRowOperator
    {
        public void Row<TV>(int r) where TV : unmanaged, IVec<TV>
        {
            long o = (long)r * cols;
            Backward<TV>(x + o, w, mean == null ? 0 : mean[r], rstd[r], dy + o, dx + o, cols, mean != null);
        }

        public void RowScalar(int r)
        {
            long o = (long)r * cols;
            BackwardScalar(x + o, w, mean == null ? 0 : mean[r], rstd[r], dy + o, dx + o, cols, mean != null);
        }
    }

    // x̂ = (x − mean)·rstd, g = dy·w: dx = rstd·(g − [LayerNorm: mean(g)] − x̂·mean(g·x̂)).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Backward<TV>(float* x, float* w, float mean, float rstd, float* dy, float* dx, int cols, bool centered)
        where TV : unmanaged, IVec<TV>
    {
        int n = TV.Count, j = 0;
        var vm = TV.Splat(mean);
        var vr = TV.Splat(rstd);
        var one = TV.Splat(1f);
        var sg = TV.Splat(0f);
        var sgx = TV.Splat(0f);
        float g1 = 0, gx1 = 0;
        for (; j + n <= cols; j += n)
        {
            var g = TV.Load(dy + j) * (w == null ? one : TV.Load(w + j));
            var xh = (TV.Load(x + j) - vm) * vr;
            sg += g;
            sgx = TV.Fma(g, xh, sgx);
        }
        for (; j < cols; j++)
        {
            float g = dy[j] * (w == null ? 1f : w[j]);
            g1 += g;
            gx1 += g * ((x[j] - mean) * rstd);
        }
        float meanG = centered ? (g1 + TV.Sum(sg)) / cols : 0f;
        float meanGx = (gx1 + TV.Sum(sgx)) / cols;
        var vmg = TV.Splat(meanG);
        var vmgx = TV.Splat(meanGx);
        for (j = 0; j + n <= cols; j += n)
        {
            var g = TV.Load(dy + j) * (w == null ? one : TV.Load(w + j));
            var xh = (TV.Load(x + j) - vm) * vr;
            TV.Store(vr * (g - vmg - xh * vmgx), dx + j);
        }
        for (; j < cols; j++)
        {
            float g = dy[j] * (w == null ? 1f : w[j]);
            float xh = (x[j] - mean) * rstd;
            dx[j] = rstd * (g - meanG - xh * meanGx);
        }
    }

    public static void BackwardScalar(float* x, float* w, float mean, float rstd, float* dy, float* dx, int cols, bool centered)
    {
        float sg = 0, sgx = 0;
        for (int j = 0; j < cols; j++)
        {
            float g = dy[j] * (w == null ? 1f : w[j]);
            sg += g;
            sgx += g * ((x[j] - mean) * rstd);
        }
        float meanG = centered ? sg / cols : 0f, meanGx = sgx / cols;
        for (int j = 0; j < cols; j++)
        {
            float g = dy[j] * (w == null ? 1f : w[j]);
            dx[j] = rstd * (g - meanG - (x[j] - mean) * rstd * meanGx);
        }
    }
}

/// <summary>
/// dw += Σ_rows dy·x̂ and db += Σ_rows dy, split over columns so that every column sums its rows in
/// order on one thread: the result does not depend on the thread count.
/// </summary>
internal static unsafe class NormColumns
{
    public static void Accumulate(float* x, float* mean, float* rstd, float* dy, float* dw, float* db, int rows, int cols, SimdWidth width)
        => RowDriver.RunColumns(new GradientColumns { X = x, Mean = mean, Rstd = rstd, Dy = dy, Dw = dw, Db = db, Rows = rows, Cols = cols }, rows, cols, width);

    struct GradientColumns : IRangeOperator
    {
        public float* X, Mean, Rstd, Dy, Dw, Db;
        public int Rows, Cols;

        public readonly void Range<TV>(int c0, int c1) where TV : unmanaged, IVec<TV> => Columns<TV>(this, c0, c1);
        public readonly void RangeScalar(int c0, int c1) => ColumnsScalar(this, c0, c1);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Columns<TV>(in GradientColumns t, int c0, int c1) where TV : unmanaged, IVec<TV>
    {
        int n = TV.Count, j = c0;
        for (; j + n <= c1; j += n)
        {
            var dw = TV.Splat(0f);
            var db = TV.Splat(0f);
            for (int r = 0; r < t.Rows; r++)
            {
                long o = (long)r * t.Cols + j;
                var dy = TV.Load(t.Dy + o);
                var xh = (TV.Load(t.X + o) - TV.Splat(t.Mean == null ? 0f : t.Mean[r])) * TV.Splat(t.Rstd[r]);
                dw = TV.Fma(dy, xh, dw);
                db += dy;
            }
            if (t.Dw != null) TV.Store(TV.Load(t.Dw + j) + dw, t.Dw + j);
            if (t.Db != null) TV.Store(TV.Load(t.Db + j) + db, t.Db + j);
        }
        if (j < c1) ColumnsScalar(t, j, c1);
    }

    static void ColumnsScalar(in GradientColumns t, int c0, int c1)
    {
        for (int j = c0; j < c1; j++)
        {
            float dw = 0, db = 0;
            for (int r = 0; r < t.Rows; r++)
            {
                long o = (long)r * t.Cols + j;
                float xh = (t.X[o] - (t.Mean == null ? 0f : t.Mean[r])) * t.Rstd[r];
                dw = MathF.FusedMultiplyAdd(t.Dy[o], xh, dw);
                db += t.Dy[o];
            }
            if (t.Dw != null) t.Dw[j] += dw;
            if (t.Db != null) t.Db[j] += db;
        }
    }
}
