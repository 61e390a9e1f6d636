using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Training.Data;

namespace Encore.Training.Objectives;

/// <summary>The three kinds of UL2 denoiser.</summary>
public enum Ul2Mode
{
    /// <summary>Regular span corruption (T5's).</summary>
    R,
    /// <summary>Sequential: prefix LM.</summary>
    S,
    /// <summary>Extreme span corruption: long spans or a high noise density.</summary>
    X,
}

/// <summary>One denoiser of the mixture: its kind, its span settings (R and X) and its share of the examples.</summary>
/// <param name="Mode">R, S or X.</param>
/// <param name="Weight">Relative share of the examples (the weights need not sum to 1).</param>
/// <param name="MeanSpanLength">Mean masked span (R, X).</param>
/// <param name="NoiseDensity">Fraction of tokens masked (R, X).</param>
public sealed record Ul2Denoiser(Ul2Mode Mode, double Weight, double MeanSpanLength = 3, double NoiseDensity = 0.15);

/// <summary>The ids of UL2's paradigm tokens, put first in the source: [NLU] for R, [S2S] for S, [NLG] for X.</summary>
public sealed record Ul2ModeTokens(int R, int S, int X)
{
    /// <summary>The token of <paramref name="mode"/>.</summary>
    public int Of(Ul2Mode mode) => mode switch { Ul2Mode.R => R, Ul2Mode.S => S, _ => X };
}

/// <summary>Settings of <see cref="Ul2Objective"/>.</summary>
public sealed record Ul2Options
{
    /// <summary>Padding id. Default 0.</summary>
    public int PadId { get; init; }
    /// <summary>End-of-sequence id. Default 1.</summary>
    public int EosId { get; init; } = 1;
    /// <summary>The decoder's first input. Default 0.</summary>
    public int DecoderStartId { get; init; }
    /// <summary>Sentinel ids of the span denoisers, in span order (see <see cref="SpanCorruptionOptions.Sentinels"/>). Required.</summary>
    public required IReadOnlyList<int> Sentinels { get; init; }
    /// <summary>
    /// The mixture. Default: R (mean span 3, 15% noise) a third; S a third; X a third, split evenly between
    /// mean span 32 at 15% noise and mean span 3 at 50% (two of UL2's X settings, arXiv 2205.05131 §3.1.2;
    /// the paper's full mixture has seven denoisers).
    /// </summary>
    public IReadOnlyList<Ul2Denoiser> Denoisers { get; init; } =
    [
        new(Ul2Mode.R, 1.0 / 3, 3, 0.15),
        new(Ul2Mode.S, 1.0 / 3),
        new(Ul2Mode.X, 1.0 / 6, 32, 0.15),
        new(Ul2Mode.X, 1.0 / 6, 3, 0.5),
    ];
    /// <summary>Paradigm tokens put first in the source, or null for none. Default null.</summary>
    public Ul2ModeTokens? ModeTokens { get; init; }
    /// <summary>Seed of each example's denoiser and S cut point (fixed per example; span positions change every epoch). Default 0.</summary>
    public ulong Seed { get; init; }

    /// <summary>
    /// The pad, EOS and decoder-start ids of <paramref name="tokenizer"/> and <paramref name="model"/>
    /// (as <see cref="Seq2SeqOptions.For"/>), its first <paramref name="sentinels"/> sentinels, and the
    /// paradigm tokens [NLU], [S2S], [NLG] when the vocabulary has all three.
    /// </summary>
    public static Ul2Options For(TextTokenizer tokenizer, ModelConfig model, ulong seed = 0, int sentinels = 100)
    {
        var span = SpanCorruptionOptions.For(tokenizer, model, sentinels);
        var modes = tokenizer.TokenToId("[NLU]") is int r && tokenizer.TokenToId("[S2S]") is int s && tokenizer.TokenToId("[NLG]") is int x
            ? new Ul2ModeTokens(r, s, x) : null;
        return new Ul2Options { PadId = span.PadId, EosId = span.EosId, DecoderStartId = span.DecoderStartId, Sentinels = span.Sentinels, ModeTokens = modes, Seed = seed };
    }
}

/// <summary>
/// UL2's mixture of denoisers (Tay et al., "UL2: Unifying Language Learning Paradigms", arXiv 2205.05131),
/// T5Gemma's second adaptation objective, for an encoder–decoder on plain text. Each example is given one
/// denoiser, drawn by weight:
/// <list type="bullet">
/// <item>R and X rows are <see cref="SpanCorruptionObjective"/>'s with the denoiser's mean span and noise
/// density: spans replaced by sentinels in the source, reconstructed after their sentinels in the target.</item>
/// <item>S rows are the encoder–decoder <see cref="PrefixLmObjective"/>'s: the prefix to the encoder, the
/// continuation to the decoder.</item>
/// <item>With <see cref="Ul2Options.ModeTokens"/>, the denoiser's paradigm token goes first in the source.</item>
/// </list>
/// A row's lengths must be known before it is drawn (bucketing sorts by them), so an example's denoiser and
/// its S cut point are fixed, drawn from (<see cref="Ul2Options.Seed"/>, index); which tokens a span
/// denoiser masks is drawn from the row's (seed, epoch, index) stream, new every epoch. Among several
/// denoisers of one kind, a document only gets those whose spans fit the sentinels (a long document's X
/// takes mean span 32 rather than 3 at 50% noise); when none of its kind fits, the document is refused, as
/// span corruption refuses it, asking for shorter documents.
/// </summary>
public sealed class Ul2Objective : ITrainingObjective
{
    readonly SpanCorruptionObjective?[] _spans;
    readonly double[] _kindWeight = new double[3];
    readonly Seq2SeqOptions _seq2seq;

