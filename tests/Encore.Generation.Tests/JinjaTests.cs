using System.Diagnostics;
using Encore.Generation.Jinja;

namespace Encore.Generation.Tests;

/// <summary>
/// The Jinja interpreter's pieces: error positions, the bounds on hostile templates, Python's float
/// formatting. What it renders is checked against Jinja2 itself in <see cref="ChatTemplateTests"/>.
/// </summary>
public class JinjaTests
{
    static string Render(string source, Dictionary<string, object?>? variables = null, JinjaLimits? limits = null) =>
        JinjaTemplate.Parse(source, limits).Render(variables ?? []);

    static JinjaException Fails(string source, Dictionary<string, object?>? variables = null, JinjaLimits? limits = null) =>
        Assert.ThrowsAny<JinjaException>(() => Render(source, variables, limits));

    [Theory]
    [InlineData("a\n  {{ x ", 2, 3, "'{{' opened here is never closed")]
    [InlineData("{% if x %}abc", 1, 4, "'if' block opened here is never closed")]
    [InlineData("{% for x in y %}{% if x %}{% endfor %}", 1, 30, "unexpected 'endfor': the 'if' block opened at line 1, column 20 is not closed")]
    [InlineData("ok {# comment", 1, 4, "comment opened here is never closed")]
    [InlineData("{{ 'abc }}", 1, 4, "string opened here is never closed")]
    [InlineData("x\n{% macro f() %}{% endmacro %}", 2, 4, "unknown tag 'macro'")]
    [InlineData("{{ x | nosuchfilter }}", 1, 8, "unknown filter 'nosuchfilter'")]
    [InlineData("{% if x is nosuchtest %}{% endif %}", 1, 12, "unknown test 'nosuchtest'")]
    [InlineData("{{ 1 + }}", 1, 8, "expected an expression")]
    [InlineData("{{ a ? b }}", 1, 6, "unexpected character '?'")]
    [InlineData("{% endif %}", 1, 4, "'endif' without a block to close")]
    [InlineData("{{ x ) }}", 1, 6, "unexpected ')'")]
    [InlineData("{% for x in y recursive %}{% endfor %}", 1, 15, "recursive loops are not supported")]
    public void SyntaxErrorsNameTheirLineAndColumn(string source, int line, int column, string message)
    {
        var e = Assert.ThrowsAny<JinjaException>(() => JinjaTemplate.Parse(source));
        Assert.Contains(message, e.Message);
        Assert.Equal((line, column), (e.Line, e.Column));
        Assert.StartsWith($"line {line}, column {column}: ", e.Message);
    }

    [Fact]
    public void RaiseExceptionCarriesTheTemplatesMessageAndPosition()
    {
        var e = Assert.IsType<JinjaRaisedException>(Fails("{% for m in messages %}\n{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% endfor %}",
            new() { ["messages"] = new List<object?> { new Dictionary<object, object?> { ["role"] = "system" } } }));
        Assert.Equal("System role not supported", e.TemplateMessage);
        Assert.Equal(2, e.Line);
        Assert.Equal(31, e.Column);
    }

    [Theory]
    [InlineData("{{ x.y }}", "'x' is undefined")]
    [InlineData("{{ 'a' + 1 }}", "cannot add a str and a int")]
    [InlineData("{{ 1 // 0 }}", "division by zero")]
    [InlineData("{{ 9223372036854775807 + 1 }}", "integer overflow")]
    [InlineData("{{ 2 ** 64 }}", "integer overflow")]
    [InlineData("{{ none.x.y }}", "a NoneType has no attribute 'x'")]
    [InlineData("{% for x in 3 %}{% endfor %}", "a int cannot be iterated")]
    [InlineData("{% set a, b = [1] %}", "cannot unpack 1 values into 2 variables")]
    [InlineData("{% set s = 'x' %}{% set s.y = 1 %}", "only namespace() objects can be assigned to")]
    [InlineData("{{ 'x'.nosuchmethod() }}", "a str has no method 'nosuchmethod'")]
    [InlineData("{{ [1] | join(',', 'a', 'b') }}", "takes at most 2 arguments")]
    [InlineData("{{ [1] | join(e=3) }}", "has no argument named 'e'")]
    [InlineData("{% break %}", "outside a loop")]
    [InlineData("{{ range(1, 10, 0) }}", "step must not be zero")]
    public void RuntimeErrorsAreJinjaExceptionsNotCrashes(string source, string message) =>
        Assert.Contains(message, Fails(source).Message);

