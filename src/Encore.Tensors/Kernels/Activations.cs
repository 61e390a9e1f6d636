using System.Runtime.CompilerServices;

namespace Encore.Tensors.Kernels;

/// <summary>Element-wise activation functions, named as HF configs name them where they differ.</summary>
public enum ActivationKind
{
    /// <summary>max(x, 0) (<c>"relu"</c>, the original T5 FFN).</summary>
    Relu,
    /// <summary>
    /// GELU, tanh approximation: ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (<c>"gelu_new"</c>,
    /// <c>"gelu_pytorch_tanh"</c>; T5 v1.1's gated-gelu, GPT-2).
    /// </summary>
    GeluTanh,
    /// <summary>GELU, exact: ½x(1 + erf(x/√2)) (<c>"gelu"</c>, PyTorch's default; BERT).</summary>
    GeluErf,
    /// <summary>SiLU/Swish: x·σ(x) (<c>"silu"</c>; Llama's SwiGLU).</summary>
    Silu,
    /// <summary>
    /// The identity, f(x) = x (<c>"linear"</c>): a feed-forward layer with no nonlinearity, as in the reduced-nonlinearity
    /// models of Entropy-Guided Attention (arXiv 2501.03489).
    /// </summary>
    Identity,
}

/// <summary>
/// Activation functions y = f(x) and their backward passes dx = f'(x)·dy over flat float spans.
/// The scalar references use MathF.Exp and, as .NET has no erf, the rational erf of <c>VectorMath.Erf</c>
/// (Eigen's, evaluated in double: max abs error 1e-7, checked against a double series in the tests).
/// The vector paths evaluate the same formulas with vector exp (and the same double erf); they agree
/// with the references to a few 1e-7, relative for large values and absolute near 0. Large inputs are parallel over 64-value blocks,
/// so no value's result depends on the thread count.
/// </summary>
public static unsafe class Activations
{
    /// <summary>y = f(x). <paramref name="y"/> may be <paramref name="x"/>.</summary>
    public static void Forward(ActivationKind kind, ReadOnlySpan<float> x, Span<float> y)
    {
        ActivationDriver.CheckFlat(x.Length, y.Length, "y", "Activations.Forward");
        fixed (float* px = x, py = y)
            ActivationDriver.Flat(kind, ActivationMode.Forward, px, null, null, py, null, x.Length, Simd.Current);
    }

    /// <summary>dx = f'(x)·dy, from the forward input x. <paramref name="dx"/> may be <paramref name="dy"/> or <paramref name="x"/>.</summary>
    public static void Backward(ActivationKind kind, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        ActivationDriver.CheckFlat(x.Length, dy.Length, "dy", "Activations.Backward");
        ActivationDriver.CheckFlat(x.Length, dx.Length, "dx", "Activations.Backward");
        fixed (float* px = x, pdy = dy, pdx = dx)
            ActivationDriver.Flat(kind, ActivationMode.Backward, px, null, pdy, pdx, null, x.Length, Simd.Current);
    }

    /// <summary>GELU, tanh approximation (see <see cref="ActivationKind.GeluTanh"/>).</summary>
    public static void GeluTanh(ReadOnlySpan<float> x, Span<float> y) => Forward(ActivationKind.GeluTanh, x, y);

    /// <summary>GELU with the exact erf form (see <see cref="ActivationKind.GeluErf"/>).</summary>
    public static void GeluErf(ReadOnlySpan<float> x, Span<float> y) => Forward(ActivationKind.GeluErf, x, y);

    /// <summary>SiLU, x·σ(x).</summary>
    public static void Silu(ReadOnlySpan<float> x, Span<float> y) => Forward(ActivationKind.Silu, x, y);

    /// <summary>ReLU, max(x, 0) (NaN stays NaN).</summary>
    public static void Relu(ReadOnlySpan<float> x, Span<float> y) => Forward(ActivationKind.Relu, x, y);

