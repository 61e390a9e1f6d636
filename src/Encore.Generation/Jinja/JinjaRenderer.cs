// Evaluates a parsed template. Scoping follows Jinja2: the template has one scope for its {% set %}s;
// each iteration of a for loop runs in a fresh scope over it, so what a loop body sets is gone at the
// next iteration and after the loop (namespace() objects carry values out); if blocks open no scope.
// Every error is positioned at the node that raised it; the work, size and nesting bounds of
// JinjaLimits hold for any template and any input.
using System.Text;

namespace Encore.Generation.Jinja;

internal sealed class JinjaRenderer
{
    readonly JinjaLimits _limits;
    readonly Dictionary<string, object?> _globals;
    readonly StringBuilder _output = new();
    long _work;

    enum Flow { Normal, Break, Continue }

    sealed class Scope(Scope? parent)
    {
        public Scope? Parent { get; } = parent;
        public Dictionary<string, object?> Variables { get; } = new(StringComparer.Ordinal);
    }

    public JinjaRenderer(JinjaLimits limits, IReadOnlyDictionary<string, object?> variables)
    {
        _limits = limits;
        _globals = JinjaBuiltins.Globals();
        foreach (var (k, v) in variables) _globals[k] = JinjaValues.From(v);
    }

    public string Render(List<JinjaNode> body)
    {
        var top = new Scope(null);
        var flow = Execute(body, top);
        if (flow != Flow.Normal) throw new JinjaException($"'{{% {(flow == Flow.Break ? "break" : "continue")} %}}' outside a loop", 1, 1);
        return _output.ToString();
    }

    // ---- bounds ----

    /// <summary>Spends <paramref name="units"/> of the render's work budget.</summary>
    public void Charge(long units)
    {
        _work += Math.Max(0, units);
        if (_work > _limits.MaxWork)
            throw new InvalidOperationException($"the template does more than {_limits.MaxWork} steps of work (loop iterations and items processed); is it looping without end?");
    }

    public T Charge<T>(long units, T value)
    {
        Charge(units);
        return value;
    }

    public IReadOnlyList<object?> Charge(IReadOnlyList<object?> items)
    {
        Charge(items.Count);
        return items;
    }

    /// <summary>Checks a string built while rendering against the output limit and charges its length.</summary>
    public string CheckSize(string s)
    {
        if (s.Length > _limits.MaxOutputChars)
            throw new InvalidOperationException($"a string of {s.Length} characters exceeds the {_limits.MaxOutputChars}-character limit");
        Charge(s.Length / 256);
        return s;
    }

    void Write(string s, JinjaNode at)
    {
        if (_output.Length + (long)s.Length > _limits.MaxOutputChars)
            throw new JinjaException($"the output exceeds the {_limits.MaxOutputChars}-character limit", at.Line, at.Column);
        _output.Append(s);
    }

    // ---- statements ----

