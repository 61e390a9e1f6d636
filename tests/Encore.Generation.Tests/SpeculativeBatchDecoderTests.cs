using Encore.Models;

namespace Encore.Generation.Tests;

/// <summary>
/// Speculative sequences in continuous batching: a sequence runs speculative rounds in the steps where it
/// is alone and plain steps while it shares the batch, and decodes as plain greedy decoding does; a
/// sampled one keeps the model's distribution across the switches.
/// </summary>
public class SpeculativeBatchDecoderTests
{
    public static TheoryData<string, string, KvCacheDType> Cases
    {
        get
        {
            var data = new TheoryData<string, string, KvCacheDType>();
            foreach (var family in new[] { "encdec", "decoder" })
                foreach (var method in new[] { "lookup", "draft" })
                    foreach (var dtype in new[] { KvCacheDType.F32, KvCacheDType.Int8 }) data.Add(family, method, dtype);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SequencesSpeculateWhenAloneAndMatchPlainGreedy(string family, string method, KvCacheDType dtype)
    {
        using var m = SpeculativeGreedyTests.Create(family);
        using var draft = SpeculativeGreedyTests.Create(family, perturbation: family == "encdec" ? 0.005f : 0.08f);
        var generator = new Generator(m, TinyModels.Tokenizer);
        int[][] prompts = [[5, 6, 7, 5, 6, 7, 5, 6], [9, 10, 11, 12], [12, 13, 14, 15, 16, 17], [18, 19, 18, 19, 18]];
        var plain = new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [], KvCacheDType = dtype };
        var o = method == "lookup" ? plain with { PromptLookup = true } : plain with { DraftModel = draft };
        var expected = prompts.Select(p => generator.GenerateIds([p], plain)[0].Tokens).ToArray();

        using var batch = new BatchDecoder(generator, 3, 40, dtype);
        var seqs = prompts.Select(p => new BatchSequence(p, o)).ToArray();
        var events = new List<BatchEvent>();
        // Alone for three steps, then a second joins, then the rest as rows free up.
        batch.Add([seqs[0]]);
        for (int i = 0; i < 3; i++) batch.Step(events);
        // A draft model always drafts; prompt lookup only once the output repeats something.
        if (method == "draft") Assert.True(seqs[0].Speculative!.Value.Drafted >= 3, "three lone steps drafted nothing");
        batch.Add([seqs[1]]);
        int next = 2, steps = 0;
        while (batch.ActiveCount > 0 || next < seqs.Length)
        {
            if (steps % 4 == 3 && next < seqs.Length && batch.FreeRows > 0) batch.Add([seqs[next++]]);
            batch.Step(events);
            Assert.True(++steps < 200);
        }
        for (int i = 0; i < seqs.Length; i++)
        {
            Assert.Equal(expected[i], seqs[i].Tokens);
            var mine = events.Where(e => e.Sequence == seqs[i]).ToArray();
            Assert.Equal(seqs[i].Tokens, mine.Select(e => e.Token).ToArray());
            Assert.Single(mine, e => e.Finished);
            Assert.True(mine[^1].Finished);
            Assert.Equal(seqs[i].Text, string.Concat(mine.Select(e => e.Text)));
            var stats = seqs[i].Speculative!.Value;
            Assert.Equal(seqs[i].GeneratedCount, stats.Tokens);
            Assert.True(stats.TargetPasses <= stats.Tokens);
        }
        var all = seqs.Aggregate(new SpeculativeStats(), (a, s) => a + s.Speculative!.Value);
        Assert.True(all.Drafted > 0 && all.Accepted > (method == "draft" ? 10 : 0), $"{all.Accepted} of {all.Drafted} drafts accepted");
        if (method == "draft") Assert.True(all.TokensPerPass > 1.2, $"{all.TokensPerPass:0.00} tokens per pass");
    }

    [Theory]
    [InlineData("encdec")]
    [InlineData("decoder")]
    public void SampledSequenceKeepsTheDistributionAcrossLoneAndSharedSteps(string family)
    {
        const int vocab = SpeculativeSamplingTests.Vocab, tokens = SpeculativeSamplingTests.Tokens;
        using var m = SpeculativeSamplingTests.Create(family, 7);
        using var draft = SpeculativeSamplingTests.Create(family, 31);
        var generator = new Generator(m);
        var o = new GenerationOptions { MaxNewTokens = tokens, EosTokenIds = [], DoSample = true, Temperature = 0.9f, DraftTokens = 2 };
        var exact = SpeculativeSamplingTests.Exact(m, o);
        using var batch = new BatchDecoder(generator, 2, 16);
        var counts = new int[exact.Length];
        var events = new List<BatchEvent>();
        int shared = 0;
        for (int s = 0; s < SpeculativeSamplingTests.Draws; s++)
        {
            var seq = new BatchSequence(SpeculativeSamplingTests.Prompt, o with { DraftModel = draft, Seed = (ulong)s });
            batch.Add([seq]);
            batch.Step(events);                       // a speculative round: it may end on a rejected draft
            if (seq.Finish == null)
            {
                // A companion of one token shares the next step: the sequence's next choice (drawn from the
                // residual distribution after a rejection) is made in a plain batched step.
                batch.Add([new BatchSequence([3, 1], new GenerationOptions { MaxNewTokens = 1, EosTokenIds = [] })]);
                shared++;
            }
            while (batch.ActiveCount > 0) batch.Step(events);
            Assert.Equal(tokens, seq.Tokens.Length);
            counts[seq.Tokens.Aggregate(0, (a, t) => a * vocab + t)]++;
        }
        Assert.True(shared > SpeculativeSamplingTests.Draws / 5, $"only {shared} draws shared a step");
        var (chi, critical) = SpeculativeSamplingTests.ChiSquare(counts, exact);
        Assert.True(chi < critical, $"chi-square {chi:0.0} ≥ {critical:0.0}");
    }

    [Fact]
    public void MismatchedDraftIsRefusedWhenAdded()
    {
        using var m = TinyModels.Decoder();
        using var encdec = TinyModels.EncDec();
        using var batch = new BatchDecoder(new Generator(m, TinyModels.Tokenizer), 2, 32);
        var e = Assert.Throws<ArgumentException>(() => batch.Add([new BatchSequence([5, 6], new GenerationOptions { MaxNewTokens = 4, DraftModel = encdec })]));
        Assert.Contains("encoder–decoder", e.Message);
        Assert.Equal(0, batch.ActiveCount);
    }
}
