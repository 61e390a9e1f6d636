namespace Encore.Autograd.Optim;

/// <summary>Hyper-parameters of <see cref="Sgd"/>; defaults are <c>torch.optim.SGD</c>'s with momentum 0.9.</summary>
public sealed record SgdOptions
{
    /// <summary>Momentum μ. Default 0.9 (0 disables the buffer).</summary>
    public double Momentum { get; init; } = 0.9;
    /// <summary>Dampening of the gradient added to the buffer. Default 0.</summary>
    public double Dampening { get; init; }
    /// <summary>L2 penalty added to the gradient (coupled, as in PyTorch SGD). Default 0.</summary>
    public double WeightDecay { get; init; }
    /// <summary>Nesterov momentum. Default false.</summary>
    public bool Nesterov { get; init; }
}

/// <summary>
/// Stochastic gradient descent with momentum, as <c>torch.optim.SGD</c>: g ← g + λw;
/// b ← μb + (1 − dampening)g (b = g on the first step); w ← w − lr·(g + μb if Nesterov else b).
/// </summary>
public sealed class Sgd(IEnumerable<Parameter> parameters, SgdOptions? options = null) : Optimizer(parameters)
{
    /// <summary>The hyper-parameters.</summary>
    public SgdOptions Options { get; } = options ?? new SgdOptions();

    /// <inheritdoc />
    protected override void Update(Parameter p, Span<float> w, ReadOnlySpan<float> g)
    {
        float lr = (float)LearningRate;
        float wd = (float)(p.Decay ? Options.WeightDecay : 0);
        float mu = (float)Options.Momentum;
        float damp = (float)(1 - Options.Dampening);
        if (Options.Momentum == 0)
        {
            for (int i = 0; i < w.Length; i++) w[i] -= lr * (g[i] + wd * w[i]);
            return;
        }
        bool first = !HasState(p, "momentum_buffer");
        var b = State(p, "momentum_buffer");
        for (int i = 0; i < w.Length; i++)
        {
            float gi = g[i] + wd * w[i];
            float bi = first ? gi : b[i] * mu + gi * damp;
            b[i] = bi;
            w[i] -= lr * (Options.Nesterov ? gi + mu * bi : bi);
        }
    }
}
