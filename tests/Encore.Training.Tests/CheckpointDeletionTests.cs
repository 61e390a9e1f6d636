using Encore.Formats.Checkpoints;
using Encore.Training.Trainer;

namespace Encore.Training.Tests;

/// <summary>
/// Removing a checkpoint folder (pruning, overwriting) goes through a temporary name, so that a kill part-way leaves
/// a leftover the next run clears, never a <c>checkpoint-N</c> folder missing its state file (which no listing counts,
/// so nothing would ever prune it).
/// </summary>
public sealed class CheckpointDeletionTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-ckpt-delete-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string MakeCheckpoint(int step)
    {
        var d = Path.Combine(_dir, $"checkpoint-{step}");
        Directory.CreateDirectory(Path.Combine(d, "sub"));
        File.WriteAllText(Path.Combine(d, "trainer_state.json"), "{}");
        File.WriteAllText(Path.Combine(d, "config.json"), "{}");
        File.WriteAllBytes(Path.Combine(d, "sub", "weights.bin"), new byte[4096]);
        return d;
    }

    [Fact]
    public void DeleteLeavesNeitherTheFolderNorItsTemporaryName()
    {
        var keep = MakeCheckpoint(2);
        CheckpointDirectory.Delete(MakeCheckpoint(1) + Path.DirectorySeparatorChar);
        Assert.Equal([keep], Directory.GetDirectories(_dir));
        Assert.Equal([keep], CheckpointDirectory.List(_dir, "trainer_state.json"));
    }

    [Fact]
    public void WhatAKillPartWayLeavesIsClearedByTheNextRun()
    {
        var keep = MakeCheckpoint(2);
        // A kill after the rename, part-way through the deletion: the folder is under its temporary name, half empty.
        var leftover = Path.Combine(_dir, $".checkpoint-1.{Environment.ProcessId}.deleting.tmp");
        Directory.Move(MakeCheckpoint(1), leftover);
        File.Delete(Path.Combine(leftover, "trainer_state.json"));
        Assert.Equal([keep], CheckpointDirectory.List(_dir, "trainer_state.json"));
        Trainer.Trainer.RemoveStaleTemporaries(_dir);
        Assert.Equal([keep], Directory.GetDirectories(_dir));
        // A leftover of this very process (a second deletion of the same step) is replaced, not an error.
        Directory.Move(MakeCheckpoint(1), leftover);
        CheckpointDirectory.Delete(MakeCheckpoint(1));
        Assert.Equal([keep], Directory.GetDirectories(_dir));
    }

    [Fact]
    public void PublishReplacesTheNamedFolderAndKeepsTheNewest()
    {
        MakeCheckpoint(1);
        MakeCheckpoint(2);
        var stale = MakeCheckpoint(3);
        File.WriteAllText(Path.Combine(stale, "old.txt"), "replaced");
        var built = Path.Combine(_dir, ".checkpoint-3.1.tmp");
        Directory.Move(MakeCheckpoint(9), built);                               // a complete folder under a temporary name
        CheckpointDirectory.Publish(built, Path.Combine(_dir, "checkpoint-3"), keep: 2, "trainer_state.json");
        Assert.Equal([Path.Combine(_dir, "checkpoint-2"), Path.Combine(_dir, "checkpoint-3")], CheckpointDirectory.List(_dir, "trainer_state.json"));
        Assert.False(File.Exists(Path.Combine(_dir, "checkpoint-3", "old.txt")));  // the new folder, not the old one
        Assert.Equal(2, Directory.GetDirectories(_dir).Length);                 // nothing else left: no temporaries
    }
}
