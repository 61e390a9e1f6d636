using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Lab;
using V = Encore.Training.Lab.LabVocabulary;

namespace Encore.Training.Tests;

/// <summary>
/// The codebook and key–value bottleneck studies: their generators checked by separate computations (transition
/// frequencies counted, the oracle's accuracy by simulation, sample means, the encoder by its formula), and tiny end-to-end runs.
/// </summary>
public sealed class CodebookStudyTests
{
    [Fact]
    public void TheMachineHasDistinctSuccessorsAndWalksFollowTheirWeights()
    {
        var fsm = new FsmTask(3);
        for (int s = 0; s < FsmTask.States; s++)
            Assert.Equal(FsmTask.Successors, Enumerable.Range(0, FsmTask.Successors).Select(i => fsm.Next(s, i)).Distinct().Count());
        var rng = DataRng.For(1, 2);
        for (int w = 0; w < 100; w++)
        {
            var walk = fsm.Walk(30, rng);
            for (int i = 1; i < walk.Length; i++) Assert.True(fsm.Probability(walk[i - 1], walk[i]) > 0, $"{walk[i - 1]} → {walk[i]} is no transition");
            var tokens = FsmTask.Tokens(walk);
            Assert.Equal(60, tokens.Length);
            Assert.All(tokens.Where((_, i) => i % 2 == 0), t => Assert.InRange(t, V.Symbol0, V.Symbol0 + 3));
            Assert.All(tokens.Where((_, i) => i % 2 == 1), t => Assert.InRange(t, V.Digit0, V.Digit0 + 4));
            Assert.Equal(walk, Enumerable.Range(0, 30).Select(i => (tokens[2 * i] - V.Symbol0) * 5 + tokens[2 * i + 1] - V.Digit0));
        }
        // From every state, the frequencies of its next states are the successor weights.
        for (int s = 0; s < FsmTask.States; s++)
        {
            var counts = new int[FsmTask.States];
            for (int i = 0; i < 4000; i++) counts[fsm.Step(s, rng)]++;
            for (int t = 0; t < FsmTask.States; t++)
                Assert.True(Math.Abs(counts[t] / 4000.0 - fsm.Probability(s, t)) < 0.03, $"{s} → {t}: {counts[t]} of 4000, expected {fsm.Probability(s, t)}");
            Assert.Equal([0.6, 0.3, 0.1], Enumerable.Range(0, 3).Select(i => fsm.Probability(s, fsm.Next(s, i))));
        }
        Assert.Equal("c4", FsmTask.Name(14));
    }

    [Fact]
    public void TheOracleAccuracyIsWhatTheBayesPredictorScoresOnSampledWalks()
    {
        // The predictor that knows the machine and the state, simulated: the likeliest letter, then the likeliest digit given the letter.
        var fsm = new FsmTask(8);
        var rng = DataRng.For(5, 6);
        long right = 0, scored = 0;
        for (int w = 0; w < 3000; w++)
        {
            var walk = fsm.Walk(6, rng);
            for (int i = 1; i < walk.Length; i++)
            {
                int s = walk[i - 1], t = walk[i];
                var letter = Enumerable.Range(0, 4).OrderByDescending(h => Enumerable.Range(0, 5).Sum(l => fsm.Probability(s, h * 5 + l))).ThenBy(h => h).First();
                var digit = Enumerable.Range(0, 5).OrderByDescending(l => fsm.Probability(s, t / 5 * 5 + l)).ThenBy(l => l).First();
                right += (letter == t / 5 ? 1 : 0) + (digit == t % 5 ? 1 : 0);
                scored += 2;
            }
        }
        Assert.Equal(fsm.OracleAccuracy(6), (double)right / scored, 0.015);
    }

