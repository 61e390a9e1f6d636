using Encore.Autograd;
using Encore.Models;
using Encore.Training.Trainer;

namespace Encore.Training.Tests;

/// <summary>On-policy distillation: the student's own samples, laid out as training rows, scored by the teacher.</summary>
public class OnPolicyTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-onpolicy-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    const int V = 12;

    // Sources of 2–4 ids in [2, 12), references of 3 ids then EOS = 1; the decoder starts from 0.
    static Batch EncDecBatch(int seed)
    {
        var r = new Random(seed);
        int b = 3, s = 4, t = 4;
        var source = new int[b * s];
        var lengths = new int[b];
        var inputs = new int[b * t];
        var targets = Enumerable.Repeat(Labels.Ignore, b * t).ToArray();
        for (int i = 0; i < b; i++)
        {
            lengths[i] = r.Next(2, s + 1);
            for (int j = 0; j < lengths[i]; j++) source[i * s + j] = r.Next(2, V);
            for (int j = 0; j < 3; j++) targets[i * t + j] = inputs[i * t + j + 1] = r.Next(2, V);
            targets[i * t + 3] = 1;
        }
        return new Batch { Size = b, SourceLength = s, Source = source, SourceLengths = lengths, InputLength = t, Inputs = inputs, InputLengths = [t, t, t], Targets = targets };
    }

    static ModelConfig Tiny(string preset) => Presets.Get(preset) with { VocabSize = V, EosTokenId = 1, PadTokenId = 0, DecoderStartTokenId = 0 };

    [Fact]
    public void AnEncoderDecoderStudentsSamplesKeepTheSourcesAndAreLaidOutAsTrainingRows()
    {
        using var student = new EncoderDecoderModel(Tiny("tiny-encdec"), seed: 3);
        var sampler = new OnPolicySampler(student, new OnPolicyOptions { MaxNewTokens = 6 });
        var b = EncDecBatch(1);
        var s = sampler.Sample(b, seed: 7);
        Assert.Equal(b.Size, s.Size);
        for (int i = 0; i < b.Size; i++)
        {
            Assert.Equal(b.Source.AsSpan(i * b.SourceLength, b.SourceLengths[i]).ToArray(), s.Source.AsSpan(i * s.SourceLength, s.SourceLengths[i]).ToArray());
            int n = s.InputLengths[i];
            // At most the longest reference (3 ids + EOS); inputs = START, then the targets shifted right.
            Assert.InRange(n, 1, 4);
            Assert.Equal(0, s.Inputs[i * s.InputLength]);
            for (int j = 1; j < n; j++) Assert.Equal(s.Targets[i * s.InputLength + j - 1], s.Inputs[i * s.InputLength + j]);
            for (int j = n; j < s.InputLength; j++) Assert.Equal(Labels.Ignore, s.Targets[i * s.InputLength + j]);
            // EOS can only end a sample.
            for (int j = 0; j < n - 1; j++) Assert.NotEqual(1, s.Targets[i * s.InputLength + j]);
        }
        // The same seed draws the same samples; the tape is not touched.
        using (var tape = Tape.Record())
        {
            Assert.Equal(s.Targets, sampler.Sample(b, seed: 7).Targets);
            Assert.Equal(0, tape.Count);
        }
        var others = Enumerable.Range(8, 6).Select(seed => sampler.Sample(b, (ulong)seed).Targets);
        Assert.Contains(others, t => !t.SequenceEqual(s.Targets));
    }

    [Fact]
    public void ADecoderOnlyStudentKeepsEachPromptAndTakesLossOnItsSampleOnly()
    {
        using var student = new DecoderOnlyModel(Tiny("tiny-decoder"), seed: 3);
        // Row: prompt 5 6 7 (no loss on 5, 6), reference 8 9 then EOS.
        var b = new Batch
        {
            Size = 1, InputLength = 5, Inputs = [5, 6, 7, 8, 9], InputLengths = [5], Targets = [Labels.Ignore, Labels.Ignore, 8, 9, 1],
        };
        var s = new OnPolicySampler(student).Sample(b, seed: 2);
        int n = s.InputLengths[0];
        Assert.Equal([5, 6, 7], s.Inputs[..3]);
        Assert.Equal([Labels.Ignore, Labels.Ignore], s.Targets[..2]);
        Assert.InRange(n, 3, 5);
        for (int j = 3; j < n; j++) Assert.Equal(s.Targets[j - 1], s.Inputs[j]);
        Assert.All(s.Targets[2..n], t => Assert.NotEqual(Labels.Ignore, t));
    }

    [Fact]
    public void OnPolicyDistillationBringsTheStudentsSamplesTowardsTheTeacher()
    {
        using var student = new EncoderDecoderModel(Tiny("tiny-encdec"), seed: 3);
        using var teacher = new EncoderDecoderModel(Tiny("tiny-encdec"), seed: 9);
        var batches = new FixedBatches([EncDecBatch(1), EncDecBatch(2)]);
        var sampler = new OnPolicySampler(student);
        // KL(teacher ‖ student) on the student's own samples, averaged over a few draws.
        double Kl()
        {
            double sum = 0;
            for (ulong seed = 100; seed < 104; seed++)
            {
                var s = sampler.Sample(EncDecBatch(1), seed);
                using var sl = Ops.Reshape(Trainer.Trainer.Logits(student, s), s.Size * s.InputLength, V);
                using var tl = Ops.Reshape(Trainer.Trainer.Logits(teacher, s), s.Size * s.InputLength, V);
                using var kl = Ops.KlDivergence(sl, tl, 1f, s.Targets.Select(t => t != Labels.Ignore).ToArray());
                sum += kl.Value.ToFloatArray()[0];
            }
            return sum / 4;
        }
        double before = Kl();
        var options = new TrainingOptions
        {
            MaxSteps = 40, LearningRate = 3e-3, WarmupSteps = 0, EvalEvery = 0, CheckpointEvery = 0,
            DistillAlpha = 0.9f, DistillTemperature = 1f, DistillOnPolicy = true,
        };
        using (var trainer = new Trainer.Trainer(student, options, batches, _dir, teacher: new Distillation(teacher, student)))
            trainer.Run();
        double after = Kl();
        Assert.True(after < before * 0.7, $"KL(teacher‖student) on the student's samples went from {before} to {after}");
    }
}
