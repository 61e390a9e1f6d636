using System.Numerics;
using Encore.Training.Data;
using Encore.Training.Lab;
using V = Encore.Training.Lab.LabVocabulary;

namespace Encore.Training.Tests;

/// <summary>
/// The lab's data generators, each checked by a separate, simpler computation of the answer (numbers
/// parsed and added with BigInteger, a word-level SCAN interpreter, the permutation inverted by search).
/// </summary>
public sealed class LabTaskTests
{
    static IEnumerable<(int N, DataRng Rng)> Draws(int maxLength, int perLength = 20)
    {
        for (int n = 1; n <= maxLength; n++)
            for (int k = 0; k < perLength; k++) yield return (n, DataRng.For(99, (ulong)n, (ulong)k));
    }

    [Fact]
    public void CopyReverseAndSortOutputsAreTheirInputRearranged()
    {
        foreach (var (n, rng) in Draws(24))
        {
            var copy = LengthTasks.Make(LengthTask.Copy, n, rng);
            Assert.Equal(n, copy.Input.Length);
            Assert.All(copy.Input, id => Assert.InRange(id, V.Symbol0, V.Symbol0 + V.Symbols - 1));
            Assert.Equal(V.Render(copy.Input), V.Render(copy.Output));

            var reverse = LengthTasks.Make(LengthTask.Reverse, n, rng);
            Assert.Equal(new string(V.Render(reverse.Input).Reverse().ToArray()), V.Render(reverse.Output));

            var sort = LengthTasks.Make(LengthTask.Sort, n, rng);
            string sorted = V.Render(sort.Output);
            Assert.Equal(n, sorted.Length);
            for (int i = 1; i < n; i++) Assert.True(sorted[i - 1] <= sorted[i], $"{sorted} is not in order");
            foreach (char c in "abcdefghijklmnop") Assert.Equal(V.Render(sort.Input).Count(x => x == c), sorted.Count(x => x == c));
        }
    }

    [Fact]
    public void AdditionOutputsTheSumOfItsOperands()
    {
        // Digits are least significant first: read them reversed as ordinary numbers.
        static BigInteger Number(string digits) => BigInteger.Parse(new string(digits.Reverse().ToArray()));
        int carries = 0;
        foreach (var (n, rng) in Draws(30))
        {
            var e = LengthTasks.Make(LengthTask.Addition, n, rng);
            var parts = V.Render(e.Input).Split('+');
            Assert.Equal(2, parts.Length);
            Assert.Equal(n, parts[0].Length);
            Assert.Equal(n, parts[1].Length);
            string sum = V.Render(e.Output);
            Assert.Equal(n + 1, sum.Length);
            Assert.Equal(Number(parts[0]) + Number(parts[1]), Number(sum));
            if (sum[^1] == '1') carries++;
        }
        Assert.InRange(carries, 100, 500);   // about half the sums carry out of the top digit
    }

    // SCAN semantics written from the grammar, on words: a different route from the generator's.
    static List<string> Interpret(string command)
    {
        var words = command.Split(' ').ToList();
        int after = words.IndexOf("after");
        if (after >= 0) return [.. Interpret(string.Join(' ', words.Skip(after + 1))), .. Interpret(string.Join(' ', words.Take(after)))];
        var output = new List<string>();
        foreach (var clause in string.Join(' ', words).Split(" and "))
        {
            var w = clause.Split(' ');
            int times = w[^1] == "twice" ? 2 : w[^1] == "thrice" ? 3 : 1;
            var once = new List<string>();
            string turn = w.Contains("left") ? "LTURN" : "RTURN";
            if (w.Contains("opposite")) once.AddRange([turn, turn]);
            else if (w.Contains("left") || w.Contains("right")) once.Add(turn);
            if (w[0] != "turn") once.Add(w[0].ToUpperInvariant());
            for (int i = 0; i < times; i++) output.AddRange(once);
        }
        return output;
    }

