// The filters, tests, methods and globals chat templates use, each as jinja2/filters.py,
// jinja2/tests.py or Python's str and dict define it. Filters and tests are checked by name when a
// template is parsed (as Jinja2 does when it compiles one); methods and globals when they are called.
using System.Globalization;
using System.Text;

namespace Encore.Generation.Jinja;

/// <summary>The arguments of one filter, test, method or function call, with the renderer that bounds its work.</summary>
internal sealed class JinjaCall(JinjaRenderer renderer, string what, List<object?> positional, Dictionary<string, object?> named)
{
    public JinjaRenderer Renderer { get; } = renderer;
    public List<object?> Positional { get; } = positional;
    public Dictionary<string, object?> Named { get; } = named;

    /// <summary>Argument <paramref name="index"/> (or named <paramref name="name"/>), else <paramref name="fallback"/>.</summary>
    public object? Arg(int index, string name, object? fallback = null)
    {
        if (index < Positional.Count) return Positional[index];
        return Named.TryGetValue(name, out var v) ? v : fallback;
    }

    public bool Has(int index, string name) => index < Positional.Count || Named.ContainsKey(name);

    /// <summary>Throws when more than <paramref name="names"/>.Length arguments are given or a keyword is not one of them.</summary>
    public JinjaCall Accept(params string[] names)
    {
        if (Positional.Count > names.Length)
            throw new InvalidOperationException($"{what} takes at most {names.Length} argument{(names.Length == 1 ? "" : "s")}, got {Positional.Count}");
        foreach (var k in Named.Keys)
            if (!names.Contains(k)) throw new InvalidOperationException($"{what} has no argument named '{k}'");
        return this;
    }

    public string String(int index, string name, string? fallback = null) => Arg(index, name, fallback) switch
    {
        string s => s,
        var v => throw new InvalidOperationException($"{what}: '{name}' must be a string, got {Py.TypeName(v)}"),
    };

    public long Integer(int index, string name, long fallback) => Arg(index, name, fallback) switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        var v => throw new InvalidOperationException($"{what}: '{name}' must be an integer, got {Py.TypeName(v)}"),
    };
}

internal static class JinjaBuiltins
{
    static readonly Dictionary<string, Func<JinjaCall, object?, object?>> s_filters = new(StringComparer.Ordinal)
    {
        ["abs"] = (c, v) => { c.Accept(); return v switch { long l => (object)checked(Math.Abs(l)), double d => Math.Abs(d), bool b => b ? 1L : 0L, _ => throw Bad("abs", v) }; },
        ["capitalize"] = (c, v) => { c.Accept(); return Capitalize(Py.Str(v)); },
        ["count"] = (c, v) => { c.Accept(); return Py.Length(v); },
        ["default"] = Default,
        ["d"] = Default,
        ["first"] = (c, v) => { c.Accept(); var items = Py.Items(v); return items.Count > 0 ? items[0] : new JinjaUndefined("the sequence is empty"); },
        ["float"] = (c, v) => { c.Accept("default"); return ToFloat(v) ?? c.Arg(0, "default", 0.0); },
        ["int"] = (c, v) => { c.Accept("default", "base"); return ToInt(v, c.Integer(1, "base", 10)) ?? c.Arg(0, "default", 0L); },
        ["items"] = (c, v) =>
        {
            c.Accept();
            return v switch
            {
                Dictionary<object, object?> d => c.Renderer.Charge(d.Count, d.Select(p => (object?)new object?[] { p.Key, p.Value }).ToList()),
                JinjaUndefined => new List<object?>(),
                _ => throw new InvalidOperationException($"items needs a dict, got {Py.TypeName(v)}"),
            };
        },
        ["join"] = (c, v) =>
        {
            c.Accept("d", "attribute");
            string sep = c.String(0, "d", "");
            var items = c.Renderer.Charge(Py.Items(v));
            var attr = c.Arg(1, "attribute");
            return c.Renderer.CheckSize(string.Join(sep, items.Select(x => Py.Str(attr is null ? x : c.Renderer.GetAttribute(x, attr)))));
        },
        ["last"] = (c, v) => { c.Accept(); var items = Py.Items(v); return items.Count > 0 ? items[^1] : new JinjaUndefined("the sequence is empty"); },
        ["length"] = (c, v) => { c.Accept(); return Py.Length(v); },
        ["list"] = (c, v) => { c.Accept(); return c.Renderer.Charge(Py.Items(v)).ToList(); },
        ["lower"] = (c, v) => { c.Accept(); return Py.Str(v).ToLowerInvariant(); },
        ["map"] = Map,
        ["reject"] = (c, v) => Select(c, v, false, false),
        ["rejectattr"] = (c, v) => Select(c, v, true, false),
        ["replace"] = (c, v) =>
        {
            c.Accept("old", "new", "count");
            return c.Renderer.CheckSize(Replace(Py.Str(v), c.String(0, "old"), c.String(1, "new"), c.Arg(2, "count") is null ? -1 : c.Integer(2, "count", -1)));
        },
        ["reverse"] = (c, v) =>
        {
            c.Accept();
            if (v is string s) return string.Concat(Py.Chars(s).Reverse());
            var items = c.Renderer.Charge(Py.Items(v)).ToList();
            items.Reverse();
            return items;
        },
        ["safe"] = (c, v) => { c.Accept(); return v; },
        ["select"] = (c, v) => Select(c, v, false, true),
        ["selectattr"] = (c, v) => Select(c, v, true, true),
        ["string"] = (c, v) => { c.Accept(); return c.Renderer.CheckSize(Py.Str(v)); },
        ["title"] = (c, v) => { c.Accept(); return Title(Py.Str(v)); },
        ["tojson"] = (c, v) =>
        {
            c.Accept("indent");
            int? indent = c.Arg(0, "indent") is null ? null : (int)Math.Clamp(c.Integer(0, "indent", 0), 0, 64);
            return c.Renderer.CheckSize(Py.ToJson(v, indent));
        },
        ["trim"] = (c, v) => { c.Accept("chars"); return Py.Strip(Py.Str(v), c.Arg(0, "chars") is null ? null : c.String(0, "chars")); },
        ["upper"] = (c, v) => { c.Accept(); return Py.Str(v).ToUpperInvariant(); },
    };

