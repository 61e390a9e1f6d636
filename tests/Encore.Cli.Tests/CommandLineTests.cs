using System.Text.RegularExpressions;

namespace Encore.Cli.Tests;

/// <summary>
/// The command line itself: help texts, and what a mistyped command or option prints. Runs the built
/// <c>encore</c> program.
/// </summary>
public sealed partial class CommandLineTests
{
    /// <summary>The names under "Commands:" of a help text.</summary>
    static IEnumerable<string> Subcommands(string help)
    {
        bool inside = false;
        foreach (var line in help.Split('\n'))
        {
            if (line.StartsWith("Commands:", StringComparison.Ordinal)) { inside = true; continue; }
            if (!inside) continue;
            if (!line.StartsWith("  ", StringComparison.Ordinal)) break;
            yield return line.Trim().Split(' ', 2)[0];
        }
    }

    [GeneratedRegex(@"\bdefault\b", RegexOptions.IgnoreCase)]
    private static partial Regex DefaultWord();

    [Fact]
    public void EveryHelpTextPrintsEachDefaultOnce()
    {
        var pending = new Queue<string[]>([[]]);
        int commands = 0;
        while (pending.TryDequeue(out var path))
        {
            var r = CliRunner.Run([.. path, "--help"]);
            Assert.True(r.ExitCode == 0, $"encore {string.Join(' ', path)} --help failed: {r.Stderr}");
            commands++;
            foreach (var line in r.Stdout.Split('\n'))
                Assert.False(DefaultWord().Matches(line).Count > 1, $"encore {string.Join(' ', path)} --help names a default twice: {line.Trim()}");
            foreach (var sub in Subcommands(r.Stdout)) pending.Enqueue([.. path, sub]);
        }
        // The root, its commands and the bench suites: a parse of "Commands:" that found nothing would pass vacuously.
        Assert.True(commands > 15, $"only {commands} help texts found");
    }

