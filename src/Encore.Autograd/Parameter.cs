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
        if (value.DType != DType.F32) throw new ArgumentException($"parameter '{name}' must be f32 to train, got {value.Describe()}", nameof(value));
        if (!value.IsContiguous) throw new ArgumentException($"parameter '{name}' must be contiguous", nameof(value));
        Name = name;
        Value = value;
        // Norm gains and biases (rank ≤ 1) are not decayed by default, as in the usual AdamW
        // recipes (BERT, T5, Llama): decaying a gain towards 0 fights the normalization.
        Decay = decay ?? value.Rank >= 2;
    }

    /// <summary>The checkpoint name, e.g. <c>encoder.block.0.layer.0.SelfAttention.q.weight</c>.</summary>
    public string Name { get; }

    /// <summary>The values.</summary>
    public Tensor Value { get; }

    /// <summary>The accumulated gradient, or null before the first backward pass.</summary>
    public Tensor? Grad { get; private set; }

    /// <summary>Whether weight decay applies to this parameter.</summary>
    public bool Decay { get; set; }

    /// <summary>Whether the optimizer updates it (frozen parameters still receive no gradient).</summary>
    public bool Trainable { get; set; } = true;

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
