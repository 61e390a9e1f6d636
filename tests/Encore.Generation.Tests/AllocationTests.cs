namespace Encore.Generation.Tests;

public class AllocationTests
{
    [Theory]
    [InlineData(true, Encore.Models.KvCacheDType.F32)]
    [InlineData(false, Encore.Models.KvCacheDType.F32)]
    [InlineData(true, Encore.Models.KvCacheDType.Int8)]
    [InlineData(false, Encore.Models.KvCacheDType.Int8)]
    public void SteadyStateGreedyDecodingAllocatesNothing(bool encoderDecoder, Encore.Models.KvCacheDType kvCache)
    {
        const int warmup = 4, measured = 64;
        using var m = encoderDecoder ? (Encore.Models.LanguageModel)TinyModels.EncDec() : TinyModels.Decoder();
        var prompts = new[] { new[] { 5, 6, 7, 8 }, new[] { 9, 10, 11, 12 } };
        int max = warmup + 2 * measured + 2;
        using var session = GenerationSession.Create(m, prompts, 1, max, 0, kvCache);
        // No EOS: every row runs the full length, so every step is a steady-state step.
        var (first, second) = GreedyWindows(session, prompts.Length, max, warmup, measured);
        Assert.True(Math.Min(first, second) == 0, $"two windows of {measured} greedy steps allocated {first} and {second} bytes");
    }

    /// <summary>
    /// Bytes allocated by greedy decoding of <paramref name="session"/> (no EOS, so every step is a steady-state
    /// one) in two windows of <paramref name="measured"/> steps after <paramref name="warmup"/>: a steady-state
    /// allocation shows in both, while a one-off of the runtime's (code promoted by tiered compilation while
    /// other tests load the machine) can fall in one.
    /// </summary>
    internal static (long First, long Second) GreedyWindows(GenerationSession session, int requests, int max, int warmup, int measured)
    {
        var ctx = new DecodingContext(session, requests, [], new StopCriteria([], [], max, null), 0);
        var marks = new long[3];
        int events = 0;
        foreach (var _ in new GreedyStrategy().Run(ctx, default))
        {
            events++;
            for (int i = 0; i < 3; i++)
                if (events == (warmup + i * measured) * requests) marks[i] = GC.GetAllocatedBytesForCurrentThread();
        }
        Assert.True(marks[2] > 0);
        return (marks[1] - marks[0], marks[2] - marks[1]);
    }
}

public class SpeculativeAllocationTests
{
    [Theory]
    [InlineData(true, "lookup")]
    [InlineData(false, "lookup")]
    [InlineData(true, "draft")]
    [InlineData(false, "draft")]
    public void SteadyStateSpeculativeGreedyDecodingAllocatesNothing(bool encoderDecoder, string method)
    {
        const int warmup = 40, measured = 80;
        using var m = encoderDecoder ? (Encore.Models.LanguageModel)TinyModels.EncDec() : TinyModels.Decoder();
        int[] prompt = [5, 6, 7, 8, 5, 6, 7, 8];
        int max = warmup + 2 * measured + 8;
        var o = new GenerationOptions { MaxNewTokens = max, EosTokenIds = [], PromptLookup = method == "lookup", DraftModel = method == "draft" ? m : null };
        var strategy = new SpeculativeStrategy(m, o, 0, [], 0, 0);
        using var session = GenerationSession.Create(m, [prompt], 1, max, 0);
        var ctx = new DecodingContext(session, 1, [], new StopCriteria([], [], max, null), 0);
        // Two windows: a steady-state allocation shows in both, while a one-off of the runtime's (code
        // promoted by tiered compilation while other tests load the machine) can fall in one.
        var marks = new long[3];
        int events = 0;
        foreach (var _ in strategy.Run(ctx, default))
        {
            events++;
            for (int i = 0; i < 3; i++)
                if (events == warmup + i * measured) marks[i] = GC.GetAllocatedBytesForCurrentThread();
        }
        Assert.True(marks[2] > 0);
        Assert.True(strategy.Stats.Drafted > 0);
        long first = marks[1] - marks[0], second = marks[2] - marks[1];
        Assert.True(Math.Min(first, second) == 0, $"two windows of {measured} speculative greedy tokens allocated {first} and {second} bytes ({strategy.Stats})");
    }
}

public class SuperposedAllocationTests
{
    [Fact]
    public void SteadyStateSuperposedStepsAllocateNothing()
    {
        const int vocab = 64, warmup = 8, measured = 64;
        int max = warmup + 2 * measured + 4;
        // Logits that change from step to step, so drafts are replaced by continuations of one another.
        var rng = new Random(3);
        var logits = Enumerable.Range(0, 7).Select(_ => Enumerable.Range(0, vocab).Select(_ => (float)rng.NextDouble() * 4).ToArray()).ToArray();
        var stop = new StopCriteria([], [], max, null);
        var d = new SuperposedDecoder(new SequenceState([0], max + 1), new SuperposedOptions { Drafts = 3, Tokens = 9 }, [], stop, vocab, 1);
        var marks = new long[3];
        for (int step = 0; step < warmup + 2 * measured; step++)
        {
            for (int i = 0; i < 3; i++)
                if (step == warmup + i * measured) marks[i] = GC.GetAllocatedBytesForCurrentThread();
            Assert.False(d.Step(logits[step % logits.Length]));
        }
        marks[2] = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(3, d.Alive.Count);
        Assert.Equal(warmup + 2 * measured, d.Alive[0].Seq.GeneratedCount);
        long first = marks[1] - marks[0], second = marks[2] - marks[1];
        // Two windows: a steady-state allocation shows in both, a one-off of the runtime's in one at most.
        Assert.True(Math.Min(first, second) == 0, $"two windows of {measured} superposed steps allocated {first} and {second} bytes");
    }
}

public class EarlyExitAllocationTests
{
    /// <summary>
    /// Greedy steps under early exit allocate nothing either: the exit decisions, the kept states and the
    /// keys of skipped layers use the session's workspace. τ 0 takes the keys-only path for the upper
    /// layers, 1 the plain path with counting, and the values between mix exits within the batch.
    /// </summary>
    [Theory]
    [InlineData(true, 0f)]
    [InlineData(true, 0.9f)]
    [InlineData(true, 1f)]
    [InlineData(false, 0f)]
    [InlineData(false, 0.9f)]
    public void SteadyStateGreedyDecodingWithEarlyExitAllocatesNothing(bool encoderDecoder, float threshold)
    {
        const int warmup = 4, measured = 64;
        using var m = encoderDecoder ? (Encore.Models.LanguageModel)EarlyExitGenerationTests.DeepEncDec() : TinyModels.Decoder();
        var prompts = new[] { new[] { 5, 6, 7, 8 }, new[] { 9, 10, 11, 12 } };
        int max = warmup + 2 * measured + 2;
        using var session = GenerationSession.Create(m, prompts, 1, max, 0, Encore.Models.KvCacheDType.F32, EarlyExitOptions.Both(threshold));
        var (first, second) = AllocationTests.GreedyWindows(session, prompts.Length, max, warmup, measured);
        Assert.True(session.Cache.Exit!.Units > 0);
        Assert.True(Math.Min(first, second) == 0, $"two windows of {measured} greedy steps with early exit at {threshold} allocated {first} and {second} bytes");
    }
}
