// The syntax tree: statements (text, output, if, for, set, break, continue) and expressions. Every
// node keeps the line and column it starts at, for error messages; every expression its height, which
// the parser bounds so that evaluating the tree cannot recurse without limit.
namespace Encore.Generation.Jinja;

internal abstract class JinjaNode(int line, int column)
{
    public int Line { get; } = line;
    public int Column { get; } = column;
}

internal sealed class TextNode(string text, int line, int column) : JinjaNode(line, column)
{
    public string Text { get; } = text;
}

internal sealed class OutputNode(JinjaExpr expr) : JinjaNode(expr.Line, expr.Column)
{
    public JinjaExpr Expr { get; } = expr;
}

internal sealed class IfNode(List<(JinjaExpr Test, List<JinjaNode> Body)> branches, List<JinjaNode>? otherwise, int line, int column) : JinjaNode(line, column)
{
    public List<(JinjaExpr Test, List<JinjaNode> Body)> Branches { get; } = branches;
    public List<JinjaNode>? Else { get; } = otherwise;
}

internal sealed class ForNode(string[] targets, JinjaExpr iterable, JinjaExpr? filter, List<JinjaNode> body, List<JinjaNode>? otherwise, int line, int column)
    : JinjaNode(line, column)
{
    /// <summary>One name, or several unpacked from each item ("for k, v in d|items").</summary>
    public string[] Targets { get; } = targets;
    public JinjaExpr Iterable { get; } = iterable;
    /// <summary>The loop filter ("for x in xs if x"), or null.</summary>
    public JinjaExpr? Filter { get; } = filter;
    public List<JinjaNode> Body { get; } = body;
    public List<JinjaNode>? Else { get; } = otherwise;
}

/// <summary>{% set name = expr %}, {% set a, b = expr %}, {% set ns.attr = expr %}, or {% set name %}body{% endset %}.</summary>
internal sealed class SetNode(string[] targets, string? attribute, JinjaExpr? value, List<JinjaNode>? body, int line, int column) : JinjaNode(line, column)
{
    public string[] Targets { get; } = targets;
    /// <summary>The attribute of a namespace assignment (Targets[0] is the namespace), or null.</summary>
    public string? Attribute { get; } = attribute;
    public JinjaExpr? Value { get; } = value;
    public List<JinjaNode>? Body { get; } = body;
}

internal sealed class LoopControlNode(bool isBreak, int line, int column) : JinjaNode(line, column)
{
    public bool IsBreak { get; } = isBreak;
}

internal abstract class JinjaExpr(int line, int column) : JinjaNode(line, column)
{
    /// <summary>1 for a leaf, else one more than the highest child.</summary>
    public int Height { get; set; } = 1;
}

internal sealed class ConstExpr(object? value, int line, int column) : JinjaExpr(line, column)
{
    public object? Value { get; } = value;
}

internal sealed class NameExpr(string name, int line, int column) : JinjaExpr(line, column)
{
    public string Name { get; } = name;
}

internal sealed class AttrExpr(JinjaExpr target, string name, int line, int column) : JinjaExpr(line, column)
{
    public JinjaExpr Target { get; } = target;
    public string Name { get; } = name;
}

internal sealed class ItemExpr(JinjaExpr target, JinjaExpr key, int line, int column) : JinjaExpr(line, column)
{
    public JinjaExpr Target { get; } = target;
    public JinjaExpr Key { get; } = key;
}

internal sealed class SliceExpr(JinjaExpr target, JinjaExpr? start, JinjaExpr? stop, JinjaExpr? step, int line, int column) : JinjaExpr(line, column)
{
    public JinjaExpr Target { get; } = target;
    public JinjaExpr? Start { get; } = start;
    public JinjaExpr? Stop { get; } = stop;
    public JinjaExpr? Step { get; } = step;
}

internal sealed record JinjaArgs(List<JinjaExpr> Positional, List<(string Name, JinjaExpr Value)> Named)
{
    public static JinjaArgs None { get; } = new([], []);
    public IEnumerable<JinjaExpr> All => Positional.Concat(Named.Select(n => n.Value));
}

internal sealed class CallExpr(JinjaExpr callee, JinjaArgs args, int line, int column) : JinjaExpr(line, column)
{
    public JinjaExpr Callee { get; } = callee;
    public JinjaArgs Args { get; } = args;
}

internal sealed class FilterExpr(JinjaExpr target, string name, JinjaArgs args, int line, int column) : JinjaExpr(line, column)
{
    public JinjaExpr Target { get; } = target;
    public string Name { get; } = name;
    public JinjaArgs Args { get; } = args;
}

internal sealed class TestExpr(JinjaExpr target, string name, JinjaArgs args, bool negated, int line, int column) : JinjaExpr(line, column)
{
    public JinjaExpr Target { get; } = target;
    public string Name { get; } = name;
    public JinjaArgs Args { get; } = args;
    public bool Negated { get; } = negated;
}

/// <summary>Unary "-", "+" and "not".</summary>
internal sealed class UnaryExpr(string op, JinjaExpr operand, int line, int column) : JinjaExpr(line, column)
{
    public string Op { get; } = op;
    public JinjaExpr Operand { get; } = operand;
}

/// <summary>Arithmetic ("+", "-", "*", "/", "//", "%", "**") and the short-circuit "and", "or".</summary>
internal sealed class BinaryExpr(string op, JinjaExpr left, JinjaExpr right, int line, int column) : JinjaExpr(line, column)
{
    public string Op { get; } = op;
    public JinjaExpr Left { get; } = left;
    public JinjaExpr Right { get; } = right;
}

/// <summary>"a ~ b ~ c": each part as a string, joined.</summary>
internal sealed class ConcatExpr(List<JinjaExpr> parts, int line, int column) : JinjaExpr(line, column)
{
    public List<JinjaExpr> Parts { get; } = parts;
}

/// <summary>A comparison chain as Python reads it: "a &lt; b &lt; c" is "a &lt; b and b &lt; c". Ops: ==, !=, &lt;, &gt;, &lt;=, &gt;=, in, notin.</summary>
internal sealed class CompareExpr(JinjaExpr first, List<(string Op, JinjaExpr Operand)> rest, int line, int column) : JinjaExpr(line, column)
{
    public JinjaExpr First { get; } = first;
    public List<(string Op, JinjaExpr Operand)> Rest { get; } = rest;
}

/// <summary>"a if test else b" (without else: undefined when the test fails).</summary>
internal sealed class CondExpr(JinjaExpr test, JinjaExpr then, JinjaExpr? otherwise, int line, int column) : JinjaExpr(line, column)
{
    public JinjaExpr Test { get; } = test;
    public JinjaExpr Then { get; } = then;
    public JinjaExpr? Else { get; } = otherwise;
}

internal sealed class ListExpr(List<JinjaExpr> items, bool tuple, int line, int column) : JinjaExpr(line, column)
{
    public List<JinjaExpr> Items { get; } = items;
    public bool IsTuple { get; } = tuple;
}

internal sealed class DictExpr(List<(JinjaExpr Key, JinjaExpr Value)> items, int line, int column) : JinjaExpr(line, column)
{
    public List<(JinjaExpr Key, JinjaExpr Value)> Items { get; } = items;
}
