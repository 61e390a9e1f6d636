using Encore.Training.Data;

namespace Encore.Training.Objectives;

/// <summary>
/// Prefix language modelling on plain text, in the data format of T5's "prefix_lm" and UL2's
/// S-denoiser: each document is cut at a uniformly random point k (1 ≤ k &lt; n, so prefix and
/// continuation are both non-empty), and the loss is taken on the continuation only.
/// <para>
/// For a decoder-only model (<see cref="PrefixLmObjective(CausalLmOptions)"/>) Encore's decoder is
/// causal-only, so the prefix is attended causally rather than bidirectionally; the objective is the
/// data format (loss mask), not the attention pattern. The row is <see cref="CausalLmObjective"/>'s for
/// prompt = d[..k], target = d[k..], and k is drawn from the example's (seed, epoch, index) stream, so
/// each epoch cuts differently:
/// <code>
/// document d1 d2 d3 d4, k = 2:
/// inputs  = [BOS] d1 d2 d3 d4
/// targets = [−]   −  d3 d4 EOS
/// </code>
/// </para>
/// <para>
/// For an encoder–decoder (<see cref="PrefixLmObjective(Seq2SeqOptions, ulong)"/>: T5Gemma's adaptation
/// objective, arXiv 2504.06225) the encoder reads the prefix — bidirectionally — and the decoder writes the
/// continuation: the row is <see cref="Seq2SeqObjective"/>'s for x = d[..k], y = d[k..], the layout
/// generation gives a prompt. k changes the row's source and target lengths, which bucketing needs before
/// any row is drawn, so here it is fixed per example, drawn from (<see cref="Seed"/>, index) alone:
/// <code>
/// document d1 d2 d3 d4, k = 2:
/// source  = d1 d2 EOS
/// inputs  = START d3 d4
/// targets = d3 d4 EOS
/// </code>
/// </para>
/// </summary>
public sealed class PrefixLmObjective : ITrainingObjective
{
    /// <summary>Prefix LM for a decoder-only model: one causal sequence, loss on the continuation.</summary>
    public PrefixLmObjective(CausalLmOptions options)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
    }

    /// <summary>Prefix LM for an encoder–decoder: prefix to the encoder, continuation to the decoder, cut where <paramref name="seed"/> says.</summary>
    public PrefixLmObjective(Seq2SeqOptions options, ulong seed = 0)
    {
        Seq2Seq = options ?? throw new ArgumentNullException(nameof(options));
        Seed = seed;
    }

    /// <summary>The decoder-only ids; null for encoder–decoder rows.</summary>
    public CausalLmOptions? Options { get; }

    /// <summary>The encoder–decoder ids; null for decoder-only rows.</summary>
    public Seq2SeqOptions? Seq2Seq { get; }

    /// <summary>Seed of the encoder–decoder cut points (the decoder-only ones come from the row's stream).</summary>
    public ulong Seed { get; }

    /// <inheritdoc/>
    public string Name => "prefix-lm";
    /// <inheritdoc/>
    public bool HasSource => Seq2Seq != null;
    /// <inheritdoc/>
    public int PadId => Seq2Seq?.PadId ?? Options!.PadId;

    /// <inheritdoc/>
    public (int Source, int Input) RowLengths(TokenizedDataset data, int index)
    {
        if (data.HasTargets) throw new ArgumentException($"{Name} takes plain text, but {data.Name} holds pairs (use {(HasSource ? "seq2seq" : "causal-lm")} for prompt → target)", nameof(data));
        int n = data.Sources[index].Length;
        if (n < 2) throw new ArgumentException($"{Name}: document {index} of {data.Name} has {n} tokens; at least 2 are needed to split", nameof(data));
        if (Seq2Seq is { } o)
        {
            int k = CutPoint(n, Seed, index);
            return (k + (o.SourceEos ? 1 : 0), n - k + 1);
        }
        return (0, (Options!.BosId is null ? 0 : 1) + n);
    }

    /// <inheritdoc/>
    public TrainingRow MakeRow(TokenizedDataset data, int index, DataRng rng)
    {
        RowLengths(data, index);
        var d = data.Sources[index];
        if (Seq2Seq is { } o)
        {
            int cut = CutPoint(d.Length, Seed, index);
            return Seq2SeqObjective.Build(d[..cut], d[cut..], o);
        }
        int k = 1 + rng.NextInt(d.Length - 1);
        return CausalLmObjective.Build(d.AsSpan(0, k), d.AsSpan(k), Options!);
    }

    /// <summary>
    /// The fixed cut point k ∈ [1, n) of example <paramref name="index"/>, a document of <paramref name="length"/>
    /// tokens: uniform, from (<paramref name="seed"/>, index) alone, so the row's lengths are known before it is drawn.
    /// </summary>
    public static int CutPoint(int length, ulong seed, int index)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 2);
        return 1 + DataRng.For(seed, CutStream, (ulong)(uint)index).NextInt(length - 1);
    }

    const ulong CutStream = 0x9E_F1C5_0000UL;
}
