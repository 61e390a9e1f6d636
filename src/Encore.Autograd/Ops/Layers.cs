using System.Numerics.Tensors;
using Encore.Tensors.Kernels;

namespace Encore.Autograd;

public static partial class Ops
{
    /// <summary>Embedding of ids (B·L) → (B, L, D); see <see cref="Embedding(Var, int[], int[])"/>.</summary>
    public static Var Embedding(Var table, int[] ids, int batch, int length)
    {
        ReadOnlySpan<int> shape = [batch, length];
        return EmbeddingCore(table, ids, shape);
    }

    /// <summary>
    /// Rows of <paramref name="table"/> (V, D) — any weight dtype; gradient only for F32 — for
    /// <paramref name="ids"/>, shaped <paramref name="idShape"/> + (D). Backward: scatter-add into the table.
    /// </summary>
    public static Var Embedding(Var table, int[] ids, params int[] idShape) =>
        EmbeddingCore(table, ids, idShape.Length == 0 ? [ids.Length] : idShape);

    static Var EmbeddingCore(Var table, int[] ids, ReadOnlySpan<int> idShape)
    {
        if (table.Value.Rank != 2) throw new ArgumentException($"Embedding: table {table.Value.Describe()} must be (V, D)");
        int v = table.Shape[0], d = table.Shape[1];
        long n = 1;
        foreach (int s in idShape) n *= s;
        if (n != ids.Length) throw new ArgumentException($"Embedding: {ids.Length} ids do not fill shape [{string.Join(", ", idShape.ToArray())}]");
        Span<int> shape = stackalloc int[idShape.Length + 1];
        idShape.CopyTo(shape);
        shape[^1] = d;
        var y = NewOutput(shape, Grad(table));
        Tensors.Kernels.Embedding.Gather(WeightMatrix.From(table.Value), ids, y.Value.AsSpan<float>());
        if (y.RequiresGrad) RecordEmbedding(y, table, ids, v, d);
        return y;
    }

    static void RecordEmbedding(Var y, Var table, int[] ids, int v, int d) => Record(y, o =>
        Tensors.Kernels.Embedding.Backward(ids, o.OutGrad(), table.GradSpan(), v, d));

    /// <summary>
    /// A weighted mixture of embeddings per position: y[p] = Σ_j weights[p·M + j] · table[ids[p·M + j]] for the
    /// B·L positions, each of <paramref name="mix"/> = M ids → (B, L, D). Superposed Decoding (Shen et al. 2024,
    /// arXiv 2405.18400) feeds the decoder such a superposition of its drafts' last tokens; M = 1 with weight 1
    /// is <see cref="Embedding(Var, int[], int, int)"/> bit for bit (1·x is exact). Backward: dTable[ids[p·M + j]] += w·dy[p].
    /// </summary>
    public static Var EmbeddingMix(Var table, int[] ids, float[] weights, int batch, int length, int mix)
    {
        if (table.Value.Rank != 2) throw new ArgumentException($"EmbeddingMix: table {table.Value.Describe()} must be (V, D)");
        if (batch < 0 || length < 0 || mix < 1) throw new ArgumentException($"EmbeddingMix: batch {batch}, length {length} and mix {mix} must be ≥ 0, ≥ 0 and ≥ 1");
        int v = table.Shape[0], d = table.Shape[1], n = batch * length * mix;
        if (ids.Length != n || weights.Length != n)
            throw new ArgumentException($"EmbeddingMix: {ids.Length} ids and {weights.Length} weights for {batch}×{length} positions of {mix}");
        var rows = Scratch(n * d);                                                  // (B·L·M, D)
        Tensors.Kernels.Embedding.Gather(WeightMatrix.From(table.Value), ids, rows);
        var y = NewOutput([batch, length, d], Grad(table));                         // (B, L, D)
        var dst = y.Value.AsSpan<float>();
        for (int p = 0; p < batch * length; p++)
        {
            var o = dst.Slice(p * d, d);
            TensorPrimitives.Multiply(rows.AsSpan(p * mix * d, d), weights[p * mix], o);
            for (int j = 1; j < mix; j++) TensorPrimitives.MultiplyAdd(rows.AsSpan((p * mix + j) * d, d), weights[p * mix + j], o, o);
        }
        if (y.RequiresGrad)
        {
            // The caller may reuse its arrays after the forward: backward keeps copies.
            int[] keptIds = [.. ids];
            float[] keptWeights = [.. weights];
            Record(y, o =>
            {
                var dy = o.OutGrad();
                var scaled = new float[n * d];                                      // (B·L·M, D): w · dy of each mixed row
                for (int i = 0; i < n; i++) TensorPrimitives.Multiply(dy.Slice(i / mix * d, d), keptWeights[i], scaled.AsSpan(i * d, d));
                Tensors.Kernels.Embedding.Backward(keptIds, scaled, table.GradSpan(), v, d);
            });
        }
        return y;
    }

