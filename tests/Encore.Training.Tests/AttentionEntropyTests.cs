using Encore.Autograd;
using Encore.Models;
using Encore.Training.Metrics;
using Encore.Training.Objectives;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Training.Tests;

/// <summary>The per-head tally of attention entropy and the regularizer's sum over layers, against hand-computed values.</summary>
public class AttentionEntropyTests
{
    static AttentionEntropyRecord Record(string scope, float[] entropy, float[] visible, int[]? lengths, int b, int h, int t, int s) =>
        new(scope, false, Var.Constant(Tensor.FromArray(entropy, b, h, t)), visible, lengths, s);

    [Fact]
    public void TheTallyAveragesValidRowsPerHeadAndNormalizesByTheKeysEachRowSees()
    {
        // B = 2, H = 2, T = 3, causal: rows see 1, 2, 3 keys; item 1 has length 2 (its row 2 is padding).
        float[] visible = [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3];
        float[] entropy = [0, 0.5f, 1.0f, 0, 0.6f, 0.2f, 0, 0.3f, 9f, 0, 0.1f, 9f];
        var tally = new AttentionEntropyTally();
        tally.Add([Record("l0", entropy, visible, [3, 2], 2, 2, 3, 3)]);
        var layer = Assert.Single(tally.Result());
        // Head 0: rows (0, 0.5, 1.0) and (0, 0.3): mean 1.8 / 5 = 0.36 nats; normalized over rows seeing ≥ 2 keys:
        // (0.5/ln 2 + 1.0/ln 3 + 0.3/ln 2) / 3.
        Assert.Equal(0.36, layer.Entropy[0], 6);
        Assert.Equal((0.5 / Math.Log(2) + 1.0 / Math.Log(3) + 0.3 / Math.Log(2)) / 3, layer.Normalized[0], 6);
        // Head 1: (0, 0.6, 0.2) and (0, 0.1): 0.9 / 5.
        Assert.Equal(0.18, layer.Entropy[1], 6);
        Assert.Equal((0.6 / Math.Log(2) + 0.2 / Math.Log(3) + 0.1 / Math.Log(2)) / 3, layer.Normalized[1], 6);
        Assert.Equal(Math.Log(3), layer.ContextEntropy, 6);

        // A second pass adds to the sums: head 0 gets one more row of 2 keys at 0.4.
        tally.Add([Record("l0", [0, 0.4f, 0, 0], [1, 2, 1, 2], null, 1, 2, 2, 2)]);
        layer = tally.Result()[0];
        Assert.Equal(2.2 / 7, layer.Entropy[0], 6);
        Assert.Equal((0.5 / Math.Log(2) + 1.0 / Math.Log(3) + 0.3 / Math.Log(2) + 0.4 / Math.Log(2)) / 4, layer.Normalized[0], 6);
        Assert.Throws<ArgumentException>(() => tally.Add([Record("other", [0, 0], [1, 1], null, 1, 2, 1, 1)]));
    }

    [Fact]
    public void TheRegularizerIsLambdaTimesTheMeanOfTheLayersPenalties()
    {
        using var model = LanguageModel.Create(Presets.Get("tiny-decoder"), 1);
        int layers = model.Config.DecoderLayers, h = model.Config.Heads;
        using var reg = new EntropyRegularizer(model, new EntropyRegularizerOptions { Weight = 0.01f, Tolerance = 0.1f, InitialThreshold = 0.4f });
        Assert.Equal(layers, reg.Thresholds.Count);
        Assert.All(reg.Thresholds, p => Assert.Equal(Enumerable.Repeat(0.4f, h), p.Value.ToFloatArray()));
        // Every layer: B = 1, T = 2, S = 4 (Hmax = ln 4, margin 0.1·ln 4, threshold 0.4·ln 4); head j, row i has H = 0.3·(i + j).
        var records = new List<AttentionEntropyRecord>();
        double expected = 0, hmax = Math.Log(4);
        for (int l = 0; l < layers; l++)
        {
            var e = new float[h * 2];
            double layerSum = 0;
            for (int j = 0; j < h; j++)
                for (int i = 0; i < 2; i++)
                {
                    e[j * 2 + i] = 0.3f * (i + j + l);
                    double delta = e[j * 2 + i] - 0.4f * hmax;
                    if (Math.Abs(delta) > 0.1 * hmax) layerSum += delta * delta;
                }
            expected += layerSum / h;
            records.Add(Record($"l{l}", e, [.. Enumerable.Repeat(4f, h * 2)], null, 1, h, 2, 4));
        }
        expected = 0.01 * expected / layers;
        using var loss = reg.Loss(records);
        Assert.Equal(expected, loss.Value.ToFloatArray()[0], 5);
        Assert.Throws<InvalidOperationException>(() => reg.Loss(records.Take(1).ToList()));
    }
}
