using Encore.Models;

namespace Encore.Generation.Tests;

/// <summary>
/// Lexical-unit decoding against two references: plain greedy decoding (β = 1 keeps no guess, so the
/// output must be greedy's, through the same multi-position passes and cache rollbacks), and a naive
/// twin that recomputes every pass from scratch, uncached, as a full forward of the real tokens and the
/// placeholders, applying the same rule (first token from the prompt's pass; then per pass the exact next
/// token and the leading guesses with probability ≥ β that are not the placeholder).
/// </summary>
public class LexicalUnitDecodingTests
{
    const int Placeholder = 3;

    // A divergence is accepted only at a tie within rounding of the kernels' row groupings (see SpeculativeGreedyTests).
    const float TieWithinRounding = 1e-4f;

    static LanguageModel Create(string family) => family == "encdec" ? TinyModels.EncDec(11) : TinyModels.Decoder(11);

    static int[][] Prompts(int count, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, rng.Next(3, 15)).Select(_ => rng.Next(4, 300)).ToArray()).ToArray();
    }

    static GenerationOptions Options(int maxNew, LexicalUnitOptions? lu) =>
        new() { MaxNewTokens = maxNew, EosTokenIds = [], LexicalUnits = lu };

    [Theory]
    [InlineData("encdec", 2)]
    [InlineData("encdec", 4)]
    [InlineData("decoder", 3)]
    [InlineData("decoder", 5)]
    public void BetaOneKeepsNoGuessAndIsPlainGreedy(string family, int span)
    {
        using var m = Create(family);
        var g = new Generator(m, TinyModels.Tokenizer);
        var prompts = Prompts(24, 5);
        var plain = g.GenerateIds(prompts, Options(17, null)).ToArray();
        var lud = g.GenerateIds(prompts, Options(17, new LexicalUnitOptions { PlaceholderId = Placeholder, Span = span, Beta = 1 })).ToArray();
        int ties = 0;
        for (int i = 0; i < prompts.Length; i++)
        {
            var a = plain[i].Tokens;
            var b = lud[i].Tokens;
            var s = lud[i].Speculative!.Value;
            Assert.Equal(0, s.Accepted);
            Assert.Equal(b.Length, s.Tokens);
            // One pass per token: the prompt's pass gives the first, every later pass exactly one.
            Assert.Equal(b.Length, s.TargetPasses);
            if (a.SequenceEqual(b)) continue;
            ties++;
            int at = 0;
            while (a[at] == b[at]) at++;
            Assert.True(IsTie(m, prompts[i], a[..at], a[at], b[at]), $"prompt {i}: token {at} is {b[at]}, greedy chose {a[at]}");
        }
        Assert.True(ties <= 2, $"{ties} of {prompts.Length} outputs diverged at ties");
    }

    [Theory]
    [InlineData("encdec", 4, 0.0)]
    [InlineData("encdec", 3, 0.05)]
    [InlineData("decoder", 4, 0.0)]
    [InlineData("decoder", 2, 0.05)]
    public void CachedPassesEqualTheUncachedTwin(string family, int span, double beta)
    {
        using var m = Create(family);
        var g = new Generator(m, TinyModels.Tokenizer);
        var lu = new LexicalUnitOptions { PlaceholderId = Placeholder, Span = span, Beta = beta };
        int accepted = 0, ties = 0;
        var prompts = Prompts(16, 9);
        foreach (var (prompt, i) in prompts.Select((p, i) => (p, i)))
        {
            var result = g.GenerateIds([prompt], Options(19, lu))[0];
            var (expected, kept, tieAt) = Twin(m, prompt, 19, lu);
            var got = result.Tokens;
            if (tieAt >= 0 && !got.SequenceEqual(expected))
            {
                // The twin saw a near-tie; the outputs must agree up to it.
                Assert.Equal(expected[..Math.Min(tieAt, expected.Length)], got[..Math.Min(tieAt, got.Length)]);
                ties++;
                continue;
            }
            Assert.Equal(expected, got);
            Assert.Equal(kept, result.Speculative!.Value.Accepted);
            accepted += kept;
        }
        Assert.True(ties <= 2, $"{ties} of {prompts.Length} prompts met a tie");
        if (beta == 0) Assert.True(accepted > 0, "β = 0 should keep guesses");
    }

    /// <summary>
    /// Lexical-unit decoding recomputed from scratch: every pass a full uncached forward of the real tokens
    /// and the placeholders. Returns the tokens, the guesses kept, and the first position where a choice was
    /// a near-tie (−1: none).
    /// </summary>
    static (int[] Tokens, int Kept, int TieAt) Twin(LanguageModel m, int[] prompt, int maxNew, LexicalUnitOptions lu)
    {
        int v = m.Config.VocabSize;
        int[] init = m is EncoderDecoderModel ? [m.Config.DecoderStartTokenId] : prompt;
        var gen = new List<int>();
        int kept = 0, tieAt = -1;
        float[][] Pass(int placeholders)
        {
            int[] seq = [.. init, .. gen, .. Enumerable.Repeat(lu.PlaceholderId, placeholders)];
            using var y = m is EncoderDecoderModel ed ? ed.Forward(prompt, null, seq, 1) : ((DecoderOnlyModel)m).Forward(seq, 1);
            var all = y.Value.AsReadOnlySpan<float>().ToArray();
            int last = init.Length + gen.Count - 1;
            return Enumerable.Range(last, placeholders + 1).Select(p => all.AsSpan(p * v, v).ToArray()).ToArray();
        }
        int Argmax(float[] row)
        {
            int best = Sampling.ArgMax(row);
            float second = row.Where((_, j) => j != best).Max();
            if (row[best] - second <= TieWithinRounding && tieAt < 0) tieAt = gen.Count;
            return best;
        }
        var rows = Pass(0);
        while (true)
        {
            gen.Add(Argmax(rows[0]));
            if (gen.Count == maxNew) break;
            bool done = false;
            for (int i = 1; i < rows.Length; i++)
            {
                int guess = Argmax(rows[i]);
                double p = Sampling.Softmax(rows[i])[guess];
                if (guess == lu.PlaceholderId || lu.Beta >= 1 || p < lu.Beta) break;
                gen.Add(guess);
                kept++;
                if (gen.Count == maxNew) { done = true; break; }
            }
            if (done) break;
            rows = Pass(Math.Min(lu.Span - 1, maxNew - gen.Count));
        }
        return ([.. gen], kept, tieAt);
    }

    static bool IsTie(LanguageModel m, int[] prompt, int[] before, int a, int b)
    {
        int v = m.Config.VocabSize;
        int[] seq = m is EncoderDecoderModel ? [m.Config.DecoderStartTokenId, .. before] : [.. prompt, .. before];
        using var y = m is EncoderDecoderModel ed ? ed.Forward(prompt, null, seq, 1) : ((DecoderOnlyModel)m).Forward(seq, 1);
        var row = y.Value.AsReadOnlySpan<float>()[^v..];
        return Math.Abs(row[a] - row[b]) <= TieWithinRounding;
    }

    [Theory]
    [InlineData("encdec")]
    [InlineData("decoder")]
    public void InContinuousBatchingALoneSequenceKeepsGuessesAndSharedOnesAtBetaOneAreGreedy(string family)
    {
        using var m = Create(family);
        var generator = new Generator(m, TinyModels.Tokenizer);
        int[][] prompts = [[5, 6, 7, 8], [9, 10, 11, 12], [12, 13, 14, 15, 16, 17], [18, 19, 20]];
        var plain = Options(18, null);
        // Alone from start to end, β = 0: the batch decoder's lone-row passes are the generator's.
        var eager = Options(18, new LexicalUnitOptions { PlaceholderId = Placeholder, Span = 4, Beta = 0 });
        using (var alone = new BatchDecoder(generator, 2, 40, KvCacheDType.F32))
        {
            var seq = new BatchSequence(prompts[0], eager);
            alone.Add([seq]);
            var events = new List<BatchEvent>();
            while (alone.ActiveCount > 0) alone.Step(events);
            var expected = generator.GenerateIds([prompts[0]], eager)[0];
            Assert.Equal(expected.Tokens, seq.Tokens);
            Assert.Equal(expected.Speculative!.Value.Accepted, seq.Speculative!.Value.Accepted);
            Assert.True(seq.Speculative!.Value.Accepted > 0);
        }
        // β = 1, rows joining and leaving: every sequence is plain greedy's.
        var off = Options(18, new LexicalUnitOptions { PlaceholderId = Placeholder, Span = 4, Beta = 1 });
        using var batch = new BatchDecoder(generator, 3, 40, KvCacheDType.F32);
        var seqs = prompts.Select(p => new BatchSequence(p, off)).ToArray();
        var all = new List<BatchEvent>();
        batch.Add([seqs[0]]);
        for (int i = 0; i < 3; i++) batch.Step(all);
        batch.Add([seqs[1]]);
        int next = 2, steps = 0;
        while (batch.ActiveCount > 0 || next < seqs.Length)
        {
            if (steps % 4 == 3 && next < seqs.Length && batch.FreeRows > 0) batch.Add([seqs[next++]]);
            batch.Step(all);
            Assert.True(++steps < 200);
        }
        for (int i = 0; i < seqs.Length; i++)
            Assert.Equal(generator.GenerateIds([prompts[i]], plain)[0].Tokens, seqs[i].Tokens);
    }

    [Fact]
    public void SettingsOutOfRangeAndCombinationsAreRefusedNamingThem()
    {
        Assert.Contains("span", Assert.Throws<ArgumentException>(() => new LexicalUnitOptions { PlaceholderId = 3, Span = 1 }.Validate()).Message);
        Assert.Contains("β", Assert.Throws<ArgumentException>(() => new LexicalUnitOptions { PlaceholderId = 3, Beta = 1.5 }.Validate()).Message);
        Assert.Contains("placeholder", Assert.Throws<ArgumentException>(() => new LexicalUnitOptions { PlaceholderId = -1 }.Validate()).Message);
        var lu = new LexicalUnitOptions { PlaceholderId = 3 };
        Assert.Contains("lexical-unit", Assert.Throws<ArgumentException>(() => new GenerationOptions { LexicalUnits = lu, PromptLookup = true }.Validate()).Message);
        Assert.Contains("beam", Assert.Throws<ArgumentException>(() => new GenerationOptions { LexicalUnits = lu, NumBeams = 2 }.Validate()).Message);
        Assert.Contains("placeholder", Assert.Throws<ArgumentException>(() => new GenerationOptions { LexicalUnits = lu with { PlaceholderId = 5000 } }.ValidateIds(320)).Message);
    }

    [Fact]
    public void AStreamEndsWithTheTextOfTheResult()
    {
        using var m = Create("decoder");
        var g = new Generator(m, TinyModels.Tokenizer);
        var o = Options(15, new LexicalUnitOptions { PlaceholderId = Placeholder, Span = 4, Beta = 0 });
        var prompt = Prompts(1, 3)[0];
        var whole = g.GenerateIds([prompt], o)[0];
        var tokens = g.StreamIdsAsync(prompt, o).ToBlockingEnumerable().Where(c => c.Token >= 0).Select(c => c.Token).ToArray();
        Assert.Equal(whole.Tokens, tokens);
    }
}
