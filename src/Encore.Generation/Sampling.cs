namespace Encore.Generation;

/// <summary>
/// xoshiro256** (Blackman and Vigna 2018, "Scrambled Linear Pseudorandom Number Generators"), seeded
/// through SplitMix64 as its authors recommend. Ours rather than System.Random so that a seed gives
/// the same samples on every runtime version.
/// </summary>
public sealed class Xoshiro256
{
    ulong _s0, _s1, _s2, _s3;

    /// <summary>A generator for <paramref name="seed"/> (any value, 0 included).</summary>
    public Xoshiro256(ulong seed)
    {
        _s0 = SplitMix(ref seed);
        _s1 = SplitMix(ref seed);
        _s2 = SplitMix(ref seed);
        _s3 = SplitMix(ref seed);
    }

    static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>A uniform double in [0, 1) from the top 53 bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A seed derived from <paramref name="seed"/> and a stream index (one stream per returned sequence).</summary>
    public static ulong Derive(ulong seed, int stream)
    {
        ulong x = seed ^ ((ulong)(uint)stream * 0xD1B54A32D192ED03UL);
        return SplitMix(ref x);
    }
}

/// <summary>Softmax, log-softmax, argmax and categorical draws over one row of scores, in double.</summary>
public static class Sampling
{
    /// <summary>Probabilities of <paramref name="logits"/>; −∞ scores get 0.</summary>
    public static double[] Softmax(ReadOnlySpan<float> logits)
    {
        var p = new double[logits.Length];
        Softmax(logits, p);
        return p;
    }

    /// <summary>Writes the probabilities of <paramref name="logits"/> into <paramref name="p"/> (same length); −∞ scores get 0.</summary>
    public static void Softmax(ReadOnlySpan<float> logits, Span<double> p)
    {
        if (p.Length != logits.Length) throw new ArgumentException($"{p.Length} probabilities for {logits.Length} logits");
        double max = double.NegativeInfinity;
        foreach (float x in logits) if (x > max) max = x;
        double sum = 0;
        for (int i = 0; i < p.Length; i++) sum += p[i] = double.IsNegativeInfinity(logits[i]) ? 0 : Math.Exp(logits[i] - max);
        for (int i = 0; i < p.Length; i++) p[i] /= sum;
    }

    /// <summary>
    /// Draws an index with probability proportional to <paramref name="weights"/> (non-negative, not
    /// necessarily normalized) by inverting the cumulative sum at one uniform draw; −1 when every weight is 0.
    /// </summary>
    public static int DrawWeighted(ReadOnlySpan<double> weights, Xoshiro256 rng)
    {
        double total = 0;
        foreach (double w in weights) total += w;
        if (!(total > 0)) return -1;
        double u = rng.NextDouble() * total, c = 0;
        int last = -1;
        for (int i = 0; i < weights.Length; i++)
        {
            if (weights[i] <= 0) continue;
            last = i;
            c += weights[i];
            if (u < c) return i;
        }
        return last;
    }

    /// <summary>log Σ exp(x) of a row.</summary>
    public static double LogSumExp(ReadOnlySpan<float> logits)
    {
        double max = double.NegativeInfinity;
        foreach (float x in logits) if (x > max) max = x;
        if (double.IsNegativeInfinity(max)) return max;
        double sum = 0;
        foreach (float x in logits) sum += Math.Exp(x - max);
        return max + Math.Log(sum);
    }

    /// <summary>
    /// <see cref="LogSumExp"/> as a decode step takes it for its token's log-probability, once per row over
    /// the whole vocabulary: the vectorized kernel <see cref="Encore.Tensors.Kernels.Softmax.LogSumExp"/>,
    /// within ~1e-6 of the binary64 loop at a fraction of its cost.
    /// </summary>
    public static double StepLogSumExp(ReadOnlySpan<float> logits)
    {
        Span<double> lse = stackalloc double[1];
        Encore.Tensors.Kernels.Softmax.LogSumExp(logits, lse, 1, logits.Length);
        return lse[0];
    }

    /// <summary>The index of the largest score; ties go to the smallest index (torch.argmax).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    /// <summary>Draws an index with probability softmax(<paramref name="logits"/>) by inverting the cumulative sum at one uniform draw.</summary>
    public static int Draw(ReadOnlySpan<float> logits, Xoshiro256 rng)
    {
        var p = Softmax(logits);
        double u = rng.NextDouble(), c = 0;
        int last = -1;
        for (int i = 0; i < p.Length; i++)
        {
            if (p[i] == 0) continue;
            last = i;
            c += p[i];
            if (u < c) return i;
        }
        // Rounding can leave the total a hair under 1: the last possible token takes the rest.
        return last >= 0 ? last : ArgMax(logits);
    }
}
