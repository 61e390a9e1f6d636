using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

public static partial class Ops
{
    /// <summary>
    /// Inverted dropout: each element is zeroed with probability <paramref name="p"/> and the rest
    /// scaled by 1/(1 − p), so inference needs no rescaling. The mask comes from a counter-based
    /// generator (SplitMix64 of seed and element index), so it depends only on the seed — not on
    /// threads or on what ran before — and a resumed run reproduces it. Callers derive the seed
    /// from (run seed, step, site). With p = 0 or no tape recording it returns x unchanged (a copy-free pass).
    /// Backward: dx += dy ⊙ mask/(1 − p).
    /// </summary>
    public static Var Dropout(Var x, float p, ulong seed)
    {
        if (p is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(p), $"dropout probability {p} is outside [0, 1)");
        if (p == 0 || Tape.Current == null) return x;
        var xs = x.Data();
        var y = NewOutput(x, Grad(x));
        var ys = y.Value.AsSpan<float>();
        var keep = new bool[xs.Length];
        float scale = 1 / (1 - p);
        // Compare 24-bit uniforms with the threshold as an integer: exact, and no float rounding at p.
        uint threshold = (uint)Math.Round(p * (1 << 24));
        for (int i = 0; i < xs.Length; i++)
        {
            keep[i] = (uint)(SplitMix64(seed + (ulong)i * 0x9E3779B97F4A7C15UL) >> 40) >= threshold;
            ys[i] = keep[i] ? xs[i] * scale : 0f;
        }
        if (y.RequiresGrad) RecordDropout(y, x, keep, scale);
        return y;
    }

    static void RecordDropout(Var y, Var x, bool[] keep, float scale) => Record(y, o =>
        {
            var dy = o.OutGrad();
            var dx = x.GradSpan();
            for (int i = 0; i < dx.Length; i++)
                if (keep[i]) dx[i] += dy[i] * scale;
        });

    /// <summary>SplitMix64's output function (Steele et al., 2014): a well-mixed 64-bit hash of its input.</summary>
    internal static ulong SplitMix64(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
