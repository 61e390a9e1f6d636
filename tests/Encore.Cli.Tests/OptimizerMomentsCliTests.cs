namespace Encore.Cli.Tests;

/// <summary><c>encore train --optimizer-moments bf16</c>: bf16 moments in the checkpoint and a resumed run (argument errors: AttentionEntropyCliTests).</summary>
public sealed class OptimizerMomentsCliTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-moments-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void BFloat16MomentsAreWhatTheCheckpointHoldsAndARunResumesFromThem()
    {
        string run = Path.Combine(_dir, "run"), data = TestCheckpoints.TinyTrainingData(_dir);
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
}
