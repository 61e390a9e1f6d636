using System.Text.Json;

namespace Encore.Cli.Tests;

/// <summary><c>encore train --optimizer-moments</c>: bf16 moments in the checkpoint, a resumed run, and argument errors naming the option.</summary>
public sealed class OptimizerMomentsCliTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-moments-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Data()
    {
        string path = Path.Combine(_dir, "data.jsonl");
        File.WriteAllLines(path, Enumerable.Range(0, 24).Select(i => JsonSerializer.Serialize(new { source = $"package number {i} of the archive", target = $"tool {i % 5}" })));
        return path;
    }

    [Fact]
    public void BFloat16MomentsAreWhatTheCheckpointHoldsAndARunResumesFromThem()
    {
        string run = Path.Combine(_dir, "run"), data = Data();
        var r = CliRunner.Run("train", "-m", "tiny-decoder", "--data", data, "--steps", "4", "--warmup", "1", "--save-every", "2",
            "--optimizer-moments", "bf16", "--eval-examples", "0", "--out", run, "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using (var state = Encore.Formats.SafetensorsFile.Open(Path.Combine(run, "checkpoint-4", "optimizer.safetensors")))
        {
            Assert.NotEmpty(state.Names);
            foreach (var name in state.Names)
            {
                using var t = state.Read(name);
                Assert.Equal(Encore.Tensors.DType.BF16, t.DType);
            }
        }
        // Resumed from checkpoint 2, steps 3 and 4 again: the same weights as the straight run.
        string resumed = Path.Combine(_dir, "resumed");
        r = CliRunner.Run("train", "-m", "tiny-decoder", "--data", data, "--steps", "4", "--warmup", "1", "--save-every", "2",
            "--optimizer-moments", "bf16", "--eval-examples", "0", "--out", resumed, "--threads", "1",
            "--resume-from", Path.Combine(run, "checkpoint-2"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var a = Encore.Formats.SafetensorsFile.Open(Path.Combine(run, "checkpoint-4", "model.safetensors"));
        using var b = Encore.Formats.SafetensorsFile.Open(Path.Combine(resumed, "checkpoint-4", "model.safetensors"));
        foreach (var name in a.Names)
        {
            using var ta = a.Read(name);
            using var tb = b.Read(name);
            Assert.Equal(ta.ToFloatArray(), tb.ToFloatArray());
        }
    }

    [Theory]
    [InlineData("--optimizer-moments f16", "encore: --optimizer-moments: unknown storage 'f16' (f32, bf16)")]
    [InlineData("--optimizer sgd --optimizer-moments bf16", "encore: --optimizer-moments bf16 stores AdamW's moments; the Sgd optimizer keeps its own state in f32")]
    public void BadArgumentsAreOneLineNamingTheOption(string args, string expected)
    {
        var r = CliRunner.Run(["train", "-m", "tiny-decoder", "--data", Data(), "--steps", "2", "--out", Path.Combine(_dir, "bad"), .. args.Split(' ')]);
        Assert.NotEqual(0, r.ExitCode);
        var lines = r.Stderr.Trim().Split('\n');
        Assert.Single(lines);
        Assert.Contains(expected, lines[0]);
    }
}
