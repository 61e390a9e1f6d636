using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Training.Data;

namespace Encore.Training.Objectives;

/// <summary>Settings of T5 span corruption.</summary>
public sealed record SpanCorruptionOptions
{
    /// <summary>Padding id. Default 0 (T5).</summary>
    public int PadId { get; init; }
    /// <summary>End-of-sequence id, appended to inputs and targets. Default 1 (T5).</summary>
    public int EosId { get; init; } = 1;
    /// <summary>The decoder's first input. Default 0 (T5).</summary>
    public int DecoderStartId { get; init; }
    /// <summary>
    /// Sentinel ids in span order: span n is replaced by <c>Sentinels[n]</c> (take them from
    /// <c>TextTokenizer.SentinelId(n)</c>, i.e. &lt;extra_id_n&gt;). Required; a document with more
    /// spans than sentinels is rejected.
    /// </summary>
    public required IReadOnlyList<int> Sentinels { get; init; }
    /// <summary>Fraction of tokens masked. Default 0.15 (T5).</summary>
    public double NoiseDensity { get; init; } = 0.15;
    /// <summary>Mean length of a masked span. Default 3 (T5).</summary>
    public double MeanSpanLength { get; init; } = 3;

    /// <summary>The pad and EOS ids of <paramref name="tokenizer"/>, its first <paramref name="sentinels"/> sentinels (<c>SentinelId(n)</c>) and <paramref name="model"/>'s decoder-start id.</summary>
    public static SpanCorruptionOptions For(TextTokenizer tokenizer, ModelConfig model, int sentinels = 100)
    {
        var ids = Seq2SeqOptions.For(tokenizer, model);
        return new SpanCorruptionOptions
        {
            PadId = ids.PadId, EosId = ids.EosId, DecoderStartId = ids.DecoderStartId,
            Sentinels = Enumerable.Range(0, sentinels).Select(tokenizer.SentinelId).ToArray(),
        };
    }
}

