namespace Encore.Training.Data;

/// <summary>Settings of the long-input task. Each has one default.</summary>
public sealed record LongInputOptions
{
    /// <summary>Fewest facts in a context. Default 20.</summary>
    public int MinFacts { get; init; } = 20;
    /// <summary>Most facts in a context (at most names × object kinds). Default 60.</summary>
    public int MaxFacts { get; init; } = 60;
    /// <summary>
    /// Object kinds used, from the start of <see cref="LongInputTask.Objects"/>. Default 12 (all):
    /// a question names an (object, person) pair. With 1, every fact is about the same object and a
    /// question is a lookup by name alone — an easier task that small models learn in minutes.
    /// </summary>
    public int ObjectKinds { get; init; } = 12;
}

/// <summary>
/// An asymmetric long-input task: a context of 20–60 short facts ("The key of Alice is red."), each
/// about a distinct (name, object), then a question about one of them; the answer is one colour
/// word. The other facts are distractors sharing the name or the object with the asked one. Long
/// input, short output is where an encoder–decoder reads the context once and decodes a few steps
/// (Return of the Encoder, arXiv 2501.16273). tools/data/make_long_input.py is the same generator
/// drawing from the same <see cref="DataRng"/> sequence, so <c>Generate(700, 1)</c> reproduces
/// data/long_input/train.jsonl and <c>Generate(100, 2)</c> validation.jsonl.
/// </summary>
public static class LongInputTask
{
    /// <summary>People the facts are about.</summary>
    public static readonly IReadOnlyList<string> Names =
    [
        "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj",
        "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Uma", "Victor", "Walter", "Xena", "Yusuf", "Zoe", "Amir",
        "Bella", "Chen", "Dmitri", "Elena", "Farah", "Goran", "Hana", "Igor", "Jonas", "Kira", "Lars", "Mina",
        "Nora", "Oscar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Ugo", "Vera", "Wen", "Yara", "Zane",
    ];

    /// <summary>Objects the facts are about.</summary>
    public static readonly IReadOnlyList<string> Objects = ["key", "car", "hat", "book", "cup", "ball", "door", "lamp", "coat", "bike", "kite", "scarf"];

    /// <summary>The answers.</summary>
    public static readonly IReadOnlyList<string> Colors = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "pink", "brown", "gray", "gold"];

    /// <summary>
    /// <paramref name="count"/> examples from <paramref name="seed"/>: source
    /// "context: The … of … is …. … question: What color is the OBJ of NAME?", target the colour.
    /// </summary>
    public static List<TextPair> Generate(int count, ulong seed, LongInputOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        options ??= new LongInputOptions();
        int kinds = options.ObjectKinds;
        if (kinds < 1 || kinds > Objects.Count) throw new ArgumentOutOfRangeException(nameof(options), $"ObjectKinds must be in [1, {Objects.Count}]");
        int pool = Names.Count * kinds;
        if (options.MinFacts < 1 || options.MaxFacts < options.MinFacts || options.MaxFacts > pool)
            throw new ArgumentOutOfRangeException(nameof(options), $"need 1 ≤ MinFacts ≤ MaxFacts ≤ {pool}");
        var rng = new DataRng(seed);
        var result = new List<TextPair>(count);
        var cells = new int[pool];
        var sb = new System.Text.StringBuilder();
        for (int e = 0; e < count; e++)
        {
            int n = options.MinFacts + rng.NextInt(options.MaxFacts - options.MinFacts + 1);
            for (int i = 0; i < pool; i++) cells[i] = i;
            for (int i = 0; i < n; i++) // partial Fisher–Yates: n distinct (name, object) cells
            {
                int j = i + rng.NextInt(pool - i);
                (cells[i], cells[j]) = (cells[j], cells[i]);
            }
            var colors = new int[n];
            for (int i = 0; i < n; i++) colors[i] = rng.NextInt(Colors.Count);
            int q = rng.NextInt(n);
            sb.Clear().Append("context:");
            for (int i = 0; i < n; i++)
                sb.Append(" The ").Append(Objects[cells[i] % kinds]).Append(" of ").Append(Names[cells[i] / kinds]).Append(" is ").Append(Colors[colors[i]]).Append('.');
            sb.Append(" question: What color is the ").Append(Objects[cells[q] % kinds]).Append(" of ").Append(Names[cells[q] / kinds]).Append('?');
            result.Add(new TextPair(sb.ToString(), Colors[colors[q]]));
        }
        return result;
    }

    /// <summary>
    /// The answer a reader finds in <paramref name="source"/>: the colour stated for the asked
    /// (object, name), or null when the question or the fact is missing. Used to check generated data.
    /// </summary>
    public static string? Answer(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        const string Q = " question: What color is the ";
        int qi = source.LastIndexOf(Q, StringComparison.Ordinal);
        if (qi < 0 || !source.EndsWith('?')) return null;
        string subject = source[(qi + Q.Length)..^1]; // "OBJ of NAME"
        string fact = "The " + subject + " is ";
        int fi = source.IndexOf(fact, StringComparison.Ordinal);
        if (fi < 0 || fi > qi) return null;
        int start = fi + fact.Length;
        int end = source.IndexOf('.', start);
        return end < 0 ? null : source[start..end];
    }
}
