using Encore.Training.Data;

namespace Encore.Training.Lab;

/// <summary>
/// The codebook study's finite-state machine, after the TokFSM data set of arXiv 2310.17230 (states written as
/// several tokens, so that a model must combine tokens to know the state): <see cref="States"/> = 20 states, state
/// s written as two tokens, a letter for s / 5 (a–d) and a digit for s % 5 (0–4). Each state has
/// <see cref="Successors"/> distinct successor states, drawn once from the seed, taken with probabilities
/// <see cref="SuccessorWeights"/> (best first). A sequence is a walk from a uniform start state, its states' tokens in a row.
/// </summary>
public sealed class FsmTask
{
    /// <summary>Number of states.</summary>
    public const int States = 20;
    /// <summary>Values of a state's second token (its digit): a state is (s / this, s % this).</summary>
    public const int LowValues = 5;
    /// <summary>Successors per state.</summary>
    public const int Successors = 3;
    /// <summary>The probability of each successor, in order.</summary>
    public static readonly double[] SuccessorWeights = [0.6, 0.3, 0.1];

    readonly int[] _next;   // (States, Successors)

    /// <summary>The machine drawn from <paramref name="seed"/>.</summary>
    public FsmTask(ulong seed)
    {
        Seed = seed;
        _next = new int[States * Successors];
        var rng = DataRng.For(seed, 0xF5A0);
        for (int s = 0; s < States; s++)
            for (int i = 0; i < Successors; i++)
            {
                int t;
                do t = rng.NextInt(States);
                while (_next.AsSpan(s * Successors, i).Contains(t));
                _next[s * Successors + i] = t;
            }
    }

    /// <summary>The seed the successors were drawn from.</summary>
    public ulong Seed { get; }

    /// <summary>Successor <paramref name="i"/> of state <paramref name="s"/> (taken with probability SuccessorWeights[i]).</summary>
    public int Next(int s, int i) => _next[s * Successors + i];

    /// <summary>The letter token of state s.</summary>
    public static int HighToken(int s) => LabVocabulary.Symbol0 + s / LowValues;

    /// <summary>The digit token of state s.</summary>
    public static int LowToken(int s) => LabVocabulary.Digit0 + s % LowValues;

    /// <summary>The printed form of state s ("b3").</summary>
    public static string Name(int s) => LabVocabulary.Name(HighToken(s)) + LabVocabulary.Name(LowToken(s));

    /// <summary>A walk of <paramref name="length"/> states from a uniform start.</summary>
    public int[] Walk(int length, DataRng rng)
    {
        var states = new int[length];
        states[0] = rng.NextInt(States);
        for (int i = 1; i < length; i++) states[i] = Step(states[i - 1], rng);
        return states;
    }

    /// <summary>One transition from <paramref name="s"/>.</summary>
    public int Step(int s, DataRng rng)
    {
        double u = rng.NextDouble(), sum = 0;
        for (int i = 0; i < Successors - 1; i++)
        {
            sum += SuccessorWeights[i];
            if (u < sum) return Next(s, i);
        }
        return Next(s, Successors - 1);
    }

    /// <summary>The tokens of a walk: letter, digit of each state.</summary>
    public static int[] Tokens(IReadOnlyList<int> states)
    {
        var tokens = new int[2 * states.Count];
        for (int i = 0; i < states.Count; i++)
        {
            tokens[2 * i] = HighToken(states[i]);
            tokens[2 * i + 1] = LowToken(states[i]);
        }
        return tokens;
    }

    /// <summary>Probability that state <paramref name="s"/> moves to <paramref name="t"/>.</summary>
    public double Probability(int s, int t)
    {
        double p = 0;
        for (int i = 0; i < Successors; i++) if (Next(s, i) == t) p += SuccessorWeights[i];
        return p;
    }

    /// <summary>Whether <paramref name="token"/> may come next after the letter and digit of <paramref name="s"/> (a successor's letter).</summary>
    public bool LegalLetter(int s, int token)
    {
        for (int i = 0; i < Successors; i++) if (HighToken(Next(s, i)) == token) return true;
        return false;
    }

    /// <summary>Whether <paramref name="token"/> may follow the letter <paramref name="letter"/> of the state after <paramref name="s"/>.</summary>
    public bool LegalDigit(int s, int letter, int token)
    {
        for (int i = 0; i < Successors; i++) if (HighToken(Next(s, i)) == letter && LowToken(Next(s, i)) == token) return true;
        return false;
    }

    /// <summary>
    /// The expected next-token accuracy of the best predictor that knows the machine and the current state, over the
    /// scored tokens of walks of <paramref name="length"/> states (every token after the first state): from state s
    /// the letter is right with probability max_h P(letter h | s) and the digit, given the letter, with Σ_h max_l P(h, l | s);
    /// the state distribution starts uniform and is propagated through the transitions.
    /// </summary>
    public double OracleAccuracy(int length)
    {
        var pi = Enumerable.Repeat(1.0 / States, States).ToArray();
        double total = 0;
        for (int step = 0; step < length - 1; step++)
        {
            var next = new double[States];
            for (int s = 0; s < States; s++)
            {
                var byLetter = new double[States / LowValues];
                var best = new double[States / LowValues];
                for (int t = 0; t < States; t++)
                {
                    double p = Probability(s, t);
                    next[t] += pi[s] * p;
                    byLetter[t / LowValues] += p;
                    best[t / LowValues] = Math.Max(best[t / LowValues], p);
                }
                total += pi[s] * (byLetter.Max() + best.Sum());
            }
            pi = next;
        }
        return total / (2.0 * (length - 1));
    }
}
