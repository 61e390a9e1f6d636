using System.Diagnostics;
using System.Globalization;
using System.Text;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Training.Data;

using Encore.Tensors;

namespace Encore.Training.Runs;

/// <summary>A model to compare: its display name and its checkpoint directory or run folder.</summary>
public sealed record ModelSpec(string Name, string Path)
{
    /// <summary>Whether the name was given (NAME=PATH) rather than taken from the path.</summary>
    public bool Named { get; init; }

    /// <summary>
    /// <c>NAME=PATH</c>, or <c>PATH</c> alone, named by its last folder (with its run folder's name before
    /// a trainer's <c>checkpoint-N</c>). The text is a path alone when it names an existing file or
    /// folder, or when the part before the first '=' holds a directory separator (a path with '=' in it).
    /// </summary>
    public static ModelSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0) throw new ArgumentException("--model: empty");
        int eq = text.IndexOf('=');
        if (eq > 0 && !System.IO.Path.Exists(text) && text.AsSpan(0, eq).IndexOfAny('/', System.IO.Path.DirectorySeparatorChar) < 0)
        {
            var path = text[(eq + 1)..];
            if (path.Length == 0) throw new ArgumentException($"--model {text}: no path after '='");
            return new ModelSpec(text[..eq], path) { Named = true };
        }
        return new ModelSpec(ShortName(text), text);
    }

    /// <summary>
    /// Every spec of <paramref name="texts"/> (<see cref="Parse"/>); models left unnamed whose short names
    /// collide are named by their paths instead.
    /// </summary>
    public static IReadOnlyList<ModelSpec> ParseAll(IEnumerable<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var specs = texts.Select(Parse).ToList();
        var names = specs.GroupBy(s => s.Name, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet(StringComparer.Ordinal);
        return specs.Select(s => !s.Named && names.Contains(s.Name) ? s with { Name = s.Path } : s).ToList();
    }

    static string ShortName(string path)
    {
        var trimmed = System.IO.Path.TrimEndingDirectorySeparator(path);
        var last = System.IO.Path.GetFileName(trimmed);
        if (last.Length == 0) return path;
        if (!last.StartsWith("checkpoint-", StringComparison.Ordinal)) return last;
        var run = System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(trimmed));
        return string.IsNullOrEmpty(run) ? last : $"{run}/{last}";
    }
}

/// <summary>Settings of <see cref="ModelComparison.Run"/>; each has one documented default.</summary>
public sealed record ComparisonOptions
{
    /// <summary>How each model is scored (the same examples for all). Default: <see cref="EvaluationOptions"/>'s defaults.</summary>
    public EvaluationOptions Evaluation { get; init; } = new();
    /// <summary>Decoding speed measured for each model; null measures none. Default null.</summary>
    public DecodingSpeedOptions? Speed { get; init; }
    /// <summary>
    /// Weight matrices converted to this dtype after loading (bf16, f16, q8_0, q4_0), to score a model as it
    /// would run quantized; null keeps each checkpoint's own. Default null.
    /// </summary>
    public DType? Weights { get; init; }
    /// <summary>
    /// A directory with tokenizer files, used for every model whose checkpoint has none; null requires each
    /// checkpoint to carry its own. Default null.
    /// </summary>
    public string? Tokenizer { get; init; }
}

/// <summary>One model's line of a comparison.</summary>
/// <param name="Name">Display name.</param>
/// <param name="Checkpoint">The checkpoint directory evaluated (a run folder's newest).</param>
/// <param name="Family">EncoderDecoder or DecoderOnly.</param>
/// <param name="Parameters">Parameter count.</param>
/// <param name="Result">Loss, generation metrics (and the baselines, the same for every model) on the shared examples.</param>
/// <param name="Speed">Decoding speed, when measured.</param>
public sealed record ModelScore(string Name, string Checkpoint, string Family, long Parameters, EvaluationResult Result, DecodingSpeed? Speed);

/// <summary>What <see cref="ModelComparison.Run"/> measured.</summary>
/// <param name="Examples">Examples every model was scored on (the first of the file).</param>
/// <param name="Models">One score per model, in the order given.</param>
/// <param name="Baselines">The trivial baselines on the same examples (<see cref="Evaluation.Baselines"/>).</param>
/// <param name="SharedTokenizer">Whether every model tokenizes the references alike, so that their per-token losses compare.</param>
/// <param name="Seconds">Wall time of the whole comparison.</param>
public sealed record ComparisonResult(int Examples, IReadOnlyList<ModelScore> Models, IReadOnlyList<BaselineScore> Baselines, bool SharedTokenizer, double Seconds);

