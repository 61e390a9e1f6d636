using Encore.Models;

namespace Encore.Generation.Tests;

public class BeamSearchTests
{
    const int V = 6;

    // Sum of log-probabilities of every sequence of length L over V tokens, by full recomputation in one batch.
    static double[] Exhaustive(EncoderDecoderModel m, int[] source, int length)
    {
        int n = (int)Math.Pow(V, length);
        var dec = new int[n * length];
        for (int s = 0; s < n; s++)
        {
            dec[s * length] = m.Config.DecoderStartTokenId;
            for (int p = 1; p < length; p++) dec[s * length + p] = Digit(s, p - 1, length);
        }
        var src = Enumerable.Range(0, n).SelectMany(_ => source).ToArray();
        using var logits = m.Forward(src, null, dec, n);                    // (n, L, V)
        var sums = new double[n];
        for (int s = 0; s < n; s++)
        {
            var lp = TinyModels.AllLogProbs(logits, s);
            for (int p = 0; p < length; p++) sums[s] += lp[p][Digit(s, p, length)];
        }
        return sums;
    }

    // Token p of sequence s: its base-V digits, most significant first.
    static int Digit(int s, int p, int length) => s / (int)Math.Pow(V, length - 1 - p) % V;

    [Theory]
    [InlineData(2, false)]
    [InlineData(3, false)]
    [InlineData(4, false)]
    [InlineData(3, true)]
    public void EnoughBeamsFindTheExhaustiveBest(int length, bool wideEncoder)
    {
        using var m = TinyModels.EncDec(seed: 3, vocab: V, wideEncoder);
        var gen = new Generator(m);
        int[] source = [3, 4, 5, 2];
        var sums = Exhaustive(m, source, length);
        int best = Array.IndexOf(sums, sums.Max());
        var expected = Enumerable.Range(0, length).Select(p => Digit(best, p, length)).ToArray();

        // V^(L−1) beams hold every prefix of length L−1, so the last step sees all V^L sequences.
        // No EOS token: every candidate has length L and sum / L^α orders them as the sum does.
        var o = new GenerationOptions { NumBeams = (int)Math.Pow(V, length - 1), MaxNewTokens = length, EosTokenIds = [], NumReturnSequences = 2 };
        var r = gen.GenerateIds([source], o)[0];
        Assert.Equal(expected, r.Tokens);
        Assert.Equal(sums[best] / length, r.Sequences[0].Score, 5);
        // The runner-up is the exhaustive second best.
        var second = sums.Select((x, i) => (x, i)).OrderByDescending(p => p.x).ElementAt(1);
        Assert.Equal(second.x / length, r.Sequences[1].Score, 5);
    }

    [Fact]
    public void DecoderOnlyBeamsFindTheExhaustiveBest()
    {
        const int length = 3;
        using var m = TinyModels.Decoder(seed: 5, vocab: V);
        int[] prompt = [2, 4, 3];
        int n = (int)Math.Pow(V, length);
        var ids = new int[n * (prompt.Length + length - 1)];
        int w = prompt.Length + length - 1;
        for (int s = 0; s < n; s++)
        {
            prompt.CopyTo(ids, s * w);
            for (int p = 0; p < length - 1; p++) ids[s * w + prompt.Length + p] = Digit(s, p, length);
        }
        var sums = new double[n];
        using (var logits = m.Forward(ids, n))                                 // (n, w, V)
            for (int s = 0; s < n; s++)
            {
                var lp = TinyModels.AllLogProbs(logits, s);
                for (int p = 0; p < length; p++) sums[s] += lp[prompt.Length - 1 + p][Digit(s, p, length)];
            }
        int best = Array.IndexOf(sums, sums.Max());
        var gen = new Generator(m);
        var o = new GenerationOptions { NumBeams = V * V, MaxNewTokens = length, EosTokenIds = [] };
        var r = gen.GenerateIds([prompt, [1, 5]], o);
        Assert.Equal(Enumerable.Range(0, length).Select(p => Digit(best, p, length)), r[0].Tokens);
        Assert.Equal(sums[best] / length, r[0].Sequences[0].Score, 5);
        // A prompt of another length runs in its own session and must not disturb the first.
        Assert.Equal(gen.GenerateIds([[1, 5]], o)[0].Tokens, r[1].Tokens);
    }

    [Fact]
    public void FewBeamsScoreTheirOwnSequenceExactly()
    {
        using var m = TinyModels.EncDec(seed: 3, vocab: V);
        var gen = new Generator(m);
        int[] source = [3, 4, 5, 2];
        var sums = Exhaustive(m, source, 4);
        var r = gen.GenerateIds([source], new GenerationOptions { NumBeams = 3, MaxNewTokens = 4, EosTokenIds = [], NumReturnSequences = 3 })[0];
        for (int i = 0; i < 3; i++)
        {
            var t = r.Sequences[i].Tokens;
            int index = ((t[0] * V + t[1]) * V + t[2]) * V + t[3];
            Assert.Equal(sums[index] / 4, r.Sequences[i].Score, 5);
            // The beam's score and the exhaustive sums come from differently batched binary32 passes: equal to rounding.
            Assert.True(r.Sequences[i].Score <= sums.Max() / 4 + 1e-6, $"beam {i} ({string.Join(",", t)}) scores {r.Sequences[i].Score:R}, above the best sequence's {sums.Max() / 4:R}");
        }
        Assert.True(r.Sequences[0].Score >= r.Sequences[1].Score && r.Sequences[1].Score >= r.Sequences[2].Score);
        Assert.Equal(3, r.Sequences.Select(s => string.Join(",", s.Tokens)).Distinct().Count());
    }

