// Python's value semantics as Jinja2 exposes them: truthiness, str() and repr(), equality and
// ordering, len(), iteration, and json.dumps as transformers' tojson calls it. Values are null (None),
// bool, long, double, string, List<object?> (list), object?[] (tuple), Dictionary<object, object?>
// (dict, in insertion order), and the types below.
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Encore.Generation.Jinja;

/// <summary>An undefined variable, attribute or item: empty when printed, false, iterates as nothing.</summary>
internal sealed class JinjaUndefined(string description)
{
    /// <summary>What was looked up, e.g. "'x' is undefined" or "'dict' has no attribute 'y'".</summary>
    public string Description { get; } = description;
}

/// <summary>namespace(): the one mutable object, whose attributes {% set ns.x = ... %} assigns across loop scopes.</summary>
internal sealed class JinjaNamespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

/// <summary>A built-in function (raise_exception, namespace, range, dict).</summary>
internal sealed class JinjaFunction(string name, Func<JinjaCall, object?> invoke)
{
    public string Name { get; } = name;
    public Func<JinjaCall, object?> Invoke { get; } = invoke;
}

/// <summary>The special "loop" variable of a for loop.</summary>
internal sealed class JinjaLoop
{
    public long Index0;
    public long Length;
    public object? Previous = new JinjaUndefined("there is no previous item");
    public object? NextItem = new JinjaUndefined("there is no next item");
}

/// <summary>Conversions of .NET and JSON values to the values templates see.</summary>
public static class JinjaValues
{
    /// <summary>
    /// <paramref name="value"/> as a template value: strings, bools, integers (as long), floating-point
    /// numbers (as double), null, <see cref="JsonElement"/>, dictionaries with string keys and sequences;
    /// anything else is an <see cref="ArgumentException"/>.
    /// </summary>
    public static object? From(object? value) => value switch
    {
        null => null,
        string or bool or long or double => value,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        uint u => (long)u,
        float f => (double)f,
        decimal m => (double)m,
        JsonElement e => FromJson(e),
        Dictionary<object, object?> d => d,
        System.Collections.IDictionary d => d.Keys.Cast<object>().ToDictionary(k => From(k) ?? throw new ArgumentException("a dictionary key is null"), k => From(d[k])),
        IEnumerable<KeyValuePair<string, object?>> pairs => pairs.ToDictionary(p => (object)p.Key, p => From(p.Value)),
        IEnumerable<KeyValuePair<string, string>> pairs => pairs.ToDictionary(p => (object)p.Key, p => (object?)p.Value),
        object?[] tuple => tuple.Select(From).ToArray(),
        System.Collections.IEnumerable seq => seq.Cast<object?>().Select(From).ToList(),
        _ => throw new ArgumentException($"a {value.GetType().Name} cannot be passed to a template (strings, numbers, bools, null, lists and dictionaries can)"),
    };

    /// <summary>A JSON value as a template value (objects keep their key order).</summary>
    public static object? FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out long l) ? (object)l : e.GetDouble(),
        JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        JsonValueKind.Object => ObjectFromJson(e),
        _ => throw new ArgumentException($"unexpected JSON value kind {e.ValueKind}"),
    };

    static Dictionary<object, object?> ObjectFromJson(JsonElement e)
    {
        var d = new Dictionary<object, object?>();
        foreach (var p in e.EnumerateObject()) d[p.Name] = FromJson(p.Value);
        return d;
    }
}

