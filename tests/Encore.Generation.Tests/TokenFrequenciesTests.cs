using Encore.Generation.Compression;

namespace Encore.Generation.Tests;

public class TokenFrequenciesTests
{
    public static TheoryData<string> LogitCases => ["gaussian", "peaked", "flat", "nan", "infinite", "huge"];

    static float[] Logits(string kind, int v, Random rng) => kind switch
    {
        "gaussian" => Enumerable.Range(0, v).Select(_ => (float)(rng.NextDouble() * 20 - 10)).ToArray(),
        "peaked" => Enumerable.Range(0, v).Select(i => i == 17 ? 80f : (float)rng.NextDouble()).ToArray(),
        "flat" => new float[v],
        "nan" => Enumerable.Range(0, v).Select(i => i % 3 == 0 ? float.NaN : (float)rng.NextDouble()).ToArray(),
        "infinite" => Enumerable.Range(0, v).Select(i => i % 5 == 0 ? float.NegativeInfinity : i == 7 ? float.PositiveInfinity : 0f).ToArray(),
        _ => Enumerable.Range(0, v).Select(i => i % 2 == 0 ? 3e38f : -3e38f).ToArray(),
    };

    [Theory]
    [MemberData(nameof(LogitCases))]
    public void EveryIdGetsAtLeastOneAndTheTableSumsToItsTotal(string kind)
    {
        var rng = new Random(kind.Length);
        foreach (int v in new[] { 2, 320, 2048, 50_000 })
        {
            int bits = TokenFrequencies.TotalBitsFor(v);
            var table = new TokenFrequencies(v, bits);
            table.Set(Logits(kind, v, rng));
            Assert.Equal(0u, table.Cumulative[0]);
            Assert.Equal(1L << bits, (long)table.Cumulative[v]);
            for (int i = 0; i < v; i++) Assert.True(table.Frequency(i) >= 1, $"{kind}, V={v}: id {i} has frequency 0");
            for (uint value = 0; value < 1u << bits; value += 997)
            {
                int id = table.Find(value);
                Assert.InRange(value, table.Cumulative[id], table.Cumulative[id + 1] - 1);
            }
        }
    }

    [Fact]
    public void FrequenciesFollowTheSoftmaxAndTheSameLogitsGiveTheSameTable()
    {
        var rng = new Random(5);
        const int v = 2048;
        var logits = Enumerable.Range(0, v).Select(_ => (float)(rng.NextDouble() * 12)).ToArray();
        var a = new TokenFrequencies(v, 19);
        var b = new TokenFrequencies(v, 19);
        a.Set(logits);
        b.Set(logits.ToArray());
        Assert.True(a.Cumulative.SequenceEqual(b.Cumulative));
        double max = logits.Max(), z = logits.Sum(x => Math.Exp(x - max));
        for (int i = 0; i < v; i++)
        {
            double p = Math.Exp(logits[i] - max) / z;
            Assert.Equal(p, a.Probability(i), 1e-12);
            // floor 1 + ⌊p · (T − V)⌋, the top id also holding the rounding leftover (< V).
            Assert.InRange(a.Frequency(i), 1 + Math.Floor(p * ((1 << 19) - v)) - 1, 1 + p * ((1 << 19) - v) + v);
        }
    }

    [Fact]
    public void ExpAgreesWithMathExpToNearlyFullPrecision()
    {
        for (double x = -699.9; x <= 0; x += 0.0137)
        {
            double expected = Math.Exp(x), actual = TokenFrequencies.Exp(x);
            Assert.True(Math.Abs(actual - expected) <= 1e-13 * expected, $"e^{x}: {actual} against {expected}");
        }
        Assert.Equal(1.0, TokenFrequencies.Exp(0));
    }

    [Fact]
    public void TheTotalIsTheCodersLargestWhileItLeavesHalfForTheProbabilities()
    {
        Assert.Equal(24, TokenFrequencies.TotalBitsFor(2));
        Assert.Equal(24, TokenFrequencies.TotalBitsFor(152_064));
        Assert.Equal(24, TokenFrequencies.TotalBitsFor(1 << 23));
        Assert.Throws<ArgumentException>(() => TokenFrequencies.TotalBitsFor((1 << 23) + 1));
        Assert.Throws<ArgumentException>(() => new TokenFrequencies(2048, 11));
    }
}