/// <summary>
/// T5's span corruption (Raffel et al. 2020, §3.3; t5/data/preprocessors.py <c>span_corruption</c>,
/// <c>random_spans_noise_mask</c>, <c>noise_span_to_unique_sentinel</c>,
/// <c>nonnoise_span_to_unique_sentinel</c>). For a document of L tokens:
/// <list type="bullet">
/// <item>noise = round(L·density) clamped to [1, L−1]; spans = max(1, round(noise / mean span length)).</item>
/// <item>The noise tokens are cut into <c>spans</c> non-empty pieces and the other tokens likewise, each
/// cut uniformly at random (T5's <c>_random_segmentation</c>: a shuffled 0/1 vector of cut points); the
/// pieces interleave starting with a non-noise piece, so the document ends in noise.</item>
/// <item>inputs: each noise span replaced by its sentinel, then EOS; targets: each span's sentinel
/// followed by the span, then EOS. The decoder input is the target shifted right after the start id.</item>
/// </list>
/// <code>
/// document a b c d e f g h, noise = {c d}, {h}:
/// source  = a b S0 e f g S1 EOS
/// inputs  = START S0 c d S1 h
/// targets = S0 c d S1 h EOS
/// </code>
/// Every target position carries loss. Lengths depend only on L: source L − noise + spans + 1,
/// inputs noise + spans + 1.
/// </summary>
public sealed class SpanCorruptionObjective : ITrainingObjective
{
    /// <summary>Span corruption with <paramref name="options"/>.</summary>
    public SpanCorruptionObjective(SpanCorruptionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Sentinels);
        if (options.Sentinels.Count == 0) throw new ArgumentException("span corruption needs at least one sentinel id", nameof(options));
        if (!(options.NoiseDensity > 0 && options.NoiseDensity < 1)) throw new ArgumentOutOfRangeException(nameof(options), "NoiseDensity must be in (0, 1)");
        if (!(options.MeanSpanLength >= 1)) throw new ArgumentOutOfRangeException(nameof(options), "MeanSpanLength must be at least 1");
        Options = options;
    }

    /// <summary>The options.</summary>
    public SpanCorruptionOptions Options { get; }

    /// <inheritdoc/>
    public string Name => "span-corruption";
    /// <inheritdoc/>
    public bool HasSource => true;
    /// <inheritdoc/>
    public int PadId => Options.PadId;

    /// <summary>(noise tokens, spans) for a document of <paramref name="length"/> tokens, as T5 computes them.</summary>
    public (int NoiseTokens, int Spans) Counts(int length)
    {
        int l = Math.Max(length, 2);
        int noise = (int)Math.Round(l * Options.NoiseDensity, MidpointRounding.ToEven); // Python's round()
        noise = Math.Min(Math.Max(noise, 1), l - 1);
        int spans = Math.Max(1, (int)Math.Round(noise / Options.MeanSpanLength, MidpointRounding.ToEven));
        return (noise, spans);
    }

    /// <inheritdoc/>
    public (int Source, int Input) RowLengths(TokenizedDataset data, int index)
    {
        if (data.HasTargets) throw new ArgumentException($"{Name} takes plain text, but {data.Name} holds pairs", nameof(data));
        int length = data.Sources[index].Length;
        if (length < 2) throw new ArgumentException($"{Name}: document {index} of {data.Name} has {length} tokens; at least 2 are needed", nameof(data));
        var (noise, spans) = Counts(length);
        if (spans > Options.Sentinels.Count)
            throw new ArgumentException($"{Name}: document {index} of {data.Name} ({length} tokens) needs {spans} sentinels but {Options.Sentinels.Count} are given; truncate the documents", nameof(data));
        if (Math.Max(length, 2) - noise < spans)
            throw new ArgumentException($"{Name}: document {index} of {data.Name} ({length} tokens) has too few unmasked tokens for {spans} spans at this noise density", nameof(data));
        return (length - noise + spans + 1, noise + spans + 1);
    }

    /// <inheritdoc/>
    public TrainingRow MakeRow(TokenizedDataset data, int index, DataRng rng)
    {
        RowLengths(data, index);
        var doc = data.Sources[index];
        return Apply(doc, NoiseMask(doc.Length, rng));
    }

    /// <summary>
    /// The row for <paramref name="doc"/> with noise at <paramref name="mask"/>'s true positions
    /// (T5's <c>noise_span_to_unique_sentinel</c> on the inputs, <c>nonnoise_span_to_unique_sentinel</c> on the targets).
    /// </summary>
    public TrainingRow Apply(ReadOnlySpan<int> doc, ReadOnlySpan<bool> mask)
    {
        if (mask.Length != doc.Length) throw new ArgumentException($"mask has {mask.Length} positions for {doc.Length} tokens", nameof(mask));
        var source = new List<int>(doc.Length + 1);
        var targets = new List<int>();
        int span = -1;
        for (int i = 0; i < doc.Length; i++)
        {
            if (mask[i])
            {
                if (i == 0 || !mask[i - 1])
                {
                    span++;
                    if (span >= Options.Sentinels.Count) throw new ArgumentException($"the mask has more spans than the {Options.Sentinels.Count} sentinels", nameof(mask));
                    source.Add(Options.Sentinels[span]);
                    targets.Add(Options.Sentinels[span]);
                }
                targets.Add(doc[i]);
            }
            else
            {
                source.Add(doc[i]);
            }
        }
        source.Add(Options.EosId);
        targets.Add(Options.EosId);
        var inputs = new int[targets.Count];
        inputs[0] = Options.DecoderStartId;
        for (int i = 1; i < inputs.Length; i++) inputs[i] = targets[i - 1];
        return new TrainingRow([.. source], inputs, [.. targets]);
    }

    /// <summary>T5's <c>random_spans_noise_mask</c>: true at noise positions.</summary>
    public bool[] NoiseMask(int length, DataRng rng)
    {
        int l = Math.Max(length, 2);
        var (noise, spans) = Counts(length);
        var noiseLengths = RandomSegmentation(noise, spans, rng);
        var keepLengths = RandomSegmentation(l - noise, spans, rng);
        var mask = new bool[l];
        int pos = 0;
        for (int s = 0; s < spans; s++)
        {
            pos += keepLengths[s];
            for (int k = 0; k < noiseLengths[s]; k++) mask[pos++] = true;
        }
        return length == l ? mask : mask[..length];
    }

    /// <summary>
    /// T5's <c>_random_segmentation</c>: <paramref name="items"/> split into <paramref name="segments"/>
    /// non-empty runs, by shuffling items−1 gap flags of which segments−1 are set (a cut before item i+1).
    /// </summary>
    internal static int[] RandomSegmentation(int items, int segments, DataRng rng)
    {
        if (segments > items) throw new InvalidOperationException($"cannot split {items} tokens into {segments} non-empty spans");
        var cut = new bool[items - 1];
        for (int i = 0; i < segments - 1; i++) cut[i] = true;
        rng.Shuffle(cut);
        var lengths = new int[segments];
        int seg = 0;
        lengths[0] = 1;
        for (int i = 0; i < cut.Length; i++)
        {
            if (cut[i]) seg++;
            lengths[seg]++;
        }
        return lengths;
    }
}
