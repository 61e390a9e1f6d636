using System.Numerics.Tensors;

namespace Encore.Autograd;

public static partial class Ops
{
    /// <summary>
    /// The value read of a discrete key–value bottleneck (Träuble et al., arXiv 2207.11240): for each of N rows and
    /// each of C codebooks, the value of the key that row's lookup chose, slots[n·C + c] ∈ [0, K), from
    /// <paramref name="values"/> (C, K, Dv). Averaged over the codebooks → (N, Dv), or concatenated → (N, C·Dv).
    /// Backward: only the fetched values get a gradient (the sparse, local updates the paper credits for its
    /// robustness to forgetting), dV[c, slot] += dy (÷ C when averaged).
    /// </summary>
    public static Var KeyValueFetch(Var values, int[] slots, bool average)
    {
        if (values.Value.Rank != 3) throw new ArgumentException($"KeyValueFetch: values {values.Value.Describe()} must be (C, K, Dv)");
        ArgumentNullException.ThrowIfNull(slots);
        int c = values.Shape[0], k = values.Shape[1], dv = values.Shape[2];
        if (slots.Length % c != 0) throw new ArgumentException($"KeyValueFetch: {slots.Length} slots do not split over {c} codebooks");
        int n = slots.Length / c;
        for (int i = 0; i < slots.Length; i++)
            if ((uint)slots[i] >= (uint)k) throw new ArgumentOutOfRangeException(nameof(slots), $"KeyValueFetch: slot {slots[i]} at {i} is outside [0, {k})");
        ReadOnlySpan<int> shape = average ? [n, dv] : [n, c * dv];
        var y = NewOutput(shape, Grad(values));
        var vs = values.Data();
        var ys = y.Value.AsSpan<float>();
        float scale = 1f / c;
        for (int r = 0; r < n; r++)
            for (int j = 0; j < c; j++)
            {
                var v = vs.Slice((j * k + slots[r * c + j]) * dv, dv);
                if (!average) v.CopyTo(ys.Slice((r * c + j) * dv, dv));
                else if (j == 0) TensorPrimitives.Multiply(v, scale, ys.Slice(r * dv, dv));
                else TensorPrimitives.MultiplyAdd(v, scale, ys.Slice(r * dv, dv), ys.Slice(r * dv, dv));
            }
        if (y.RequiresGrad) RecordKeyValueFetch(y, values, [.. slots], n, c, k, dv, average);
        return y;
    }

    static void RecordKeyValueFetch(Var y, Var values, int[] slots, int n, int c, int k, int dv, bool average) => Record(y, o =>
    {
        var dy = o.OutGrad();
        var dv_ = values.GradSpan();
        float scale = average ? 1f / c : 1f;
        for (int r = 0; r < n; r++)
            for (int j = 0; j < c; j++)
            {
                var g = dv_.Slice((j * k + slots[r * c + j]) * dv, dv);
                var d = average ? dy.Slice(r * dv, dv) : dy.Slice((r * c + j) * dv, dv);
                TensorPrimitives.MultiplyAdd(d, scale, g, g);
            }
    });
}
