using Encore.Training.Data;
using V = Encore.Training.Lab.LabVocabulary;

namespace Encore.Training.Lab;

/// <summary>The algorithmic tasks of the length-generalization study (arXiv 2305.19466 trains on the same kinds).</summary>
public enum LengthTask
{
    /// <summary>Output the input symbols unchanged.</summary>
    Copy,
    /// <summary>Output the input symbols in reverse order.</summary>
    Reverse,
    /// <summary>Add two n-digit numbers, digits least significant first; the sum has n + 1 digits.</summary>
    Addition,
    /// <summary>Output the input symbols in ascending order (repeats kept).</summary>
    Sort,
    /// <summary>Translate a SCAN-like command ("walk left twice and jump") into actions ("LTURN WALK LTURN WALK JUMP").</summary>
    Scan,
}

/// <summary>One example: input ids and the output ids a model must produce (both without special ids).</summary>
public readonly record struct LabExample(int[] Input, int[] Output);

/// <summary>
/// Generators of the length study's tasks. The length n of an example is the number of symbols
/// (copy, reverse, sort), the digits of each operand (addition) or the clauses of the command (SCAN);
/// an example depends only on (task, n) and the random stream it is drawn from.
/// </summary>
public static class LengthTasks
{
    /// <summary>Every task, in the order tables list them.</summary>
    public static readonly LengthTask[] All = [LengthTask.Copy, LengthTask.Reverse, LengthTask.Addition, LengthTask.Sort, LengthTask.Scan];

    /// <summary>The task's name on the command line and in tables.</summary>
    public static string Name(this LengthTask task) => task.ToString().ToLowerInvariant();

    /// <summary>The task named <paramref name="name"/>; the error lists the names.</summary>
    public static LengthTask Parse(string name, string option = "--tasks") =>
        All.FirstOrDefault(t => string.Equals(t.Name(), name?.Trim(), StringComparison.OrdinalIgnoreCase), (LengthTask)(-1)) is var t && t >= 0 ? t
            : throw new ArgumentException($"{option}: unknown task '{name}'; tasks: {string.Join(", ", All.Select(x => x.Name()))}");

    /// <summary>
    /// The longest training length of <paramref name="task"/> for the study's length L: L itself, except
    /// SCAN, whose n counts clauses of up to 3 words and 9 actions each, trained on up to L/4 clauses (at least 2).
    /// </summary>
    public static int TrainLength(this LengthTask task, int l) => task == LengthTask.Scan ? Math.Max(2, l / 4) : l;

    /// <summary>An example of <paramref name="task"/> with length <paramref name="n"/> ≥ 1, drawn from <paramref name="rng"/>.</summary>
    public static LabExample Make(LengthTask task, int n, DataRng rng)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentNullException.ThrowIfNull(rng);
        switch (task)
        {
            case LengthTask.Copy:
            {
                var x = Symbols(n, rng);
                return new LabExample(x, [.. x]);
            }
            case LengthTask.Reverse:
            {
                var x = Symbols(n, rng);
                var y = (int[])x.Clone();
                Array.Reverse(y);
                return new LabExample(x, y);
            }
            case LengthTask.Sort:
            {
                var x = Symbols(n, rng);
                var y = (int[])x.Clone();
                Array.Sort(y);
                return new LabExample(x, y);
            }
            case LengthTask.Addition: return Addition(n, rng);
            case LengthTask.Scan: return Scan(n, rng);
            default: throw new ArgumentOutOfRangeException(nameof(task), task, null);
        }
    }

    static int[] Symbols(int n, DataRng rng)
    {
        var x = new int[n];
        for (int i = 0; i < n; i++) x[i] = V.Symbol0 + rng.NextInt(V.Symbols);
        return x;
    }

    // a₀…aₙ₋₁ + b₀…bₙ₋₁ → c₀…cₙ, least significant digit first (the order in which carries are computed,
    // the easier order for a left-to-right decoder), leading zeros allowed.
    static LabExample Addition(int n, DataRng rng)
    {
        var input = new int[2 * n + 1];
        var output = new int[n + 1];
        int carry = 0;
        input[n] = V.Plus;
        for (int i = 0; i < n; i++)
        {
            int a = rng.NextInt(10), b = rng.NextInt(10);
            input[i] = V.Digit0 + a;
            input[n + 1 + i] = V.Digit0 + b;
            int s = a + b + carry;
            output[i] = V.Digit0 + s % 10;
            carry = s / 10;
        }
        output[n] = V.Digit0 + carry;
        return new LabExample(input, output);
    }

    static readonly string[] Verbs = ["jump", "walk", "run", "look"];

    // SCAN's grammar (Lake and Baroni 2018) without "around", with any number of "and"-joined clauses and
    // at most one "after": clause = V [twice | thrice]; V = U | U left | U right | U opposite left |
    // U opposite right, where U is a verb or "turn" (which adds no action, and needs a direction).
    // "A after B" does B first; "A and B" does A first.
    static LabExample Scan(int n, DataRng rng)
    {
        var clauseWords = new List<int[]>(n);
        var clauseActions = new List<int[]>(n);
        for (int c = 0; c < n; c++)
        {
            var words = new List<int>();
            var actions = new List<int>();
            bool turn = rng.NextInt(5) == 0;
            int verb = rng.NextInt(4);
            words.Add(V.Word(turn ? "turn" : Verbs[verb]));
            // 0 none, 1 left, 2 right, 3 opposite left, 4 opposite right ("turn" needs a direction).
            int direction = turn ? 1 + rng.NextInt(4) : rng.NextInt(5);
            if (direction >= 3) words.Add(V.Word("opposite"));
            if (direction > 0) words.Add(V.Word(direction % 2 == 1 ? "left" : "right"));
            int turnAction = V.Action(direction % 2 == 1 ? "LTURN" : "RTURN");
            for (int k = 0; k < (direction >= 3 ? 2 : direction > 0 ? 1 : 0); k++) actions.Add(turnAction);
            if (!turn) actions.Add(V.Action(V.ScanActions[verb]));
            int repeat = rng.NextInt(3);
            if (repeat > 0) words.Add(V.Word(repeat == 1 ? "twice" : "thrice"));
            var once = actions.ToArray();
            for (int r = 0; r < repeat; r++) actions.AddRange(once);
            clauseWords.Add([.. words]);
            clauseActions.Add([.. actions]);
        }
        // One "after" before clause k (1 ≤ k < n) with probability ½ when there are two or more clauses.
        int after = n >= 2 && rng.NextInt(2) == 0 ? 1 + rng.NextInt(n - 1) : -1;
        var input = new List<int>();
        for (int c = 0; c < n; c++)
        {
            if (c > 0) input.Add(V.Word(c == after ? "after" : "and"));
            input.AddRange(clauseWords[c]);
        }
        var order = after < 0 ? clauseActions : [.. clauseActions.Skip(after), .. clauseActions.Take(after)];
        return new LabExample([.. input], [.. order.SelectMany(a => a)]);
    }
}