    [Fact]
    public void RunawayLoopsStopAtTheWorkLimit()
    {
        var watch = Stopwatch.StartNew();
        var e = Fails("{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}");
        Assert.Contains("steps of work", e.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"took {watch.Elapsed}");
        Assert.Contains("steps of work", Fails("{{ range(100000000) | length }}").Message);
        Assert.Contains("steps of work", Fails("{% for i in range(2000) %}{{ ([1] * 1000) | length }}{% endfor %}").Message);
        // The limit is the one given.
        Assert.Equal("", Render("{% for i in range(50) %}{% endfor %}", limits: new JinjaLimits { MaxWork = 100 }));
        Fails("{% for i in range(51) %}{% endfor %}", limits: new JinjaLimits { MaxWork = 100 });
    }

    [Fact]
    public void OutputAndStringsStopAtTheSizeLimit()
    {
        var limits = new JinjaLimits { MaxOutputChars = 10_000 };
        Assert.Contains("output exceeds the 10000-character limit", Fails("{% for i in range(1000) %}{{ 'x' * 100 }}{% endfor %}", limits: limits).Message);
        Assert.Contains("exceeds the 10000-character limit", Fails("{{ ('ab' * 4000) ~ ('cd' * 4000) }}", limits: limits).Message);
        Assert.Contains("exceeds", Fails("{{ 'a' * 1000000000000 }}").Message);
        Assert.Contains("exceeds", Fails("{{ 'abc' | replace('', 'x' * 5000000) }}").Message);
        Assert.Equal(10_000, Render("{{ 'x' * 10000 }}", limits: limits).Length);
        Assert.Contains("10 characters; at most 5", Assert.Throws<JinjaException>(() => JinjaTemplate.Parse("0123456789", new JinjaLimits { MaxTemplateChars = 5 })).Message);
    }

    [Fact]
    public void DeepNestingIsRefusedNotAStackOverflow()
    {
        Assert.Contains("nested more than 100 deep", Assert.ThrowsAny<JinjaException>(() => JinjaTemplate.Parse("{{ " + new string('(', 100_000) + "1" + new string(')', 100_000) + " }}")).Message);
        Assert.Contains("nested more than", Assert.ThrowsAny<JinjaException>(() => JinjaTemplate.Parse("{{ 1" + string.Concat(Enumerable.Repeat(" + 1", 50_000)) + " }}")).Message);
        Assert.Contains("nested more than", Assert.ThrowsAny<JinjaException>(() => JinjaTemplate.Parse("{{ x" + string.Concat(Enumerable.Repeat("|trim", 50_000)) + " }}")).Message);
        Assert.Contains("nested more than", Assert.ThrowsAny<JinjaException>(() => JinjaTemplate.Parse("{{ " + string.Concat(Enumerable.Repeat("not ", 50_000)) + "x }}")).Message);
        Assert.Contains("nested more than", Assert.ThrowsAny<JinjaException>(() => JinjaTemplate.Parse(
            string.Concat(Enumerable.Repeat("{% if x %}", 20_000)) + string.Concat(Enumerable.Repeat("{% endif %}", 20_000)))).Message);
        // A value nested by a loop through a namespace is refused when printed or compared.
        Assert.Contains("nested more than 200 deep", Fails("{% set ns = namespace(x=[]) %}{% for i in range(10000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}").Message);
        Assert.Contains("nested more than 200 deep", Fails("{% set ns = namespace(x=[]) %}{% for i in range(10000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x == ns.x }}").Message);
        // Within the limit, nesting works.
        Assert.Equal("1", Render("{{ " + new string('(', 50) + "1" + new string(')', 50) + " }}"));
    }

