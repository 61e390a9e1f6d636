using System.Diagnostics;

namespace Encore.Cli.Tests;

/// <summary>Runs the built <c>encore</c> program as a user does and returns what it did.</summary>
internal static class CliRunner
{
    internal sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>
    /// Runs encore with <paramref name="args"/>; <paramref name="environment"/> sets (or, with a null value, removes)
    /// variables of the child process only, never of the test process.
    /// </summary>
    internal static Result Run(string[] args, string? stdin = null, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin != null, UseShellExecute = false,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
            if (value is null) psi.Environment.Remove(name);
            else psi.Environment[name] = value;
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "encore.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin != null)
        {
            p.StandardInput.Write(stdin);
            p.StandardInput.Close();
        }
        Assert.True(p.WaitForExit(300_000), $"encore {string.Join(' ', args)} did not finish");
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    internal static Result Run(params string[] args) => Run(args, null);

    /// <summary>Asserts that <paramref name="r"/> failed with one stderr line, "encore: …", containing <paramref name="expected"/>.</summary>
    internal static void AssertOneLineError(Result r, string expected)
    {
        Assert.NotEqual(0, r.ExitCode);
        var line = Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.StartsWith("encore: ", line);
        Assert.Contains(expected, line);
    }
}
