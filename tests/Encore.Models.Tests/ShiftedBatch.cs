using Encore.Autograd;
using Encore.Autograd.Optim;

namespace Encore.Models.Tests;

/// <summary>A fixed batch an encoder–decoder learns by heart: each target repeats the source, shifted by one position.</summary>
static class ShiftedBatch
{
    /// <summary>Trains <paramref name="m"/> (vocabulary 64) on one fixed batch for <paramref name="steps"/> AdamW steps (lr 1e-2, seed 7); returns the first and last losses.</summary>
    public static (float First, float Last) Train(EncoderDecoderModel m, int steps)
    {
        using var opt = new AdamW(m.Parameters.All, new AdamWOptions { WeightDecay = 0 }) { LearningRate = 1e-2 };
        var r = new Random(7);
        float first = 0, last = 0;
        int b = 4, s = 5;
        var src = Enumerable.Range(0, b * s).Select(_ => r.Next(2, 64)).ToArray();
        var tin = new int[b * s];
        var labels = new int[b * s];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < s; j++)
            {
                tin[i * s + j] = j == 0 ? 0 : src[i * s + j - 1];
                labels[i * s + j] = src[i * s + j];
            }
        for (int step = 0; step < steps; step++)
        {
            opt.ZeroGrad();
            using var tape = Tape.Record();
            var loss = Ops.CrossEntropy(Ops.Reshape(m.Forward(src, null, tin, b), b * s, 64), labels);
            if (step == 0) first = loss.Value.ToFloatArray()[0];
            last = loss.Value.ToFloatArray()[0];
            tape.Backward(loss);
            opt.Update();
        }
        return (first, last);
    }
}
