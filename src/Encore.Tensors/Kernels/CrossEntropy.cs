using System.Runtime.CompilerServices;

namespace Encore.Tensors.Kernels;

/// <summary>
/// Cross-entropy of rows of logits against integer targets, with label smoothing, computed from the
/// logits without materializing probabilities: the forward keeps one log-sum-exp per row, the
/// backward recomputes softmax from it and writes (softmax − target distribution)·g in the same pass.
/// Rows run in parallel; each row's sums are in float vector lanes (agreeing with the double
/// <see cref="ForwardReference"/> to about 1e-6 relative for rows of tens of thousands of columns),
/// and a row's result does not depend on the thread count.
/// </summary>
public static unsafe class CrossEntropy
{
    /// <summary>
    /// Per row r with target t = targets[r] ≠ <paramref name="ignoreIndex"/>: lse[r] = log Σ exp(x), and
    /// nll[r] = (1 − ε)·(lse − x_t) + ε·(lse − mean(x)). Ignored rows get lse = nll = 0.
    /// Targets outside [0, cols) must be rejected by the caller.
    /// </summary>
    public static void Forward(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int rows, int cols, int ignoreIndex, float labelSmoothing,
        Span<float> lse, Span<float> nll)
    {
        Check(logits, targets, rows, cols, lse, "CrossEntropy.Forward");
        RowChecks.PerRow("CrossEntropy.Forward", "nll", nll.Length, rows);
        fixed (float* px = logits, pl = lse, pn = nll)
        fixed (int* pt = targets)
            RowDriver.Run(new ForwardRows { X = px, T = pt, Lse = pl, Nll = pn, Cols = cols, Ignore = ignoreIndex, Eps = labelSmoothing }, rows, cols);
    }

    /// <summary>The scalar specification of <see cref="Forward"/>, with sums in double.</summary>
    public static void ForwardReference(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int rows, int cols, int ignoreIndex, float labelSmoothing,
        Span<float> lse, Span<float> nll)
    {
        Check(logits, targets, rows, cols, lse, "CrossEntropy.ForwardReference");
        for (int r = 0; r < rows; r++)
        {
            lse[r] = nll[r] = 0;
            if (targets[r] == ignoreIndex) continue;
            var row = logits.Slice(r * cols, cols);
            float max = float.NegativeInfinity;
            double sumX = 0;
            foreach (float z in row) { max = MathF.Max(max, z); sumX += z; }
            double sum = 0;
            foreach (float z in row) sum += Math.Exp(z - max);
            float l = max + (float)Math.Log(sum);
            lse[r] = l;
            nll[r] = (float)((1 - labelSmoothing) * (l - row[targets[r]]) + labelSmoothing * (l - sumX / cols));
        }
    }

    /// <summary>
    /// dx = g·(exp(x − lse) − ε/V − (1 − ε)·[j = t]) per row, overwriting <paramref name="dx"/>, or adding
    /// to it when <paramref name="accumulate"/>; ignored rows get 0 (or are left as they are).
    /// </summary>
    public static void Backward(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, ReadOnlySpan<float> lse, int rows, int cols, int ignoreIndex,
        float labelSmoothing, float g, Span<float> dx, bool accumulate)
    {
        Check(logits, targets, rows, cols, lse, "CrossEntropy.Backward");
        RowChecks.Matrix("CrossEntropy.Backward", "dx", dx.Length, rows, cols);
        fixed (float* px = logits, pl = lse, pd = dx)
        fixed (int* pt = targets)
            RowDriver.Run(new BackwardRows
            {
                X = px, T = pt, Lse = pl, Dx = pd, Cols = cols, Ignore = ignoreIndex, Eps = labelSmoothing, G = g, Accumulate = accumulate,
            }, rows, cols);
    }

    static void Check(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int rows, int cols, ReadOnlySpan<float> lse, string op)
    {
        RowChecks.Size(rows, cols);
        RowChecks.Matrix(op, "logits", logits.Length, rows, cols);
        if (targets.Length < rows) throw new ArgumentException($"{op}: {targets.Length} targets for {rows} rows");
        RowChecks.PerRow(op, "lse", lse.Length, rows);
    }