/// <summary>Python operations on template values; failures throw <see cref="InvalidOperationException"/>, which the renderer positions.</summary>
internal static class Py
{
    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        object?[] => "tuple",
        Dictionary<object, object?> => "dict",
        JinjaNamespace => "namespace",
        JinjaUndefined => "undefined",
        JinjaLoop => "loop",
        JinjaFunction => "function",
        _ => v.GetType().Name,
    };

    public static bool Truthy(object? v) => v switch
    {
        null or JinjaUndefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        object?[] t => t.Length > 0,
        Dictionary<object, object?> d => d.Count > 0,
        _ => true,
    };

    public static bool IsNumber(object? v) => v is long or double or bool;

    /// <summary>str(v); an undefined value prints as nothing.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        JinjaUndefined => "",
        _ => Repr(v),
    };

    /// <summary>Deepest nesting of lists and dicts that printing, JSON and comparison walk (namespace() lets a template build deeper ones).</summary>
    public const int MaxValueDepth = 200;

    static void CheckDepth(int depth)
    {
        if (depth > MaxValueDepth) throw new InvalidOperationException($"a value is nested more than {MaxValueDepth} deep");
    }

    public static string Repr(object? v)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, v, 0);
        return sb.ToString();
    }

    static void AppendRepr(StringBuilder sb, object? v, int depth)
    {
        CheckDepth(depth);
        switch (v)
        {
            case null: sb.Append("None"); break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FloatRepr(d)); break;
            case string s: AppendStringRepr(sb, s); break;
            case JinjaUndefined: break;
            case List<object?> list:
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, list[i], depth + 1);
                }
                sb.Append(']');
                break;
            case object?[] tuple:
                sb.Append('(');
                for (int i = 0; i < tuple.Length; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, tuple[i], depth + 1);
                }
                sb.Append(tuple.Length == 1 ? ",)" : ")");
                break;
            case Dictionary<object, object?> dict:
                sb.Append('{');
                bool first = true;
                foreach (var (k, val) in dict)
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    AppendRepr(sb, k, depth + 1);
                    sb.Append(": ");
                    AppendRepr(sb, val, depth + 1);
                }
                sb.Append('}');
                break;
            case JinjaNamespace ns:
                sb.Append("<Namespace {");
                sb.AppendJoin(", ", ns.Attributes.Select(p => $"'{p.Key}': {Repr(p.Value)}"));
                sb.Append("}>");
                break;
            default: sb.Append('<').Append(TypeName(v)).Append('>'); break;
        }
    }

    // Python's repr of a str: single quotes unless the text has one and no double quote.
    static void AppendStringRepr(StringBuilder sb, string s)
    {
        char q = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(q);
        foreach (char c in s)
        {
            if (c == q || c == '\\') sb.Append('\\').Append(c);
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (c < ' ' || c == '\x7f') sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
            else sb.Append(c);
        }
        sb.Append(q);
    }

    /// <summary>Python's repr of a float: the shortest round-trip digits, positional for exponents in [-4, 16), else d.ddde±XX.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // Shortest digits that round-trip: "R" gives them, in either notation.
        string shortest = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        int e = shortest.IndexOfAny(['E', 'e']);
        string mantissa = e < 0 ? shortest : shortest[..e];
        int exp = e < 0 ? 0 : int.Parse(shortest[(e + 1)..], CultureInfo.InvariantCulture);
        int dot = mantissa.IndexOf('.');
        string intPart = dot < 0 ? mantissa : mantissa[..dot];
        string fracPart = dot < 0 ? "" : mantissa[(dot + 1)..];
        string digits = (intPart + fracPart).TrimStart('0');
        // Decimal exponent of the first significant digit.
        int lead = (intPart + fracPart).Length - (intPart + fracPart).TrimStart('0').Length;
        int point = intPart.Length + exp - lead;   // digits[0] sits at 10^(point-1)
        digits = digits.TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        int sciExp = point - 1;
        var sb = new StringBuilder();
        if (d < 0) sb.Append('-');
        if (sciExp >= -4 && sciExp < 16)
        {
            if (point <= 0) sb.Append("0.").Append('0', -point).Append(digits);
            else if (point >= digits.Length) sb.Append(digits).Append('0', point - digits.Length).Append(".0");
            else sb.Append(digits, 0, point).Append('.').Append(digits, point, digits.Length - point);
        }
        else
        {
            sb.Append(digits[0]);
            if (digits.Length > 1) sb.Append('.').Append(digits, 1, digits.Length - 1);
            sb.Append('e').Append(sciExp < 0 ? '-' : '+').Append(Math.Abs(sciExp).ToString("00", CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    public static new bool Equals(object? a, object? b) => Equals(a, b, 0);

    static bool Equals(object? a, object? b, int depth)
    {
        CheckDepth(depth);
        if (a is JinjaUndefined || b is JinjaUndefined) return a is JinjaUndefined && b is JinjaUndefined;
        if (a is null || b is null) return a is null && b is null;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            return ToLong(a) == ToLong(b);
        }
        switch (a)
        {
            case string s: return b is string t && s == t;
            case List<object?> l: return b is List<object?> m && SequenceEquals(l, m, depth);
            case object?[] x: return b is object?[] y && SequenceEquals(x, y, depth);
            case Dictionary<object, object?> d:
                if (b is not Dictionary<object, object?> e || d.Count != e.Count) return false;
                foreach (var (k, v) in d)
                    if (!e.TryGetValue(k, out var w) || !Equals(v, w, depth + 1)) return false;
                return true;
            default: return ReferenceEquals(a, b);
        }
    }

    static bool SequenceEquals(IReadOnlyList<object?> a, IReadOnlyList<object?> b, int depth)
    {
        if (a.Count != b.Count) return false;
        for (int i = 0; i < a.Count; i++) if (!Equals(a[i], b[i], depth + 1)) return false;
        return true;
    }

    /// <summary>Python's ordering of numbers, strings (by code point) and sequences; other pairs throw.</summary>
    public static int Compare(object? a, object? b, string op, int depth = 0)
    {
        CheckDepth(depth);
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a).CompareTo(ToDouble(b)) : ToLong(a).CompareTo(ToLong(b));
        if (a is string s && b is string t) return string.CompareOrdinal(s, t);
        if (a is IReadOnlyList<object?> x && b is IReadOnlyList<object?> y && a.GetType() == b.GetType())
        {
            for (int i = 0; i < Math.Min(x.Count, y.Count); i++)
                if (!Equals(x[i], y[i], depth + 1)) return Compare(x[i], y[i], op, depth + 1);
            return x.Count.CompareTo(y.Count);
        }
        throw new InvalidOperationException($"'{op}' is not supported between {TypeName(a)} and {TypeName(b)}");
    }

    public static long ToLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new InvalidOperationException($"expected an integer, got {TypeName(v)}"),
    };

    public static double ToDouble(object? v) => v switch
    {
        double d => d,
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new InvalidOperationException($"expected a number, got {TypeName(v)}"),
    };

    /// <summary>The code points of a string, as Python indexes it (a surrogate pair is one character).</summary>
    public static string[] Chars(string s)
    {
        var result = new List<string>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { result.Add(s.Substring(i, 2)); i++; }
            else result.Add(s[i].ToString());
        }
        return [.. result];
    }

    static bool HasSurrogates(string s)
    {
        foreach (char c in s) if (char.IsSurrogate(c)) return true;
        return false;
    }

    public static long Length(object? v) => v switch
    {
        string s => HasSurrogates(s) ? Chars(s).Length : s.Length,
        List<object?> l => l.Count,
        object?[] t => t.Length,
        Dictionary<object, object?> d => d.Count,
        JinjaUndefined => 0,
        _ => throw new InvalidOperationException($"a {TypeName(v)} has no length"),
    };

    /// <summary>The items iterating v yields: a list's or tuple's items, a dict's keys, a string's characters; undefined yields none.</summary>
    public static IReadOnlyList<object?> Items(object? v) => v switch
    {
        List<object?> l => l,
        object?[] t => t,
        Dictionary<object, object?> d => d.Keys.Cast<object?>().ToList(),
        string s => Chars(s),
        JinjaUndefined => [],
        _ => throw new InvalidOperationException($"a {TypeName(v)} cannot be iterated"),
    };

    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string t ? s.Contains(t, StringComparison.Ordinal)
            : throw new InvalidOperationException($"'in <string>' needs a string on the left, got {TypeName(item)}"),
        Dictionary<object, object?> d => item != null && d.Keys.Any(k => Equals(k, item)),
        List<object?> or object?[] => Items(container).Any(x => Equals(x, item)),
        JinjaUndefined => false,
        _ => throw new InvalidOperationException($"'in' needs a string, list or dict on the right, got {TypeName(container)}"),
    };

    /// <summary>Python's str.strip / lstrip / rstrip: whitespace, or the characters of <paramref name="chars"/>.</summary>
    public static string Strip(string s, string? chars, bool left = true, bool right = true)
    {
        bool Drop(char c) => chars is null ? JinjaLexer.IsWhite(c) : chars.Contains(c);
        int start = 0, end = s.Length;
        if (left) while (start < end && Drop(s[start])) start++;
        if (right) while (end > start && Drop(s[end - 1])) end--;
        return s[start..end];
    }

    /// <summary>json.dumps(v, ensure_ascii=False, indent=indent): Python's separators, key order kept, non-ASCII text as it is.</summary>
    public static string ToJson(object? v, int? indent)
    {
        var sb = new StringBuilder();
        AppendJson(sb, v, indent, 0);
        return sb.ToString();
    }

    static void AppendJson(StringBuilder sb, object? v, int? indent, int level)
    {
        CheckDepth(level);
        switch (v)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : FloatRepr(d)); break;
            case string s: AppendJsonString(sb, s); break;
            case List<object?> or object?[]:
                var items = (IReadOnlyList<object?>)v;
                if (items.Count == 0) { sb.Append("[]"); break; }
                sb.Append('[');
                for (int i = 0; i < items.Count; i++)
                {
                    if (i > 0) sb.Append(indent is null ? ", " : ",");
                    NewLine(sb, indent, level + 1);
                    AppendJson(sb, items[i], indent, level + 1);
                }
                NewLine(sb, indent, level);
                sb.Append(']');
                break;
            case Dictionary<object, object?> dict:
                if (dict.Count == 0) { sb.Append("{}"); break; }
                sb.Append('{');
                bool first = true;
                foreach (var (k, val) in dict)
                {
                    if (!first) sb.Append(indent is null ? ", " : ",");
                    first = false;
                    NewLine(sb, indent, level + 1);
                    AppendJsonString(sb, k switch
                    {
                        string s => s,
                        bool b => b ? "true" : "false",
                        long or double => Repr(k),
                        _ => throw new InvalidOperationException($"a {TypeName(k)} key cannot be written as JSON"),
                    });
                    sb.Append(": ");
                    AppendJson(sb, val, indent, level + 1);
                }
                NewLine(sb, indent, level);
                sb.Append('}');
                break;
            default: throw new InvalidOperationException($"a {TypeName(v)} cannot be written as JSON");
        }
    }

    static void NewLine(StringBuilder sb, int? indent, int level)
    {
        if (indent is { } n) sb.Append('\n').Append(' ', n * level);
    }

    static void AppendJsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < ' ') sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