    /// <summary>dx = gelu_tanh'(x)·dy.</summary>
    public static void GeluTanhBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) => Backward(ActivationKind.GeluTanh, x, dy, dx);

    /// <summary>dx = gelu'(x)·dy = (Φ(x) + x·φ(x))·dy.</summary>
    public static void GeluErfBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) => Backward(ActivationKind.GeluErf, x, dy, dx);

    /// <summary>dx = silu'(x)·dy = σ(x)(1 + x(1 − σ(x)))·dy.</summary>
    public static void SiluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) => Backward(ActivationKind.Silu, x, dy, dx);

    /// <summary>dx = [x &gt; 0]·dy (0 at x = 0, as PyTorch).</summary>
    public static void ReluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) => Backward(ActivationKind.Relu, x, dy, dx);

    /// <summary>The scalar specification of f.</summary>
    public static float Reference(ActivationKind kind, float x) => Scalar(kind, x, derivative: false);

    /// <summary>The scalar specification of f'.</summary>
    public static float DerivativeReference(ActivationKind kind, float x) => Scalar(kind, x, derivative: true);

    static float Scalar(ActivationKind kind, float x, bool derivative) => kind switch
    {
        ActivationKind.Relu => derivative ? ReluOp.Derivative(x) : ReluOp.Forward(x),
        ActivationKind.GeluTanh => derivative ? GeluTanhOp.Derivative(x) : GeluTanhOp.Forward(x),
        ActivationKind.GeluErf => derivative ? GeluErfOp.Derivative(x) : GeluErfOp.Forward(x),
        ActivationKind.Silu => derivative ? SiluOp.Derivative(x) : SiluOp.Forward(x),
        ActivationKind.Identity => derivative ? IdentityOp.Derivative(x) : IdentityOp.Forward(x),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown activation"),
    };

    /// <summary>erf(x) as the GELU kernels compute it (the scalar form of the vector approximation).</summary>
    public static float Erf(float x) => VectorMath.Erf(x);
}

/// <summary>An activation as an operator: scalar and vector forms of f and f'.</summary>
internal interface IActivation
{
    static abstract float Forward(float x);
    static abstract float Derivative(float x);
    static abstract TV Forward<TV>(TV x) where TV : unmanaged, IVec<TV>;
    static abstract TV Derivative<TV>(TV x) where TV : unmanaged, IVec<TV>;
}

internal readonly struct ReluOp : IActivation
{
    public static float Forward(float x) => x > 0 ? x : (float.IsNaN(x) ? x : 0f);
    public static float Derivative(float x) => x > 0 ? 1f : 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Forward<TV>(TV x) where TV : unmanaged, IVec<TV> => TV.Max(x, TV.Splat(0f));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Derivative<TV>(TV x) where TV : unmanaged, IVec<TV> => TV.Select(TV.LessThan(TV.Splat(0f), x), TV.Splat(1f), TV.Splat(0f));
}