    [Fact]
    public void MangledTemplatesFailOnlyWithJinjaExceptions()
    {
        // Random edits of a real template must parse and render, or fail with a JinjaException: never another exception.
        string source = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "chat_templates.json"));
        var template = System.Text.Json.JsonDocument.Parse(source).RootElement.GetProperty("templates")[1].GetProperty("template").GetString()!;
        var rng = new Random(19);
        string alphabet = "{}%#-+()[]'\".|~,:=! \nabcxyz0123456789_";
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = new List<object?> { new Dictionary<object, object?> { ["role"] = "user", ["content"] = "hi" } },
            ["bos_token"] = "<s>",
            ["add_generation_prompt"] = true,
        };
        var limits = new JinjaLimits { MaxWork = 100_000, MaxOutputChars = 100_000 };
        int rendered = 0;
        for (int k = 0; k < 1500; k++)
        {
            var chars = template.ToCharArray().ToList();
            for (int edits = rng.Next(1, 6); edits > 0; edits--)
            {
                int at = rng.Next(chars.Count);
                switch (rng.Next(3))
                {
                    case 0: chars.RemoveAt(at); break;
                    case 1: chars.Insert(at, alphabet[rng.Next(alphabet.Length)]); break;
                    default: chars[at] = alphabet[rng.Next(alphabet.Length)]; break;
                }
            }
            try
            {
                JinjaTemplate.Parse(new string([.. chars]), limits).Render(variables);
                rendered++;
            }
            catch (JinjaException)
            {
            }
        }
        Assert.InRange(rendered, 1, 1499);
    }

    [Theory]
    [InlineData(1e16, "1e+16")]
    [InlineData(1e15, "1000000000000000.0")]
    [InlineData(123456789.125, "123456789.125")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(0.00001, "1e-05")]
    [InlineData(-2.5, "-2.5")]
    [InlineData(1.0 / 3, "0.3333333333333333")]
    [InlineData(2.5e-310, "2.5e-310")]
    [InlineData(1.7976931348623157e308, "1.7976931348623157e+308")]
    [InlineData(100.0, "100.0")]
    public void FloatsPrintAsPythonsRepr(double value, string expected) => Assert.Equal(expected, Py.FloatRepr(value));

    [Fact]
    public void ValuesFromDotNetAndJsonBecomePythonValues()
    {
        var json = System.Text.Json.JsonDocument.Parse("""{"b": [1, 2.5, "x", null, true], "a": {"k": "v"}}""").RootElement;
        Assert.Equal("{'b': [1, 2.5, 'x', None, True], 'a': {'k': 'v'}}", Render("{{ j }}", new() { ["j"] = json }));
        Assert.Equal("[1, 2, 3] 7 1.5", Render("{{ l }} {{ i }} {{ f }}", new() { ["l"] = new[] { 1, 2, 3 }, ["i"] = 7, ["f"] = 1.5f }));
        Assert.Equal("v", Render("{{ d.k }}", new() { ["d"] = new Dictionary<string, string> { ["k"] = "v" } }));
        Assert.Throws<ArgumentException>(() => Render("{{ x }}", new() { ["x"] = new Uri("http://example.com") }));
    }

    [Fact]
    public void TemplatesRenderConcurrently()
    {
        var template = JinjaTemplate.Parse("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + m %}{% endfor %}{{ ns.n }}");
        Parallel.For(0, 64, i =>
        {
            var messages = Enumerable.Range(0, i).Select(x => (object?)(long)x).ToList();
            Assert.Equal((i * (i - 1) / 2).ToString(System.Globalization.CultureInfo.InvariantCulture), template.Render(new Dictionary<string, object?> { ["messages"] = messages }));
        });
    }
}
