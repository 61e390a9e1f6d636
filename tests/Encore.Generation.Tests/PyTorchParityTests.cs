using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Models;

namespace Encore.Generation.Tests;

/// <summary>Generation against tools/reference/generation_fixtures.py (PyTorch, full recomputation, HF beam rules).</summary>
public class PyTorchParityTests
{
    static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tiny_generation");

    static JsonElement Expected() => JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "expected.json"))).RootElement;

    static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Fact]
    public void FirstStepLogitsMatch()
    {
        using var m = (EncoderDecoderModel)Checkpoint.Load(Dir);
        double maxErr = 0;
        foreach (var g in Expected().GetProperty("greedy").EnumerateArray())
        {
            var src = Ints(g.GetProperty("source"));
            using var logits = m.Forward(src, null, [m.Config.DecoderStartTokenId], 1);
            var got = logits.Value.AsReadOnlySpan<float>();
            var want = g.GetProperty("first_logits").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            for (int i = 0; i < want.Length; i++) maxErr = Math.Max(maxErr, Math.Abs(got[i] - want[i]));
        }
        Assert.True(maxErr < 1e-4, $"max abs logit error {maxErr}");
    }

    [Fact]
    public void BatchedGreedyMatchesPyTorch()
    {
        using var m = Checkpoint.Load(Dir);
        var gen = new Generator(m);
        var cases = Expected().GetProperty("greedy").EnumerateArray().ToArray();
        var results = gen.GenerateIds(cases.Select(c => Ints(c.GetProperty("source"))).ToArray(), new GenerationOptions { MaxNewTokens = 10 });
        for (int i = 0; i < cases.Length; i++)
        {
            Assert.Equal(Ints(cases[i].GetProperty("tokens")), results[i].Tokens);
            Assert.Equal(cases[i].GetProperty("log_prob").GetDouble(), results[i].Sequences[0].Score, 4);
        }
        Assert.Contains(results, r => r.Sequences[0].Finish == FinishReason.Eos);
        Assert.Contains(results, r => r.Sequences[0].Finish == FinishReason.Length);
    }

    [Fact]
    public void ProcessedGreedyMatchesPyTorch()
    {
        using var m = Checkpoint.Load(Dir);
        var gen = new Generator(m);
        var cases = Expected().GetProperty("processed").EnumerateArray().ToArray();
        var o = new GenerationOptions { RepetitionPenalty = 1.5f, NoRepeatNgramSize = 2, MinNewTokens = 3, MaxNewTokens = 10 };
        var results = gen.GenerateIds(cases.Select(c => Ints(c.GetProperty("source"))).ToArray(), o);
        for (int i = 0; i < cases.Length; i++) Assert.Equal(Ints(cases[i].GetProperty("tokens")), results[i].Tokens);
        // The processors change what plain greedy produces.
        var plain = gen.GenerateIds(cases.Select(c => Ints(c.GetProperty("source"))).ToArray(), o with { RepetitionPenalty = 1, NoRepeatNgramSize = 0, MinNewTokens = 0 });
        Assert.Contains(Enumerable.Range(0, cases.Length), i => !plain[i].Tokens.SequenceEqual(results[i].Tokens));
    }

    [Theory]
    [InlineData("short")]
    [InlineData("short_alpha_0.5")]
    [InlineData("long")]
    [InlineData("long_early")]
    [InlineData("heuristic")]
    public void BatchedBeamSearchMatchesPyTorch(string name)
    {
        using var m = Checkpoint.Load(Dir);
        var gen = new Generator(m);
        var cases = Expected().GetProperty("beam").EnumerateArray()
            .Where(c => c.GetProperty("case").GetString() == name).ToArray();
        Assert.Equal(3, cases.Length);
        var o = new GenerationOptions
        {
            NumBeams = cases[0].GetProperty("num_beams").GetInt32(),
            NumReturnSequences = cases[0].GetProperty("num_beams").GetInt32(),
            LengthPenalty = (float)cases[0].GetProperty("length_penalty").GetDouble(),
            MaxNewTokens = cases[0].GetProperty("max_new_tokens").GetInt32(),
            EarlyStopping = cases[0].GetProperty("early_stopping").GetBoolean(),
        };
        var results = gen.GenerateIds(cases.Select(c => Ints(c.GetProperty("source"))).ToArray(), o);
        for (int i = 0; i < cases.Length; i++)
        {
            var want = cases[i].GetProperty("sequences").EnumerateArray().ToArray();
            Assert.Equal(want.Length, results[i].Sequences.Count);
            for (int j = 0; j < want.Length; j++)
            {
                Assert.Equal(Ints(want[j].GetProperty("tokens")), results[i].Sequences[j].Tokens);
                Assert.Equal(want[j].GetProperty("score").GetDouble(), results[i].Sequences[j].Score, 4);
            }
        }
    }
}
