using Encore.Autograd;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Objectives;
using Encore.Training.Runs;
using Encore.Training.Trainer;

namespace Encore.Training.Tests;

/// <summary>
/// Training an encoder–decoder adapted from a decoder-only model: the cross-attention-only warm-up, the
/// adaptation objectives through a training run, and prefix-LM distillation from the decoder-only original.
/// </summary>
public sealed class AdaptationTrainingTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-adapt-train-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static EncoderDecoderModel Adapted(CrossAttentionInit cross, ulong seed = 5)
    {
        using var source = new DecoderOnlyModel(Presets.Get("tiny-decoder"), seed);
        return ModelAdaptation.Adapt(source, options: new AdaptationOptions { CrossAttention = cross, Seed = 3 }).Model;
    }

    static List<Batch> PrefixLmBatches(int documents = 24)
    {
        var r = new Random(4);
        var data = TokenizedDataset.FromIds(Enumerable.Range(0, documents).Select(_ => Enumerable.Range(0, r.Next(6, 14)).Select(_ => r.Next(3, 64)).ToArray()).ToArray());
        var objective = new PrefixLmObjective(new Seq2SeqOptions { PadId = 0, EosId = 1, DecoderStartId = 2 }, seed: 1);
        return new TrainingBatches(data, objective, new BucketingOptions { MaxTokens = 256 }).Epoch(0).ToList();
    }

    static Dictionary<string, float[]> Snapshot(LanguageModel m) => m.Parameters.All.ToDictionary(p => p.Name, p => p.Value.ToFloatArray());

    [Fact]
    public void TheWarmupTrainsCrossAttentionAloneThenEverything()
    {
        using var model = Adapted(CrossAttentionInit.Fresh);
        var initial = Snapshot(model);
        var options = new TrainingOptions { MaxSteps = 6, CrossAttentionOnlySteps = 3, LearningRate = 3e-3, WarmupSteps = 0, EvalEvery = 0, CheckpointEvery = 0 };
        using var trainer = new Trainer.Trainer(model, options, new FixedBatches(PrefixLmBatches()), _dir);
        Dictionary<string, float[]>? afterWarmup = null;
        trainer.OnStep = r =>
        {
            if (r.Step == 3) afterWarmup = Snapshot(model);
            Assert.Equal(r.Step <= 3, model.Parameters.All.Count(p => !p.Trainable) > 0);   // frozen through the warm-up's steps only
        };
        trainer.Run();
        var cross = model.Parameters.All.Select(p => p.Name).Where(Trainer.Trainer.IsCrossAttention).ToHashSet();
        Assert.Equal(model.Config.DecoderLayers * 5, cross.Count);   // q, k, v, o and the norm of each block
        foreach (var (name, before) in initial)
        {
            if (cross.Contains(name)) Assert.NotEqual(before, afterWarmup![name]);
            else Assert.Equal(before, afterWarmup![name]);
            Assert.NotEqual(before, model.Parameters[name].Value.ToFloatArray());   // after the warm-up everything trains
        }
        Assert.All(model.Parameters.All, p => Assert.True(p.Trainable));
    }

    [Fact]
    public void AResumeAcrossTheWarmupReachesTheWeightsOfAnUninterruptedRun()
    {
        var options = new TrainingOptions { MaxSteps = 6, CrossAttentionOnlySteps = 3, LearningRate = 3e-3, WarmupSteps = 1, EvalEvery = 0, CheckpointEvery = 2, Seed = 2 };
        var batches = new FixedBatches(PrefixLmBatches());
        Dictionary<string, float[]> straight;
        using (var m = Adapted(CrossAttentionInit.Fresh))
        using (var t = new Trainer.Trainer(m, options, batches, Path.Combine(_dir, "a")))
        {
            t.Run();
            straight = Snapshot(m);
        }
        var dir = Path.Combine(_dir, "b");
        using (var m = Adapted(CrossAttentionInit.Fresh))
        using (var t = new Trainer.Trainer(m, options, batches, dir))
        {
            using var cts = new CancellationTokenSource();
            t.OnStep = r => { if (r.Step == 3) cts.Cancel(); };
            t.Run(cts.Token);
        }
        using (var m = Adapted(CrossAttentionInit.Copy, seed: 77))   // everything must come from checkpoint-2
        using (var t = new Trainer.Trainer(m, options, batches, dir))
        {
            Assert.True(t.Resume());
            Assert.Equal(2, t.State.Step);
            t.Run();
            foreach (var (name, want) in straight) Assert.Equal(want, m.Parameters[name].Value.ToFloatArray());
        }
    }

    [Fact]
    public void TheWarmupNeedsCrossAttention()
    {
        using var model = new DecoderOnlyModel(Presets.Get("tiny-decoder"), seed: 1);
        var e = Assert.Throws<ArgumentException>(() => new Trainer.Trainer(model, new TrainingOptions { CrossAttentionOnlySteps = 2 }, new FixedBatches([]), _dir));
        Assert.Contains("needs an encoder–decoder model", e.Message);
        Assert.Throws<ArgumentException>(() => new TrainingOptions { CrossAttentionOnlySteps = -1 }.Validate());
    }

    // A decoder-only model trained briefly on a small corpus, adapted into an encoder–decoder checkpoint.
    (string Corpus, string Decoder, string Adapted) MakeAdapted()
    {
        var r = new Random(3);
        string[] things = ["fonts", "images", "disks", "kernels", "parsers", "drivers", "archives", "shells"];
        string[] verbs = ["reads", "writes", "checks", "renders", "packs", "mounts"];
        var corpus = Path.Combine(_dir, "corpus.txt");
        File.WriteAllLines(corpus, Enumerable.Range(0, 120).Select(i =>
            $"this package {verbs[r.Next(verbs.Length)]} {things[r.Next(things.Length)]} and {things[r.Next(things.Length)]} for the {things[r.Next(things.Length)]} tool {i % 7}"));
        var decoder = Path.Combine(_dir, "decoder");
        using (var run = TrainingRun.Prepare(new TrainingRunOptions
        {
            Model = "tiny-decoder", Data = corpus, Output = decoder, TokenizerVocab = 400, MaxTokens = 1024, EvalExamples = 0,
            Objective = ObjectiveKind.CausalLm,
            Training = new TrainingOptions { MaxSteps = 20, LearningRate = 3e-3, WarmupSteps = 2, EvalEvery = 0, CheckpointEvery = 0 },
        }))
            run.Trainer.Run();
        var adapted = Path.Combine(_dir, "adapted");
        CheckpointAdaptation.Write(decoder, adapted);
        return (corpus, decoder, adapted);
    }

    static TrainingRunOptions Continue(string model, string corpus, string output, ObjectiveKind objective, int steps, string? teacher = null, TrainingOptions? training = null) => new()
    {
        Model = model, Data = corpus, Output = output, Tokenizer = model, MaxTokens = 1024, EvalExamples = 0, Objective = objective, Teacher = teacher,
        Training = training ?? new TrainingOptions { MaxSteps = steps, LearningRate = 2e-3, WarmupSteps = 2, EvalEvery = 0, CheckpointEvery = 0 },
    };

    [Fact]
    public void AnAdaptedCheckpointTrainsWithPrefixLmAndUl2()
    {
        var (corpus, _, adapted) = MakeAdapted();
        foreach (var objective in new[] { ObjectiveKind.PrefixLm, ObjectiveKind.Ul2 })
        {
            using var run = TrainingRun.Prepare(Continue(adapted, corpus, Path.Combine(_dir, objective.ToString()), objective, steps: 12));
            Assert.IsType<EncoderDecoderModel>(run.Model);
            Assert.Equal(objective == ObjectiveKind.Ul2 ? "ul2" : "prefix-lm", run.Batches.Objective.Name);
            Assert.True(run.Batches.Objective.HasSource);
            double before = run.Trainer.ValidationLoss();
            run.Trainer.Run();
            double after = run.Trainer.ValidationLoss();
            output.WriteLine($"{objective}: validation loss {before:0.000} → {after:0.000}");
            Assert.True(after < before, $"{objective}: validation loss {before:0.000} → {after:0.000}");
            using var back = Checkpoint.Load(run.Trainer.Checkpoints[^1]);
            Assert.Equal(run.Model.Config, back.Config);
        }
    }

    [Fact]
    public void PrefixLmDistillationFromTheDecoderOnlyOriginalRuns()
    {
        // `encore distill --teacher DECODER --student ADAPTED --objective prefix-lm`: the decoder-only teacher reads each
        // row's source (the prefix and its EOS) then its target, and its logits train the student's continuation.
        var (corpus, decoder, adapted) = MakeAdapted();
        var training = new TrainingOptions { MaxSteps = 15, LearningRate = 2e-3, WarmupSteps = 2, EvalEvery = 0, CheckpointEvery = 0, DistillAlpha = 1f, DistillTemperature = 1f };
        using var run = TrainingRun.Prepare(Continue(adapted, corpus, Path.Combine(_dir, "kd"), ObjectiveKind.PrefixLm, 15, teacher: decoder, training: training));
        Assert.IsType<DecoderOnlyModel>(run.Teacher);
        Assert.Equal("prefix-lm", run.Batches.Objective.Name);
        var batch = run.Batches.Epoch(0).First();
        var distillation = new Distillation(run.Teacher!, run.Model);
        double Kl()
        {
            using var s = Trainer.Trainer.Logits(run.Model, batch);
            using var flat = Ops.Reshape(s, batch.Size * batch.InputLength, run.Model.Config.VocabSize);
            using var t = distillation.Logits(batch);
            var mask = batch.Targets.Select(x => x != Labels.Ignore).ToArray();
            using var kl = Ops.KlDivergence(flat, t, 1f, mask);
            return kl.Value.ToFloatArray()[0];
        }
        double before = Kl();
        run.Trainer.Run();
        double after = Kl();
        output.WriteLine($"KL(teacher‖student) {before:0.000} → {after:0.000}");
        Assert.True(after < 0.8 * before, $"KL(teacher‖student) on the continuations: {before:0.000} → {after:0.000}");
    }
}
