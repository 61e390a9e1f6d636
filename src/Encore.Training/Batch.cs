namespace Encore.Training;

/// <summary>The label value that contributes no loss (PyTorch's ignore_index).</summary>
public static class Labels
{
    /// <summary>Ignored label.</summary>
    public const int Ignore = -100;
}

/// <summary>
/// One training batch, row-major and right-padded. For an encoder–decoder: <see cref="Source"/>
/// (B·S) with <see cref="SourceLengths"/>, decoder inputs <see cref="Inputs"/> (B·T) and
/// <see cref="Targets"/> (B·T). For a decoder-only or encoder-only model the source is empty and
/// <see cref="Inputs"/>/<see cref="Targets"/> cover the whole sequence (with <see cref="InputLengths"/>).
/// Targets equal to <see cref="Labels.Ignore"/> (padding, prompts, unmasked tokens) carry no loss.
/// </summary>
public sealed record Batch
{
    /// <summary>B, sequences in the batch.</summary>
    public required int Size { get; init; }
    /// <summary>S, padded source length (0 without a source).</summary>
    public int SourceLength { get; init; }
    /// <summary>(B·S) source ids, padded with the pad id.</summary>
    public int[] Source { get; init; } = [];
    /// <summary>(B) valid source lengths.</summary>
    public int[] SourceLengths { get; init; } = [];
    /// <summary>T, padded input length.</summary>
    public required int InputLength { get; init; }
    /// <summary>(B·T) decoder (or model) input ids, padded with the pad id.</summary>
    public required int[] Inputs { get; init; }
    /// <summary>(B) valid input lengths.</summary>
    public required int[] InputLengths { get; init; }
    /// <summary>(B·T) target ids, <see cref="Labels.Ignore"/> where no loss is taken.</summary>
    public required int[] Targets { get; init; }
    /// <summary>Indices of the examples in their dataset (for evaluation and teacher alignment).</summary>
    public int[] ExampleIndices { get; init; } = [];

    /// <summary>Real (unpadded) tokens: valid source plus valid input positions.</summary>
    public long RealTokens => SourceLengths.Sum(x => (long)x) + InputLengths.Sum(x => (long)x);

    /// <summary>Padded tokens processed: B·(S + T).</summary>
    public long PaddedTokens => (long)Size * (SourceLength + InputLength);

    /// <summary>Targets that carry loss.</summary>
    public int LossTokens => Targets.Count(t => t != Labels.Ignore);
}
