using Encore.Models;

namespace Encore.Generation.Tests;

/// <summary>
/// Speculative greedy decoding (prompt lookup and draft models) against plain greedy decoding of the
/// same model: the same tokens, finish reasons and scores on many prompts, with drafts that are rarely
/// accepted (an unrelated draft model), often accepted (a slightly perturbed copy of the model, prompt
/// lookup on repetitive output) and always accepted (the model itself), and at the edges: max_new_tokens
/// inside an accepted run, EOS among the drafts, stop strings, the cache's last position, processors.
/// </summary>
public class SpeculativeGreedyTests
{
    /// <summary>
    /// The verification pass computes each position's logits with other row groupings of the kernels than
    /// a single step (a rounding of about 1e-6), so two tokens whose scores tie within that may come out
    /// in either order; a divergence is accepted only where plain decoding's top two scores are this close.
    /// </summary>
    const float TieWithinRounding = 1e-4f;

    public static LanguageModel Create(string family, ulong seed = 7, float perturbation = 0)
    {
        LanguageModel m = family == "encdec" ? TinyModels.EncDec(seed) : TinyModels.Decoder(seed);
        if (perturbation > 0)
        {
            // A copy of the model with every weight moved by a relative ±perturbation: it agrees with the
            // model on most but not all tokens, the regime a well-distilled draft model works in.
            var rng = new Random(99);
            foreach (var p in m.Parameters.All)
                foreach (ref float x in p.Value.AsSpan<float>()) x *= 1 + perturbation * (2 * (float)rng.NextDouble() - 1);
        }
        return m;
    }

    static int[][] Prompts(int count, int seed)
    {
        var rng = new Random(seed);
        // Prompts of 3–18 tokens; a third repeat a short phrase, so prompt lookup finds long matches.
        return Enumerable.Range(0, count).Select(i =>
        {
            int n = rng.Next(3, 19);
            if (i % 3 != 0) return Enumerable.Range(0, n).Select(_ => rng.Next(3, 300)).ToArray();
            var phrase = Enumerable.Range(0, rng.Next(2, 5)).Select(_ => rng.Next(3, 300)).ToArray();
            return Enumerable.Range(0, n).Select(j => phrase[j % phrase.Length]).ToArray();
        }).ToArray();
    }

    /// <summary>The processed scores plain greedy decoding chose from after <paramref name="generated"/> tokens: by recomputation.</summary>
    static float[] PlainScores(LanguageModel m, int[] prompt, int[] generated, GenerationOptions o, IReadOnlyCollection<int> eos)
    {
        float[] logits;
        if (m is EncoderDecoderModel ed)
        {
            using var y = ed.Forward(prompt, null, [ed.Config.DecoderStartTokenId, .. generated], 1);
            logits = y.Value.AsReadOnlySpan<float>()[^m.Config.VocabSize..].ToArray();
        }
        else
        {
            using var y = ((DecoderOnlyModel)m).Forward([.. prompt, .. generated], 1);
            logits = y.Value.AsReadOnlySpan<float>()[^m.Config.VocabSize..].ToArray();
        }
        int[] tokens = m is EncoderDecoderModel ? [m.Config.DecoderStartTokenId, .. generated] : [.. prompt, .. generated];
        foreach (var p in LogitsProcessors.FromOptions(o, eos)) p.Process(tokens, generated.Length, logits);
        return logits;
    }

