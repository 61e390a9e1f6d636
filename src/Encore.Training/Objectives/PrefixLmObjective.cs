using Encore.Training.Data;

namespace Encore.Training.Objectives;

/// <summary>
/// Prefix language modelling on plain text, in the data format of T5's "prefix_lm" and UL2's
/// S-denoiser: each document is cut at a uniformly random point k (1 ≤ k &lt; n, so prefix and
/// continuation are both non-empty), and the loss is taken on the continuation only. Encore's
/// decoder is causal-only, so the prefix is attended causally rather than bidirectionally; the
/// objective is the data format (loss mask), not the attention pattern. The row is
/// <see cref="CausalLmObjective"/>'s for prompt = d[..k], target = d[k..]:
/// <code>
/// document d1 d2 d3 d4, k = 2:
/// inputs  = [BOS] d1 d2 d3 d4
/// targets = [−]   −  d3 d4 EOS
/// </code>
/// k is drawn from the example's (seed, epoch, index) stream, so each epoch cuts differently.
/// </summary>
public sealed class PrefixLmObjective(CausalLmOptions options) : ITrainingObjective
{
    /// <summary>The options.</summary>
    public CausalLmOptions Options { get; } = options ?? throw new ArgumentNullException(nameof(options));

    /// <inheritdoc/>
    public string Name => "prefix-lm";
    /// <inheritdoc/>
    public bool HasSource => false;
    /// <inheritdoc/>
    public int PadId => Options.PadId;

    /// <inheritdoc/>
    public (int Source, int Input) RowLengths(TokenizedDataset data, int index)
    {
        if (data.HasTargets) throw new ArgumentException($"{Name} takes plain text, but {data.Name} holds pairs (use causal-lm for prompt → target)", nameof(data));
        int n = data.Sources[index].Length;
        if (n < 2) throw new ArgumentException($"{Name}: document {index} of {data.Name} has {n} tokens; at least 2 are needed to split", nameof(data));
        return (0, (Options.BosId is null ? 0 : 1) + n);
    }

    /// <inheritdoc/>
    public TrainingRow MakeRow(TokenizedDataset data, int index, DataRng rng)
    {
        RowLengths(data, index);
        var d = data.Sources[index];
        int k = 1 + rng.NextInt(d.Length - 1);
        return CausalLmObjective.Build(d.AsSpan(0, k), d.AsSpan(k), Options);
    }
}
