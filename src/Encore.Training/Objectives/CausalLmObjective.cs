using Encore.Formats.Tokenization;
using Encore.Training.Data;

namespace Encore.Training.Objectives;

/// <summary>Ids a decoder-only objective adds.</summary>
public sealed record CausalLmOptions
{
    /// <summary>Padding id. Default 0.</summary>
    public int PadId { get; init; }
    /// <summary>End-of-sequence id, appended to every sequence. Default 1.</summary>
    public int EosId { get; init; } = 1;
    /// <summary>Beginning-of-sequence id put first (Llama), or null for none. Default null.</summary>
    public int? BosId { get; init; }

    /// <summary>
    /// The ids of <paramref name="tokenizer"/>: EOS (required), pad (EOS when it has none, as GPT-2
    /// models are padded), and BOS whenever it has one, because generation puts BOS before every
    /// prompt (<c>Generator.EncodePrompt</c>) and training must see the sequences generation will.
    /// </summary>
    public static CausalLmOptions For(TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        int eos = tokenizer.EosId ?? throw new ArgumentException("the tokenizer has no EOS id", nameof(tokenizer));
        return new CausalLmOptions { PadId = tokenizer.PadId ?? eos, EosId = eos, BosId = tokenizer.BosId };
    }
}

/// <summary>
/// Causal language modelling for a decoder-only model. A pair (prompt x, target y) becomes one
/// sequence <c>[BOS] x y EOS</c>; inputs are the sequence without its last id and targets the
/// sequence shifted left by one, with the loss masked on the prompt: only positions whose next token
/// is a target token or the final EOS carry loss.
/// <code>
/// sequence = BOS x1 x2 y1 y2 EOS
/// inputs   = BOS x1 x2 y1 y2
/// targets  = −   −   y1 y2 EOS        (− = Labels.Ignore)
/// </code>
/// Plain text (no targets) is a prompt-free sequence: every next token carries loss.
/// </summary>
public sealed class CausalLmObjective(CausalLmOptions options) : ITrainingObjective
{
    /// <summary>The options.</summary>
    public CausalLmOptions Options { get; } = options ?? throw new ArgumentNullException(nameof(options));

    /// <inheritdoc/>
    public string Name => "causal-lm";
    /// <inheritdoc/>
    public bool HasSource => false;
    /// <inheritdoc/>
    public int PadId => Options.PadId;

    /// <inheritdoc/>
    public (int Source, int Input) RowLengths(TokenizedDataset data, int index)
    {
        int n = Bos + data.Sources[index].Length + (data.Targets?[index].Length ?? 0) + 1;
        return (0, n - 1);
    }

    /// <inheritdoc/>
    public TrainingRow MakeRow(TokenizedDataset data, int index, DataRng rng) =>
        data.HasTargets ? Build(data.Sources[index], data.Targets![index], Options) : Build([], data.Sources[index], Options);

    int Bos => Options.BosId is null ? 0 : 1;

    /// <summary>The row for prompt <paramref name="prompt"/> and continuation <paramref name="target"/>: loss on the continuation and EOS only.</summary>
    internal static TrainingRow Build(ReadOnlySpan<int> prompt, ReadOnlySpan<int> target, CausalLmOptions o)
    {
        int bos = o.BosId is null ? 0 : 1;
        int n = bos + prompt.Length + target.Length + 1;
        var seq = new int[n];
        if (o.BosId is int b) seq[0] = b;
        prompt.CopyTo(seq.AsSpan(bos));
        target.CopyTo(seq.AsSpan(bos + prompt.Length));
        seq[^1] = o.EosId;
        var inputs = seq[..^1];
        var targets = new int[n - 1];
        int firstLoss = bos + prompt.Length; // sequence index of the first token that carries loss
        for (int i = 0; i < n - 1; i++) targets[i] = i + 1 >= firstLoss ? seq[i + 1] : Labels.Ignore;
        return new TrainingRow([], inputs, targets);
    }
}
