namespace Encore.Tensors.Kernels;

/// <summary>
/// Additive attention biases that encode positions: T5's bucketed relative positions (Raffel et al.,
/// arXiv 1910.10683, §2.1; HF <c>T5Attention._relative_position_bucket</c>) and ALiBi's per-head
/// linear penalties (Press et al., arXiv 2108.12409).
/// </summary>
public static class PositionBias
{
    /// <summary>
    /// T5's bucket of a relative position (key position − query position). Bidirectional (encoder):
    /// half the buckets for keys after the query; causal (decoder): only keys at or before it count.
    /// Within each half, distances below half the buckets get one bucket each, the rest share
    /// logarithmically spaced buckets up to <paramref name="maxDistance"/>, and beyond it the last one.
    /// Computed in binary32 as the reference does, so bucket boundaries match it exactly.
    /// </summary>
    public static int T5Bucket(int relativePosition, bool bidirectional, int numBuckets = 32, int maxDistance = 128)
    {
        int bucket = 0;
        int n = numBuckets;
        int rp;
        if (bidirectional)
        {
            n /= 2;
            if (relativePosition > 0) bucket += n;
            rp = Math.Abs(relativePosition);
        }
        else
        {
            rp = -Math.Min(relativePosition, 0);
        }
        int maxExact = n / 2;
        if (rp < maxExact) return bucket + rp;
        // float32 throughout: torch.log(rp.float() / max_exact) / math.log(max_distance / max_exact) * (n − max_exact)
        float large = MathF.Log(rp / (float)maxExact) / (float)Math.Log(maxDistance / (double)maxExact) * (n - maxExact);
        int ifLarge = maxExact + (int)large;
        return bucket + Math.Min(ifLarge, n - 1);
    }

    /// <summary>
    /// Buckets for every (query, key) pair, (T, S) row-major, with query t at absolute position
    /// t + <paramref name="queryOffset"/> (S − T when decoding against a cache) and key s at s.
    /// </summary>
    public static void T5Buckets(Span<int> buckets, int queryLength, int keyLength, bool bidirectional,
        int numBuckets = 32, int maxDistance = 128, int queryOffset = 0)
    {
        if (buckets.Length < (long)queryLength * keyLength)
            throw new ArgumentException($"T5Buckets: {buckets.Length} slots for {queryLength}×{keyLength} pairs", nameof(buckets));
        if (numBuckets < 2 || maxDistance < 1) throw new ArgumentOutOfRangeException(nameof(numBuckets), "need at least 2 buckets and a positive max distance");
        for (int t = 0; t < queryLength; t++)
            for (int s = 0; s < keyLength; s++)
                buckets[t * keyLength + s] = T5Bucket(s - (t + queryOffset), bidirectional, numBuckets, maxDistance);
    }

    /// <summary>
    /// T5's relative position bias in the distance form of <see cref="AttentionMask.DistanceBias"/>: (H, T + S − 1),
    /// entry t − j + S − 1 of head h the table's value for key j relative to query t at position
    /// t + <paramref name="queryOffset"/> (so the (H, T, S) bias of <see cref="T5Buckets"/> and <see cref="GatherBias"/>
    /// is entry (h, t, j) = this at (h, t − j + S − 1)).
    /// </summary>
    public static void DistanceBias(ReadOnlySpan<float> table, int numBuckets, int heads, int queryLength, int keyLength,
        bool bidirectional, int maxDistance, int queryOffset, Span<float> bias)
    {
        int width = queryLength + keyLength - 1;
        if (queryLength < 1 || keyLength < 1 || table.Length < numBuckets * heads || bias.Length < (long)heads * width)
            throw new ArgumentException("DistanceBias: table (buckets, H) or bias (H, T + S − 1) is too short, or T or S is empty");
        for (int x = 0; x < width; x++)
        {
            int bucket = T5Bucket(keyLength - 1 - x - queryOffset, bidirectional, numBuckets, maxDistance);
            if ((uint)bucket >= (uint)numBuckets) throw new ArgumentOutOfRangeException(nameof(numBuckets), $"bucket {bucket} is outside [0, {numBuckets})");
            for (int h = 0; h < heads; h++) bias[h * width + x] = table[bucket * heads + h];
        }
    }

    /// <summary>
    /// Gathers a bias (H, T, S) from a learned table (numBuckets, H) — the layout of HF's
    /// <c>relative_attention_bias.weight</c> — and bucket ids (T, S).
    /// </summary>
    public static void GatherBias(ReadOnlySpan<float> table, int numBuckets, int heads, ReadOnlySpan<int> buckets, int queryLength, int keyLength, Span<float> bias)
    {
        int ts = queryLength * keyLength;
        if (table.Length < numBuckets * heads || buckets.Length < ts || bias.Length < heads * ts)
            throw new ArgumentException("GatherBias: table (buckets, H), buckets (T, S) or bias (H, T, S) is too short");
        for (int h = 0; h < heads; h++)
        {
            var dst = bias.Slice(h * ts, ts);
            for (int i = 0; i < ts; i++)
            {
                int b = buckets[i];
                if ((uint)b >= (uint)numBuckets) throw new ArgumentOutOfRangeException(nameof(buckets), $"bucket {b} is outside [0, {numBuckets})");
                dst[i] = table[b * heads + h];
            }
        }
    }

    /// <summary>Backward of <see cref="GatherBias"/>: dTable (numBuckets, H) += Σ over (t, s) in each bucket of dBias.</summary>
    public static void GatherBiasBackward(ReadOnlySpan<float> dBias, int heads, ReadOnlySpan<int> buckets, int queryLength, int keyLength, Span<float> dTable)
    {
        int ts = queryLength * keyLength;
        for (int h = 0; h < heads; h++)
        {
            var src = dBias.Slice(h * ts, ts);
            for (int i = 0; i < ts; i++) dTable[buckets[i] * heads + h] += src[i];
        }
    }

    /// <summary>
    /// ALiBi slopes for <paramref name="heads"/> heads: the geometric sequence 2^(−8/n), 2^(−16/n), …
    /// for n a power of two; otherwise those of the nearest lower power of two followed by every
    /// other slope of twice that many (the reference implementation's rule).
    /// </summary>
    public static float[] AlibiSlopes(int heads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(heads, 1);
        static double[] PowerOfTwo(int n)
        {
            double start = Math.Pow(2, -Math.Pow(2, -(Math.Log2(n) - 3)));
            return Enumerable.Range(0, n).Select(i => start * Math.Pow(start, i)).ToArray();
        }
        double[] slopes;
        if ((heads & (heads - 1)) == 0) slopes = PowerOfTwo(heads);
        else
        {
            int closest = 1 << (int)Math.Floor(Math.Log2(heads));
            var extra = AlibiSlopes(2 * closest).Where((_, i) => i % 2 == 0).Take(heads - closest).Select(x => (double)x);
            slopes = PowerOfTwo(closest).Concat(extra).ToArray();
        }
        return slopes.Select(x => (float)x).ToArray();
    }
}
