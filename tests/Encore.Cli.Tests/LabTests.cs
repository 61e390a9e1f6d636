using System.Text.Json;

namespace Encore.Cli.Tests;

/// <summary><c>encore lab</c>: argument errors as one line, and tiny studies whose JSON parses with the documented fields.</summary>
public sealed class LabTests
{
    [Fact]
    public void AnUnknownStudyIsOneLineWithTheNearestName()
    {
        var r = CliRunner.Run("lab", "lenght");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal("encore: unknown command 'lenght' (did you mean 'length'?)", r.Stderr.Trim());

        r = CliRunner.Run("lab", "attention");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal("encore: unknown command 'attention' (see 'encore lab --help')", r.Stderr.Trim());
    }

    [Theory]
    [InlineData("--threads 0", "--threads must be between 1 and 1024, got 0")]
    [InlineData("--threads many", "--threads")]
    [InlineData("--steps 0", "--steps must be positive, got 0")]
    [InlineData("--tasks copy,multiply", "--tasks: unknown task 'multiply'")]
    [InlineData("--positions xpos", "--positions: unknown position encoding 'xpos'")]
    [InlineData("--families bert", "--families: unknown family 'bert'")]
    [InlineData("--train-length 1", "--train-length must be in [2, 64], got 1")]
    [InlineData("--seed -1", "--seed")]
    public void BadLengthArgumentsAreOneLineNamingTheOption(string args, string expected)
    {
        var r = CliRunner.Run(["lab", "length", "--quick", .. args.Split(' ')]);
        Assert.NotEqual(0, r.ExitCode);
        var lines = r.Stderr.Trim().Split('\n');
        Assert.Single(lines);
        Assert.StartsWith("encore: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.Equal("", r.Stdout.Trim());
    }

    [Theory]
    [InlineData("--length 11", "encore: --length must be in [2, 10] (π is written with one digit per index), got 11")]
    [InlineData("--setups scratch,middle", "encore: --setups: unknown setup 'middle'; one of at-input, encdec, scratch, generating")]
    [InlineData("--position xpos", "encore: --position: unknown position encoding 'xpos'; one of nope, learned, sinusoidal, t5, alibi, rope, comrope, urpe")]
    [InlineData("--lr 0", "encore: --lr must be in (0, 1), got 0")]
    public void BadPermutationArgumentsAreOneLineNamingTheOption(string args, string expected)
    {
        var r = CliRunner.Run(["lab", "inverse-permutation", .. args.Split(' ')]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal(expected, r.Stderr.Trim());
    }

    [Fact]
    public void ATinyLengthStudyPrintsJsonWithTheDocumentedFieldsAndWritesItsPlot()
    {
        var dir = Directory.CreateTempSubdirectory("encore-lab-cli-").FullName;
        try
        {
            var plot = Path.Combine(dir, "length.png");
            var r = CliRunner.Run("lab", "length", "--quick", "--tasks", "copy", "--positions", "nope,learned", "--train-length", "2", "--steps", "3",
                "--threads", "1", "--seed", "4", "--json", "--plot", plot);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var doc = JsonDocument.Parse(r.Stdout);
            var root = doc.RootElement;
            Assert.Equal("length", root.GetProperty("study").GetString());
            Assert.Equal(2, root.GetProperty("train_length").GetInt32());
            Assert.Equal(3, root.GetProperty("steps").GetInt32());
            Assert.Equal(4UL, root.GetProperty("seed").GetUInt64());
            Assert.Contains("NoPE", root.GetProperty("claim").GetString());
            var models = root.GetProperty("models").EnumerateArray().ToList();
            Assert.Equal(["NoPE", "learned"], models.Select(m => m.GetProperty("position").GetString()));
            foreach (var m in models)
            {
                Assert.Equal("copy", m.GetProperty("task").GetString());
                Assert.Equal("decoder-only", m.GetProperty("family").GetString());
                Assert.True(m.GetProperty("parameters").GetInt64() > 0);
                var buckets = m.GetProperty("buckets").EnumerateArray().ToList();
                Assert.Equal(["1–2", "3–3", "4–4"], buckets.Select(b => b.GetProperty("label").GetString()));
                Assert.All(buckets, b => Assert.InRange(b.GetProperty("exact_match").GetDouble(), 0, 1));
                Assert.InRange(m.GetProperty("in_distribution").GetDouble(), 0, 1);
            }
            Assert.Equal(2, root.GetProperty("summary").GetArrayLength());
            Assert.True(root.GetProperty("seconds").GetDouble() > 0);
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(plot)[..4]);
            Assert.Equal([plot], Directory.GetFiles(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ATinyInversePermutationStudyPrintsJsonWithEverySetup()
    {
        var r = CliRunner.Run("lab", "inverse-permutation", "--length", "3", "--steps", "2", "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal("inverse-permutation", root.GetProperty("study").GetString());
        Assert.Equal(3, root.GetProperty("length").GetInt32());
        var setups = root.GetProperty("setups").EnumerateArray().ToList();
        Assert.Equal(4, setups.Count);
        Assert.Equal(["decoder-only", "encoder–decoder", "decoder-only", "decoder-only"], setups.Select(s => s.GetProperty("family").GetString()));
        foreach (var s in setups)
        {
            Assert.InRange(s.GetProperty("exact_match").GetDouble(), 0, 1);
            Assert.InRange(s.GetProperty("token_accuracy").GetDouble(), 0, 1);
            Assert.Contains("π₀", s.GetProperty("format").GetString());
        }
    }

    [Theory]
    [InlineData("--splits 6+6,8", "encore: --splits: '8' is not a split ENCODER+DECODER with 1–64 layers each, e.g. 8+4")]
    [InlineData("--splits 6+0", "encore: --splits: '6+0' is not a split ENCODER+DECODER with 1–64 layers each, e.g. 8+4")]
    [InlineData("--examples 0", "encore: --examples must be positive, got 0")]
    [InlineData("--speed-rounds 0", "encore: --speed-rounds must be positive, got 0")]
    [InlineData("--train-examples -3", "encore: --train-examples must be ≥ 0, got -3")]
    public void BadDepthSplitArgumentsAreOneLineNamingTheOption(string args, string expected)
    {
        var r = CliRunner.Run(["lab", "depth-split", "--quick", .. args.Split(' ')]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal(expected, r.Stderr.Trim());
    }

    [Fact]
    public void ATinyDepthSplitStudyPrintsJsonWithEverySplitAndWritesItsPlot()
    {
        var dir = Directory.CreateTempSubdirectory("encore-lab-cli-").FullName;
        try
        {
            var plot = Path.Combine(dir, "depth.png");
            var r = CliRunner.Run("lab", "depth-split", "--quick", "--splits", "2+1,1+1", "--steps", "2", "--train-examples", "40", "--examples", "3",
                "--speed-rounds", "1", "--threads", "1", "--json", "--plot", plot);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var doc = JsonDocument.Parse(r.Stdout);
            var root = doc.RootElement;
            Assert.Equal("depth-split", root.GetProperty("study").GetString());
            Assert.Equal("1+1", root.GetProperty("reference").GetString());
            Assert.Equal(40, root.GetProperty("train_examples").GetInt32());
            Assert.Equal(2, root.GetProperty("steps").GetInt32());
            var splits = root.GetProperty("splits").EnumerateArray().ToList();
            Assert.Equal(["2+1", "1+1"], splits.Select(s => s.GetProperty("split").GetString()));
            foreach (var s in splits)
            {
                Assert.True(s.GetProperty("parameters").GetInt64() > 0);
                Assert.InRange(s.GetProperty("rouge_l").GetDouble(), 0, 100);
                Assert.True(s.GetProperty("decode_tokens_per_second").GetDouble() > 0);
                Assert.True(s.GetProperty("first_token_ms").GetDouble() > 0);
            }
            Assert.Equal(1.0, splits[1].GetProperty("decode_speedup").GetDouble());
            Assert.Contains("from the decoder to the encoder", root.GetProperty("claim").GetString());
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(plot)[..4]);
            Assert.Equal([plot], Directory.GetFiles(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
    [Theory]
    [InlineData("--codes 1", "encore: --codes must be in [2, 4096], got 1")]
    [InlineData("--top-k 128", "encore: --top-k must be in [1, 127] (below --codes), got 128")]
    [InlineData("--commitment -1", "encore: --commitment must be in [0, 10], got -1")]
    [InlineData("--length 1", "encore: --length must be in [2, 200], got 1")]
    [InlineData("--steps 0", "encore: --steps must be positive, got 0")]
    public void BadCodebookArgumentsAreOneLineNamingTheOption(string args, string expected)
    {
        var r = CliRunner.Run(["lab", "codebook", "--quick", .. args.Split(' ')]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal(expected, r.Stderr.Trim());
    }

    [Theory]
    [InlineData("--tasks 3", "encore: --tasks must divide the 10 classes (1, 2, 5 or 10), got 3")]
    [InlineData("--spread 0", "encore: --spread must be in (0, 5], got 0")]
    [InlineData("--codebooks 0", "encore: --codebooks must be in [1, 64], got 0")]
    [InlineData("--keys 0", "encore: --keys must be in [1, 4096], got 0")]
    [InlineData("--key-steps -1", "encore: --key-steps cannot be negative, got -1")]
    public void BadKeyValueArgumentsAreOneLineNamingTheOption(string args, string expected)
    {
        var r = CliRunner.Run(["lab", "kv-bottleneck", "--quick", .. args.Split(' ')]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal(expected, r.Stderr.Trim());
    }

    [Fact]
    public void ATinyKeyValueStudyPrintsJsonWithEveryModel()
    {
        var r = CliRunner.Run("lab", "kv-bottleneck", "--quick", "--steps", "5", "--key-steps", "2", "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal("kv-bottleneck", root.GetProperty("study").GetString());
        Assert.Equal(5, root.GetProperty("steps_per_task").GetInt32());
        var models = root.GetProperty("models").EnumerateArray().ToList();
        Assert.Equal(["linear head", "key–value bottleneck", "linear head", "key–value bottleneck"], models.Select(m => m.GetProperty("name").GetString()));
        Assert.All(models, m => Assert.InRange(m.GetProperty("final").GetDouble(), 0, 1));
    }
    [Fact]
    public void ATinyCodebookStudyPrintsJsonWithEveryModelAndState()
    {
        var r = CliRunner.Run("lab", "codebook", "--quick", "--steps", "2", "--length", "3", "--codes", "8", "--top-k", "2,1", "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal("codebook", root.GetProperty("study").GetString());
        Assert.Equal(8, root.GetProperty("codes").GetInt32());
        var models = root.GetProperty("models").EnumerateArray().ToList();
        Assert.Equal([0, 2, 1], models.Select(m => m.GetProperty("top_k").GetInt32()));
        Assert.Equal(20, models[1].GetProperty("state_codes").GetArrayLength());
        Assert.All(models, m => Assert.InRange(m.GetProperty("accuracy").GetDouble(), 0, 1));
    }
}
