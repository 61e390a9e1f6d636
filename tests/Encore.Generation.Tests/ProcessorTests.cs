namespace Encore.Generation.Tests;

public class ProcessorTests
{
    const float Inf = float.NegativeInfinity;

    static float[] Run(ILogitsProcessor p, int[] tokens, int generated, float[] logits)
    {
        var x = (float[])logits.Clone();
        p.Process(tokens, generated, x);
        return x;
    }

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegative()
    {
        var y = Run(new RepetitionPenaltyProcessor(2f), [1, 3, 3], 2, [1f, 4f, -2f, -3f, 5f]);
        Assert.Equal([1f, 2f, -2f, -6f, 5f], y);
    }

    [Fact]
    public void NoRepeatNGramBansCompletions()
    {
        // Bigrams so far: (5,6) (6,5) (5,7) (7,5); the last token 5 was followed by 6 and 7.
        var y = Run(new NoRepeatNGramProcessor(2), [5, 6, 5, 7, 5], 3, new float[8]);
        Assert.Equal([0, 0, 0, 0, 0, 0, Inf, Inf], y);
        // Trigram (5,7,5) and (5,6,5): the prefix (7,5) occurred once, followed by nothing yet; (6,5) → 7.
        var z = Run(new NoRepeatNGramProcessor(3), [5, 6, 5, 7, 6, 5], 3, new float[8]);
        Assert.Equal([0, 0, 0, 0, 0, 0, 0, Inf], z);
        // Too short for an n-gram: nothing banned.
        Assert.Equal(new float[8], Run(new NoRepeatNGramProcessor(4), [5, 5], 1, new float[8]));
    }

    [Fact]
    public void MinNewTokensBansEosUntilReached()
    {
        var p = new MinNewTokensProcessor(2, [1, 3]);
        Assert.Equal([0f, Inf, 2f, Inf], Run(p, [9, 9, 9], 1, [0f, 1f, 2f, 3f]));
        Assert.Equal([0f, 1f, 2f, 3f], Run(p, [9, 9, 9], 2, [0f, 1f, 2f, 3f]));
    }

    [Fact]
    public void BannedTokensAreNeverChosen()
    {
        Assert.Equal([0f, Inf, 2f, Inf], Run(new BannedTokensProcessor([1, 3, 99]), [], 0, [0f, 1f, 2f, 3f]));
    }

    [Fact]
    public void ForcedTokensOnlyAtTheirStep()
    {
        var bos = ForcedTokenProcessor.First(2);
        Assert.Equal([Inf, Inf, 0f, Inf], Run(bos, [0], 0, [5f, 1f, 2f, 3f]));
        Assert.Equal([5f, 1f, 2f, 3f], Run(bos, [0, 2], 1, [5f, 1f, 2f, 3f]));
        var eos = ForcedTokenProcessor.Last(1, maxNewTokens: 4);
        Assert.Equal([5f, 1f, 2f, 3f], Run(eos, [0, 2, 2], 2, [5f, 1f, 2f, 3f]));
        Assert.Equal([Inf, 0f, Inf, Inf], Run(eos, [0, 2, 2, 2], 3, [5f, 1f, 2f, 3f]));
    }

    [Fact]
    public void TemperatureDivides()
    {
        Assert.Equal([1f, -2f, 4f], Run(new TemperatureWarper(0.5f), [], 0, [0.5f, -1f, 2f]));
    }

    [Fact]
    public void TopKKeepsTheKLargestAndTies()
    {
        Assert.Equal([Inf, 3f, Inf, 5f], Run(new TopKWarper(2), [], 0, [1f, 3f, 2f, 5f]));
        Assert.Equal([Inf, 3f, 3f, 5f], Run(new TopKWarper(2), [], 0, [1f, 3f, 3f, 5f]));
        Assert.Equal([1f, 3f, 2f, 5f], Run(new TopKWarper(0), [], 0, [1f, 3f, 2f, 5f]));
    }

    [Fact]
    public void TopPKeepsTheSmallestNucleus()
    {
        // Probabilities 0.5, 0.25, 0.125, 0.125 (as logs).
        float[] x = [MathF.Log(0.125f), MathF.Log(0.5f), MathF.Log(0.125f), MathF.Log(0.25f)];
        var y = Run(new TopPWarper(0.7f), [], 0, x);
        Assert.Equal([Inf, x[1], Inf, x[3]], y);
        // p below the top probability keeps the top token alone.
        Assert.Equal([Inf, x[1], Inf, Inf], Run(new TopPWarper(0.3f), [], 0, x));
        // 0.75 is reached exactly by two tokens.
        Assert.Equal([Inf, x[1], Inf, x[3]], Run(new TopPWarper(0.75f), [], 0, x));
    }

