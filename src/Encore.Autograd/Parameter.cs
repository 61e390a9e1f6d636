using System.Numerics.Tensors;
using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

/// <summary>
/// A trainable binary32 tensor with its gradient. Gradients accumulate (+=) across backward passes
/// until <see cref="ZeroGrad"/>, which is how micro-batches are accumulated into one optimizer step.
/// </summary>
public sealed class Parameter : IDisposable
{
    /// <summary>Wraps <paramref name="value"/> (F32, contiguous); the parameter owns it from now on.</summary>
    public Parameter(string name, Tensor value, bool? decay = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!value.IsContiguous) throw new ArgumentException($"parameter '{name}' must be contiguous", nameof(value));
        Name = name;
        Value = value;
        // Norm gains and biases (rank ≤ 1) are not decayed by default, as in the usual AdamW
        // recipes (BERT, T5, Llama): decaying a gain towards 0 fights the normalization.
        Decay = decay ?? value.Rank >= 2;
        // Only binary32 values are trained; bf16/f16/q8_0 weights (memory-mapped checkpoints) serve inference.
        Trainable = value.DType == DType.F32 && !value.Storage.IsReadOnly;
    }

    /// <summary>The checkpoint name, e.g. <c>encoder.block.0.layer.0.SelfAttention.q.weight</c>.</summary>
    public string Name { get; }

    /// <summary>The values.</summary>
    public Tensor Value { get; }

    /// <summary>The accumulated gradient, or null before the first backward pass.</summary>
    public Tensor? Grad { get; private set; }

    /// <summary>Whether weight decay applies to this parameter.</summary>
    public bool Decay { get; set; }

    /// <summary>Whether gradients flow into it and the optimizer updates it. Default: true for writable F32 values.</summary>
    public bool Trainable
    {
        get => _trainable;
        set
        {
            if (value && (Value.DType != DType.F32 || Value.Storage.IsReadOnly))
                throw new InvalidOperationException($"parameter '{Name}' ({Value.Describe()}, {(Value.Storage.IsReadOnly ? "read-only" : "writable")}) cannot be trained; convert it to writable f32 first");
            _trainable = value;
            TrainingVar = null;
        }
    }

    bool _trainable;

    internal Var? InferenceVar;
    internal Var? TrainingVar;

    /// <summary>Number of values.</summary>
    public long Length => Value.Length;

    /// <summary>The gradient buffer, allocated (zeroed) on first use.</summary>
    public Tensor GradBuffer() => Grad ??= Tensor.Zeros(DType.F32, Value.Shape.ToArray());

    /// <summary>Adds <paramref name="g"/> into the gradient.</summary>
    public void AccumulateGrad(ReadOnlySpan<float> g)
    {
        var dst = GradBuffer().AsSpan<float>();
        if (g.Length != dst.Length) throw new ArgumentException($"gradient of '{Name}' has {g.Length} values for {dst.Length}", nameof(g));
        TensorPrimitives.Add(dst, g, dst);
    }

    /// <summary>Resets the gradient to zero (keeping its buffer).</summary>
    public void ZeroGrad()
    {
        if (Grad != null) Grad.AsSpan<float>().Clear();
    }

    /// <summary>Frees the values and the gradient.</summary>
    public void Dispose()
    {
        Value.Dispose();
        Grad?.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name}: {Value.Describe()}";
}
