using System.Text.Json;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>encore train --attention-entropy</c> and <c>--entropy-reg</c>, and <c>encore lab entropy</c>: what they write, and argument
/// errors as one line naming the option.
/// </summary>
public sealed class AttentionEntropyCliTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-entropy-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Data() => TestCheckpoints.TinyTrainingData(_dir);

    [Fact]
    public void TrainingWithAttentionEntropyLogsEveryLayerAndHeadAndDrawsThePlot()
    {
        string run = Path.Combine(_dir, "run");
        var r = CliRunner.Run("train", "-m", "tiny-decoder", "--data", Data(), "--steps", "4", "--warmup", "1", "--attention-entropy", "2",
            "--entropy-reg", "1e-3", "--eval-examples", "0", "--out", run, "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var entropy = lines.Where(l => l.EnumerateObject().Any(p => p.Name.StartsWith("attn_entropy/", StringComparison.Ordinal))).ToList();
        Assert.Equal([2L, 4L], entropy.Select(l => l.GetProperty("step").GetInt64()));
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "checkpoint-4", "config.json")));
        foreach (var line in entropy)
        {
            var names = line.EnumerateObject().Select(p => p.Name).Where(n => n.StartsWith("attn_entropy", StringComparison.Ordinal)).ToList();
            // Every layer and head, in nats and normalized.
            Assert.Contains("attn_entropy/decoder.layers.0.self_attn/0", names);
            Assert.Contains("attn_entropy_norm/decoder.layers.0.self_attn/0", names);
            int layers = names.Select(n => n.Split('/')[1]).Distinct().Count();
            Assert.Equal(2 * layers * 4, names.Count);
            foreach (var n in names.Where(n => n.StartsWith("attn_entropy_norm/", StringComparison.Ordinal)))
                Assert.InRange(line.GetProperty(n).GetDouble(), 0, 1.0001);
        }
        var steps = lines.Where(l => l.TryGetProperty("loss", out _)).ToList();
        Assert.Equal(4, steps.Count);
        Assert.All(steps, s => Assert.True(s.GetProperty("entropy_reg").GetDouble() > 0));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(Path.Combine(run, "attention-entropy.png"))[..4]);
        Assert.DoesNotContain(Directory.GetFiles(run), f => Path.GetFileName(f).StartsWith('.') || f.EndsWith(".tmp", StringComparison.Ordinal));
    }

    [Fact]
    public void AResumedRegularizedRunEndsWithTheThresholdsAndWeightsOfAnUnbrokenOne()
    {
        string data = Data(), whole = Path.Combine(_dir, "whole"), split = Path.Combine(_dir, "split");
        string[] Args(string output, int steps) => ["train", "-m", "tiny-decoder", "--data", data, "--steps", steps.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--warmup", "1", "--save-every", "2", "--entropy-reg", "0.05", "--eval-examples", "0", "--out", output, "--threads", "1", "--json"];
        Assert.Equal(0, CliRunner.Run(Args(whole, 4)).ExitCode);
        // The first two steps, as a kill after checkpoint-2 would leave them, then --resume to 4.
        Assert.Equal(0, CliRunner.Run(Args(split, 2)).ExitCode);
        var r = CliRunner.Run([.. Args(split, 4), "--resume"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        foreach (var file in new[] { "entropy_thresholds.safetensors", "model.safetensors" })
        {
            var a = File.ReadAllBytes(Path.Combine(whole, "checkpoint-4", file));
            Assert.Equal(a, File.ReadAllBytes(Path.Combine(split, "checkpoint-4", file)));
        }
        // The thresholds moved from their start of 0.5.
        using var thresholds = Encore.Formats.SafetensorsFile.Open(Path.Combine(whole, "checkpoint-4", "entropy_thresholds.safetensors"));
        using var theta = thresholds.Read(thresholds.Names.First());
        Assert.Contains(theta.ToFloatArray(), x => x != 0.5f);
    }

    [Theory]
    [InlineData("--attention-entropy 0", "encore: --attention-entropy: the interval must be a positive number of steps, got 0")]
    [InlineData("--attention-entropy x", "--attention-entropy")]
    [InlineData("--entropy-reg 0", "encore: --entropy-reg: the weight must be positive, got 0")]
    [InlineData("--entropy-reg 1e-3 --entropy-tolerance -1", "encore: --entropy-tolerance must be ≥ 0, got -1")]
    [InlineData("--entropy-reg 1e-3 --entropy-threshold -0.5", "encore: --entropy-threshold must be ≥ 0, got -0.5")]
    [InlineData("--entropy-tolerance 0.3", "encore: --entropy-tolerance and --entropy-threshold shape the entropy regularizer: pass --entropy-reg too")]
    [InlineData("--entropy-reg 1e-3 --activation-checkpointing", "encore: --entropy-reg does not combine with --activation-checkpointing")]
    [InlineData("--optimizer-moments f16", "encore: --optimizer-moments: unknown storage 'f16' (f32, bf16)")]
    [InlineData("--optimizer sgd --optimizer-moments bf16", "encore: --optimizer-moments bf16 stores AdamW's moments; the Sgd optimizer keeps its own state in f32")]
    public void BadTrainArgumentsAreOneLineNamingTheOption(string args, string expected)
    {
        var r = CliRunner.Run(["train", "-m", "tiny-decoder", "--data", Data(), "--steps", "2", "--out", Path.Combine(_dir, "bad"), .. args.Split(' ')]);
        Assert.NotEqual(0, r.ExitCode);
        var lines = r.Stderr.Trim().Split('\n');
        Assert.Single(lines);
        Assert.StartsWith("encore: ", lines[0]);
        Assert.Contains(expected, lines[0]);
    }

    [Theory]
    [InlineData("--variants baseline,foo", "encore: --variants: unknown variant 'foo'; one of baseline, linear-ffn, no-norm, softmax-only, softmax-only-reg, baseline-reg")]
    [InlineData("--max-length 1", "encore: --max-length must be in [2, 24], got 1")]
    [InlineData("--entropy-reg 0", "encore: --entropy-reg must be positive, got 0")]
    [InlineData("--measure-every 0", "encore: --measure-every must be positive, got 0")]
    public void BadLabArgumentsAreOneLineNamingTheOption(string args, string expected)
    {
        var r = CliRunner.Run(["lab", "entropy", "--quick", .. args.Split(' ')]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal(expected, r.Stderr.Trim());
        Assert.Equal("", r.Stdout.Trim());
    }

    [Fact]
    public void ATinyEntropyStudyPrintsJsonWithTheDocumentedFieldsAndWritesItsPlot()
    {
        var plot = Path.Combine(_dir, "entropy.png");
        var r = CliRunner.Run("lab", "entropy", "--quick", "--variants", "baseline,softmax-only,softmax-only-reg", "--steps", "4", "--measure-every", "2", "--max-length", "3",
            "--threads", "1", "--seed", "2", "--json", "--plot", plot);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal("entropy", root.GetProperty("study").GetString());
        Assert.Equal("sort", root.GetProperty("task").GetString());
        Assert.Equal(4, root.GetProperty("steps").GetInt32());
        Assert.Equal(2UL, root.GetProperty("seed").GetUInt64());
        Assert.Equal(1e-3, root.GetProperty("regularizer_weight").GetDouble(), 6);
        Assert.Contains("overload", root.GetProperty("claim").GetString());
        var variants = root.GetProperty("variants").EnumerateArray().ToList();
        Assert.Equal(["baseline", "softmax-only", "softmax-only-reg"], variants.Select(v => v.GetProperty("variant").GetString()));
        foreach (var v in variants)
        {
            Assert.True(v.GetProperty("parameters").GetInt64() > 0);
            Assert.True(v.GetProperty("validation_loss").GetDouble() > 0);
            Assert.InRange(v.GetProperty("exact_match").GetDouble(), 0, 1);
            var layers = v.GetProperty("layers").EnumerateArray().Select(x => x.GetDouble()).ToList();
            Assert.Equal(4, layers.Count);
            Assert.All(layers, x => Assert.InRange(x, 0, 1.0001));
            var heads = v.GetProperty("heads").EnumerateArray().ToList();
            Assert.Equal(4, heads.Count);
            Assert.All(heads, h => Assert.Equal(4, h.GetArrayLength()));
            Assert.Equal(4, v.GetProperty("head_nats").GetArrayLength());
            Assert.InRange(v.GetProperty("overload").GetDouble(), 0, 1);
            Assert.InRange(v.GetProperty("collapse").GetDouble(), 0, 1);
            Assert.Equal([2L, 4L], v.GetProperty("curve").EnumerateArray().Select(p => p.GetProperty("step").GetInt64()));
        }
        // The reduced model against the baseline, and the regularizer against the reduced model.
        var observed = root.GetProperty("observed").EnumerateArray().Select(o => o.GetString()!).ToList();
        Assert.Equal(2, observed.Count);
        Assert.StartsWith("no norms, no FFN nonlinearity against the baseline", observed[0]);
        Assert.StartsWith("entropy regularizer on no norms, no FFN nonlinearity", observed[1]);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(plot)[..4]);
        Assert.Equal([plot], Directory.GetFiles(_dir).Where(f => !f.EndsWith(".jsonl", StringComparison.Ordinal)));
    }
}
