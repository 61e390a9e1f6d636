using Encore.Training.Data;

namespace Encore.Training.Objectives;

/// <summary>
/// One example as a model sees it. Encoder–decoder rows have a <see cref="Source"/>; decoder-only
/// and encoder-only rows leave it empty. <see cref="Targets"/> has the length of
/// <see cref="Inputs"/>, with <see cref="Labels.Ignore"/> where no loss is taken.
/// </summary>
public readonly record struct TrainingRow(int[] Source, int[] Inputs, int[] Targets);

/// <summary>
/// A training objective: turns one tokenized example into a <see cref="TrainingRow"/>. Rows depend
/// only on the example and a random stream made from (seed, epoch, example index), so they do not
/// depend on batch composition; the row's lengths are known without drawing (<see cref="RowLengths"/>),
/// which is what the length-bucketing sampler sorts by.
/// </summary>
public interface ITrainingObjective
{
    /// <summary>Short name for logs ("seq2seq", "causal-lm", …).</summary>
    string Name { get; }

    /// <summary>True when rows carry an encoder source (encoder–decoder objectives).</summary>
    bool HasSource { get; }

    /// <summary>The id inputs are padded with.</summary>
    int PadId { get; }

    /// <summary>
    /// (source length, input length) of example <paramref name="index"/>'s row. Throws
    /// <see cref="ArgumentException"/> when the example does not suit the objective (plain text given
    /// to a pairs objective, too many spans for the sentinels, too short to split).
    /// </summary>
    (int Source, int Input) RowLengths(TokenizedDataset data, int index);

    /// <summary>Builds example <paramref name="index"/>'s row, drawing any randomness from <paramref name="rng"/>.</summary>
    TrainingRow MakeRow(TokenizedDataset data, int index, DataRng rng);
}

/// <summary>Checks shared by the objectives.</summary>
internal static class ObjectiveChecks
{
    public static void RequirePairs(TokenizedDataset data, string objective)
    {
        if (!data.HasTargets) throw new ArgumentException($"{objective} needs source/target pairs, but {data.Name} is plain text", nameof(data));
    }

    public static int[] Ignored(int n)
    {
        var t = new int[n];
        Array.Fill(t, Labels.Ignore);
        return t;
    }
}
