using System.Globalization;
using Encore.Autograd.Optim;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// Optimizer state beside the weights: <c>optimizer.safetensors</c> holds every state tensor by
/// "parameter.slot" name, and its metadata the step count and the optimizer type, so a resumed run
/// continues bit-identically.
/// </summary>
public static class OptimizerCheckpoint
{
    /// <summary>File name inside a checkpoint directory.</summary>
    public const string FileName = "optimizer.safetensors";

    /// <summary>Writes the state of <paramref name="optimizer"/> into <paramref name="dir"/>, atomically.</summary>
    public static void Save(Optimizer optimizer, string dir)
    {
        var (step, state) = optimizer.SaveState();
        var metadata = new Dictionary<string, string>
        {
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
            ["optimizer"] = optimizer.GetType().Name,
        };
        SafetensorsFile.Write(Path.Combine(dir, FileName), state.OrderBy(kv => kv.Key, StringComparer.Ordinal), metadata);
    }

    /// <summary>Restores the state saved in <paramref name="dir"/> into <paramref name="optimizer"/> (same type, same parameters).</summary>
    public static void Load(Optimizer optimizer, string dir)
    {
        var path = Path.Combine(dir, FileName);
        using var file = SafetensorsFile.Open(path);
        if (!file.Metadata.TryGetValue("optimizer", out var type) || type != optimizer.GetType().Name)
            throw new CheckpointFormatException($"{path}: holds {(type ?? "no optimizer type")} state, not {optimizer.GetType().Name}");
        if (!file.Metadata.TryGetValue("step", out var stepText) || !long.TryParse(stepText, NumberStyles.None, CultureInfo.InvariantCulture, out long step))
            throw new CheckpointFormatException($"{path}: metadata 'step' is missing or not a count");
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var name in file.Names) tensors[name] = file.Read(name);
            try
            {
                optimizer.LoadState(step, tensors);
            }
            catch (ArgumentException e)
            {
                throw new CheckpointFormatException($"{path}: {e.Message}", e);
            }
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
