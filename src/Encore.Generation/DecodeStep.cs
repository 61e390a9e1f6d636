namespace Encore.Generation;

/// <summary>
/// One decoding step of one row, the same for every strategy that extends rows independently and for
/// the continuous-batching <see cref="BatchDecoder"/>: the row's logits are copied into scores, the
/// processors reshape them, the token is the greedy choice or, with a generator, a draw from the
/// warped scores; the sequence gains the token and its log-probability under the raw logits.
/// </summary>
public static class DecodeStep
{
    /// <summary>
    /// Chooses and appends the next token of <paramref name="state"/> from <paramref name="logits"/> (V),
    /// using <paramref name="scores"/> (V) as scratch. <paramref name="rng"/> null: greedy (ties to the
    /// smaller id, as torch.argmax), and <paramref name="warpers"/> are not used.
    /// </summary>
    public static int Next(ReadOnlySpan<float> logits, Span<float> scores, SequenceState state,
        IReadOnlyList<ILogitsProcessor> processors, IReadOnlyList<ILogitsProcessor> warpers, Xoshiro256? rng)
    {
        logits.CopyTo(scores);
        // Indexed loops: a foreach over an IReadOnlyList boxes an enumerator on every step.
        for (int i = 0; i < processors.Count; i++) processors[i].Process(state.Tokens, state.GeneratedCount, scores);
        int token;
        if (rng is null) token = Sampling.ArgMax(scores);
        else
        {
            for (int i = 0; i < warpers.Count; i++) warpers[i].Process([], 0, scores);
            token = Sampling.Draw(scores, rng);
        }
        state.LogProb += logits[token] - Sampling.StepLogSumExp(logits);
        state.Append(token);
        return token;
    }
}