    struct ForwardRows : IRowOperator
    {
        public float* X, Lse, Nll;
        public int* T;
        public int Cols, Ignore;
        public float Eps;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Row<TV>(int row) where TV : unmanaged, IVec<TV>
        {
            int t = T[row], cols = Cols, n = TV.Count, j = 0;
            if (t == Ignore) { Lse[row] = Nll[row] = 0; return; }
            float* x = X + (long)row * cols;
            TV vmax = TV.Splat(float.NegativeInfinity), vsumX = TV.Splat(0f);
            float max = float.NegativeInfinity, sumX = 0;
            for (; j + n <= cols; j += n) { var z = TV.Load(x + j); vmax = TV.Max(vmax, z); vsumX += z; }
            for (; j < cols; j++) { max = MathF.Max(max, x[j]); sumX += x[j]; }
            max = MathF.Max(max, TV.MaxAcross(vmax));
            sumX += TV.Sum(vsumX);
            var vm = TV.Splat(max);
            TV vsum = TV.Splat(0f);
            float sum = 0;
            for (j = 0; j + n <= cols; j += n) vsum += TV.Exp(TV.Load(x + j) - vm);
            for (; j < cols; j++) sum += MathF.Exp(x[j] - max);
            sum += TV.Sum(vsum);
            Finish(row, x, t, max, sum, sumX);
        }

        public readonly void RowScalar(int row)
        {
            int t = T[row], cols = Cols;
            if (t == Ignore) { Lse[row] = Nll[row] = 0; return; }
            float* x = X + (long)row * cols;
            float max = float.NegativeInfinity, sumX = 0, sum = 0;
            for (int j = 0; j < cols; j++) { max = MathF.Max(max, x[j]); sumX += x[j]; }
            for (int j = 0; j < cols; j++) sum += MathF.Exp(x[j] - max);
            Finish(row, x, t, max, sum, sumX);
        }

        readonly void Finish(int row, float* x, int t, float max, float sum, float sumX)
        {
            float l = max + MathF.Log(sum);
            Lse[row] = l;
            Nll[row] = (1 - Eps) * (l - x[t]) + Eps * (l - sumX / Cols);
        }
    }

    struct BackwardRows : IRowOperator
    {
        public float* X, Lse, Dx;
        public int* T;
        public int Cols, Ignore;
        public float Eps, G;
        public bool Accumulate;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Row<TV>(int row) where TV : unmanaged, IVec<TV>
        {
            int t = T[row], cols = Cols, n = TV.Count, j = 0;
            float* x = X + (long)row * cols, dx = Dx + (long)row * cols;
            if (t == Ignore)
            {
                if (!Accumulate) new Span<float>(dx, cols).Clear();
                return;
            }
            float lse = Lse[row], off = G * Eps / cols;
            TV vl = TV.Splat(lse), vg = TV.Splat(G), voff = TV.Splat(off);
            if (Accumulate)
            {
                for (; j + n <= cols; j += n) TV.Store(TV.Load(dx + j) + (TV.Fma(vg, TV.Exp(TV.Load(x + j) - vl), TV.Splat(0f) - voff)), dx + j);
                for (; j < cols; j++) dx[j] += G * MathF.Exp(x[j] - lse) - off;
            }
            else
            {
                for (; j + n <= cols; j += n) TV.Store(TV.Fma(vg, TV.Exp(TV.Load(x + j) - vl), TV.Splat(0f) - voff), dx + j);
                for (; j < cols; j++) dx[j] = G * MathF.Exp(x[j] - lse) - off;
            }
            dx[t] -= G * (1 - Eps);
        }

        public readonly void RowScalar(int row)
        {
            int t = T[row], cols = Cols;
            float* x = X + (long)row * cols, dx = Dx + (long)row * cols;
            if (t == Ignore)
            {
                if (!Accumulate) new Span<float>(dx, cols).Clear();
                return;
            }
            float lse = Lse[row], off = G * Eps / cols;
            for (int j = 0; j < cols; j++)
            {
                float d = G * MathF.Exp(x[j] - lse) - off;
                dx[j] = Accumulate ? dx[j] + d : d;
            }
            dx[t] -= G * (1 - Eps);
        }
    }
}
