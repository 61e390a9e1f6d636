// The model's next-token distribution as integer frequencies for the range coder. Encoder and
// decoder must derive the very same table from the very same logits, so everything after the logits
// is integer arithmetic or IEEE-754 double +, −, ×, ÷ in a fixed order (each correctly rounded, the
// same on every conforming machine; .NET never contracts a·b + c into a fused multiply-add on its
// own): no Math.Exp, whose last bit depends on the C runtime.
namespace Encore.Generation.Compression;

/// <summary>
/// Turns logits into a frequency table of total 2^<see cref="TotalBits"/>: every id gets 1, the remaining
/// 2^b − V are shared in proportion to softmax(logits) (rounded down), and what rounding leaves goes to
/// the most likely id. Deterministic down to the bit for given logits.
/// </summary>
public sealed class TokenFrequencies
{
    readonly double[] _weights;
    readonly uint[] _cumulative;     // (V + 1): id i owns [c[i], c[i + 1])

    /// <summary>A table for <paramref name="vocabSize"/> ids with a total of 2^<paramref name="totalBits"/>.</summary>
    public TokenFrequencies(int vocabSize, int totalBits)
    {
        if (vocabSize < 1) throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "at least one id");
        if (totalBits is < 1 or > MaxTotalBits) throw new ArgumentOutOfRangeException(nameof(totalBits), totalBits, $"the total must be 2^1 … 2^{MaxTotalBits}");
        if ((long)vocabSize * 2 > 1L << totalBits)
            throw new ArgumentException($"a total of 2^{totalBits} leaves too little for {vocabSize} ids (each needs 1, and half the total is shared by probability)");
        VocabSize = vocabSize;
        TotalBits = totalBits;
        _weights = new double[vocabSize];
        _cumulative = new uint[vocabSize + 1];
    }

    /// <summary>Largest total the 32-bit coder takes: its range never falls below 2^24.</summary>
    public const int MaxTotalBits = 24;

    /// <summary>V.</summary>
    public int VocabSize { get; }

    /// <summary>b: the table sums to 2^b.</summary>
    public int TotalBits { get; }

    /// <summary>
    /// The total for a vocabulary of <paramref name="vocabSize"/>: the largest the coder takes, 2^24, since
    /// the coder loses nothing to a large total while each id's floor of 1 costs about 1.44·V/T bits a
    /// token (0.0002 bits for V = 2048).
    /// </summary>
    public static int TotalBitsFor(int vocabSize)
    {
        if (vocabSize < 1 || (long)vocabSize * 2 > 1L << MaxTotalBits)
            throw new ArgumentException($"a vocabulary of {vocabSize} ids does not fit a frequency total of at most 2^{MaxTotalBits}");
        return MaxTotalBits;
    }

    /// <summary>Id i owns [Cumulative[i], Cumulative[i + 1]) of 2^b.</summary>
    public ReadOnlySpan<uint> Cumulative => _cumulative;

    /// <summary>Frequency of <paramref name="id"/>.</summary>
    public uint Frequency(int id) => _cumulative[id + 1] - _cumulative[id];

    /// <summary>
    /// The model probability of <paramref name="id"/> before quantization, softmax(logits)[id] in double,
    /// from the weights of the last <see cref="Set"/> (for reporting the ideal code length).
    /// </summary>
    public double Probability(int id) => _weights[id] / _sum;

    double _sum;

    /// <summary>Fills the table from <paramref name="logits"/> (V values).</summary>
    public void Set(ReadOnlySpan<float> logits)
    {
        int v = VocabSize;
        if (logits.Length != v) throw new ArgumentException($"{logits.Length} logits for a table of {v} ids");
        int top = 0;
        float max = float.NegativeInfinity;
        for (int i = 0; i < v; i++)
            if (logits[i] > max)
            {
                max = logits[i];
                top = i;
            }
        double sum = 0;
        for (int i = 0; i < v; i++)
        {
            // NaN, −∞ and anything whose exponential underflows weigh 0.
            double d = (double)logits[i] - max;
            double w = d > -700 ? Exp(d) : 0;
            _weights[i] = w;
            sum += w;
        }
        if (!(sum >= 1) || !double.IsFinite(sum))
        {
            // No usable logits (all NaN or infinite): a uniform table, still the same on both sides.
            _weights.AsSpan().Fill(1);
            sum = v;
            top = 0;
        }
        _sum = sum;
        long budget = (1L << TotalBits) - v;
        double scale = budget / sum;
        long c = 0;
        for (int i = 0; i < v; i++)
        {
            _cumulative[i] = (uint)c;
            c += 1 + (long)(_weights[i] * scale);
        }
        _cumulative[v] = (uint)c;
        // The leftover (a few units from rounding down, possibly −1 from rounding up a product) goes to
        // the top id, whose share is at least budget / V ≥ 1, so every id keeps a frequency ≥ 1.
        long leftover = (1L << TotalBits) - c;
        if (_cumulative[top + 1] - _cumulative[top] + leftover < 1) throw new InvalidOperationException("frequency rounding left the top id empty");
        if (leftover != 0)
            for (int i = top + 1; i <= v; i++) _cumulative[i] = (uint)(_cumulative[i] + leftover);
    }

    /// <summary>The id whose interval holds <paramref name="value"/> (binary search).</summary>
    public int Find(uint value)
    {
        int lo = 0, hi = VocabSize - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (_cumulative[mid] <= value) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }

    /// <summary>
    /// e^x for x ≤ 0 from correctly rounded double operations only: x·log2(e) = n + f with f in [0, 1),
    /// 2^f = e^(f·ln 2) by its Taylor series to the 13th power (relative error below 1e-13), scaled by 2^n.
    /// </summary>
    internal static double Exp(double x)
    {
        const double Log2E = 1.4426950408889634;
        const double Ln2 = 0.6931471805599453;
        double y = x * Log2E;
        double n = Math.Floor(y);
        double t = (y - n) * Ln2;                     // [0, ln 2)
        double p = 1.0 / 6227020800;                  // 1/13!
        p = p * t + 1.0 / 479001600;
        p = p * t + 1.0 / 39916800;
        p = p * t + 1.0 / 3628800;
        p = p * t + 1.0 / 362880;
        p = p * t + 1.0 / 40320;
        p = p * t + 1.0 / 5040;
        p = p * t + 1.0 / 720;
        p = p * t + 1.0 / 120;
        p = p * t + 1.0 / 24;
        p = p * t + 1.0 / 6;
        p = p * t + 0.5;
        p = p * t + 1;
        p = p * t + 1;
        // n ≥ −1010 here (x > −700), so 2^n is a normal double, exact as a bit pattern.
        return p * BitConverter.Int64BitsToDouble((long)(1023 + (int)n) << 52);
    }
}
