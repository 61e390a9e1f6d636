using System.Runtime.CompilerServices;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

/// <summary>
/// How <see cref="Softmax.Forward"/> turns a row of logits into the values it normalizes:
/// z = <see cref="Scale"/>·x + bias, with masked columns set to −∞ (output 0).
/// <c>default</c> is a plain softmax.
/// </summary>
public readonly record struct SoftmaxOptions
{
    readonly float _scale;
    readonly bool _hasScale;

    /// <summary>Factor applied to the logits before the bias is added (attention's 1/√hd). Default 1.</summary>
    public float Scale
    {
        get => _hasScale ? _scale : 1f;
        init { _scale = value; _hasScale = true; }
    }

    /// <summary>
    /// Causal masking (default false): row r of each (T, S) block may see columns c ≤ r + offset, where
    /// T = <see cref="QueryLength"/> and offset = <see cref="CausalOffset"/>.
    /// </summary>
    public bool Causal { get; init; }

    /// <summary>
    /// T, the rows of one causal block: the kernel's rows are (…, T) flattened, e.g. (B·H·T) attention
    /// rows, and a row's query index is row mod T. Default 0 means all rows form one block.
    /// </summary>
    public int QueryLength { get; init; }

    /// <summary>
    /// The causal offset. Default null means S − T: with a KV cache holding S − T earlier positions,
    /// the last query row sees every key (the bottom-right aligned mask, PyTorch's
    /// <c>causal_lower_right</c>). 0 gives the top-left aligned mask of SDPA's <c>is_causal</c>; the two
    /// agree when T = S.
    /// </summary>
    public int? CausalOffset { get; init; }
}

/// <summary>
/// Softmax and log-softmax over the last dimension of a row-major (rows, cols) float matrix.
/// Numerically stable (the row maximum is subtracted before exp, so softmax([1000, 1000]) = [0.5, 0.5]).
/// A row whose values are all −∞ after masking, which has no defined softmax, yields zeros
/// (log-softmax: all −∞), so a fully padded query row contributes nothing instead of NaNs.
/// The vector paths accumulate in float; against the double reference they agree to about 1e-6
/// relative for rows of a few thousand columns.
/// </summary>
public static unsafe partial class Softmax
{
    /// <summary>
    /// y = softmax(scale·x + bias) per row, masked columns giving 0. <paramref name="y"/> may be
    /// <paramref name="x"/> (in place); other overlaps are not allowed.
    /// </summary>
    /// <param name="x">Logits, (rows, cols).</param>
    /// <param name="y">Probabilities, (rows, cols).</param>
    /// <param name="rows">Rows (e.g. B·H·T).</param>
    /// <param name="cols">Columns (e.g. S), the softmax dimension.</param>
    /// <param name="options">Scale and causal mask.</param>
    /// <param name="bias">
    /// Optional additive bias of (G, cols) values, G dividing rows; row i adds bias row i mod G. So one
    /// row broadcasts to all; a (H·T, S) T5 position bias or ALiBi bias repeats over the batch; a
    /// (rows, cols) bias is used as is. −∞ entries mask.
    /// </param>
    /// <param name="validLengths">
    /// Optional key padding as lengths: G' entries, G' dividing rows; row i sees only columns
    /// c &lt; validLengths[i / (rows / G')] (e.g. one length per batch item for (B·H·T) rows).
    /// </param>
    /// <param name="keyValid">
    /// Optional key padding as a mask of (G'', cols) flags grouped like <paramref name="validLengths"/>
    /// (an HF <c>attention_mask</c> (B, S)); false masks the column.
    /// </param>
    public static void Forward(ReadOnlySpan<float> x, Span<float> y, int rows, int cols, SoftmaxOptions options = default,
        ReadOnlySpan<float> bias = default, ReadOnlySpan<int> validLengths = default, ReadOnlySpan<bool> keyValid = default)
    {
        fixed (float* px = x, py = y, pb = bias)
        fixed (int* pv = validLengths)
        fixed (bool* pk = keyValid)
        {
            var a = MakeArgs(px, x.Length, py, y.Length, rows, cols, options, pb, bias.Length, pv, validLengths.Length, pk, keyValid.Length);
            RowDriver.Run(new ForwardRows(a, log: false), rows, cols);
        }
    }