// Hendrycks & Gimpel 2016, the tanh form as HF NewGELUActivation writes it, ½x(1 + tanh u) with
// u = √(2/π)(x + 0.044715x³), evaluated as the identical x·σ(2u): ½(1 + tanh u) = σ(2u), and unlike
// 1 + tanh u (and 1 − tanh²u in the derivative) σ keeps its relative precision for large |u|.
internal readonly struct GeluTanhOp : IActivation
{
    const float K = 0.7978845608028654f;   // √(2/π)
    const float C = 0.044715f;

    public static float Forward(float x)
    {
        var (s, _) = VectorMath.SigmoidPair(2f * K * (x + C * x * x * x));
        return x * s;
    }

    // d/dx x·σ(2u) = σ + 2x·σ(1 − σ)·u', u' = √(2/π)(1 + 3·0.044715x²).
    public static float Derivative(float x)
    {
        var (s, c) = VectorMath.SigmoidPair(2f * K * (x + C * x * x * x));
        return s + 2f * x * s * c * K * (1f + 3f * C * x * x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Forward<TV>(TV x) where TV : unmanaged, IVec<TV>
    {
        var (s, _) = VectorMath.SigmoidPair(TV.Splat(2f * K) * TV.Fma(TV.Splat(C) * x * x, x, x));
        return x * s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Derivative<TV>(TV x) where TV : unmanaged, IVec<TV>
    {
        var x2 = x * x;
        var (s, c) = VectorMath.SigmoidPair(TV.Splat(2f * K) * TV.Fma(TV.Splat(C) * x2, x, x));
        var du = TV.Splat(2f * K) * TV.Fma(TV.Splat(3f * C), x2, TV.Splat(1f));
        return TV.Fma(x * s * c, du, s);
    }
}

// ½x(1 + erf(x/√2)) as PyTorch's exact GELU; f' = Φ(x) + x·φ(x).
internal readonly struct GeluErfOp : IActivation
{
    const float InvSqrt2 = 0.70710678118654752f;
    const float InvSqrt2Pi = 0.3989422804014327f;   // 1/√(2π)

    public static float Forward(float x) => 0.5f * x * (1f + VectorMath.Erf(x * InvSqrt2));

    public static float Derivative(float x)
        => 0.5f * (1f + VectorMath.Erf(x * InvSqrt2)) + x * InvSqrt2Pi * MathF.Exp(-0.5f * x * x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Forward<TV>(TV x) where TV : unmanaged, IVec<TV>
    {
        var half = TV.Splat(0.5f) * x;
        return TV.Fma(half, TV.Erf(x * TV.Splat(InvSqrt2)), half);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Derivative<TV>(TV x) where TV : unmanaged, IVec<TV>
    {
        var half = TV.Splat(0.5f);
        var cdf = TV.Fma(half, TV.Erf(x * TV.Splat(InvSqrt2)), half);
        var pdf = TV.Splat(InvSqrt2Pi) * TV.Exp(TV.Splat(-0.5f) * x * x);
        return TV.Fma(x, pdf, cdf);
    }
}

// Elfwing et al. 2017 / Ramachandran et al. 2017; f' = σ(1 + x(1 − σ)).
internal readonly struct IdentityOp : IActivation
{
    public static float Forward(float x) => x;
    public static float Derivative(float x) => 1f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Forward<TV>(TV x) where TV : unmanaged, IVec<TV> => x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Derivative<TV>(TV x) where TV : unmanaged, IVec<TV> => TV.Splat(1f);
}

internal readonly struct SiluOp : IActivation
{
    public static float Forward(float x) => x * VectorMath.Sigmoid(x);

    public static float Derivative(float x)
    {
        var (s, c) = VectorMath.SigmoidPair(x);
        return s * (1f + x * c);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Forward<TV>(TV x) where TV : unmanaged, IVec<TV> => x * VectorMath.Sigmoid(x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Derivative<TV>(TV x) where TV : unmanaged, IVec<TV>
    {
        var (s, c) = VectorMath.SigmoidPair(x);
        return s * TV.Fma(x, c, TV.Splat(1f));
    }
}

/// <summary>What an activation kernel computes per value.</summary>
internal enum ActivationMode
{
    /// <summary>out0 = f(a).</summary>
    Forward,
    /// <summary>out0 = f'(a)·dy.</summary>
    Backward,
    /// <summary>out0 = f(a)·b.</summary>
    GatedForward,
    /// <summary>out0 = f'(a)·b·dy (da), out1 = f(a)·dy (db).</summary>
    GatedBackward,
}

/// <summary>The one entry behind <see cref="Activations"/> and <see cref="GatedActivations"/>, on <see cref="RowDriver"/>.</summary>
internal static unsafe class ActivationDriver
{
    // Tasks of at least 4096 values: an activation costs several times an add per value.
    const int MinPerTask = 4096;

    public static void CheckFlat(int n, int other, string name, string op)
    {
        if (other < n) throw new ArgumentException($"{op}: {name} has {other} values for {n} inputs", name);
    }

    /// <summary>Flat spans of <paramref name="n"/> values.</summary>
    public static void Flat(ActivationKind kind, ActivationMode mode, float* a, float* b, float* dy, float* out0, float* out1, int n, SimdWidth width)
    {
        switch (kind)
        {
            case ActivationKind.Relu: RowDriver.RunFlat(new FlatValues<ReluOp>(mode, a, b, dy, out0, out1), n, MinPerTask, width); break;
            case ActivationKind.GeluTanh: RowDriver.RunFlat(new FlatValues<GeluTanhOp>(mode, a, b, dy, out0, out1), n, MinPerTask, width); break;
            case ActivationKind.GeluErf: RowDriver.RunFlat(new FlatValues<GeluErfOp>(mode, a, b, dy, out0, out1), n, MinPerTask, width); break;
            case ActivationKind.Silu: RowDriver.RunFlat(new FlatValues<SiluOp>(mode, a, b, dy, out0, out1), n, MinPerTask, width); break;
            case ActivationKind.Identity: RowDriver.RunFlat(new FlatValues<IdentityOp>(mode, a, b, dy, out0, out1), n, MinPerTask, width); break;
            default: throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown activation");
        }
    }

    /// <summary>
    /// Packed gated layout: <paramref name="ab"/> is (rows, 2F) with a = ab[:, :F], b = ab[:, F:]; the
    /// forward writes (rows, F) into out0, the backward writes d(ab) (rows, 2F) into out0.
    /// </summary>
    public static void Packed(ActivationKind kind, ActivationMode mode, float* ab, float* dy, float* out0, int rows, int f, SimdWidth width)
    {
        switch (kind)
        {
            case ActivationKind.Relu: RowDriver.Run(new PackedRows<ReluOp>(mode, ab, dy, out0, f), rows, 2L * f, width); break;
            case ActivationKind.GeluTanh: RowDriver.Run(new PackedRows<GeluTanhOp>(mode, ab, dy, out0, f), rows, 2L * f, width); break;
            case ActivationKind.GeluErf: RowDriver.Run(new PackedRows<GeluErfOp>(mode, ab, dy, out0, f), rows, 2L * f, width); break;
            case ActivationKind.Silu: RowDriver.Run(new PackedRows<SiluOp>(mode, ab, dy, out0, f), rows, 2L * f, width); break;
            case ActivationKind.Identity: RowDriver.Run(new PackedRows<IdentityOp>(mode, ab, dy, out0, f), rows, 2L * f, width); break;
            default: throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown activation");
        }
    }

    // Values [first, end) of flat a, b, dy (b, dy and out1 null where the mode reads or writes none).
    readonly struct FlatValues<TAct>(ActivationMode mode, float* a, float* b, float* dy, float* o0, float* o1) : IRangeOperator
        where TAct : struct, IActivation
    {
        public void Range<TV>(int first, int end) where TV : unmanaged, IVec<TV>
            => Segment<TAct, TV>(mode, a + first, At(b, first), At(dy, first), o0 + first, At(o1, first), end - first);

        public void RangeScalar(int first, int end)
            => SegmentScalar<TAct>(mode, a + first, At(b, first), At(dy, first), o0 + first, At(o1, first), end - first);

        static float* At(float* p, int i) => p == null ? null : p + i;
    }

    // Row r of the packed layout: a and b are its two halves; the backward writes da and db side by side.
    readonly struct PackedRows<TAct>(ActivationMode mode, float* ab, float* dy, float* out0, int f) : IRowOperator
        where TAct : struct, IActivation
    {
        public void Row<TV>(int r) where TV : unmanaged, IVec<TV>
        {
            float* a = ab + 2L * f * r;
            if (mode == ActivationMode.GatedForward) Segment<TAct, TV>(mode, a, a + f, null, out0 + (long)f * r, null, f);
            else Segment<TAct, TV>(mode, a, a + f, dy + (long)f * r, out0 + 2L * f * r, out0 + 2L * f * r + f, f);
        }

        public void RowScalar(int r)
        {
            float* a = ab + 2L * f * r;
            if (mode == ActivationMode.GatedForward) SegmentScalar<TAct>(mode, a, a + f, null, out0 + (long)f * r, null, f);
            else SegmentScalar<TAct>(mode, a, a + f, dy + (long)f * r, out0 + 2L * f * r, out0 + 2L * f * r + f, f);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Segment<TAct, TV>(ActivationMode mode, float* a, float* b, float* dy, float* o0, float* o1, int n)
        where TAct : struct, IActivation where TV : unmanaged, IVec<TV>
    {
        int w = TV.Count, i = 0;
        switch (mode)
        {
            case ActivationMode.Forward:
                for (; i + w <= n; i += w) TV.Store(TAct.Forward(TV.Load(a + i)), o0 + i);
                break;
            case ActivationMode.Backward:
                for (; i + w <= n; i += w) TV.Store(TAct.Derivative(TV.Load(a + i)) * TV.Load(dy + i), o0 + i);
                break;
            case ActivationMode.GatedForward:
                for (; i + w <= n; i += w) TV.Store(TAct.Forward(TV.Load(a + i)) * TV.Load(b + i), o0 + i);
                break;
            case ActivationMode.GatedBackward:
                for (; i + w <= n; i += w)
                {
                    var x = TV.Load(a + i);
                    var g = TV.Load(dy + i);
                    var bv = TV.Load(b + i);
                    var db = TAct.Forward(x) * g;
                    TV.Store(TAct.Derivative(x) * bv * g, o0 + i);
                    TV.Store(db, o1 + i);
                }
                break;
        }
        if (i < n) SegmentScalar<TAct>(mode, a + i, b == null ? null : b + i, dy == null ? null : dy + i, o0 + i, o1 == null ? null : o1 + i, n - i);
    }

    static void SegmentScalar<TAct>(ActivationMode mode, float* a, float* b, float* dy, float* o0, float* o1, int n) where TAct : struct, IActivation
    {
        for (int i = 0; i < n; i++)
        {
            float x = a[i];
            switch (mode)
            {
                case ActivationMode.Forward: o0[i] = TAct.Forward(x); break;
                case ActivationMode.Backward: o0[i] = TAct.Derivative(x) * dy[i]; break;
                case ActivationMode.GatedForward: o0[i] = TAct.Forward(x) * b[i]; break;
                case ActivationMode.GatedBackward:
                    {
                        float g = dy[i], bv = b[i];
                        float db = TAct.Forward(x) * g;
                        o0[i] = TAct.Derivative(x) * bv * g;
                        o1[i] = db;
                        break;
                    }
            }
        }
    }
}