    static readonly Dictionary<string, Func<JinjaCall, object?, bool>> s_tests = new(StringComparer.Ordinal)
    {
        ["boolean"] = (c, v) => v is bool,
        ["callable"] = (c, v) => v is JinjaFunction,
        ["defined"] = (c, v) => v is not JinjaUndefined,
        ["divisibleby"] = (c, v) => Py.ToLong(c.Arg(0, "num")) is var n && n != 0 ? Py.ToLong(v) % n == 0 : throw new InvalidOperationException("divisibleby 0"),
        ["eq"] = (c, v) => Py.Equals(v, c.Arg(0, "other")),
        ["equalto"] = (c, v) => Py.Equals(v, c.Arg(0, "other")),
        ["=="] = (c, v) => Py.Equals(v, c.Arg(0, "other")),
        ["ne"] = (c, v) => !Py.Equals(v, c.Arg(0, "other")),
        ["!="] = (c, v) => !Py.Equals(v, c.Arg(0, "other")),
        ["even"] = (c, v) => Py.ToLong(v) % 2 == 0,
        ["false"] = (c, v) => v is false,
        ["float"] = (c, v) => v is double,
        ["ge"] = (c, v) => Py.Compare(v, c.Arg(0, "other"), ">=") >= 0,
        ["gt"] = (c, v) => Py.Compare(v, c.Arg(0, "other"), ">") > 0,
        ["in"] = (c, v) => Py.Contains(c.Arg(0, "seq"), v),
        ["integer"] = (c, v) => v is long,
        ["iterable"] = (c, v) => v is string or List<object?> or object?[] or Dictionary<object, object?> or JinjaUndefined,
        ["le"] = (c, v) => Py.Compare(v, c.Arg(0, "other"), "<=") <= 0,
        ["lower"] = (c, v) => v is string s && s == s.ToLowerInvariant() && s != s.ToUpperInvariant(),
        ["lt"] = (c, v) => Py.Compare(v, c.Arg(0, "other"), "<") < 0,
        ["mapping"] = (c, v) => v is Dictionary<object, object?>,
        ["none"] = (c, v) => v is null,
        ["number"] = (c, v) => Py.IsNumber(v),
        ["odd"] = (c, v) => Py.ToLong(v) % 2 != 0,
        ["sameas"] = (c, v) => c.Arg(0, "other") is var o && (v is null or bool or long ? Py.Equals(v, o) && Py.TypeName(v) == Py.TypeName(o) : ReferenceEquals(v, o)),
        ["sequence"] = (c, v) => v is string or List<object?> or object?[] or Dictionary<object, object?>,
        ["string"] = (c, v) => v is string,
        ["true"] = (c, v) => v is true,
        ["undefined"] = (c, v) => v is JinjaUndefined,
        ["upper"] = (c, v) => v is string s && s == s.ToUpperInvariant() && s != s.ToLowerInvariant(),
    };

