using System.Diagnostics;

namespace Encore.Cli.Tests;

/// <summary>Runs the built <c>encore</c> program as a user does and returns what it did.</summary>
internal static class CliRunner
{
    internal sealed record Result(int ExitCode, string Stdout, string Stderr);

    internal static Result Run(string[] args, string? stdin = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin != null, UseShellExecute = false,
        };
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
}
