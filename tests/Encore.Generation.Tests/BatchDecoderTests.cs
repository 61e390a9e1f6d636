using Encore.Models;

namespace Encore.Generation.Tests;

/// <summary>Continuous batching: sequences that join and leave a running batch decode as they would alone.</summary>
public class BatchDecoderTests
{
    static readonly int[][] Prompts =
    [
        [5, 6, 7, 8],
        [9, 10, 11],
        [12, 13, 14, 15, 16, 17],
        [18, 19],
        [20, 21, 22, 23, 24],
    ];

    public static TheoryData<string, KvCacheDType> Kinds
    {
        get
        {
            var data = new TheoryData<string, KvCacheDType>();
            foreach (var dtype in new[] { KvCacheDType.F32, KvCacheDType.Int8 })
                foreach (var kind in new[] { "encdec", "decoder-rope", "decoder-t5", "decoder-alibi", "decoder-learned", "decoder-sinusoidal" }) data.Add(kind, dtype);
            return data;
        }
    }

    static LanguageModel Create(string kind) => kind switch
    {
        "encdec" => TinyModels.EncDec(),
        "decoder-rope" => TinyModels.Decoder(),
        _ => new DecoderOnlyModel(Presets.Get("tiny-decoder") with
        {
            VocabSize = TinyModels.Tokenizer.VocabSize,
            BosTokenId = 2,
            MaxPositions = 64,
            DecoderPositions = new PositionConfig
            {
                Kind = kind switch
                {
                    "decoder-t5" => PositionKind.T5Relative,
                    "decoder-alibi" => PositionKind.Alibi,
                    "decoder-learned" => PositionKind.Learned,
                    _ => PositionKind.Sinusoidal,
                },
            },
        }, 11),
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void StaggeredSequencesMatchTheirBatchOfOne(string kind, KvCacheDType dtype)
    {
        using var m = Create(kind);
        var generator = new Generator(m, TinyModels.Tokenizer);
        // EOS banned so the lengths differ only by max_new_tokens and every row runs its full course.
        var expected = Prompts.Select((p, i) => generator.GenerateIds([p], Options(i) with { KvCacheDType = dtype })[0].Tokens).ToArray();

        using var batch = new BatchDecoder(generator, 4, 32, dtype);
        Assert.Equal(dtype, batch.KvCacheDType);
        var seqs = Prompts.Select((p, i) => new BatchSequence(p, Options(i))).ToArray();
        var events = new List<BatchEvent>();
        int next = 0, steps = 0;
        // Two join at once, then one more every other step while rows are free: rows leave and are reused.
        while (next < seqs.Length || batch.ActiveCount > 0)
        {
            int joining = steps == 0 ? 2 : (steps % 2 == 0 ? 1 : 0);
            joining = Math.Min(Math.Min(joining, batch.FreeRows), seqs.Length - next);
            if (joining > 0)
            {
                batch.Add(seqs.Skip(next).Take(joining).ToArray());
                next += joining;
            }
            batch.Step(events);
            steps++;
            Assert.True(steps < 200);
        }
        for (int i = 0; i < seqs.Length; i++)
        {
            Assert.Equal(expected[i], seqs[i].Tokens);
            Assert.Equal(FinishReason.Length, seqs[i].Finish);
        }
        // Every token was reported once, and each sequence's last event says it finished.
        foreach (var s in seqs)
        {
            var mine = events.Where(e => e.Sequence == s).ToArray();
            Assert.Equal(s.Tokens, mine.Select(e => e.Token).ToArray());
            Assert.True(mine[^1].Finished);
            Assert.Equal(s.Text, string.Concat(mine.Select(e => e.Text)));
        }
    }

    static GenerationOptions Options(int i) => new() { MaxNewTokens = 5 + 3 * i, BadWordsIds = [1] };

    [Fact]
    public void SampledSequencesMatchTheGeneratorStreams()
    {
        using var m = TinyModels.Decoder();
        var generator = new Generator(m, TinyModels.Tokenizer);
        var o = new GenerationOptions { DoSample = true, Temperature = 0.9f, TopP = 0.95f, Seed = 42, MaxNewTokens = 12, NumReturnSequences = 3 };
        var expected = generator.GenerateIds([Prompts[0]], o)[0].Sequences.Select(s => s.Tokens).ToArray();
        using var batch = new BatchDecoder(generator, 8, 32);
        var single = o with { NumReturnSequences = 1 };
        var seqs = Enumerable.Range(0, 3).Select(k => new BatchSequence(Prompts[0], single, k)).ToArray();
        batch.Add([new BatchSequence(Prompts[2], single), seqs[0]]);
        var events = new List<BatchEvent>();
        batch.Step(events);
        batch.Add(seqs[1..]);
        while (batch.ActiveCount > 0) batch.Step(events);
        for (int k = 0; k < 3; k++) Assert.Equal(expected[k], seqs[k].Tokens);
    }

    [Fact]
    public void CancelledSequenceLeavesAtTheNextStep()
    {
        using var m = TinyModels.EncDec();
        var generator = new Generator(m, TinyModels.Tokenizer);
        using var batch = new BatchDecoder(generator, 2, 32);
        using var cts = new CancellationTokenSource();
        var o = new GenerationOptions { MaxNewTokens = 20, BadWordsIds = [1] };
        var doomed = new BatchSequence(Prompts[0], o, 0, cts.Token);
        var other = new BatchSequence(Prompts[1], o);
        batch.Add([doomed, other]);
        var events = new List<BatchEvent>();
        batch.Step(events);
        cts.Cancel();
        events.Clear();
        batch.Step(events);
        Assert.True(doomed.Cancelled);
        Assert.Equal(1, batch.ActiveCount);
        Assert.Contains(events, e => e.Sequence == doomed && e.Finished && e.Token == -1);
    }

    [Fact]
    public void BadSequencesAreRejectedBeforeAnythingChanges()
    {
        using var m = TinyModels.Decoder();
        var generator = new Generator(m, TinyModels.Tokenizer);
        using var batch = new BatchDecoder(generator, 2, 16);
        var ok = new BatchSequence(Prompts[0], new GenerationOptions { MaxNewTokens = 4 });
        Assert.Throws<ArgumentException>(() => batch.Add([ok, new BatchSequence(new int[16], new GenerationOptions { MaxNewTokens = 1 })]));
        Assert.Throws<ArgumentException>(() => batch.Add([new BatchSequence(Prompts[0], new GenerationOptions { MaxNewTokens = 13 })]));
        Assert.Throws<ArgumentException>(() => batch.Add([new BatchSequence([100000], new GenerationOptions())]));
        Assert.Equal(0, batch.ActiveCount);
        batch.Add([ok]);
        Assert.Equal(1, batch.ActiveCount);
    }

    [Fact]
    public void FinishReasonsReadAsOpenAiNames()
    {
        Assert.Equal("stop", FinishReason.Eos.OpenAiName());
        Assert.Equal("stop", FinishReason.StopString.OpenAiName());
        Assert.Equal("length", FinishReason.Length.OpenAiName());
        Assert.Equal("length", ((FinishReason?)FinishReason.Length).OpenAiName());
        Assert.Equal("stop", ((FinishReason?)null).OpenAiName());
    }
}
