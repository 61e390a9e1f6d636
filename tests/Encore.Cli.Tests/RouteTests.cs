using System.Text.Json;
using Encore.Training.Data;

namespace Encore.Cli.Tests;

/// <summary>
/// Swift/super routing from the command line on untrained tiny checkpoints made here: the <c>eval --route</c>
/// study (its curves checked against each other and the models' own scores), <c>generate --super-model</c>,
/// and the refusals: another tokenizer (both directories named), too few examples, routing options alone.
/// </summary>
public sealed class RouteTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-route-cli-").FullName;
    readonly string _data, _swift, _super, _other;

    public RouteTests()
    {
        var pairs = Enumerable.Range(0, 16).Select(i => new TextPair(
            $"package number {i} provides a library for parsing {(i % 2 == 0 ? "images" : "fonts")} quickly and safely",
            i % 3 == 0 ? "image library" : $"font parser {i}")).ToList();
        _data = Path.Combine(_dir, "pairs.jsonl");
        File.WriteAllLines(_data, pairs.Select(p => JsonSerializer.Serialize(new { source = p.Source, target = p.Target })));
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        _swift = TestCheckpoints.Save(Path.Combine(_dir, "swift"), "tiny-decoder", tokenizer);
        _super = TestCheckpoints.Save(Path.Combine(_dir, "super"), "tiny-encdec", tokenizer);
        _other = TestCheckpoints.Save(Path.Combine(_dir, "other"), "tiny-encdec", BundledData.TrainTokenizer(pairs.Take(5), vocabSize: 300, sentinels: 0));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TheStudyPrintsEveryRoutersCurveBetweenItsBounds()
    {
        string plot = Path.Combine(_dir, "route.png");
        var r = CliRunner.Run("eval", "-m", $"small={_swift}", "-m", $"large={_super}", "--route", "--data", _data, "--examples", "8", "--calibration-examples", "8",
            "--max-new-tokens", "5", "--route-fractions", "0.25,0.5", "--json", "--plot", plot);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var result = doc.RootElement.GetProperty("result");
        Assert.Equal(8, result.GetProperty("examples").GetInt32());
        Assert.Equal(8, result.GetProperty("calibration_examples").GetInt32());
        Assert.Equal("ROUGE-L", result.GetProperty("metric").GetString());
        double swift = result.GetProperty("swift_quality").GetDouble(), super = result.GetProperty("super_quality").GetDouble();
        var curves = result.GetProperty("curves").EnumerateArray().ToDictionary(c => c.GetProperty("method").GetString()!, c => c.GetProperty("quality").EnumerateArray().Select(x => x.GetDouble()).ToArray());
        Assert.Equal(["energy-first", "energy-mean", "maxprob-first", "maxprob-mean", "random", "oracle"], curves.Keys);
        foreach (var (method, q) in curves)
        {
            Assert.Equal(9, q.Length);                                            // k = 0 … 8 routed
            Assert.Equal(swift, q[0], 9);                                         // nothing routed: the swift model alone
            Assert.Equal(super, q[^1], 9);                                        // everything routed: the super model alone
            for (int k = 0; k < q.Length; k++) Assert.True(q[k] <= curves["oracle"][k] + 1e-9, $"{method} beats the oracle at {k} routed");
        }
        // Random routing in expectation: the straight line between the two models.
        for (int k = 0; k <= 8; k++) Assert.Equal(swift + (super - swift) * k / 8.0, curves["random"][k], 9);
        var calibrated = result.GetProperty("calibrated").EnumerateArray().ToList();
        Assert.Equal(6 * 2, calibrated.Count);                                    // six methods × two fractions
        var comparisons = result.GetProperty("comparisons").EnumerateArray().Select(c => (c.GetProperty("method").GetString(), c.GetProperty("baseline").GetString())).ToList();
        Assert.Equal([("energy-first", "random"), ("energy-mean", "random"), ("energy-first", "maxprob-first"), ("energy-mean", "maxprob-mean")], comparisons);
        Assert.True(File.Exists(plot) && new FileInfo(plot).Length > 1000);
    }

    [Fact]
    public void ExactMatchScoresEachAnswerAsRightOrWrong()
    {
        // Each model's greedy answers, batch 1, as `generate` gives them; the references are made to match the swift
        // model's answer on even examples and the super model's on every other odd one, so both scores are known; the
        // rest extend the swift model's answer by a word, which ROUGE-L would score in part and exact match not at all.
        var sources = File.ReadAllLines(_data).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("source").GetString()!).ToList();
        string prompts = Path.Combine(_dir, "prompts.jsonl");
        File.WriteAllLines(prompts, sources.Select(s => JsonSerializer.Serialize(new { prompt = s })));
        List<string> Answers(string model)
        {
            var g = CliRunner.Run("generate", "-m", model, "--input-file", prompts, "--batch-size", "1", "--max-new-tokens", "5", "--json");
            Assert.True(g.ExitCode == 0, g.Stderr);
            return g.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!).ToList();
        }
        var swiftAnswers = Answers(_swift);
        var superAnswers = Answers(_super);
        var targets = Enumerable.Range(0, 16).Select(i => i % 2 == 0 ? swiftAnswers[i] : i % 4 == 1 ? superAnswers[i] : swiftAnswers[i] + " parser").ToList();
        string data = Path.Combine(_dir, "exact.jsonl");
        File.WriteAllLines(data, sources.Select((s, i) => JsonSerializer.Serialize(new { source = s, target = targets[i] })));
        double Expected(List<string> answers) => Enumerable.Range(0, 8).Average(i => Encore.Training.Metrics.TextMetrics.ExactMatch([answers[i].Trim()], [targets[i].Trim()]));

        var r = CliRunner.Run("eval", "-m", $"small={_swift}", "-m", $"large={_super}", "--route", "--route-metric", "exact-match", "--data", data, "--examples", "8",
            "--calibration-examples", "8", "--max-new-tokens", "5", "--route-fractions", "0.5", "--json", "--markdown");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var result = doc.RootElement.GetProperty("result");
        Assert.Equal("exact match", result.GetProperty("metric").GetString());
        double swift = result.GetProperty("swift_quality").GetDouble(), super = result.GetProperty("super_quality").GetDouble();
        Assert.True(swift >= 50, $"swift {swift}");                                 // at least its four even examples
        Assert.Equal(Expected(swiftAnswers), swift, 9);
        Assert.Equal(Expected(superAnswers), super, 9);
        foreach (var c in result.GetProperty("curves").EnumerateArray())
            foreach (var q in c.GetProperty("quality").EnumerateArray())
            {
                double right = q.GetDouble() * 8 / 100;                                // examples answered right, in expectation for random
                if (c.GetProperty("method").GetString() != "random") Assert.Equal(Math.Round(right), right, 9);
            }
        Assert.Contains("| router | target | threshold | routed | exact match | ms/example |", doc.RootElement.GetProperty("markdown").GetString());

        r = CliRunner.Run("eval", "-m", _swift, "-m", _super, "--route", "--route-metric", "bleu", "--data", data, "--examples", "4", "--calibration-examples", "4");
        CliRunner.AssertOneLineError(r, "--route-metric: 'bleu' is not rouge-l or exact-match");
    }

    [Fact]
    public void GenerateSaysWhichModelAnswered()
    {
        foreach (var (threshold, model) in new[] { ("-1e9", "super"), ("1e9", "swift") })
        {
            var r = CliRunner.Run("generate", "-m", _swift, "--super-model", _super, "--route-threshold", threshold, "--prompt", "package number 3 provides", "--max-new-tokens", "4", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var doc = JsonDocument.Parse(r.Stdout);
            Assert.Equal(model, doc.RootElement.GetProperty("routed_to").GetString());
            var plain = CliRunner.Run("generate", "-m", model == "super" ? _super : _swift, "--prompt", "package number 3 provides", "--max-new-tokens", "4", "--json");
            using var plainDoc = JsonDocument.Parse(plain.Stdout);
            Assert.Equal(plainDoc.RootElement.GetProperty("text").GetString(), doc.RootElement.GetProperty("text").GetString());
        }
    }

    [Fact]
    public void BadRoutingIsRefusedWithOneLine()
    {
        var r = CliRunner.Run("eval", "-m", _swift, "-m", _other, "--route", "--data", _data, "--examples", "4", "--calibration-examples", "4");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"the swift model {_swift}", r.Stderr);
        Assert.Contains($"the super model {_other}", r.Stderr);
        Assert.Contains("must share a tokenizer", r.Stderr);

        r = CliRunner.Run("generate", "-m", _swift, "--super-model", _other, "--route-threshold", "0", "--prompt", "x");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"--model {_swift}", r.Stderr);
        Assert.Contains($"--super-model {_other}", r.Stderr);
        Assert.Contains("must share a tokenizer", r.Stderr);

        r = CliRunner.Run("eval", "-m", _swift, "-m", _super, "--route", "--data", _data, "--examples", "10", "--calibration-examples", "10");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("has 16 examples: too few for --examples 10 and --calibration-examples 10", r.Stderr);

        r = CliRunner.Run("eval", "-m", _swift, "--route", "--data", _data, "--examples", "4");
        Assert.Contains("--route needs two models", r.Stderr);

        r = CliRunner.Run("generate", "-m", _swift, "--route-threshold", "0", "--prompt", "x");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("need --super-model", r.Stderr);

        r = CliRunner.Run("generate", "-m", _swift, "--super-model", _super, "--prompt", "x");
        Assert.Contains("--super-model needs one of --route-threshold and --route-fraction", r.Stderr);
    }
}
