namespace Encore.Training.Data;

/// <summary>
/// The data layer's pseudo-random generator: SplitMix64 (Steele, Lea and Flood, "Fast Splittable
/// Pseudorandom Number Generators", OOPSLA 2014). Encore fixes its own algorithm rather than use
/// <see cref="Random"/>, whose unseeded algorithm is unspecified, so a seed gives the same shuffles,
/// splits and masks on every machine and runtime; tools/data/splitmix.py is the same generator in Python.
/// </summary>
public sealed class DataRng
{
    const ulong Golden = 0x9E3779B97F4A7C15UL;
    ulong _state;

    /// <summary>A generator whose first output follows from <paramref name="seed"/> alone.</summary>
    public DataRng(ulong seed) => _state = seed;

    /// <summary>
    /// An independent stream for (seed, a, b): per-epoch shuffles and per-example masks draw from
    /// their own stream, so an example's mask does not depend on which batch it lands in.
    /// </summary>
    public static DataRng For(ulong seed, ulong a, ulong b = 0) => new(Mix(Mix(Mix(seed + Golden) ^ (a + Golden)) ^ unchecked(b + 2 * Golden)));

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        _state += Golden;
        return Mix(_state);
    }

    /// <summary>Uniform in [0, <paramref name="n"/>) without modulo bias (draws at or above the largest multiple of n are redrawn).</summary>
    public int NextInt(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        ulong un = (ulong)n;
        ulong limit = ulong.MaxValue - (ulong.MaxValue % un + 1) % un; // last value of the largest multiple of n, inclusive
        while (true)
        {
            ulong x = NextUInt64();
            if (x <= limit) return (int)(x % un);
        }
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Fisher–Yates shuffle from the back (Knuth's Algorithm P).</summary>
    public void Shuffle<T>(IList<T> items)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    /// <summary>A random permutation of 0 … n−1.</summary>
    public int[] Permutation(int n)
    {
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        Shuffle(p);
        return p;
    }

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
