using System.ComponentModel;
using System.Diagnostics;

namespace Encore.Bench;

/// <summary>What a peer script printed (one JSON object), or why there is nothing.</summary>
public sealed record PeerOutput(string? Json, string? Interpreter, string? Note);

/// <summary>
/// Runs a peer script from <c>bench/peers/</c> (Debian <c>python3-torch</c>) as a child process,
/// after Encore's own measurements and never beside them, and returns the JSON it prints. A script
/// exits with code 3 when torch cannot be imported, so the next interpreter is tried.
/// </summary>
public static class PythonPeer
{
    const int TorchMissingExitCode = 3;

    /// <summary>
    /// The script: next to this assembly under <c>peers/</c> (the build copies it there), else
    /// <c>bench/peers/</c> in a directory above the assembly or the working directory (the repository).
    /// </summary>
    public static string? LocateScript(string scriptName)
    {
        var beside = Path.Combine(AppContext.BaseDirectory, "peers", scriptName);
        if (File.Exists(beside)) return beside;
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "bench", "peers", scriptName);
                if (File.Exists(candidate)) return candidate;
            }
        }
        return null;
    }

    /// <summary>Interpreters to try: <paramref name="explicitPython"/> alone when given, else ENCORE_PYTHON, python3, /usr/bin/python3.</summary>
    public static IReadOnlyList<string> Interpreters(string? explicitPython)
    {
        if (!string.IsNullOrEmpty(explicitPython)) return [explicitPython];
        var list = new List<string>();
        if (Environment.GetEnvironmentVariable("ENCORE_PYTHON") is { Length: > 0 } env) list.Add(env);
        list.Add("python3");
        // A version manager's python3 (pyenv, conda) often lacks the distribution's torch.
        if (File.Exists("/usr/bin/python3")) list.Add("/usr/bin/python3");
        return list.Distinct().ToList();
    }

    /// <summary>Runs <paramref name="scriptName"/> with <paramref name="arguments"/>; never throws for a missing Python, torch or script.</summary>
    public static PeerOutput Run(string scriptName, IEnumerable<string> arguments, string? python, TimeSpan timeout)
    {
        var script = LocateScript(scriptName);
        if (script == null) return new(null, null, $"PyTorch peer skipped: {scriptName} not found beside the assembly (peers/) or under bench/peers/");
        var args = arguments.ToList();
        var tried = new List<string>();
        foreach (var interpreter in Interpreters(python))
        {
            var psi = new ProcessStartInfo(interpreter)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            psi.ArgumentList.Add(script);
            foreach (var a in args) psi.ArgumentList.Add(a);
            Process? process;
            try
            {
                process = Process.Start(psi);
            }
            catch (Win32Exception)
            {
                tried.Add($"{interpreter}: not found");
                continue;
            }
            if (process == null)
            {
                tried.Add($"{interpreter}: did not start");
                continue;
            }
            using (process)
            {
                var stdout = process.StandardOutput.ReadToEndAsync();
                var stderr = process.StandardError.ReadToEndAsync();
                if (!process.WaitForExit(timeout))
                {
                    process.Kill(entireProcessTree: true);
                    return new(null, interpreter, $"PyTorch peer stopped after {timeout.TotalSeconds:0} s (timeout)");
                }
                process.WaitForExit();
                string output = stdout.Result, errors = stderr.Result;
                if (process.ExitCode == TorchMissingExitCode)
                {
                    tried.Add($"{interpreter}: torch not importable");
                    continue;
                }
                if (process.ExitCode != 0)
                    return new(null, interpreter, $"PyTorch peer failed (exit {process.ExitCode}): {LastLine(errors) ?? LastLine(output) ?? "no output"}");
                return new(output, interpreter, null);
            }
        }
        return new(null, null, $"PyTorch peer skipped: no Python with torch ({string.Join("; ", tried)}); install python3-torch or pass --python");
    }

    static string? LastLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
}
