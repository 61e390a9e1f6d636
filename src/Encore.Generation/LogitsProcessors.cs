// Logits processors: each rewrites one row of next-token scores (V) given the tokens so far. They
// follow Hugging Face's generation/logits_process.py classes of the same names; banning a token
// means setting its score to −∞, as HF does.
namespace Encore.Generation;

/// <summary>
/// Rewrites the next-token scores of one sequence in place. <c>tokens</c> are all the
/// tokens the decoder has seen (decoder-only: prompt then output; encoder–decoder: the start token
/// then output); the last <c>generated</c> of them are new.
/// </summary>
public interface ILogitsProcessor
{
    /// <summary>Processes one row of scores (V).</summary>
    void Process(ReadOnlySpan<int> tokens, int generated, Span<float> logits);
}

/// <summary>
/// CTRL's repetition penalty (Keskar et al. 2019, HF RepetitionPenaltyLogitsProcessor): every token
/// already present has its score divided by θ when positive and multiplied by θ when negative, so
/// θ &gt; 1 always makes it less likely.
/// </summary>
public sealed class RepetitionPenaltyProcessor(float penalty) : ILogitsProcessor
{
    /// <inheritdoc />
    public void Process(ReadOnlySpan<int> tokens, int generated, Span<float> logits)
    {
        var seen = new HashSet<int>();
        foreach (int t in tokens)
        {
            if ((uint)t >= (uint)logits.Length || !seen.Add(t)) continue;
            float x = logits[t];
            logits[t] = x < 0 ? x * penalty : x / penalty;
        }
    }
}

/// <summary>
/// Bans every token that would complete an n-gram already present (HF NoRepeatNGramLogitsProcessor,
/// from fairseq): the last n−1 tokens are looked up among all earlier (n−1)-gram prefixes.
/// </summary>
public sealed class NoRepeatNGramProcessor(int n) : ILogitsProcessor
{
    /// <inheritdoc />
    public void Process(ReadOnlySpan<int> tokens, int generated, Span<float> logits)
    {
        int len = tokens.Length;
        if (n <= 0 || len + 1 < n) return;
        var prefix = tokens.Slice(len - (n - 1), n - 1);
        for (int start = 0; start + n <= len; start++)
        {
            if (!tokens.Slice(start, n - 1).SequenceEqual(prefix)) continue;
            int banned = tokens[start + n - 1];
            if ((uint)banned < (uint)logits.Length) logits[banned] = float.NegativeInfinity;
        }
    }
}

/// <summary>Bans the EOS tokens until <c>min</c> tokens have been generated (HF MinNewTokensLengthLogitsProcessor).</summary>
public sealed class MinNewTokensProcessor(int min, IReadOnlyCollection<int> eosTokenIds) : ILogitsProcessor
{
    /// <inheritdoc />
    public void Process(ReadOnlySpan<int> tokens, int generated, Span<float> logits)
    {
        if (generated >= min) return;
        foreach (int e in eosTokenIds)
            if ((uint)e < (uint)logits.Length) logits[e] = float.NegativeInfinity;
    }
}

/// <summary>Bans fixed tokens everywhere (HF NoBadWordsLogitsProcessor restricted to single-token words).</summary>
public sealed class BannedTokensProcessor(IReadOnlyCollection<int> banned) : ILogitsProcessor
{
    /// <inheritdoc />
    public void Process(ReadOnlySpan<int> tokens, int generated, Span<float> logits)
    {
        foreach (int b in banned)
            if ((uint)b < (uint)logits.Length) logits[b] = float.NegativeInfinity;
    }
}

/// <summary>Adds a fixed bias to single tokens' scores (OpenAI logit_bias; HF SequenceBiasLogitsProcessor restricted to one-token sequences).</summary>
public sealed class LogitBiasProcessor(IReadOnlyDictionary<int, float> bias) : ILogitsProcessor
{
    readonly KeyValuePair<int, float>[] _bias = [.. bias];

    /// <inheritdoc />
    public void Process(ReadOnlySpan<int> tokens, int generated, Span<float> logits)
    {
        foreach (var (id, b) in _bias)
            if ((uint)id < (uint)logits.Length) logits[id] += b;
    }
}

/// <summary>
/// Forces one token at one step: every other score becomes −∞ and the forced one 0 (HF
/// ForcedBOSTokenLogitsProcessor at the first step, ForcedEOSTokenLogitsProcessor at the last).
/// </summary>
public sealed class ForcedTokenProcessor : ILogitsProcessor
{
    readonly int _token;
    readonly int _atGenerated;

    /// <summary>Forces <paramref name="token"/> when <paramref name="atGenerated"/> tokens have been generated.</summary>
    public ForcedTokenProcessor(int token, int atGenerated)
    {
        _token = token;
        _atGenerated = atGenerated;
    }

    /// <summary>The first generated token is <paramref name="token"/> (forced BOS).</summary>
    public static ForcedTokenProcessor First(int token) => new(token, 0);

    /// <summary>The token at max_new_tokens is <paramref name="token"/> (forced EOS).</summary>
    public static ForcedTokenProcessor Last(int token, int maxNewTokens) => new(token, maxNewTokens - 1);

    /// <inheritdoc />
    public void Process(ReadOnlySpan<int> tokens, int generated, Span<float> logits)
    {
        if (generated != _atGenerated || (uint)_token >= (uint)logits.Length) return;
        logits.Fill(float.NegativeInfinity);
        logits[_token] = 0;
    }
}

