// Tokens to a syntax tree by recursive descent, with jinja2/parser.py's precedence (lowest first):
// "x if c else y", or, and, not, comparisons and in / not in, + -, ~, * / // %, **, unary - +,
// then primaries with their postfixes (.attr, [key], [a:b:c], calls), filters (|name) and tests
// (is name), which bind tighter than any binary operator: "a + b | trim" trims b alone.
namespace Encore.Generation.Jinja;

internal sealed class JinjaParser(List<JinjaToken> tokens, int maxNesting)
{
    int _pos;
    int _depth;

    JinjaToken Current => tokens[_pos];
    JinjaToken Peek(int ahead = 1) => tokens[Math.Min(_pos + ahead, tokens.Count - 1)];
    JinjaToken Next() => tokens[_pos < tokens.Count - 1 ? _pos++ : _pos];

    static JinjaException Error(JinjaToken at, string message) => new(message, at.Line, at.Column);

    JinjaToken Expect(JinjaTokenKind kind, string? value, string what)
    {
        var t = Current;
        if (t.Kind != kind || (value != null && t.Value != value)) throw Error(t, $"expected {what}, found {t.Describe()}");
        return Next();
    }

    void ExpectOp(string op) => Expect(JinjaTokenKind.Operator, op, $"'{op}'");

    void ExpectBlockEnd(string tag) => Expect(JinjaTokenKind.BlockEnd, null, $"'%}}' to end the '{tag}' tag");

    public List<JinjaNode> ParseTemplate()
    {
        var body = ParseBody([], null);
        if (Current.Kind != JinjaTokenKind.Eof) throw Error(Current, $"unexpected {Current.Describe()}");
        return body;
    }

    // Statements until a block tag named in ends (left current: the tag's name) or the end of the template.
    List<JinjaNode> ParseBody(string[] ends, JinjaToken? opener)
    {
        var body = new List<JinjaNode>();
        while (true)
        {
            var t = Current;
            switch (t.Kind)
            {
                case JinjaTokenKind.Eof:
                    if (opener is { } o) throw Error(o, $"the '{o.Value}' block opened here is never closed (expected {string.Join(" or ", ends.Select(e => $"'{{% {e} %}}'"))})");
                    return body;
                case JinjaTokenKind.Data:
                    Next();
                    body.Add(new TextNode(t.Value, t.Line, t.Column));
                    break;
                case JinjaTokenKind.VarBegin:
                    Next();
                    var expr = ParseTuple(true);
                    Expect(JinjaTokenKind.VarEnd, null, "'}}'");
                    body.Add(new OutputNode(expr));
                    break;
                case JinjaTokenKind.BlockBegin:
                    var name = Peek();
                    if (name.Kind == JinjaTokenKind.Name && ends.Contains(name.Value))
                    {
                        Next();
                        return body;
                    }
                    if (opener is { } open && name.Kind == JinjaTokenKind.Name && name.Value is "elif" or "else" or "endif" or "endfor" or "endset")
                        throw Error(name, $"unexpected '{name.Value}': the '{open.Value}' block opened at line {open.Line}, column {open.Column} is not closed (expected {string.Join(" or ", ends.Select(e => $"'{e}'"))})");
                    Next();
                    body.Add(ParseStatement());
                    break;
                default:
                    throw Error(t, $"unexpected {t.Describe()}");
            }
        }
    }

    JinjaNode ParseStatement()
    {
        var tag = Current;
        if (tag.Kind != JinjaTokenKind.Name) throw Error(tag, $"expected a tag name after '{{%', found {tag.Describe()}");
        if (++_depth > maxNesting) throw Error(tag, $"blocks are nested more than {maxNesting} deep");
        try
        {
            Next();
            switch (tag.Value)
            {
                case "if": return ParseIf(tag);
                case "for": return ParseFor(tag);
                case "set": return ParseSet(tag);
                case "break":
                case "continue":
                    ExpectBlockEnd(tag.Value);
                    return new LoopControlNode(tag.Value == "break", tag.Line, tag.Column);
                case "elif" or "else" or "endif" or "endfor" or "endset":
                    throw Error(tag, $"'{tag.Value}' without a block to close");
                default:
                    throw Error(tag, $"unknown tag '{tag.Value}' (supported: if, elif, else, endif, for, endfor, set, endset, break, continue, raw)");
            }
        }
        finally
        {
            _depth--;
        }
    }

