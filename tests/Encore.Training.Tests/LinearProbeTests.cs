using Encore.Training.Metrics;

namespace Encore.Training.Tests;

/// <summary>The linear probe: its objective and gradient against hand values and central differences, and its fits.</summary>
public class LinearProbeTests
{
    [Fact]
    public void AtZeroTheLossIsLogOfTheClassCountAndTheGradientIsWorkedOutByHand()
    {
        // Two examples, D = 2, C = 3; all weights zero → every class at probability 1/3, loss ln 3.
        float[][] z = [[1, 2], [-1, 0.5f]];
        int[] y = [0, 2];
        var grad = new double[3 * 2 + 3];
        double loss = LinearProbe.LossAndGradient(z, y, new double[6], new double[3], 2, 0, grad);
        Assert.Equal(Math.Log(3), loss, 12);
        // ∂L/∂W[c] = Σ_i (1/3 − [c = y_i]) z_i / 2:
        //   c0: ((1/3 − 1)(1, 2) + (1/3)(−1, 0.5)) / 2 = (−1/2, −7/12)
        //   c1: ((1/3)(1, 2) + (1/3)(−1, 0.5)) / 2     = (0, 5/12)
        //   c2: ((1/3)(1, 2) + (1/3 − 1)(−1, 0.5)) / 2 = (1/2, 1/6)
        // ∂L/∂b[c] = Σ_i (1/3 − [c = y_i]) / 2 = (−1/6, 1/3, −1/6)
        double[] expected = [-0.5, -7.0 / 12, 0, 5.0 / 12, 0.5, 1.0 / 6, -1.0 / 6, 1.0 / 3, -1.0 / 6];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], grad[i], 6);
    }

    [Fact]
    public void TheGradientMatchesCentralDifferences()
    {
        var r = new Random(3);
        int n = 5, d = 3, k = 4;
        var z = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, d).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray()).ToArray();
        int[] y = [0, 3, 1, 3, 2];
        var w = Enumerable.Range(0, k * d).Select(_ => r.NextDouble() - 0.5).ToArray();
        var b = Enumerable.Range(0, k).Select(_ => r.NextDouble() - 0.5).ToArray();
        const double l2 = 0.3, h = 1e-6;
        var grad = new double[k * d + k];
        LinearProbe.LossAndGradient(z, y, w, b, d, l2, grad);
        var scratch = new double[grad.Length];
        for (int i = 0; i < grad.Length; i++)
        {
            var p = i < w.Length ? w : b;
            int j = i < w.Length ? i : i - w.Length;
            double keep = p[j];
            p[j] = keep + h;
            double up = LinearProbe.LossAndGradient(z, y, w, b, d, l2, scratch);
            p[j] = keep - h;
            double down = LinearProbe.LossAndGradient(z, y, w, b, d, l2, scratch);
            p[j] = keep;
            Assert.Equal((up - down) / (2 * h), grad[i], 6);
        }
    }

    [Fact]
    public void ALinearlySeparableLabelIsLearnedAndANoiseDimensionIgnored()
    {
        // The label is the sign of x0 + x1; x2 is noise. Held-out points come from the same rule.
        var r = new Random(11);
        (float[] X, string Y) Point()
        {
            float a = (float)(r.NextDouble() * 2 - 1), b = (float)(r.NextDouble() * 2 - 1);
            if (Math.Abs(a + b) < 0.1f) a += a + b >= 0 ? 0.2f : -0.2f;
            return ([a, b, (float)(r.NextDouble() * 10)], a + b > 0 ? "up" : "down");
        }
        var train = Enumerable.Range(0, 200).Select(_ => Point()).ToList();
        var test = Enumerable.Range(0, 100).Select(_ => Point()).ToList();
        var probe = LinearProbe.Train(train.Select(p => p.X).ToList(), train.Select(p => p.Y).ToList());
        Assert.Equal(["up", "down"], probe.Classes.Order().Reverse());
        Assert.InRange(probe.Accuracy(test.Select(p => p.X).ToList(), test.Select(p => p.Y).ToList()), 0.97, 1.0);
        Assert.InRange(probe.TrainingLoss, 0, 0.2);
    }

    [Fact]
    public void TheMajorityBaselineAnswersTheMostFrequentTrainingLabel()
    {
        var (label, accuracy) = LinearProbe.Majority(["a", "b", "b", "c", "b", "a"], ["b", "a", "c", "b", "x"]);
        Assert.Equal("b", label);
        Assert.Equal(0.4, accuracy, 12);
        // A tie goes to the label that reached the count first.
        Assert.Equal("b", LinearProbe.Majority(["a", "b", "b", "a"], ["a"]).Label);
    }

    [Fact]
    public void ALabelUnseenInTrainingIsAlwaysWrongAndBadInputsAreRefused()
    {
        var probe = LinearProbe.Train([[1f], [-1f]], ["pos", "neg"], new LinearProbeOptions { Epochs = 50 });
        Assert.Equal(0.5, probe.Accuracy([[2f], [3f]], ["pos", "other"]), 12);
        Assert.Contains("2 feature vectors but 1 labels", Assert.Throws<ArgumentException>(() => LinearProbe.Train([[1f], [2f]], ["a"])).Message);
        Assert.Contains("feature vector 1 has 2 values, not 1", Assert.Throws<ArgumentException>(() => LinearProbe.Train([[1f], [2f, 3f]], ["a", "b"])).Message);
        Assert.Throws<ArgumentException>(() => probe.Predict([1f, 2f]));
        Assert.Throws<ArgumentException>(() => new LinearProbeOptions { Epochs = 0 }.Validate());
        Assert.Throws<ArgumentException>(() => new LinearProbeOptions { LearningRate = double.NaN }.Validate());
    }
}