    [Fact]
    public void ScanOutputsFollowTheGrammar()
    {
        int withAfter = 0;
        foreach (var (n, rng) in Draws(12))
        {
            var e = LengthTasks.Make(LengthTask.Scan, n, rng);
            string command = V.Render(e.Input);
            var words = command.Split(' ');
            Assert.Equal(n - 1, words.Count(w => w is "and" or "after"));
            Assert.True(words.Count(w => w == "after") <= 1, command);
            if (words.Contains("after")) withAfter++;
            Assert.Equal(string.Join(' ', Interpret(command)), V.Render(e.Output));
        }
        Assert.InRange(withAfter, 50, 180);
        Assert.Equal("LTURN WALK LTURN WALK JUMP", string.Join(' ', Interpret("walk left twice and jump")));
        Assert.Equal("RTURN RTURN RUN LOOK", string.Join(' ', Interpret("look after turn opposite right and run")));
    }

    [Fact]
    public void AnExampleDependsOnlyOnItsStream()
    {
        foreach (var task in LengthTasks.All)
        {
            var a = LengthTasks.Make(task, 7, DataRng.For(1, 2, 3));
            var b = LengthTasks.Make(task, 7, DataRng.For(1, 2, 3));
            var c = LengthTasks.Make(task, 7, DataRng.For(1, 2, 4));
            Assert.Equal(a.Input, b.Input);
            Assert.Equal(a.Output, b.Output);
            Assert.NotEqual(V.Render(a.Input) + V.Render(a.Output), V.Render(c.Input) + V.Render(c.Output));
        }
    }

    [Fact]
    public void TaskAndPositionNamesParseAndBadOnesNameTheOption()
    {
        Assert.Equal(LengthTask.Scan, LengthTasks.Parse("SCAN"));
        Assert.Equal(Models.PositionKind.T5Relative, LabNames.ParsePosition("t5"));
        Assert.Equal(Models.PositionKind.None, LabNames.ParsePosition("nope"));
        Assert.Contains("--tasks", Assert.Throws<ArgumentException>(() => LengthTasks.Parse("multiply")).Message);
        Assert.Contains("--positions", Assert.Throws<ArgumentException>(() => LabNames.ParsePosition("xpos")).Message);
        Assert.Contains("--families", Assert.Throws<ArgumentException>(() => LabNames.ParseFamily("bert")).Message);
    }

    [Fact]
    public void APermutedStringGivesBackTheOriginalThroughTheInversePermutation()
    {
        foreach (var (n, rng) in Draws(10))
        {
            var e = PermutationExample.Make(n, rng);
            var pi = e.Permutation.Select(d => d - V.Digit0).ToArray();
            Assert.Equal(Enumerable.Range(0, n), pi.Order());
            for (int j = 0; j < n; j++)
            {
                int i = Array.IndexOf(pi, j);   // π⁻¹(j), found by search
                Assert.Equal(e.Original[j], e.Permuted[i]);
            }
        }
    }

    [Fact]
    public void PermutationRowsPutTheTargetsWhereEachSetupReadsThem()
    {
        var e = PermutationExample.Make(5, DataRng.For(3, 1));
        var pairs = e.Pairs();
        Assert.Equal(e.Permutation, pairs.Where((_, i) => i % 2 == 0));
        Assert.Equal(e.Permuted, pairs.Where((_, i) => i % 2 == 1));

        var atInput = e.Row(PermutationSetup.DecoderAtInput);
        Assert.Equal([V.Bos, .. pairs], atInput.Inputs);
        for (int p = 0; p < atInput.Inputs.Length; p++)
        {
            // sⱼ is the target exactly where tⱼ is the input: at 2 + 2j, after BOS and π(j).
            int j = p >= 2 && p % 2 == 0 ? (p - 2) / 2 : -1;
            Assert.Equal(j >= 0 ? e.Original[j] : Labels.Ignore, atInput.Targets[p]);
            if (j >= 0) Assert.Equal(e.Permuted[j], atInput.Inputs[p]);
        }

        var scratch = e.Row(PermutationSetup.DecoderScratch);
        Assert.Equal([V.Bos, .. pairs, .. Enumerable.Repeat(V.Scratch, 5)], scratch.Inputs);
        Assert.Equal([.. Enumerable.Repeat(Labels.Ignore, 11), .. e.Original], scratch.Targets);

        var encdec = e.Row(PermutationSetup.EncoderDecoder);
        Assert.Equal([.. pairs, V.Eos], encdec.Source);
        Assert.Equal([V.Pad, .. e.Original], encdec.Inputs);
        Assert.Equal([.. e.Original, V.Eos], encdec.Targets);

        var generating = e.Row(PermutationSetup.DecoderGenerating);
        Assert.Equal([V.Bos, .. pairs, V.Sep, .. e.Original], generating.Inputs);
        Assert.Equal([.. Enumerable.Repeat(Labels.Ignore, 11), .. e.Original, V.Eos], generating.Targets);
        // Generation starts from the same prompt the row holds.
        Assert.Equal(generating.Inputs[..12], LabTraining.Prompt(Models.ModelFamily.DecoderOnly, e.AsGeneration()));
        Assert.Equal(encdec.Source, LabTraining.Prompt(Models.ModelFamily.EncoderDecoder, e.AsGeneration()));
    }

