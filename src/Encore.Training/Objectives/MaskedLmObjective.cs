using Encore.Training.Data;

namespace Encore.Training.Objectives;

/// <summary>Settings of BERT's masked language modelling.</summary>
public sealed record MaskedLmOptions
{
    /// <summary>Padding id. Default 0.</summary>
    public int PadId { get; init; }
    /// <summary>The [MASK] id. Required.</summary>
    public required int MaskId { get; init; }
    /// <summary>Vocabulary size V; random replacements are drawn from [0, V). Required.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Ids put before the text ([CLS]); never selected. Default none.</summary>
    public IReadOnlyList<int> Prefix { get; init; } = [];
    /// <summary>Ids put after the text ([SEP]); never selected. Default none.</summary>
    public IReadOnlyList<int> Suffix { get; init; } = [];
    /// <summary>Ids never drawn as random replacements (pad, mask, CLS, SEP …). Default none.</summary>
    public IReadOnlyCollection<int> NoRandom { get; init; } = [];
    /// <summary>Probability that a text token is selected for prediction. Default 0.15 (BERT).</summary>
    public double SelectProbability { get; init; } = 0.15;
    /// <summary>Share of selected tokens replaced by [MASK]. Default 0.8 (BERT).</summary>
    public double MaskShare { get; init; } = 0.8;
    /// <summary>Share of selected tokens replaced by a random id (the rest stay unchanged). Default 0.1 (BERT).</summary>
    public double RandomShare { get; init; } = 0.1;
}

/// <summary>
/// Masked language modelling for an encoder-only model (Devlin et al. 2019, §3.1; the per-token
/// Bernoulli selection of Hugging Face's <c>DataCollatorForLanguageModeling</c>). Each text token is
/// selected with probability 0.15; a selected token becomes [MASK] with probability 0.8, a random id
/// with 0.1 and stays itself with 0.1. Targets hold the original id at selected positions and
/// <see cref="Labels.Ignore"/> everywhere else, so only selected positions carry loss (the prefix and
/// suffix ids are never selected).
/// <code>
/// text     = [CLS] a b c d [SEP],  b and d selected, b masked, d kept:
/// inputs   = [CLS] a [MASK] c d [SEP]
/// targets  = −     − b      − d −
/// </code>
/// Plain text only; pairs are rejected.
/// </summary>
public sealed class MaskedLmObjective : ITrainingObjective
{
    readonly HashSet<int> _noRandom;

    /// <summary>MLM with <paramref name="options"/>.</summary>
    public MaskedLmObjective(MaskedLmOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.VocabSize < 1) throw new ArgumentOutOfRangeException(nameof(options), "VocabSize must be positive");
        if ((uint)options.MaskId >= (uint)options.VocabSize) throw new ArgumentOutOfRangeException(nameof(options), $"MaskId {options.MaskId} is outside the vocabulary");
        if (!(options.SelectProbability is > 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(options), "SelectProbability must be in (0, 1]");
        if (options.MaskShare < 0 || options.RandomShare < 0 || options.MaskShare + options.RandomShare > 1)
            throw new ArgumentOutOfRangeException(nameof(options), "MaskShare and RandomShare must be non-negative with a sum of at most 1");
        Options = options;
        _noRandom = [.. options.NoRandom];
        if (_noRandom.Count(x => (uint)x < (uint)options.VocabSize) >= options.VocabSize)
            throw new ArgumentException("NoRandom excludes the whole vocabulary", nameof(options));
    }

    /// <summary>The options.</summary>
    public MaskedLmOptions Options { get; }

    /// <inheritdoc/>
    public string Name => "mlm";
    /// <inheritdoc/>
    public bool HasSource => false;
    /// <inheritdoc/>
    public int PadId => Options.PadId;

    /// <inheritdoc/>
    public (int Source, int Input) RowLengths(TokenizedDataset data, int index)
    {
        if (data.HasTargets) throw new ArgumentException($"{Name} takes plain text, but {data.Name} holds pairs", nameof(data));
        return (0, Options.Prefix.Count + data.Sources[index].Length + Options.Suffix.Count);
    }

    /// <inheritdoc/>
    public TrainingRow MakeRow(TokenizedDataset data, int index, DataRng rng)
    {
        RowLengths(data, index);
        var text = data.Sources[index];
        int p = Options.Prefix.Count;
        int n = p + text.Length + Options.Suffix.Count;
        var inputs = new int[n];
        for (int i = 0; i < p; i++) inputs[i] = Options.Prefix[i];
        text.CopyTo(inputs, p);
        for (int i = 0; i < Options.Suffix.Count; i++) inputs[p + text.Length + i] = Options.Suffix[i];
        var targets = ObjectiveChecks.Ignored(n);
        for (int i = p; i < p + text.Length; i++)
        {
            if (rng.NextDouble() >= Options.SelectProbability) continue;
            targets[i] = inputs[i];
            double u = rng.NextDouble();
            if (u < Options.MaskShare) inputs[i] = Options.MaskId;
            else if (u < Options.MaskShare + Options.RandomShare) inputs[i] = RandomId(rng);
        }
        return new TrainingRow([], inputs, targets);
    }

    int RandomId(DataRng rng)
    {
        while (true)
        {
            int id = rng.NextInt(Options.VocabSize);
            if (!_noRandom.Contains(id)) return id;
        }
    }
}
