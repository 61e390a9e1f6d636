using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

/// <summary>
/// A value in a computation: a tensor, and — when a <see cref="Tape"/> records and the value
/// depends on a trainable <see cref="Parameter"/> — a gradient filled in by <see cref="Tape.Backward"/>.
/// Vars made while a tape is active belong to it and are disposed with it; vars made outside a tape
/// belong to the caller. A var of a parameter shares the parameter's tensors.
/// </summary>
public sealed class Var : IDisposable
{
    readonly bool _ownsValue;
    readonly bool _pooled;
    Tensor? _grad;

    internal Var(Tensor value, bool requiresGrad, Parameter? parameter, bool ownsValue, bool pooled = false)
    {
        _pooled = pooled;
        Value = value;
        RequiresGrad = requiresGrad;
        Parameter = parameter;
        _ownsValue = ownsValue;
    }

    /// <summary>The value.</summary>
    public Tensor Value { get; }

    /// <summary>True when a gradient flows back into this value (it depends on a trainable parameter).</summary>
    public bool RequiresGrad { get; }

    /// <summary>The parameter this var reads, for leaves.</summary>
    public Parameter? Parameter { get; }

    /// <summary>Shape of the value.</summary>
    public ReadOnlySpan<int> Shape => Value.Shape;

    /// <summary>The gradient accumulated by backward, or null when none reached this var.</summary>
    public Tensor? Grad => Parameter != null ? Parameter.Grad : _grad;

    /// <summary>A constant (no gradient). Inside a tape the tape owns it; outside, the caller does.</summary>
    public static Var Constant(Tensor value, bool owned = true)
    {
        var v = new Var(value, requiresGrad: false, parameter: null, ownsValue: owned);
        Tape.Current?.Own(v);
        return v;
    }

    /// <summary>The var of a parameter (a leaf); it requires a gradient when the parameter is trainable and a tape records.</summary>
    public static Var Of(Parameter p)
    {
        // One var per parameter and mode, made once: reading a weight allocates nothing.
        if (Tape.Current == null) return p.InferenceVar ??= new Var(p.Value, requiresGrad: false, parameter: p, ownsValue: false);
        return p.TrainingVar ??= new Var(p.Value, requiresGrad: p.Trainable, parameter: p, ownsValue: false);
    }

    /// <summary>The gradient buffer, allocated zero-filled on first use (a parameter's own buffer for leaves).</summary>
    internal Tensor GradBuffer()
    {
        if (Parameter != null) return Parameter.GradBuffer();
        return _grad ??= Tensor.Zeros(DType.F32, Value.Shape.ToArray());
    }

    /// <summary>True when a gradient must be added to what is there: a parameter's, or one backward already put here.</summary>
    internal bool GradStarted => Parameter != null || _grad != null;

    /// <summary>A new gradient buffer for a var that has none yet; zero-filled only when <paramref name="zero"/>.</summary>
    internal Tensor StartGrad(bool zero)
    {
        if (GradStarted) throw new InvalidOperationException("the gradient was started already");
        return _grad = zero ? Tensor.Zeros(DType.F32, Value.Shape.ToArray()) : Tensor.Empty(DType.F32, Value.Shape.ToArray());
    }

    /// <summary>
    /// Makes <paramref name="grad"/> (a contiguous tensor of this var's element count whose owner
    /// will not write it again) this var's gradient, viewed in this var's shape, without copying.
    /// </summary>
    internal void AdoptGrad(Tensor grad)
    {
        if (GradStarted) throw new InvalidOperationException("the gradient was started already");
        _grad = grad.Reshape(Value.Shape.ToArray());
    }

    /// <summary>
    /// Frees what backward no longer needs once this var's own backward step has run: its gradient
    /// always, its value too when <paramref name="value"/> (a var's value is read only by the
    /// backward steps of the ops that consumed it, which run before its own).
    /// </summary>
    internal void Release(bool value)
    {
        _grad?.Dispose();
        _grad = null;
        if (value && _ownsValue) Value.Dispose();
    }

    /// <summary>Frees the value (when owned) and the gradient; a workspace's var stays until its workspace is disposed.</summary>
    public void Dispose()
    {
        if (_pooled) return;
        if (_ownsValue) Value.Dispose();
        _grad?.Dispose();
        _grad = null;
    }

    internal void DisposePooled()
    {
        Value.Dispose();
        _grad?.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"Var {Value.Describe()}{(RequiresGrad ? " (grad)" : "")}";
}
