using Encore.Tensors;
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
    /// <summary>
    /// Storage of the two moments: <see cref="DType.F32"/> (default; PyTorch's trajectory to rounding) or
    /// <see cref="DType.BF16"/> (half the optimizer memory; updated in binary32 and stored by stochastic
    /// rounding, see <see cref="OptimizerSteps.AdamWBf16"/>).
    /// </summary>
    public DType Moments { get; init; } = DType.F32;
}

/// <summary>
/// Adam with decoupled weight decay (Loshchilov &amp; Hutter, arXiv 1711.05101), with bias
/// correction. Follows <c>torch.optim.AdamW</c> (1.13, single-tensor path) operation by operation in
/// binary32, so trajectories match PyTorch to rounding.
/// </summary>
public sealed class AdamW(IEnumerable<Parameter> parameters, AdamWOptions? options = null) : Optimizer(parameters)
{
    /// <summary>The hyper-parameters.</summary>
    public AdamWOptions Options { get; } = Checked(options ?? new AdamWOptions());

    Dictionary<Parameter, int>? _index;

    static AdamWOptions Checked(AdamWOptions o) => o.Moments is DType.F32 or DType.BF16 ? o
        : throw new ArgumentException($"AdamW keeps its moments in f32 or bf16, not {o.Moments.Name()}", nameof(options));

    /// <inheritdoc />
    protected override void Update(Parameter p, Span<float> w, ReadOnlySpan<float> g)
    {
        double lr = LearningRate;
        float decay = (float)(1 - lr * (p.Decay ? Options.WeightDecay : 0));
        float b1 = (float)Options.Beta1, b2 = (float)Options.Beta2;
        float oneMinusB1 = (float)(1 - Options.Beta1), oneMinusB2 = (float)(1 - Options.Beta2);
        double bc1 = 1 - Math.Pow(Options.Beta1, StepOf(p));
        double bc2 = 1 - Math.Pow(Options.Beta2, StepOf(p));
        float stepSize = (float)(lr / bc1);
        float bc2Sqrt = (float)Math.Sqrt(bc2);
        float eps = (float)Options.Eps;
        var k = new AdamWConstants(decay, b1, b2, oneMinusB1, oneMinusB2, stepSize, bc2Sqrt, eps);
        if (Options.Moments == DType.BF16)
            OptimizerSteps.AdamWBf16(w, g, StateBFloat16(p, "exp_avg"), StateBFloat16(p, "exp_avg_sq"), k, RoundingSeed(p));
        else
            OptimizerSteps.AdamW(w, g, State(p, "exp_avg"), State(p, "exp_avg_sq"), k);
    }

    // The stochastic rounding's seed of this parameter's update: its position among the parameters and
    // its step, so runs, resumed runs and thread counts agree.
    ulong RoundingSeed(Parameter p)
    {
        if (_index == null)
        {
            _index = new Dictionary<Parameter, int>(ReferenceEqualityComparer.Instance);
            for (int i = 0; i < Parameters.Count; i++) _index[Parameters[i]] = i;
        }
        return ((ulong)(uint)_index[p] << 40) ^ (ulong)StepOf(p);
    }
}