    /// <summary>
    /// y = log softmax(x) per row (for cross-entropy), as x − max − log Σ exp(x − max).
    /// <paramref name="y"/> may be <paramref name="x"/>. A row of all −∞ yields all −∞.
    /// </summary>
    public static void LogForward(ReadOnlySpan<float> x, Span<float> y, int rows, int cols)
    {
        fixed (float* px = x, py = y)
        {
            var a = MakeArgs(px, x.Length, py, y.Length, rows, cols, default, null, 0, null, 0, null, 0);
            RowDriver.Run(new ForwardRows(a, log: true), rows, cols);
        }
    }

    /// <summary>
    /// lse[r] = log Σ_c exp(x[r, c]) of each row of x (rows, cols), in binary64: the row's maximum, then
    /// e^(x − max) by <see cref="VectorMath.ExpNonPositive(float)"/> (within 2 ulp; terms below e^−87 count
    /// as 0), summed in binary32 lanes over chunks of 16 vectors and the chunks in binary64, so the result
    /// is within ~1e-6 of the exact one. A row of all −∞ gives −∞, a NaN gives NaN. Decoding takes this once
    /// per row and step over the vocabulary for the chosen token's log-probability.
    /// </summary>
    public static void LogSumExp(ReadOnlySpan<float> x, Span<double> lse, int rows, int cols)
    {
        if (rows < 0 || cols < 0 || x.Length < (long)rows * cols || lse.Length < rows)
            throw new ArgumentException($"Softmax.LogSumExp: x has {x.Length} values and lse {lse.Length} for {rows} rows of {cols}");
        fixed (float* px = x)
        fixed (double* pl = lse)
            RowDriver.Run(new LogSumExpRows(px, pl, cols), rows, cols);
    }

    readonly struct LogSumExpRows(float* x, double* lse, int cols) : IRowOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Row<TV>(int r) where TV : unmanaged, IVec<TV>
        {
            float* row = x + (long)r * cols;
            int n = TV.Count, j = 0;
            float max = RowMax<TV>(row, cols);
            if (float.IsNegativeInfinity(max))
            {
                lse[r] = double.NegativeInfinity;
                return;
            }
            var vm = TV.Splat(max);
            double sum = 0;
            for (int chunk = 16 * n; j + n <= cols;)
            {
                var vsum = TV.Splat(0f);
                for (int end = Math.Min(cols - n, j + chunk - n); j <= end; j += n) vsum += VectorMath.ExpNonPositive(TV.Load(row + j) - vm);
                sum += TV.Sum(vsum);
            }
            for (; j < cols; j++) sum += VectorMath.ExpNonPositive(row[j] - max);
            lse[r] = max + Math.Log(sum);
        }

