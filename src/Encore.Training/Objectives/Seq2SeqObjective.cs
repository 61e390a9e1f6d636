using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Training.Data;

namespace Encore.Training.Objectives;

/// <summary>Ids a sequence-to-sequence objective adds.</summary>
public sealed record Seq2SeqOptions
{
    /// <summary>Padding id. Default 0 (T5).</summary>
    public int PadId { get; init; }
    /// <summary>End-of-sequence id. Default 1 (T5).</summary>
    public int EosId { get; init; } = 1;
    /// <summary>The decoder's first input. Default 0 (T5 starts from pad).</summary>
    public int DecoderStartId { get; init; }
    /// <summary>Append EOS to the source, as T5's tokenizer does. Default true.</summary>
    public bool SourceEos { get; init; } = true;

    /// <summary>
    /// The pad and EOS ids of <paramref name="tokenizer"/> (which must have both) and the decoder-start
    /// id of <paramref name="model"/>: the model's config is what generation starts from, so training
    /// must start from it too.
    /// </summary>
    public static Seq2SeqOptions For(TextTokenizer tokenizer, ModelConfig model)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(model);
        int pad = tokenizer.PadId ?? throw new ArgumentException("the tokenizer has no pad id", nameof(tokenizer));
        int eos = tokenizer.EosId ?? throw new ArgumentException("the tokenizer has no EOS id", nameof(tokenizer));
        return new Seq2SeqOptions { PadId = pad, EosId = eos, DecoderStartId = model.DecoderStartTokenId };
    }
}

/// <summary>
/// Sequence-to-sequence cross-entropy for an encoder–decoder (teacher forcing, as T5 and BART).
/// For source x and target y (text ids):
/// <code>
/// source  = x EOS                     (EOS only with SourceEos)
/// inputs  = START y1 … yn
/// targets = y1 … yn EOS               (targets[i] is the token after inputs[i])
/// </code>
/// Every target position carries loss; padding added by batching carries none.
/// </summary>
public sealed class Seq2SeqObjective(Seq2SeqOptions options) : ITrainingObjective
{
    /// <summary>The options.</summary>
    public Seq2SeqOptions Options { get; } = options ?? throw new ArgumentNullException(nameof(options));

    /// <inheritdoc/>
    public string Name => "seq2seq";
    /// <inheritdoc/>
    public bool HasSource => true;
    /// <inheritdoc/>
    public int PadId => Options.PadId;

    /// <inheritdoc/>
    public (int Source, int Input) RowLengths(TokenizedDataset data, int index)
    {
        ObjectiveChecks.RequirePairs(data, Name);
        return (data.Sources[index].Length + (Options.SourceEos ? 1 : 0), data.Targets![index].Length + 1);
    }

    /// <inheritdoc/>
    public TrainingRow MakeRow(TokenizedDataset data, int index, DataRng rng)
    {
        ObjectiveChecks.RequirePairs(data, Name);
        return Build(data.Sources[index], data.Targets![index], Options);
    }

    internal static TrainingRow Build(int[] x, int[] y, Seq2SeqOptions o)
    {
        int[] source = o.SourceEos ? [.. x, o.EosId] : [.. x];
        int[] inputs = [o.DecoderStartId, .. y];
        int[] targets = [.. y, o.EosId];
        return new TrainingRow(source, inputs, targets);
    }
}
