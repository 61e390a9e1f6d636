using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

public static partial class Ops
{
    /// <summary>
    /// Activation checkpointing (Chen et al., arXiv 1604.06174): y = f(x) computed with its activations
    /// freed at once, so none of them stay alive until the backward pass; the backward step
    /// runs f again under a tape of its own and backpropagates y's gradient through it into x and
    /// into every parameter f reads. Costs one more forward of f per training step. f must be
    /// deterministic (dropout from explicit seeds, as the models' is) and must not keep state
    /// between calls. With no tape recording, it is f(x).
    /// </summary>
    public static Var Checkpoint(Var x, Func<Var, Var> f)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(f);
        if (Tape.Current == null) return f(x);
        // The forward runs on a scratch tape, so it is the function the backward step recomputes
        // (dropout and every other training-only behaviour included); disposing the scratch tape
        // frees the segment's activations, the output's value copied out first.
        Tensor value;
        using (Tape.Record())
        {
            var inner = f(x);
            value = Tensor.Empty(Encore.Tensors.DType.F32, inner.Value.Shape.ToArray());
            inner.Value.AsReadOnlySpan<float>().CopyTo(value.AsSpan<float>());
        }
        var y = WrapOutput(value, requiresGrad: true);
        Record(y, o => RecomputeAndBackward(x, f, o));
        return y;
    }

    static void RecomputeAndBackward(Var x, Func<Var, Var> f, Var y)
    {
        using var tape = Tape.Record();
        // x's value is read, not owned: the segment's tape frees only what it made.
        var xi = new Var(x.Value, requiresGrad: x.RequiresGrad, parameter: null, ownsValue: false);
        var yi = f(xi);
        tape.BackwardFrom(yi, y.OutGrad());
        if (x.RequiresGrad && xi.Grad is { } g)
        {
            var dx = x.GradTarget(out bool accumulate);
            var src = g.AsReadOnlySpan<float>();
            if (accumulate) System.Numerics.Tensors.TensorPrimitives.Add(dx, src, dx);
            else src.CopyTo(dx);
        }
    }
}
