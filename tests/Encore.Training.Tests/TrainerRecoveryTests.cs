using Encore.Autograd;
using Encore.Formats;
using Encore.Models;
using Encore.Training.Trainer;

namespace Encore.Training.Tests;

/// <summary>What a trainer finds in its directory after a kill or a bad step: stale temporaries, NaN losses, a corrupt state file.</summary>
public class TrainerRecoveryTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-recover-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static Batch OneBatch()
    {
        // Two rows of source 2,3,4 → target 4,3,2 then EOS 1; the decoder starts from 0.
        return new Batch
        {
            Size = 2, SourceLength = 3, Source = [2, 3, 4, 2, 3, 4], SourceLengths = [3, 3],
            InputLength = 4, Inputs = [0, 4, 3, 2, 0, 4, 3, 2], InputLengths = [4, 4], Targets = [4, 3, 2, 1, 4, 3, 2, 1],
        };
    }

    static ModelConfig Config => Presets.Get("tiny-encdec") with { VocabSize = 8 };

    static TrainingOptions Options => new() { MaxSteps = 4, LearningRate = 1e-3, WarmupSteps = 1, CheckpointEvery = 2, EvalEvery = 0 };

    [Fact]
    public void StartingATrainerRemovesTheTemporariesOfAKilledWrite()
    {
        // What a kill during SaveCheckpoint or an atomic file write leaves behind.
        var half = Directory.CreateDirectory(Path.Combine(_dir, ".checkpoint-5.4242.tmp")).FullName;
        File.WriteAllText(Path.Combine(half, "model.safetensors"), "cut");
        File.WriteAllText(Path.Combine(_dir, ".metrics.jsonl.4242.0123456789abcdef.tmp"), "cut");
        File.WriteAllText(Path.Combine(_dir, "notes.txt"), "mine");
        using var m = new EncoderDecoderModel(Config, seed: 1);
        using var t = new Trainer.Trainer(m, Options, new FixedBatches([OneBatch()]), _dir);
        Assert.Empty(Directory.GetDirectories(_dir, ".checkpoint-*"));
        Assert.Empty(Directory.GetFiles(_dir, ".*.tmp"));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(_dir, "notes.txt")));
    }

    [Fact]
    public void ARunWhoseLogHoldsANaNLossResumes()
    {
        using (var m = new EncoderDecoderModel(Config, seed: 1))
        using (var t = new Trainer.Trainer(m, Options with { MaxSteps = 2 }, new FixedBatches([OneBatch()]), _dir))
            t.Run();
        // A diverged step is logged as "NaN" (the serializer writes non-finite numbers as strings).
        var metrics = Path.Combine(_dir, "metrics.jsonl");
        var lines = File.ReadAllLines(metrics);
        lines[0] = System.Text.RegularExpressions.Regex.Replace(lines[0], "\"loss\":[^,]+", "\"loss\":\"NaN\"");
        Assert.Contains("\"loss\":\"NaN\"", lines[0]);
        File.WriteAllLines(metrics, lines);
        using (var m = new EncoderDecoderModel(Config, seed: 1))
        using (var t = new Trainer.Trainer(m, Options, new FixedBatches([OneBatch()]), _dir))
        {
            Assert.True(t.Resume());
            Assert.Equal(2, t.State.Step);
            t.Run();
            Assert.Equal(4, t.State.Step);
        }
        Assert.Contains("\"loss\":\"NaN\"", File.ReadAllLines(metrics)[0]);
    }

    [Theory]
    [InlineData("{\"step\": 2, \"epo")]
    [InlineData("not json")]
    [InlineData("null")]
    [InlineData("{\"step\": \"two\"}")]
    [InlineData("{\"step\": -5}")]
    public void ACorruptStateFileIsAnErrorThatNamesTheFileAndTheWayOut(string content)
    {
        using (var m = new EncoderDecoderModel(Config, seed: 1))
        using (var t = new Trainer.Trainer(m, Options with { MaxSteps = 2 }, new FixedBatches([OneBatch()]), _dir))
            t.Run();
        var state = Path.Combine(_dir, "checkpoint-2", "trainer_state.json");
        File.WriteAllText(state, content);
        using var m2 = new EncoderDecoderModel(Config, seed: 1);
        using var t2 = new Trainer.Trainer(m2, Options, new FixedBatches([OneBatch()]), _dir);
        var e = Assert.Throws<CheckpointFormatException>(() => t2.Resume());
        Assert.Contains(state, e.Message);
        Assert.Contains("--overwrite", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}

/// <summary>The encoder's own-token loss of encoder–decoders trained from scratch.</summary>
public class EncoderTokenLossTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-enctok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TheStepLossIsTheDecoderLossPlusTheWeightedEncoderTokenLoss()
    {
        var config = Presets.Get("tiny-encdec") with { VocabSize = 8 };
        var b = new Batch
        {
            Size = 2, SourceLength = 3, Source = [2, 3, 4, 5, 6, 0], SourceLengths = [3, 2],
            InputLength = 3, Inputs = [0, 4, 3, 0, 6, 0], InputLengths = [3, 2], Targets = [4, 3, 1, 6, 1, Labels.Ignore],
        };
        double expected;
        using (var m = new EncoderDecoderModel(config, seed: 1))
        {
            using var logits = Ops.Reshape(m.Forward(b.Source, b.SourceLengths, b.Inputs, b.Size), 6, 8);
            using var ce = Ops.CrossEntropy(logits, b.Targets);
            using var memory = m.Encode(b.Source, b.Size, b.SourceLengths);
            using var own = Ops.Reshape(m.Logits(memory), 6, 8);
            // Row 1's third source position is padding and carries no loss.
            using var enc = Ops.CrossEntropy(own, [2, 3, 4, 5, 6, Labels.Ignore]);
            expected = ce.Value.ToFloatArray()[0] + 0.25 * enc.Value.ToFloatArray()[0];
        }
        using (var m = new EncoderDecoderModel(config, seed: 1))
        using (var t = new Trainer.Trainer(m, new TrainingOptions { MaxSteps = 1, WarmupSteps = 0, EvalEvery = 0, CheckpointEvery = 0, EncoderTokenLoss = 0.25f },
            new FixedBatches([b]), _dir))
        {
            double logged = double.NaN;
            t.OnStep = r => logged = r.Loss;
            t.Run();
            Assert.Equal(expected, logged, 5);
        }
        Assert.Throws<ArgumentException>(() => new TrainingOptions { EncoderTokenLoss = -1 }.Validate());
    }
}
