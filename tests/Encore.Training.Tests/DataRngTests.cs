using Encore.Training.Data;

namespace Encore.Training.Tests;

public class DataRngTests
{
    [Fact]
    public void SplitMix64MatchesTheReferenceOutputs()
    {
        // SplitMix64 from state 0: the published reference sequence (also tools/data/splitmix.py).
        var rng = new DataRng(0);
        Assert.Equal(0xE220A8397B1DCDAFUL, rng.NextUInt64());
        Assert.Equal(0x6E789E6AA1B965F4UL, rng.NextUInt64());
        Assert.Equal(0x06C45D188009454FUL, rng.NextUInt64());
    }

    [Fact]
    public void IntegersAndShufflesMatchThePythonGenerator()
    {
        // Printed by tools/data/splitmix.py: SplitMix64(42).next_int(10) ×10 and SplitMix64(7).shuffle(range(10)).
        var rng = new DataRng(42);
        Assert.Equal([3, 1, 8, 4, 0, 2, 5, 8, 5, 4], Enumerable.Range(0, 10).Select(_ => rng.NextInt(10)).ToArray());
        var items = Enumerable.Range(0, 10).ToArray();
        new DataRng(7).Shuffle(items);
        Assert.Equal([8, 1, 5, 9, 0, 4, 3, 2, 6, 7], items);
    }

    [Fact]
    public void StreamsDifferBySeedAndKeys()
    {
        ulong a = DataRng.For(1, 2, 3).NextUInt64();
        Assert.Equal(a, DataRng.For(1, 2, 3).NextUInt64());
        Assert.NotEqual(a, DataRng.For(1, 2, 4).NextUInt64());
        Assert.NotEqual(a, DataRng.For(1, 3, 3).NextUInt64());
        Assert.NotEqual(a, DataRng.For(2, 2, 3).NextUInt64());
    }

    [Fact]
    public void NextIntIsRoughlyUniform()
    {
        var rng = new DataRng(5);
        var counts = new int[6];
        for (int i = 0; i < 60_000; i++) counts[rng.NextInt(6)]++;
        Assert.All(counts, c => Assert.InRange(c, 9_600, 10_400));
    }

    [Fact]
    public void SplitIsDeterministicDisjointAndComplete()
    {
        var data = TokenizedDataset.FromIds(Enumerable.Range(0, 101).Select(i => new[] { i }).ToList());
        var a = data.Split(0.1, 9);
        var b = data.Split(0.1, 9);
        Assert.Equal(a.Train, b.Train);
        Assert.Equal(a.Validation, b.Validation);
        Assert.Equal(10, a.Validation.Length);
        Assert.Equal(Enumerable.Range(0, 101), a.Train.Concat(a.Validation).Order());
        Assert.NotEqual(a.Validation, data.Split(0.1, 10).Validation);
        Assert.Equal(7, data.Split(7, 9).Validation.Length);
        Assert.Single(TokenizedDataset.FromIds([[1], [2], [3]]).Split(0.01, 1).Validation);
    }
}