    public static bool IsFilter(string name) => s_filters.ContainsKey(name);
    public static bool IsTest(string name) => s_tests.ContainsKey(name);
    public static IEnumerable<string> FilterNames => s_filters.Keys.Order(StringComparer.Ordinal);
    public static IEnumerable<string> TestNames => s_tests.Keys.Where(k => char.IsLetter(k[0])).Order(StringComparer.Ordinal);

    public static object? Filter(string name, JinjaCall call, object? value) => s_filters[name](call, value);

    public static bool Test(string name, JinjaCall call, object? value) => s_tests[name](call, value);

    static InvalidOperationException Bad(string what, object? v) => new($"{what} cannot take a {Py.TypeName(v)}");

    static object? Default(JinjaCall c, object? v)
    {
        c.Accept("default_value", "boolean");
        bool boolean = Py.Truthy(c.Arg(1, "boolean", false));
        return v is JinjaUndefined || (boolean && !Py.Truthy(v)) ? c.Arg(0, "default_value", "") : v;
    }

    // select / reject items by a test (or by truth), or selectattr / rejectattr by an attribute's test.
    static List<object?> Select(JinjaCall c, object? v, bool byAttribute, bool keep)
    {
        var items = c.Renderer.Charge(Py.Items(v));
        int next = 0;
        object? attribute = null;
        if (byAttribute)
        {
            attribute = c.Arg(0, "attribute") ?? throw new InvalidOperationException("selectattr and rejectattr need an attribute name");
            next = 1;
        }
        string? test = c.Positional.Count > next ? c.String(next, "test") : null;
        if (test != null && !IsTest(test)) throw new InvalidOperationException($"unknown test '{test}'");
        var testCall = new JinjaCall(c.Renderer, $"test '{test}'", c.Positional.Skip(next + 1).ToList(), []);
        var result = new List<object?>();
        foreach (var item in items)
        {
            var x = byAttribute ? c.Renderer.GetAttribute(item, attribute) : item;
            bool passes = test is null ? Py.Truthy(x) : Test(test, testCall, x);
            if (passes == keep) result.Add(item);
        }
        return result;
    }

    // map(attribute='name', default=...) or map('filter', args...).
    static List<object?> Map(JinjaCall c, object? v)
    {
        var items = c.Renderer.Charge(Py.Items(v));
        if (c.Named.TryGetValue("attribute", out var attribute))
        {
            bool hasDefault = c.Named.TryGetValue("default", out var fallback);
            return items.Select(x => c.Renderer.GetAttribute(x, attribute) is var a && a is JinjaUndefined && hasDefault ? fallback : a).ToList();
        }
        string filter = c.String(0, "filter");
        if (!IsFilter(filter)) throw new InvalidOperationException($"unknown filter '{filter}'");
        var filterCall = new JinjaCall(c.Renderer, $"filter '{filter}'", c.Positional.Skip(1).ToList(), c.Named);
        return items.Select(x => Filter(filter, filterCall, x)).ToList();
    }

