using System.Numerics.Tensors;
using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

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
        var y = a.NewLike();
        TensorPrimitives.Add(a.Data(), b.Data(), y.AsSpan<float>());
        return Tape.Output(y, [a, b], o =>
        {
            var dy = o.OutGrad();
            if (a.RequiresGrad) TensorPrimitives.Add(a.GradSpan(), dy, a.GradSpan());
            if (b.RequiresGrad) TensorPrimitives.Add(b.GradSpan(), dy, b.GradSpan());
        });
    }

    /// <summary>x + b with b (D) broadcast over the rows of x (…, D). Backward: db += Σ_rows dy.</summary>
    public static Var AddBias(Var x, Var b)
    {
        int d = x.Shape[^1];
        if (b.Value.Rank != 1 || b.Shape[0] != d) throw new ArgumentException($"AddBias: bias {b.Value.Describe()} does not match {x.Value.Describe()}");
        int rows = (int)(x.Value.Length / Math.Max(1, d));
        var y = x.NewLike();
        var xs = x.Data();
        var ys = y.AsSpan<float>();
        for (int r = 0; r < rows; r++) TensorPrimitives.Add(xs.Slice(r * d, d), b.Data(), ys.Slice(r * d, d));
        return Tape.Output(y, [x, b], o =>
        {
            var dy = o.OutGrad();
            if (x.RequiresGrad) TensorPrimitives.Add(x.GradSpan(), dy, x.GradSpan());
            if (b.RequiresGrad)
            {
                var db = b.GradSpan();
                for (int r = 0; r < rows; r++) TensorPrimitives.Add(db, dy.Slice(r * d, d), db);
            }
        });
    }

    /// <summary>a ⊙ b (same shape). Backward: da += dy ⊙ b, db += dy ⊙ a.</summary>
    public static Var Mul(Var a, Var b)
    {
        SameShape(a, b, "Mul");
        var y = a.NewLike();
        TensorPrimitives.Multiply(a.Data(), b.Data(), y.AsSpan<float>());
        return Tape.Output(y, [a, b], o =>
        {
            var dy = o.OutGrad();
            if (a.RequiresGrad) TensorPrimitives.FusedMultiplyAdd(dy, b.Data(), a.GradSpan(), a.GradSpan());
            if (b.RequiresGrad) TensorPrimitives.FusedMultiplyAdd(dy, a.Data(), b.GradSpan(), b.GradSpan());
        });
    }

    /// <summary>α·x. Backward: dx += α·dy.</summary>
    public static Var Scale(Var x, float alpha)
    {
        var y = x.NewLike();
        TensorPrimitives.Multiply(x.Data(), alpha, y.AsSpan<float>());
        return Tape.Output(y, [x], o =>
        {
            if (x.RequiresGrad) TensorPrimitives.MultiplyAdd(o.OutGrad(), alpha, x.GradSpan(), x.GradSpan());
        });
    }

    /// <summary>The same values in a new shape: a view when the layout allows (no copy), the gradient reshaped back.</summary>
    public static Var Reshape(Var x, params int[] shape)
    {
        var y = x.Value.Reshape(shape);
        return Tape.Output(y, [x], o =>
        {
            if (x.RequiresGrad) TensorPrimitives.Add(x.GradSpan(), o.OutGrad(), x.GradSpan());
        });
    }
}
