using System.CommandLine.Parsing;

namespace Encore.Cli;

/// <summary>
/// Command-line mistakes as one line each, with the nearest known name for a typo
/// (<c>encore: unknown option '--max-new-token' (did you mean '--max-new-tokens'?)</c>), instead of
/// System.CommandLine's error list followed by the whole help text.
/// </summary>
internal static partial class ParseErrors
{
    /// <summary>
    /// Writes one line per error of <paramref name="parse"/> and returns true; returns false (nothing written)
    /// for a command group called without its subcommand, whose help is the useful answer.
    /// </summary>
    public static bool Report(ParseResult parse, TextWriter error)
    {
        var command = parse.CommandResult.Command;
        if (parse.UnmatchedTokens.Count == 0 && command.Action is null && command.Subcommands.Count > 0)
            return false;
        // The first unknown token is the mistake; what follows it (its value, an option it hid) only echoes it.
        if (parse.UnmatchedTokens.Count > 0)
            error.WriteLine($"encore: {Describe(parse.UnmatchedTokens[0], command)}");
        else
            foreach (var e in parse.Errors)
                error.WriteLine($"encore: {Plain(e.Message)}");
        return true;
    }

    /// <summary>
    /// A parser message with .NET type names in words: "Cannot parse argument 'abc' for option '--threads' as
    /// expected type 'System.Nullable`1[System.Int32]'" ends "as an integer".
    /// </summary>
    internal static string Plain(string message) => ExpectedType().Replace(message, m =>
    {
        string type = m.Groups[1].Value;
        string words = type.Contains("Int", StringComparison.Ordinal) ? "an integer"
            : type.Contains("Single", StringComparison.Ordinal) || type.Contains("Double", StringComparison.Ordinal) ? "a number"
            : type.Contains("Boolean", StringComparison.Ordinal) ? "true or false"
            : $"type '{type}'";
        return $"as {words}";
    });

    [System.Text.RegularExpressions.GeneratedRegex(@"as expected type '([^']+)'")]
    private static partial System.Text.RegularExpressions.Regex ExpectedType();

    /// <summary>"unknown option '--x' (did you mean '--y'?)" for one token the parser did not match under <paramref name="command"/>.</summary>
    internal static string Describe(string token, Command command)
    {
        bool isOption = token.StartsWith('-');
        var names = isOption
            ? OptionsOf(command).SelectMany(o => o.Aliases.Prepend(o.Name))
            : command.Subcommands.Where(c => !c.Hidden).SelectMany(c => c.Aliases.Prepend(c.Name));
        string kind = isOption ? "option" : command.Subcommands.Count > 0 ? "command" : "argument";
        return Nearest(token, names) is { } s
            ? $"unknown {kind} '{token}' (did you mean '{s}'?)"
            : $"unknown {kind} '{token}' (see '{string.Join(' ', Path(command))} --help')";
    }

    /// <summary>The command's words from the root, "encore bench kernels".</summary>
    static IEnumerable<string> Path(Command command)
    {
        var words = new List<string>();
        for (Command? c = command; c != null; c = c.Parents.OfType<Command>().FirstOrDefault())
            words.Insert(0, c.Parents.Any() ? c.Name : "encore");
        return words;
    }

    /// <summary>The command's own options and those its ancestors apply to it (such as --help).</summary>
    static IEnumerable<Option> OptionsOf(Command command)
    {
        foreach (var o in command.Options) if (!o.Hidden) yield return o;
        for (var p = command.Parents.OfType<Command>().FirstOrDefault(); p != null; p = p.Parents.OfType<Command>().FirstOrDefault())
            foreach (var o in p.Options) if (o.Recursive && !o.Hidden) yield return o;
    }

    /// <summary>
    /// The candidate closest to <paramref name="token"/> by edit distance, when it is close enough to be the
    /// likely intent: at most a third of the token's length, and at least 1 edit, apart. Tokens of one or
    /// two letters get none: every short alias is an edit away from them.
    /// </summary>
    internal static string? Nearest(string token, IEnumerable<string> candidates)
    {
        if (token.TrimStart('-').Length < 3) return null;
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var c in candidates.Distinct())
        {
            int d = Distance(token, c);
            if (d < bestDistance) (best, bestDistance) = (c, d);
        }
        int limit = Math.Max(1, token.TrimStart('-').Length / 3);
        return bestDistance <= limit ? best : null;
    }

    /// <summary>
    /// Edit distance with insertions, deletions, substitutions and swaps of two adjacent letters each costing 1
    /// (optimal string alignment), so "--rnus" is one edit from "--runs".
    /// </summary>
    internal static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
            {
                int v = Math.Min(Math.Min(d[i - 1, j], d[i, j - 1]) + 1, d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) v = Math.Min(v, d[i - 2, j - 2] + 1);
                d[i, j] = v;
            }
        return d[a.Length, b.Length];
    }
}