    /// <summary>
    /// Asserts speculative results equal the plain ones, but for a divergence at a tie within rounding
    /// (see <see cref="TieWithinRounding"/>); returns the number of such ties.
    /// </summary>
    static int AssertSameAsPlain(LanguageModel m, int[][] prompts, GenerationResult[] plain, GenerationResult[] speculative, GenerationOptions o)
    {
        int ties = 0;
        var eos = new Generator(m, TinyModels.Tokenizer).EosIds(o);
        for (int i = 0; i < prompts.Length; i++)
        {
            var a = plain[i].Sequences[0];
            var b = speculative[i].Sequences[0];
            if (a.Tokens.SequenceEqual(b.Tokens))
            {
                Assert.Equal(a.Finish, b.Finish);
                Assert.Equal(a.Text, b.Text);
                Assert.True(Math.Abs(a.Score - b.Score) <= 1e-3 * Math.Max(1, a.Tokens.Length), $"prompt {i}: scores {a.Score} and {b.Score}");
                continue;
            }
            int at = 0;
            while (at < a.Tokens.Length && at < b.Tokens.Length && a.Tokens[at] == b.Tokens[at]) at++;
            Assert.True(at < a.Tokens.Length && at < b.Tokens.Length, $"prompt {i}: one output is a prefix of the other: [{string.Join(",", a.Tokens)}] vs [{string.Join(",", b.Tokens)}]");
            var scores = PlainScores(m, prompts[i], a.Tokens[..at], o, eos);
            float gap = Math.Abs(scores[a.Tokens[at]] - scores[b.Tokens[at]]);
            Assert.True(gap <= TieWithinRounding, $"prompt {i}: token {at} is {b.Tokens[at]} instead of {a.Tokens[at]}, whose score is higher by {gap:G3}: " +
                $"[{string.Join(",", a.Tokens)}] vs [{string.Join(",", b.Tokens)}]");
            ties++;
        }
        return ties;
    }

    public static TheoryData<string, string, KvCacheDType> Cases
    {
        get
        {
            var data = new TheoryData<string, string, KvCacheDType>();
            foreach (var family in new[] { "encdec", "decoder" })
                foreach (var method in new[] { "lookup", "draft-unrelated", "draft-close", "draft-self" })
                    foreach (var dtype in new[] { KvCacheDType.F32, KvCacheDType.Int8 }) data.Add(family, method, dtype);
            return data;
        }
    }

    static GenerationOptions Speculative(string method, LanguageModel draft, GenerationOptions o) =>
        method == "lookup" ? o with { PromptLookup = true } : o with { DraftModel = draft };

