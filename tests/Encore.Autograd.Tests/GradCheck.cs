using Encore.Tensors;

namespace Encore.Autograd.Tests;

/// <summary>
/// Finite-difference gradient checks: the analytic gradient from <see cref="Tape.Backward"/>
/// against central differences (f(w+h) − f(w−h))/2h, with the loss summed in double. In binary32 a
/// step h = 1e-2 keeps the truncation error O(h²) and the rounding error O(ε·|f|/h) both near 1e-4,
/// so the tolerance is |analytic − numeric| ≤ 2e-3·(1 + |numeric|) unless a test states another.
/// </summary>
public static class GradCheck
{
    /// <summary>Checks d loss / d p for every element of every parameter.</summary>
    public static void Check(Parameter[] parameters, Func<Var[], Var> loss, double h = 1e-2, double tol = 2e-3)
    {
        foreach (var p in parameters) p.ZeroGrad();
        using (var tape = Tape.Record())
        {
            var vars = parameters.Select(Var.Of).ToArray();
            var l = loss(vars);
            tape.Backward(l);
        }
        foreach (var p in parameters.Where(p => p.Trainable))
        {
            var analytic = p.Grad?.ToFloatArray() ?? new float[p.Length];
            var w = p.Value.AsSpan<float>();
            for (int i = 0; i < w.Length; i++)
            {
                float keep = w[i];
                w[i] = keep + (float)h;
                double up = Evaluate(parameters, loss);
                w = p.Value.AsSpan<float>();
                w[i] = keep - (float)h;
                double down = Evaluate(parameters, loss);
                w = p.Value.AsSpan<float>();
                w[i] = keep;
                double numeric = (up - down) / (2 * h);
                Assert.True(Math.Abs(analytic[i] - numeric) <= tol * (1 + Math.Abs(numeric)),
                    $"d/d {p.Name}[{i}]: analytic {analytic[i]}, finite difference {numeric}");
            }
        }
    }

    static double Evaluate(Parameter[] parameters, Func<Var[], Var> loss)
    {
        var vars = parameters.Select(Var.Of).ToArray();
        using var l = loss(vars);
        double s = 0;
        foreach (float x in l.Value.ToFloatArray()) s += x;
        foreach (var v in vars) v.Dispose();
        return s;
    }

    /// <summary>A parameter of random normal-ish values.</summary>
    public static Parameter Random(string name, Random rng, params int[] shape)
    {
        long n = 1;
        foreach (int d in shape) n *= d;
        var data = new float[n];
        for (int i = 0; i < n; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        return new Parameter(name, Tensor.FromArray(data, shape));
    }
}
