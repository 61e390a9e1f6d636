using System.Numerics.Tensors;
using Encore.Tensors.Kernels;

namespace Encore.Autograd;

public static partial class Ops
{
    static void SameShape(Var a, Var b, string op)
    {
        if (!a.Shape.SequenceEqual(b.Shape)) throw new ArgumentException($"{op}: shapes {a.Value.Describe()} and {b.Value.Describe()} differ");
    }

    /// <summary>a + b (same shape). Backward: da += dy, db += dy.</summary>
    public static Var Add(Var a, Var b)
    {
        SameShape(a, b, "Add");
        var y = NewOutput(a, Grad(a, b));
        TensorPrimitives.Add(a.Data(), b.Data(), y.Value.AsSpan<float>());
        if (y.RequiresGrad) RecordAdd(y, a, b);
        return y;
    }

    static void RecordAdd(Var y, Var a, Var b) => Record(y, o =>
    {
        // b first: a may take dy's buffer over.
        b.AddGrad(o.OutGrad());
        a.PassGrad(o);
    });

    /// <summary>x + b with b (D) broadcast over the rows of x (…, D). Backward: db += Σ_rows dy.</summary>
    public static Var AddBias(Var x, Var b)
    {
        int d = x.Shape[^1];
        if (b.Value.Rank != 1 || b.Shape[0] != d) throw new ArgumentException($"AddBias: bias {b.Value.Describe()} does not match {x.Value.Describe()}");
        int rows = (int)(x.Value.Length / Math.Max(1, d));
        var y = NewOutput(x, Grad(x, b));
        Elementwise.AddRowBroadcast(x.Data(), b.Data(), y.Value.AsSpan<float>(), rows, d);
        if (y.RequiresGrad) RecordAddBias(y, x, b, rows, d);
        return y;
    }

    static void RecordAddBias(Var y, Var x, Var b, int rows, int d) => Record(y, o =>
    {
        if (b.RequiresGrad) Elementwise.SumRows(o.OutGrad(), rows, d, b.GradSpan());
        x.PassGrad(o);
    });

    /// <summary>a ⊙ b (same shape). Backward: da += dy ⊙ b, db += dy ⊙ a.</summary>
    public static Var Mul(Var a, Var b)
    {
        SameShape(a, b, "Mul");
        var y = NewOutput(a, Grad(a, b));
        TensorPrimitives.Multiply(a.Data(), b.Data(), y.Value.AsSpan<float>());
        if (y.RequiresGrad) RecordMul(y, a, b);
        return y;
    }

    static void RecordMul(Var y, Var a, Var b) => Record(y, o =>
    {
        var dy = o.OutGrad();
        if (a.RequiresGrad) TensorPrimitives.FusedMultiplyAdd(dy, b.Data(), a.GradSpan(), a.GradSpan());
        if (b.RequiresGrad) TensorPrimitives.FusedMultiplyAdd(dy, a.Data(), b.GradSpan(), b.GradSpan());
    });

    /// <summary>α·x. Backward: dx += α·dy.</summary>
    public static Var Scale(Var x, float alpha)
    {
        var y = NewOutput(x, Grad(x));
        TensorPrimitives.Multiply(x.Data(), alpha, y.Value.AsSpan<float>());
        if (y.RequiresGrad) RecordScale(y, x, alpha);
        return y;
    }

    static void RecordScale(Var y, Var x, float alpha) => Record(y, o =>
    {
        if (x.RequiresGrad) TensorPrimitives.MultiplyAdd(o.OutGrad(), alpha, x.GradSpan(), x.GradSpan());
    });

    /// <summary>The same values in a new shape: a view when the layout allows (no copy), the gradient reshaped back.</summary>
    public static Var Reshape(Var x, params int[] shape)
    {
        var y = WrapOutput(x.Value.Reshape(shape), Grad(x));
        if (y.RequiresGrad) RecordReshape(y, x);
        return y;
    }

    static void RecordReshape(Var y, Var x) => Record(y, o =>
    {
        x.PassGrad(o);
    });
}

public static partial class Ops
{
    /// <summary>
    /// The last position of each row: x (B, T, D) → (B, 1, D). Prefill needs only the last
    /// position's logits, so the LM head runs on B rows instead of B·T. Backward: scatter back.
    /// </summary>
    public static Var LastPosition(Var x)
    {
        if (x.Value.Rank != 3) throw new ArgumentException($"LastPosition: {x.Value.Describe()} must be (B, T, D)");
        int b = x.Shape[0], t = x.Shape[1], d = x.Shape[2];
        if (t == 1) return x;
        var y = NewOutput([b, 1, d], Grad(x));
        var xs = x.Data();
        var ys = y.Value.AsSpan<float>();
        for (int i = 0; i < b; i++) xs.Slice((i * t + t - 1) * d, d).CopyTo(ys.Slice(i * d, d));
        if (y.RequiresGrad) RecordLastPosition(y, x, b, t, d);
        return y;
    }

    static void RecordLastPosition(Var y, Var x, int b, int t, int d) => Record(y, o =>
    {
        var dy = o.OutGrad();
        var dx = x.GradSpan();
        for (int i = 0; i < b; i++) TensorPrimitives.Add(dx.Slice((i * t + t - 1) * d, d), dy.Slice(i * d, d), dx.Slice((i * t + t - 1) * d, d));
    });
}
