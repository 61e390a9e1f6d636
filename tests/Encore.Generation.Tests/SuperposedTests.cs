using Encore.Autograd;
using Encore.Models;

namespace Encore.Generation.Tests;

/// <summary>
/// Superposed Decoding (arXiv 2405.18400): one draft without n-grams is greedy decoding token for token;
/// k drafts are distinct, best first, and cost one decoder pass per step; the decoder input is the
/// probability-weighted sum of the drafts' embeddings, and the shared cache holds those superposed states
/// (an incremental run equals one pass over the whole mixed sequence); bad settings fail with one message.
/// </summary>
public class SuperposedTests
{
    static int[][] Prompts(int count, int seed)
    {
        var rng = new Random(seed);
        // Lengths 1–12, so decoder-only groups hold several prompts of one length and some are alone.
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, rng.Next(1, 13)).Select(_ => rng.Next(3, 300)).ToArray()).ToArray();
    }

    static NgramTable Table(int order = 4)
    {
        var tok = TinyModels.Tokenizer;
        var rng = new Random(11);
        // Token streams the tiny models also produce (random ids) and a little real text.
        var docs = Enumerable.Range(0, 200).Select(_ => Enumerable.Range(0, rng.Next(2, 40)).Select(_ => rng.Next(3, tok.VocabSize)).ToArray())
            .Append(tok.Encode("The quick brown fox jumps over the lazy dog.", addSpecialTokens: false));
        return NgramTable.Build(docs, tok.VocabSize, order, NgramTable.Fingerprint(tok));
    }

    [Theory]
    [InlineData("encdec")]
    [InlineData("decoder")]
    public void OneDraftWithoutNgramsIsGreedyTokenForToken(string family)
    {
        using var m = SpeculativeGreedyTests.Create(family);
        var gen = new Generator(m, TinyModels.Tokenizer);
        var prompts = Prompts(60, family.Length);
        // A token greedy decoding often produces serves as EOS, so that many outputs end early and the finished-draft bookkeeping is exercised.
        var free = gen.GenerateIds(prompts, new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [] });
        int frequent = free.SelectMany(r => r.Tokens.Skip(1)).GroupBy(t => t).OrderByDescending(g => g.Count()).First().Key;
        var settings = new[]
        {
            new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [] },
            new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [frequent] },
            new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [frequent], RepetitionPenalty = 1.3f, NoRepeatNgramSize = 2, MinNewTokens = 2 },
        };
        int endedByEos = 0;
        foreach (var o in settings)
        {
            var plain = gen.GenerateIds(prompts, o);
            var superposed = gen.GenerateIds(prompts, o with { Superposed = new SuperposedOptions { Drafts = 1 } });
            for (int i = 0; i < prompts.Length; i++)
            {
                var a = plain[i].Sequences[0];
                var b = Assert.Single(superposed[i].Sequences);
                Assert.True(a.Tokens.SequenceEqual(b.Tokens), $"prompt {i}: greedy [{string.Join(' ', a.Tokens)}], superposed [{string.Join(' ', b.Tokens)}]");
                Assert.Equal(a.Finish, b.Finish);
                Assert.Equal(a.Text, b.Text);
                // One decoder pass per token: the first after the encoder or prefill, then one per token fed.
                Assert.Equal(b.Tokens.Length, superposed[i].SuperposedPasses);
                if (b.Finish == FinishReason.Eos) endedByEos++;
            }
        }
        Assert.True(endedByEos >= 10, $"only {endedByEos} outputs ended at EOS; the comparison would not exercise finishing drafts");
        Assert.True(free.Select(r => string.Join(' ', r.Tokens)).Distinct().Count() > 30, "the prompts should steer the output");
    }

    public static TheoryData<string, bool> FamiliesAndTables => new() { { "encdec", false }, { "encdec", true }, { "decoder", false }, { "decoder", true } };

    [Theory]
    [MemberData(nameof(FamiliesAndTables))]
    public void KDraftsAreDistinctBestFirstAndCostOnePassPerStep(string family, bool ngrams)
    {
        using var m = SpeculativeGreedyTests.Create(family);
        var gen = new Generator(m, TinyModels.Tokenizer);
        var prompts = Prompts(12, 5);
        var sup = new SuperposedOptions { Drafts = 3, Ngrams = ngrams ? Table() : null };
        var results = gen.GenerateIds(prompts, new GenerationOptions { MaxNewTokens = 16, EosTokenIds = [], Superposed = sup });
        foreach (var r in results)
        {
            Assert.Equal(3, r.Sequences.Count);
            Assert.Equal(3, r.Sequences.Select(s => string.Join(' ', s.Tokens)).Distinct().Count());
            Assert.All(r.Sequences, s => Assert.Equal(16, s.Tokens.Length));
            Assert.All(r.Sequences, s => Assert.Equal(FinishReason.Length, s.Finish));
            Assert.True(r.Sequences.Zip(r.Sequences.Skip(1)).All(p => p.First.Score >= p.Second.Score), "drafts best first");
            Assert.All(r.Sequences, s => Assert.True(s.Score <= 0 && double.IsFinite(s.Score)));
            Assert.Equal(16, r.SuperposedPasses);
        }
        // The batch does not change a prompt's drafts.
        var alone = gen.GenerateIds([prompts[3]], new GenerationOptions { MaxNewTokens = 16, EosTokenIds = [], Superposed = sup })[0];
        for (int d = 0; d < 3; d++) Assert.Equal(results[3].Sequences[d].Tokens, alone.Sequences[d].Tokens);
    }

    /// <summary>Drives the drafts of one prompt by hand: their weights, the embedding they make, and the cache's superposed states.</summary>
    [Theory]
    [MemberData(nameof(FamiliesAndTables))]
    public void TheInputIsTheProbabilityWeightedSumOfTheDraftsEmbeddings(string family, bool ngrams)
    {
        using var m = SpeculativeGreedyTests.Create(family);
        int v = m.Config.VocabSize, k = 4, start = m.Config.DecoderStartTokenId;
        int[] prompt = [17, 42, 99, 5, 250];
        // Temperature 1 spreads the weights (at the default 0.06 a random tiny model's leading draft takes nearly all).
        var o = new SuperposedOptions { Drafts = k, Temperature = 1, Ngrams = ngrams ? Table() : null };
        using var session = GenerationSession.Create(m, [prompt], 1, 10, start);
        var stop = new StopCriteria([], [], 10, null);
        var initial = session.InitialTokens(0);
        var decoder = new SuperposedDecoder(new SequenceState(initial), o, [], stop, v, m is EncoderDecoderModel ? initial.Length : 0);
        var fedIds = new List<int>(initial);
        var fedWeights = new List<float>();
        foreach (int _ in initial) fedWeights.AddRange([1f, .. new float[k - 1]]);
        var paddedIds = new List<int>(initial.SelectMany(id => Enumerable.Repeat(id, k)));
        int steps = 0;
        while (!decoder.Step(session.Logits))
        {
            steps++;
            // Weights: the drafts' probabilities exp(ℓ_d), normalized over the drafts.
            var alive = decoder.Alive;
            double max = alive.Max(a => a.Score), sum = alive.Sum(a => Math.Exp(a.Score - max));
            var w = decoder.MixWeights.ToArray();
            var ids = decoder.MixIds.ToArray();
            Assert.Equal(1.0, w.Sum(x => (double)x), 5);
            for (int d = 0; d < k; d++)
            {
                if (d < alive.Count)
                {
                    Assert.Equal(Math.Exp(alive[d].Score - max) / sum, w[d], 1e-6);
                    Assert.Equal(alive[d].Seq.Tokens[^1], ids[d]);
                }
                else Assert.Equal(0, w[d]);
            }
            // (With a table, a draft none of whose candidates it has seen is pushed 200 nats down and weighs nothing.)
            if (steps > 1 && !ngrams) Assert.True(alive.Count == k && w.Count(x => x > 1e-3) >= 2, "the drafts should be superposed, not one");
            // The decoder's input: Σ_d w_d · E[token_d], computed here from the table.
            var e = m.Parameters[LanguageModel.EmbedTokens].Value.ToFloatArray();
            int dm = m.Config.DModel;
            using (var mixed = Ops.EmbeddingMix(Var.Of(m.Parameters[LanguageModel.EmbedTokens]), ids, w, 1, 1, k))
            {
                var got = mixed.Value.ToFloatArray();
                for (int j = 0; j < dm; j++)
                {
                    double expected = 0;
                    for (int d = 0; d < k; d++) expected += w[d] * e[ids[d] * dm + j];
                    Assert.Equal(expected, got[j], 5);
                }
            }
            session.AdvanceMixed(ids, w, k);
            decoder.CountPass();
            paddedIds.AddRange(ids);
            fedWeights.AddRange(w);
        }
        Assert.Equal(9, steps);   // max_new_tokens 10: nine superposed inputs after the first step
        // The cache held the superposed states: one uncached pass over every input so far gives the same last logits.
        var all = new TokenMixture([.. paddedIds], [.. fedWeights], k);
        float[] recomputed;
        if (m is EncoderDecoderModel ed)
        {
            using var memory = ed.Encode(prompt, 1);
            using var y = ed.Decode(memory, null, all, 1);
            recomputed = y.Value.AsReadOnlySpan<float>()[^v..].ToArray();
        }
        else
        {
            using var y = ((DecoderOnlyModel)m).Forward(all, 1);
            recomputed = y.Value.AsReadOnlySpan<float>()[^v..].ToArray();
        }
        var last = session.Logits;
        for (int i = 0; i < v; i++) Assert.True(Math.Abs(recomputed[i] - last[i]) <= 1e-4f, $"logit {i}: cached {last[i]}, recomputed {recomputed[i]}");
    }

    [Theory]
    [InlineData("encdec")]
    [InlineData("decoder")]
    public void AMixtureOfOneTokenIsThatTokenBitForBit(string family)
    {
        using var m = SpeculativeGreedyTests.Create(family);
        int[] tokens = [m.Config.DecoderStartTokenId, 40, 41, 77];
        float[] plain, mixed, swapped, halves;
        if (m is EncoderDecoderModel ed)
        {
            using var memory = ed.Encode([9, 8, 7], 1);
            plain = ed.Decode(memory, null, tokens, 1).Value.ToFloatArray();
            mixed = ed.Decode(memory, null, new TokenMixture(tokens, [1, 1, 1, 1], 1), 1).Value.ToFloatArray();
            swapped = ed.Decode(memory, null, new TokenMixture([tokens[0], tokens[0], 40, 90, 41, 41, 90, 77], [1, 0, 0.3f, 0.7f, 1, 0, 0.7f, 0.3f], 2), 1).Value.ToFloatArray();
            halves = ed.Decode(memory, null, new TokenMixture([tokens[0], tokens[0], 90, 40, 41, 41, 77, 90], [1, 0, 0.7f, 0.3f, 1, 0, 0.3f, 0.7f], 2), 1).Value.ToFloatArray();
        }
        else
        {
            var dec = (DecoderOnlyModel)m;
            plain = dec.Forward(tokens, 1).Value.ToFloatArray();
            mixed = dec.Forward(new TokenMixture(tokens, [1, 1, 1, 1], 1), 1).Value.ToFloatArray();
            swapped = dec.Forward(new TokenMixture([tokens[0], tokens[0], 40, 90, 41, 41, 90, 77], [1, 0, 0.3f, 0.7f, 1, 0, 0.7f, 0.3f], 2), 1).Value.ToFloatArray();
            halves = dec.Forward(new TokenMixture([tokens[0], tokens[0], 90, 40, 41, 41, 77, 90], [1, 0, 0.7f, 0.3f, 1, 0, 0.3f, 0.7f], 2), 1).Value.ToFloatArray();
        }
        Assert.Equal(plain, mixed);
        // The order of a mixture's tokens does not matter, only their weights.
        for (int i = 0; i < swapped.Length; i++) Assert.True(Math.Abs(swapped[i] - halves[i]) <= 1e-4f, $"logit {i}: {swapped[i]} vs {halves[i]}");
        Assert.NotEqual(plain[^1], swapped[^1]);
    }

    /// <summary>
    /// In a continuous batch, superposed sequences (one row each, fed mixtures) give the drafts the generator gives,
    /// and plain sequences sharing their steps (fed their tokens as mixtures of one) keep their own outputs.
    /// </summary>
    [Theory]
    [InlineData("encdec")]
    [InlineData("decoder")]
    public void BatchDecoderSuperposedRowsGiveTheGeneratorsDraftsBesidePlainRows(string family)
    {
        using var m = SpeculativeGreedyTests.Create(family);
        var generator = new Generator(m, TinyModels.Tokenizer);
        var prompts = Prompts(6, 9);
        var sup = new SuperposedOptions { Drafts = 3, Ngrams = Table() };
        var superposed = new GenerationOptions { MaxNewTokens = 12, BadWordsIds = [1], Superposed = sup };
        var plain = new GenerationOptions { MaxNewTokens = 9, BadWordsIds = [1] };
        var one = new GenerationOptions { MaxNewTokens = 10, BadWordsIds = [1], Superposed = new SuperposedOptions { Drafts = 1 } };
        using var batch = new BatchDecoder(generator, 8, 40);
        var seqs = prompts.Select((p, i) => new BatchSequence(p, (i % 3) switch { 0 => superposed, 1 => plain, _ => one })).ToArray();
        var events = new List<BatchEvent>();
        // Half join first, the rest two steps later.
        batch.Add(seqs[..3]);
        batch.Step(events);
        batch.Step(events);
        batch.Add(seqs[3..]);
        for (int steps = 0; batch.ActiveCount > 0; steps++)
        {
            batch.Step(events);
            Assert.True(steps < 100);
        }
        for (int i = 0; i < seqs.Length; i++)
        {
            var o = seqs[i].Options;
            var expected = generator.GenerateIds([prompts[i]], o)[0];
            if (o.Superposed is null)
            {
                Assert.Null(seqs[i].Drafts);
                Assert.Equal(expected.Tokens, seqs[i].Tokens);
                continue;
            }
            var drafts = seqs[i].Drafts!;
            Assert.Equal(expected.Sequences.Count, drafts.Count);
            for (int d = 0; d < drafts.Count; d++) Assert.Equal(expected.Sequences[d].Tokens, drafts[d].Tokens);
            Assert.Equal(expected.Tokens, seqs[i].Tokens);
            Assert.Equal(expected.Text, seqs[i].Text);
            Assert.Equal(expected.SuperposedPasses, seqs[i].SuperposedPasses);
            // One event per step, the last one finishing.
            var mine = events.Where(e => e.Sequence == seqs[i]).ToArray();
            Assert.Equal(expected.SuperposedPasses, mine.Length);
            Assert.True(mine[^1].Finished && mine[..^1].All(e => !e.Finished && e.Text.Length == 0));
        }
    }

    [Fact]
    public void BadSettingsFailWithOneMessage()
    {
        using var m = TinyModels.EncDec();
        var gen = new Generator(m, TinyModels.Tokenizer);
        GenerationOptions O(SuperposedOptions s) => new() { MaxNewTokens = 4, Superposed = s };
        Assert.Contains("superposed drafts (k) must be in [1, 64], got 0", Assert.Throws<ArgumentException>(() => gen.Generate("x", O(new() { Drafts = 0 }))).Message);
        Assert.Contains("got -2", Assert.Throws<ArgumentException>(() => gen.Generate("x", O(new() { Drafts = -2 }))).Message);
        Assert.Contains("temperature", Assert.Throws<ArgumentException>(() => gen.Generate("x", O(new() { Temperature = 0 }))).Message);
        Assert.Contains("alpha", Assert.Throws<ArgumentException>(() => gen.Generate("x", O(new() { NgramAlpha = 1.5f }))).Message);
        Assert.Contains("beam search", Assert.Throws<ArgumentException>(() => gen.Generate("x", O(new()) with { NumBeams = 2 })).Message);
        Assert.Contains("do_sample", Assert.Throws<ArgumentException>(() => gen.Generate("x", O(new()) with { DoSample = true })).Message);
        Assert.Contains("num_return_sequences", Assert.Throws<ArgumentException>(() => gen.Generate("x", O(new()) with { NumReturnSequences = 2, DoSample = false })).Message);
        Assert.Contains("speculative", Assert.Throws<ArgumentException>(() => gen.Generate("x", O(new()) with { PromptLookup = true })).Message);
        Assert.Contains("stream", Assert.Throws<ArgumentException>(() => gen.StreamAsync("x", O(new())).GetAsyncEnumerator().MoveNextAsync().AsTask().GetAwaiter().GetResult()).Message);
        // A table of another vocabulary is refused before decoding, naming the table and the field.
        var foreign = NgramTable.Build([[1, 2, 3]], TinyModels.Tokenizer.VocabSize + 1, 2);
        var e = Assert.Throws<ArgumentException>(() => gen.Generate("x", O(new() { Ngrams = foreign })));
        Assert.Contains("n-gram table", e.Message);
        Assert.Contains("vocab_size", e.Message);
    }
}
