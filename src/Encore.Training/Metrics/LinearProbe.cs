using System.Numerics.Tensors;

namespace Encore.Training.Metrics;

/// <summary>Settings of a <see cref="LinearProbe"/>.</summary>
public sealed record LinearProbeOptions
{
    /// <summary>Full passes over the training features (one Adam step each). Default 300.</summary>
    public int Epochs { get; init; } = 300;
    /// <summary>Adam's step size. Default 0.05.</summary>
    public double LearningRate { get; init; } = 0.05;
    /// <summary>L2 penalty λ/2·‖W‖² on the weights (not the biases). Default 1e-4.</summary>
    public double L2 { get; init; } = 1e-4;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting out of range.</summary>
    public LinearProbeOptions Validate()
    {
        if (Epochs < 1) throw new ArgumentException($"the probe needs at least one epoch, got {Epochs}");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new ArgumentException($"the probe's learning rate must be positive, got {LearningRate}");
        if (!(L2 >= 0) || !double.IsFinite(L2)) throw new ArgumentException($"the probe's L2 penalty must be non-negative, got {L2}");
        return this;
    }
}

/// <summary>
/// A linear probe (Alain &amp; Bengio 2016): multinomial logistic regression on frozen features, the
/// standard way to ask how much of a label a representation holds linearly. Features are standardized
/// with the training set's mean and deviation; the weights W (C, D) and biases b (C) minimize the mean
/// cross-entropy of softmax(W·x + b) plus λ/2·‖W‖², by full-batch Adam (β = 0.9, 0.999) from zero, so the
/// result depends on the data alone.
/// </summary>
public sealed class LinearProbe
{
    readonly float[] _mean, _scale;                                                             // (D), (D)
    readonly double[] _w, _b;                                                                   // (C·D), (C)

    LinearProbe(string[] classes, float[] mean, float[] scale, double[] w, double[] b, double loss)
    {
        Classes = classes;
        _mean = mean;
        _scale = scale;
        _w = w;
        _b = b;
        TrainingLoss = loss;
    }

    /// <summary>The labels seen in training, in order of first appearance (class c is Classes[c]).</summary>
    public IReadOnlyList<string> Classes { get; }

    /// <summary>The objective (mean cross-entropy in nats plus the penalty) after the last epoch.</summary>
    public double TrainingLoss { get; }