    [Fact]
    public void MinPCutsRelativeToTheTop()
    {
        float[] x = [MathF.Log(0.125f), MathF.Log(0.5f), MathF.Log(0.125f), MathF.Log(0.25f)];
        // Threshold 0.3 × 0.5 = 0.15: the two 0.125 tokens go.
        Assert.Equal([Inf, x[1], Inf, x[3]], Run(new MinPWarper(0.3f), [], 0, x));
        Assert.Equal(x, Run(new MinPWarper(0.2f), [], 0, x));
    }

    [Fact]
    public void FromOptionsBuildsOnlyWhatIsAsked()
    {
        Assert.Empty(LogitsProcessors.FromOptions(new GenerationOptions(), [1]));
        Assert.Empty(LogitsProcessors.WarpersFromOptions(new GenerationOptions { TopK = 5 }));
        var all = LogitsProcessors.FromOptions(new GenerationOptions
        {
            RepetitionPenalty = 1.2f, NoRepeatNgramSize = 3, BadWordsIds = [4], MinNewTokens = 2, ForcedBosTokenId = 5, ForcedEosTokenId = 1,
        }, [1]);
        Assert.Equal([typeof(RepetitionPenaltyProcessor), typeof(NoRepeatNGramProcessor), typeof(BannedTokensProcessor), typeof(MinNewTokensProcessor), typeof(ForcedTokenProcessor), typeof(ForcedTokenProcessor)],
            all.Select(p => p.GetType()));
        var warpers = LogitsProcessors.WarpersFromOptions(new GenerationOptions { DoSample = true, Temperature = 0.7f, TopK = 5, TopP = 0.9f, MinP = 0.1f });
        Assert.Equal([typeof(TemperatureWarper), typeof(TopKWarper), typeof(TopPWarper), typeof(MinPWarper)], warpers.Select(p => p.GetType()));
    }

    [Fact]
    public void StrategiesFromOptions()
    {
        Assert.IsType<GreedyStrategy>(DecodingStrategies.FromOptions(new GenerationOptions()));
        Assert.IsType<GreedyStrategy>(DecodingStrategies.FromOptions(new GenerationOptions { Temperature = 0.5f }));
        // Temperature 0 means greedy even when sampling is asked for.
        Assert.IsType<GreedyStrategy>(DecodingStrategies.FromOptions(new GenerationOptions { DoSample = true, Temperature = 0 }));
        Assert.IsType<SamplingStrategy>(DecodingStrategies.FromOptions(new GenerationOptions { DoSample = true, Seed = 1 }));
        Assert.IsType<BeamSearchStrategy>(DecodingStrategies.FromOptions(new GenerationOptions { NumBeams = 3 }));
    }

    [Theory]
    [InlineData("max")]
    [InlineData("min")]
    [InlineData("temp")]
    [InlineData("topp")]
    [InlineData("minp")]
    [InlineData("beams")]
    [InlineData("return")]
    [InlineData("rep")]
    [InlineData("stop")]
    [InlineData("beamsample")]
    public void BadOptionsFailNamingTheOption(string which)
    {
        var (o, name) = which switch
        {
            "max" => (new GenerationOptions { MaxNewTokens = 0 }, "max_new_tokens"),
            "min" => (new GenerationOptions { MinNewTokens = 100 }, "min_new_tokens"),
            "temp" => (new GenerationOptions { Temperature = -1 }, "temperature"),
            "topp" => (new GenerationOptions { TopP = 0 }, "top_p"),
            "minp" => (new GenerationOptions { MinP = 2 }, "min_p"),
            "beams" => (new GenerationOptions { NumBeams = 0 }, "num_beams"),
            "return" => (new GenerationOptions { NumReturnSequences = 2 }, "num_return_sequences"),
            "rep" => (new GenerationOptions { RepetitionPenalty = 0 }, "repetition_penalty"),
            "stop" => (new GenerationOptions { StopStrings = [""] }, "stop strings"),
            _ => (new GenerationOptions { NumBeams = 2, DoSample = true }, "beam sampling"),
        };
        var e = Assert.Throws<ArgumentException>(() => o.Validate());
        Assert.Contains(name, e.Message);
    }
}
