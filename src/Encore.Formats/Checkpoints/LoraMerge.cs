using Encore.Models;
using Encore.Tensors;

namespace Encore.Formats.Checkpoints;

/// <summary>What <see cref="LoraMerge.Merge"/> wrote.</summary>
/// <param name="Output">The merged checkpoint.</param>
/// <param name="ModelType">Its model_type (the base's).</param>
/// <param name="Layers">Layers whose weights took the adapter's delta.</param>
/// <param name="Rank">The adapter's rank.</param>
/// <param name="Copied">Files copied from the base beside the weights (tokenizer, generation config).</param>
public sealed record LoraMergeResult(string Output, string ModelType, int Layers, int Rank, IReadOnlyList<string> Copied);

/// <summary>
/// Writes base + adapter as one plain checkpoint (PEFT's <c>merge_and_unload</c>): every adapted weight becomes
/// W + (alpha/r)·B·A, in the base's model_type, with the base's tokenizer and generation files. The output
/// directory appears whole or not at all (written under a temporary name, read back, then renamed).
/// </summary>
public static class LoraMerge
{
    /// <summary>Merges the adapter in <paramref name="adapterDir"/> into the checkpoint in <paramref name="baseDir"/>, writing <paramref name="outDir"/> with weights in <paramref name="dtype"/>.</summary>
    public static LoraMergeResult Merge(string baseDir, string adapterDir, string outDir, DType dtype = DType.F32)
    {
        ArgumentNullException.ThrowIfNull(baseDir);
        ArgumentNullException.ThrowIfNull(adapterDir);
        ArgumentNullException.ThrowIfNull(outDir);
        var outFull = Path.TrimEndingDirectorySeparator(Path.GetFullPath(outDir));
        foreach (var (what, dir) in new[] { ("model", baseDir), ("adapter", adapterDir) })
            if (Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)) == outFull)
                throw new ArgumentException($"--out {outDir} is the {what} being read; write the merged checkpoint elsewhere");
        if (File.Exists(outDir) || (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any()))
            throw new ArgumentException($"--out {outDir} exists and is not empty");
        var (_, arch) = Checkpoint.ReadConfig(baseDir);
        // The adapter is checked against the base's configuration before the base's weights are read.
        PeftAdapter.ReadConfig(adapterDir);
        using var model = Checkpoint.Load(baseDir);   // writable f32 weights, which merging changes
        using var adapter = PeftAdapter.Load(adapterDir, model, arch.ModelType);
        adapter.MergeIntoBase();

        var parent = Path.GetDirectoryName(outFull) ?? ".";
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(outFull)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(temp);
            Checkpoint.Save(model, temp, arch.ModelType, dtype);
            var copied = new List<string>();
            foreach (var name in CheckpointAdaptation.TokenizerFiles.Append("generation_config.json"))
            {
                var from = Path.Combine(baseDir, name);
                if (!File.Exists(from)) continue;
                File.Copy(from, Path.Combine(temp, name));
                copied.Add(name);
            }
            // Read back what was written, as every later command will.
            using (var check = Checkpoint.Load(temp, new CheckpointLoadOptions { MapWeights = true }))
                if (check.Config != model.Config) throw new InvalidOperationException($"{outDir}: the configuration read back differs from the one written");
            if (Directory.Exists(outFull)) Directory.Delete(outFull);
            Directory.Move(temp, outFull);
            return new LoraMergeResult(outDir, arch.ModelType, adapter.Modules.Count, adapter.Options.Rank, copied);
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }
}
