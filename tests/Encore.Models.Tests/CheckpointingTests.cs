using Encore.Autograd;

namespace Encore.Models.Tests;

/// <summary>Activation checkpointing changes memory and time, never the gradients.</summary>
public class CheckpointingTests
{
    // Loss and every parameter's gradient after one recorded forward and backward pass.
    static (float Loss, Dictionary<string, float[]> Grads) Step(LanguageModel m, bool checkpoint, ulong dropoutSeed)
    {
        m.CheckpointActivations = checkpoint;
        foreach (var p in m.Parameters.All) p.ZeroGrad();
        var r = new Random(11);
        int b = 3, s = 7, v = m.Config.VocabSize;
        var src = Enumerable.Range(0, b * s).Select(_ => r.Next(2, v)).ToArray();
        var tin = Enumerable.Range(0, b * s).Select(_ => r.Next(2, v)).ToArray();
        var labels = Enumerable.Range(0, b * s).Select(_ => r.Next(2, v)).ToArray();
        using var tape = Tape.Record();
        var logits = m switch
        {
            EncoderDecoderModel ed => ed.Forward(src, [7, 5, 6], tin, b, dropoutSeed),
            DecoderOnlyModel dec => dec.Forward(tin, b, null, null, dropoutSeed),
            _ => throw new InvalidOperationException(),
        };
        var loss = Ops.CrossEntropy(Ops.Reshape(logits, b * s, v), labels);
        float value = loss.Value.ToFloatArray()[0];
        tape.Backward(loss);
        return (value, m.Parameters.All.Where(p => p.Grad != null).ToDictionary(p => p.Name, p => p.Grad!.ToFloatArray()));
    }

    [Theory]
    [InlineData("tiny-encdec", "t5")]
    [InlineData("tiny-encdec", "rope")]
    [InlineData("tiny-decoder", "rope")]
    public void CheckpointedBlocksGiveTheSameLossAndGradients(string preset, string positions)
    {
        var config = Presets.Get(preset) with { Dropout = 0.2f };
        if (positions == "t5")
            config = config with
            {
                EncoderPositions = new PositionConfig { Kind = PositionKind.T5Relative },
                DecoderPositions = new PositionConfig { Kind = PositionKind.T5Relative },
            };
        using var m = LanguageModel.Create(config, seed: 5);
        var (plainLoss, plain) = Step(m, checkpoint: false, dropoutSeed: 99);
        var (ckptLoss, ckpt) = Step(m, checkpoint: true, dropoutSeed: 99);
        Assert.Equal(plainLoss, ckptLoss);
        Assert.Equal(plain.Keys.Order(), ckpt.Keys.Order());
        foreach (var (name, g) in plain)
        {
            var c = ckpt[name];
            for (int i = 0; i < g.Length; i++)
                Assert.True(MathF.Abs(g[i] - c[i]) <= 1e-6f + 1e-5f * MathF.Abs(g[i]), $"{name}[{i}]: {g[i]} without checkpointing, {c[i]} with");
        }
        // Dropout is on: a different seed changes the loss, so the equality above is not dropout being off.
        Assert.NotEqual(plainLoss, Step(m, checkpoint: true, dropoutSeed: 100).Loss);
    }
}