    static object? ToInt(object? v, long numberBase)
    {
        switch (v)
        {
            case long l: return l;
            case bool b: return b ? 1L : 0L;
            case double d: return double.IsFinite(d) && Math.Abs(d) < 9.2e18 ? (long)Math.Truncate(d) : null;
            case string s:
                s = Py.Strip(s, null).Replace("_", "");
                if (numberBase == 10 && long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n)) return n;
                if (numberBase is 2 or 8 or 16)
                {
                    try
                    {
                        return Convert.ToInt64(s, (int)numberBase);
                    }
                    catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
                    {
                        return null;
                    }
                }
                return ToFloat(s) is double f ? ToInt(f, 10) : null;
            default: return null;
        }
    }

    static double? ToFloat(object? v) => v switch
    {
        double d => d,
        long l => l,
        bool b => b ? 1 : 0,
        string s when double.TryParse(Py.Strip(s, null), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
        _ => null,
    };

    // Python's str.capitalize: the first character upper case, the rest lower case.
    static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    // Jinja's title filter: each word, split after runs of whitespace, '-', '(', '{', '[', '<', capitalized.
    static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool start = true;
        foreach (char c in s)
        {
            bool delimiter = JinjaLexer.IsWhite(c) || c is '-' or '(' or '{' or '[' or '<';
            sb.Append(delimiter ? c : start ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            start = delimiter;
        }
        return sb.ToString();
    }

    // Python's str.title: a letter is upper case after a non-letter, lower case after a letter.
    static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }
        return sb.ToString();
    }

    // Python's str.replace, count < 0 meaning all.
    static string Replace(string s, string old, string replacement, long count)
    {
        if (count < 0) count = long.MaxValue;
        var sb = new StringBuilder();
        int pos = 0;
        long done = 0;
        if (old.Length == 0)
        {
            // Python inserts the replacement before every character and at the end.
            var chars = Py.Chars(s);
            for (int i = 0; i <= chars.Length; i++)
            {
                if (done++ < count) sb.Append(replacement);
                if (i < chars.Length) sb.Append(chars[i]);
            }
            return sb.ToString();
        }
        while (done < count)
        {
            int at = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (at < 0) break;
            sb.Append(s, pos, at - pos).Append(replacement);
            pos = at + old.Length;
            done++;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    // Python's str.split: without a separator on runs of whitespace, dropping empty pieces.
    static List<object?> Split(string s, string? sep, long maxSplit)
    {
        var result = new List<object?>();
        if (maxSplit < 0) maxSplit = long.MaxValue;
        if (sep is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && JinjaLexer.IsWhite(s[i])) i++;
                if (i >= s.Length) break;
                if (result.Count == maxSplit)
                {
                    result.Add(Py.Strip(s[i..], null, left: false));
                    break;
                }
                int start = i;
                while (i < s.Length && !JinjaLexer.IsWhite(s[i])) i++;
                result.Add(s[start..i]);
            }
            return result;
        }
        if (sep.Length == 0) throw new InvalidOperationException("split: empty separator");
        int pos = 0;
        while (result.Count < maxSplit)
        {
            int at = s.IndexOf(sep, pos, StringComparison.Ordinal);
            if (at < 0) break;
            result.Add(s[pos..at]);
            pos = at + sep.Length;
        }
        result.Add(s[pos..]);
        return result;
    }

    static bool Affix(JinjaCall c, string s, bool prefix)
    {
        var arg = c.Arg(0, prefix ? "prefix" : "suffix");
        IEnumerable<object?> options = arg is object?[] tuple ? tuple : [arg];
        foreach (var o in options)
        {
            if (o is not string a) throw new InvalidOperationException($"{(prefix ? "startswith" : "endswith")} needs a string or a tuple of strings, got {Py.TypeName(o)}");
            if (prefix ? s.StartsWith(a, StringComparison.Ordinal) : s.EndsWith(a, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    /// <summary>Calls method <paramref name="name"/> of <paramref name="target"/> (str, dict and loop methods); throws for any other.</summary>
    public static object? CallMethod(JinjaCall c, object? target, string name)
    {
        switch (target)
        {
            case string s:
                switch (name)
                {
                    case "strip": c.Accept("chars"); return Py.Strip(s, c.Arg(0, "chars") as string);
                    case "lstrip": c.Accept("chars"); return Py.Strip(s, c.Arg(0, "chars") as string, right: false);
                    case "rstrip": c.Accept("chars"); return Py.Strip(s, c.Arg(0, "chars") as string, left: false);
                    case "startswith": c.Accept("prefix"); return Affix(c, s, true);
                    case "endswith": c.Accept("suffix"); return Affix(c, s, false);
                    case "split":
                        c.Accept("sep", "maxsplit");
                        c.Renderer.Charge(s.Length / 256);
                        return Split(s, c.Arg(0, "sep") is null ? null : c.String(0, "sep"), c.Integer(1, "maxsplit", -1));
                    case "upper": c.Accept(); return s.ToUpperInvariant();
                    case "lower": c.Accept(); return s.ToLowerInvariant();
                    case "title": c.Accept(); return PyTitle(s);
                    case "capitalize": c.Accept(); return Capitalize(s);
                    case "replace": c.Accept("old", "new", "count"); return c.Renderer.CheckSize(Replace(s, c.String(0, "old"), c.String(1, "new"), c.Integer(2, "count", -1)));
                    case "find": c.Accept("sub"); return (long)s.IndexOf(c.String(0, "sub"), StringComparison.Ordinal);
                    case "count":
                        c.Accept("sub");
                        string sub = c.String(0, "sub");
                        return sub.Length == 0 ? Py.Length(s) + 1 : (long)((s.Length - s.Replace(sub, "", StringComparison.Ordinal).Length) / sub.Length);
                    case "join":
                        c.Accept("iterable");
                        var parts = c.Renderer.Charge(Py.Items(c.Arg(0, "iterable")));
                        return c.Renderer.CheckSize(string.Join(s, parts.Select(p => p as string ?? throw new InvalidOperationException($"join: expected strings, got {Py.TypeName(p)}"))));
                }
                break;
            case Dictionary<object, object?> d:
                switch (name)
                {
                    case "items": c.Accept(); return c.Renderer.Charge(d.Count, d.Select(p => (object?)new object?[] { p.Key, p.Value }).ToList());
                    case "keys": c.Accept(); return c.Renderer.Charge(d.Count, d.Keys.Cast<object?>().ToList());
                    case "values": c.Accept(); return c.Renderer.Charge(d.Count, d.Values.ToList());
                    case "get":
                        c.Accept("key", "default");
                        var key = c.Arg(0, "key");
                        return key != null && d.TryGetValue(key, out var v) ? v : c.Arg(1, "default");
                }
                break;
            case JinjaLoop loop when name == "cycle":
                if (c.Positional.Count == 0) throw new InvalidOperationException("loop.cycle needs at least one value");
                return c.Positional[(int)(loop.Index0 % c.Positional.Count)];
        }
        throw new InvalidOperationException($"a {Py.TypeName(target)} has no method '{name}'");
    }

    /// <summary>The global functions: raise_exception(message), namespace(...), range(...), dict(...).</summary>
    public static Dictionary<string, object?> Globals() => new(StringComparer.Ordinal)
    {
        ["raise_exception"] = new JinjaFunction("raise_exception", c =>
        {
            c.Accept("message");
            throw new JinjaRaiseSignal(Py.Str(c.Arg(0, "message", "")));
        }),
        ["namespace"] = new JinjaFunction("namespace", c =>
        {
            var ns = new JinjaNamespace();
            foreach (var p in c.Positional)
            {
                if (p is not Dictionary<object, object?> init) throw new InvalidOperationException($"namespace() takes keyword arguments or a dict, got {Py.TypeName(p)}");
                foreach (var (k, v) in init) ns.Attributes[Py.Str(k)] = v;
            }
            foreach (var (k, v) in c.Named) ns.Attributes[k] = v;
            return ns;
        }),
        ["dict"] = new JinjaFunction("dict", c =>
        {
            if (c.Positional.Count > 0) throw new InvalidOperationException("dict() takes keyword arguments only");
            return c.Named.ToDictionary(p => (object)p.Key, p => p.Value);
        }),
        ["range"] = new JinjaFunction("range", c =>
        {
            c.Accept("start", "stop", "step");
            long start = 0, stop, step = 1;
            if (c.Positional.Count == 1) stop = c.Integer(0, "stop", 0);
            else
            {
                start = c.Integer(0, "start", 0);
                stop = c.Integer(1, "stop", 0);
                step = c.Integer(2, "step", 1);
            }
            if (step == 0) throw new InvalidOperationException("range() step must not be zero");
            long count = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0) : (start > stop ? (start - stop - step - 1) / -step : 0);
            c.Renderer.Charge(count);
            var list = new List<object?>((int)count);
            for (long i = 0; i < count; i++) list.Add(start + i * step);
            return list;
        }),
    };
}

/// <summary>raise_exception's message on its way to the call site, which positions it.</summary>
internal sealed class JinjaRaiseSignal(string message) : Exception(message);