    IfNode ParseIf(JinjaToken tag)
    {
        var branches = new List<(JinjaExpr, List<JinjaNode>)>();
        List<JinjaNode>? otherwise = null;
        var test = ParseTuple(true);
        ExpectBlockEnd("if");
        while (true)
        {
            var body = ParseBody(["elif", "else", "endif"], tag);
            branches.Add((test, body));
            var end = Next();
            if (end.Value == "elif")
            {
                test = ParseTuple(true);
                ExpectBlockEnd("elif");
                continue;
            }
            if (end.Value == "else")
            {
                ExpectBlockEnd("else");
                otherwise = ParseBody(["endif"], tag);
                Next();
            }
            ExpectBlockEnd("endif");
            return new IfNode(branches, otherwise, tag.Line, tag.Column);
        }
    }

    ForNode ParseFor(JinjaToken tag)
    {
        var targets = new List<string> { Expect(JinjaTokenKind.Name, null, "a loop variable name").Value };
        while (Current.IsOp(","))
        {
            Next();
            targets.Add(Expect(JinjaTokenKind.Name, null, "a loop variable name").Value);
        }
        Expect(JinjaTokenKind.Name, "in", "'in'");
        // No "x if c else y" here: a trailing "if" is the loop filter.
        var iterable = ParseTuple(false);
        JinjaExpr? filter = null;
        if (Current.IsName("if"))
        {
            Next();
            filter = ParseExpression(true);
        }
        if (Current.IsName("recursive")) throw Error(Current, "recursive loops are not supported");
        ExpectBlockEnd("for");
        var body = ParseBody(["else", "endfor"], tag);
        List<JinjaNode>? otherwise = null;
        if (Next().Value == "else")
        {
            ExpectBlockEnd("else");
            otherwise = ParseBody(["endfor"], tag);
            Next();
        }
        ExpectBlockEnd("endfor");
        return new ForNode([.. targets], iterable, filter, body, otherwise, tag.Line, tag.Column);
    }

    SetNode ParseSet(JinjaToken tag)
    {
        var first = Expect(JinjaTokenKind.Name, null, "a variable name");
        if (Current.IsOp("."))
        {
            Next();
            var attr = Expect(JinjaTokenKind.Name, null, "an attribute name").Value;
            ExpectOp("=");
            var value = ParseTuple(true);
            ExpectBlockEnd("set");
            return new SetNode([first.Value], attr, value, null, tag.Line, tag.Column);
        }
        var targets = new List<string> { first.Value };
        while (Current.IsOp(","))
        {
            Next();
            targets.Add(Expect(JinjaTokenKind.Name, null, "a variable name").Value);
        }
        if (Current.Kind == JinjaTokenKind.BlockEnd && targets.Count == 1)
        {
            Next();
            var body = ParseBody(["endset"], tag);
            Next();
            ExpectBlockEnd("endset");
            return new SetNode([first.Value], null, null, body, tag.Line, tag.Column);
        }
        ExpectOp("=");
        var v = ParseTuple(true);
        ExpectBlockEnd("set");
        return new SetNode([.. targets], null, v, null, tag.Line, tag.Column);
    }

    // ---- expressions ----

    T Make<T>(T node, params JinjaExpr?[] children) where T : JinjaExpr
    {
        int h = 0;
        foreach (var c in children) if (c != null) h = Math.Max(h, c.Height);
        node.Height = h + 1;
        if (node.Height > maxNesting) throw Error(Current, $"the expression is nested more than {maxNesting} deep");
        return node;
    }

    void Enter()
    {
        if (++_depth > maxNesting) throw Error(Current, $"the expression is nested more than {maxNesting} deep");
    }