    [Fact]
    public void TheVisibleFractionUnderTheCausalMaskMatchesCountingEveryPermutation()
    {
        foreach (int n in new[] { 2, 3, 4, 5 })
        {
            long visible = 0, total = 0;
            foreach (var p in Permutations(Enumerable.Range(0, n).ToArray()))
                for (int j = 0; j < n; j++)
                {
                    total++;
                    if (Array.IndexOf(p, j) <= j) visible++;
                }
            Assert.Equal((double)visible / total, InversePermutationStudy.ExpectedVisibleFraction(n), 12);
        }
    }

    static IEnumerable<int[]> Permutations(int[] items)
    {
        if (items.Length <= 1) { yield return items; yield break; }
        for (int i = 0; i < items.Length; i++)
            foreach (var rest in Permutations([.. items[..i], .. items[(i + 1)..]]))
                yield return [items[i], .. rest];
    }

    [Fact]
    public void BucketsCoverTheLengthsWithoutGapsAndScanTrainsOnFewerClauses()
    {
        var b = LengthStudy.Buckets(8, [1, 1.5, 2, 3]);
        Assert.Equal(["1–8", "9–12", "13–16", "17–24"], b.Select(x => x.Label));
        Assert.Equal(2, LengthStudy.Buckets(2, [1, 1.5]).Count);
        Assert.Equal("3–3", LengthStudy.Buckets(2, [1, 1.5])[1].Label);
        Assert.Equal(16, LengthTask.Copy.TrainLength(16));
        Assert.Equal(4, LengthTask.Scan.TrainLength(16));
        Assert.Equal(2, LengthTask.Scan.TrainLength(4));
    }

    [Fact]
    public void TheMeanReciprocalRankSharesTiesAtTheBetterRank()
    {
        static LengthModelScore M(string task, string position, double beyond) =>
            new(task, "decoder-only", position, 1, 4, 0, 0, [new BucketScore("1–4", 1, 1, 4, 10, 1), new BucketScore("5–8", 2, 5, 8, 10, beyond)]);
        var summary = LengthStudy.Summarize([M("copy", "NoPE", 0.9), M("copy", "RoPE", 0.5), M("copy", "learned", 0.5),
                                             M("sort", "NoPE", 0.1), M("sort", "RoPE", 0.7), M("sort", "learned", 0.0)]);
        var nope = summary.Single(s => s.Position == "NoPE");
        var rope = summary.Single(s => s.Position == "RoPE");
        var learned = summary.Single(s => s.Position == "learned");
        Assert.Equal((1 + 0.5) / 2, nope.MeanReciprocalRank, 12);
        Assert.Equal((0.5 + 1) / 2, rope.MeanReciprocalRank, 12);
        Assert.Equal((0.5 + 1 / 3.0) / 2, learned.MeanReciprocalRank, 12);
        Assert.Equal(0.5, nope.BeyondTraining, 12);
        Assert.Equal(1, nope.InDistribution, 12);
    }
}
