using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Commands;

// encore eval --route: the swift/super routing study (RoutingStudy) over two checkpoints.
internal static partial class EvalCommand
{
    /// <summary>The options of <c>eval --route</c>.</summary>
    internal sealed class RouteOptions
    {
        public readonly Option<bool> Route = new("--route")
        {
            Description = "Swift/super routing study (E-LANG, arXiv 2203.00748) of two models with one tokenizer: the first -m is the swift (small) model, the second the super (large) one. " +
                "Both answer every example; prints the quality (--route-metric) and time per example against the fraction routed for energy, max-softmax, random and oracle routing (docs/adaptive-compute.md).",
        };
        public readonly Option<int> CalibrationExamples = new("--calibration-examples")
        {
            Description = "With --route: examples the thresholds are calibrated on, taken after the scored ones in --data (or from the start of --calibration-data).",
            DefaultValueFactory = _ => 300,
        };
        public readonly Option<string?> CalibrationData = new("--calibration-data") { Description = "With --route: JSONL pairs to calibrate on (default: --data, after the scored examples)." };
        public readonly Option<string?> Fractions = new("--route-fractions") { Description = "With --route: routed fractions the thresholds are calibrated for, comma-separated (default 0.1,…,0.9)." };
        public readonly Option<double> Temperature = new("--route-temperature") { Description = "With --route: T of the energy −T·logsumexp(logits/T).", DefaultValueFactory = _ => 1.0 };
        public readonly Option<string> Metric = new("--route-metric")
        {
            Description = "With --route: how an answer is scored against its reference: rouge-l (generation) or exact-match (accuracy, for classification-as-text such as --target-field section).",
            DefaultValueFactory = _ => "rouge-l",
        };

        public IEnumerable<Option> All => [Route, CalibrationExamples, CalibrationData, Fractions, Temperature, Metric];
    }

    static int RunRoute(ParseResult parse, RouteOptions route, Option<string[]> model, Option<string> data, Option<int> examples, Option<int> maxNew,
        Common.FieldOptions fields, KvCacheDType kv, string? dtype, string? tokenizerDir, Option<bool> json, Option<bool> markdown, Option<string?> plot)
    {
        var d = new RoutingStudyOptions();
        var options = (d with
        {
            MaxNewTokens = parse.GetValue(maxNew),
            Temperature = parse.GetValue(route.Temperature),
            KvCache = kv,
            Fractions = parse.GetValue(route.Fractions) is { } f ? ParseFractions(f) : d.Fractions,
            Metric = parse.GetValue(route.Metric) switch
            {
                "rouge-l" => RoutingMetric.RougeL,
                "exact-match" => RoutingMetric.ExactMatch,
                var name => throw new ArgumentException($"--route-metric: '{name}' is not rouge-l or exact-match"),
            },
        }).Validate();
        var specs = ModelSpec.ParseAll(parse.GetValue(model)!);
        if (specs.Count != 2) throw new ArgumentException($"--route needs two models, -m SWIFT -m SUPER; got {specs.Count}");
        var dirs = ModelComparison.Resolve(specs);
        int n = parse.GetValue(examples), calibrationCount = parse.GetValue(route.CalibrationExamples);
        if (calibrationCount < 1) throw new ArgumentException($"--calibration-examples must be positive, got {calibrationCount}");
        string path = parse.GetValue(data)!;
        var readOptions = fields.Read(parse);
        var pairs = DatasetReader.ReadPairs(path, readOptions);
        string calibrationPath = parse.GetValue(route.CalibrationData) ?? path;
        IReadOnlyList<TextPair> scored, calibration;
        if (parse.GetValue(route.CalibrationData) is { } other)
        {
            scored = n > 0 ? pairs.Take(n).ToList() : pairs;
            calibration = DatasetReader.ReadPairs(other, readOptions).Take(calibrationCount).ToList();
        }
        else
        {
            if (n < 1) throw new ArgumentException("--route calibrates on the examples after the scored ones: give --examples N (or --calibration-data FILE)");
            if (pairs.Count < n + calibrationCount)
                throw new ArgumentException($"{path} has {pairs.Count} examples: too few for --examples {n} and --calibration-examples {calibrationCount} after them");
            scored = pairs.Take(n).ToList();
            calibration = pairs.Skip(n).Take(calibrationCount).ToList();
        }
        if (scored.Count == 0 || calibration.Count == 0) throw new ArgumentException($"--route needs examples to score and to calibrate on; got {scored.Count} and {calibration.Count}");

        string? plotPath = parse.GetValue(plot);
        using var swift = Common.LoadForInference(dirs[0], dtype);
        using var super = Common.LoadForInference(dirs[1], dtype);
        var router = new RoutedGenerator(new Generator(swift, Common.LoadTokenizer(dirs[0], tokenizerDir)), new Generator(super, Common.LoadTokenizer(dirs[1], tokenizerDir)),
            new RoutingOptions { Temperature = options.Temperature }, $"the swift model {dirs[0]}", $"the super model {dirs[1]}");
        bool asJson = parse.GetValue(json);
        Action<string> progress = line => Console.Error.WriteLine($"eval --route: {line}…");
        var result = RoutingStudy.Run(router, specs[0].Name, specs[1].Name, scored, path, calibration, calibrationPath, options, progress);
        if (plotPath != null) RoutingReport.WritePlot(plotPath, result);
        string md = RoutingReport.ToMarkdown(result);
        if (asJson)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { result, claim = result.Claim, observed = result.Observed, plot = plotPath, markdown = parse.GetValue(markdown) ? md : null }, Common.Json));
            return 0;
        }
        // The tables are markdown either way: they read as well in a terminal and paste into docs.
        Console.Write(md);
        if (plotPath != null) Console.Error.WriteLine($"eval --route: plot {plotPath}");
        return 0;
    }

    static IReadOnlyList<double> ParseFractions(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException("--route-fractions: no fractions");
        return parts.Select(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && x >= 0 && x <= 1 ? x
            : throw new ArgumentException($"--route-fractions: '{p}' is not a fraction in [0, 1]")).ToArray();
    }
}