        public void RowScalar(int r)
        {
            float* row = x + (long)r * cols;
            float max = float.NegativeInfinity;
            for (int j = 0; j < cols; j++) max = MathF.Max(max, row[j]);
            if (float.IsNegativeInfinity(max))
            {
                lse[r] = double.NegativeInfinity;
                return;
            }
            double sum = 0;
            for (int j = 0; j < cols; j++) sum += VectorMath.ExpNonPositive(row[j] - max);
            lse[r] = max + Math.Log(sum);
        }
    }

    /// <summary>
    /// Backward of <see cref="Forward"/>: dx = scale·y ⊙ (dy − Σ_c dy·y), from the forward output y
    /// (masked columns have y = 0, so they get dx = 0). <paramref name="dx"/> may be <paramref name="dy"/>.
    /// </summary>
    public static void Backward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int cols, float scale = 1f)
    {
        CheckBackward(y, dy, dx, rows, cols, "Softmax.Backward");
        fixed (float* py = y, pdy = dy, pdx = dx)
            RowDriver.Run(new BackwardRows(py, pdy, pdx, cols, scale, log: false), rows, cols);
    }

    /// <summary>
    /// Backward of <see cref="LogForward"/>: dx = dy − exp(y)·Σ_c dy, from the forward output y.
    /// <paramref name="dx"/> may be <paramref name="dy"/>.
    /// </summary>
    public static void LogBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int cols)
    {
        CheckBackward(y, dy, dx, rows, cols, "Softmax.LogBackward");
        fixed (float* py = y, pdy = dy, pdx = dx)
            RowDriver.Run(new BackwardRows(py, pdy, pdx, cols, 1f, log: true), rows, cols);
    }

    /// <summary>Everything a row needs, as raw pointers (the spans are pinned by the public entry).</summary>
    internal struct Args
    {
        public float* X, Y, Bias;
        public int Rows, Cols, BiasRows;
        public float Scale;
        public bool Causal;
        public int QueryLength, Offset;
        public int* ValidLengths;
        public int ValidGroupRows;
        public bool* KeyValid;
        public int KeyGroupRows;

        /// <summary>Columns [End, cols) of row <paramref name="row"/> are masked by causality or a valid length.</summary>
        public readonly int End(int row)
        {
            int end = Cols;
            if (Causal) end = (int)Math.Clamp((long)(row % QueryLength) + Offset + 1, 0, Cols);
            if (ValidLengths != null) end = Math.Min(end, ValidLengths[row / ValidGroupRows]);
            return end;
        }

        public readonly float* BiasRow(int row) => Bias == null ? null : Bias + (long)(row % BiasRows) * Cols;
        public readonly bool* KeyRow(int row) => KeyValid == null ? null : KeyValid + (long)(row / KeyGroupRows) * Cols;
    }

    static Args MakeArgs(float* x, int xLength, float* y, int yLength, int rows, int cols, in SoftmaxOptions o,
        float* bias, int biasLength, int* valid, int validCount, bool* key, int keyLength)
    {
        RowChecks.Size(rows, cols);
        RowChecks.Matrix("Softmax", "x", xLength, rows, cols);
        RowChecks.Matrix("Softmax", "y", yLength, rows, cols);
        var a = new Args { X = x, Y = y, Rows = rows, Cols = cols, Scale = o.Scale, Causal = o.Causal };
        if (!float.IsFinite(a.Scale)) throw new ArgumentException($"Softmax: scale must be finite, got {a.Scale}", nameof(o));
        if (o.Causal)
        {
            a.QueryLength = o.QueryLength == 0 ? rows : o.QueryLength;
            if (a.QueryLength < 0 || (rows > 0 && rows % a.QueryLength != 0))
                throw new ArgumentException($"Softmax: causal QueryLength {o.QueryLength} does not divide the {rows} rows", nameof(o));
            long offset = o.CausalOffset ?? (long)cols - a.QueryLength;
            a.Offset = (int)Math.Clamp(offset, -(long)int.MaxValue / 2, int.MaxValue / 2);
            if (a.QueryLength == 0) a.QueryLength = 1;
        }
        if (biasLength > 0)
        {
            if (cols == 0 || biasLength % cols != 0)
                throw new ArgumentException($"Softmax: bias has {biasLength} values, not a whole number of {cols}-column rows", "bias");
            a.Bias = bias;
            a.BiasRows = biasLength / cols;
            if (rows % a.BiasRows != 0)
                throw new ArgumentException($"Softmax: bias has {a.BiasRows} rows, which does not divide the {rows} rows", "bias");
        }
        if (validCount > 0)
        {
            if (rows % validCount != 0)
                throw new ArgumentException($"Softmax: {validCount} valid lengths do not divide the {rows} rows", "validLengths");
            for (int g = 0; g < validCount; g++)
                if (valid[g] < 0 || valid[g] > cols)
                    throw new ArgumentException($"Softmax: valid length {valid[g]} (entry {g}) is outside [0, {cols}]", "validLengths");
            a.ValidLengths = valid;
            a.ValidGroupRows = rows / validCount;
        }
        if (keyLength > 0)
        {
            if (cols == 0 || keyLength % cols != 0 || rows % (keyLength / cols) != 0)
                throw new ArgumentException($"Softmax: key mask has {keyLength} flags, not a whole number of {cols}-column rows dividing the {rows} rows", "keyValid");
            a.KeyValid = key;
            a.KeyGroupRows = rows / (keyLength / cols);
        }
        return a;
    }

    static void CheckBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int cols, string op)
    {
        RowChecks.Size(rows, cols);
        RowChecks.Matrix(op, nameof(y), y.Length, rows, cols);
        RowChecks.Matrix(op, nameof(dy), dy.Length, rows, cols);
        RowChecks.Matrix(op, nameof(dx), dx.Length, rows, cols);
    }

    readonly struct ForwardRows(Args a, bool log) : IRowOperator
    {
        public void Row<TV>(int r) where TV : unmanaged, IVec<TV>
        {
            if (log) LogRow<TV>(a, r);
            else Softmax.Row<TV>(a, r);
        }

        public void RowScalar(int r)
        {
            if (log) LogRowReference(a, r);
            else RowReference(a, r);
        }
    }

    readonly struct BackwardRows(float* y, float* dy, float* dx, int cols, float scale, bool log) : IRowOperator
    {
        public void Row<TV>(int r) where TV : unmanaged, IVec<TV>
        {
            long o = (long)r * cols;
            BackwardRow<TV>(y + o, dy + o, dx + o, cols, scale, log);
        }

        public void RowScalar(int r)
        {
            long o = (long)r * cols;
            BackwardRowReference(y + o, dy + o, dx + o, cols, scale, log);
        }
    }

    // Three passes over the row: z = scale·x + bias (written into y) and its max; e = exp(z − max)
    // and Σe; y = e·(1/Σe). Writing z into y first is what makes the in-place call safe.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Row<TV>(in Args a, int row) where TV : unmanaged, IVec<TV>
    {
        int cols = a.Cols, end = a.End(row), n = TV.Count;
        float* x = a.X + (long)row * cols, y = a.Y + (long)row * cols, b = a.BiasRow(row);
        bool* key = a.KeyRow(row);
        var scale = TV.Splat(a.Scale);
        var vmax = TV.Splat(float.NegativeInfinity);
        float max = float.NegativeInfinity;
        int j = 0;
        if (b == null)
        {
            for (; j + n <= end; j += n) { var z = TV.Load(x + j) * scale; TV.Store(z, y + j); vmax = TV.Max(vmax, z); }
            for (; j < end; j++) { float z = x[j] * a.Scale; y[j] = z; max = MathF.Max(max, z); }
        }
        else
        {
            for (; j + n <= end; j += n) { var z = TV.Load(x + j) * scale + TV.Load(b + j); TV.Store(z, y + j); vmax = TV.Max(vmax, z); }
            for (; j < end; j++) { float z = x[j] * a.Scale + b[j]; y[j] = z; max = MathF.Max(max, z); }
        }
        max = MathF.Max(max, TV.MaxAcross(vmax));
        if (key != null)
        {
            // Padding masks are rare and short-lived (encoder batches); a scalar pass keeps the vector loop simple.
            max = float.NegativeInfinity;
            for (j = 0; j < end; j++)
            {
                if (!key[j]) y[j] = float.NegativeInfinity;
                max = MathF.Max(max, y[j]);
            }
        }
        if (float.IsNegativeInfinity(max))
        {
            new Span<float>(y, cols).Clear();
            return;
        }
        var vm = TV.Splat(max);
        var vsum = TV.Splat(0f);
        float sum = 0;
        for (j = 0; j + n <= end; j += n) { var e = TV.Exp(TV.Load(y + j) - vm); TV.Store(e, y + j); vsum += e; }
        for (; j < end; j++) { float e = MathF.Exp(y[j] - max); y[j] = e; sum += e; }
        sum += TV.Sum(vsum);
        float inv = 1f / sum;
        var vinv = TV.Splat(inv);
        for (j = 0; j + n <= end; j += n) TV.Store(TV.Load(y + j) * vinv, y + j);
        for (; j < end; j++) y[j] *= inv;
        if (end < cols) new Span<float>(y + end, cols - end).Clear();
    }

    /// <summary>The largest of x[0, cols) (NaN if one is NaN; −∞ for none).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float RowMax<TV>(float* x, int cols) where TV : unmanaged, IVec<TV>
    {
        int n = TV.Count, j = 0;
        var vmax = TV.Splat(float.NegativeInfinity);
        float max = float.NegativeInfinity;
        for (; j + n <= cols; j += n) vmax = TV.Max(vmax, TV.Load(x + j));
        for (; j < cols; j++) max = MathF.Max(max, x[j]);
        return MathF.Max(max, TV.MaxAcross(vmax));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void LogRow<TV>(in Args a, int row) where TV : unmanaged, IVec<TV>
    {
        int cols = a.Cols, n = TV.Count, j = 0;
        float* x = a.X + (long)row * cols, y = a.Y + (long)row * cols;
        float max = RowMax<TV>(x, cols);
        if (float.IsNegativeInfinity(max))
        {
            new Span<float>(y, cols).Fill(float.NegativeInfinity);
            return;
        }
        var vm = TV.Splat(max);
        var vsum = TV.Splat(0f);
        float sum = 0;
        for (j = 0; j + n <= cols; j += n) vsum += TV.Exp(TV.Load(x + j) - vm);
        for (; j < cols; j++) sum += MathF.Exp(x[j] - max);
        sum += TV.Sum(vsum);
        var shift = TV.Splat(max + MathF.Log(sum));
        float s = max + MathF.Log(sum);
        for (j = 0; j + n <= cols; j += n) TV.Store(TV.Load(x + j) - shift, y + j);
        for (; j < cols; j++) y[j] = x[j] - s;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]

    static void BackwardRow<TV>(float* y, float* dy, float* dx, int cols, float scale, bool log) where TV : unmanaged, IVec<TV>
    {
        int n = TV.Count, j = 0;
        var vacc = TV.Splat(0f);
        float acc = 0;
        if (log)
        {
            for (; j + n <= cols; j += n) vacc += TV.Load(dy + j);
            for (; j < cols; j++) acc += dy[j];
            acc += TV.Sum(vacc);
            var vs = TV.Splat(acc);
            for (j = 0; j + n <= cols; j += n) TV.Store(TV.Load(dy + j) - TV.Exp(TV.Load(y + j)) * vs, dx + j);
            for (; j < cols; j++) dx[j] = dy[j] - MathF.Exp(y[j]) * acc;
            return;
        }
        for (; j + n <= cols; j += n) vacc = TV.Fma(TV.Load(y + j), TV.Load(dy + j), vacc);
        for (; j < cols; j++) acc += y[j] * dy[j];
        acc += TV.Sum(vacc);
        var vdot = TV.Splat(acc);
        var vscale = TV.Splat(scale);
        for (j = 0; j + n <= cols; j += n) TV.Store(vscale * TV.Load(y + j) * (TV.Load(dy + j) - vdot), dx + j);
        for (; j < cols; j++) dx[j] = scale * y[j] * (dy[j] - acc);
    }
}
