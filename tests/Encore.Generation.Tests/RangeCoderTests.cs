using Encore.Generation.Compression;

namespace Encore.Generation.Tests;

public class RangeCoderTests
{
    /// <summary>A random table of <paramref name="v"/> frequencies ≥ 1 summing to 2^bits: some flat, some with one symbol holding nearly all.</summary>
    static uint[] RandomCumulative(Random rng, int v, int bits, bool skewed)
    {
        long total = 1L << bits;
        var f = new long[v];
        Array.Fill(f, 1);
        long left = total - v;
        if (skewed)
        {
            f[rng.Next(v)] += left;                 // one symbol takes everything but the floors
        }
        else
        {
            var w = new double[v];
            double sum = 0;
            for (int i = 0; i < v; i++) sum += w[i] = Math.Pow(rng.NextDouble(), 8);   // heavy tail: many symbols stay at 1
            for (int i = 0; i < v; i++) f[i] += (long)(w[i] / sum * left);
            f[0] += total - f.Sum();                // what rounding down left
        }
        var c = new uint[v + 1];
        for (int i = 0; i < v; i++) c[i + 1] = (uint)(c[i] + f[i]);
        Assert.Equal(total, (long)c[v]);
        return c;
    }

    static int Sample(Random rng, uint[] c, int bits)
    {
        uint u = (uint)rng.NextInt64(1L << bits);
        int lo = 0, hi = c.Length - 2;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (c[mid] <= u) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public void RandomStreamsWithRandomTablesRoundTrip(int seed)
    {
        var rng = new Random(seed);
        for (int round = 0; round < 20; round++)
        {
            int bits = rng.Next(2, 25);
            int v = rng.Next(2, (int)Math.Min(5000, (1L << bits) / 2) + 1);
            bool skewed = rng.Next(3) == 0;
            var c = RandomCumulative(rng, v, bits, skewed);
            int n = rng.Next(0, 3000);
            var symbols = new int[n];
            var raw = new uint[n];
            var encoder = new RangeEncoder();
            for (int i = 0; i < n; i++)
            {
                // Half the symbols are drawn uniformly over the ids, so frequency-1 symbols occur often.
                symbols[i] = rng.Next(2) == 0 ? rng.Next(v) : Sample(rng, c, bits);
                encoder.Encode(c[symbols[i]], c[symbols[i] + 1] - c[symbols[i]], bits);
                if (i % 7 == 0)
                {
                    raw[i] = (uint)rng.Next(1 << 13);
                    encoder.EncodeBits(raw[i], 13);
                }
            }
            encoder.Finish();
            var bytes = encoder.Output.ToArray();
            var decoder = new RangeDecoder(bytes);
            for (int i = 0; i < n; i++)
            {
                uint value = decoder.Peek(bits);
                int s = Array.FindLastIndex(c, v - 1, v, x => x <= value);
                Assert.Equal(symbols[i], s);
                decoder.Consume(c[s], c[s + 1] - c[s]);
                if (i % 7 == 0) Assert.Equal(raw[i], decoder.DecodeBits(13));
            }
            Assert.True(decoder.AtEnd, $"round {round}: {bytes.Length - decoder.Position} bytes left unread");
        }
    }

    [Fact]
    public void ExtremeSkewCostsAlmostNothingPerSymbolAndRoundTrips()
    {
        // One symbol of 2^22 − 2047 beside 2047 symbols of frequency 1: the likely one costs ≈ 0.0007 bits,
        // so any loss of the coder's own (as truncating range >> b would cost) shows.
        const int bits = 22, v = 2048;
        var c = new uint[v + 1];
        for (int i = 0; i < v; i++) c[i + 1] = c[i] + (i == 5 ? (1u << bits) - (v - 1) : 1u);
        var encoder = new RangeEncoder();
        const int n = 100_000;
        for (int i = 0; i < n; i++)
        {
            int s = i == 50_000 ? 7 : 5;                                    // one frequency-1 symbol in the middle
            encoder.Encode(c[s], c[s + 1] - c[s], bits);
        }
        encoder.Finish();
        var bytes = encoder.Output.ToArray();
        double ideal = (n - 1) * -Math.Log2((c[6] - c[5]) / (double)(1 << bits)) + bits;
        Assert.InRange(bytes.Length * 8.0, ideal, ideal * 1.05 + 40);
        var decoder = new RangeDecoder(bytes);
        for (int i = 0; i < n; i++)
        {
            uint value = decoder.Peek(bits);
            int s = Array.FindLastIndex(c, v - 1, v, x => x <= value);
            Assert.Equal(i == 50_000 ? 7 : 5, s);
            decoder.Consume(c[s], c[s + 1] - c[s]);
        }
        Assert.True(decoder.AtEnd);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(19)]
    [InlineData(22)]
    [InlineData(24)]
    public void SizeOfASyntheticModelsStreamIsWithinOnePercentOfItsIdealLength(int bits)
    {
        // A synthetic model: fresh random logits at every step, the symbol drawn from their softmax; the
        // ideal is Σ −log2 p under the unquantized softmax, as the compressor reports it.
        var rng = new Random(bits);
        const int v = 2048, n = 20_000;
        var table = new TokenFrequencies(v, bits);
        var logits = new float[v];
        var encoder = new RangeEncoder();
        double ideal = 0;
        for (int i = 0; i < n; i++)
        {
            double temperature = 0.5 + 4 * rng.NextDouble();
            for (int j = 0; j < v; j++) logits[j] = (float)(Gaussian(rng) * temperature);
            table.Set(logits);
            // Draw from the model's own softmax (inverse CDF over the double probabilities).
            double u = rng.NextDouble(), acc = 0;
            int s = v - 1;
            for (int j = 0; j < v; j++)
                if ((acc += table.Probability(j)) > u)
                {
                    s = j;
                    break;
                }
            ideal -= Math.Log2(table.Probability(s));
            encoder.Encode(table.Cumulative[s], table.Frequency(s), bits);
        }
        encoder.Finish();
        double actual = encoder.Output.Count * 8.0;
        Assert.InRange(actual, ideal - 64, ideal * 1.01 + 64);
    }

    [Fact]
    public void TruncatedOrAlteredStreamsThrowInsteadOfDecodingWithoutBound()
    {
        var rng = new Random(3);
        const int bits = 16, v = 300;
        var c = RandomCumulative(rng, v, bits, skewed: false);
        var encoder = new RangeEncoder();
        var symbols = Enumerable.Range(0, 2000).Select(_ => Sample(rng, c, bits)).ToArray();
        foreach (int s in symbols) encoder.Encode(c[s], c[s + 1] - c[s], bits);
        encoder.Finish();
        var bytes = encoder.Output.ToArray();
        // Truncated: the decoder needs a byte that is not there.
        Assert.Throws<CompressedDataException>(() =>
        {
            var d = new RangeDecoder(bytes.AsSpan(0, bytes.Length - 1));
            foreach (var _ in symbols)
            {
                uint value = d.Peek(bits);
                int s = Array.FindLastIndex(c, v - 1, v, x => x <= value);
                d.Consume(c[s], c[s + 1] - c[s]);
            }
        });
        Assert.Throws<CompressedDataException>(() => new RangeDecoder(new byte[3]));
    }

    [Fact]
    public void ArgumentsOutsideTheTableAreRefused()
    {
        var e = new RangeEncoder();
        Assert.Throws<ArgumentOutOfRangeException>(() => e.Encode(0, 0, 8));          // empty symbol
        Assert.Throws<ArgumentOutOfRangeException>(() => e.Encode(250, 10, 8));        // past the total
        Assert.Throws<ArgumentOutOfRangeException>(() => e.Encode(0, 1, 25));         // total too large for the coder
        Assert.Throws<ArgumentOutOfRangeException>(() => e.EncodeBits(4, 2));          // 4 needs 3 bits
    }

    static double Gaussian(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