    [Fact]
    public void LegalTokensAreTheSuccessorsTokens()
    {
        var fsm = new FsmTask(2);
        int s = 7, t = fsm.Next(s, 1);
        Assert.True(fsm.LegalLetter(s, FsmTask.HighToken(t)));
        Assert.True(fsm.LegalDigit(s, FsmTask.HighToken(t), FsmTask.LowToken(t)));
        var never = Enumerable.Range(0, FsmTask.States).First(x => fsm.Probability(s, x) == 0 && Enumerable.Range(0, 3).All(i => FsmTask.HighToken(fsm.Next(s, i)) != FsmTask.HighToken(x)));
        Assert.False(fsm.LegalLetter(s, FsmTask.HighToken(never)));
        Assert.False(fsm.LegalLetter(s, V.Digit0));
    }

    [Fact]
    public void TheGaussianTasksSplitTheClassesAndTheEncoderIsItsFormula()
    {
        var data = new GaussianTasks(4, tasks: 5, spread: 0.4, features: 6);
        Assert.Equal(Enumerable.Range(0, 10), Enumerable.Range(0, 5).SelectMany(data.ClassesOf).Order());
        var rng = DataRng.For(7, 8);
        for (int c = 0; c < 10; c += 3)
        {
            var points = Enumerable.Range(0, 4000).Select(_ => data.Sample(c, rng)).ToArray();
            var (x, y) = GaussianTasks.Centre(c);
            Assert.Equal(x, points.Average(p => p.X), 0.03);
            Assert.Equal(y, points.Average(p => p.Y), 0.03);
            double sd = Math.Sqrt(points.Average(p => (p.X - x) * (p.X - x)));
            Assert.Equal(0.4, sd, 0.03);
        }
        // h = tanh(W·x/R + b): its pre-activation is affine in x, so atanh(h(x1)) + atanh(h(x2)) − atanh(h(0)) = atanh(h(x1 + x2)).
        float[] Atanh(float[] h) => [.. h.Select(v => (float)Math.Atanh(v))];
        var a = Atanh(data.Encode([0.3f, -0.2f]));
        var b = Atanh(data.Encode([0.5f, 0.4f]));
        var zero = Atanh(data.Encode([0f, 0f]));
        var sum = Atanh(data.Encode([0.8f, 0.2f]));
        for (int f = 0; f < 6; f++) Assert.Equal(sum[f], a[f] + b[f] - zero[f], 1e-4f);
    }

    [Fact]
    public void KeysFittedOnUnlabelledPointsCoverTheClassesAndFreeze()
    {
        var o = KeyValueBottleneckStudyOptions.Quick() with { KeySteps = 10 };
        var data = new GaussianTasks(o.Seed, o.Tasks, o.Spread, o.Bottleneck.Codebooks * o.KeyDim);
        using var kv = KeyValueBottleneckStudy.FitKeys(o, data);
        Assert.True(kv.KeysFrozen);
        // Points of one class fetch few keys per codebook, and points of distant classes different ones.
        var rng = DataRng.For(1, 1);
        int[] Slots(int c) => kv.Lookup(data.Encode([.. Enumerable.Range(0, 50).SelectMany(_ => { var (x, y) = data.Sample(c, rng); return new[] { x, y }; })]), 50);
        var near = Slots(0);
        var far = Slots(5);
        for (int cb = 0; cb < o.Bottleneck.Codebooks; cb++)
        {
            var a = Enumerable.Range(0, 50).Select(r => near[r * o.Bottleneck.Codebooks + cb]).ToHashSet();
            var b = Enumerable.Range(0, 50).Select(r => far[r * o.Bottleneck.Codebooks + cb]).ToHashSet();
            Assert.True(a.Count < 20, $"codebook {cb}: 50 points of one class fetch {a.Count} keys");
            Assert.Empty(a.Intersect(b));
        }
    }

