using Encore.Autograd;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Objectives;

namespace Encore.Training.Tests;

/// <summary>
/// The lexical-unit objective's rows against literal rows written out by hand, its cut rate, and the
/// marking against probabilities recomputed one example at a time.
/// </summary>
public class LexicalUnitObjectiveTests
{
    const int PH = 3, I = Labels.Ignore;

    static readonly Seq2SeqOptions S2S = new() { PadId = 0, EosId = 1, DecoderStartId = 0 };

    // Source [10, 11], target [20, 21, 22, 23]: base inputs 0 20 21 22 23, targets 20 21 22 23 EOS.
    // Marked: 21, 22 and the EOS (23 and 20 are not).
    static (TokenizedDataset Data, LexicalUnitMarks Marks) Example() =>
        (TokenizedDataset.FromIds([[10, 11]], [[20, 21, 22, 23]]), LexicalUnitMarks.FromFlags([[false, true, true, false, true]]));

    // Every row a cut after position c can be (K = 4: three placeholders; rows padded to 5 + 3).
    static readonly (int[] Inputs, int[] Targets)[] CutRows =
    [
        ([0, PH, PH, PH, 0, 0, 0, 0], [20, PH, PH, PH, I, I, I, I]),
        ([0, 20, PH, PH, PH, 0, 0, 0], [20, 21, 22, PH, PH, I, I, I]),
        ([0, 20, 21, PH, PH, PH, 0, 0], [20, 21, 22, PH, PH, PH, I, I]),
        ([0, 20, 21, 22, PH, PH, PH, 0], [20, 21, 22, 23, PH, PH, PH, I]),
        ([0, 20, 21, 22, 23, PH, PH, PH], [20, 21, 22, 23, 1, PH, PH, PH]),
    ];

    static readonly (int[] Inputs, int[] Targets) PlainRow = ([0, 20, 21, 22, 23, 0, 0, 0], [20, 21, 22, 23, 1, I, I, I]);

    static int Which(TrainingRow row)
    {
        for (int c = 0; c < CutRows.Length; c++)
            if (row.Inputs.SequenceEqual(CutRows[c].Inputs) && row.Targets.SequenceEqual(CutRows[c].Targets)) return c;
        if (row.Inputs.SequenceEqual(PlainRow.Inputs) && row.Targets.SequenceEqual(PlainRow.Targets)) return -1;
        throw new Xunit.Sdk.XunitException($"unexpected row: inputs [{string.Join(",", row.Inputs)}], targets [{string.Join(",", row.Targets)}]");
    }

    [Fact]
    public void EveryCutRowIsOneOfTheRowsWrittenOutByHand()
    {
        var (data, marks) = Example();
        var objective = new LexicalUnitObjective(new Seq2SeqObjective(S2S), marks, new LexicalUnitTrainingOptions { PlaceholderId = PH, Span = 4, Rate = 1 });
        Assert.Equal((3, 8), objective.RowLengths(data, 0));
        var seen = new HashSet<int>();
        for (ulong seed = 0; seed < 300; seed++)
        {
            var row = objective.MakeRow(data, 0, DataRng.For(seed, 0));
            Assert.Equal([10, 11, 1], row.Source);
            int c = Which(row);
            Assert.True(c >= 0, "Rate 1 cuts every row");
            seen.Add(c);
        }
        Assert.Equal(5, seen.Count);
    }

    [Fact]
    public void UnitCutsOfOneCutOnlyWhereAUnitOpens()
    {
        // Marked positions 1, 2 and 4: a unit opens only at position 1 (marked, and so is the next).
        var (data, marks) = Example();
        var objective = new LexicalUnitObjective(new Seq2SeqObjective(S2S), marks, new LexicalUnitTrainingOptions { PlaceholderId = PH, Span = 4, Rate = 1, UnitCuts = 1 });
        var seen = new HashSet<int>();
        for (ulong seed = 0; seed < 300; seed++) seen.Add(Which(objective.MakeRow(data, 0, DataRng.For(seed, 0))));
        Assert.Equal([1], seen.Order());
    }

    [Fact]
    public void TheRateIsTheFractionOfRowsCut()
    {
        var (data, marks) = Example();
        var objective = new LexicalUnitObjective(new Seq2SeqObjective(S2S), marks, new LexicalUnitTrainingOptions { PlaceholderId = PH, Span = 4, Rate = 0.3 });
        int cut = 0, n = 4000;
        for (ulong seed = 0; seed < (ulong)n; seed++)
            if (Which(objective.MakeRow(data, 0, DataRng.For(seed, 0))) >= 0) cut++;
        // Binomial(4000, 0.3): standard deviation 29 rows.
        Assert.InRange(cut, 1200 - 120, 1200 + 120);
    }