    bool IsTupleEnd() => Current.Kind is JinjaTokenKind.VarEnd or JinjaTokenKind.BlockEnd or JinjaTokenKind.Eof || Current.IsOp(")") || Current.IsName("if") || Current.IsOp("=");

    // An expression, or a tuple of several separated by commas ("a, b").
    JinjaExpr ParseTuple(bool withCondExpr)
    {
        var start = Current;
        var first = ParseExpression(withCondExpr);
        if (!Current.IsOp(",")) return first;
        var items = new List<JinjaExpr> { first };
        while (Current.IsOp(","))
        {
            Next();
            if (IsTupleEnd()) break;
            items.Add(ParseExpression(withCondExpr));
        }
        return Make(new ListExpr(items, true, start.Line, start.Column), [.. items]);
    }

    JinjaExpr ParseExpression(bool withCondExpr)
    {
        Enter();
        try
        {
            return withCondExpr ? ParseCondExpr() : ParseOr();
        }
        finally
        {
            _depth--;
        }
    }

    JinjaExpr ParseCondExpr()
    {
        var expr = ParseOr();
        while (Current.IsName("if"))
        {
            var at = Next();
            var test = ParseOr();
            JinjaExpr? otherwise = null;
            if (Current.IsName("else"))
            {
                Next();
                otherwise = ParseExpression(true);
            }
            expr = Make(new CondExpr(test, expr, otherwise, at.Line, at.Column), test, expr, otherwise);
        }
        return expr;
    }

    JinjaExpr ParseOr()
    {
        var left = ParseAnd();
        while (Current.IsName("or"))
        {
            var at = Next();
            var right = ParseAnd();
            left = Make(new BinaryExpr("or", left, right, at.Line, at.Column), left, right);
        }
        return left;
    }

    JinjaExpr ParseAnd()
    {
        var left = ParseNot();
        while (Current.IsName("and"))
        {
            var at = Next();
            var right = ParseNot();
            left = Make(new BinaryExpr("and", left, right, at.Line, at.Column), left, right);
        }
        return left;
    }

    JinjaExpr ParseNot()
    {
        if (!Current.IsName("not")) return ParseCompare();
        var at = Next();
        Enter();
        try
        {
            var operand = ParseNot();
            return Make(new UnaryExpr("not", operand, at.Line, at.Column), operand);
        }
        finally
        {
            _depth--;
        }
    }

    JinjaExpr ParseCompare()
    {
        var first = ParseMath1();
        var rest = new List<(string, JinjaExpr)>();
        var at = Current;
        while (true)
        {
            string op;
            if (Current.Kind == JinjaTokenKind.Operator && Current.Value is "==" or "!=" or "<" or ">" or "<=" or ">=") op = Next().Value;
            else if (Current.IsName("in")) { Next(); op = "in"; }
            else if (Current.IsName("not") && Peek().IsName("in")) { Next(); Next(); op = "notin"; }
            else break;
            rest.Add((op, ParseMath1()));
        }
        if (rest.Count == 0) return first;
        return Make(new CompareExpr(first, rest, at.Line, at.Column), [first, .. rest.Select(r => r.Item2)]);
    }

