using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Lab;

namespace Encore.Training.Tests;

/// <summary>The lab's training and scoring on tiny models with fixed seeds: seconds each.</summary>
public sealed class LabTrainingTests
{
    static readonly LabModelSize Tiny = new() { DModel = 32, DecoderOnlyLayers = 2, EncoderLayers = 1, DecoderLayers = 1, Heads = 2, HeadDim = 16, FfnDim = 64 };

    static List<LabExample> CopyTest(int count) => LengthStudy.TestSet(LengthTask.Copy, 1, 4, count, 11).ToList();

    [Theory]
    [InlineData(ModelFamily.DecoderOnly, PositionKind.Learned)]
    [InlineData(ModelFamily.EncoderDecoder, PositionKind.Rope)]
    public void ATinyModelLearnsToCopyShortStrings(ModelFamily family, PositionKind position)
    {
        using var model = LanguageModel.Create(LabTraining.Config(family, position, Tiny, 32), 1);
        var test = CopyTest(64);
        double before = LabTraining.Generate(model, test).ExactMatch;
        var report = LabTraining.Train(model, rng => LabTraining.Row(family, LengthTasks.Make(LengthTask.Copy, 1 + rng.NextInt(4), rng)),
            new LabTrainingOptions { Steps = 400, BatchSize = 32, LearningRate = 1e-2, Seed = 3 });
        double after = LabTraining.Generate(model, test).ExactMatch;
        Assert.True(before < 0.05, $"an untrained model copied {before:P0}");
        Assert.True(after > 0.9, $"after 400 steps (loss {report.FinalLoss:0.000}) the model copies {after:P0} of strings of 1–4 symbols");
        Assert.Equal(400, report.Curve.Count);
        Assert.True(report.Curve[^1].Loss < report.Curve[0].Loss / 4);
    }

    [Fact]
    public void ExactMatchByGenerationEqualsTheTeacherForcedReadOut()
    {
        // Greedy generation is exactly right iff every teacher-forced step's argmax is its target (the prefixes
        // coincide), so generation with KV caches and one full forward pass must agree example by example.
        using var model = LanguageModel.Create(LabTraining.Config(ModelFamily.DecoderOnly, PositionKind.Rope, Tiny, 32), 2);
        LabTraining.Train(model, rng => LabTraining.Row(ModelFamily.DecoderOnly, LengthTasks.Make(LengthTask.Reverse, 1 + rng.NextInt(4), rng)),
            new LabTrainingOptions { Steps = 120, BatchSize = 32, LearningRate = 1e-2, Seed = 4 });
        var test = LengthStudy.TestSet(LengthTask.Reverse, 1, 5, 80, 12);
        int agree = 0, right = 0;
        foreach (var e in test)
        {
            double generated = LabTraining.Generate(model, [e]).ExactMatch;
            double forced = LabTraining.Positionwise(model, [LabTraining.Row(ModelFamily.DecoderOnly, e)]).ExactMatch;
            if (generated == forced) agree++;
            if (generated == 1) right++;
        }
        Assert.Equal(test.Count, agree);
        Assert.InRange(right, 1, test.Count - 1);   // a half-trained model: both outcomes occur, so the agreement says something
    }

    [Fact]
    public void TheSameSeedTrainsTheSameModel()
    {
        LabTrainingReport Run()
        {
            using var model = LanguageModel.Create(LabTraining.Config(ModelFamily.DecoderOnly, PositionKind.None, Tiny, 32), 5);
            return LabTraining.Train(model, rng => LabTraining.Row(ModelFamily.DecoderOnly, LengthTasks.Make(LengthTask.Sort, 1 + rng.NextInt(4), rng)),
                new LabTrainingOptions { Steps = 15, Seed = 6 });
        }
        Assert.Equal(Run().Curve, Run().Curve);
    }

    [Fact]
    public void ALengthStudyRunReportsEveryBucketAndWritesItsPlot()
    {
        var o = new LengthStudyOptions
        {
            Tasks = [LengthTask.Copy],
            Positions = [PositionKind.None, PositionKind.Alibi],
            Families = [ModelFamily.DecoderOnly],
            TrainLength = 3,
            Buckets = [1, 2],
            EvalExamples = 8,
            Model = Tiny,
            Training = new LabTrainingOptions { Steps = 5, Seed = 1 },
        };
        var r = LengthStudy.Run(o);
        Assert.Equal(2, r.Models.Count);
        Assert.All(r.Models, m => Assert.Equal(["1–3", "4–6"], m.Buckets.Select(b => b.Label)));
        Assert.All(r.Models, m => Assert.All(m.Buckets, b => Assert.InRange(b.ExactMatch, 0, 1)));
        Assert.Equal(2, r.Summary.Count);
        Assert.Contains("| copy | NoPE |", r.ToMarkdown());
        var dir = Directory.CreateTempSubdirectory("encore-lab-plot-").FullName;
        try
        {
            var path = Path.Combine(dir, "length.png");
            LabPlot.WriteLength(path, r);
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(path)[..4]);
            Assert.Equal([path], Directory.GetFiles(dir));   // no temporary left beside it
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void BadStudySettingsNameTheOption()
    {
        Assert.Contains("--train-length", Assert.Throws<ArgumentException>(() => (LengthStudyOptions.Quick() with { TrainLength = 1 }).Validate()).Message);
        Assert.Contains("--steps", Assert.Throws<ArgumentException>(() => (LengthStudyOptions.Quick() with { Training = new LabTrainingOptions { Steps = 0 } }).Validate()).Message);
        Assert.Contains("--length", Assert.Throws<ArgumentException>(() => (InversePermutationOptions.Quick() with { Length = 11 }).Validate()).Message);
        Assert.Contains("--tasks", Assert.Throws<ArgumentException>(() => (LengthStudyOptions.Quick() with { Tasks = [] }).Validate()).Message);
    }
}
