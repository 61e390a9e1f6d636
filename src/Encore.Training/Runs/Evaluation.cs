using System.Diagnostics;
using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Metrics;

namespace Encore.Training.Runs;

/// <summary>Settings of <see cref="Evaluation.Run"/>; each has one documented default.</summary>
public sealed record EvaluationOptions
{
    /// <summary>Examples evaluated, from the start of the file; 0 takes all. Default 0.</summary>
    public int Examples { get; init; }
    /// <summary>Tokens generated per example (greedy). Default 32.</summary>
    public int MaxNewTokens { get; init; } = 32;
    /// <summary>Prompts decoded together. Default 16.</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>Longest source kept, in tokens, as in training. Default 1024.</summary>
    public int MaxSourceTokens { get; init; } = 1024;
    /// <summary>Longest target kept for the loss, in tokens. Default 256.</summary>
    public int MaxTargetTokens { get; init; } = 256;
    /// <summary>Token budget of a loss batch. Default 4096.</summary>
    public int MaxTokens { get; init; } = 4096;
    /// <summary>Examples printed with source, reference and output. Default 3.</summary>
    public int Samples { get; init; } = 3;
    /// <summary>Skip generation and report the loss alone. Default false.</summary>
    public bool LossOnly { get; init; }
    /// <summary>Storage of the generation's key/value caches (f32 or int8). Default f32.</summary>
    public KvCacheDType KvCache { get; init; } = KvCacheDType.F32;
    /// <summary>
    /// Decode with lexical-unit decoding (for a model fine-tuned for it); the placeholder id is
    /// <see cref="LexicalUnitPlaceholder"/> in each model's tokenizer. The metrics then include
    /// tokens_per_pass. Default null: greedy.
    /// </summary>
    public Generation.LexicalUnitOptions? LexicalUnits { get; init; }
    /// <summary>The placeholder token of <see cref="LexicalUnits"/>. Default "&lt;mask&gt;".</summary>
    public string LexicalUnitPlaceholder { get; init; } = "<mask>";

    /// <summary>Throws naming the first option out of range.</summary>
    public EvaluationOptions Validate()
    {
        LexicalUnits?.Validate();
        if (Examples < 0) throw new ArgumentException($"--examples cannot be negative, got {Examples}");
        if (MaxNewTokens < 1) throw new ArgumentException($"--max-new-tokens must be positive, got {MaxNewTokens}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be positive, got {BatchSize}");
        if (MaxSourceTokens < 1 || MaxTargetTokens < 1 || MaxTokens < 2) throw new ArgumentException("token limits must be positive");
        if (Samples < 0) throw new ArgumentException($"--samples cannot be negative, got {Samples}");
        return this;
    }
}

/// <summary>One trivial baseline's scores: what a model must beat to have learned anything.</summary>
public sealed record BaselineScore(string Name, string Description, IReadOnlyDictionary<string, double> Metrics);

/// <summary>One evaluated example.</summary>
public sealed record EvaluationSample(string Source, string Reference, string Output);

/// <summary>What <see cref="Evaluation.Run"/> measured.</summary>
public sealed record EvaluationResult(int Examples, double Loss, double Perplexity, IReadOnlyDictionary<string, double> Metrics,
    IReadOnlyList<BaselineScore> Baselines, IReadOnlyList<EvaluationSample> Samples, double Seconds);

/// <summary>
/// Scores a model on source → target pairs: mean cross-entropy per target token (and perplexity)
/// under the training objective of its family, and greedy generations against the references
/// (<see cref="TextMetrics.All"/>), with trivial baselines scored on the same examples.
/// </summary>
public static class Evaluation
{
    /// <summary>Evaluates <paramref name="model"/> with <paramref name="tokenizer"/> on <paramref name="pairs"/>.</summary>
    public static EvaluationResult Run(LanguageModel model, TextTokenizer tokenizer, IReadOnlyList<TextPair> pairs, EvaluationOptions? options = null)
    {
        var o = (options ?? new EvaluationOptions()).Validate();
        if (model is EncoderOnlyModel) throw new ArgumentException("encore eval scores encoder–decoder and decoder-only models; an encoder-only model generates no text");
        var examples = o.Examples > 0 ? pairs.Take(o.Examples).ToList() : [.. pairs];
        if (examples.Count == 0) throw new ArgumentException("no examples to evaluate");
        var sw = Stopwatch.StartNew();
        var objective = TrainingRun.MakeObjective(ObjectiveKind.Auto, model, tokenizer, plainText: false);
        var data = TokenizedDataset.FromPairs(examples, tokenizer, "evaluation").Truncate(o.MaxSourceTokens, o.MaxTargetTokens, out _);
        var batches = new TrainingBatches(data, objective, new BucketingOptions { MaxTokens = o.MaxTokens, Seed = 0 });
        double loss = Trainer.Trainer.MeanLoss(model, batches.Epoch(0));
        var references = examples.Select(e => e.Target.Trim()).ToList();
        IReadOnlyDictionary<string, double> metrics = new Dictionary<string, double>();
        IReadOnlyList<string> outputs = [];
        if (!o.LossOnly)
        {
            Generation.GenerationOptions? decoding = null;
            if (o.LexicalUnits is { } lu)
            {
                int placeholder = tokenizer.TokenToId(o.LexicalUnitPlaceholder)
                    ?? throw new ArgumentException($"--lud-placeholder: '{o.LexicalUnitPlaceholder}' is not a token of the model's tokenizer");
                decoding = new Generation.GenerationOptions { LexicalUnits = lu with { PlaceholderId = placeholder } };
            }
            var eval = new GenerationEval(tokenizer, examples, o.MaxNewTokens, o.BatchSize, o.KvCache, decoding);
            metrics = eval.Evaluate(model);
            outputs = eval.LastPredictions;
            if (eval.LastPasses is { } passes) metrics = new Dictionary<string, double>(metrics) { ["tokens_per_pass"] = passes.TokensPerPass };
        }
        var samples = examples.Take(o.LossOnly ? 0 : o.Samples).Select((e, i) => new EvaluationSample(e.Source, e.Target, outputs[i])).ToList();
        return new EvaluationResult(examples.Count, loss, Math.Exp(loss), metrics, Baselines(examples), samples, sw.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The trivial baselines on <paramref name="examples"/>: lead-k (the first k words of the
    /// source, k the median reference length in words, the usual floor for summaries) and the
    /// majority answer (the most frequent reference, every time: the floor for classification-like
    /// targets).
    /// </summary>
    public static IReadOnlyList<BaselineScore> Baselines(IReadOnlyList<TextPair> examples)
    {
        var references = examples.Select(e => e.Target.Trim()).ToList();
        var lengths = references.Select(r => r.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length).Order().ToList();
        int k = Math.Max(1, lengths[lengths.Count / 2]);
        var lead = examples.Select(e => Lead(e.Source, k)).ToList();
        var majority = references.GroupBy(r => r, StringComparer.Ordinal).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).First().Key;
        return
        [
            new BaselineScore($"lead-{k}", $"the first {k} words of the source", TextMetrics.All(lead, references)),
            new BaselineScore("majority", $"always \"{majority}\"", TextMetrics.All(references.Select(_ => majority).ToList(), references)),
        ];
    }

    /// <summary>The first <paramref name="words"/> whitespace-separated words of <paramref name="source"/>.</summary>
    public static string Lead(string source, int words) =>
        string.Join(' ', source.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Take(words));
}