    /// <summary>UL2 with <paramref name="options"/>.</summary>
    public Ul2Objective(Ul2Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Denoisers);
        if (options.Denoisers.Count == 0) throw new ArgumentException("UL2 needs at least one denoiser", nameof(options));
        if (options.Denoisers.Any(d => !(d.Weight >= 0) || !double.IsFinite(d.Weight)) || !(options.Denoisers.Sum(d => d.Weight) > 0))
            throw new ArgumentOutOfRangeException(nameof(options), "denoiser weights must be non-negative and finite, with a positive sum");
        Options = options;
        _seq2seq = new Seq2SeqOptions { PadId = options.PadId, EosId = options.EosId, DecoderStartId = options.DecoderStartId };
        // Span denoisers are span corruption with their own settings (which validates them).
        _spans = options.Denoisers.Select(d => d.Mode == Ul2Mode.S ? null : new SpanCorruptionObjective(new SpanCorruptionOptions
        {
            PadId = options.PadId, EosId = options.EosId, DecoderStartId = options.DecoderStartId, Sentinels = options.Sentinels,
            MeanSpanLength = d.MeanSpanLength, NoiseDensity = d.NoiseDensity,
        })).ToArray();
        foreach (var d in options.Denoisers) _kindWeight[(int)d.Mode] += d.Weight;
    }

    /// <summary>The options.</summary>
    public Ul2Options Options { get; }

    /// <inheritdoc/>
    public string Name => "ul2";
    /// <inheritdoc/>
    public bool HasSource => true;
    /// <inheritdoc/>
    public int PadId => Options.PadId;

    int Mode => Options.ModeTokens is null ? 0 : 1;

    /// <summary>
    /// The denoiser example <paramref name="index"/> of <paramref name="data"/> gets (an index into
    /// <see cref="Ul2Options.Denoisers"/>), and for S its cut point; throws when the document suits none of its kind.
    /// </summary>
    public (int Denoiser, int Cut) Choose(TokenizedDataset data, int index)
    {
        if (data.HasTargets) throw new ArgumentException($"{Name} takes plain text, but {data.Name} holds pairs", nameof(data));
        int n = data.Sources[index].Length;
        if (n < 2) throw new ArgumentException($"{Name}: document {index} of {data.Name} has {n} tokens; at least 2 are needed", nameof(data));
        var rng = DataRng.For(Options.Seed, ChoiceStream, (ulong)(uint)index);
        // The kind first, by its total weight, so the R/S/X shares hold whatever fits; then a denoiser of that kind that fits.
        double u = rng.NextDouble() * _kindWeight.Sum();
        var kind = (Ul2Mode)Array.FindLastIndex(_kindWeight, x => x > 0);
        for (int m = 0; m < 3; m++)
        {
            if (u < _kindWeight[m]) { kind = (Ul2Mode)m; break; }
            u -= _kindWeight[m];
        }
        var fits = Enumerable.Range(0, _spans.Length)
            .Where(i => Options.Denoisers[i].Mode == kind && Options.Denoisers[i].Weight > 0 && (kind == Ul2Mode.S || Fits(_spans[i]!, n))).ToArray();
        double v = rng.NextDouble();
        int cut = PrefixLmObjective.CutPoint(n, Options.Seed ^ ChoiceStream, index);
        if (fits.Length == 0)
        {
            int first = Enumerable.Range(0, _spans.Length).First(i => Options.Denoisers[i].Mode == kind && Options.Denoisers[i].Weight > 0);
            var (_, spans) = _spans[first]!.Counts(n);
            throw new ArgumentException($"{Name}: document {index} of {data.Name} ({n} tokens) needs {spans} sentinels for its {kind} denoiser " +
                $"(mean span {Options.Denoisers[first].MeanSpanLength}, noise {Options.Denoisers[first].NoiseDensity}) but {Options.Sentinels.Count} are given; truncate the documents", nameof(data));
        }
        double total = fits.Sum(i => Options.Denoisers[i].Weight);
        double w = v * total;
        foreach (int i in fits)
        {
            if (w < Options.Denoisers[i].Weight) return (i, cut);
            w -= Options.Denoisers[i].Weight;
        }
        return (fits[^1], cut);
    }

    static bool Fits(SpanCorruptionObjective span, int length)
    {
        var (noise, spans) = span.Counts(length);
        return spans <= span.Options.Sentinels.Count && Math.Max(length, 2) - noise >= spans;
    }

    /// <inheritdoc/>
    public (int Source, int Input) RowLengths(TokenizedDataset data, int index)
    {
        var (d, cut) = Choose(data, index);
        int n = data.Sources[index].Length;
        if (_spans[d] is { } span)
        {
            var (source, input) = span.RowLengths(data, index);
            return (source + Mode, input);
        }
        return (cut + 1 + Mode, n - cut + 1);
    }

    /// <inheritdoc/>
    public TrainingRow MakeRow(TokenizedDataset data, int index, DataRng rng)
    {
        var (d, cut) = Choose(data, index);
        var doc = data.Sources[index];
        var row = _spans[d] is { } span ? span.Apply(doc, span.NoiseMask(doc.Length, rng)) : Seq2SeqObjective.Build(doc[..cut], doc[cut..], _seq2seq);
        if (Options.ModeTokens is { } tokens) row = row with { Source = [tokens.Of(Options.Denoisers[d].Mode), .. row.Source] };
        return row;
    }

    const ulong ChoiceStream = 0x0C2_0000_0000UL;
}
