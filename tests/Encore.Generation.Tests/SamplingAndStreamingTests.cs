namespace Encore.Generation.Tests;

public class SamplingAndStreamingTests
{
    static readonly GenerationOptions Sample = new() { DoSample = true, Temperature = 1.3f, MaxNewTokens = 16, EosTokenIds = [], Seed = 1234 };

    [Fact]
    public void StepLogSumExpIsTheBinary64OneToAMicro()
    {
        var rng = new Random(3);
        foreach (int n in new[] { 1, 3, 17, 4097, 32128 })
        {
            var row = new float[n];
            for (int i = 0; i < n; i++) row[i] = (float)(8 * rng.NextDouble() - 4);
            row[rng.Next(n)] = 30f;
            if (n > 3) row[1] = float.NegativeInfinity;
            double exact = Sampling.LogSumExp(row), step = Sampling.StepLogSumExp(row);
            Assert.True(Math.Abs(step - exact) <= 1e-6 * Math.Max(1, Math.Abs(exact)), $"n={n}: {step} against {exact}");
        }
        Assert.Equal(double.NegativeInfinity, Sampling.StepLogSumExp([float.NegativeInfinity, float.NegativeInfinity]));
        Assert.True(double.IsNaN(Sampling.StepLogSumExp([1f, float.NaN])));
    }

    [Fact]
    public void SameSeedSameSamplesDifferentSeedsDiffer()
    {
        using var m = TinyModels.EncDec();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var a = gen.Generate("The quick brown fox", Sample);
        var b = gen.Generate("The quick brown fox", Sample);
        var c = gen.Generate("The quick brown fox", Sample with { Seed = 99 });
        Assert.Equal(a.Tokens, b.Tokens);
        Assert.NotEqual(a.Tokens, c.Tokens);
        var greedy = gen.Generate("The quick brown fox", Sample with { DoSample = false });
        Assert.NotEqual(greedy.Tokens, a.Tokens);
    }

    [Fact]
    public void ReturnSequencesAreIndependentSamples()
    {
        using var m = TinyModels.Decoder();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var r = gen.Generate("The", Sample with { NumReturnSequences = 3 });
        Assert.Equal(3, r.Sequences.Count);
        Assert.Equal(3, r.Sequences.Select(s => string.Join(",", s.Tokens)).Distinct().Count());
        // The first sample is the one a single-sequence request with the same seed draws.
        Assert.Equal(gen.Generate("The", Sample).Tokens, r.Sequences[0].Tokens);
    }

    [Fact]
    public void DrawFollowsTheDistribution()
    {
        float[] logits = [MathF.Log(0.1f), MathF.Log(0.6f), float.NegativeInfinity, MathF.Log(0.3f)];
        var rng = new Xoshiro256(42);
        var counts = new int[4];
        for (int i = 0; i < 20000; i++) counts[Sampling.Draw(logits, rng)]++;
        Assert.Equal(0, counts[2]);
        Assert.InRange(counts[0], 1800, 2200);
        Assert.InRange(counts[1], 11700, 12300);
        Assert.InRange(counts[3], 5700, 6300);
    }

    [Fact]
    public void XoshiroMatchesTheReferenceSequence()
    {
        // Expected values from a direct Python transcription of xoshiro256** and SplitMix64 (Vigna's
        // reference C); SplitMix64 from 0 starts with the documented 0xE220A8397B1DCDAF.
        var r = new Xoshiro256(0);
        Assert.Equal(0x99EC5F36CB75F2B4UL, r.NextUInt64());
        Assert.Equal(0xBF6E1F784956452AUL, r.NextUInt64());
        Assert.Equal(0x1A5F849D4933E6E0UL, r.NextUInt64());
        var s = new Xoshiro256(12345);
        Assert.Equal(0xBE6A36374160D49BUL, s.NextUInt64());
        Assert.Equal(0x214AAA0637A688C6UL, s.NextUInt64());
        double d = new Xoshiro256(0).NextDouble();
        Assert.Equal((0x99EC5F36CB75F2B4UL >> 11) / 9007199254740992.0, d);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public async Task StreamedPiecesConcatenateToTheText(bool decoderOnly, bool withStop)
    {
        using var m = decoderOnly ? (Encore.Models.LanguageModel)TinyModels.Decoder() : TinyModels.EncDec();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var o = new GenerationOptions { MaxNewTokens = 24, EosTokenIds = [] };
        if (withStop)
        {
            string free = gen.Generate("naïve café", o).Text;
            o = o with { StopStrings = [free.Substring(free.Length / 2, 3)] };
        }
        var full = gen.Generate("naïve café", o);
        var pieces = new List<GenerationChunk>();
        await foreach (var c in gen.StreamAsync("naïve café", o)) pieces.Add(c);
        Assert.Equal(full.Text, string.Concat(pieces.Select(p => p.Text)));
        Assert.Equal(full.Tokens, pieces.Where(p => p.Token >= 0).Select(p => p.Token));
        // Every piece is valid text on its own: no lone surrogate, no replacement char the full text lacks.
        foreach (var p in pieces)
            Assert.False(p.Text.Length > 0 && (char.IsHighSurrogate(p.Text[^1]) || char.IsLowSurrogate(p.Text[0])));
        if (withStop) Assert.Equal(FinishReason.StopString, full.Sequences[0].Finish);
    }

    [Fact]
    public async Task MultiByteCharactersAreNeverSplit()
    {
        // "日" is three bytes in UTF-8, each its own byte-level token when fed one by one.
        var tok = TinyModels.Tokenizer;
        var bytes = "日本".Select(c => c.ToString()).SelectMany(s => tok.Encode(s, false)).ToArray();
        var dec = tok.CreateStreamingDecoder();
        var pieces = bytes.Select(dec.Push).ToList();
        pieces.Add(dec.Flush());
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
        Assert.Equal("日本", string.Concat(pieces));
        await Task.CompletedTask;
    }

    [Fact]
    public async Task CancellationStopsWithinOneStep()
    {
        using var m = TinyModels.EncDec();
        var gen = new Generator(m, TinyModels.Tokenizer);
        using var cts = new CancellationTokenSource();
        int received = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var c in gen.StreamAsync("The quick", new GenerationOptions { MaxNewTokens = 50, EosTokenIds = [] }, cts.Token))
            {
                received++;
                if (received == 2) cts.Cancel();
            }
        });
        Assert.Equal(2, received);
    }

    [Fact]
    public void CancelledBatchThrows()
    {
        using var m = TinyModels.Decoder();
        var gen = new Generator(m, TinyModels.Tokenizer);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => gen.Generate(["a", "bb"], new GenerationOptions(), cts.Token));
        Assert.ThrowsAny<OperationCanceledException>(() => gen.Generate(["a"], new GenerationOptions { NumBeams = 2 }, cts.Token));
    }

    [Fact]
    public void StreamingRefusesBeams()
    {
        using var m = TinyModels.Decoder();
        var gen = new Generator(m, TinyModels.Tokenizer);
        Assert.Throws<ArgumentException>(() => gen.StreamAsync("a", new GenerationOptions { NumBeams = 2 }).GetAsyncEnumerator().MoveNextAsync().AsTask().GetAwaiter().GetResult());
    }
}
