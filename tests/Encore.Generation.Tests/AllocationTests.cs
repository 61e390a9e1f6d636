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
        using var session = GenerationSession.Create(m, prompts, 1, warmup + measured + 2, 0, kvCache);
        // No EOS: every row runs the full length, so every step is a steady-state step.
        var ctx = new DecodingContext(session, prompts.Length, [], new StopCriteria([], [], warmup + measured + 2, null), 0);
        long before = 0, after = 0;
        int events = 0;
        foreach (var _ in new GreedyStrategy().Run(ctx, default))
        {
            events++;
            if (events == warmup * prompts.Length) before = GC.GetAllocatedBytesForCurrentThread();
            if (events == (warmup + measured) * prompts.Length) after = GC.GetAllocatedBytesForCurrentThread();
        }
        Assert.True(after > 0);
        Assert.True(after - before == 0, $"{measured} greedy steps allocated {after - before} bytes");
    }
}
