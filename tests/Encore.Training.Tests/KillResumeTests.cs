using System.Diagnostics;
using System.Text.Json;

namespace Encore.Training.Tests;

/// <summary>
/// Kills a real <c>encore train</c> process part-way and resumes it: the resumed run must end with
/// exactly the loss of an uninterrupted run with the same seed, and no checkpoint may be left half-written.
/// </summary>
public class KillResumeTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-kill-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Encore => Path.Combine(AppContext.BaseDirectory, "encore.dll");

    string[] Args(string output, bool resume)
    {
        var args = new List<string>
        {
            Encore, "train", "--config", "tiny-encdec", "--data", Path.Combine(_dir, "data.jsonl"), "--out", output,
            "--steps", "40", "--save-every", "5", "--eval-every", "0", "--eval-examples", "0", "--vocab", "400",
            "--warmup", "5", "--lr", "0.003", "--seed", "3", "--max-tokens", "256", "--json", "--threads", "1",
        };
        if (resume) args.Add("--resume");
        return [.. args];
    }

    static Process Start(string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    static void RunToEnd(string[] args)
    {
        using var p = Start(args);
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(120_000), "encore train did not finish");
        Assert.True(p.ExitCode == 0, $"encore train failed: {err.Result}");
    }

    static string FinalLoss(string output)
    {
        var last = File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Last(l => l.Contains("\"loss\""));
        using var d = JsonDocument.Parse(last);
        Assert.Equal(40, d.RootElement.GetProperty("step").GetInt32());
        return d.RootElement.GetProperty("loss").GetRawText();
    }

    [Fact]
    public void AKilledTrainingRunResumesToTheSameFinalLoss()
    {
        var r = new Random(11);
        var lines = Enumerable.Range(0, 60).Select(i =>
        {
            var words = Enumerable.Range(0, r.Next(3, 9)).Select(_ => ((char)('a' + r.Next(8))).ToString() + (char)('a' + r.Next(8))).ToArray();
            return JsonSerializer.Serialize(new { source = string.Join(' ', words), target = string.Join(' ', words.Reverse()) });
        });
        File.WriteAllLines(Path.Combine(_dir, "data.jsonl"), lines);

        var straight = Path.Combine(_dir, "straight");
        RunToEnd(Args(straight, resume: false));

        // Kill at a random point after the first checkpoints exist (steps 12–34), possibly mid-write.
        var killed = Path.Combine(_dir, "killed");
        int killAfter = r.Next(12, 35);
        using (var p = Start(Args(killed, resume: false)))
        {
            _ = p.StandardError.ReadToEndAsync();
            string? line;
            while ((line = p.StandardOutput.ReadLine()) != null)
            {
                if (line.Contains("\"event\":\"step\"") && JsonDocument.Parse(line).RootElement.GetProperty("step").GetInt32() >= killAfter)
                {
                    p.Kill(entireProcessTree: true);
                    break;
                }
            }
            p.WaitForExit(30_000);
        }
        Assert.False(File.ReadAllLines(Path.Combine(killed, "metrics.jsonl")).Any(l => l.Contains("\"step\":40,")), "the run was killed before its end");
        RunToEnd(Args(killed, resume: true));
        Assert.Equal(FinalLoss(straight), FinalLoss(killed));
        // Only complete checkpoints remain, and no temporary directories.
        Assert.All(Directory.GetDirectories(killed, "checkpoint-*"), d => Assert.True(File.Exists(Path.Combine(d, "trainer_state.json"))));
        Assert.Empty(Directory.GetDirectories(killed, ".checkpoint-*"));
    }
}
