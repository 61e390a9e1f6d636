using Encore.Tensors;
using Encore.Tensors.Kernels;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

public static partial class Ops
{
    /// <summary>
    /// Inference attention of new queries q (B, T, H·hd) against the first <paramref name="length"/>
    /// positions of key/value caches (B, capacity, Hkv·hd), read in place through strides. No
    /// gradient (a cache is an inference structure). Causal masking uses
    /// <see cref="AttentionOptions.QueryOffset"/> = length − T for self-attention over a growing cache.
    /// </summary>
    public static Var AttentionCached(Var q, Tensor kCache, Tensor vCache, int length, int heads, int kvHeads,
        AttentionOptions options = default, AttentionMasks? masks = null, Var? bias = null)
    {
        if (q.RequiresGrad) throw new InvalidOperationException("AttentionCached is for inference; record training steps with Attention");
        int b = q.Shape[0], t = q.Shape[1], hd = q.Shape[2] / heads;
        int capacity = kCache.Shape[1], w = kCache.Shape[2];
        if (kCache.Shape[0] != b || w != kvHeads * hd || !kCache.IsContiguous || !vCache.Shape.SequenceEqual(kCache.Shape) || !vCache.IsContiguous)
            throw new ArgumentException($"AttentionCached: caches {kCache.Describe()}, {vCache.Describe()} must be contiguous (B={b}, capacity, {kvHeads}·{hd})");
        if (length < 0 || length > capacity) throw new ArgumentOutOfRangeException(nameof(length), $"cache length {length} is outside [0, {capacity}]");
        var shape = new AttentionShape(b, heads, kvHeads, t, length, hd);
        var qs = AttentionStrides.PositionMajor(heads, t, hd);
        var ks = new AttentionStrides(checked(capacity * w), hd, w);
        var y = Tensor.Empty(DType.F32, b, t, heads * hd);
        masks ??= new AttentionMasks();
        var m = new AttentionMask
        {
            KeyLengths = masks.KeyLengths,
            KeyMask = masks.KeyMask,
            AlibiSlopes = masks.AlibiSlopes,
            Bias = bias is null ? default : bias.Data(),
        };
        Tensors.Kernels.Attention.Forward(shape, q.Data(), qs, kCache.AsReadOnlySpan<float>(), ks, vCache.AsReadOnlySpan<float>(), ks,
            y.AsSpan<float>(), qs, options, m);
        return Tape.Output(y, [q], null);
    }
}
