using System.Buffers;
using System.Numerics.Tensors;
using Encore.Tensors.Kernels;

namespace Encore.Autograd;

/// <summary>
/// The codebook snap of Codebook Features (Tamkin et al., arXiv 2310.17230): each row a (D) of an activation
/// becomes the sum of the k rows of a codebook (F, D) with the highest cosine similarity to it. Ranking by
/// cosine needs only a·c/|c| per code (|a| is the same for every code of a row), so <see cref="Snap"/> scores a
/// block of rows with one GEMM against the codebook and scales each column by its code's inverse norm;
/// <see cref="SnapReference"/> computes the cosines one by one and is the specification. Ties keep the lower
/// code index; a row whose scores are all NaN gets codes 0 … k − 1.
/// </summary>
public static class CodebookKernel
{
    /// <summary>Rows scored per GEMM in <see cref="Snap"/>: a block's (rows, F) scores stay in a pooled buffer.</summary>
    public const int RowBlock = 64;

    // Below this, a norm counts as zero: the cosine of a zero vector is taken as 0.
    const float Tiny = 1e-30f;

    /// <summary>
    /// codes (N·k, best first) and output (N, D) = Σ of each row's k codes, for x (N, D) and a codebook (F, D).
    /// </summary>
    public static void Snap(ReadOnlySpan<float> x, ReadOnlySpan<float> codebook, int n, int d, int f, int k, Span<int> codes, Span<float> output)
    {
        Check(x, codebook, n, d, f, k, codes, output, "CodebookKernel.Snap");
        float[] inverse = ArrayPool<float>.Shared.Rent(f);
        float[] scores = ArrayPool<float>.Shared.Rent(Math.Min(n, RowBlock) * f + 1);
        try
        {
            for (int j = 0; j < f; j++)
            {
                var c = codebook.Slice(j * d, d);
                inverse[j] = 1f / MathF.Max(MathF.Sqrt(TensorPrimitives.Dot(c, c)), Tiny);
            }
            var inv = inverse.AsSpan(0, f);
            for (int r0 = 0; r0 < n; r0 += RowBlock)
            {
                int m = Math.Min(RowBlock, n - r0);
                var s = scores.AsSpan(0, m * f);
                // (m, D)·(F, D)ᵀ → (m, F)
                Gemm.Multiply(Transpose.No, Transpose.Yes, m, f, d, 1f, x.Slice(r0 * d, m * d), d, codebook, d, 0f, s, f);
                for (int i = 0; i < m; i++)
                {
                    var row = s.Slice(i * f, f);
                    TensorPrimitives.Multiply(row, inv, row);
                    int r = r0 + i;
                    TopK(row, codes.Slice(r * k, k));
                    Sum(codebook, d, codes.Slice(r * k, k), output.Slice(r * d, d));
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(inverse);
            ArrayPool<float>.Shared.Return(scores);
        }
    }

    /// <summary>The scalar specification of <see cref="Snap"/>: cos(x_r, c_j) = x_r·c_j / (|x_r|·|c_j|) for every pair, in loops.</summary>
    public static void SnapReference(ReadOnlySpan<float> x, ReadOnlySpan<float> codebook, int n, int d, int f, int k, Span<int> codes, Span<float> output)
    {
        Check(x, codebook, n, d, f, k, codes, output, "CodebookKernel.SnapReference");
        var cosines = new float[f];
        for (int r = 0; r < n; r++)
        {
            var xr = x.Slice(r * d, d);
            double xx = 0;
            for (int e = 0; e < d; e++) xx += (double)xr[e] * xr[e];
            for (int j = 0; j < f; j++)
            {
                double dot = 0, cc = 0;
                for (int e = 0; e < d; e++)
                {
                    dot += (double)xr[e] * codebook[j * d + e];
                    cc += (double)codebook[j * d + e] * codebook[j * d + e];
                }
                double norm = Math.Sqrt(xx) * Math.Sqrt(cc);
                cosines[j] = norm < Tiny ? 0f : (float)(dot / norm);
            }
            TopK(cosines, codes.Slice(r * k, k));
            Sum(codebook, d, codes.Slice(r * k, k), output.Slice(r * d, d));
        }
    }

    // The k highest scores' indices, best first; equal scores keep the lower index, NaN never enters.
    static void TopK(ReadOnlySpan<float> scores, Span<int> best)
    {
        int k = best.Length;
        Span<float> top = k <= 64 ? stackalloc float[k] : new float[k];
        for (int i = 0; i < k; i++)
        {
            best[i] = i;
            top[i] = float.NegativeInfinity;
        }
        for (int j = 0; j < scores.Length; j++)
        {
            float s = scores[j];
            if (!(s > top[k - 1])) continue;
            int p = k - 1;
            while (p > 0 && s > top[p - 1])
            {
                top[p] = top[p - 1];
                best[p] = best[p - 1];
                p--;
            }
            top[p] = s;
            best[p] = j;
        }
    }

    // out = Σ codebook[codes[i]], in code order.
    static void Sum(ReadOnlySpan<float> codebook, int d, ReadOnlySpan<int> codes, Span<float> output)
    {
        codebook.Slice(codes[0] * d, d).CopyTo(output);
        for (int i = 1; i < codes.Length; i++) TensorPrimitives.Add(output, codebook.Slice(codes[i] * d, d), output);
    }

    static void Check(ReadOnlySpan<float> x, ReadOnlySpan<float> codebook, int n, int d, int f, int k, Span<int> codes, Span<float> output, string op)
    {
        if (n < 0 || d < 1 || f < 1) throw new ArgumentException($"{op}: rows {n}, width {d} and codes {f} must be ≥ 0, ≥ 1 and ≥ 1");
        if (k < 1 || k > f) throw new ArgumentOutOfRangeException(nameof(k), $"{op}: top-k {k} is outside [1, {f}]");
        if (x.Length < (long)n * d || output.Length < (long)n * d) throw new ArgumentException($"{op}: x and output need {(long)n * d} values, got {x.Length} and {output.Length}");
        if (codebook.Length < (long)f * d) throw new ArgumentException($"{op}: the codebook needs {(long)f * d} values, got {codebook.Length}");
        if (codes.Length < (long)n * k) throw new ArgumentException($"{op}: codes need {(long)n * k} slots, got {codes.Length}");
    }
}

public static partial class Ops
{
    /// <summary>
    /// The codebook bottleneck of Codebook Features (arXiv 2310.17230): x (…, D) → (…, D), each row replaced by the
    /// sum of the <paramref name="k"/> rows of <paramref name="codebook"/> (F, D) most cosine-similar to it
    /// (<see cref="CodebookKernel"/>). <paramref name="codes"/>, when given, receives each row's codes, best first
    /// (N·k for the N rows).
    /// Backward (codebook-features models.py): straight-through to the input, dx += dy, plus with a commitment
    /// weight β &gt; 0 the gradient of β·(1/N)·Σ_rows ‖x − out‖² with out held fixed, dx += (2β/N)(x − out)
    /// (the reference code's "vqvae" loss adds 2β(x − out) unscaled; divided by N here it is the gradient of a
    /// mean, on the scale of a mean cross-entropy's); the codebook gets ∂out/∂codebook for the chosen codes,
    /// dC[j] += Σ of dy over the rows that chose code j.
    /// </summary>
    public static Var Codebook(Var x, Var codebook, int k, float commitment = 0, int[]? codes = null)
    {
        if (codebook.Value.Rank != 2) throw new ArgumentException($"Codebook: codebook {codebook.Value.Describe()} must be (F, D)");
        int f = codebook.Shape[0], d = codebook.Shape[1];
        if (x.Shape[^1] != d) throw new ArgumentException($"Codebook: input {x.Value.Describe()} does not end in the codebook's width {d}");
        if (k < 1 || k > f) throw new ArgumentOutOfRangeException(nameof(k), $"Codebook: top-k {k} is outside [1, {f}]");
        if (!(commitment >= 0 && float.IsFinite(commitment))) throw new ArgumentException($"Codebook: commitment {commitment} must be ≥ 0 and finite");
        int n = (int)(x.Value.Length / d);
        if (codes != null && codes.Length < (long)n * k) throw new ArgumentException($"Codebook: codes need {(long)n * k} slots, got {codes.Length}");
        var y = NewOutput(x, Grad(x, codebook));
        var chosen = y.RequiresGrad || codes is null ? Workspace.RentInts(n * k) : codes;                  // (N·k)
        CodebookKernel.Snap(x.Data(), codebook.Data(), n, d, f, k, chosen, y.Value.AsSpan<float>());
        if (codes != null && chosen != codes) chosen.AsSpan(0, n * k).CopyTo(codes);
        if (y.RequiresGrad) RecordCodebook(y, x, codebook, chosen, n, d, k, commitment);
        return y;
    }

    static void RecordCodebook(Var y, Var x, Var codebook, int[] codes, int n, int d, int k, float commitment) => Record(y, o =>
    {
        var dy = o.OutGrad();                                                                          // (N, D)
        if (codebook.RequiresGrad)
        {
            var dc = codebook.GradSpan();                                                              // (F, D)
            for (int r = 0; r < n; r++)
                for (int i = 0; i < k; i++)
                {
                    var row = dc.Slice(codes[r * k + i] * d, d);
                    TensorPrimitives.Add(row, dy.Slice(r * d, d), row);
                }
        }
        if (!x.RequiresGrad) return;
        if (commitment == 0)
        {
            x.PassGrad(o);
            return;
        }
        var dx = x.GradSpan();
        float scale = 2 * commitment / Math.Max(1, n);
        var xs = x.Data();
        var ys = o.Data();
        for (int i = 0; i < dx.Length; i++) dx[i] += dy[i] + scale * (xs[i] - ys[i]);
    });
}
