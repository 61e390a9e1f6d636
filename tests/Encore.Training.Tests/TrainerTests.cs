using Encore.Autograd;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Objectives;
using Encore.Training.Trainer;

namespace Encore.Training.Tests;

public class TrainerTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-train-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Sort task on a tiny vocabulary: distinct source tokens → the same tokens ascending, then EOS = 1;
    // the decoder starts from 0. It needs content-based cross-attention, not positions.
    static Batch MakeBatch(Random r, int size, int length)
    {
        var src = new int[size * length];
        var inputs = new int[size * (length + 1)];
        var targets = new int[size * (length + 1)];
        for (int i = 0; i < size; i++)
        {
            var distinct = Enumerable.Range(2, 10).OrderBy(_ => r.Next()).Take(length).ToArray();
            distinct.CopyTo(src, i * length);
            var sorted = distinct.Order().ToArray();
            inputs[i * (length + 1)] = 0;
            for (int j = 0; j < length; j++)
            {
                int tok = sorted[j];
                targets[i * (length + 1) + j] = tok;
                inputs[i * (length + 1) + j + 1] = tok;
            }
            targets[i * (length + 1) + length] = 1;
        }
        return new Batch
        {
            Size = size, SourceLength = length, Source = src, SourceLengths = Enumerable.Repeat(length, size).ToArray(),
            InputLength = length + 1, Inputs = inputs, InputLengths = Enumerable.Repeat(length + 1, size).ToArray(), Targets = targets,
        };
    }

    static ModelConfig Config => Presets.Get("tiny-encdec") with { VocabSize = 12 };

    sealed class RandomBatches(int count, ulong seed) : IBatchSource
    {
        public IReadOnlyList<Batch> Epoch(int epoch)
        {
            var r = new Random((int)seed + epoch * 7919);
            return Enumerable.Range(0, count).Select(_ => MakeBatch(r, 8, 4)).ToList();
        }
    }

    [Fact]
    public void ATinyEncoderDecoderLearnsToSortAndItsValidationLossFalls()
    {
        using var model = new EncoderDecoderModel(Config, seed: 1);
        var validation = new RandomBatches(2, 999).Epoch(0);
        var options = new TrainingOptions { MaxSteps = 600, LearningRate = 5e-3, WarmupSteps = 20, EvalEvery = 200, CheckpointEvery = 0 };
        using var trainer = new Trainer.Trainer(model, options, new RandomBatches(20, 3), _dir, validation);
        var evals = new List<EvalReport>();
        trainer.OnEval = evals.Add;
        double before = trainer.ValidationLoss();
        trainer.Run();
        double after = evals[^1].Loss;
        // Uniform guessing over 12 ids costs ln 12 ≈ 2.48 nats; knowing only which tokens occur
        // (not their order) still costs about ln 4 ≈ 1.4 on the first position. The bound asks for the sort.
        Assert.True(after < 0.5, $"validation loss went from {before:0.000} to {after:0.000}");
        Assert.Equal(3, evals.Count);
        Assert.True(File.Exists(trainer.MetricsPath));
        Assert.Equal(600 + 3, File.ReadAllLines(trainer.MetricsPath).Length);
        Assert.True(File.Exists(Path.Combine(_dir, "loss.png")));
        Assert.Single(trainer.Checkpoints);   // the final one
    }

    static float[] Weights(LanguageModel m) => m.Parameters.All.SelectMany(p => p.Value.ToFloatArray()).ToArray();

    [Fact]
    public void ResumingFromACheckpointReachesTheSameWeightsAsAnUninterruptedRun()
    {
        var options = new TrainingOptions
        {
            MaxSteps = 12, LearningRate = 3e-3, WarmupSteps = 3, CheckpointEvery = 4, EvalEvery = 0, GradientAccumulation = 2, Seed = 5,
        };
        var cfg = Config with { Dropout = 0.1f };
        float[] straight;
        using (var m = new EncoderDecoderModel(cfg, seed: 2))
        using (var t = new Trainer.Trainer(m, options, new RandomBatches(5, 1), Path.Combine(_dir, "a")))
        {
            t.Run();
            straight = Weights(m);
        }
        // Interrupted after step 6 (cancelled), then a fresh process-like restart resumes from checkpoint-4.
        var dir = Path.Combine(_dir, "b");
        using (var m = new EncoderDecoderModel(cfg, seed: 2))
        using (var t = new Trainer.Trainer(m, options, new RandomBatches(5, 1), dir))
        {
            using var cts = new CancellationTokenSource();
            t.OnStep = r => { if (r.Step == 6) cts.Cancel(); };
            t.Run(cts.Token);
            Assert.Equal(6, t.State.Step);
        }
        using (var m = new EncoderDecoderModel(cfg, seed: 77))     // different init: everything must come from the checkpoint
        using (var t = new Trainer.Trainer(m, options, new RandomBatches(5, 1), dir))
        {
            Assert.True(t.Resume());
            Assert.Equal(4, t.State.Step);
            t.Run();
            Assert.Equal(straight, Weights(m));
            Assert.Equal(12, File.ReadAllLines(t.MetricsPath).Count(l => l.Contains("\"loss\"")));
        }
    }

    [Fact]
    public void ALoraRunTrainsTheAdapterAloneAndResumesToTheSameAdapter()
    {
        var options = new TrainingOptions { MaxSteps = 10, LearningRate = 1e-2, WarmupSteps = 2, CheckpointEvery = 4, EvalEvery = 0, Seed = 5 };
        var lora = new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0.1f, Targets = LoraTargets.All };
        (float[] Adapter, float[] Base) Run(string dir, int stopAt, bool resume, ulong adapterSeed)
        {
            using var m = new EncoderDecoderModel(Config, seed: 2);
            var baseBefore = Weights(m);
            using var a = LoraAdapter.Create(m, lora, adapterSeed);
            m.Adapters.Active = a;
            using var t = new Trainer.Trainer(m, options, new RandomBatches(5, 1), dir, adapter: new AdapterTraining(a, "encore", "base"));
            Assert.Equal(a.ParameterCount, t.TrainableParameters);
            if (resume) Assert.True(t.Resume());
            using var cts = new CancellationTokenSource();
            t.OnStep = r => { if (r.Step == stopAt) cts.Cancel(); };
            t.Run(cts.Token);
            Assert.Equal(baseBefore, Weights(m));                            // the base is never updated
            Assert.All(m.Parameters.All, p => Assert.True(p.Grad is null || p.Grad.ToFloatArray().All(g => g == 0)));
            return (a.Parameters.All.SelectMany(p => p.Value.ToFloatArray()).ToArray(), baseBefore);
        }
        var straight = Run(Path.Combine(_dir, "lora-a"), 0, resume: false, adapterSeed: 5);
        var dir = Path.Combine(_dir, "lora-b");
        Run(dir, 6, resume: false, adapterSeed: 5);
        Assert.True(File.Exists(Path.Combine(dir, "checkpoint-4", "adapter_model.safetensors")));
        Assert.False(File.Exists(Path.Combine(dir, "checkpoint-4", "model.safetensors")));
        var resumed = Run(dir, 0, resume: true, adapterSeed: 77);           // another init: the adapter must come from the checkpoint
        Assert.Equal(straight.Adapter, resumed.Adapter);
        Assert.Contains(straight.Adapter, v => v != 0);
    }

    [Fact]
    public void ARunForkedFromAnotherRunsCheckpointContinuesItsScheduleAndLog()
    {
        var options = new TrainingOptions
        {
            MaxSteps = 8, LearningRate = 3e-3, WarmupSteps = 2, CheckpointEvery = 4, KeepCheckpoints = 2, EvalEvery = 0, Seed = 5,
        };
        var a = Path.Combine(_dir, "a");
        float[] straight;
        using (var m = new EncoderDecoderModel(Config, seed: 2))
        using (var t = new Trainer.Trainer(m, options, new RandomBatches(5, 1), a))
        {
            t.Run();
            straight = Weights(m);
        }
        var b = Path.Combine(_dir, "b");
        using (var m = new EncoderDecoderModel(Config, seed: 77))
        using (var t = new Trainer.Trainer(m, options, new RandomBatches(5, 1), b))
        {
            t.ResumeFrom(Path.Combine(a, "checkpoint-4"), Path.Combine(a, "metrics.jsonl"));
            Assert.Equal(4, t.State.Step);
            Assert.Equal(4, File.ReadAllLines(t.MetricsPath).Count(l => l.Contains("\"loss\"")));   // a's first four steps
            t.Run();
            Assert.Equal(straight, Weights(m));
            Assert.Equal(File.ReadAllLines(Path.Combine(a, "metrics.jsonl")).Length, File.ReadAllLines(t.MetricsPath).Length);
        }
        Assert.Equal(8, File.ReadAllLines(Path.Combine(a, "metrics.jsonl")).Count(l => l.Contains("\"loss\"")));   // the original is untouched
        using (var m = new EncoderDecoderModel(Config, seed: 2))
        using (var t = new Trainer.Trainer(m, options, new RandomBatches(5, 1), Path.Combine(_dir, "c")))
        {
            Assert.Contains("nothing left", Assert.Throws<ArgumentException>(() => t.ResumeFrom(Path.Combine(a, "checkpoint-8"))).Message);
            Assert.Contains("not a training checkpoint", Assert.Throws<ArgumentException>(() => t.ResumeFrom(a)).Message);
        }
        using (var m = new EncoderDecoderModel(Config, seed: 2))
        using (var t = new Trainer.Trainer(m, options with { Seed = 6 }, new RandomBatches(5, 1), Path.Combine(_dir, "d")))
            Assert.Contains("seed", Assert.Throws<ArgumentException>(() => t.ResumeFrom(Path.Combine(a, "checkpoint-4"))).Message);
    }

    [Fact]
    public void ADecoderOnlyTeachersLogitsAreAlignedWithTheStudentsTargets()
    {
        using var student = new EncoderDecoderModel(Config, seed: 3);
        using var teacher = new DecoderOnlyModel(Presets.Get("tiny-decoder") with { VocabSize = 12 }, seed: 4);
        var d = new Distillation(teacher, student);
        var b = MakeBatch(new Random(1), 2, 3);
        using var aligned = d.Logits(b);                                   // (B·T, V)
        // Example 1: teacher sees src(3) + targets(4); target j is predicted at position 2 + j.
        var seq = b.Source[3..6].Concat(b.Targets[4..8]).ToArray();
        using var full = teacher.Forward(seq, 1);
        var f = full.Value.ToFloatArray();
        var a = aligned.Value.ToFloatArray();
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 12; k++)
                Assert.Equal(f[(2 + j) * 12 + k], a[((1 * 4) + j) * 12 + k], 4);
        using var other = new DecoderOnlyModel(Presets.Get("tiny-decoder"), seed: 4);
        Assert.Contains("share a tokenizer", Assert.Throws<ArgumentException>(() => new Distillation(other, student)).Message);
    }

    [Fact]
    public void ADecoderOnlyTeacherReadsAnEncoderDecoderExampleAsItsOwnTrainingLaidItOut()
    {
        // The teacher was trained on CausalLm rows (BOS x y EOS); the student's rows are Seq2Seq
        // (source x EOS, targets y EOS). The aligned logits for each student target must be the
        // teacher's logits at the position of the same target in the teacher's own row.
        using var student = new EncoderDecoderModel(Config, seed: 3);
        using var teacher = new DecoderOnlyModel(Presets.Get("tiny-decoder") with { VocabSize = 12, BosTokenId = 2 }, seed: 4);
        int[][] xs = [[5, 6, 7, 8], [9, 3]];
        int[][] ys = [[4, 10], [11, 5, 6]];
        var s2s = new Seq2SeqOptions { PadId = 0, EosId = 1, DecoderStartId = 0 };
        var clm = new CausalLmOptions { PadId = 0, EosId = 1, BosId = 2 };
        var rows = xs.Select((x, i) => Seq2SeqObjective.Build(x, ys[i], s2s)).ToArray();
        var b = TrainingBatches.Collate(rows, 0, [0, 1], hasSource: true);
        using var aligned = new Distillation(teacher, student).Logits(b);   // (B·T, V)
        var a = aligned.Value.ToFloatArray();
        for (int i = 0; i < xs.Length; i++)
        {
            var row = CausalLmObjective.Build(xs[i], ys[i], clm);
            using var full = teacher.Forward(row.Inputs, 1);
            var f = full.Value.ToFloatArray();
            int j = 0;
            for (int p = 0; p < row.Targets.Length; p++)
            {
                if (row.Targets[p] == Labels.Ignore) continue;
                Assert.Equal(row.Targets[p], b.Targets[i * b.InputLength + j]);
                for (int k = 0; k < 12; k++) Assert.Equal(f[p * 12 + k], a[(i * b.InputLength + j) * 12 + k], 1e-4f); // two batch layouts: equal to rounding
                j++;
            }
            Assert.Equal(ys[i].Length + 1, j);
        }
    }

    [Fact]
    public void DistillationTrainsTheStudentTowardsTheTeacher()
    {
        using var student = new EncoderDecoderModel(Config, seed: 3);
        using var teacher = new EncoderDecoderModel(Config, seed: 9);
        var options = new TrainingOptions { MaxSteps = 30, LearningRate = 3e-3, WarmupSteps = 0, EvalEvery = 0, CheckpointEvery = 0, DistillAlpha = 1f, DistillTemperature = 1f };
        var batches = new RandomBatches(4, 2);
        double Kl()
        {
            var b = batches.Epoch(0)[0];
            using var s = Trainer.Trainer.Logits(student, b);
            using var t = Trainer.Trainer.Logits(teacher, b);
            using var sf = Ops.Reshape(s, b.Size * b.InputLength, 12);
            using var tf = Ops.Reshape(t, b.Size * b.InputLength, 12);
            using var kl = Ops.KlDivergence(sf, tf, 1f);
            return kl.Value.ToFloatArray()[0];
        }
        double before = Kl();
        using var trainer = new Trainer.Trainer(student, options, batches, _dir, teacher: new Distillation(teacher, student));
        trainer.Run();
        Assert.True(Kl() < before * 0.5, $"KL(teacher‖student) went from {before} to {Kl()}");
    }
}
