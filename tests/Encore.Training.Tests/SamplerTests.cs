using Encore.Training.Data;
using Encore.Training.Objectives;

namespace Encore.Training.Tests;

public class SamplerTests
{
    static (int[] S, int[] T) RandomLengths(int n, ulong seed)
    {
        var rng = new DataRng(seed);
        return (Enumerable.Range(0, n).Select(_ => 1 + rng.NextInt(200)).ToArray(), Enumerable.Range(0, n).Select(_ => 1 + rng.NextInt(60)).ToArray());
    }

    [Fact]
    public void EveryExampleOncePerEpochWithinBudget()
    {
        var (s, t) = RandomLengths(3000, 1);
        var options = new BucketingOptions { MaxTokens = 2000, Seed = 4 };
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var plan = LengthBucketSampler.Plan(s, t, options, epoch);
            Assert.Equal(Enumerable.Range(0, 3000), plan.SelectMany(b => b).Order());
            foreach (var b in plan)
                Assert.True(b.Length * (b.Max(i => s[i]) + b.Max(i => t[i])) <= 2000);
        }
    }

    [Fact]
    public void DeterministicBySeedAndDifferentByEpochAndSeed()
    {
        var (s, t) = RandomLengths(1000, 2);
        var o = new BucketingOptions { MaxTokens = 1500, Seed = 11 };
        var a = LengthBucketSampler.Plan(s, t, o, 0);
        Assert.Equal(a, LengthBucketSampler.Plan(s, t, o, 0));
        Assert.NotEqual(a, LengthBucketSampler.Plan(s, t, o, 1));
        Assert.NotEqual(a, LengthBucketSampler.Plan(s, t, o with { Seed = 12 }, 0));
        // Batch order is shuffled: the first batch is not simply the shortest examples.
        Assert.NotEqual(a.OrderBy(b => s[b[0]]).Select(b => b[0]), a.Select(b => b[0]));
    }

    [Fact]
    public void SubsetAndSequenceCapAreRespected()
    {
        var (s, t) = RandomLengths(500, 3);
        var subset = Enumerable.Range(0, 500).Where(i => i % 3 == 0).ToArray();
        var plan = LengthBucketSampler.Plan(s, t, new BucketingOptions { MaxTokens = 100_000, MaxSequences = 16 }, 0, subset);
        Assert.Equal(subset, plan.SelectMany(b => b).Order());
        Assert.All(plan, b => Assert.True(b.Length <= 16));
        Assert.Equal((subset.Length + 15) / 16, plan.Count);
    }

    [Fact]
    public void SortsByTheMoreVariedLengthThenTheOtherUpAndDown()
    {
        // T varies more than S: groups T = 5, 7, 9 in order, S ascending in the first and third, descending in the second.
        int[] s = [1, 2, 1, 2, 1, 2], t = [5, 5, 9, 9, 7, 7];
        Assert.Equal([0, 1, 5, 4, 2, 3], LengthBucketSampler.SortOrder([5, 3, 1, 0, 2, 4], s, t));
        // With the roles swapped the source leads.
        Assert.Equal([0, 1, 5, 4, 2, 3], LengthBucketSampler.SortOrder([5, 3, 1, 0, 2, 4], t, s));
    }

    [Fact]
    public void AnExampleOverTheBudgetIsAnError()
    {
        var e = Assert.Throws<ArgumentException>(() => LengthBucketSampler.Plan([5, 50], [5, 60], new BucketingOptions { MaxTokens = 100 }, 0));
        Assert.Contains("example 1 alone has 110 tokens", e.Message);
    }

    [Fact]
    public void PaddingFractionOfAHandExample()
    {
        // Batch {0, 1}: S = 4, T = 3, padded 2·7 = 14, real (4+3) + (2+1) = 10.
        // Batch {2}: padded 1·(5+5) = 10, real 10. Total: (24 − 20) / 24 = 1/6.
        int[] s = [4, 2, 5], t = [3, 1, 5];
        var stats = PaddingStats.Measure([[0, 1], [2]], s, t);
        Assert.Equal(new PaddingStats(2, 3, 20, 24), stats);
        Assert.Equal(1.0 / 6, stats.PaddingFraction, 12);
        // The same figure from collated batches via Batch.RealTokens / PaddedTokens.
        var data = TokenizedDataset.FromIds([[7, 7, 7], [7], [7, 7, 7, 7]], [[8, 8], [], [8, 8, 8, 8]]);
        var batches = new TrainingBatches(data, new Seq2SeqObjective(new Seq2SeqOptions()), new BucketingOptions { MaxTokens = 14 });
        Assert.Equal(s, batches.SourceLengths);
        Assert.Equal(t, batches.InputLengths);
        var b01 = batches.MakeBatch([0, 1], 0);
        var b2 = batches.MakeBatch([2], 0);
        Assert.Equal(1.0 / 6, (double)(b01.PaddedTokens + b2.PaddedTokens - b01.RealTokens - b2.RealTokens) / (b01.PaddedTokens + b2.PaddedTokens), 12);
        // Under the 14-token budget the sampler pairs 0 and 1 (sorted by T, the longer-varying length: 1, 0, 2; 1+0 costs 14, adding 2 would cost 30).
        Assert.Equal([[0, 1], [2]], batches.Plan(0).Select(b => b.Order().ToArray()).OrderBy(b => b[0]));
    }

    [Fact]
    public void CollatedBatchesMatchThePlanAndPad()
    {
        var data = TokenizedDataset.FromIds([[5, 6, 7], [8]], [[9], [10, 11]]);
        var batch = new TrainingBatches(data, new Seq2SeqObjective(new Seq2SeqOptions { PadId = 0, EosId = 1, DecoderStartId = 0 }), new BucketingOptions()).MakeBatch([0, 1], 0);
        Assert.Equal(2, batch.Size);
        Assert.Equal(4, batch.SourceLength);
        Assert.Equal([5, 6, 7, 1, 8, 1, 0, 0], batch.Source);
        Assert.Equal([4, 2], batch.SourceLengths);
        Assert.Equal(3, batch.InputLength);
        Assert.Equal([0, 9, 0, 0, 10, 11], batch.Inputs);
        Assert.Equal([9, 1, -100, 10, 11, 1], batch.Targets);
        Assert.Equal([2, 3], batch.InputLengths);
        Assert.Equal([0, 1], batch.ExampleIndices);
        Assert.Equal(5, batch.LossTokens);
    }

    public static TheoryData<string, int> Bundled => new()
    {
        { BundledData.WordNetTrain, 4096 },
        { BundledData.LongInputTrain, 4096 },
    };

    [Theory]
    [MemberData(nameof(Bundled))]
    public void BucketedPaddingOnBundledDataIsUnderTenPercent(string file, int budget)
    {
        var tok = TestData.Tokenizer;
        var data = TokenizedDataset.LoadPairs(TestData.Path(file), tok);
        var objective = new Seq2SeqObjective(new Seq2SeqOptions { PadId = tok.PadId!.Value, EosId = tok.EosId!.Value, DecoderStartId = tok.PadId!.Value });
        var batches = new TrainingBatches(data, objective, new BucketingOptions { MaxTokens = budget, Seed = 1 });
        var report = batches.MeasurePadding();
        Console.WriteLine($"{file}: {data.Count} examples, budget {budget}: bucketed {report.Bucketed.PaddingFraction:P2} over {report.Bucketed.Batches} batches, naive {report.Naive.PaddingFraction:P2} (batch size {report.NaiveBatchSize})");
        Assert.True(report.Bucketed.PaddingFraction < 0.10, $"bucketed padding {report.Bucketed.PaddingFraction:P2}");
        Assert.True(report.Naive.PaddingFraction > report.Bucketed.PaddingFraction);
        Assert.Equal(data.Count, report.Bucketed.Sequences);
        Assert.Equal(data.Count, report.Naive.Sequences);
        // The collated batches agree with the length-only measure.
        long real = 0, padded = 0;
        foreach (var b in batches.Epoch(0))
        {
            Assert.True(b.PaddedTokens <= budget);
            real += b.RealTokens;
            padded += b.PaddedTokens;
        }
        Assert.Equal(report.Bucketed.RealTokens, real);
        Assert.Equal(report.Bucketed.PaddedTokens, padded);
    }
}