    JinjaExpr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.Kind == JinjaTokenKind.Operator && Current.Value is "+" or "-")
        {
            var at = Next();
            var right = ParseConcat();
            left = Make(new BinaryExpr(at.Value, left, right, at.Line, at.Column), left, right);
        }
        return left;
    }

    JinjaExpr ParseConcat()
    {
        var first = ParseMath2();
        if (!Current.IsOp("~")) return first;
        var at = Current;
        var parts = new List<JinjaExpr> { first };
        while (Current.IsOp("~"))
        {
            Next();
            parts.Add(ParseMath2());
        }
        return Make(new ConcatExpr(parts, at.Line, at.Column), [.. parts]);
    }

    JinjaExpr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Kind == JinjaTokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var at = Next();
            var right = ParsePow();
            left = Make(new BinaryExpr(at.Value, left, right, at.Line, at.Column), left, right);
        }
        return left;
    }

    JinjaExpr ParsePow()
    {
        var left = ParseUnary(true);
        while (Current.IsOp("**"))
        {
            var at = Next();
            var right = ParseUnary(true);
            left = Make(new BinaryExpr("**", left, right, at.Line, at.Column), left, right);
        }
        return left;
    }

    JinjaExpr ParseUnary(bool withFilter)
    {
        JinjaExpr node;
        if (Current.Kind == JinjaTokenKind.Operator && Current.Value is "-" or "+")
        {
            var at = Next();
            Enter();
            try
            {
                var operand = ParseUnary(false);
                node = Make(new UnaryExpr(at.Value, operand, at.Line, at.Column), operand);
            }
            finally
            {
                _depth--;
            }
        }
        else node = ParsePrimary();
        node = ParsePostfix(node);
        return withFilter ? ParseFilters(node) : node;
    }

    JinjaExpr ParsePrimary()
    {
        var t = Current;
        switch (t.Kind)
        {
            case JinjaTokenKind.Name:
                Next();
                return t.Value switch
                {
                    "true" or "True" => new ConstExpr(true, t.Line, t.Column),
                    "false" or "False" => new ConstExpr(false, t.Line, t.Column),
                    "none" or "None" => new ConstExpr(null, t.Line, t.Column),
                    _ => new NameExpr(t.Value, t.Line, t.Column),
                };
            case JinjaTokenKind.String:
                // Adjacent literals concatenate, as in Python.
                var s = new System.Text.StringBuilder();
                while (Current.Kind == JinjaTokenKind.String) s.Append((string)Next().Literal!);
                return new ConstExpr(s.ToString(), t.Line, t.Column);
            case JinjaTokenKind.Integer:
            case JinjaTokenKind.Float:
                Next();
                return new ConstExpr(t.Literal, t.Line, t.Column);
            case JinjaTokenKind.Operator when t.Value == "(":
                Next();
                if (Current.IsOp(")"))
                {
                    Next();
                    return new ListExpr([], true, t.Line, t.Column);
                }
                var inner = ParseTuple(true);
                ExpectOp(")");
                return inner;
            case JinjaTokenKind.Operator when t.Value == "[":
                Next();
                var items = new List<JinjaExpr>();
                while (!Current.IsOp("]"))
                {
                    if (items.Count > 0)
                    {
                        ExpectOp(",");
                        if (Current.IsOp("]")) break;
                    }
                    items.Add(ParseExpression(true));
                }
                ExpectOp("]");
                return Make(new ListExpr(items, false, t.Line, t.Column), [.. items]);
            case JinjaTokenKind.Operator when t.Value == "{":
                Next();
                var pairs = new List<(JinjaExpr, JinjaExpr)>();
                while (!Current.IsOp("}"))
                {
                    if (pairs.Count > 0)
                    {
                        ExpectOp(",");
                        if (Current.IsOp("}")) break;
                    }
                    var key = ParseExpression(true);
                    ExpectOp(":");
                    pairs.Add((key, ParseExpression(true)));
                }
                ExpectOp("}");
                return Make(new DictExpr(pairs, t.Line, t.Column), [.. pairs.SelectMany(p => new[] { p.Item1, p.Item2 })]);
            default:
                throw Error(t, $"expected an expression, found {t.Describe()}");
        }
    }

    JinjaExpr ParsePostfix(JinjaExpr node)
    {
        while (true)
        {
            var t = Current;
            if (t.IsOp("."))
            {
                Next();
                var name = Current;
                if (name.Kind == JinjaTokenKind.Name) node = Make(new AttrExpr(node, Next().Value, t.Line, t.Column), node);
                else if (name.Kind == JinjaTokenKind.Integer) node = Make(new ItemExpr(node, new ConstExpr(Next().Literal, name.Line, name.Column), t.Line, t.Column), node);
                else throw Error(name, $"expected an attribute name after '.', found {name.Describe()}");
            }
            else if (t.IsOp("["))
            {
                Next();
                node = ParseSubscript(node, t);
            }
            else if (t.IsOp("("))
            {
                var args = ParseCallArgs();
                node = Make(new CallExpr(node, args, node.Line, node.Column), [node, .. args.All]);
            }
            else return node;
        }
    }

    JinjaExpr ParseSubscript(JinjaExpr target, JinjaToken at)
    {
        JinjaExpr? start = null, stop = null, step = null;
        if (!Current.IsOp(":")) start = ParseExpression(true);
        if (!Current.IsOp(":"))
        {
            ExpectOp("]");
            return Make(new ItemExpr(target, start!, at.Line, at.Column), target, start);
        }
        Next();
        if (!Current.IsOp("]") && !Current.IsOp(":")) stop = ParseExpression(true);
        if (Current.IsOp(":"))
        {
            Next();
            if (!Current.IsOp("]")) step = ParseExpression(true);
        }
        ExpectOp("]");
        return Make(new SliceExpr(target, start, stop, step, at.Line, at.Column), target, start, stop, step);
    }

    JinjaArgs ParseCallArgs()
    {
        ExpectOp("(");
        var positional = new List<JinjaExpr>();
        var named = new List<(string, JinjaExpr)>();
        while (!Current.IsOp(")"))
        {
            if (positional.Count + named.Count > 0)
            {
                ExpectOp(",");
                if (Current.IsOp(")")) break;
            }
            if (Current.Kind == JinjaTokenKind.Name && Peek().IsOp("="))
            {
                string name = Next().Value;
                Next();
                named.Add((name, ParseExpression(true)));
            }
            else
            {
                if (named.Count > 0) throw Error(Current, "a positional argument follows a keyword argument");
                positional.Add(ParseExpression(true));
            }
        }
        ExpectOp(")");
        return new JinjaArgs(positional, named);
    }

    string ParseDottedName(string what)
    {
        var name = Expect(JinjaTokenKind.Name, null, what).Value;
        while (Current.IsOp(".") && Peek().Kind == JinjaTokenKind.Name)
        {
            Next();
            name += "." + Next().Value;
        }
        return name;
    }

    JinjaExpr ParseFilters(JinjaExpr node)
    {
        while (true)
        {
            var t = Current;
            if (t.IsOp("|"))
            {
                Next();
                var nameToken = Current;
                string name = ParseDottedName("a filter name after '|'");
                if (!JinjaBuiltins.IsFilter(name))
                    throw Error(nameToken, $"unknown filter '{name}' (supported: {string.Join(", ", JinjaBuiltins.FilterNames)})");
                var args = Current.IsOp("(") ? ParseCallArgs() : JinjaArgs.None;
                node = Make(new FilterExpr(node, name, args, nameToken.Line, nameToken.Column), [node, .. args.All]);
            }
            else if (t.IsName("is"))
            {
                Next();
                bool negated = false;
                if (Current.IsName("not"))
                {
                    Next();
                    negated = true;
                }
                var nameToken = Current;
                string name = ParseDottedName("a test name after 'is'");
                if (!JinjaBuiltins.IsTest(name))
                    throw Error(nameToken, $"unknown test '{name}' (supported: {string.Join(", ", JinjaBuiltins.TestNames)})");
                JinjaArgs args = JinjaArgs.None;
                if (Current.IsOp("(")) args = ParseCallArgs();
                else if ((Current.Kind is JinjaTokenKind.Name or JinjaTokenKind.String or JinjaTokenKind.Integer or JinjaTokenKind.Float
                          || Current.IsOp("(") || Current.IsOp("[") || Current.IsOp("{"))
                         && !Current.IsName("else") && !Current.IsName("or") && !Current.IsName("and"))
                {
                    if (Current.IsName("is")) throw Error(Current, "tests cannot be chained with 'is'");
                    // "x is divisibleby 3": one argument without parentheses.
                    var arg = ParsePostfix(ParsePrimary());
                    args = new JinjaArgs([arg], []);
                }
                node = Make(new TestExpr(node, name, args, negated, nameToken.Line, nameToken.Column), [node, .. args.All]);
            }
            else if (t.IsOp("("))
            {
                var args = ParseCallArgs();
                node = Make(new CallExpr(node, args, node.Line, node.Column), [node, .. args.All]);
            }
            else return node;
        }
    }
}
