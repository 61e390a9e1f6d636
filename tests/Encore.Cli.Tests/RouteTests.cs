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
        double swift = result.GetProperty("swift_rouge_l").GetDouble(), super = result.GetProperty("super_rouge_l").GetDouble();
        var curves = result.GetProperty("curves").EnumerateArray().ToDictionary(c => c.GetProperty("method").GetString()!, c => c.GetProperty("rouge_l").EnumerateArray().Select(x => x.GetDouble()).ToArray());
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
        Assert.True(File.Exists(plot) && new FileInfo(plot).Length > 1000);
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