    /// <summary>Fits a probe on <paramref name="features"/> (N vectors of D values) and their <paramref name="labels"/>.</summary>
    public static LinearProbe Train(IReadOnlyList<float[]> features, IReadOnlyList<string> labels, LinearProbeOptions? options = null)
    {
        var o = (options ?? new LinearProbeOptions()).Validate();
        var (x, d) = Check(features, labels);
        var classes = labels.Distinct(StringComparer.Ordinal).ToArray();
        var index = classes.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i, StringComparer.Ordinal);
        var y = labels.Select(l => index[l]).ToArray();
        int n = x.Count, k = classes.Length;
        // Standardize: (x − mean) / std per dimension; a constant dimension is left at zero.
        var mean = new float[d];
        var scale = new float[d];
        var sum = new double[d];
        var sq = new double[d];
        foreach (var v in x)
            for (int j = 0; j < d; j++)
            {
                sum[j] += v[j];
                sq[j] += (double)v[j] * v[j];
            }
        for (int j = 0; j < d; j++)
        {
            double m = sum[j] / n, var = Math.Max(0, sq[j] / n - m * m);
            mean[j] = (float)m;
            scale[j] = var > 1e-12 ? (float)(1 / Math.Sqrt(var)) : 0f;
        }
        var z = x.Select(v => Standardize(v, mean, scale)).ToArray();
        var w = new double[k * d];
        var b = new double[k];
        var adam = new Adam(k * d + k, o.LearningRate);
        var grad = new double[k * d + k];
        double loss = 0;
        for (int epoch = 0; epoch < o.Epochs; epoch++)
        {
            loss = LossAndGradient(z, y, w, b, d, o.L2, grad);
            adam.Step(w, b, grad);
        }
        loss = LossAndGradient(z, y, w, b, d, o.L2, grad);
        return new LinearProbe(classes, mean, scale, w, b, loss);
    }

    /// <summary>The class of <paramref name="feature"/>: the label with the largest logit (the first on ties).</summary>
    public string Predict(float[] feature)
    {
        ArgumentNullException.ThrowIfNull(feature);
        if (feature.Length != _mean.Length) throw new ArgumentException($"the probe reads {_mean.Length} values, got {feature.Length}");
        var v = Standardize(feature, _mean, _scale);
        int d = _mean.Length, best = 0;
        double top = double.NegativeInfinity;
        for (int c = 0; c < Classes.Count; c++)
        {
            double s = _b[c] + Dot(_w, c * d, v);
            if (s > top)
            {
                top = s;
                best = c;
            }
        }
        return Classes[best];
    }

    /// <summary>Share of <paramref name="features"/> predicted as their <paramref name="labels"/> (a label unseen in training is always wrong).</summary>
    public double Accuracy(IReadOnlyList<float[]> features, IReadOnlyList<string> labels)
    {
        var (x, _) = Check(features, labels);
        int right = 0;
        for (int i = 0; i < x.Count; i++)
            if (Predict(x[i]) == labels[i]) right++;
        return right / (double)x.Count;
    }

    /// <summary>
    /// The trivial baseline beside a probe: the accuracy on <paramref name="test"/> of always answering the most
    /// frequent label of <paramref name="train"/> (the first to reach that count on ties), and that label.
    /// </summary>
    public static (string Label, double Accuracy) Majority(IReadOnlyList<string> train, IReadOnlyList<string> test)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        if (train.Count == 0 || test.Count == 0) throw new ArgumentException("the majority baseline needs training and test labels");
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        string label = train[0];
        foreach (var l in train)
        {
            int c = counts[l] = counts.GetValueOrDefault(l) + 1;
            if (c > counts[label]) label = l;
        }
        return (label, test.Count(l => l == label) / (double)test.Count);
    }

    /// <summary>
    /// The probe's objective at (<paramref name="w"/>, <paramref name="b"/>) on standardized features
    /// <paramref name="z"/>, and its gradient into <paramref name="grad"/> (the C·D weight entries, then the C biases):
    /// ∂/∂logits of the mean cross-entropy is (softmax − one-hot) / N.
    /// </summary>
    internal static double LossAndGradient(float[][] z, int[] y, double[] w, double[] b, int d, double l2, double[] grad)
    {
        int n = z.Length, k = b.Length;
        Array.Clear(grad);
        var p = new double[k];
        double loss = 0;
        for (int i = 0; i < n; i++)
        {
            double max = double.NegativeInfinity;
            for (int c = 0; c < k; c++) max = Math.Max(max, p[c] = b[c] + Dot(w, c * d, z[i]));
            double total = 0;
            for (int c = 0; c < k; c++) total += p[c] = Math.Exp(p[c] - max);
            loss -= Math.Log(p[y[i]] / total);
            for (int c = 0; c < k; c++)
            {
                double g = (p[c] / total - (c == y[i] ? 1 : 0)) / n;
                grad[k * d + c] += g;
                for (int j = 0; j < d; j++) grad[c * d + j] += g * z[i][j];
            }
        }
        double penalty = 0;
        for (int j = 0; j < k * d; j++)
        {
            penalty += w[j] * w[j];
            grad[j] += l2 * w[j];
        }
        return loss / n + l2 / 2 * penalty;
    }

    static double Dot(double[] w, int offset, float[] v)
    {
        double s = 0;
        for (int j = 0; j < v.Length; j++) s += w[offset + j] * v[j];
        return s;
    }

    static float[] Standardize(float[] v, float[] mean, float[] scale)
    {
        var z = new float[v.Length];
        TensorPrimitives.Subtract(v, mean, z);
        TensorPrimitives.Multiply(z, scale, z);
        return z;
    }

    static (IReadOnlyList<float[]> X, int D) Check(IReadOnlyList<float[]> features, IReadOnlyList<string> labels)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        if (features.Count == 0) throw new ArgumentException("the probe needs at least one example");
        if (features.Count != labels.Count) throw new ArgumentException($"{features.Count} feature vectors but {labels.Count} labels");
        int d = features[0]?.Length ?? 0;
        if (d == 0) throw new ArgumentException("feature vectors must not be empty");
        for (int i = 0; i < features.Count; i++)
        {
            if (features[i] is null || features[i].Length != d) throw new ArgumentException($"feature vector {i} has {features[i]?.Length ?? 0} values, not {d}");
            if (labels[i] is null) throw new ArgumentException($"label {i} is null");
        }
        return (features, d);
    }

    // Adam (Kingma & Ba 2015) over the weights then the biases, bias-corrected moments.
    sealed class Adam(int size, double lr)
    {
        readonly double[] _m = new double[size], _v = new double[size];
        int _t;

        public void Step(double[] w, double[] b, double[] grad)
        {
            _t++;
            double c1 = 1 - Math.Pow(0.9, _t), c2 = 1 - Math.Pow(0.999, _t);
            for (int i = 0; i < grad.Length; i++)
            {
                _m[i] = 0.9 * _m[i] + 0.1 * grad[i];
                _v[i] = 0.999 * _v[i] + 0.001 * grad[i] * grad[i];
                double step = lr * (_m[i] / c1) / (Math.Sqrt(_v[i] / c2) + 1e-8);
                if (i < w.Length) w[i] -= step;
                else b[i - w.Length] -= step;
            }
        }
    }
}
