using Encore.Autograd;
using Encore.Models;

namespace Encore.Training.Metrics;

/// <summary>
/// The mean attention entropy of one attention layer's heads over the query rows measured.
/// </summary>
/// <param name="Scope">The layer, e.g. <c>decoder.layers.0.self_attn</c>.</param>
/// <param name="Cross">Whether it is cross-attention.</param>
/// <param name="Entropy">(H) mean entropy in nats per head over the valid query rows.</param>
/// <param name="Normalized">
/// (H) mean of H / log(n) per head, n the keys the row sees (causality and padding), over the rows that see at least
/// two keys: 1 is uniform attention over what the row can see, 0 a single key. This is the honest maximum for causal rows;
/// the paper's code divides by log of the attention matrix's width instead (<paramref name="ContextEntropy"/>).
/// </param>
/// <param name="ContextEntropy">log S of the widest batch measured: the maximum entropy of arXiv 2501.03489's code.</param>
public sealed record AttentionEntropyLayer(string Scope, bool Cross, double[] Entropy, double[] Normalized, double ContextEntropy)
{
    /// <summary>Mean of <see cref="Normalized"/> over the heads.</summary>
    public double MeanNormalized => Normalized.Average();
}

/// <summary>
/// Sums attention entropy over forward passes (<see cref="AttentionEntropyProbe"/> records) into per-layer, per-head means.
/// A query row counts when it is not padding (t &lt; its item's length) and sees at least one key.
/// </summary>
public sealed class AttentionEntropyTally
{
    sealed class Layer(string scope, bool cross, int heads)
    {
        public readonly string Scope = scope;
        public readonly bool Cross = cross;
        public readonly double[] Sum = new double[heads], NormSum = new double[heads];
        public readonly long[] Rows = new long[heads], NormRows = new long[heads];
        public int KeyLength;
    }

    readonly List<Layer> _layers = [];

    /// <summary>Adds one forward pass's records (the same layers in the same order every pass).</summary>
    public void Add(IReadOnlyList<AttentionEntropyRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        if (_layers.Count == 0)
            foreach (var r in records) _layers.Add(new Layer(r.Scope, r.Cross, r.Entropy.Shape[1]));
        if (records.Count != _layers.Count) throw new ArgumentException($"a pass recorded {records.Count} attention layers, the tally holds {_layers.Count}");
        for (int i = 0; i < records.Count; i++)
        {
            var r = records[i];
            var layer = _layers[i];
            int b = r.Entropy.Shape[0], h = r.Entropy.Shape[1], t = r.Entropy.Shape[2];
            if (r.Scope != layer.Scope || h != layer.Sum.Length) throw new ArgumentException($"attention layer {i} is {r.Scope} with {h} heads, the tally's is {layer.Scope}");
            layer.KeyLength = Math.Max(layer.KeyLength, r.KeyLength);
            var e = r.Entropy.Value.AsReadOnlySpan<float>();
            for (int bi = 0; bi < b; bi++)
            {
                int rows = r.QueryLengths == null ? t : Math.Clamp(r.QueryLengths[bi], 0, t);
                for (int hi = 0; hi < h; hi++)
                    for (int ti = 0; ti < rows; ti++)
                    {
                        int k = (bi * h + hi) * t + ti;
                        float n = r.VisibleKeys[k];
                        if (n < 1) continue;
                        layer.Sum[hi] += e[k];
                        layer.Rows[hi]++;
                        if (n < 2) continue;
                        layer.NormSum[hi] += e[k] / Math.Log(n);
                        layer.NormRows[hi]++;
                    }
            }
        }
    }

    /// <summary>The per-layer means so far, in the order the layers run.</summary>
    public IReadOnlyList<AttentionEntropyLayer> Result() => [.. _layers.Select(l => new AttentionEntropyLayer(l.Scope, l.Cross,
        [.. l.Sum.Select((s, h) => l.Rows[h] == 0 ? double.NaN : s / l.Rows[h])],
        [.. l.NormSum.Select((s, h) => l.NormRows[h] == 0 ? double.NaN : s / l.NormRows[h])],
        l.KeyLength > 0 ? Math.Log(l.KeyLength) : double.NaN))];

    /// <summary>
    /// Runs <paramref name="model"/> over <paramref name="batches"/> (no gradient, no dropout) and gives every attention
    /// layer's per-head mean entropy.
    /// </summary>
    public static IReadOnlyList<AttentionEntropyLayer> Measure(LanguageModel model, IEnumerable<Batch> batches)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batches);
        var tally = new AttentionEntropyTally();
        var previous = model.AttentionEntropy;
        try
        {
            foreach (var b in batches)
            {
                var probe = new AttentionEntropyProbe();
                model.AttentionEntropy = probe;
                Tape.NoGrad(() =>
                {
                    using var logits = Trainer.Trainer.Logits(model, b);
                    return 0;
                });
                model.AttentionEntropy = previous;
                tally.Add(probe.Records);
                foreach (var r in probe.Records) r.Entropy.Dispose();
            }
        }
        finally
        {
            model.AttentionEntropy = previous;
        }
        return tally.Result();
    }
}
