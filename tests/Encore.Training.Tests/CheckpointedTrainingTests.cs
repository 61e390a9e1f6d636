using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Objectives;
using Encore.Training.Trainer;

namespace Encore.Training.Tests;

/// <summary>A training run with activation checkpointing follows the run without it.</summary>
public sealed class CheckpointedTrainingTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-ckpt-train-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static List<Batch> Batches()
    {
        var r = new Random(4);
        var data = TokenizedDataset.FromIds(Enumerable.Range(0, 24).Select(_ => Enumerable.Range(0, r.Next(6, 14)).Select(_ => r.Next(3, 64)).ToArray()).ToArray());
        var objective = new PrefixLmObjective(new Seq2SeqOptions { PadId = 0, EosId = 1, DecoderStartId = 2 }, seed: 1);
        return new TrainingBatches(data, objective, new BucketingOptions { MaxTokens = 256 }).Epoch(0).ToList();
    }

    List<float> Run(bool checkpoint, string name)
    {
        using var model = new EncoderDecoderModel(Presets.Get("tiny-encdec") with { Dropout = 0.1f }, seed: 5);
        var options = new TrainingOptions { MaxSteps = 8, LearningRate = 3e-3, WarmupSteps = 0, EvalEvery = 0, CheckpointEvery = 0, CheckpointActivations = checkpoint };
        using var trainer = new Trainer.Trainer(model, options, new FixedBatches(Batches()), Path.Combine(_dir, name));
        Assert.Equal(checkpoint, model.CheckpointActivations);
        var losses = new List<float>();
        trainer.OnStep = r => losses.Add((float)r.Loss);
        trainer.Run();
        return losses;
    }

    [Fact]
    public void TheOptionReachesTheModelAndTheLossCurveStaysTheSame()
    {
        var plain = Run(checkpoint: false, "plain");
        var checkpointed = Run(checkpoint: true, "checkpointed");
        Assert.Equal(8, plain.Count);
        Assert.Equal(plain.Count, checkpointed.Count);
        // Same gradients up to rounding, so after eight AdamW steps the losses agree closely.
        for (int i = 0; i < plain.Count; i++)
            Assert.True(Math.Abs(plain[i] - checkpointed[i]) <= 1e-4f * Math.Abs(plain[i]) + 1e-5f, $"step {i + 1}: {plain[i]} without checkpointing, {checkpointed[i]} with");
    }
}
