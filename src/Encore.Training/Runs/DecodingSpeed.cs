using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;

namespace Encore.Training.Runs;

/// <summary>Settings of <see cref="DecodingSpeed.Measure"/>; each has one documented default.</summary>
public sealed record DecodingSpeedOptions
{
    /// <summary>Prompts timed, the first of the examples, after untimed warm-up runs on the first (<see cref="WarmupSeconds"/>). Default 10.</summary>
    public int Prompts { get; init; } = 10;
    /// <summary>
    /// Least time spent in untimed warm-up runs of the first prompt (at least two runs) before the timed ones. One run
    /// is not enough: .NET recompiles hot methods with full optimization in the background some 100 ms after they
    /// were first called, so the first model a process times would run partly unoptimized code, and comparisons of
    /// several models in one process favoured the later ones (up to 2× in first-token latency). Default 0.5 s.
    /// </summary>
    public double WarmupSeconds { get; init; } = 0.5;
    /// <summary>Tokens generated per prompt, all of them forced (end-of-sequence does not stop the run). Default 16.</summary>
    public int NewTokens { get; init; } = 16;
    /// <summary>Storage of the key/value caches timed and counted (f32 or int8). Default f32.</summary>
    public KvCacheDType KvCache { get; init; } = KvCacheDType.F32;

    /// <summary>Throws naming the first setting out of range.</summary>
    public DecodingSpeedOptions Validate()
    {
        if (Prompts < 1) throw new ArgumentException($"--speed-prompts must be positive, got {Prompts}");
        if (NewTokens < 2) throw new ArgumentException($"decoding speed needs at least 2 new tokens (the first is timed apart), got {NewTokens}");
        if (!(WarmupSeconds is >= 0 and <= 60)) throw new ArgumentException($"decoding speed warm-up must be in [0, 60] seconds, got {WarmupSeconds}");
        return this;
    }
}

/// <summary>
/// Batch-1 greedy decoding speed of one model on a few real prompts, the figures the quickstart and
/// <c>encore eval --speed</c> print: the median first-token latency (the encoder pass or the prefill
/// plus one decoder step, as <see cref="GenerationTiming"/> times it), the rate of the tokens after the
/// first (all prompts' decoded tokens over all their decode time), and the key/value cache one request
/// holds (the largest over the prompts).
/// </summary>
/// <param name="FirstTokenMs">Median over the prompts of the milliseconds to the first token.</param>
/// <param name="DecodeTokensPerSecond">Tokens after the first, per second.</param>
/// <param name="CacheBytesPerRequest">Bytes of the key/value caches (f32 or int8, as timed) of the largest request (see <see cref="CacheBytes"/>).</param>
public sealed record DecodingSpeed(double FirstTokenMs, double DecodeTokensPerSecond, long CacheBytesPerRequest)
{
    /// <summary>Prompts timed.</summary>
    public int Prompts { get; init; }

    /// <summary>Tokens generated per prompt.</summary>
    public int NewTokens { get; init; }

    /// <summary>
    /// Times batch-1 greedy generation of <see cref="DecodingSpeedOptions.NewTokens"/> tokens from each of
    /// the first <see cref="DecodingSpeedOptions.Prompts"/> sources of <paramref name="examples"/> (fewer
    /// when there are fewer), prompts built as in training (see <see cref="GenerationEval.PromptIds"/>).
    /// </summary>
    public static DecodingSpeed Measure(LanguageModel model, TextTokenizer tokenizer, IReadOnlyList<TextPair> examples, DecodingSpeedOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(examples);
        var o = (options ?? new DecodingSpeedOptions()).Validate();
        if (examples.Count == 0) throw new ArgumentException("decoding speed needs at least one prompt");
        int count = Math.Min(o.Prompts, examples.Count);
        var firsts = new List<double>(count);
        double decodeSeconds = 0;
        int decoded = 0;
        long cache = 0;
        // Warm-up (first-call and optimizing JIT, buffer pools) on the first prompt, untimed.
        var warm = System.Diagnostics.Stopwatch.StartNew();
        var first = GenerationEval.PromptIds(model, tokenizer, examples[0].Source);
        for (int runs = 0; runs < 2 || warm.Elapsed.TotalSeconds < o.WarmupSeconds; runs++)
            GenerationTiming.Measure(model, [first], o.NewTokens, o.KvCache);
        for (int i = 0; i < count; i++)
        {
            var ids = GenerationEval.PromptIds(model, tokenizer, examples[i].Source);
            var t = GenerationTiming.Measure(model, [ids], o.NewTokens, o.KvCache);
            firsts.Add(t.FirstTokenSeconds * 1000);
            decodeSeconds += t.DecodeSeconds;
            decoded += t.DecodedTokens;
            cache = Math.Max(cache, CacheBytes(model.Config, ids.Length, o.NewTokens, o.KvCache));
        }
        firsts.Sort();
        return new DecodingSpeed(firsts[firsts.Count / 2], decoded / decodeSeconds, cache) { Prompts = count, NewTokens = o.NewTokens };
    }

    /// <summary>
    /// Bytes of the f32 key/value caches that a batch-1 <see cref="GenerationSession"/> holds for a prompt of
    /// <paramref name="promptTokens"/> ids and <paramref name="newTokens"/> new tokens: per decoder layer,
    /// 2 (K and V) × Hkv × hd × 4 bytes for each position of
    /// <list type="bullet">
    /// <item>a decoder-only model: the prompt and the new tokens (one self-attention cache over both);</item>
    /// <item>an encoder–decoder: the decoder start token and the new tokens (self-attention), plus the
    /// <paramref name="promptTokens"/> source positions of the cross-attention keys and values, computed
    /// once from the encoder output and kept for every step.</item>
    /// </list>
    /// These are the capacities the sessions allocate (<c>CreateCache</c>), so the figure is the memory one
    /// request takes, not an estimate; an encoder-only model has no cache.
    /// </summary>
    public static long CacheBytes(ModelConfig config, int promptTokens, int newTokens, KvCacheDType kvCache = KvCacheDType.F32)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfNegative(promptTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(newTokens);
        long perPosition = checked(2L * config.KvHeads * kvCache.VectorBytes(config.HeadDim) * config.DecoderLayers);
        long positions = config.Family switch
        {
            ModelFamily.DecoderOnly => (long)promptTokens + newTokens,
            ModelFamily.EncoderDecoder => 1L + newTokens + promptTokens,
            _ => 0,
        };
        return checked(perPosition * positions);
    }
}