/// <summary>Divides scores by the temperature T (HF TemperatureLogitsWarper); T &lt; 1 sharpens, T &gt; 1 flattens.</summary>
public sealed class TemperatureWarper(float temperature) : ILogitsProcessor
{
    /// <inheritdoc />
    public void Process(ReadOnlySpan<int> tokens, int generated, Span<float> logits)
    {
        if (temperature == 1f) return;
        float inv = 1f / temperature;
        for (int i = 0; i < logits.Length; i++) logits[i] *= inv;
    }
}

/// <summary>
/// Keeps the k highest scores (Fan et al. 2018; HF TopKLogitsWarper): everything below the k-th
/// largest becomes −∞; ties with the k-th are kept, as HF's <c>scores &lt; topk[..., -1]</c> does.
/// </summary>
public sealed class TopKWarper(int k) : ILogitsProcessor
{
    /// <inheritdoc />
    public void Process(ReadOnlySpan<int> tokens, int generated, Span<float> logits)
    {
        if (k <= 0 || k >= logits.Length) return;
        var sorted = logits.ToArray();
        Array.Sort(sorted);
        float kth = sorted[^k];
        for (int i = 0; i < logits.Length; i++)
            if (logits[i] < kth) logits[i] = float.NegativeInfinity;
    }
}

/// <summary>
/// Nucleus filtering (Holtzman et al. 2019, "The Curious Case of Neural Text Degeneration"; HF
/// TopPLogitsWarper): sort by probability, keep the smallest prefix whose mass reaches p (always at
/// least the top token), ban the rest.
/// </summary>
public sealed class TopPWarper(float p) : ILogitsProcessor
{
    /// <inheritdoc />
    public void Process(ReadOnlySpan<int> tokens, int generated, Span<float> logits)
    {
        if (p >= 1f) return;
        var probs = Sampling.Softmax(logits);
        var order = Enumerable.Range(0, logits.Length).ToArray();
        // Stable descending order: equal probabilities keep id order.
        Array.Sort(order, (a, b) => probs[b] != probs[a] ? probs[b].CompareTo(probs[a]) : a.CompareTo(b));
        double mass = 0;
        int keep = 0;
        while (keep < order.Length)
        {
            mass += probs[order[keep]];
            keep++;
            if (mass >= p) break;
        }
        for (int i = keep; i < order.Length; i++) logits[order[i]] = float.NegativeInfinity;
    }
}

/// <summary>
/// Min-p filtering (Nguyen et al. 2024, arXiv 2407.01082; HF MinPLogitsWarper): tokens whose
/// probability is below min_p × the top probability are banned, so the cut adapts to confidence.
/// </summary>
public sealed class MinPWarper(float minP) : ILogitsProcessor
{
    /// <inheritdoc />
    public void Process(ReadOnlySpan<int> tokens, int generated, Span<float> logits)
    {
        if (minP <= 0) return;
        var probs = Sampling.Softmax(logits);
        double threshold = minP * probs.Max();
        for (int i = 0; i < logits.Length; i++)
            if (probs[i] < threshold) logits[i] = float.NegativeInfinity;
    }
}

/// <summary>Builds the processor lists of a request from its options, in HF's order.</summary>
public static class LogitsProcessors
{
    /// <summary>
    /// The processors that shape every strategy's scores (HF _get_logits_processor order): repetition
    /// penalty, no-repeat n-gram, banned tokens, logit bias, min new tokens, forced first token, forced last token.
    /// </summary>
    public static IReadOnlyList<ILogitsProcessor> FromOptions(GenerationOptions options, IReadOnlyCollection<int> eosTokenIds)
    {
        var list = new List<ILogitsProcessor>();
        if (options.RepetitionPenalty != 1f) list.Add(new RepetitionPenaltyProcessor(options.RepetitionPenalty));
        if (options.NoRepeatNgramSize > 0) list.Add(new NoRepeatNGramProcessor(options.NoRepeatNgramSize));
        if (options.BadWordsIds.Count > 0) list.Add(new BannedTokensProcessor(options.BadWordsIds.ToArray()));
        if (options.LogitBias.Count > 0) list.Add(new LogitBiasProcessor(options.LogitBias));
        if (options.MinNewTokens > 0 && eosTokenIds.Count > 0) list.Add(new MinNewTokensProcessor(options.MinNewTokens, eosTokenIds));
        if (options.ForcedBosTokenId is { } bos) list.Add(ForcedTokenProcessor.First(bos));
        if (options.ForcedEosTokenId is { } eos) list.Add(ForcedTokenProcessor.Last(eos, options.MaxNewTokens));
        return list;
    }

    /// <summary>The sampling warpers (HF order: temperature, top-k, top-p, min-p); empty when not sampling.</summary>
    public static IReadOnlyList<ILogitsProcessor> WarpersFromOptions(GenerationOptions options)
    {
        var list = new List<ILogitsProcessor>();
        if (!options.Samples) return list;
        if (options.Temperature != 1f) list.Add(new TemperatureWarper(options.Temperature));
        if (options.TopK > 0) list.Add(new TopKWarper(options.TopK));
        if (options.TopP < 1f) list.Add(new TopPWarper(options.TopP));
        if (options.MinP > 0) list.Add(new MinPWarper(options.MinP));
        return list;
    }
}
