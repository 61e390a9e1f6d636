using System.Diagnostics;
using Encore.Models;

namespace Encore.Generation;

/// <summary>
/// One timed greedy generation, the measurement every benchmark and the quickstart share: the clock
/// starts before the session is created (so the encoder pass or the prefill counts), the first-token
/// time is taken when every request has its first token, and the decode rate counts the tokens after
/// those over the time after it.
/// </summary>
/// <param name="FirstTokenSeconds">Seconds from the prompts to the first token of every request.</param>
/// <param name="DecodeSeconds">Seconds after that to the last token.</param>
/// <param name="DecodedTokens">Tokens generated after the first of each request, over the whole batch.</param>
/// <param name="Tokens">The tokens of request 0, in order.</param>
public readonly record struct GenerationTiming(double FirstTokenSeconds, double DecodeSeconds, int DecodedTokens, int[] Tokens)
{
    /// <summary>Generated tokens per second after the first, over the whole batch.</summary>
    public double DecodeTokensPerSecond => DecodedTokens / DecodeSeconds;

    /// <summary>With speculative decoding, its passes of the model and drafts accepted; else null.</summary>
    public SpeculativeStats? Speculative { get; init; }

    /// <summary>With <see cref="GenerationOptions.EarlyExit"/>, the encoder and decoder layers the generation ran; else null.</summary>
    public EarlyExitStats? EarlyExit { get; init; }

    /// <summary>
    /// Times the batch-1 generation of <paramref name="prompt"/> with <paramref name="options"/> (greedy,
    /// sampling or speculative; one sequence), as <see cref="Generator.GenerateIds"/> runs it: the clock
    /// starts before the session (and a draft model's) is created and the first-token time is taken
    /// when the first token is fixed. <see cref="DecodedTokens"/> counts the tokens after the first.
    /// </summary>
    public static GenerationTiming Measure(Generator generator, int[] prompt, GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(prompt);
        return generator.Time(prompt, options);
    }

    /// <summary>
    /// Generates exactly <paramref name="newTokens"/> tokens for each of <paramref name="prompts"/>
    /// (greedy, no early stop, as one batch from <paramref name="model"/>'s decoder start) and times it,
    /// with KV caches of <paramref name="kvCacheDType"/>.
    /// </summary>
    public static GenerationTiming Measure(LanguageModel model, int[][] prompts, int newTokens, KvCacheDType kvCacheDType = KvCacheDType.F32)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Length == 0) throw new ArgumentException("give at least one prompt", nameof(prompts));
        var tokens = new int[newTokens];
        int kept = 0;
        var sw = Stopwatch.StartNew();
        using var session = GenerationSession.Create(model, prompts, 1, newTokens, model.Config.DecoderStartTokenId, kvCacheDType);
        var ctx = new DecodingContext(session, prompts.Length, [], new StopCriteria([], [], newTokens, null), model.Config.PadTokenId);
        double first = 0;
        int events = 0;
        foreach (var e in new GreedyStrategy().Run(ctx, default))
        {
            if (e.Request == 0 && kept < tokens.Length) tokens[kept++] = e.Token;
            if (++events == prompts.Length) first = sw.Elapsed.TotalSeconds;
        }
        double total = sw.Elapsed.TotalSeconds;
        return new GenerationTiming(first, total - first, events - prompts.Length, tokens[..kept]);
    }
}
