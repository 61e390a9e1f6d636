namespace Encore.Tensors.Kernels;

public static unsafe partial class Softmax
{
    /// <summary>
    /// The scalar specification of <see cref="Forward"/> (same arguments): exp and sums in double.
    /// It is also the path taken when no vector width is available.
    /// </summary>
    public static void Reference(ReadOnlySpan<float> x, Span<float> y, int rows, int cols, SoftmaxOptions options = default,
        ReadOnlySpan<float> bias = default, ReadOnlySpan<int> validLengths = default, ReadOnlySpan<bool> keyValid = default)
    {
        fixed (float* px = x, py = y, pb = bias)
        fixed (int* pv = validLengths)
        fixed (bool* pk = keyValid)
        {
            var a = MakeArgs(px, x.Length, py, y.Length, rows, cols, options, pb, bias.Length, pv, validLengths.Length, pk, keyValid.Length);
            for (int r = 0; r < rows; r++) RowReference(a, r);
        }
    }

    /// <summary>The scalar specification of <see cref="LogForward"/>.</summary>
    public static void LogReference(ReadOnlySpan<float> x, Span<float> y, int rows, int cols)
    {
        fixed (float* px = x, py = y)
        {
            var a = MakeArgs(px, x.Length, py, y.Length, rows, cols, default, null, 0, null, 0, null, 0);
            for (int r = 0; r < rows; r++) LogRowReference(a, r);
        }
    }

    /// <summary>The scalar specification of <see cref="Backward"/>.</summary>
    public static void BackwardReference(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int cols, float scale = 1f)
    {
        CheckBackward(y, dy, dx, rows, cols, "Softmax.BackwardReference");
        fixed (float* py = y, pdy = dy, pdx = dx)
            for (int r = 0; r < rows; r++) BackwardRowReference(py + (long)r * cols, pdy + (long)r * cols, pdx + (long)r * cols, cols, scale, false);
    }

    /// <summary>The scalar specification of <see cref="LogBackward"/>.</summary>
    public static void LogBackwardReference(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int cols)
    {
        CheckBackward(y, dy, dx, rows, cols, "Softmax.LogBackwardReference");
        fixed (float* py = y, pdy = dy, pdx = dx)
            for (int r = 0; r < rows; r++) BackwardRowReference(py + (long)r * cols, pdy + (long)r * cols, pdx + (long)r * cols, cols, 1f, true);
    }

    static void RowReference(in Args a, int row)
    {
        int cols = a.Cols, end = a.End(row);
        float* x = a.X + (long)row * cols, y = a.Y + (long)row * cols, b = a.BiasRow(row);
        bool* key = a.KeyRow(row);
        float max = float.NegativeInfinity;
        for (int j = 0; j < end; j++)
        {
            float z = x[j] * a.Scale;
            if (b != null) z += b[j];
            if (key != null && !key[j]) z = float.NegativeInfinity;
            y[j] = z;
            max = MathF.Max(max, z);
        }
        if (float.IsNegativeInfinity(max))
        {
            for (int j = 0; j < cols; j++) y[j] = 0;
            return;
        }
        double sum = 0;
        for (int j = 0; j < end; j++) sum += Math.Exp((double)y[j] - max);
        for (int j = 0; j < end; j++) y[j] = (float)(Math.Exp((double)y[j] - max) / sum);
        for (int j = end; j < cols; j++) y[j] = 0;
    }

    static void LogRowReference(in Args a, int row)
    {
        int cols = a.Cols;
        float* x = a.X + (long)row * cols, y = a.Y + (long)row * cols;
        float max = float.NegativeInfinity;
        for (int j = 0; j < cols; j++) max = MathF.Max(max, x[j]);
        if (float.IsNegativeInfinity(max))
        {
            for (int j = 0; j < cols; j++) y[j] = float.NegativeInfinity;
            return;
        }
        double sum = 0;
        for (int j = 0; j < cols; j++) sum += Math.Exp((double)x[j] - max);
        double shift = max + Math.Log(sum);
        for (int j = 0; j < cols; j++) y[j] = (float)(x[j] - shift);
    }

    static void BackwardRowReference(float* y, float* dy, float* dx, int cols, float scale, bool log)
    {
        double acc = 0;
        if (log)
        {
            for (int j = 0; j < cols; j++) acc += dy[j];
            for (int j = 0; j < cols; j++) dx[j] = (float)(dy[j] - Math.Exp(y[j]) * acc);
            return;
        }
        for (int j = 0; j < cols; j++) acc += (double)y[j] * dy[j];
        for (int j = 0; j < cols; j++) dx[j] = (float)(scale * (double)y[j] * (dy[j] - acc));
    }
}
