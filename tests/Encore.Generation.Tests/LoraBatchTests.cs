using Encore.Models;
using Encore.Testing;

namespace Encore.Generation.Tests;

/// <summary>
/// Several LoRA adapters over one base in one continuous batch: each row decodes exactly what the
/// generator gives alone with that row's adapter active, whichever rows share its steps.
/// </summary>
public class LoraBatchTests
{
    static readonly int[][] Prompts = [[5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15, 16, 17], [18, 19], [20, 21, 22, 23, 24], [25, 26, 27]];

    static LoraAdapter Adapter(LanguageModel m, int seed, LoraTargets targets, int rank) => LoraTesting.RandomAdapter(m, seed, targets, rank);

    [Theory]
    [InlineData("encdec", KvCacheDType.F32)]
    [InlineData("decoder", KvCacheDType.F32)]
    [InlineData("encdec", KvCacheDType.Int8)]
    public void RowsWithDifferentAdaptersDecodeAsEachAlone(string kind, KvCacheDType dtype)
    {
        using LanguageModel m = kind == "encdec" ? TinyModels.EncDec() : TinyModels.Decoder();
        using var a1 = Adapter(m, 1, LoraTargets.All, 4);
        using var a2 = Adapter(m, 2, LoraTargets.Q | LoraTargets.V | LoraTargets.Down, 2);
        LoraAdapter?[] chosen = [a1, a2, null, a2, a1, null];
        var generator = new Generator(m, TinyModels.Tokenizer);
        var options = new GenerationOptions { MaxNewTokens = 10, BadWordsIds = [1], KvCacheDType = dtype };
        var expected = new int[Prompts.Length][];
        for (int i = 0; i < Prompts.Length; i++)
        {
            m.Adapters.Active = chosen[i];
            expected[i] = generator.GenerateIds([Prompts[i]], options)[0].Tokens;
        }
        m.Adapters.Active = null;
        // The adapters do change the output (or this test would show nothing).
        Assert.NotEqual(generator.GenerateIds([Prompts[0]], options)[0].Tokens, expected[0]);
        Assert.NotEqual(generator.GenerateIds([Prompts[1]], options)[0].Tokens, expected[1]);

        using var batch = new BatchDecoder(generator, 4, 32, dtype);
        var seqs = Prompts.Select((p, i) => new BatchSequence(p, options with { MaxNewTokens = 4 + i }) { Adapter = chosen[i] }).ToArray();
        // Recompute the expectations for each row's own length (a prefix of its full run: greedy, EOS banned).
        for (int i = 0; i < seqs.Length; i++) expected[i] = expected[i][..Math.Min(expected[i].Length, 4 + i)];
        var events = new List<BatchEvent>();
        int next = 0, steps = 0;
        // Three join at once (prefilled together with three adapters), then one per step as rows free up.
        while (next < seqs.Length || batch.ActiveCount > 0)
        {
            int joining = Math.Min(Math.Min(steps == 0 ? 3 : 1, batch.FreeRows), seqs.Length - next);
            if (joining > 0)
            {
                batch.Add(seqs.Skip(next).Take(joining).ToArray());
                next += joining;
            }
            batch.Step(events);
            Assert.True(++steps < 100);
        }
        for (int i = 0; i < seqs.Length; i++) Assert.Equal(expected[i], seqs[i].Tokens);
    }

    [Fact]
    public void AnAdapterOfAnotherModelIsRefusedWhenAdded()
    {
        using var m = TinyModels.EncDec();
        using var other = TinyModels.EncDec();
        using var a = Adapter(other, 1, LoraTargets.Q, 2);
        using var batch = new BatchDecoder(new Generator(m, TinyModels.Tokenizer), 2, 32);
        Assert.Throws<ArgumentException>(() => batch.Add([new BatchSequence([5, 6], new GenerationOptions { MaxNewTokens = 2 }) { Adapter = a }]));
        Assert.Equal(0, batch.ActiveCount);
    }
}
