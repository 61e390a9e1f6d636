using Encore.Tensors.Kernels;

namespace Encore.Autograd.Optim;

/// <summary>Hyper-parameters of <see cref="AdamW"/>; defaults are PyTorch's <c>torch.optim.AdamW</c>.</summary>
public sealed record AdamWOptions
{
    /// <summary>β₁, the first-moment decay. Default 0.9.</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>β₂, the second-moment decay. Default 0.999.</summary>
    public double Beta2 { get; init; } = 0.999;
    /// <summary>ε added to the denominator. Default 1e-8.</summary>
    public double Eps { get; init; } = 1e-8;
    /// <summary>Decoupled weight decay λ (applied as w ← w·(1 − lr·λ)). Default 0.01.</summary>
    public double WeightDecay { get; init; } = 0.01;
}

/// <summary>
/// Adam with decoupled weight decay (Loshchilov &amp; Hutter, arXiv 1711.05101), with bias
/// correction. Follows <c>torch.optim.AdamW</c> (1.13, single-tensor path) operation by operation in
/// binary32, so trajectories match PyTorch to rounding.
/// </summary>
public sealed class AdamW(IEnumerable<Parameter> parameters, AdamWOptions? options = null) : Optimizer(parameters)
{
    /// <summary>The hyper-parameters.</summary>
    public AdamWOptions Options { get; } = options ?? new AdamWOptions();

    /// <inheritdoc />
    protected override void Update(Parameter p, Span<float> w, ReadOnlySpan<float> g)
    {
        var m = State(p, "exp_avg");
        var v = State(p, "exp_avg_sq");
        double lr = LearningRate;
        float decay = (float)(1 - lr * (p.Decay ? Options.WeightDecay : 0));
        float b1 = (float)Options.Beta1, b2 = (float)Options.Beta2;
        float oneMinusB1 = (float)(1 - Options.Beta1), oneMinusB2 = (float)(1 - Options.Beta2);
        double bc1 = 1 - Math.Pow(Options.Beta1, StepOf(p));
        double bc2 = 1 - Math.Pow(Options.Beta2, StepOf(p));
        float stepSize = (float)(lr / bc1);
        float bc2Sqrt = (float)Math.Sqrt(bc2);
        float eps = (float)Options.Eps;
        OptimizerSteps.AdamW(w, g, m, v, new AdamWConstants(decay, b1, b2, oneMinusB1, oneMinusB2, stepSize, bc2Sqrt, eps));
    }
}