    Flow Execute(List<JinjaNode> body, Scope scope)
    {
        foreach (var node in body)
        {
            var flow = Execute(node, scope);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    Flow Execute(JinjaNode node, Scope scope)
    {
        switch (node)
        {
            case TextNode t:
                Write(t.Text, t);
                return Flow.Normal;
            case OutputNode o:
                var value = Eval(o.Expr, scope);
                Write(Positioned(o.Expr, () => CheckSize(Py.Str(value))), o);
                return Flow.Normal;
            case IfNode i:
                foreach (var (test, branch) in i.Branches)
                    if (Py.Truthy(Eval(test, scope))) return Execute(branch, scope);
                return i.Else is null ? Flow.Normal : Execute(i.Else, scope);
            case ForNode f:
                return ExecuteFor(f, scope);
            case SetNode s:
                ExecuteSet(s, scope);
                return Flow.Normal;
            case LoopControlNode l:
                return l.IsBreak ? Flow.Break : Flow.Continue;
            default:
                throw new JinjaException($"unexpected {node.GetType().Name}", node.Line, node.Column);
        }
    }

    Flow ExecuteFor(ForNode f, Scope scope)
    {
        var source = Eval(f.Iterable, scope);
        var items = Positioned(f.Iterable, () => Py.Items(source));
        if (f.Filter != null)
        {
            var kept = new List<object?>();
            foreach (var item in items)
            {
                Positioned(f, () => Charge(1));
                var probe = new Scope(scope);
                Bind(f, probe, item);
                if (Py.Truthy(Eval(f.Filter, probe))) kept.Add(item);
            }
            items = kept;
        }
        if (items.Count == 0) return f.Else is null ? Flow.Normal : Execute(f.Else, scope);
        var loop = new JinjaLoop { Length = items.Count };
        for (int i = 0; i < items.Count; i++)
        {
            Positioned(f, () => Charge(1));
            loop.Index0 = i;
            loop.Previous = i > 0 ? items[i - 1] : new JinjaUndefined("there is no previous item");
            loop.NextItem = i + 1 < items.Count ? items[i + 1] : new JinjaUndefined("there is no next item");
            var iteration = new Scope(scope);
            iteration.Variables["loop"] = loop;
            Bind(f, iteration, items[i]);
            if (Execute(f.Body, iteration) == Flow.Break) break;
        }
        return Flow.Normal;
    }

    void Bind(ForNode f, Scope scope, object? item)
    {
        if (f.Targets.Length == 1)
        {
            scope.Variables[f.Targets[0]] = item;
            return;
        }
        var parts = Positioned(f, () => Py.Items(item));
        if (parts.Count != f.Targets.Length)
            throw new JinjaException($"cannot unpack {parts.Count} values into {f.Targets.Length} loop variables", f.Line, f.Column);
        for (int k = 0; k < parts.Count; k++) scope.Variables[f.Targets[k]] = parts[k];
    }

    void ExecuteSet(SetNode s, Scope scope)
    {
        if (s.Body != null)
        {
            // {% set x %}...{% endset %}: the block's output, captured.
            int mark = _output.Length;
            Execute(s.Body, scope);
            scope.Variables[s.Targets[0]] = _output.ToString(mark, _output.Length - mark);
            _output.Length = mark;
            return;
        }
        var value = Eval(s.Value!, scope);
        if (s.Attribute != null)
        {
            var target = Lookup(s.Targets[0], scope);
            if (target is not JinjaNamespace ns)
                throw new JinjaException($"cannot set attribute '{s.Attribute}' of '{s.Targets[0]}', a {Py.TypeName(target)} (only namespace() objects can be assigned to)", s.Line, s.Column);
            ns.Attributes[s.Attribute] = value;
            return;
        }
        if (s.Targets.Length == 1)
        {
            scope.Variables[s.Targets[0]] = value;
            return;
        }
        var parts = Positioned(s, () => Py.Items(value));
        if (parts.Count != s.Targets.Length)
            throw new JinjaException($"cannot unpack {parts.Count} values into {s.Targets.Length} variables", s.Line, s.Column);
        for (int k = 0; k < parts.Count; k++) scope.Variables[s.Targets[k]] = parts[k];
    }

    object? Lookup(string name, Scope scope)
    {
        for (var s = scope; s != null; s = s.Parent)
            if (s.Variables.TryGetValue(name, out var v)) return v;
        return _globals.TryGetValue(name, out var g) ? g : new JinjaUndefined($"'{name}' is undefined");
    }

    // ---- expressions ----

    static T Positioned<T>(JinjaNode at, Func<T> f)
    {
        try
        {
            return f();
        }
        catch (InvalidOperationException e)
        {
            throw new JinjaException(e.Message, at.Line, at.Column, e);
        }
        catch (OverflowException e)
        {
            throw new JinjaException("integer overflow", at.Line, at.Column, e);
        }
    }

    static void Positioned(JinjaNode at, Action f) => Positioned(at, () => { f(); return 0; });

    object? Eval(JinjaExpr e, Scope scope)
    {
        switch (e)
        {
            case ConstExpr c: return c.Value;
            case NameExpr n: return Lookup(n.Name, scope);
            case AttrExpr a:
                var target = Eval(a.Target, scope);
                return Positioned(a, () => GetAttribute(target, a.Name));
            case ItemExpr i:
                var container = Eval(i.Target, scope);
                var key = Eval(i.Key, scope);
                return Positioned(i, () => GetItem(container, key));
            case SliceExpr s: return EvalSlice(s, scope);
            case CallExpr c: return EvalCall(c, scope);
            case FilterExpr f:
                var filtered = Eval(f.Target, scope);
                var fcall = Arguments(f.Args, scope, $"filter '{f.Name}'");
                return Positioned(f, () => JinjaBuiltins.Filter(f.Name, fcall, filtered));
            case TestExpr t:
                var tested = Eval(t.Target, scope);
                var tcall = Arguments(t.Args, scope, $"test '{t.Name}'");
                return Positioned(t, () => JinjaBuiltins.Test(t.Name, tcall, tested)) != t.Negated;
            case UnaryExpr u:
                var operand = Eval(u.Operand, scope);
                return u.Op switch
                {
                    "not" => !Py.Truthy(operand),
                    "-" => Positioned(u, () => operand switch
                    {
                        long l => (object)checked(-l),
                        double d => -d,
                        bool b => b ? -1L : 0L,
                        _ => throw Undefined(operand) ?? new InvalidOperationException($"cannot negate a {Py.TypeName(operand)}"),
                    }),
                    _ => Positioned(u, () => Py.IsNumber(operand) ? (operand is bool b ? (b ? 1L : 0L) : operand)
                        : throw Undefined(operand) ?? new InvalidOperationException($"unary '+' cannot take a {Py.TypeName(operand)}")),
                };
            case BinaryExpr b when b.Op == "and":
                var left = Eval(b.Left, scope);
                return Py.Truthy(left) ? Eval(b.Right, scope) : left;
            case BinaryExpr b when b.Op == "or":
                var first = Eval(b.Left, scope);
                return Py.Truthy(first) ? first : Eval(b.Right, scope);
            case BinaryExpr b:
                var l = Eval(b.Left, scope);
                var r = Eval(b.Right, scope);
                return Positioned(b, () => Arithmetic(b.Op, l, r));
            case ConcatExpr c:
                var sb = new StringBuilder();
                foreach (var part in c.Parts)
                {
                    sb.Append(Py.Str(Eval(part, scope)));
                    if (sb.Length > _limits.MaxOutputChars)
                        throw new JinjaException($"a string of {sb.Length} characters exceeds the {_limits.MaxOutputChars}-character limit", c.Line, c.Column);
                }
                return Positioned(c, () => CheckSize(sb.ToString()));
            case CompareExpr c:
                var current = Eval(c.First, scope);
                foreach (var (op, operandExpr) in c.Rest)
                {
                    var next = Eval(operandExpr, scope);
                    var a = current;
                    if (!Positioned(c, () => CompareOp(op, a, next))) return false;
                    current = next;
                }
                return true;
            case CondExpr c:
                return Py.Truthy(Eval(c.Test, scope)) ? Eval(c.Then, scope)
                    : c.Else is null ? new JinjaUndefined("the condition is false and there is no else") : Eval(c.Else, scope);
            case ListExpr list:
                var items = new List<object?>(list.Items.Count);
                foreach (var item in list.Items) items.Add(Eval(item, scope));
                return list.IsTuple ? items.ToArray() : items;
            case DictExpr d:
                var dict = new Dictionary<object, object?>();
                foreach (var (k, v) in d.Items)
                {
                    var dk = Eval(k, scope);
                    if (dk is null or JinjaUndefined or List<object?> or Dictionary<object, object?>)
                        throw new JinjaException($"a {Py.TypeName(dk)} cannot be a dict key", k.Line, k.Column);
                    dict[dk] = Eval(v, scope);
                }
                return dict;
            default:
                throw new JinjaException($"unexpected {e.GetType().Name}", e.Line, e.Column);
        }
    }

    static InvalidOperationException? Undefined(object? v) => v is JinjaUndefined u ? new InvalidOperationException(u.Description) : null;

    JinjaCall Arguments(JinjaArgs args, Scope scope, string what)
    {
        var positional = new List<object?>(args.Positional.Count);
        foreach (var p in args.Positional) positional.Add(Eval(p, scope));
        var named = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in args.Named)
        {
            if (named.ContainsKey(name)) throw new JinjaException($"{what}: argument '{name}' is given twice", value.Line, value.Column);
            named[name] = Eval(value, scope);
        }
        return new JinjaCall(this, what, positional, named);
    }

    object? EvalCall(CallExpr c, Scope scope)
    {
        if (c.Callee is AttrExpr method)
        {
            var target = Eval(method.Target, scope);
            var mcall = Arguments(c.Args, scope, $"{method.Name}()");
            // A namespace or dict attribute holding a function is called like any function.
            if (target is JinjaNamespace ns && ns.Attributes.TryGetValue(method.Name, out var attr)) return Invoke(c, attr, mcall);
            if (target is JinjaUndefined u) throw new JinjaException(u.Description, method.Line, method.Column);
            return Positioned(c, () => JinjaBuiltins.CallMethod(mcall, target, method.Name));
        }
        var callee = Eval(c.Callee, scope);
        var call = Arguments(c.Args, scope, c.Callee is NameExpr n ? $"{n.Name}()" : "the call");
        return Invoke(c, callee, call);
    }

    static object? Invoke(CallExpr c, object? callee, JinjaCall call)
    {
        if (callee is not JinjaFunction f)
            throw new JinjaException(callee is JinjaUndefined u ? u.Description : $"a {Py.TypeName(callee)} cannot be called", c.Line, c.Column);
        try
        {
            return Positioned(c, () => f.Invoke(call));
        }
        catch (JinjaRaiseSignal raised)
        {
            throw new JinjaRaisedException(raised.Message, c.Line, c.Column);
        }
    }

    /// <summary>obj.name as Jinja reads it: a dict's item, a namespace's or loop's attribute; undefined when missing.</summary>
    public object? GetAttribute(object? target, object? name)
    {
        switch (target)
        {
            case JinjaUndefined u: throw new InvalidOperationException(u.Description);
            case Dictionary<object, object?> d:
                return name != null && d.TryGetValue(name, out var v) ? v : new JinjaUndefined($"the dict has no attribute '{Py.Str(name)}'");
            case JinjaNamespace ns:
                return name is string s && ns.Attributes.TryGetValue(s, out var a) ? a : new JinjaUndefined($"the namespace has no attribute '{Py.Str(name)}'");
            case JinjaLoop loop:
                return name switch
                {
                    "index0" => loop.Index0,
                    "index" => loop.Index0 + 1,
                    "revindex" => loop.Length - loop.Index0,
                    "revindex0" => loop.Length - loop.Index0 - 1,
                    "first" => loop.Index0 == 0,
                    "last" => loop.Index0 == loop.Length - 1,
                    "length" => loop.Length,
                    "previtem" => loop.Previous,
                    "nextitem" => loop.NextItem,
                    "depth" => 1L,
                    "depth0" => 0L,
                    _ => new JinjaUndefined($"the loop has no attribute '{Py.Str(name)}'"),
                };
            default:
                // list[0] through an integer attribute ("x.0"), as Jinja allows.
                if (name is long) return GetItem(target, name);
                return new JinjaUndefined($"a {Py.TypeName(target)} has no attribute '{Py.Str(name)}'");
        }
    }

    /// <summary>obj[key]: a dict item, or a list, tuple or string index (negative from the end); undefined when missing.</summary>
    public object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case JinjaUndefined u: throw new InvalidOperationException(u.Description);
            case Dictionary<object, object?> d:
                return key != null && d.TryGetValue(key, out var v) ? v : new JinjaUndefined($"the dict has no item {Py.Repr(key)}");
            case JinjaNamespace or JinjaLoop:
                return GetAttribute(target, key);
            case List<object?> or object?[] or string:
                if (key is not (long or bool))
                    return key is string s ? GetAttribute(target, s) : throw new InvalidOperationException($"a {Py.TypeName(target)} index must be an integer, got {Py.TypeName(key)}");
                var items = target is string str ? Py.Chars(str) : (IReadOnlyList<object?>)target;
                long i = Py.ToLong(key);
                if (i < 0) i += items.Count;
                return i >= 0 && i < items.Count ? items[(int)i] : new JinjaUndefined($"index {Py.ToLong(key)} is out of range");
            default:
                throw new InvalidOperationException($"a {Py.TypeName(target)} cannot be indexed");
        }
    }

    object? EvalSlice(SliceExpr s, Scope scope)
    {
        var target = Eval(s.Target, scope);
        long? Bound(JinjaExpr? e)
        {
            if (e is null) return null;
            var v = Eval(e, scope);
            return v is null ? null : Positioned(e, () => Py.ToLong(v));
        }
        long? start = Bound(s.Start), stop = Bound(s.Stop), step = Bound(s.Step);
        return Positioned<object?>(s, () =>
        {
            bool isString = target is string;
            var items = target switch
            {
                string str => Py.Chars(str),
                List<object?> or object?[] => (IReadOnlyList<object?>)target,
                _ => throw Undefined(target) ?? new InvalidOperationException($"a {Py.TypeName(target)} cannot be sliced"),
            };
            long n = items.Count, st = step ?? 1;
            if (st == 0) throw new InvalidOperationException("slice step cannot be zero");
            // Python's slice.indices.
            long Clamp(long? v, long fallback, long lo, long hi)
            {
                if (v is not { } x) return fallback;
                if (x < 0) x += n;
                return Math.Clamp(x, lo, hi);
            }
            long a = st > 0 ? Clamp(start, 0, 0, n) : Clamp(start, n - 1, -1, n - 1);
            long b = st > 0 ? Clamp(stop, n, 0, n) : Clamp(stop, -1, -1, n - 1);
            var result = new List<object?>();
            for (long i = a; st > 0 ? i < b : i > b; i += st) result.Add(items[(int)i]);
            Charge(result.Count);
            if (isString) return string.Concat(result.Cast<string>());
            return target is object?[] ? result.ToArray() : result;
        });
    }

    bool CompareOp(string op, object? a, object? b)
    {
        if (a is string sa && b is string sb && (sa.Length > 256 || sb.Length > 256)) Charge(Math.Max(sa.Length, sb.Length) / 256);
        return op switch
        {
            "==" => Py.Equals(a, b),
            "!=" => !Py.Equals(a, b),
            "<" => Py.Compare(a, b, op) < 0,
            ">" => Py.Compare(a, b, op) > 0,
            "<=" => Py.Compare(a, b, op) <= 0,
            ">=" => Py.Compare(a, b, op) >= 0,
            "in" => Py.Contains(b, a),
            "notin" => !Py.Contains(b, a),
            _ => throw new InvalidOperationException($"unknown comparison '{op}'"),
        };
    }

    object? Arithmetic(string op, object? a, object? b)
    {
        if (Undefined(a) is { } ua) throw ua;
        if (Undefined(b) is { } ub) throw ub;
        if (Py.IsNumber(a) && Py.IsNumber(b))
        {
            bool floats = a is double || b is double;
            if (op == "/")
            {
                double d = Py.ToDouble(b);
                if (d == 0) throw new InvalidOperationException("division by zero");
                return Py.ToDouble(a) / d;
            }
            if (floats)
            {
                double x = Py.ToDouble(a), y = Py.ToDouble(b);
                return op switch
                {
                    "+" => x + y,
                    "-" => x - y,
                    "*" => x * y,
                    "//" => y == 0 ? throw new InvalidOperationException("division by zero") : Math.Floor(x / y),
                    "%" => y == 0 ? throw new InvalidOperationException("modulo by zero") : x - y * Math.Floor(x / y),
                    "**" => Math.Pow(x, y),
                    _ => throw new InvalidOperationException($"unknown operator '{op}'"),
                };
            }
            long i = Py.ToLong(a), j = Py.ToLong(b);
            switch (op)
            {
                case "+": return checked(i + j);
                case "-": return checked(i - j);
                case "*": return checked(i * j);
                case "//":
                    if (j == 0) throw new InvalidOperationException("division by zero");
                    return FloorDiv(i, j);
                case "%":
                    if (j == 0) throw new InvalidOperationException("modulo by zero");
                    return i - j * FloorDiv(i, j);
                case "**":
                    if (j < 0) return Math.Pow(i, j);
                    if (i is 0 or 1) return j == 0 ? 1L : i;
                    if (i == -1) return j % 2 == 0 ? 1L : -1L;
                    // |i| >= 2 overflows within 63 steps.
                    long result = 1;
                    for (long k = 0; k < j; k++) result = checked(result * i);
                    return result;
            }
        }
        switch (op)
        {
            case "+" when a is string s && b is string t: return CheckSize(string.Concat(s, t));
            case "+" when a is List<object?> x && b is List<object?> y: return Charge(x.Count + y.Count, x.Concat(y).ToList());
            case "+" when a is object?[] x && b is object?[] y: return Charge(x.Length + y.Length, x.Concat(y).ToArray());
            case "*" when (a is string or List<object?>) && b is long or bool:
                return Repeat(a, Py.ToLong(b));
            case "*" when (b is string or List<object?>) && a is long or bool:
                return Repeat(b, Py.ToLong(a));
        }
        if (op == "+" && (a is string || b is string))
            throw new InvalidOperationException($"cannot add a {Py.TypeName(a)} and a {Py.TypeName(b)} with '+' (use '~' to join as text)");
        throw new InvalidOperationException($"'{op}' is not supported between a {Py.TypeName(a)} and a {Py.TypeName(b)}");
    }

    object? Repeat(object? value, long times)
    {
        if (times <= 0) return value is string ? "" : new List<object?>();
        if (value is string s)
        {
            if ((long)s.Length * times > _limits.MaxOutputChars)
                throw new InvalidOperationException($"a string of {(long)s.Length * times} characters exceeds the {_limits.MaxOutputChars}-character limit");
            return CheckSize(new StringBuilder(s.Length * (int)times).Insert(0, s, (int)times).ToString());
        }
        var list = (List<object?>)value!;
        if (list.Count == 0) return new List<object?>();
        Charge(list.Count * Math.Min(times, _limits.MaxWork + 1));
        var result = new List<object?>();
        for (long k = 0; k < times; k++) result.AddRange(list);
        return result;
    }

    static long FloorDiv(long a, long b)
    {
        long q = a / b;
        if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
        return q;
    }
}
