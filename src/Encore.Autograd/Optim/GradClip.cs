using Encore.Tensors.Kernels;

namespace Encore.Autograd.Optim;

/// <summary>Gradient clipping by global norm, as <c>torch.nn.utils.clip_grad_norm_</c>.</summary>
public static class GradClip
{
    /// <summary>
    /// Scales all gradients by min(1, maxNorm/(‖g‖₂ + 1e-6)), where ‖g‖₂ is over every parameter's
    /// gradient together. Returns the norm before clipping (reported in training logs). The norm is
    /// summed in double, in parameter order, each parameter by <see cref="OptimizerSteps.SquaredNorm"/>'s
    /// fixed blocks, so it does not depend on the thread count.
    /// </summary>
    public static double ClipGlobalNorm(IEnumerable<Parameter> parameters, double maxNorm)
    {
        if (!(maxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), "the clipping norm must be positive");
        var ps = parameters.Where(p => p.Grad != null).ToArray();
        double sq = 0;
        foreach (var p in ps) sq += OptimizerSteps.SquaredNorm(p.Grad!.AsReadOnlySpan<float>());
        double norm = Math.Sqrt(sq);
        double coef = maxNorm / (norm + 1e-6);
        if (coef < 1)
        {
            float c = (float)coef;
            foreach (var p in ps)
            {
                var g = p.Grad!.AsSpan<float>();
                Elementwise.Scale(g, c, g);
            }
        }
        return norm;
    }
}
