namespace Encore.Autograd.Optim;

/// <summary>
/// Hyper-parameters of <see cref="Adafactor"/>. Defaults follow the T5 fine-tuning recipe as the
/// Hugging Face <c>Adafactor</c> documents it (external learning rate, no parameter scaling,
/// no relative step); set <see cref="RelativeStep"/> and <see cref="ScaleParameter"/> for the paper's
/// pre-training setting.
/// </summary>
public sealed record AdafactorOptions
{
    /// <summary>ε₁, added to squared gradients. Default 1e-30.</summary>
    public double Eps1 { get; init; } = 1e-30;
    /// <summary>ε₂, the floor of the parameter RMS when scaling the step. Default 1e-3.</summary>
    public double Eps2 { get; init; } = 1e-3;
    /// <summary>d, the update-RMS clipping threshold. Default 1.0.</summary>
    public double ClipThreshold { get; init; } = 1.0;
    /// <summary>The exponent c of β₂ₜ = 1 − t^c. Default −0.8.</summary>
    public double DecayRate { get; init; } = -0.8;
    /// <summary>β₁ for an optional first moment; null keeps no first moment (the memory-saving default).</summary>
    public double? Beta1 { get; init; }
    /// <summary>Decoupled weight decay, scaled by the step size. Default 0.</summary>
    public double WeightDecay { get; init; }
    /// <summary>Multiply the step by max(ε₂, RMS(w)). Default false.</summary>
    public bool ScaleParameter { get; init; }
    /// <summary>Use the relative step min(1e-2, 1/√t) instead of the external learning rate. Default false.</summary>
    public bool RelativeStep { get; init; }
}

/// <summary>
/// Adafactor (Shazeer &amp; Stern, arXiv 1804.04235), the T5 optimizer: for a matrix the second
/// moment is kept as row and column means of g² (factored, O(n+m) memory), and their outer product
/// divided by the row-mean's mean approximates it; updates are clipped by their RMS. Follows the
/// Hugging Face <c>transformers.optimization.Adafactor</c> algorithm step by step. Tensors of rank
/// ≥ 2 are factored over their last two dimensions.
/// </summary>
public sealed class Adafactor(IEnumerable<Parameter> parameters, AdafactorOptions? options = null) : Optimizer(parameters)
{
    /// <summary>The hyper-parameters.</summary>
    public AdafactorOptions Options { get; } = options ?? new AdafactorOptions();

    /// <inheritdoc />
    protected override void Update(Parameter p, Span<float> w, ReadOnlySpan<float> g)
    {
        var shape = p.Value.Shape;
        bool factored = shape.Length >= 2;
        double rel = Options.RelativeStep ? Math.Min(1e-2, 1 / Math.Sqrt(StepOf(p))) : LearningRate;
        double lr = rel;
        if (Options.ScaleParameter) lr *= Math.Max(Options.Eps2, Rms(w));
        float beta2t = (float)(1 - Math.Pow(StepOf(p), Options.DecayRate));
        float oneMinus = 1 - beta2t;
        float eps1 = (float)Options.Eps1;
        var update = new float[w.Length];

        if (factored)
        {
            int cols = shape[^1], rows = shape[^2];
            int mats = (int)(w.Length / ((long)rows * cols));
            var rowState = State(p, "exp_avg_sq_row", [.. shape[..^1]]);   // (…, rows)
            var colState = State(p, "exp_avg_sq_col", [.. shape[..^2], cols]); // (…, cols)
            for (int b = 0; b < mats; b++)
            {
                int off = b * rows * cols;
                var r = rowState.Slice(b * rows, rows);
                var c = colState.Slice(b * cols, cols);
                // Means of g² + ε₁ along each axis, then the exponential moving averages.
                for (int i = 0; i < rows; i++)
                {
                    double s = 0;
                    for (int j = 0; j < cols; j++) { float u = g[off + i * cols + j]; s += u * u + eps1; }
                    r[i] = r[i] * beta2t + (float)(s / cols) * oneMinus;
                }
                for (int j = 0; j < cols; j++)
                {
                    double s = 0;
                    for (int i = 0; i < rows; i++) { float u = g[off + i * cols + j]; s += u * u + eps1; }
                    c[j] = c[j] * beta2t + (float)(s / rows) * oneMinus;
                }
                // V̂ = (R/mean(R)) ⊗ C, update = g / √V̂.
                double rmean = 0;
                for (int i = 0; i < rows; i++) rmean += r[i];
                rmean /= rows;
                for (int i = 0; i < rows; i++)
                {
                    float rf = 1 / MathF.Sqrt((float)(r[i] / rmean));
                    for (int j = 0; j < cols; j++)
                        update[off + i * cols + j] = rf * (1 / MathF.Sqrt(c[j])) * g[off + i * cols + j];
                }
            }
        }
        else
        {
            var v = State(p, "exp_avg_sq");
            for (int i = 0; i < w.Length; i++)
            {
                v[i] = v[i] * beta2t + (g[i] * g[i] + eps1) * oneMinus;
                update[i] = g[i] / MathF.Sqrt(v[i]);
            }
        }

        // Clip the update by its RMS, then scale by the step size.
        double clip = Math.Max(1.0, Rms(update) / Options.ClipThreshold);
        float scale = (float)(lr / clip);
        for (int i = 0; i < update.Length; i++) update[i] *= scale;

        if (Options.Beta1 is double beta1)
        {
            var m = State(p, "exp_avg");
            for (int i = 0; i < update.Length; i++)
            {
                m[i] = m[i] * (float)beta1 + update[i] * (float)(1 - beta1);
                update[i] = m[i];
            }
        }
        float decay = (float)(p.Decay ? Options.WeightDecay * lr : 0);
        for (int i = 0; i < w.Length; i++) w[i] = w[i] - decay * w[i] - update[i];
    }

    static double Rms(ReadOnlySpan<float> x)
    {
        double s = 0;
        foreach (float v in x) s += (double)v * v;
        return x.Length == 0 ? 0 : Math.Sqrt(s / x.Length);
    }
}
