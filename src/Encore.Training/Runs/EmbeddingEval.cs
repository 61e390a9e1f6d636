using System.Diagnostics;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Metrics;

namespace Encore.Training.Runs;

/// <summary>Settings of <see cref="EmbeddingEval"/>.</summary>
public sealed record EmbeddingEvalOptions
{
    /// <summary>How hidden states become one vector (mean, cls, max or last). Default mean.</summary>
    public PoolingMode Pooling { get; init; } = PoolingMode.Mean;
    /// <summary>Tokens read per text, special tokens included; longer texts are cut. Default null: the model's positions.</summary>
    public int? MaxLength { get; init; }
    /// <summary>Texts encoded together. Default 32.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>The linear probe's settings.</summary>
    public LinearProbeOptions Probe { get; init; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting out of range.</summary>
    public EmbeddingEvalOptions Validate()
    {
        Embedding().Validate();
        Probe.Validate();
        return this;
    }

    internal EmbeddingOptions Embedding() => new() { Pooling = Pooling, Normalize = true, MaxLength = MaxLength, BatchSize = BatchSize };
}

/// <summary>
/// Labelled texts for a linear probe: the probe is fitted on the embeddings of <paramref name="Train"/> and
/// scored on those of <paramref name="Test"/> (each pair's Source is the text, its Target the label).
/// </summary>
public sealed record ProbeData(IReadOnlyList<TextPair> Train, IReadOnlyList<TextPair> Test);

/// <summary>
/// What <see cref="EmbeddingEval.Run"/> measured: paired retrieval (each source's own target among all
/// targets) beside random ranking, and, with probe data, the probe's accuracy beside the majority label.
/// </summary>
public sealed record EmbeddingEvalResult(RetrievalScores Retrieval, RetrievalScores Random, int ProbeTrainExamples, int ProbeTestExamples,
    double? ProbeAccuracy, string? MajorityLabel, double? MajorityAccuracy, double Seconds);

/// <summary>
/// Scores a model's sentence embeddings (any family; see <see cref="Embedder"/>) zero-shot, with no
/// training of the model: paired retrieval (Ettin's and CodeT5+'s use of an encoder: rank every
/// candidate target of a source by cosine) and a linear probe for a label (classification).
/// </summary>
public static class EmbeddingEval
{
    /// <summary>
    /// Embeds the sources and targets of <paramref name="pairs"/> and ranks, for source i, all N targets by cosine
    /// (target i is the answer); pairs whose target occurs more than once are left out first, since no ranking
    /// could tell their copies apart (N counts the pairs kept). With <paramref name="probe"/>, fits a <see cref="LinearProbe"/> on its training
    /// texts' embeddings and scores it on its test texts.
    /// </summary>
    public static EmbeddingEvalResult Run(LanguageModel model, TextTokenizer tokenizer, IReadOnlyList<TextPair> pairs, ProbeData? probe,
        EmbeddingEvalOptions? options = null, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var o = (options ?? new EmbeddingEvalOptions()).Validate();
        var counts = pairs.CountBy(p => p.Target, StringComparer.Ordinal).ToDictionary(StringComparer.Ordinal);
        pairs = pairs.Where(p => counts[p.Target] == 1).ToList();
        if (pairs.Count < 2) throw new ArgumentException($"retrieval needs at least 2 pairs with distinct targets, got {pairs.Count}");
        var clock = Stopwatch.StartNew();
        var embedder = new Embedder(model, tokenizer, o.Embedding());
        progress?.Invoke($"embedding {pairs.Count} sources and targets ({o.Pooling.Name()} pooling)");
        var sources = embedder.Embed(pairs.Select(p => p.Source).ToList()).Vectors;
        var targets = embedder.Embed(pairs.Select(p => p.Target).ToList()).Vectors;
        var retrieval = RetrievalMetrics.Score(sources, targets);
        double? accuracy = null, majorityAccuracy = null;
        string? majority = null;
        if (probe != null)
        {
            if (probe.Train.Count == 0 || probe.Test.Count == 0) throw new ArgumentException("the probe needs training and test examples");
            progress?.Invoke($"embedding {probe.Train.Count} + {probe.Test.Count} texts for the linear probe");
            var trainX = embedder.Embed(probe.Train.Select(p => p.Source).ToList()).Vectors;
            var testX = embedder.Embed(probe.Test.Select(p => p.Source).ToList()).Vectors;
            var trainY = probe.Train.Select(p => p.Target).ToList();
            var testY = probe.Test.Select(p => p.Target).ToList();
            progress?.Invoke($"fitting the linear probe ({o.Probe.Epochs} epochs)");
            accuracy = LinearProbe.Train(trainX, trainY, o.Probe).Accuracy(testX, testY);
            (majority, majorityAccuracy) = LinearProbe.Majority(trainY, testY);
        }
        return new EmbeddingEvalResult(retrieval, RetrievalScores.Random(pairs.Count), probe?.Train.Count ?? 0, probe?.Test.Count ?? 0,
            accuracy, majority, majorityAccuracy, clock.Elapsed.TotalSeconds);
    }
}
