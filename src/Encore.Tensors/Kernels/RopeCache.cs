using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Encore.Tensors.Kernels;

/// <summary>
/// Precomputed RoPE tables for positions 0 … <see cref="MaxPositions"/> − 1 (or for an explicit list of
/// positions, one table row each): the angles, cosines and
/// sines are computed in double and rounded once to float, so every SIMD path reads identical values
/// (and the float-position path, which computes the same formula per row, gives identical results at
/// integer positions). Immutable and shareable across threads.
/// </summary>
public sealed class RopeCache
{
    internal readonly double[] InvFreq;            // (d/2)
    internal readonly float[] Cos, Sin;            // (MaxPositions, d/2)
    internal readonly float[] CosPairs, SinPairs;  // interleaved layout only, (MaxPositions, d): each cos twice, sin as (−s, +s)

    /// <summary>Computes the tables of positions 0 … <paramref name="maxPositions"/> − 1 for heads of <paramref name="headDim"/> values.</summary>
    public RopeCache(int headDim, int maxPositions, RopeOptions options = default)
        : this(headDim, maxPositions, options, default) { }

    /// <summary>
    /// Computes the tables of an explicit list of (possibly fractional) positions: table row i holds the
    /// angles of <paramref name="positions"/>[i], so <see cref="Rope.Apply(RopeCache, Span{float}, int, int, ReadOnlySpan{int})"/>
    /// takes row indices. For the centered encoder positions of a source length, built once per length
    /// and shared by every layer's q and k, instead of recomputing the angles per call with float positions.
    /// </summary>
    public RopeCache(int headDim, ReadOnlySpan<float> positions, RopeOptions options = default)
        : this(headDim, positions.Length, options, positions) { }

    RopeCache(int headDim, int maxPositions, RopeOptions options, ReadOnlySpan<float> explicitPositions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(headDim, 2);
        ArgumentOutOfRangeException.ThrowIfNegative(maxPositions);
        int d = options.RotaryDims == 0 ? headDim : options.RotaryDims;
        if (d < 2 || d > headDim || d % 2 != 0)
            throw new ArgumentException($"RoPE: rotary dims {d} must be even and within [2, head dim {headDim}]", nameof(options));
        if (!(options.Theta > 1) || !(options.NtkScale > 0) || !(options.LinearScale > 0) || !double.IsFinite(options.Theta))
            throw new ArgumentException($"RoPE: theta must be > 1 and scales > 0 (theta {options.Theta}, ntk {options.NtkScale}, linear {options.LinearScale})", nameof(options));
        if ((long)maxPositions * d > int.MaxValue)
            throw new ArgumentException($"RoPE: a table of {maxPositions} positions × {d} dims is too large", nameof(maxPositions));
        for (int p = 0; p < explicitPositions.Length; p++)
            if (!float.IsFinite(explicitPositions[p]))
                throw new ArgumentException($"RoPE: position {explicitPositions[p]} (entry {p}) is not finite", "positions");
        HeadDim = headDim;
        RotaryDims = d;
        MaxPositions = maxPositions;
        Options = options;
        InvFreq = InverseFrequencies(options, d);
        int half = d / 2;
        Cos = new float[maxPositions * half];
        Sin = new float[maxPositions * half];
        bool pairs = options.Layout == RopeLayout.Interleaved;
        CosPairs = pairs ? new float[maxPositions * d] : [];
        SinPairs = pairs ? new float[maxPositions * d] : [];
        bool isExplicit = !explicitPositions.IsEmpty;
        for (int p = 0; p < maxPositions; p++)
        {
            double position = isExplicit ? explicitPositions[p] : p;
            for (int i = 0; i < half; i++)
            {
                (float c, float s) = Angle(position, options.LinearScale, InvFreq[i]);
                Cos[p * half + i] = c;
                Sin[p * half + i] = s;
                if (!pairs) continue;
                CosPairs[p * d + 2 * i] = CosPairs[p * d + 2 * i + 1] = c;
                SinPairs[p * d + 2 * i] = -s;
                SinPairs[p * d + 2 * i + 1] = s;
            }
        }
    }

    /// <summary>Values per head.</summary>
    public int HeadDim { get; }

    /// <summary>d: the leading dimensions of a head that rotate.</summary>
    public int RotaryDims { get; }

    /// <summary>Integer positions (or, for a cache of explicit positions, row indices) in [0, MaxPositions) have tables.</summary>
    public int MaxPositions { get; }

    /// <summary>The settings the tables were made with.</summary>
    public RopeOptions Options { get; }

    /// <summary>θ'^(−2i/d) for i in [0, d/2), with NTK scaling applied to θ.</summary>
    public static double[] InverseFrequencies(RopeOptions options, int rotaryDims)
    {
        double theta = options.Theta * Math.Pow(options.NtkScale, rotaryDims / (rotaryDims - 2.0));
        var f = new double[rotaryDims / 2];
        for (int i = 0; i < f.Length; i++) f[i] = 1.0 / Math.Pow(theta, 2.0 * i / rotaryDims);
        return f;
    }

    // Tables of the half-integer positions in [FirstKept, EndKept): every position a stack makes (integer
    // offsets, and the centered positions of sequences up to 2,048 long), one row of 3·d floats each (cos
    // and sin, d/2 each; then the interleaved pairs, d each). Built in full on the first float-position
    // call and published once, never changed after: readers need no synchronization beyond the
    // publication. Other positions are computed per call (FloatRow returns null).
    internal const int FirstKept = -1024, EndKept = 2048;
    float[]? _kept;

    /// <summary>The kept tables of <paramref name="position"/> (layout above), or null where the caller must compute them.</summary>
    internal unsafe float* FloatRow(float position)
    {
        float twice = position * 2;
        if (!(twice >= 2 * FirstKept && twice < 2 * EndKept) || twice != MathF.Floor(twice)) return null;
        var kept = Volatile.Read(ref _kept) ?? BuildKept();
        int index = (int)twice - 2 * FirstKept;
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(kept)) + (long)index * 3 * RotaryDims;
    }

    unsafe float[] BuildKept()
    {
        int stride = 3 * RotaryDims, count = 2 * (EndKept - FirstKept);
        var kept = GC.AllocateUninitializedArray<float>(count * stride, pinned: true);
        fixed (float* p = kept)
            for (int i = 0; i < count; i++) FillFloatRow(FirstKept + i * 0.5f, p + (long)i * stride);
        return Interlocked.CompareExchange(ref _kept, kept, null) ?? kept;
    }

    /// <summary>Writes the 3·d-float tables of <paramref name="position"/> (layout of <see cref="FloatRow"/>) as the integer tables are computed.</summary>
    internal unsafe void FillFloatRow(float position, float* row)
    {
        int d = RotaryDims, half = d / 2;
        float* cos2 = row + d, sin2 = row + 2 * d;
        for (int i = 0; i < half; i++)
        {
            (float c, float s) = Angle(position, Options.LinearScale, InvFreq[i]);
            row[i] = c;
            row[half + i] = s;
            cos2[2 * i] = cos2[2 * i + 1] = c;
            sin2[2 * i] = -s;
            sin2[2 * i + 1] = s;
        }
    }

    /// <summary>cos and sin of the angle of frequency <paramref name="invFreq"/> at position <paramref name="p"/>, rounded to float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (float Cos, float Sin) Angle(double p, double linearScale, double invFreq)
    {
        double a = p / linearScale * invFreq;
        return ((float)Math.Cos(a), (float)Math.Sin(a));
    }
}