    static LanguageModel? Draft(string family, string method, LanguageModel m) => method switch
    {
        "draft-unrelated" => Create(family, seed: 31),
        "draft-close" => Create(family, perturbation: family == "encdec" ? 0.005f : 0.08f),
        "draft-self" => m,
        _ => null,
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void GreedyOutputIsPlainGreedyOnManyPrompts(string family, string method, KvCacheDType dtype)
    {
        using var m = Create(family);
        var draft = Draft(family, method, m);
        try
        {
            var gen = new Generator(m, TinyModels.Tokenizer);
            var prompts = Prompts(32, 3);
            // EOS = a token the model often produces, so some outputs end early (inside drafted runs too).
            var o = new GenerationOptions { MaxNewTokens = 24, EosTokenIds = [1], KvCacheDType = dtype };
            var free = gen.GenerateIds(prompts, o).ToArray();
            int common = free.SelectMany(r => r.Tokens.Take(6)).GroupBy(t => t).OrderByDescending(g => g.Count()).First().Key;
            o = o with { EosTokenIds = [1, common] };
            var plain = gen.GenerateIds(prompts, o).ToArray();
            var speculative = gen.GenerateIds(prompts, Speculative(method, draft!, o)).ToArray();
            int ties = AssertSameAsPlain(m, prompts, plain, speculative, o);
            Assert.True(ties <= 1, $"{ties} ties within rounding");
            Assert.Contains(plain, r => r.Sequences[0].Finish == FinishReason.Eos);
            Assert.Contains(plain, r => r.Sequences[0].Finish == FinishReason.Length);

            var stats = speculative.Aggregate(new SpeculativeStats(), (s, r) => s + r.Speculative!.Value);
            Assert.Null(plain[0].Speculative);
            Assert.Equal(speculative.Sum(r => r.Tokens.Length), stats.Tokens);
            Assert.True(stats.Drafted > 0);
            double rate = stats.AcceptanceRate!.Value;
            switch (method)
            {
                case "draft-self":
                    Assert.True(rate >= 0.99, $"acceptance {rate:0.00} with the model as its own draft");
                    Assert.True(stats.TokensPerPass > 3, $"{stats.TokensPerPass:0.00} tokens per pass");
                    break;
                case "draft-close":
                    Assert.InRange(rate, 0.5, 0.99);
                    Assert.True(stats.TokensPerPass > 1.8, $"{stats.TokensPerPass:0.00} tokens per pass");
                    break;
                case "lookup":
                    Assert.True(stats.Accepted >= 30, $"prompt lookup: only {stats.Accepted} of {stats.Drafted} drafts accepted");
                    break;
                default:
                    Assert.True(rate < 0.5, $"acceptance {rate:0.00} from an unrelated draft");
                    break;
            }
        }
        finally
        {
            if (!ReferenceEquals(draft, m)) draft?.Dispose();
        }
    }

    public static TheoryData<string, string> Families
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var family in new[] { "encdec", "decoder" })
                foreach (var method in new[] { "lookup", "draft-self", "draft-close" }) data.Add(family, method);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void MaxNewTokensInsideAnAcceptedRunAndTheCacheEnd(string family, string method)
    {
        // Every length from 1 to 11 with 1 to 8 drafts: the run is cut at max_new_tokens wherever it falls in
        // a round, and the verification pass fills the cache to its last position (capacity = one per token).
        using var m = Create(family);
        var draft = Draft(family, method, m);
        try
        {
            var gen = new Generator(m, TinyModels.Tokenizer);
            var prompts = Prompts(6, 5);
            foreach (int k in new[] { 1, 3, 8 })
                for (int max = 1; max <= 11; max++)
                {
                    var o = new GenerationOptions { MaxNewTokens = max, EosTokenIds = [], DraftTokens = k };
                    var plain = gen.GenerateIds(prompts, o).ToArray();
                    var speculative = gen.GenerateIds(prompts, Speculative(method, draft!, o)).ToArray();
                    AssertSameAsPlain(m, prompts, plain, speculative, o);
                    Assert.All(speculative, r => Assert.Equal(max, r.Tokens.Length));
                    Assert.All(speculative, r => Assert.Equal(FinishReason.Length, r.Sequences[0].Finish));
                }
        }
        finally
        {
            if (!ReferenceEquals(draft, m)) draft?.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void EosAmongTheDraftsEndsTheSequenceWhereGreedyDoes(string family, string method)
    {
        using var m = Create(family);
        var draft = Draft(family, method, m);
        try
        {
            var gen = new Generator(m, TinyModels.Tokenizer);
            var prompts = Prompts(12, 8);
            var free = gen.GenerateIds(prompts, new GenerationOptions { MaxNewTokens = 16, EosTokenIds = [] }).ToArray();
            int ended = 0;
            for (int i = 0; i < prompts.Length; i++)
            {
                // EOS = the output's token at position 2, 3, 4 or 5: with the model as its own draft it is drafted inside a run.
                int eos = free[i].Tokens[2 + i % 4];
                var o = new GenerationOptions { MaxNewTokens = 16, EosTokenIds = [eos], DraftTokens = 5 };
                var plain = gen.GenerateIds([prompts[i]], o)[0];
                var speculative = gen.GenerateIds([prompts[i]], Speculative(method, draft!, o))[0];
                AssertSameAsPlain(m, [prompts[i]], [plain], [speculative], o);
                Assert.Equal(FinishReason.Eos, speculative.Sequences[0].Finish);
                Assert.Equal(eos, speculative.Tokens[^1]);
                ended++;
            }
            Assert.Equal(prompts.Length, ended);
        }
        finally
        {
            if (!ReferenceEquals(draft, m)) draft?.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void StopStringsCutWhereGreedyCuts(string family, string method)
    {
        using var m = Create(family);
        var draft = Draft(family, method, m);
        try
        {
            var gen = new Generator(m, TinyModels.Tokenizer);
            string[] texts = ["The quick brown fox", "naïve café crème", "one token at a time", "Ça coûte 5 €"];
            var o = new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [] };
            int stopped = 0;
            foreach (var text in texts)
            {
                string free = gen.Generate(text, o).Text;
                if (free.Length < 8) continue;
                var withStop = o with { StopStrings = [free.Substring(free.Length / 2, 2)] };
                var plain = gen.Generate(text, withStop);
                var speculative = gen.Generate(text, Speculative(method, draft!, withStop));
                AssertSameAsPlain(m, [gen.EncodePrompt(text)], [plain], [speculative], withStop);
                if (speculative.Sequences[0].Finish == FinishReason.StopString) stopped++;
            }
            Assert.True(stopped >= 2, $"only {stopped} outputs reached their stop string");
        }
        finally
        {
            if (!ReferenceEquals(draft, m)) draft?.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void ProcessorsApplyAsInPlainGreedy(string family, string method)
    {
        using var m = Create(family);
        var draft = Draft(family, method, m);
        try
        {
            var gen = new Generator(m, TinyModels.Tokenizer);
            var prompts = Prompts(10, 13);
            GenerationOptions[] variants =
            [
                new() { MaxNewTokens = 16, EosTokenIds = [], RepetitionPenalty = 1.8f },
                new() { MaxNewTokens = 16, EosTokenIds = [], NoRepeatNgramSize = 2 },
                new() { MaxNewTokens = 16, EosTokenIds = [1], MinNewTokens = 6, BadWordsIds = [3, 4, 5], LogitBias = new Dictionary<int, float> { [7] = 3f } },
                new() { MaxNewTokens = 9, EosTokenIds = [1], ForcedBosTokenId = 42, ForcedEosTokenId = 1 },
            ];
            foreach (var o in variants)
            {
                var plain = gen.GenerateIds(prompts, o).ToArray();
                var speculative = gen.GenerateIds(prompts, Speculative(method, draft!, o)).ToArray();
                AssertSameAsPlain(m, prompts, plain, speculative, o);
            }
        }
        finally
        {
            if (!ReferenceEquals(draft, m)) draft?.Dispose();
        }
    }

    [Fact]
    public void StreamedTokensAreTheGeneratedOnes()
    {
        using var m = Create("decoder");
        var gen = new Generator(m, TinyModels.Tokenizer);
        var o = new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [], DraftModel = m, StopStrings = ["ab"] };
        var full = gen.Generate("naïve café", o);
        var pieces = new List<GenerationChunk>();
        foreach (var c in gen.StreamAsync("naïve café", o).ToBlockingEnumerable()) pieces.Add(c);
        Assert.Equal(full.Tokens, pieces.Where(p => p.Token >= 0).Select(p => p.Token));
        Assert.Equal(full.Text, string.Concat(pieces.Select(p => p.Text)));
        Assert.Equal(gen.Generate("naïve café", o with { DraftModel = null }).Tokens, full.Tokens);
    }

    [Fact]
    public void MismatchedDraftsAndBeamSearchAreRefused()
    {
        using var encdec = Create("encdec");
        using var decoder = Create("decoder");
        using var small = TinyModels.Decoder(vocab: 200);
        var gen = new Generator(decoder, TinyModels.Tokenizer);
        var e = Assert.Throws<ArgumentException>(() => gen.Generate("The", new GenerationOptions { DraftModel = small }));
        Assert.Contains("vocabulary of 200 tokens", e.Message);
        Assert.Contains($"one of {TinyModels.Tokenizer.VocabSize}", e.Message);
        e = Assert.Throws<ArgumentException>(() => gen.Generate("The", new GenerationOptions { DraftModel = encdec }));
        Assert.Contains("the draft model is an encoder–decoder and the model is a decoder-only model", e.Message);
        e = Assert.Throws<ArgumentException>(() => new Generator(encdec, TinyModels.Tokenizer).Generate("The", new GenerationOptions { DraftModel = decoder }));
        Assert.Contains("the draft model is a decoder-only model and the model is an encoder–decoder", e.Message);
        e = Assert.Throws<ArgumentException>(() => gen.Generate("The", new GenerationOptions { PromptLookup = true, NumBeams = 3 }));
        Assert.Contains("beam search", e.Message);
        e = Assert.Throws<ArgumentException>(() => gen.Generate("The", new GenerationOptions { PromptLookup = true, DraftModel = decoder }));
        Assert.Contains("not both", e.Message);
        e = Assert.Throws<ArgumentException>(() => gen.Generate("The", new GenerationOptions { PromptLookup = true, DraftTokens = 0 }));
        Assert.Contains("draft_tokens", e.Message);
    }
}
