using System.Numerics.Tensors;

namespace Encore.Autograd;

public static partial class Ops
{
    /// <summary>
    /// c·tanh(x/c), elementwise: Gemma 2's soft-capping of the final logits (modeling_gemma2.py
    /// Gemma2ForCausalLM, <c>final_logit_softcapping</c>). Backward: dx += dy·(1 − (y/c)²).
    /// </summary>
    public static Var SoftCap(Var x, float cap)
    {
        if (!(cap > 0 && float.IsFinite(cap))) throw new ArgumentException($"SoftCap: cap {cap} must be positive and finite");
        var y = NewOutput(x, Grad(x));
        var ys = y.Value.AsSpan<float>();
        TensorPrimitives.Multiply(x.Data(), 1 / cap, ys);
        TensorPrimitives.Tanh(ys, ys);
        TensorPrimitives.Multiply(ys, cap, ys);
        if (y.RequiresGrad) RecordSoftCap(y, x, cap);
        return y;
    }

    static void RecordSoftCap(Var y, Var x, float cap) => Record(y, o =>
    {
        if (!x.RequiresGrad) return;
        var dy = o.OutGrad();
        var ys = o.Data();
        var dx = x.GradSpan();
        float inv = 1 / cap;
        for (int i = 0; i < dx.Length; i++)
        {
            float t = ys[i] * inv;
            dx[i] += dy[i] * (1 - t * t);
        }
    });

    /// <summary>x + c, elementwise: Gemma's RMSNorm scale 1 + w from its stored w. Backward: dx += dy.</summary>
    public static Var AddScalar(Var x, float c)
    {
        var y = NewOutput(x, Grad(x));
        TensorPrimitives.Add(x.Data(), c, y.Value.AsSpan<float>());
        if (y.RequiresGrad) RecordAddScalar(y, x);
        return y;
    }

    static void RecordAddScalar(Var y, Var x) => Record(y, o =>
    {
        x.PassGrad(o);
    });
}