    [Fact]
    public void AKeyValueStudyRunReportsEveryModelAndWritesItsPlot()
    {
        var o = KeyValueBottleneckStudyOptions.Quick(2) with { StepsPerTask = 30, KeySteps = 5, TestPerClass = 20 };
        var r = KeyValueBottleneckStudy.Run(o);
        Assert.Equal(4, r.Models.Count);
        Assert.Equal([true, true, false, false], r.Models.Select(m => m.Sequential));
        Assert.All(r.Models.Where(m => m.Sequential), m => Assert.Equal(5, m.AfterTask.Length));
        Assert.All(r.Models, m => Assert.InRange(m.Final, 0, 1));
        // The sequential linear head forgets: its last task holds most of its accuracy.
        var head = r.Models[0];
        Assert.True(head.PerTask[^1] > head.PerTask[0], $"per task {string.Join(", ", head.PerTask)}");
        Assert.Contains("| key–value bottleneck | task by task |", r.ToMarkdown());
        Assert.Equal(2, r.Observed.Count);
        WritesPng(path => LabPlot.WriteKeyValueBottleneck(path, r));
    }

    [Fact]
    public void ACodebookStudyRunReportsBothModelsAndEveryState()
    {
        var o = CodebookStudyOptions.Quick(1) with
        {
            Codes = 16,
            Length = 4,
            EvalSequences = 40,
            Model = new LabModelSize { DModel = 16, DecoderOnlyLayers = 1, Heads = 2, HeadDim = 8, FfnDim = 32 },
            Training = new LabTrainingOptions { Steps = 4, BatchSize = 8, Seed = 1 },
        };
        var r = CodebookStudy.Run(o);
        Assert.Equal(["no codebooks", "codebooks F = 16, k = 4, fine-tuned", "codebooks F = 16, k = 1, fine-tuned"], r.Models.Select(m => m.Name));
        Assert.False(r.FromScratch);
        Assert.Equal([0, 4, 1], r.Models.Select(m => m.TopK));
        Assert.True(r.Models[1].Parameters - r.Models[0].Parameters == 2 * 16 * 16, "two codebooks of 16 codes of width 16");
        Assert.Empty(r.Models[0].StateCodes);
        foreach (var m in r.Models.Skip(1))
        {
            Assert.Equal(FsmTask.States, m.StateCodes.Count);
            // Every state's digit positions are counted: 40 walks of 4 states.
            Assert.Equal(160, m.StateCodes.Sum(s => s.Positions));
            Assert.Equal(2, m.Usage.Count);
            Assert.All(m.Usage, u => Assert.InRange(u.Live, m.TopK, 16));
            Assert.Equal(m.StateCodes.Count(s => s.Codebook != null && s.Precision >= 0.9), m.StatesIdentified);
        }
        Assert.All(r.Models, m => Assert.InRange(m.Accuracy, 0, 1));
        Assert.InRange(r.Oracle, 0.5, 1);
        Assert.Equal(2, r.Observed.Count);
        Assert.Contains("| no codebooks |", r.ToMarkdown());
        WritesPng(path => LabPlot.WriteCodebook(path, r));
    }

    [Fact]
    public void BadStudySettingsNameTheOption()
    {
        Assert.Contains("--top-k", Assert.Throws<ArgumentException>(() => (CodebookStudyOptions.Quick() with { TopKs = [4, 128] }).Validate()).Message);
        Assert.Contains("--codes", Assert.Throws<ArgumentException>(() => (CodebookStudyOptions.Quick() with { Codes = 1 }).Validate()).Message);
        Assert.Contains("--length", Assert.Throws<ArgumentException>(() => (CodebookStudyOptions.Quick() with { Length = 1 }).Validate()).Message);
        Assert.Contains("--tasks", Assert.Throws<ArgumentException>(() => (KeyValueBottleneckStudyOptions.Quick() with { Tasks = 3 }).Validate()).Message);
        Assert.Contains("--spread", Assert.Throws<ArgumentException>(() => (KeyValueBottleneckStudyOptions.Quick() with { Spread = 0 }).Validate()).Message);
    }

    static void WritesPng(Action<string> write)
    {
        var dir = Directory.CreateTempSubdirectory("encore-lab-plot-").FullName;
        try
        {
            var path = Path.Combine(dir, "plot.png");
            write(path);
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(path)[..4]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
