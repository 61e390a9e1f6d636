using System.Text.Json;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Metrics;
using Encore.Training.Runs;

namespace Encore.Cli.Commands;

// encore eval --embeddings: zero-shot retrieval and a linear probe on each model's sentence embeddings (EmbeddingEval).
internal static partial class EvalCommand
{
    /// <summary>The options of <c>eval --embeddings</c>.</summary>
    internal sealed class EmbeddingEvalCli
    {
        public readonly Option<bool> Embeddings = new("--embeddings")
        {
            Description = "Score sentence embeddings instead of generation (any family; docs/recipes/ettin.md): each source's own target ranked among all targets of --data by cosine " +
                "(recall@1, recall@10, MRR beside random ranking); with --probe-field, a linear probe's accuracy beside the majority label.",
        };
        public readonly Option<string> Pooling = new("--pooling") { Description = "With --embeddings: mean, cls, max or last, comma-separated for several rows per model.", DefaultValueFactory = _ => "mean" };
        public readonly Option<int?> MaxLength = new("--max-length") { Description = "With --embeddings: tokens read per text, special tokens included (default: the model's positions)." };
        public readonly Option<string?> ProbeField = new("--probe-field") { Description = "With --embeddings: the JSONL field holding the label (e.g. section of data/debian); the probe is fitted on --probe-data and scored on --data." };
        public readonly Option<string?> ProbeData = new("--probe-data") { Description = "With --probe-field: JSONL the probe is fitted on (its source field and label field)." };
        public readonly Option<int> ProbeExamples = new("--probe-examples") { Description = "With --probe-field: examples of --probe-data fitted on, from the start; 0: all.", DefaultValueFactory = _ => 8000 };

        public IEnumerable<Option> All => [Embeddings, Pooling, MaxLength, ProbeField, ProbeData, ProbeExamples];
    }

    static int RunEmbeddings(ParseResult parse, EmbeddingEvalCli cli, Option<string[]> model, Option<string> data, Option<int> examples,
        Common.FieldOptions fields, string? dtype, string? tokenizerDir, bool asJson, bool asMarkdown)
    {
        var poolings = parse.GetValue(cli.Pooling)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(p => Models.Pooling.Parse(p, "--pooling")).Distinct().ToArray();
        if (poolings.Length == 0) throw new ArgumentException("--pooling: give at least one of mean, cls, max, last");
        string? field = parse.GetValue(cli.ProbeField), probePath = parse.GetValue(cli.ProbeData);
        int probeCount = parse.GetValue(cli.ProbeExamples);
        if (field is null && probePath != null) throw new ArgumentException("--probe-data needs --probe-field (the label to predict)");
        if (field != null && probePath is null) throw new ArgumentException("--probe-field needs --probe-data (the examples the probe is fitted on)");
        if (probeCount < 0) throw new ArgumentException($"--probe-examples cannot be negative, got {probeCount}");
        if (parse.GetValue(cli.MaxLength) is < 1) throw new ArgumentException($"--max-length must be at least 1, got {parse.GetValue(cli.MaxLength)}");
        int n = parse.GetValue(examples);
        string path = parse.GetValue(data)!;
        var read = fields.Read(parse);
        IReadOnlyList<TextPair> pairs = Take(DatasetReader.ReadPairs(path, read), n);
        ProbeData? probe = null;
        if (field != null)
        {
            var labelled = read with { TargetField = field };
            probe = new ProbeData(Take(DatasetReader.ReadPairs(probePath!, labelled), probeCount), Take(DatasetReader.ReadPairs(path, labelled), n));
        }
        var specs = ModelSpec.ParseAll(parse.GetValue(model)!).Select(s => s with { Path = Common.ModelPath(s.Path, asJson) }).ToList();
        var dirs = ModelComparison.Resolve(specs);
        var rows = new List<(string Name, string Family, long Parameters, PoolingMode Pooling, EmbeddingEvalResult Result)>();
        for (int i = 0; i < specs.Count; i++)
        {
            using var m = Common.LoadForInference(dirs[i], dtype);
            var tok = Common.LoadTokenizer(dirs[i], tokenizerDir, asJson);
            foreach (var pooling in poolings)
            {
                var options = new EmbeddingEvalOptions { Pooling = pooling, MaxLength = parse.GetValue(cli.MaxLength) }.Validate();
                string name = specs[i].Name;
                var result = EmbeddingEval.Run(m, tok, pairs, probe, options, asJson ? null : line => Console.Error.WriteLine($"{name}: {line}…"));
                rows.Add((name, m.Config.Family.ToString(), m.ParameterCount, pooling, result));
            }
        }
        var first = rows[0].Result;
        string markdown = EmbeddingTable(rows.Select(r => ($"{r.Name} ({r.Pooling.Name()})", r.Parameters, r.Result)).ToList(), first);
        string footnote = string.Create(CultureInfo.InvariantCulture,
            $"{first.Retrieval.Queries} pairs of {path} with distinct targets: each source's own target ranked among all {first.Retrieval.Queries} targets by cosine of unit-length embeddings (ties count against it); recall and MRR in %")
            + (probe is null ? "." : string.Create(CultureInfo.InvariantCulture,
                $"; probe: multinomial logistic regression on standardized embeddings, fitted on {first.ProbeTrainExamples} examples of {probePath}, accuracy on {first.ProbeTestExamples} examples of {path} ({field}); majority = always \"{first.MajorityLabel}\"."));
        if (asJson)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                data = path, probe_data = probePath, probe_field = field,
                models = rows.Select(r => new { name = r.Name, family = r.Family, parameters = r.Parameters, pooling = r.Pooling.Name(), result = r.Result }).ToArray(),
                markdown = asMarkdown ? markdown : null, footnote,
            }, Common.Json));
            return 0;
        }
        Console.Write(markdown);
        Console.WriteLine();
        Console.WriteLine(footnote);
        return 0;
    }

    static List<TextPair> Take(IEnumerable<TextPair> pairs, int n) => n > 0 ? pairs.Take(n).ToList() : [.. pairs];

    /// <summary>The markdown table of <c>eval --embeddings</c>: one row per model and pooling, then the baselines.</summary>
    internal static string EmbeddingTable(IReadOnlyList<(string Name, long Parameters, EmbeddingEvalResult Result)> rows, EmbeddingEvalResult baseline)
    {
        var ci = CultureInfo.InvariantCulture;
        bool probe = baseline.ProbeAccuracy != null;
        var sb = new System.Text.StringBuilder();
        sb.AppendLine("| model | params | R@1 | R@10 | MRR | median rank |" + (probe ? " probe acc |" : ""));
        sb.AppendLine("|---|---:|---:|---:|---:|---:|" + (probe ? "---:|" : ""));
        static string Pct(double v) => (100 * v).ToString("0.0", CultureInfo.InvariantCulture);
        string Scores(RetrievalScores s) => string.Create(ci, $"{Pct(s.RecallAt1)} | {Pct(s.RecallAt10)} | {Pct(s.MeanReciprocalRank)} | {s.MedianRank:0.#}");
        foreach (var (name, parameters, r) in rows)
            sb.AppendLine(string.Create(ci, $"| {name} | {parameters / 1e6:0.00}M | {Scores(r.Retrieval)} |") + (probe ? $" {Pct(r.ProbeAccuracy!.Value)} |" : ""));
        sb.AppendLine($"| random ranking |  | {Scores(baseline.Random)} |" + (probe ? "  |" : ""));
        if (probe) sb.AppendLine($"| majority label |  |  |  |  |  | {Pct(baseline.MajorityAccuracy!.Value)} |");
        return sb.ToString();
    }
}
