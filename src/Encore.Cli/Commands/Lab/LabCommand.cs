using System.Text.Json;
using Encore.Training.Lab;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore lab &lt;study&gt;</c>: studies that reproduce papers' architecture findings with Encore's own
/// models, each a subcommand in its own file, LabCommand.{Study}.cs. The studies live in
/// Encore.Training/Lab; these files parse options and render. The options every study has are built here.
/// </summary>
internal static partial class LabCommand
{
    /// <summary>The studies, for the help text.</summary>
    static readonly string[] Studies = ["length", "inverse-permutation", "entropy", "depth-split", "codebook", "kv-bottleneck"];

    public static Command Create() => new("lab", $"Studies that reproduce papers' architecture findings on Encore's own models, with data generated in code or bundled. Studies: {string.Join(", ", Studies)}.")
    {
        CreateLength(),
        CreateInversePermutation(),
        CreateEntropy(),
        CreateDepthSplit(),
        CreateCodebook(),
        CreateKeyValueBottleneck(),
    };

    /// <summary>What every study reads: its size, the seed, the output forms.</summary>
    internal sealed record Shared(bool Quick, ulong Seed, int? Steps, double? LearningRate);

    /// <summary>
    /// A study's command with the options every study has (<c>--quick</c>, <c>--seed</c>, <c>--steps</c>,
    /// <c>--threads</c>, <c>--json</c>, <c>--markdown</c>, <c>--plot</c>) and its own. Its action reads and
    /// validates the options, sizes the kernel pool, runs the study with progress on stderr, writes the
    /// plot and prints the result as JSON, markdown or tables.
    /// </summary>
    static Command Study<TOptions, TResult>(string name, string description, Option[] options,
        Func<ParseResult, Shared, TOptions> read, Func<TOptions, Action<string>, CancellationToken, TResult> run,
        Action<string, TResult> plot, Func<TResult, string> markdown, Action<TResult> render)
    {
        var quick = new Option<bool>("--quick") { Description = "The reduced study that finishes in minutes (see docs/lab.md for what it keeps)." };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the generated data and of the weights.", DefaultValueFactory = _ => 0 };
        var steps = new Option<int?>("--steps") { Description = "Training steps per model (default: the study's, depending on --quick)." };
        steps.Validators.Add(r =>
        {
            if (r.Tokens.Count == 1 && int.TryParse(r.Tokens[0].Value, out int v) && v < 1) r.AddError($"--steps must be positive, got {v}");
        });
        var lr = new Option<double?>("--lr") { Description = "Peak learning rate of every model (default 3e-3)." };
        lr.Validators.Add(r =>
        {
            if (r.Tokens.Count == 1 && double.TryParse(r.Tokens[0].Value, CultureInfo.InvariantCulture, out double v) && !(v > 0 && v < 1))
                r.AddError($"--lr must be in (0, 1), got {r.Tokens[0].Value}");
        });
        var threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var json = new Option<bool>("--json") { Description = "Print one JSON object (snake_case keys) instead of tables." };
        var md = new Option<bool>("--markdown") { Description = "Print the tables as GitHub markdown." };
        var plotPath = new Option<string?>("--plot") { Description = "Write the study's figure to this PNG." };
        var cmd = new Command(name, description) { quick, seed, steps, lr, threads, json, md, plotPath };
        foreach (var option in options) cmd.Options.Add(option);
        cmd.SetAction((parse, ct) =>
        {
            var o = read(parse, new Shared(parse.GetValue(quick), parse.GetValue(seed), parse.GetValue(steps), parse.GetValue(lr)));
            Tensors.Threading.KernelPool.Default = new Tensors.Threading.KernelPool(Common.Threads(parse, threads));
            var result = run(o, line => Console.Error.WriteLine($"lab {name}: {line}"), ct);
            if (parse.GetValue(plotPath) is { } p) plot(p, result);
            if (parse.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(result, Common.Json));
            else if (parse.GetValue(md)) Console.WriteLine(markdown(result));
            else render(result);
            return Task.FromResult(0);
        });
        return cmd;
    }

    /// <summary>A list option (repeatable, and comma-separated values), read with <see cref="List"/>.</summary>
    static Option<string[]> ListOption(string name, string description) => new(name) { Description = description, AllowMultipleArgumentsPerToken = true };

    /// <summary>The items of a <see cref="ListOption"/>, split at commas and parsed; null when the option was not given.</summary>
    static IReadOnlyList<T>? List<T>(ParseResult parse, Option<string[]> option, Func<string, T> parseItem)
    {
        var values = parse.GetValue(option);
        if (values is not { Length: > 0 }) return null;
        return values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Select(parseItem).Distinct().ToList();
    }

    /// <summary>The study's training options with the shared --steps and --lr applied.</summary>
    static LabTrainingOptions Training(LabTrainingOptions d, Shared s) =>
        d with { Steps = s.Steps ?? d.Steps, LearningRate = s.LearningRate ?? d.LearningRate };

    static string Percent(double x) => double.IsNaN(x) ? "–" : (x * 100).ToString("0", CultureInfo.InvariantCulture) + "%";

    /// <summary>A Spectre table with the given right-aligned figure columns after the left-aligned name columns.</summary>
    static Table NewTable(string title, string[] names, string[] figures)
    {
        var t = new Table().Border(TableBorder.Rounded).Title(title);
        foreach (var n in names) t.AddColumn(Markup.Escape(n));
        foreach (var f in figures) t.AddColumn(new TableColumn(Markup.Escape(f)).RightAligned());
        return t;
    }
}