/// <summary>A comparison as a table of formatted cells: one row per model, then one per baseline.</summary>
/// <param name="Columns">Column headers; the first names the row.</param>
/// <param name="Rows">Cells, models first; an empty cell has no figure.</param>
/// <param name="ModelRows">How many of <paramref name="Rows"/> are models (the rest are baselines).</param>
public sealed record ComparisonTable(IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<string>> Rows, int ModelRows)
{
    /// <summary>The table in GitHub markdown: figures right-aligned, '|' in a cell escaped.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        static string Cell(string s) => s.Replace("|", "\\|", StringComparison.Ordinal);
        sb.Append("| ").AppendJoin(" | ", Columns.Select(Cell)).Append(" |\n");
        sb.Append("|---").Append(string.Concat(Enumerable.Repeat("|---:", Columns.Count - 1))).Append("|\n");
        foreach (var row in Rows) sb.Append("| ").AppendJoin(" | ", row.Select(Cell)).Append(" |\n");
        return sb.ToString();
    }
}

/// <summary>
/// Scores several checkpoints on the same examples (each with its own tokenizer): loss, perplexity,
/// generation metrics and, when asked, batch-1 decoding speed, beside the trivial baselines, as one
/// table (a teacher, its students and the baseline side by side).
/// </summary>
public static class ModelComparison
{
    /// <summary>
    /// The checkpoint directory of every model (<see cref="CheckpointDirectory.Resolve"/>), all checked
    /// before any is loaded; throws naming the model whose path is missing or holds no checkpoint, and
    /// when two models share a name.
    /// </summary>
    public static IReadOnlyList<string> Resolve(IReadOnlyList<ModelSpec> models)
    {
        ArgumentNullException.ThrowIfNull(models);
        if (models.Count == 0) throw new ArgumentException("give at least one --model");
        var twice = models.GroupBy(m => m.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (twice != null) throw new ArgumentException($"two models are named '{twice.Key}'; name them with --model NAME=PATH");
        return models.Select(m =>
        {
            try
            {
                return CheckpointDirectory.Resolve(m.Path);
            }
            catch (IOException e) when (m.Named)
            {
                throw new IOException($"model {m.Name}: {e.Message}", e);
            }
        }).ToList();
    }

    /// <summary>The checkpoint's own tokenizer, else the one in <paramref name="fallback"/> when given.</summary>
    static TextTokenizer LoadTokenizer(string dir, string? fallback)
    {
        try
        {
            return TokenizerLoader.FromDirectory(dir);
        }
        catch (FileNotFoundException) when (fallback != null)
        {
            return TokenizerLoader.FromDirectory(fallback);
        }
    }

    /// <summary>
    /// Evaluates every model of <paramref name="models"/> on the same examples of <paramref name="pairs"/>
    /// (<see cref="Evaluation.Run"/>, then <see cref="DecodingSpeed.Measure"/> when
    /// <see cref="ComparisonOptions.Speed"/> is set), loading one model at a time;
    /// <paramref name="progress"/> hears each stage.
    /// </summary>
    public static ComparisonResult Run(IReadOnlyList<ModelSpec> models, IReadOnlyList<TextPair> pairs, ComparisonOptions? options = null, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var o = options ?? new ComparisonOptions();
        o.Evaluation.Validate();
        o.Speed?.Validate();
        var dirs = Resolve(models);
        var examples = o.Evaluation.Examples > 0 ? pairs.Take(o.Evaluation.Examples).ToList() : [.. pairs];
        if (examples.Count == 0) throw new ArgumentException("no examples to evaluate");
        var sw = Stopwatch.StartNew();
        var scores = new List<ModelScore>(models.Count);
        int[][]? firstTokens = null;
        bool shared = true;
        for (int i = 0; i < models.Count; i++)
        {
            var (spec, dir) = (models[i], dirs[i]);
            try
            {
                progress?.Invoke($"evaluating {spec.Name} ({dir}) on {examples.Count} examples");
                var tokenizer = LoadTokenizer(dir, o.Tokenizer);
                // Mapped as stored: a quantized checkpoint is scored with the kernels it runs with.
                using var model = Checkpoint.Load(dir, new CheckpointLoadOptions { MapWeights = true });
                if (o.Weights is DType w) model.ConvertWeights(w);
                var result = Evaluation.Run(model, tokenizer, examples, o.Evaluation with { Examples = 0 });
                DecodingSpeed? speed = null;
                if (o.Speed != null)
                {
                    progress?.Invoke($"timing {spec.Name}: batch 1, {o.Speed.NewTokens} new tokens, {Math.Min(o.Speed.Prompts, examples.Count)} prompts");
                    speed = DecodingSpeed.Measure(model, tokenizer, examples, o.Speed);
                }
                var tokens = examples.Select(e => tokenizer.Encode(e.Target.Trim())).ToArray();
                if (firstTokens == null) firstTokens = tokens;
                else shared &= firstTokens.Zip(tokens).All(p => p.First.AsSpan().SequenceEqual(p.Second));
                scores.Add(new ModelScore(spec.Name, dir, model.Config.Family.ToString(), model.ParameterCount, result, speed));
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"model {spec.Name}: {e.Message}", e);
            }
        }
        return new ComparisonResult(examples.Count, scores, Evaluation.Baselines(examples), shared, sw.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The loss curves of the models whose run folder (<see cref="LossCurves.RunDirectory"/>) has a
    /// metrics log, and a note for each model left out.
    /// </summary>
    public static (IReadOnlyList<LossCurve> Curves, IReadOnlyList<string> Notes) ReadCurves(IReadOnlyList<ModelSpec> models)
    {
        ArgumentNullException.ThrowIfNull(models);
        var curves = new List<LossCurve>();
        var notes = new List<string>();
        foreach (var m in models)
        {
            var path = LossCurves.FindMetrics(m.Path);
            if (path == null)
            {
                notes.Add($"{m.Name}: no {LossCurves.MetricsFile} in {LossCurves.RunDirectory(m.Path)}; left out of the plot");
                continue;
            }
            var curve = LossCurve.Read(m.Name, path);
            if (curve.Train.Count + curve.Validation.Count == 0) notes.Add($"{m.Name}: {path} holds no loss; left out of the plot");
            else curves.Add(curve);
        }
        return (curves, notes);
    }

    static readonly (string Key, string Header)[] MetricColumns =
        [("rouge_l", "ROUGE-L"), ("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("chrf", "chrF"), ("bleu", "BLEU"), ("exact_match", "exact")];

    /// <summary>
    /// The comparison as a table: model, parameters, loss (nats per target token), perplexity, the
    /// generation metrics (0–100; exact: exact match) when generated, and when measured the speed figures
    /// (first-token latency in ms, decode tokens/s, KiB of cache per request); then the baselines
    /// ("lead-k baseline", "majority baseline"), which have metrics only.
    /// </summary>
    public static ComparisonTable Table(ComparisonResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var ci = CultureInfo.InvariantCulture;
        bool metrics = r.Models.Any(m => m.Result.Metrics.Count > 0);
        bool speed = r.Models.Any(m => m.Speed != null);
        var columns = new List<string> { "model", "params", "loss", "ppl" };
        if (metrics) columns.AddRange(MetricColumns.Select(c => c.Header));
        if (speed) columns.AddRange(["1st token ms", "tok/s", "cache KiB"]);
        var rows = new List<IReadOnlyList<string>>();
        IEnumerable<string> Metrics(IReadOnlyDictionary<string, double> m) =>
            metrics ? MetricColumns.Select(c => m.TryGetValue(c.Key, out var v) ? v.ToString("0.0", ci) : "") : [];
        foreach (var m in r.Models)
        {
            var s = m.Speed;
            IEnumerable<string> speedCells = !speed ? [] : s == null ? ["", "", ""]
                : [s.FirstTokenMs.ToString("0.0", ci), s.DecodeTokensPerSecond.ToString("0", ci), (s.CacheBytesPerRequest / 1024.0).ToString("0.0", ci)];
            rows.Add([m.Name, Parameters(m.Parameters), m.Result.Loss.ToString("0.000", ci), m.Result.Perplexity.ToString("0.00", ci), .. Metrics(m.Result.Metrics), .. speedCells]);
        }
        if (metrics)
            foreach (var b in r.Baselines)
                rows.Add([$"{b.Name} baseline", "", "", "", .. Metrics(b.Metrics), .. speed ? new[] { "", "", "" } : []]);
        return new ComparisonTable(columns, rows, r.Models.Count);
    }

    /// <summary>A parameter count in millions (M) or thousands (K), three significant figures.</summary>
    public static string Parameters(long n) => n >= 1_000_000
        ? (n / 1e6).ToString(n >= 100_000_000 ? "0" : n >= 10_000_000 ? "0.0" : "0.00", CultureInfo.InvariantCulture) + "M"
        : (n / 1e3).ToString(n >= 100_000 ? "0" : n >= 10_000 ? "0.0" : "0.00", CultureInfo.InvariantCulture) + "K";
}
