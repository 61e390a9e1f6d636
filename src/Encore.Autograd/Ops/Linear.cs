using Encore.Tensors.Kernels;

namespace Encore.Autograd;

/// <summary>Differentiable operations. Each op's forward and backward sit side by side.</summary>
public static partial class Ops
{
    /// <summary>
    /// y = x·Wᵀ + b (PyTorch <c>F.linear</c>): x (…, K), W (N, K) in any weight dtype (gradients
    /// only for F32), b (N) optional; y (…, N).
    /// Backward: dx = dy·W, dW += dyᵀ·x, db += Σ_rows dy.
    /// </summary>
    public static Var Linear(Var x, Var w, Var? b = null)
    {
        int k = w.Shape[1], n = w.Shape[0];
        if (x.Shape[^1] != k) throw new ArgumentException($"Linear: input {x.Value.Describe()} does not end in the weight's {k} input features ({w.Value.Describe()})");
        if (b != null && (b.Value.Rank != 1 || b.Shape[0] != n)) throw new ArgumentException($"Linear: bias {b.Value.Describe()} does not match {n} outputs");
        int m = (int)(x.Value.Length / k);
        var y = NewOutputLast(x, n, Grad(x, w, b));
        // (M, K)·(N, K)ᵀ → (M, N)
        Gemm.Linear(x.Data(), m, WeightMatrix.From(w.Value), y.Value.AsSpan<float>(), b is null ? default : b.Data());
        if (y.RequiresGrad) RecordLinear(y, x, w, b, m, k, n);
        return y;
    }

    /// <summary>
    /// Three <see cref="Linear"/>s of the same x, (x·W₀ᵀ + b₀, x·W₁ᵀ + b₁, x·W₂ᵀ + b₂), as those three calls give them. Where
    /// nothing needs a gradient, the weights share dtype and width and x has few rows (decoding), they run as one GEMV
    /// (<see cref="Gemm.LinearShared"/>); otherwise as three <see cref="Linear"/>s.
    /// </summary>
    public static (Var Y0, Var Y1, Var Y2) LinearShared(Var x, Var w0, Var? b0, Var w1, Var? b1, Var w2, Var? b2)
    {
        int k = w0.Shape[1];
        int m = x.Shape[^1] == k ? (int)(x.Value.Length / k) : 0;
        bool shared = m > 0 && !Grad(x, w0, b0) && !Grad(w1, w2, b1) && !(b2 != null && Grad(b2))
            && w1.Shape[1] == k && w2.Shape[1] == k && w1.Value.DType == w0.Value.DType && w2.Value.DType == w0.Value.DType
            && Gemm.SharesInput(m, w0.Value.DType)
            && (b0 == null || (b0.Value.Rank == 1 && b0.Shape[0] == w0.Shape[0]))
            && (b1 == null || (b1.Value.Rank == 1 && b1.Shape[0] == w1.Shape[0]))
            && (b2 == null || (b2.Value.Rank == 1 && b2.Shape[0] == w2.Shape[0]));
        if (!shared) return (Linear(x, w0, b0), Linear(x, w1, b1), Linear(x, w2, b2));
        var y0 = NewOutputLast(x, w0.Shape[0], false);
        var y1 = NewOutputLast(x, w1.Shape[0], false);
        var y2 = NewOutputLast(x, w2.Shape[0], false);
        Gemm.LinearShared(x.Data(), m,
            WeightMatrix.From(w0.Value), y0.Value.AsSpan<float>(), b0 is null ? default : b0.Data(),
            WeightMatrix.From(w1.Value), y1.Value.AsSpan<float>(), b1 is null ? default : b1.Data(),
            WeightMatrix.From(w2.Value), y2.Value.AsSpan<float>(), b2 is null ? default : b2.Data());
        // The kernel reads x through a raw span, which does not keep x alive, and nothing here uses x afterwards: a
        // caller that dropped x (a normed input) would let it be finalized, its memory freed or reused, mid-product.
        GC.KeepAlive(x);
        return (y0, y1, y2);
    }