    /// <summary>
    /// RMSNorm over the last dimension, y = x/√(mean(x²) + ε)·w (Zhang &amp; Sennrich 2019; T5's
    /// <c>T5LayerNorm</c>, Llama's <c>RMSNorm</c>). <paramref name="weight"/> (D) may be null.
    /// </summary>
    public static Var RmsNorm(Var x, Var? weight, float eps)
    {
        int d = x.Shape[^1];
        int rows = (int)(x.Value.Length / Math.Max(1, d));
        if (weight != null && weight.Value.Length != d) throw new ArgumentException($"RmsNorm: weight {weight.Value.Describe()} does not match width {d}");
        var y = NewOutput(x, Tape.Current != null && (x.RequiresGrad || weight is { RequiresGrad: true }));
        var rstd = Scratch(rows);
        Tensors.Kernels.RmsNorm.Forward(x.Data(), weight is null ? default : weight.Data(), y.Value.AsSpan<float>(), rows, d, eps, rstd);
        if (y.RequiresGrad) RecordRmsNorm(y, x, weight, rstd, rows, d);
        return y;
    }

    static void RecordRmsNorm(Var y, Var x, Var? weight, float[] rstd, int rows, int d) => Record(y, o =>
    {
        var dx = x.BeginGrad();
        Tensors.Kernels.RmsNorm.Backward(x.Data(), weight is null ? default : weight.Data(), rstd, o.OutGrad(), dx.Span,
            weight is { RequiresGrad: true } ? weight.GradSpan() : default, rows, d);
        dx.Commit();
    });

    /// <summary>LayerNorm over the last dimension, (x − mean)/√(var + ε)·γ + β, biased variance (PyTorch). γ, β may be null.</summary>
    public static Var LayerNorm(Var x, Var? gamma, Var? beta, float eps)
    {
        int d = x.Shape[^1];
        int rows = (int)(x.Value.Length / Math.Max(1, d));
        var y = NewOutput(x, Tape.Current != null && (x.RequiresGrad || gamma is { RequiresGrad: true } || beta is { RequiresGrad: true }));
        var mean = Scratch(rows);
        var rstd = Scratch(rows);
        Tensors.Kernels.LayerNorm.Forward(x.Data(), gamma is null ? default : gamma.Data(), beta is null ? default : beta.Data(),
            y.Value.AsSpan<float>(), rows, d, eps, mean, rstd);
        if (y.RequiresGrad) RecordLayerNorm(y, x, gamma, beta, mean, rstd, rows, d);
        return y;
    }

    static void RecordLayerNorm(Var y, Var x, Var? gamma, Var? beta, float[] mean, float[] rstd, int rows, int d) => Record(y, o =>
    {
        var dx = x.BeginGrad();
        Tensors.Kernels.LayerNorm.Backward(x.Data(), gamma is null ? default : gamma.Data(), mean, rstd, o.OutGrad(), dx.Span,
            gamma is { RequiresGrad: true } ? gamma.GradSpan() : default,
            beta is { RequiresGrad: true } ? beta.GradSpan() : default, rows, d);
        dx.Commit();
    });

    /// <summary>Softmax over the last dimension (with the kernel's scale, causal and padding options). Backward: dx = y ⊙ (dy − Σ dy ⊙ y)·scale.</summary>
    public static Var Softmax(Var x, SoftmaxOptions options = default)
    {
        int d = x.Shape[^1];
        int rows = (int)(x.Value.Length / Math.Max(1, d));
        var y = NewOutput(x, Grad(x));
        Tensors.Kernels.Softmax.Forward(x.Data(), y.Value.AsSpan<float>(), rows, d, options);
        if (y.RequiresGrad) RecordSoftmax(y, x, rows, d, options == default ? 1f : options.Scale);
        return y;
    }

    static void RecordSoftmax(Var y, Var x, int rows, int d, float scale) => Record(y, o =>
    {
        var dx = x.BeginGrad();
        Tensors.Kernels.Softmax.Backward(o.Data(), o.OutGrad(), dx.Span, rows, d, scale);
        dx.Commit();
    });