    [Fact]
    public void OneBeamIsGreedy()
    {
        using var m = TinyModels.Decoder();
        var gen = new Generator(m, TinyModels.Tokenizer);
        var prompt = gen.EncodePrompt("The quick");
        var o = new GenerationOptions { MaxNewTokens = 10, EosTokenIds = [] };
        var greedy = gen.GenerateIds([prompt], o)[0];
        var ctxSession = GenerationSession.Create(m, [prompt], 1, 10, 0);
        using (ctxSession)
        {
            var ctx = new DecodingContext(ctxSession, 1, [], new StopCriteria([], [], 10, null), 0);
            foreach (var _ in new BeamSearchStrategy(1).Run(ctx, default)) { }
            Assert.Equal(greedy.Tokens, ctx.Results[0][0].Tokens);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BeamBatchEqualsBatchOfOne(bool wideEncoder)
    {
        using var m = TinyModels.EncDec(wideEncoder: wideEncoder);
        var gen = new Generator(m, TinyModels.Tokenizer);
        string[] prompts = ["The quick brown fox jumps", "Ça coûte", "日本語"];
        var o = new GenerationOptions { NumBeams = 4, MaxNewTokens = 8, NumReturnSequences = 2, LengthPenalty = 0.7f };
        var batch = gen.Generate(prompts, o);
        for (int i = 0; i < prompts.Length; i++)
        {
            var one = gen.Generate(prompts[i], o);
            Assert.Equal(one.Sequences.Count, batch[i].Sequences.Count);
            for (int j = 0; j < one.Sequences.Count; j++)
            {
                Assert.Equal(one.Sequences[j].Tokens, batch[i].Sequences[j].Tokens);
                Assert.Equal(one.Sequences[j].Score, batch[i].Sequences[j].Score, 4);
            }
        }
    }

    [Fact]
    public void EosHypothesesAreScoredByLengthBeforeEos()
    {
        using var m = TinyModels.EncDec(seed: 3, vocab: V);
        var gen = new Generator(m);
        int[] source = [3, 4, 5, 2];
        // Token 1 is EOS: every returned sequence either ends with it or runs to max_new_tokens, and its
        // score is its log-probability over its length before EOS (at least one).
        var r = gen.GenerateIds([source], new GenerationOptions { NumBeams = 6, MaxNewTokens = 3, NumReturnSequences = 6, MinNewTokens = 1 })[0];
        foreach (var s in r.Sequences)
        {
            var t = s.Tokens;
            double sum = 0;
            var dec = new[] { 0 }.Concat(t).ToArray();
            using (var logits = m.Forward(source, null, dec[..^1], 1))
            {
                var lp = TinyModels.AllLogProbs(logits, 0);
                for (int p = 0; p < t.Length; p++) sum += lp[p][t[p]];
            }
            bool eos = t[^1] == 1;
            Assert.Equal(eos ? FinishReason.Eos : FinishReason.Length, s.Finish);
            Assert.Equal(sum / Math.Max(1, eos ? t.Length - 1 : t.Length), s.Score, 5);
        }
    }

    [Theory]
    [InlineData(KvCacheDType.F32)]
    [InlineData(KvCacheDType.Int8)]
    public void CacheRowsFollowTheirParents(KvCacheDType dtype)
    {
        using var m = TinyModels.Decoder(vocab: 10);
        using var cache = m.CreateCache(3, 4, dtype);
        using (m.Forward([1, 2, 3, 4, 5, 6], 3, null, cache)) { }
        var before = cache.Self.Select(Keys).ToArray();
        KvCacheRows.Select(cache.Self, [2, 0, 0]);
        // (B, Hkv, capacity, hd): each head of a row holds its 2 filled positions as one run.
        int heads = cache.Self[0].Heads, cap = cache.Self[0].Capacity, hd = cache.Self[0].HeadDim, n = 2 * hd, w = heads * hd;
        Assert.Equal(4, cap);
        for (int l = 0; l < cache.Self.Length; l++)
        {
            var k = Keys(cache.Self[l]);
            int[] parents = [2, 0, 0];
            for (int row = 0; row < 3; row++)
                for (int h = 0; h < heads; h++)
                    Assert.Equal(before[l].AsSpan((parents[row] * heads + h) * cap * hd, n).ToArray(), k.AsSpan((row * heads + h) * cap * hd, n).ToArray());
            Assert.NotEqual(before[l].AsSpan(0, n).ToArray(), before[l].AsSpan(2 * cap * w, n).ToArray());
        }
    }

    // The keys of a cache as (B, Hkv, capacity, hd) values: an int8 cache's dequantized, so the scales are compared too.
    static float[] Keys(LayerCache c)
    {
        if (c.DType == KvCacheDType.F32) return c.K!.AsSpan<float>().ToArray();
        var all = new float[c.Rows * c.Heads * c.Capacity * c.HeadDim];
        for (int b = 0; b < c.Rows; b++)
            for (int h = 0; h < c.Heads; h++)
                for (int p = 0; p < c.Capacity; p++)
                    c.KInt8!.Read(b, h, p, all.AsSpan(((b * c.Heads + h) * c.Capacity + p) * c.HeadDim, c.HeadDim));
        return all;
    }
}
