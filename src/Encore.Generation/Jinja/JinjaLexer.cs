// Template text to tokens, following jinja2/lexer.py with trim_blocks=True and lstrip_blocks=True:
//  - newlines are normalized to "\n" and one trailing newline of the template is dropped
//    (keep_trailing_newline=False);
//  - "{%-", "{{-", "{#-" strip all whitespace before the tag, "-%}", "-}}", "-#}" all after it;
//  - lstrip_blocks: spaces and tabs between the start of a line and "{%" or "{#" are removed
//    (not before "{{", not with "{%+");
//  - trim_blocks: the first newline after "%}" or "#}" is removed (not after "}}", not with "+%}").
using System.Text;
using System.Text.RegularExpressions;

namespace Encore.Generation.Jinja;

internal enum JinjaTokenKind { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof }

internal readonly record struct JinjaToken(JinjaTokenKind Kind, string Value, int Line, int Column, object? Literal = null)
{
    public bool Is(JinjaTokenKind kind, string value) => Kind == kind && Value == value;
    public bool IsOp(string op) => Kind == JinjaTokenKind.Operator && Value == op;
    public bool IsName(string name) => Kind == JinjaTokenKind.Name && Value == name;

    public string Describe() => Kind switch
    {
        JinjaTokenKind.Eof => "the end of the template",
        JinjaTokenKind.VarEnd => "'}}'",
        JinjaTokenKind.BlockEnd => "'%}'",
        JinjaTokenKind.VarBegin => "'{{'",
        JinjaTokenKind.BlockBegin => "'{%'",
        JinjaTokenKind.Data => "template text",
        JinjaTokenKind.String => "a string",
        _ => $"'{Value}'",
    };
}

internal static partial class JinjaLexer
{
    // Longest operators first.
    static readonly string[] s_operators =
    [
        "//", "**", "==", "!=", ">=", "<=",
        "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";",
    ];

    [GeneratedRegex(@"\G\s*raw\s*([-+]?)%\}")]
    private static partial Regex RawBegin();

    [GeneratedRegex(@"\{%([-+]?)\s*endraw\s*([-+]?)%\}")]
    private static partial Regex RawEnd();

    public static List<JinjaToken> Tokenize(string source)
    {
        // Only CR LF, CR and LF are line breaks here (jinja2's newline_re), not the other breaks ReplaceLineEndings knows.
        string src = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (src.EndsWith('\n')) src = src[..^1];
        var lines = new LineIndex(src);
        var tokens = new List<JinjaToken>();
        int pos = 0;
        bool lineStarting = true;
        while (pos < src.Length)
        {
            int tag = NextTag(src, pos);
            if (tag < 0)
            {
                Add(tokens, JinjaTokenKind.Data, src[pos..], lines, pos);
                break;
            }
            char kind = src[tag + 1];
            char sign = tag + 2 < src.Length && src[tag + 2] is '-' or '+' ? src[tag + 2] : '\0';
            string text = src[pos..tag];
            if (sign == '-') text = TrimEnd(text);
            else if (sign != '+' && kind != '{')
            {
                // lstrip_blocks: only whitespace between the line's start and the tag.
                int lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || lineStarting) && lineStart < text.Length && IsAllWhite(text, lineStart)) text = text[..lineStart];
            }
            Add(tokens, JinjaTokenKind.Data, text, lines, pos);
            int open = tag + 2 + (sign == '\0' ? 0 : 1);

            if (kind == '#')
            {
                int close = src.IndexOf("#}", open, StringComparison.Ordinal);
                if (close < 0) throw Error(lines, tag, "the comment opened here is never closed with '#}'");
                pos = AfterClose(src, close, close + 2, close > open && src[close - 1] is '-' or '+' ? src[close - 1] : '\0');
                lineStarting = pos > 0 && src[pos - 1] == '\n';
                continue;
            }
            if (kind == '%' && RawBegin().Match(src, open) is { Success: true } raw)
            {
                int bodyStart = AfterClose(src, raw.Index + raw.Length - 2, raw.Index + raw.Length, raw.Groups[1].Value is [var c] ? c : '\0');
                var end = RawEnd().Match(src, bodyStart);
                if (!end.Success) throw Error(lines, tag, "the '{% raw %}' block opened here is never closed with '{% endraw %}'");
                string body = src[bodyStart..end.Index];
                if (end.Groups[1].Value == "-") body = TrimEnd(body);
                Add(tokens, JinjaTokenKind.Data, body, lines, bodyStart);
                pos = AfterClose(src, end.Index + end.Length - 2, end.Index + end.Length, end.Groups[2].Value is [var e] ? e : '\0');
                lineStarting = pos > 0 && src[pos - 1] == '\n';
                continue;
            }

