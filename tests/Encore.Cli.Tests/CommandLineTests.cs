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
}
