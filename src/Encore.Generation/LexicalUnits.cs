// Lexical-unit decoding (Sun et al. 2024, "Lexical Unit Decoding", arXiv 2405.15208): a model fine-tuned
// to predict, at placeholder positions after the last real token, the tokens that follow the next one
// (see Encore.Training's LexicalUnitObjective) emits a whole lexical unit in one pass.
//
// One pass feeds the tokens fixed since the last pass, then K − 1 placeholders:
//
//     feed    = y_a … y_b  PH_1 … PH_{K−1}
//     row(y_b)   → y_{b+1}, chosen as plain decoding chooses it (the logits are the exact ones)
//     row(PH_i)  → a look-ahead guess of y_{b+1+i}, made without knowing y_{b+1} … y_{b+i}
//
// The placeholders are forgotten from the cache at once. After y_{b+1} is chosen, the leading look-ahead
// guesses are kept while each is the argmax of its (processed) row with probability ≥ β and is not the
// placeholder itself (which the objective teaches as "the unit ends here"); they are fed, unverified,
// with the next pass. β ≥ 1 keeps none: the output is plain decoding's.
using Encore.Models;

namespace Encore.Generation;

/// <summary>Lexical-unit decoding's settings (see <see cref="GenerationOptions.LexicalUnits"/>).</summary>
public sealed record LexicalUnitOptions
{
    /// <summary>The placeholder token the model was fine-tuned with (the training run's <c>--lud-placeholder</c>; usually the tokenizer's mask token).</summary>
    public required int PlaceholderId { get; init; }

    /// <summary>K: tokens a pass may fix at most, the exact one and K − 1 look-ahead guesses (the placeholders fed per pass). Default 4, the unit cap of the training objective.</summary>
    public int Span { get; init; } = 4;

    /// <summary>β: the probability a look-ahead guess needs to be kept; 1 or more keeps none. Default 0.9.</summary>
    public double Beta { get; init; } = 0.9;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting out of range.</summary>
    public LexicalUnitOptions Validate()
    {
        if (PlaceholderId < 0) throw new ArgumentException($"the lexical-unit placeholder id must be ≥ 0, got {PlaceholderId}");
        if (Span is < 2 or > 16) throw new ArgumentException($"the lexical-unit span must be in [2, 16], got {Span}");
        if (!double.IsFinite(Beta) || Beta is < 0 or > 1) throw new ArgumentException($"the lexical-unit threshold β must be in [0, 1], got {Beta}");
        return this;
    }
}

/// <summary>
/// The lexical-unit state of one sequence: its look-ahead guesses and the rounds that keep them (see the
/// file header). Between rounds the sequence is at the same point as in plain decoding, every kept token
/// fed and the logits after the last one at hand, so a round and a plain step can alternate; a plain step
/// in between makes the guesses stale, and they are dropped.
/// </summary>
internal sealed class LexicalUnitDecoder : MultiTokenDecoder
{
    readonly LexicalUnitOptions _o;
    readonly float[] _guesses;             // (K − 1, V) the placeholder rows of the last pass
    readonly int[] _feed;
    int _guessCount;                       // placeholder rows held
    int _guessesAt = -1;                   // state.Tokens.Length when they were made (valid one token later)
    SpeculativeStats _stats = new(0, 1, 0, 0);

    public LexicalUnitDecoder(LexicalUnitOptions options, int vocabSize, IReadOnlyList<ILogitsProcessor> processors,
        IReadOnlyList<ILogitsProcessor> warpers, Xoshiro256? rng, StopCriteria stop) : base(vocabSize, processors, warpers, rng, stop)
    {
        _o = options;
        _guesses = new float[(options.Span - 1) * vocabSize];
        _feed = new int[2 * options.Span];
    }

    public override SpeculativeStats Stats => _stats;

    public override void CountPass()
    {
        _stats = _stats with { TargetPasses = _stats.TargetPasses + 1 };
        _guessCount = 0;
    }

    public override int Choose(SequenceState state, ReadOnlySpan<float> logits)
    {
        int token = DecodeStep.Next(logits, Scores, state, Processors, Warpers, Rng);
        _stats = _stats with { Tokens = _stats.Tokens + 1 };
        return token;
    }

    public override void DraftAndVerify(SequenceState state, Span<float> next, ISpeculativeTarget target, List<int> fixedTokens)
    {
        int fed = 0;
        _feed[fed++] = state.Tokens[^1];
        // The guesses of the last pass stand for the tokens after the one just chosen.
        if (_guessCount > 0 && _guessesAt + 1 == state.Tokens.Length)
        {
            for (int i = 0; i < _guessCount; i++)
            {
                if (!Keeps(state, _guesses.AsSpan(i * Vocab, Vocab), out int guess)) break;
                state.LogProb += _guesses[i * Vocab + guess] - Sampling.StepLogSumExp(_guesses.AsSpan(i * Vocab, Vocab));
                state.Append(guess);
                fixedTokens.Add(guess);
                _feed[fed++] = guess;
                _stats = _stats with { Tokens = _stats.Tokens + 1, Accepted = _stats.Accepted + 1 };
                if (Stop.Update(state))
                {
                    _guessCount = 0;
                    return;
                }
            }
        }
        // Placeholders never reach past max_new_tokens: the pass then fits the cache, one position per token.
        int placeholders = Math.Min(_o.Span - 1, Stop.MaxNewTokens - state.GeneratedCount);
        for (int i = 0; i < placeholders; i++) _feed[fed + i] = _o.PlaceholderId;
        var rows = target.Feed(_feed.AsSpan(0, fed + placeholders));                   // (fed + placeholders, V)
        if (placeholders > 0) target.Forget(placeholders);
        _stats = _stats with { TargetPasses = _stats.TargetPasses + 1, Drafted = _stats.Drafted + placeholders };
        rows.Slice((fed - 1) * Vocab, Vocab).CopyTo(next);
        rows.Slice(fed * Vocab, placeholders * Vocab).CopyTo(_guesses);
        _guessCount = placeholders;
        _guessesAt = state.Tokens.Length;
    }

    // Whether the guess row keeps its argmax (processed as plain decoding would at this point): p ≥ β < 1, not the placeholder.
    bool Keeps(SequenceState state, ReadOnlySpan<float> logits, out int guess)
    {
        logits.CopyTo(Scores);
        for (int i = 0; i < Processors.Count; i++) Processors[i].Process(state.Tokens, state.GeneratedCount, Scores);
        guess = Sampling.ArgMax(Scores);
        if (_o.Beta >= 1 || guess == _o.PlaceholderId) return false;
        Sampling.Softmax(Scores, P);
        return P[guess] >= _o.Beta;
    }

    public override void Dispose() { }
}