    static void RecordLinear(Var y, Var x, Var w, Var? b, int m, int k, int n) => Record(y, o =>
    {
        var dy = o.OutGrad();                       // (M, N)
        // dx += dy (M, N) · W (N, K)
        if (x.RequiresGrad)
        {
            var dx = x.GradTarget(out bool accumulate);
            Gemm.Multiply(Transpose.No, Transpose.No, m, k, n, 1f, dy, n, w.Data(), k, accumulate ? 1f : 0f, dx, k);
        }
        // dW += dyᵀ (N, M) · x (M, K)
        if (w.RequiresGrad) Gemm.Multiply(Transpose.Yes, Transpose.No, n, k, m, 1f, dy, n, x.Data(), k, 1f, w.GradSpan(), k);
        if (b is { RequiresGrad: true }) Elementwise.SumRows(dy, m, n, b.GradSpan());
    });

    /// <summary>
    /// Batched matrix product C = A·B (or A·Bᵀ) over the leading dimensions: A (…, M, K),
    /// B (…, K, N) → (…, M, N); both must have the same leading dimensions.
    /// Backward: dA = dC·Bᵀ, dB = Aᵀ·dC.
    /// </summary>
    public static Var MatMul(Var a, Var b, bool transposeB = false)
    {
        int m = a.Shape[^2], k = a.Shape[^1];
        int n = transposeB ? b.Shape[^2] : b.Shape[^1];
        int kb = transposeB ? b.Shape[^1] : b.Shape[^2];
        if (k != kb || a.Value.Rank != b.Value.Rank || !a.Shape[..^2].SequenceEqual(b.Shape[..^2]))
            throw new ArgumentException($"MatMul: {a.Value.Describe()} and {b.Value.Describe()}{(transposeB ? "ᵀ" : "")} do not multiply");
        int batch = (int)(a.Value.Length / ((long)m * k));
        var c = NewOutputLast(a, n, Grad(a, b));
        var tb = transposeB ? Transpose.Yes : Transpose.No;
        int ldb = transposeB ? k : n;
        var ad = a.Data();
        var bd = b.Data();
        var cd = c.Value.AsSpan<float>();
        for (int i = 0; i < batch; i++)
            Gemm.Multiply(Transpose.No, tb, m, n, k, 1f, ad.Slice(i * m * k, m * k), k, bd.Slice(i * k * n, k * n), ldb, 0f, cd.Slice(i * m * n, m * n), n);
        if (c.RequiresGrad) RecordMatMul(c, a, b, transposeB, batch, m, k, n);
        return c;
    }

    static void RecordMatMul(Var c, Var a, Var b, bool transposeB, int batch, int m, int k, int n) => Record(c, o =>
    {
        var dc = o.OutGrad();
        int ldb = transposeB ? k : n;
        // Each batch item's slice of dA and dB is written once: overwrite a gradient not started yet.
        var da = a.GradTarget(out bool accumulateA);
        var dbAll = b.GradTarget(out bool accumulateB);
        for (int i = 0; i < batch; i++)
        {
            var dci = dc.Slice(i * m * n, m * n);
            if (a.RequiresGrad)
            {
                // dA (M, K) += dC (M, N) · op(B)ᵀ
                Gemm.Multiply(Transpose.No, transposeB ? Transpose.No : Transpose.Yes, m, k, n, 1f, dci, n,
                    b.Data().Slice(i * k * n, k * n), ldb, accumulateA ? 1f : 0f, da.Slice(i * m * k, m * k), k);
            }
            if (b.RequiresGrad)
            {
                var db = dbAll.Slice(i * k * n, k * n);
                float betaB = accumulateB ? 1f : 0f;
                if (transposeB)   // dB (N, K) += dCᵀ (N, M) · A (M, K)
                    Gemm.Multiply(Transpose.Yes, Transpose.No, n, k, m, 1f, dci, n, a.Data().Slice(i * m * k, m * k), k, betaB, db, k);
                else              // dB (K, N) += Aᵀ (K, M) · dC (M, N)
                    Gemm.Multiply(Transpose.Yes, Transpose.No, k, n, m, 1f, a.Data().Slice(i * m * k, m * k), k, dci, n, betaB, db, n);
            }
        }
    });
}
