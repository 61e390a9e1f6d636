namespace Encore.Tensors.Kernels;

/// <summary>
/// Gated linear units (Shazeer 2020, "GLU Variants Improve Transformer"): y = f(a)·b, where a is the
/// gate projection (activated) and b the up projection. Two layouts:
/// <list type="bullet">
/// <item>separate spans a, b of equal length (HF T5 v1.1 <c>wi_0</c>/<c>wi_1</c>, Llama <c>gate_proj</c>/<c>up_proj</c>);</item>
/// <item>one packed (rows, 2F) span per row [a | b], the activated half first (a fused gate-up projection,
/// as Phi-3's <c>gate_up_proj</c> followed by <c>chunk(2, dim=-1)</c>), giving y of (rows, F).</item>
/// </list>
/// GeGLU is f = GELU (T5 v1.1's "gated-gelu" uses the tanh form: pass <see cref="ActivationKind.GeluTanh"/>),
/// SwiGLU is f = SiLU. Accuracy as in <see cref="Activations"/>.
/// </summary>
public static unsafe class GatedActivations
{
    /// <summary>y = f(a)·b element-wise. <paramref name="y"/> may be <paramref name="a"/> or <paramref name="b"/>.</summary>
    public static void Forward(ActivationKind kind, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        ActivationDriver.CheckFlat(a.Length, b.Length, "b", "GatedActivations.Forward");
        ActivationDriver.CheckFlat(a.Length, y.Length, "y", "GatedActivations.Forward");
        fixed (float* pa = a, pb = b, py = y)
            ActivationDriver.Flat(kind, ActivationMode.GatedForward, pa, pb, null, py, null, a.Length, Simd.Current);
    }

    /// <summary>
    /// Backward of <see cref="Forward"/>: da = f'(a)·b·dy, db = f(a)·dy. <paramref name="da"/> may be
    /// <paramref name="a"/> or <paramref name="dy"/>, <paramref name="db"/> may be <paramref name="b"/>.
    /// </summary>
    public static void Backward(ActivationKind kind, ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> dy,
        Span<float> da, Span<float> db)
    {
        const string op = "GatedActivations.Backward";
        ActivationDriver.CheckFlat(a.Length, b.Length, "b", op);
        ActivationDriver.CheckFlat(a.Length, dy.Length, "dy", op);
        ActivationDriver.CheckFlat(a.Length, da.Length, "da", op);
        ActivationDriver.CheckFlat(a.Length, db.Length, "db", op);
        fixed (float* pa = a, pb = b, pdy = dy, pda = da, pdb = db)
            ActivationDriver.Flat(kind, ActivationMode.GatedBackward, pa, pb, pdy, pda, pdb, a.Length, Simd.Current);
    }

    /// <summary>y (rows, F) = f(ab[:, :F])·ab[:, F:] from the packed (rows, 2F) <paramref name="ab"/>.</summary>
    public static void ForwardPacked(ActivationKind kind, ReadOnlySpan<float> ab, Span<float> y, int rows, int f)
    {
        CheckPacked(ab.Length, rows, f, "GatedActivations.ForwardPacked");
        if (y.Length < (long)rows * f) throw new ArgumentException($"GatedActivations.ForwardPacked: y needs {(long)rows * f} values ({rows}×{f}), got {y.Length}", nameof(y));
        fixed (float* pab = ab, py = y)
            ActivationDriver.Packed(kind, ActivationMode.GatedForward, pab, null, py, rows, f, Simd.Current);
    }

    /// <summary>
    /// Backward of <see cref="ForwardPacked"/>: d(ab) (rows, 2F) = [f'(a)·b·dy | f(a)·dy] from dy (rows, F).
    /// <paramref name="dab"/> may be <paramref name="ab"/> (in place).
    /// </summary>
    public static void BackwardPacked(ActivationKind kind, ReadOnlySpan<float> ab, ReadOnlySpan<float> dy, Span<float> dab, int rows, int f)
    {
        const string op = "GatedActivations.BackwardPacked";
        CheckPacked(ab.Length, rows, f, op);
        CheckPacked(dab.Length, rows, f, op);
        if (dy.Length < (long)rows * f) throw new ArgumentException($"{op}: dy needs {(long)rows * f} values ({rows}×{f}), got {dy.Length}", nameof(dy));
        fixed (float* pab = ab, pdy = dy, pdab = dab)
            ActivationDriver.Packed(kind, ActivationMode.GatedBackward, pab, pdy, pdab, rows, f, Simd.Current);
    }

    /// <summary>GeGLU with the exact GELU, as in Shazeer 2020: y = gelu(a)·b.</summary>
    public static void GeGlu(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => Forward(ActivationKind.GeluErf, a, b, y);

    /// <summary>SwiGLU: y = silu(a)·b (Llama's FFN).</summary>
    public static void SwiGlu(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => Forward(ActivationKind.Silu, a, b, y);

    /// <summary>The scalar specification: y = f(a)·b.</summary>
    public static float Reference(ActivationKind kind, float a, float b) => Activations.Reference(kind, a) * b;

    static void CheckPacked(int length, int rows, int f, string op)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(f);
        if (length < 2L * rows * f) throw new ArgumentException($"{op}: the packed (rows, 2F) input needs {2L * rows * f} values ({rows}×2·{f}), got {length}");
    }
}
