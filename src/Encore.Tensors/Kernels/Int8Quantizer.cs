using System.Numerics.Tensors;

namespace Encore.Tensors.Kernels;

/// <summary>
/// Symmetric int8 quantization of one vector with one binary32 scale, as an int8 KV cache stores each
/// key and value vector (one head at one position): scale = max|x|/127 and
/// q = round(x·(1/scale)) with halves rounded away from zero (ggml's Q8_0 rule, there per block of 32
/// values with a binary16 scale). So q ∈ [−127, 127] and |x − scale·q| ≤ scale/2 (plus the binary32
/// rounding of x·(1/scale), a relative 2⁻²⁴). An all-zero vector has scale 0; a vector holding an
/// infinity or NaN gets scale NaN, so attention over it yields NaN as it would over the binary32 vector.
/// Scalar only: it runs once per new position and head, a vanishing cost beside the attention that
/// reads every position each step.
/// </summary>
public static class Int8Quantizer
{
    /// <summary>Writes the quants of <paramref name="x"/> into <paramref name="quants"/> (same length) and returns the scale.</summary>
    public static float Quantize(ReadOnlySpan<float> x, Span<sbyte> quants)
    {
        if (quants.Length != x.Length) throw new ArgumentException($"{quants.Length} quants for {x.Length} values", nameof(quants));
        if (x.IsEmpty) return 0f;
        float amax = MathF.Abs(TensorPrimitives.MaxMagnitude(x));
        if (!float.IsFinite(amax))
        {
            quants.Clear();
            return float.NaN;
        }
        float scale = amax / 127f;
        float inverse = scale != 0 ? 1f / scale : 0f;
        for (int i = 0; i < x.Length; i++)
            quants[i] = (sbyte)Math.Clamp(MathF.Round(x[i] * inverse, MidpointRounding.AwayFromZero), -127f, 127f);
        return scale;
    }

    /// <summary>x[i] = scale·quants[i].</summary>
    public static void Dequantize(ReadOnlySpan<sbyte> quants, float scale, Span<float> x)
    {
        if (quants.Length != x.Length) throw new ArgumentException($"{quants.Length} quants for {x.Length} values", nameof(x));
        for (int i = 0; i < x.Length; i++) x[i] = scale * quants[i];
    }
}
