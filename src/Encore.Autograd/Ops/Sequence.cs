using System.Numerics.Tensors;

namespace Encore.Autograd;

public static partial class Ops
{
    /// <summary>
    /// Means of consecutive groups of positions: x (B, T, D) → (B, G, D), group g of each row averaging
    /// the <paramref name="groups"/>[g] positions after the previous groups' (the sizes sum to T). ARC-Encoder's
    /// pooled last block (arXiv 2510.20535, <c>mean_pooled_queries</c>) reads its queries this way. A group of
    /// one copies its position exactly. Backward: dx[t] += dy[g]/|g| for each t in group g.
    /// </summary>
    public static Var GroupMean(Var x, ReadOnlySpan<int> groups)
    {
        if (x.Value.Rank != 3) throw new ArgumentException($"GroupMean: {x.Value.Describe()} must be (B, T, D)");
        int b = x.Shape[0], t = x.Shape[1], d = x.Shape[2], g = groups.Length;
        int total = 0;
        foreach (int size in groups)
        {
            if (size < 1) throw new ArgumentException($"GroupMean: group sizes must be ≥ 1, got {size}");
            total += size;
        }
        if (total != t) throw new ArgumentException($"GroupMean: group sizes sum to {total}, not to the {t} positions of {x.Value.Describe()}");
        var sizes = groups.ToArray();
        var y = NewOutput([b, g, d], Grad(x));
        var xs = x.Data();
        var ys = y.Value.AsSpan<float>();
        for (int i = 0; i < b; i++)
        {
            int start = 0;
            for (int k = 0; k < g; k++)
            {
                var row = ys.Slice((i * g + k) * d, d);
                xs.Slice((i * t + start) * d, d).CopyTo(row);
                for (int p = 1; p < sizes[k]; p++) TensorPrimitives.Add(row, xs.Slice((i * t + start + p) * d, d), row);
                if (sizes[k] > 1) TensorPrimitives.Multiply(row, 1f / sizes[k], row);
                start += sizes[k];
            }
        }
        if (y.RequiresGrad) RecordGroupMean(y, x, sizes, b, t, d);
        return y;
    }

    static void RecordGroupMean(Var y, Var x, int[] sizes, int b, int t, int d) => Record(y, o =>
    {
        var dy = o.OutGrad();
        var dx = x.GradSpan();
        int g = sizes.Length;
        for (int i = 0; i < b; i++)
        {
            int start = 0;
            for (int k = 0; k < g; k++)
            {
                var dyk = dy.Slice((i * g + k) * d, d);
                float w = 1f / sizes[k];
                for (int p = 0; p < sizes[k]; p++)
                {
                    var dxp = dx.Slice((i * t + start + p) * d, d);
                    TensorPrimitives.MultiplyAdd(dyk, w, dxp, dxp);
                }
                start += sizes[k];
            }
        }
    });

    /// <summary>
    /// Joins sequences along positions: parts (B, T_i, D) → (B, ΣT_i, D), each row the parts' rows in order
    /// (a decoder input made of compressed context vectors, a special embedding and token embeddings).
    /// Backward: each part gets its slice of dy.
    /// </summary>
    public static Var ConcatPositions(params Var[] parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Length == 0) throw new ArgumentException("ConcatPositions: no parts");
        int b = parts[0].Shape[0], d = parts[0].Shape[^1], t = 0;
        bool grad = false;
        foreach (var p in parts)
        {
            if (p.Value.Rank != 3 || p.Shape[0] != b || p.Shape[2] != d)
                throw new ArgumentException($"ConcatPositions: {p.Value.Describe()} does not match ({b}, ·, {d})");
            t += p.Shape[1];
            grad |= Grad(p);
        }
        var y = NewOutput([b, t, d], grad);
        var ys = y.Value.AsSpan<float>();
        int offset = 0;
        foreach (var p in parts)
        {
            int tp = p.Shape[1];
            var ps = p.Data();
            for (int i = 0; i < b; i++) ps.Slice(i * tp * d, tp * d).CopyTo(ys.Slice((i * t + offset) * d, tp * d));
            offset += tp;
        }
        if (y.RequiresGrad) RecordConcatPositions(y, parts.ToArray(), b, t, d);
        return y;
    }

    static void RecordConcatPositions(Var y, Var[] parts, int b, int t, int d) => Record(y, o =>
    {
        var dy = o.OutGrad();
        int offset = 0;
        foreach (var p in parts)
        {
            int tp = p.Shape[1];
            if (p.RequiresGrad)
            {
                var dp = p.GradSpan();
                for (int i = 0; i < b; i++)
                {
                    var target = dp.Slice(i * tp * d, tp * d);
                    TensorPrimitives.Add(target, dy.Slice((i * t + offset) * d, tp * d), target);
                }
            }
            offset += tp;
        }
    });
}
