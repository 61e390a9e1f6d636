using Encore.Models;

namespace Encore.Generation.Tests;

/// <summary>Greedy, sampling and beam search with <see cref="GenerationOptions.KvCacheDType"/> int8, against f32.</summary>
public class Int8CacheGenerationTests
{
    /// <summary>
    /// Most a token's log-probability may move: |Δ log p| ≤ 2·max|Δlogit|, and the model tests bound
    /// the logits' move by 0.01 on models of this initialization (Encore.Models.Tests.Int8CacheTests).
    /// </summary>
    const double LogProbBoundPerToken = 0.02;

    // The library's initialization (no projection scaling, unlike TinyModels.EncDec): the regime where
    // the logit bound above was measured.
    static LanguageModel Create(string kind) => kind == "encdec"
        ? new EncoderDecoderModel(Presets.Get("tiny-encdec") with { VocabSize = TinyModels.Tokenizer.VocabSize, TieEmbeddings = false }, 7)
        : TinyModels.Decoder();

    public static TheoryData<string, string> Cases
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var kind in new[] { "encdec", "decoder" })
                foreach (var strategy in new[] { "greedy", "sampling", "beam" }) data.Add(kind, strategy);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Int8CacheGivesTheF32SequencesWithScoresWithinTheBound(string kind, string strategy)
    {
        using var m = Create(kind);
        var generator = new Generator(m, TinyModels.Tokenizer);
        var rng = new Random(17);
        // One length for the decoder-only prompts, so they share a session (and its cache) as a batch.
        var prompts = Enumerable.Range(0, 6).Select(_ => Enumerable.Range(0, 7).Select(_ => rng.Next(3, 200)).ToArray()).ToArray();
        var o = strategy switch
        {
            "greedy" => new GenerationOptions { MaxNewTokens = 10, BadWordsIds = [1] },
            "sampling" => new GenerationOptions { MaxNewTokens = 10, BadWordsIds = [1], DoSample = true, Temperature = 0.7f, Seed = 5, NumReturnSequences = 2 },
            _ => new GenerationOptions { MaxNewTokens = 10, BadWordsIds = [1], NumBeams = 3, NumReturnSequences = 2 },
        };
        var f32 = generator.GenerateIds(prompts, o).SelectMany(r => r.Sequences).ToArray();
        var int8 = generator.GenerateIds(prompts, o with { KvCacheDType = KvCacheDType.Int8 }).SelectMany(r => r.Sequences).ToArray();
        Assert.Equal(f32.Length, int8.Length);
        int same = 0;
        bool moved = false;
        for (int i = 0; i < f32.Length; i++)
        {
            if (!f32[i].Tokens.SequenceEqual(int8[i].Tokens)) continue;
            same++;
            double diff = Math.Abs(f32[i].Score - int8[i].Score);
            Assert.True(diff <= LogProbBoundPerToken * f32[i].Tokens.Length, $"sequence {i}: scores {f32[i].Score} and {int8[i].Score} differ by {diff:G3}");
            moved |= diff > 0;
        }
        Assert.True(same >= f32.Length * 2 / 3, $"{kind} {strategy}: only {same} of {f32.Length} sequences agree with f32");
        Assert.True(moved, $"{kind} {strategy}: every score equals f32's exactly: the int8 cache was not used");
    }

    [Fact]
    public void BatchDecoderCacheBytesShrink()
    {
        using var m = TinyModels.EncDec();
        var generator = new Generator(m, TinyModels.Tokenizer);
        using var f32 = new BatchDecoder(generator, 4, 32);
        using var int8 = new BatchDecoder(generator, 4, 32, KvCacheDType.Int8);
        Assert.True(f32.CacheBytes >= 1.8 * int8.CacheBytes, $"{f32.CacheBytes} vs {int8.CacheBytes}");
        int hd = m.Config.HeadDim;
        Assert.Equal(f32.CacheBytes * (hd + 4), int8.CacheBytes * 4L * hd);
    }
}