    // The model a command works on is -m/--model everywhere (older names such as --config, --student and
    // --preset stay as aliases).
    [Theory]
    [InlineData("generate")] [InlineData("serve")] [InlineData("eval")] [InlineData("quantize")] [InlineData("convert")]
    [InlineData("forward")] [InlineData("init")] [InlineData("config")] [InlineData("train")] [InlineData("distill")] [InlineData("adapt")]
    [InlineData("compress")] [InlineData("decompress")]
    [InlineData("bench", "forward")] [InlineData("bench", "generate")] [InlineData("bench", "serve")] [InlineData("bench", "train")] [InlineData("bench", "peers")]
    public void TheModelOptionIsDashMEverywhere(params string[] command)
    {
        var r = CliRunner.Run([.. command, "--help"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains(r.Stdout.Split('\n'), line => line.TrimStart().StartsWith("-m, ", StringComparison.Ordinal) && line.Contains("--model"));
    }

    [Fact]
    public void AMistypedOptionGetsOneLineWithTheNearestName()
    {
        var r = CliRunner.Run("generate", "--model", "nowhere", "--max-new-token", "3");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal("encore: unknown option '--max-new-token' (did you mean '--max-new-tokens'?)", r.Stderr.Trim());
        Assert.Equal("", r.Stdout.Trim());
    }

    [Fact]
    public void AMistypedCommandGetsOneLineWithTheNearestName()
    {
        var r = CliRunner.Run("generat", "--prompt", "x");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal("encore: unknown command 'generat' (did you mean 'generate'?)", r.Stderr.Trim());

        r = CliRunner.Run("bench", "kernel");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal("encore: unknown command 'kernel' (did you mean 'kernels'?)", r.Stderr.Trim());
    }

    [Fact]
    public void ANameFarFromEveryOptionPointsToTheHelp()
    {
        var r = CliRunner.Run("bench", "kernels", "--frobnicate");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal("encore: unknown option '--frobnicate' (see 'encore bench kernels --help')", r.Stderr.Trim());
    }

    [Fact]
    public void SwappedLettersAreOneEdit()
    {
        Assert.Equal(1, ParseErrors.Distance("--rnus", "--runs"));
        Assert.Equal(1, ParseErrors.Distance("--max-new-token", "--max-new-tokens"));
        Assert.Equal(3, ParseErrors.Distance("kitten", "sitting"));
        Assert.Equal("--runs", ParseErrors.Nearest("--rnus", ["--runs", "--threads", "--json"]));
        Assert.Null(ParseErrors.Nearest("-x", ["-h", "-m"]));
    }

    [Fact]
    public void AMissingRequiredOptionIsOneLine()
    {
        var r = CliRunner.Run("generate", "--prompt", "x");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal("encore: Option '--model' is required.", r.Stderr.Trim());
    }

    /// <summary>Runs encore expecting success and one JSON object on stdout.</summary>
    static System.Text.Json.JsonElement Json(params string[] args)
    {
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode == 0, $"encore {string.Join(' ', args)} failed: {r.Stderr}");
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        Assert.Equal(System.Text.Json.JsonValueKind.Object, doc.RootElement.ValueKind);
        return doc.RootElement.Clone();
    }

    [Fact]
    public void InitConfigConvertAndForwardPrintOneJsonObject()
    {
        var dir = Directory.CreateTempSubdirectory("encore-json-cli-").FullName;
        try
        {
            string model = Path.Combine(dir, "model");
            var init = Json("init", "--config", "tiny-encdec", "--out", model, "--json");
            Assert.Equal(model, init.GetProperty("output").GetString());
            Assert.True(init.GetProperty("parameters").GetInt64() > 0);
            Assert.True(File.Exists(Path.Combine(model, "config.json")));

            var config = Json("config", "--preset", "tiny-encdec", "--json");
            Assert.Equal("tiny-encdec", config.GetProperty("preset").GetString());
            Assert.Equal(System.Text.Json.JsonValueKind.Object, config.GetProperty("config").ValueKind);
            string configFile = Path.Combine(dir, "config.json");
            Assert.Equal(configFile, Json("config", "--preset", "tiny-encdec", "--out", configFile, "--json").GetProperty("output").GetString());
            Assert.True(File.Exists(configFile));

            // A decoder llama.cpp's "llama" graph runs: gated SiLU feed-forward, RoPE, untied embeddings.
            string decoder = Path.Combine(dir, "decoder"), gguf = Path.Combine(dir, "decoder.gguf");
            var llama = Encore.Models.Presets.Get("tiny-decoder") with
            {
                Activation = Encore.Tensors.Kernels.ActivationKind.Silu, GatedFfn = true, TieEmbeddings = false,
                EncoderPositions = new Encore.Models.PositionConfig { Kind = Encore.Models.PositionKind.None }, BosTokenId = 1, EosTokenId = 2,
            };
            using (var m = Encore.Models.LanguageModel.Create(llama, seed: 3))
                Encore.Formats.Checkpoints.Checkpoint.Save(m, decoder);
            var convert = Json("convert", "--model", decoder, "--to", "gguf", "--out", gguf, "--json");
            Assert.Equal(new FileInfo(gguf).Length, convert.GetProperty("bytes").GetInt64());
            Assert.Equal("llama", convert.GetProperty("architecture").GetString());

            var forward = Json("forward", "--model", model, "--input-ids", "1,2,3", "--out", Path.Combine(dir, "logits.npy"), "--json");
            Assert.Equal(3, forward.GetProperty("shape").GetArrayLength());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void AValueThatIsNotANumberIsNamedInWords()
    {
        var r = CliRunner.Run("info", "--threads", "abc");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal("encore: Cannot parse argument 'abc' for option '--threads' as an integer.", r.Stderr.Trim());
    }

    [Theory]
    [InlineData(0, "0:00")]
    [InlineData(59.4, "0:59")]
    [InlineData(59.6, "1:00")]
    [InlineData(61, "1:01")]
    [InlineData(3599, "59:59")]
    [InlineData(3725, "1:02:05")]
    [InlineData(90_000, "25:00:00")]
    [InlineData(-1, "?:??")]
    public void DurationsHaveOneFormat(double seconds, string expected) =>
        Assert.Equal(expected, Encore.Cli.Commands.Common.Clock(TimeSpan.FromSeconds(seconds)));
}