    [Fact]
    public void ADecoderOnlyRowIsNeverCutInsideThePrompt()
    {
        // BOS 10 11 20 21 | targets − − 20 21 EOS: cuts only after positions 2, 3 and 4.
        var data = TokenizedDataset.FromIds([[10, 11]], [[20, 21]]);
        var inner = new CausalLmObjective(new CausalLmOptions { PadId = 0, EosId = 1, BosId = 2 });
        var marks = LexicalUnitMarks.FromFlags([[false, false, true, true, true]]);
        var objective = new LexicalUnitObjective(inner, marks, new LexicalUnitTrainingOptions { PlaceholderId = PH, Span = 3, Rate = 1 });
        var cuts = new HashSet<int>();
        for (ulong seed = 0; seed < 200; seed++)
        {
            var row = objective.MakeRow(data, 0, DataRng.For(seed, 0));
            Assert.Equal(7, row.Inputs.Length);
            int c = Array.IndexOf(row.Inputs, PH) - 1;
            cuts.Add(c);
            Assert.Equal(new[] { 2, 10, 11, 20, 21 }.Take(c + 1), row.Inputs.Take(c + 1));
            Assert.Equal(new[] { I, I, 20, 21, 1 }.Take(c + 1), row.Targets.Take(c + 1));
        }
        Assert.Equal([2, 3, 4], cuts.Order());
    }

    [Fact]
    public void MarksOfABatchEqualProbabilitiesRecomputedOneExampleAtATime()
    {
        using var model = new EncoderDecoderModel(Presets.Get("tiny-encdec") with { VocabSize = 64 }, seed: 5);
        var rng = new Random(3);
        var sources = Enumerable.Range(0, 12).Select(_ => Enumerable.Range(0, rng.Next(2, 9)).Select(_ => rng.Next(4, 64)).ToArray()).ToArray();
        var targets = Enumerable.Range(0, 12).Select(_ => Enumerable.Range(0, rng.Next(1, 7)).Select(_ => rng.Next(4, 64)).ToArray()).ToArray();
        var data = TokenizedDataset.FromIds(sources, targets);
        var inner = new Seq2SeqObjective(S2S);
        // Each example alone: the probability of every target token.
        var probabilities = new List<double[]>();
        for (int i = 0; i < data.Count; i++)
        {
            var row = inner.MakeRow(data, i, DataRng.For(0, (ulong)i));
            using var logits = Tape.NoGrad(() => model.Forward(row.Source, null, row.Inputs, 1));
            var all = logits.Value.AsReadOnlySpan<float>().ToArray();
            probabilities.Add(row.Targets.Select((t, j) => Generation.Sampling.Softmax(all.AsSpan(j * 64, 64))[t]).ToArray());
        }
        double alpha = probabilities.SelectMany(p => p).Order().ElementAt(probabilities.Sum(p => p.Length) / 2);
        // Examples 0–9 marked, in batches of at most 40 padded tokens; 10 and 11 left out.
        var marks = LexicalUnitMarks.Mark(model, data, inner, Enumerable.Range(0, 10).ToArray(), alpha, maxTokens: 40);
        int flagged = 0;
        for (int i = 0; i < 10; i++)
        {
            var flags = marks[i]!;
            Assert.Equal(probabilities[i].Length, flags.Length);
            for (int j = 0; j < flags.Length; j++)
            {
                if (Math.Abs(probabilities[i][j] - alpha) < 1e-6) continue;
                Assert.Equal(probabilities[i][j] > alpha, flags[j]);
                if (flags[j]) flagged++;
            }
        }
        Assert.Null(marks[10]);
        Assert.Null(marks[11]);
        Assert.InRange(flagged, 5, 60);
    }

    [Fact]
    public void MarksRoundTripThroughTheirFileAndADamagedOrForeignFileIsRefused()
    {
        var dir = Directory.CreateTempSubdirectory("encore-lu-");
        try
        {
            var path = Path.Combine(dir.FullName, "lexical-units.marks");
            var marks = LexicalUnitMarks.FromFlags([[true, false, true], null, [false]]);
            marks.Save(path);
            var back = LexicalUnitMarks.Load(path, 3);
            Assert.Equal([true, false, true], back[0]!);
            Assert.Null(back[1]);
            Assert.Equal([false], back[2]!);
            Assert.Contains(path, Assert.Throws<FormatException>(() => LexicalUnitMarks.Load(path, 4)).Message);
            var bytes = File.ReadAllBytes(path);
            File.WriteAllBytes(path, bytes[..^2]);
            Assert.Contains(path, Assert.Throws<FormatException>(() => LexicalUnitMarks.Load(path, 3)).Message);
            File.WriteAllBytes(path, [1, 2, 3, 4, 5, 6, 7, 8]);
            Assert.Contains("not a lexical-unit marks file", Assert.Throws<FormatException>(() => LexicalUnitMarks.Load(path, 3)).Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void AnUnmarkedExampleAndSettingsOutOfRangeAreRefused()
    {
        var (data, _) = Example();
        var objective = new LexicalUnitObjective(new Seq2SeqObjective(S2S), LexicalUnitMarks.FromFlags([null]), new LexicalUnitTrainingOptions { PlaceholderId = PH });
        Assert.Contains("no lexical-unit marks", Assert.Throws<InvalidOperationException>(() => objective.MakeRow(data, 0, DataRng.For(0, 0))).Message);
        Assert.Contains("--lud-alpha", Assert.Throws<ArgumentException>(() => new LexicalUnitTrainingOptions { PlaceholderId = PH, Alpha = 1 }.Validate()).Message);
        Assert.Contains("--lud-span", Assert.Throws<ArgumentException>(() => new LexicalUnitTrainingOptions { PlaceholderId = PH, Span = 1 }.Validate()).Message);
        Assert.Contains("--lud-rate", Assert.Throws<ArgumentException>(() => new LexicalUnitTrainingOptions { PlaceholderId = PH, Rate = 0 }.Validate()).Message);
    }
}
