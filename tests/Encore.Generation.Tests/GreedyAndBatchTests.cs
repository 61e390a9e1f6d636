using Encore.Models;

namespace Encore.Generation.Tests;

public class GreedyAndBatchTests
{
    static readonly GenerationOptions NoEos = new() { MaxNewTokens = 12, EosTokenIds = [] };

    // The reference: recompute the whole decoder input at every step, no cache, argmax of the last position.
    static (List<int> Tokens, double LogProb) GreedyByRecomputation(EncoderDecoderModel m, int[] source, int steps)
    {
        var dec = new List<int> { m.Config.DecoderStartTokenId };
        double lp = 0;
        for (int i = 0; i < steps; i++)
        {
            using var logits = m.Forward(source, null, dec.ToArray(), 1);
            var row = TinyModels.LastLogProbs(logits)[0];
            int best = 0;
            for (int j = 1; j < row.Length; j++) if (row[j] > row[best]) best = j;
            lp += row[best];
            dec.Add(best);
        }
        return (dec.Skip(1).ToList(), lp);
    }

    static (List<int> Tokens, double LogProb) GreedyByRecomputation(DecoderOnlyModel m, int[] prompt, int steps)
    {
        var ids = new List<int>(prompt);
        double lp = 0;
        for (int i = 0; i < steps; i++)
        {
            using var logits = m.Forward(ids.ToArray(), 1);
            var row = TinyModels.LastLogProbs(logits)[0];
            int best = 0;
            for (int j = 1; j < row.Length; j++) if (row[j] > row[best]) best = j;
            lp += row[best];
            ids.Add(best);
        }
        return (ids.Skip(prompt.Length).ToList(), lp);
    }

    [Fact]
    public void EncoderDecoderGreedyEqualsFullRecomputation()
    {
        using var m = TinyModels.EncDec();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var src = gen.EncodePrompt("The quick brown fox");
        var r = gen.GenerateIds([src], NoEos)[0].Sequences[0];
        var (expected, lp) = GreedyByRecomputation(m, src, 12);
        Assert.Equal(expected, r.Tokens);
        Assert.Equal(lp, r.Score, 3);
        Assert.Equal(FinishReason.Length, r.Finish);
        Assert.True(expected.Distinct().Count() > 1, "a constant output would make the comparison weak");
    }

    [Fact]
    public void DecoderOnlyGreedyEqualsFullRecomputation()
    {
        using var m = TinyModels.Decoder();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var prompt = gen.EncodePrompt("Encoder–decoder models");
        var r = gen.GenerateIds([prompt], NoEos)[0].Sequences[0];
        var (expected, lp) = GreedyByRecomputation(m, prompt, 12);
        Assert.Equal(expected, r.Tokens);
        Assert.Equal(lp, r.Score, 3);
    }

    [Fact]
    public void GreedyTextIsTheDecodedTokens()
    {
        using var m = TinyModels.EncDec();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var r = gen.Generate("naïve café", NoEos);
        Assert.Equal(TinyModels.Tokenizer.Decode(r.Tokens), r.Text);
    }

    static readonly string[] Prompts = ["The quick brown fox jumps", "Ça coûte", "one token at a time", "日本語", "Ça coûte"];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EncoderDecoderBatchEqualsBatchOfOne(bool sample)
    {
        using var m = TinyModels.EncDec();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var o = NoEos with { DoSample = sample, Seed = 11, TopK = sample ? 50 : 0 };
        var batch = gen.Generate(Prompts, o);
        Assert.True(Prompts.Select(p => gen.EncodePrompt(p).Length).Distinct().Count() >= 3);
        for (int i = 0; i < Prompts.Length; i++)
            Assert.Equal(gen.Generate(Prompts[i], o).Tokens, batch[i].Tokens);
        Assert.NotEqual(batch[0].Tokens, batch[1].Tokens);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DecoderOnlyBatchEqualsBatchOfOne(bool sample)
    {
        using var m = TinyModels.Decoder();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var o = NoEos with { DoSample = sample, Seed = 5 };
        var batch = gen.Generate(Prompts, o);
        for (int i = 0; i < Prompts.Length; i++)
            Assert.Equal(gen.Generate(Prompts[i], o).Tokens, batch[i].Tokens);
    }

    [Fact]
    public void SequencesFinishIndependently()
    {
        using var m = TinyModels.EncDec();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var free = gen.Generate(Prompts, NoEos);
        // Make the third token of the first output a stop token: that sequence ends there, the others run on.
        int stopToken = free[0].Tokens[2];
        var o = NoEos with { EosTokenIds = [stopToken] };
        var batch = gen.Generate(Prompts, o);
        Assert.Equal(FinishReason.Eos, batch[0].Sequences[0].Finish);
        Assert.Equal(stopToken, batch[0].Tokens[^1]);
        Assert.Equal(free[0].Tokens.TakeWhile(t => t != stopToken).Append(stopToken), batch[0].Tokens);
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(gen.Generate(Prompts[i], o).Tokens, batch[i].Tokens);
            int cut = Array.IndexOf(free[i].Tokens, stopToken);
            Assert.Equal(cut < 0 ? 12 : cut + 1, batch[i].Tokens.Length);
        }
    }

    [Fact]
    public void MaxNewTokensBoundsTheOutput()
    {
        using var m = TinyModels.Decoder();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var r = gen.Generate("The", NoEos with { MaxNewTokens = 3 });
        Assert.Equal(3, r.Tokens.Length);
        Assert.Equal(FinishReason.Length, r.Sequences[0].Finish);
    }

    [Fact]
    public void ForcedEosEndsAtMaxLength()
    {
        using var m = TinyModels.EncDec();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var r = gen.Generate("The", new GenerationOptions { MaxNewTokens = 5, ForcedEosTokenId = 1, EosTokenIds = [1] });
        Assert.Equal(1, r.Tokens[^1]);
        Assert.True(r.Tokens.Length <= 5);
        var forcedBos = gen.Generate("The", NoEos with { ForcedBosTokenId = 42 });
        Assert.Equal(42, forcedBos.Tokens[0]);
    }

    [Fact]
    public void StopStringsEndAndAreTrimmed()
    {
        using var m = TinyModels.EncDec();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var free = gen.Generate("The quick brown fox", NoEos with { MaxNewTokens = 20 });
        string text = free.Text;
        Assert.True(text.Length >= 6, $"output too short for the test: '{text}'");
        string stop = text.Substring(text.Length / 2, 2);
        var r = gen.Generate("The quick brown fox", NoEos with { MaxNewTokens = 20, StopStrings = [stop] });
        Assert.Equal(FinishReason.StopString, r.Sequences[0].Finish);
        Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], r.Text);
        Assert.True(r.Tokens.Length <= free.Tokens.Length);
        Assert.Equal(free.Tokens.Take(r.Tokens.Length), r.Tokens);
    }
}
