using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

/// <summary>Whether a GEMM operand is used as stored or transposed.</summary>
public enum Transpose
{
    /// <summary>op(X) = X.</summary>
    No,
    /// <summary>op(X) = Xᵀ.</summary>
    Yes,
}

/// <summary>
/// General matrix multiply, C = α·op(A)·op(B) + β·C, all binary32, row-major with leading
/// dimensions (row strides) lda, ldb, ldc. op(A) is (M, K), op(B) is (K, N), C is (M, N).
/// When β = 0, C is not read (NaNs in it do not propagate), as in BLAS.
/// </summary>
/// <remarks>
/// A cache-blocked, packed GEMM in the GotoBLAS/BLIS manner (GemmDriver.cs) with register-blocked
/// micro-kernels per vector width (GemmKernels.cs: 12×32 for 512-bit, 6×16 for 256-bit, 6×8 for
/// 128-bit, 4×4 scalar), run over <see cref="KernelPool.Default"/>. Products under ~32K multiply-adds
/// skip packing and threads. Each element of C sums K in a fixed order (slices of 256, each in
/// increasing k), so results are bit-identical across runs and thread counts, though they differ
/// between vector widths by float rounding.
/// </remarks>
public static unsafe partial class Gemm
{
    /// <summary>C = α·op(A)·op(B) + β·C.</summary>
    public static void Multiply(Transpose transA, Transpose transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        CheckOperands(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        Multiply(Simd.Current, null, true, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    /// <summary>The validated body of Multiply, with the pool and the small-problem shortcut selectable (for tests).</summary>
    internal static void Multiply(SimdWidth width, KernelPool? pool, bool allowSmall, Transpose transA, Transpose transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        fixed (float* pa = a)
        fixed (float* pb = b)
        fixed (float* pc = c)
        {
            var src = new BSource
            {
                Kind = BKind.Strided, P = pb,
                Rs = transB == Transpose.No ? ldb : 1, Cs = transB == Transpose.No ? 1 : ldb,
            };
            Run(width, m, n, k, alpha, pa, transA == Transpose.No ? lda : 1, transA == Transpose.No ? 1 : lda, src, beta, pc, ldc, pool, allowSmall);
        }
    }

    internal static void CheckOperands(Transpose transA, Transpose transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        CheckMatrix("A", transA == Transpose.No ? m : k, transA == Transpose.No ? k : m, a.Length, lda);
        CheckMatrix("B", transB == Transpose.No ? k : n, transB == Transpose.No ? n : k, b.Length, ldb);
        CheckMatrix("C", m, n, c.Length, ldc);
    }

    static void CheckMatrix(string name, int rows, int cols, int length, int ld)
    {
        if (rows == 0 || cols == 0) return;
        if (ld < cols) throw new ArgumentException($"GEMM: leading dimension of {name} ({ld}) is less than its {cols} columns");
        if ((long)(rows - 1) * ld + cols > length)
            throw new ArgumentException($"GEMM: {name} needs {(long)(rows - 1) * ld + cols} elements for {rows}×{cols} with ld {ld}, got {length}");
    }

    /// <summary>The naive triple loop: the specification every fast path is tested against.</summary>
    public static void Reference(Transpose transA, Transpose transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                {
                    float av = transA == Transpose.No ? a[i * lda + p] : a[p * lda + i];
                    float bv = transB == Transpose.No ? b[p * ldb + j] : b[j * ldb + p];
                    sum += (double)av * bv;
                }
                float prior = beta == 0 ? 0 : beta * c[i * ldc + j];
                c[i * ldc + j] = (float)(alpha * sum) + prior;
            }
        }
    }

    /// <summary>
    /// A linear layer, Y = X·Wᵀ (+ bias): X is (M, K) binary32 with row stride K, W is (N, K) in any
    /// weight dtype, Y is (M, N) with row stride N. Up to <see cref="Gemv.LinearRows"/> rows (decoding)
    /// run the GEMV path, which streams W once (up to <see cref="GemvChunks"/> times as many rows, one pass
    /// per <see cref="Gemv.LinearRows"/>); more rows run the packed GEMM, widening W to binary32
    /// while packing its panels (use <see cref="PackedMatrix"/> to pack once for repeated calls), except
    /// Q8_0 and Q4_0 weights on 512-bit vectors with AVX-512BW, whose GEMM quantizes X to int8 per block
    /// (<see cref="QuantizesActivations"/>).
    /// </summary>
    public static void Linear(ReadOnlySpan<float> x, int m, WeightMatrix w, Span<float> y, ReadOnlySpan<float> bias = default)
    {
        CheckLinear(x, m, w, y, bias);
        Linear(Simd.Current, null, x, m, w, y, bias);
    }

    /// <summary>
    /// Up to this many GEMV passes (of <see cref="Gemv.LinearRows"/> rows each) replace the packed GEMM for
    /// binary32/bf16/f16 weights: measured on Zen 5 (2 threads, 768×3072, 3072×768 and 1024×384 weights),
    /// GEMV passes took 0.6× the packed GEMM's time at 24–32 rows, 0.8–0.9× at 48–64, and about 1× or more
    /// from 96 rows on, where the per-call transpose of W into panels is paid back. Where the wide GEMV tiles
    /// apply (binary32, bf16, f16 on 512-bit vectors) the rows go to one GEMV call, which reads W from memory
    /// once for all of them (T5-base decoder matrices at 32 rows, 2 threads: 38.5–39.5 → 28.5–36 ms); Q8_0
    /// keeps the int8 GEMM above <see cref="Gemv.LinearRows"/>, which measured alike (23.5–29 against 25–29 ms).
    /// </summary>
    internal const int GemvChunks = 4;

    /// <summary>
    /// Whether <see cref="LinearShared"/> takes <paramref name="m"/> rows of x as one shared-input GEMV at the current
    /// vector width (the rows <see cref="Linear(ReadOnlySpan{float}, int, WeightMatrix, Span{float}, ReadOnlySpan{float})"/>
    /// sends to the GEMV path); it runs three <c>Linear</c>s otherwise.
    /// </summary>
    public static bool SharesInput(int m, DType weights) => m >= 1 && m <= Gemv.LinearRows(Simd.Current) && weights != DType.I32;

    /// <summary>
    /// Three products of the same X (m, K): Y_i (m, N_i) = X·W_iᵀ + b_i, bit for bit what three calls of
    /// <see cref="Linear(ReadOnlySpan{float}, int, WeightMatrix, Span{float}, ReadOnlySpan{float})"/> give. At GEMV sizes
    /// (<see cref="SharesInput"/>) with one weight dtype, X is quantized once and one dispatch streams the three
    /// matrices: a small matrix at batch-1 decoding spends much of its time on those two steps.
    /// </summary>
    public static void LinearShared(ReadOnlySpan<float> x, int m,
        WeightMatrix w0, Span<float> y0, ReadOnlySpan<float> b0,
        WeightMatrix w1, Span<float> y1, ReadOnlySpan<float> b1,
        WeightMatrix w2, Span<float> y2, ReadOnlySpan<float> b2)
    {
        bool shared = w1.Cols == w0.Cols && w2.Cols == w0.Cols && w1.DType == w0.DType && w2.DType == w0.DType && SharesInput(m, w0.DType);
        if (!shared)
        {
            Linear(x, m, w0, y0, b0);
            Linear(x, m, w1, y1, b1);
            Linear(x, m, w2, y2, b2);
            return;
        }
        CheckLinear(x, m, w0, y0, b0);
        CheckLinear(x, m, w1, y1, b1);
        CheckLinear(x, m, w2, y2, b2);
        fixed (float* px = x)
        fixed (float* py0 = y0, py1 = y1, py2 = y2)
        fixed (float* pb0 = b0, pb1 = b1, pb2 = b2)
        {
            var parts = stackalloc Gemv.Part[3];
            parts[0] = new Gemv.Part(w0, py0, b0.IsEmpty ? null : pb0);
            parts[1] = new Gemv.Part(w1, py1, b1.IsEmpty ? null : pb1);
            parts[2] = new Gemv.Part(w2, py2, b2.IsEmpty ? null : pb2);
            Gemv.RunParts(Simd.Current, parts, 3, px, m);
        }
    }

    /// <summary>The validated body of Linear, with the pool selectable (for tests).</summary>
    internal static void Linear(SimdWidth width, KernelPool? pool, ReadOnlySpan<float> x, int m, WeightMatrix w, Span<float> y, ReadOnlySpan<float> bias)
    {
        if (m == 0 || w.Rows == 0) return;
        if (m <= Gemv.LinearRows(width) || (m <= GemvChunks * Gemv.LinearRows(width) && Gemv.TakesWideTiles(width, w.DType, m) && w.DType != DType.Q8_0))
        {
            fixed (float* px = x)
            fixed (float* py = y)
            fixed (float* pbias = bias)
                Gemv.Run(width, w, px, m, py, bias.IsEmpty ? null : pbias, pool);
            return;
        }
        if (QuantizesActivations(width, w.DType))
        {
            fixed (float* px = x)
            fixed (float* py = y)
            fixed (float* pbias = bias)
                LinearQuantized(pool ?? KernelPool.Default, px, m, w, py, bias.IsEmpty ? null : pbias);
            return;
        }
        int chunk = Gemv.LinearRows(width);
        if (m <= GemvChunks * chunk)
        {
            // A few GEMV passes, each streaming W once for up to LinearRows rows, beat packing W into
            // panels (a transpose of all of W per call) until the rows amortize the packing.
            fixed (float* px = x)
            fixed (float* py = y)
            fixed (float* pbias = bias)
                for (int r = 0; r < m; r += chunk)
                    Gemv.Run(width, w, px + (nint)r * w.Cols, Math.Min(chunk, m - r), py + (nint)r * w.Rows, bias.IsEmpty ? null : pbias, pool);
            return;
        }
        var src = new BSource { Kind = BKind.WeightRows, W = w };
        LinearGemm(width, pool, x, m, w.Rows, w.Cols, src, y, bias);
    }

    /// <summary>
    /// <see cref="Linear(ReadOnlySpan{float}, int, WeightMatrix, Span{float}, ReadOnlySpan{float})"/> with
    /// weights packed once into GEMM panels (for repeated prefill/training calls with the same W).
    /// </summary>
    public static void Linear(ReadOnlySpan<float> x, int m, PackedMatrix w, Span<float> y, ReadOnlySpan<float> bias = default)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        int n = w.Rows, k = w.Cols;
        if ((long)m * k > x.Length) throw new ArgumentException($"Linear: X needs {(long)m * k} values ({m}×{k}), got {x.Length}", nameof(x));
        if ((long)m * n > y.Length) throw new ArgumentException($"Linear: Y needs {(long)m * n} values ({m}×{n}), got {y.Length}", nameof(y));
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"Linear: bias has {bias.Length} values for {n} outputs", nameof(bias));
        if (m == 0 || n == 0) return;
        var src = new BSource { Kind = BKind.Packed, P = w.Pointer, PaddedN = w.PaddedRows };
        LinearGemm(Simd.Current, null, x, m, n, k, src, y, bias);
    }

    static void LinearGemm(SimdWidth width, KernelPool? pool, ReadOnlySpan<float> x, int m, int n, int k, in BSource src, Span<float> y, ReadOnlySpan<float> bias)
    {
        // Y starts as the bias rows and the product is added with β = 1 (one rounding per K slice).
        if (!bias.IsEmpty)
            for (int i = 0; i < m; i++) bias.CopyTo(y.Slice(i * n, n));
        fixed (float* px = x)
        fixed (float* py = y)
            Run(width, m, n, k, 1f, px, k, 1, src, bias.IsEmpty ? 0f : 1f, py, n, pool);
    }

    internal static void CheckLinear(ReadOnlySpan<float> x, int m, WeightMatrix w, Span<float> y, ReadOnlySpan<float> bias)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        if ((long)m * w.Cols > x.Length) throw new ArgumentException($"Linear: X needs {(long)m * w.Cols} values ({m}×{w.Cols}), got {x.Length}", nameof(x));
        if ((long)m * w.Rows > y.Length) throw new ArgumentException($"Linear: Y needs {(long)m * w.Rows} values ({m}×{w.Rows}), got {y.Length}", nameof(y));
        if (!bias.IsEmpty && bias.Length != w.Rows) throw new ArgumentException($"Linear: bias has {bias.Length} values for {w.Rows} outputs", nameof(bias));
    }

    /// <summary>Scalar reference of <see cref="Linear(ReadOnlySpan{float}, int, WeightMatrix, Span{float}, ReadOnlySpan{float})"/>: widen each weight row, accumulate in double.</summary>
    public static void LinearReference(ReadOnlySpan<float> x, int m, WeightMatrix w, Span<float> y, ReadOnlySpan<float> bias = default)
    {
        int n = w.Rows, k = w.Cols;
        var row = new float[k];
        for (int j = 0; j < n; j++)
        {
            w.RowToSingle(j, row);
            for (int i = 0; i < m; i++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++) sum += (double)x[i * k + p] * row[p];
                y[i * n + j] = (float)sum + (bias.IsEmpty ? 0 : bias[j]);
            }
        }
    }
}