    /// <summary>
    /// Rotary position embedding of x (rows, heads·hd) — rows are (B·T) positions given by
    /// <paramref name="positions"/> (integers from a cache, or fractional such as the Mu encoder's
    /// centered ones). Backward: the inverse rotation of dy.
    /// </summary>
    public static Var Rope(Var x, RopeCache cache, int heads, ReadOnlySpan<float> positions)
    {
        int width = x.Shape[^1];
        int rows = (int)(x.Value.Length / Math.Max(1, width));
        if (positions.Length != rows) throw new ArgumentException($"Rope: {positions.Length} positions for {rows} rows of {x.Value.Describe()}");
        var y = NewOutput(x, Grad(x));
        var ys = y.Value.AsSpan<float>();
        x.Data().CopyTo(ys);
        Tensors.Kernels.Rope.Apply(cache, ys, rows, heads, positions);
        if (y.RequiresGrad) RecordRope(y, x, cache, heads, rows, positions.ToArray());
        return y;
    }

    static void RecordRope(Var y, Var x, RopeCache cache, int heads, int rows, float[] positions) => Record(y, o =>
    {
        var dx = x.BeginGrad();
        o.OutGrad().CopyTo(dx.Span);
        Tensors.Kernels.Rope.ApplyInverse(cache, dx.Span, rows, heads, positions);
        dx.Commit();
    });

    /// <summary>An activation (ReLU, GELU tanh/erf, SiLU) applied element-wise. Backward: f'(x)·dy.</summary>
    public static Var Activation(Var x, ActivationKind kind)
    {
        var y = NewOutput(x, Grad(x));
        Activations.Forward(kind, x.Data(), y.Value.AsSpan<float>());
        if (y.RequiresGrad) RecordActivation(y, x, kind);
        return y;
    }

    static void RecordActivation(Var y, Var x, ActivationKind kind) => Record(y, o =>
    {
        var dx = x.BeginGrad();
        Activations.Backward(kind, x.Data(), o.OutGrad(), dx.Span);
        dx.Commit();
    });

    /// <summary>
    /// Gated activation f(a)·b — GeGLU with a GELU kind, SwiGLU with SiLU (Shazeer, arXiv 2002.05202) —
    /// of two projections a and b of the same shape (…, F).
    /// </summary>
    public static Var Gated(Var a, Var b, ActivationKind kind)
    {
        SameShape(a, b, "Gated");
        var y = NewOutput(a, Grad(a, b));
        GatedActivations.Forward(kind, a.Data(), b.Data(), y.Value.AsSpan<float>());
        if (y.RequiresGrad) RecordGated(y, a, b, kind);
        return y;
    }

    static void RecordGated(Var y, Var a, Var b, ActivationKind kind) => Record(y, o =>
    {
        var da = a.BeginGrad();
        var db = b.BeginGrad();
        GatedActivations.Backward(kind, a.Data(), b.Data(), o.OutGrad(), da.Span, db.Span);
        da.Commit();
        db.Commit();
    });

    /// <summary>
    /// A trainable ALiBi bias (H, T, S): slope[h]·(s − (t + offset)). Backward:
    /// dslope[h] = Σ_{t,s} dbias·(s − t − offset). For fixed slopes prefer the attention kernel's
    /// built-in ALiBi, which never materializes the bias.
    /// </summary>
    public static Var AlibiBias(Var slopes, int queryLength, int keyLength, int queryOffset = 0)
    {
        if (slopes.Value.Rank != 1) throw new ArgumentException($"AlibiBias: slopes {slopes.Value.Describe()} must be (H)");
        int h = slopes.Shape[0];
        var y = NewOutput([h, queryLength, keyLength], Grad(slopes));
        var ys = y.Value.AsSpan<float>();
        var sl = slopes.Data();
        for (int i = 0; i < h; i++)
            for (int t = 0; t < queryLength; t++)
                for (int s = 0; s < keyLength; s++)
                    ys[(i * queryLength + t) * keyLength + s] = sl[i] * (s - t - queryOffset);
        if (y.RequiresGrad) RecordAlibi(y, slopes, h, queryLength, keyLength, queryOffset);
        return y;
    }

    static void RecordAlibi(Var y, Var slopes, int h, int queryLength, int keyLength, int queryOffset) => Record(y, o =>
    {
        var dy = o.OutGrad();
        var ds = slopes.GradSpan();
        for (int i = 0; i < h; i++)
        {
            double acc = 0;
            for (int t = 0; t < queryLength; t++)
                for (int s = 0; s < keyLength; s++)
                    acc += dy[(i * queryLength + t) * keyLength + s] * (double)(s - t - queryOffset);
            ds[i] += (float)acc;
        }
    });
}
