using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

/// <summary>Options of <see cref="Ops.CrossEntropy"/>; defaults are PyTorch's.</summary>
public readonly record struct CrossEntropyOptions
{
    /// <summary>Defaults.</summary>
    public CrossEntropyOptions() { }

    /// <summary>Targets equal to this are skipped (no loss, no gradient). Default −100.</summary>
    public int IgnoreIndex { get; init; } = -100;

    /// <summary>ε of label smoothing: the target distribution is (1−ε)·onehot + ε/V. Default 0.</summary>
    public float LabelSmoothing { get; init; }
}

public static partial class Ops
{
    /// <summary>
    /// Mean cross-entropy of <paramref name="logits"/> (N, V) — or (…, V), flattened — against
    /// integer <paramref name="targets"/> (N), over the targets that are not ignored, as
    /// <c>F.cross_entropy(reduction="mean")</c>. Returns a scalar (shape [1]); 0 when every target is
    /// ignored. Backward: dlogits = (softmax − target distribution)/count.
    /// </summary>
    public static Var CrossEntropy(Var logits, ReadOnlySpan<int> targets, CrossEntropyOptions? settings = null)
    {
        // Nullable, not `= default`: a default struct has IgnoreIndex 0, which an explicit { IgnoreIndex = 0 } must stay.
        var options = settings ?? new CrossEntropyOptions();
        int v = logits.Shape[^1];
        int n = (int)(logits.Value.Length / Math.Max(1, v));
        if (targets.Length != n) throw new ArgumentException($"CrossEntropy: {targets.Length} targets for {n} rows of logits {logits.Value.Describe()}");
        float eps = options.LabelSmoothing;
        if (eps is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(options), "label smoothing must be in [0, 1]");
        var t = targets.ToArray();
        int count = 0;
        for (int i = 0; i < n; i++)
        {
            if (t[i] == options.IgnoreIndex) continue;
            if ((uint)t[i] >= (uint)v) throw new ArgumentException($"CrossEntropy: target {t[i]} at row {i} is outside the vocabulary of {v}");
            count++;
        }
        var lse = new float[n];
        var nll = new float[n];
        Tensors.Kernels.CrossEntropy.Forward(logits.Data(), t, n, v, options.IgnoreIndex, eps, lse, nll);
        double total = 0;
        foreach (float l in nll) total += l;
        var y = NewOutput([1], Grad(logits));
        y.Value.AsSpan<float>()[0] = count == 0 ? 0f : (float)(total / count);
        if (y.RequiresGrad && count > 0) RecordCrossEntropy(y, logits, t, lse, n, v, eps, options.IgnoreIndex, count);
        return y;
    }

    static void RecordCrossEntropy(Var y, Var logits, int[] t, float[] lse, int n, int v, float eps, int ignoreIndex, int count) => Record(y, o =>
        {
            float g = o.OutGrad()[0] / count;
            var dx = logits.GradTarget(out bool accumulate);
            Tensors.Kernels.CrossEntropy.Backward(logits.Data(), t, lse, n, v, ignoreIndex, eps, g, dx, accumulate);
        });

    /// <summary>
    /// Distillation loss τ²·KL(p_T ‖ p_S) with p = softmax(logits/τ) (Hinton et al., arXiv 1503.02531),
    /// averaged over the rows whose mask entry is true (all rows when the mask is empty). The teacher
    /// gets no gradient. Backward: dstudent = τ·(p_S − p_T)/count.
    /// </summary>
    public static Var KlDivergence(Var student, Var teacher, float temperature, ReadOnlySpan<bool> rowMask = default)
    {
        SameShape(student, teacher, "KlDivergence");
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), "temperature must be positive");
        int v = student.Shape[^1];
        int n = (int)(student.Value.Length / Math.Max(1, v));
        if (!rowMask.IsEmpty && rowMask.Length != n) throw new ArgumentException($"KlDivergence: mask has {rowMask.Length} entries for {n} rows");
        var mask = rowMask.IsEmpty ? null : rowMask.ToArray();
        var s = student.Data();
        var te = teacher.Data();
        float inv = 1 / temperature;
        var ps = new float[n * v];
        var pt = new float[n * v];
        double total = 0;
        int count = 0;
        var buf = new float[v];
        for (int i = 0; i < n; i++)
        {
            if (mask != null && !mask[i]) continue;
            for (int j = 0; j < v; j++) buf[j] = s[i * v + j] * inv;
            float ls = LogSumExp(buf);
            for (int j = 0; j < v; j++) ps[i * v + j] = MathF.Exp(buf[j] - ls);
            var logS = (float[])buf.Clone();
            for (int j = 0; j < v; j++) buf[j] = te[i * v + j] * inv;
            float lt = LogSumExp(buf);
            double kl = 0;
            for (int j = 0; j < v; j++)
            {
                float logPt = buf[j] - lt;
                float p = MathF.Exp(logPt);
                pt[i * v + j] = p;
                if (p > 0) kl += p * (logPt - (logS[j] - ls));
            }
            total += kl;
            count++;
        }
        float tau2 = temperature * temperature;
        var y = NewOutput([1], Grad(student));
        y.Value.AsSpan<float>()[0] = count == 0 ? 0f : (float)(tau2 * total / count);
        if (y.RequiresGrad && count > 0) RecordKl(y, student, mask, ps, pt, n, v, temperature, count);
        return y;
    }

    static void RecordKl(Var y, Var student, bool[]? mask, float[] ps, float[] pt, int n, int v, float temperature, int count) => Record(y, o =>
        {
            float g = o.OutGrad()[0] * temperature / count;
            var dx = student.GradSpan();
            for (int i = 0; i < n; i++)
            {
                if (mask != null && !mask[i]) continue;
                for (int j = 0; j < v; j++) dx[i * v + j] += g * (ps[i * v + j] - pt[i * v + j]);
            }
        });

    static float LogSumExp(ReadOnlySpan<float> row)
    {
        float max = float.NegativeInfinity;
        foreach (float z in row) max = MathF.Max(max, z);
        if (float.IsNegativeInfinity(max)) return max;
        double sum = 0;
        foreach (float z in row) sum += Math.Exp(z - max);
        return max + (float)Math.Log(sum);
    }
}
