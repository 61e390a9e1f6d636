// A small interpreter for the subset of Jinja2 (https://jinja.palletsprojects.com/en/stable/templates/)
// that Hugging Face chat templates use, rendering as transformers' apply_chat_template does:
// trim_blocks and lstrip_blocks on, the loopcontrols extension ({% break %}, {% continue %}), a
// tojson filter that keeps non-ASCII text and key order. The pieces: JinjaLexer (text and tags to
// tokens, whitespace control), JinjaParser (tokens to JinjaNodes), JinjaRenderer (evaluation with
// Python's semantics, JinjaValues), JinjaBuiltins (filters, tests, methods, globals).
namespace Encore.Generation.Jinja;

/// <summary>
/// Bounds on what a template may cost, so a hostile template fails with a <see cref="JinjaException"/>
/// instead of exhausting memory, time or the stack. Each limit has one documented default.
/// </summary>
public sealed record JinjaLimits
{
    /// <summary>Largest template source accepted, in characters. Default 1,048,576.</summary>
    public int MaxTemplateChars { get; init; } = 1 << 20;

    /// <summary>Longest rendered output and longest string built while rendering, in characters. Default 4,194,304.</summary>
    public int MaxOutputChars { get; init; } = 4 << 20;

    /// <summary>
    /// Work units one render may spend: one per loop iteration and per item a filter or method walks,
    /// plus one per 256 characters a string operation builds or scans. Default 1,000,000.
    /// </summary>
    public long MaxWork { get; init; } = 1_000_000;

    /// <summary>Deepest nesting of blocks and of expressions (parentheses, operators, filters). Default 100.</summary>
    public int MaxNesting { get; init; } = 100;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming a limit that is not positive.</summary>
    public JinjaLimits Validate()
    {
        if (MaxTemplateChars <= 0) throw new ArgumentOutOfRangeException(nameof(MaxTemplateChars), MaxTemplateChars, "must be positive");
        if (MaxOutputChars <= 0) throw new ArgumentOutOfRangeException(nameof(MaxOutputChars), MaxOutputChars, "must be positive");
        if (MaxWork <= 0) throw new ArgumentOutOfRangeException(nameof(MaxWork), MaxWork, "must be positive");
        if (MaxNesting <= 0 || MaxNesting > 1000) throw new ArgumentOutOfRangeException(nameof(MaxNesting), MaxNesting, "must be in [1, 1000]");
        return this;
    }
}

/// <summary>
/// A template that failed to parse or to render: the message names the line and column (1-based) of
/// the construct at fault. <see cref="JinjaRaisedException"/> is the template's own
/// <c>raise_exception(message)</c>.
/// </summary>
public class JinjaException : Exception
{
    /// <summary>An error at <paramref name="line"/>, <paramref name="column"/>.</summary>
    public JinjaException(string message, int line, int column, Exception? inner = null)
        : base($"line {line}, column {column}: {message}", inner)
    {
        Line = line;
        Column = column;
        Reason = message;
    }

    /// <summary>1-based line of the construct at fault.</summary>
    public int Line { get; }

    /// <summary>1-based column of the construct at fault.</summary>
    public int Column { get; }

    /// <summary>The message without the position.</summary>
    public string Reason { get; }
}

/// <summary>The template called <c>raise_exception(message)</c>: it refuses the input it was given.</summary>
public sealed class JinjaRaisedException(string templateMessage, int line, int column)
    : JinjaException(templateMessage, line, column)
{
    /// <summary>The message the template raised, as it wrote it.</summary>
    public string TemplateMessage { get; } = templateMessage;
}

/// <summary>
/// A parsed Jinja template. Values passed to <see cref="Render"/> follow Python's types: null (None),
/// bool, long, double, string, <see cref="List{T}"/> of object (a list), object[] (a tuple), and
/// <see cref="Dictionary{TKey, TValue}"/> of object to object (a dict, iterated in insertion order);
/// <see cref="JinjaValues.From"/> converts other .NET values and JSON to these. Safe to render from
/// several threads at once.
/// </summary>
public sealed class JinjaTemplate
{
    readonly List<JinjaNode> _body;

    JinjaTemplate(string source, List<JinjaNode> body, JinjaLimits limits)
    {
        Source = source;
        _body = body;
        Limits = limits;
    }

    /// <summary>The template's source text.</summary>
    public string Source { get; }

    /// <summary>The limits every render of this template runs under.</summary>
    public JinjaLimits Limits { get; }

    /// <summary>Parses <paramref name="source"/>; a syntax error, an unknown tag, filter or test is a <see cref="JinjaException"/> naming its line and column.</summary>
    public static JinjaTemplate Parse(string source, JinjaLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        limits = (limits ?? new JinjaLimits()).Validate();
        if (source.Length > limits.MaxTemplateChars)
            throw new JinjaException($"the template has {source.Length} characters; at most {limits.MaxTemplateChars} are accepted", 1, 1);
        var tokens = JinjaLexer.Tokenize(source);
        var body = new JinjaParser(tokens, limits.MaxNesting).ParseTemplate();
        return new JinjaTemplate(source, body, limits);
    }

    /// <summary>
    /// Renders with <paramref name="variables"/> (and the globals <c>raise_exception</c>, <c>namespace</c>,
    /// <c>range</c>, <c>dict</c>). Throws <see cref="JinjaException"/> naming the line and column of an
    /// error, or <see cref="JinjaRaisedException"/> when the template raises.
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        return new JinjaRenderer(Limits, variables).Render(_body);
    }
}