            bool isVar = kind == '{';
            tokens.Add(new JinjaToken(isVar ? JinjaTokenKind.VarBegin : JinjaTokenKind.BlockBegin, isVar ? "{{" : "{%", lines.Line(tag), lines.Column(tag)));
            pos = LexTag(src, open, isVar, tag, tokens, lines);
            lineStarting = pos > 0 && src[pos - 1] == '\n';
        }
        tokens.Add(new JinjaToken(JinjaTokenKind.Eof, "", lines.Line(src.Length), lines.Column(src.Length)));
        return tokens;
    }

    // Tokens inside "{{ }}" or "{% %}" from open; returns the position after the closing delimiter and its whitespace control.
    static int LexTag(string src, int pos, bool isVar, int tagStart, List<JinjaToken> tokens, LineIndex lines)
    {
        int brackets = 0;
        while (true)
        {
            while (pos < src.Length && IsWhite(src[pos])) pos++;
            if (pos >= src.Length)
                throw Error(lines, tagStart, $"the '{(isVar ? "{{" : "{%")}' opened here is never closed with '{(isVar ? "}}" : "%}")}'");
            // The closing delimiter ends the tag only outside brackets ({{ {'a': {'b': 1}} }} is one expression).
            if (brackets == 0)
            {
                char sign = src[pos] is '-' or '+' ? src[pos] : '\0';
                int at = pos + (sign == '\0' ? 0 : 1);
                bool closes = isVar ? sign != '+' && Starts(src, at, "}}") : Starts(src, at, "%}");
                if (closes)
                {
                    tokens.Add(new JinjaToken(isVar ? JinjaTokenKind.VarEnd : JinjaTokenKind.BlockEnd, isVar ? "}}" : "%}", lines.Line(pos), lines.Column(pos)));
                    // Variable tags have no trim_blocks: only "-}}" strips after them.
                    return isVar ? (sign == '-' ? SkipWhite(src, at + 2) : at + 2) : AfterClose(src, at, at + 2, sign);
                }
            }
            char c = src[pos];
            int start = pos;
            if (char.IsAsciiLetter(c) || c == '_')
            {
                while (pos < src.Length && (char.IsAsciiLetterOrDigit(src[pos]) || src[pos] == '_')) pos++;
                tokens.Add(new JinjaToken(JinjaTokenKind.Name, src[start..pos], lines.Line(start), lines.Column(start)));
            }
            else if (char.IsAsciiDigit(c))
            {
                pos = LexNumber(src, pos, out var literal, out bool isFloat);
                tokens.Add(new JinjaToken(isFloat ? JinjaTokenKind.Float : JinjaTokenKind.Integer, src[start..pos], lines.Line(start), lines.Column(start), literal));
            }
            else if (c is '\'' or '"')
            {
                pos = LexString(src, pos, lines, out string value);
                tokens.Add(new JinjaToken(JinjaTokenKind.String, src[start..pos], lines.Line(start), lines.Column(start), value));
            }
            else
            {
                string? op = null;
                foreach (var o in s_operators)
                    if (Starts(src, pos, o)) { op = o; break; }
                if (op is null) throw Error(lines, pos, $"unexpected character '{c}'");
                if (op is "(" or "[" or "{") brackets++;
                else if (op is ")" or "]" or "}")
                {
                    if (brackets == 0) throw Error(lines, pos, $"unexpected '{op}'");
                    brackets--;
                }
                pos += op.Length;
                tokens.Add(new JinjaToken(JinjaTokenKind.Operator, op, lines.Line(start), lines.Column(start)));
            }
        }
    }

    // After a block or comment end at closeStart..closeEnd: "-" strips all whitespace, "+" keeps it, else trim_blocks drops one newline.
    static int AfterClose(string src, int closeStart, int closeEnd, char sign) => sign switch
    {
        '-' => SkipWhite(src, closeEnd),
        '+' => closeEnd,
        _ => closeEnd < src.Length && src[closeEnd] == '\n' ? closeEnd + 1 : closeEnd,
    };

    // Integers: 12, 1_000; floats: 1.5, 1e20, 1.5e-7, 1_0.2_5 (jinja2's integer_re and float_re).
    static int LexNumber(string src, int pos, out object literal, out bool isFloat)
    {
        int start = pos;
        pos = Digits(src, pos);
        isFloat = false;
        if (pos + 1 < src.Length && src[pos] == '.' && char.IsAsciiDigit(src[pos + 1]))
        {
            pos = Digits(src, pos + 1);
            isFloat = true;
        }
        if (pos < src.Length && src[pos] is 'e' or 'E')
        {
            int e = pos + 1;
            if (e < src.Length && src[e] is '+' or '-') e++;
            if (e < src.Length && char.IsAsciiDigit(src[e]))
            {
                pos = Digits(src, e);
                isFloat = true;
            }
        }
        string text = src[start..pos].Replace("_", "");
        if (isFloat) literal = double.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
        else if (long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long l)) literal = l;
        else literal = double.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
        return pos;
    }

    static int Digits(string src, int pos)
    {
        while (pos < src.Length && (char.IsAsciiDigit(src[pos]) || (src[pos] == '_' && pos + 1 < src.Length && char.IsAsciiDigit(src[pos + 1])))) pos++;
        return pos;
    }

    // A quoted string with Python's escapes (jinja2 decodes with "unicode-escape"); unknown escapes keep their backslash.
    static int LexString(string src, int pos, LineIndex lines, out string value)
    {
        char quote = src[pos];
        int start = pos++;
        var sb = new StringBuilder();
        while (true)
        {
            if (pos >= src.Length) throw Error(lines, start, "the string opened here is never closed");
            char c = src[pos++];
            if (c == quote) break;
            if (c != '\\') { sb.Append(c); continue; }
            if (pos >= src.Length) throw Error(lines, start, "the string opened here is never closed");
            char e = src[pos++];
            switch (e)
            {
                case '\n': break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case 'x': sb.Append(HexEscape(src, ref pos, 2, lines)); break;
                case 'u': sb.Append(HexEscape(src, ref pos, 4, lines)); break;
                case 'U': sb.Append(HexEscape(src, ref pos, 8, lines)); break;
                case >= '0' and <= '7':
                    int code = e - '0';
                    for (int k = 0; k < 2 && pos < src.Length && src[pos] is >= '0' and <= '7'; k++) code = code * 8 + (src[pos++] - '0');
                    sb.Append((char)code);
                    break;
                default: sb.Append('\\').Append(e); break;
            }
        }
        value = sb.ToString();
        return pos;
    }

    static string HexEscape(string src, ref int pos, int digits, LineIndex lines)
    {
        int at = pos - 2;
        if (pos + digits > src.Length || !int.TryParse(src.AsSpan(pos, digits), System.Globalization.NumberStyles.AllowHexSpecifier, null, out int code)
            || !Rune.IsValid(code))
            throw Error(lines, at, $"a '\\{src[pos - 1]}' escape needs {digits} hexadecimal digits naming a character");
        pos += digits;
        return new Rune(code).ToString();
    }

    static int NextTag(string src, int pos)
    {
        while (true)
        {
            int i = src.IndexOf('{', pos);
            if (i < 0 || i + 1 >= src.Length) return -1;
            if (src[i + 1] is '{' or '%' or '#') return i;
            pos = i + 1;
        }
    }

    static void Add(List<JinjaToken> tokens, JinjaTokenKind kind, string text, LineIndex lines, int at)
    {
        if (text.Length > 0) tokens.Add(new JinjaToken(kind, text, lines.Line(at), lines.Column(at)));
    }

    static bool Starts(string s, int at, string what) => at + what.Length <= s.Length && string.CompareOrdinal(s, at, what, 0, what.Length) == 0;

    /// <summary>Python's str.isspace for one character.</summary>
    public static bool IsWhite(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';

    static bool IsAllWhite(string s, int from)
    {
        for (int i = from; i < s.Length; i++) if (!IsWhite(s[i])) return false;
        return true;
    }

    static int SkipWhite(string s, int pos)
    {
        while (pos < s.Length && IsWhite(s[pos])) pos++;
        return pos;
    }

    static string TrimEnd(string s)
    {
        int end = s.Length;
        while (end > 0 && IsWhite(s[end - 1])) end--;
        return s[..end];
    }

    static JinjaException Error(LineIndex lines, int at, string message) => new(message, lines.Line(at), lines.Column(at));

    /// <summary>1-based line and column of an offset, by binary search over the line starts.</summary>
    sealed class LineIndex
    {
        readonly List<int> _starts = [0];

        public LineIndex(string s)
        {
            for (int i = 0; i < s.Length; i++) if (s[i] == '\n') _starts.Add(i + 1);
        }

        int Index(int at)
        {
            int i = _starts.BinarySearch(at);
            return i >= 0 ? i : ~i - 1;
        }

        public int Line(int at) => Index(at) + 1;
        public int Column(int at) => at - _starts[Index(at)] + 1;
    }
}
