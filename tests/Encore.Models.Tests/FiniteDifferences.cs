using Encore.Autograd;

namespace Encore.Models.Tests;

/// <summary>Central finite differences of a scalar loss with respect to single parameter entries.</summary>
internal static class FiniteDifferences
{
    /// <summary>The loss's value (its first element) with the tape recording, as in training.</summary>
    public static double Evaluate(Func<Var> loss)
    {
        using var tape = Tape.Record();
        return loss().Value.AsReadOnlySpan<float>()[0];
    }

    /// <summary>(L(w_i + h) − L(w_i − h)) / 2h for entry <paramref name="i"/> of <paramref name="p"/>, which is restored after.</summary>
    public static double Central(Parameter p, int i, double h, Func<Var> loss)
    {
        var w = p.Value.AsSpan<float>();
        float keep = w[i];
        w[i] = keep + (float)h;
        double up = Evaluate(loss);
        p.Value.AsSpan<float>()[i] = keep - (float)h;
        double down = Evaluate(loss);
        p.Value.AsSpan<float>()[i] = keep;
        return (up - down) / (2 * h);
    }

    /// <summary>
    /// Each listed entry's backward gradient (already in <c>Grad</c>) against <see cref="Central"/> with step
    /// <paramref name="h"/>, within <paramref name="tolerance"/>·(1 + |finite difference|).
    /// </summary>
    public static void AssertGradients(ParameterSet parameters, IEnumerable<(string Name, int[] Indices)> checks, Func<Var> loss, double h = 1e-2, double tolerance = 3e-3)
    {
        foreach (var (name, indices) in checks)
        {
            var p = parameters[name];
            var analytic = p.Grad!.ToFloatArray();
            foreach (int i in indices)
            {
                double numeric = Central(p, i, h, loss);
                Assert.True(Math.Abs(analytic[i] - numeric) <= tolerance * (1 + Math.Abs(numeric)), $"d/d {name}[{i}]: analytic {analytic[i]}, finite difference {numeric}");
            }
        }
    }
}
