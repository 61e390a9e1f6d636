using System.Text.Json;
using Encore.Tensors;
using Encore.Tensors.Threading;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore bench</c>: benchmark suites, each a subcommand (kernels, train, forward, generate, arch,
/// peers, serve) in its own file, BenchCommand.{Suite}.cs. The measuring code lives in
/// bench/Encore.Bench; these files parse options and render. The options the suites share are built here.
/// </summary>
internal static partial class BenchCommand
{
    public static Command Create()
    {
        var cmd = new Command("bench", $"Benchmark suites, measured side by side with their peers (PyTorch) on this machine. " +
            $"Suites: {string.Join(", ", BenchInfo.Suites)} .")
        {
            CreateKernels(),
            CreateTrain(),
            CreateForward(),
            CreateGenerate(),
            CreateArch(),
            CreateServe(),
            CreatePeers(),
        };
        return cmd;
    }

    /// <summary>The <c>--runs</c> option: timed runs whose median is the figure.</summary>
    static Option<int> RunsOption(int fallback, string description) =>
        new("--runs") { Description = $"{description}.", DefaultValueFactory = _ => fallback };

    /// <summary>The <c>--weights</c> option: one weight dtype.</summary>
    static Option<string> WeightsOption(DType fallback) =>
        new("--weights") { Description = $"Weight dtype: f32, bf16, f16, q8_0, q4_0.", DefaultValueFactory = _ => fallback.Name() };

    /// <summary>The <c>--kv-dtype</c> option: how the KV caches store keys and values.</summary>
    static Option<string> KvDTypeOption(Encore.Models.KvCacheDType fallback) =>
        new("--kv-dtype") { Description = $"KV cache storage: f32 or int8.", DefaultValueFactory = _ => Encore.Models.KvCacheDTypes.Name(fallback) };

    /// <summary>The <c>--no-peers</c> option of a suite with a PyTorch peer script.</summary>
    static Option<bool> NoPeersOption(string script) => new("--no-peers") { Description = $"Do not run the PyTorch peer ({script})." };

    /// <summary>The <c>--python</c> option: the interpreter of the PyTorch peer.</summary>
    static Option<string?> PythonOption(string description = "Python interpreter for the peer (default: ENCORE_PYTHON, python3, /usr/bin/python3).") =>
        new("--python") { Description = description };

    /// <summary>
    /// A suite's command: the options every suite has, <c>--json</c> (one JSON object instead of
    /// <paramref name="renders"/>) and <c>--threads</c> (<paramref name="threads"/> where the suite words or
    /// reads it itself), then the suite's own options. Its action reads them into the suite's options
    /// record, validates it, sizes the kernel pool, runs the suite with its progress on stderr, and
    /// prints the result as JSON or renders it.
    /// </summary>
    static Command Suite<TOptions, TResult>(string name, string description, Option[] options,
        Func<ParseResult, TOptions> read, Action<TOptions> validate, Func<TOptions, Action<string>, Task<TResult>> run, Action<TResult> render,
        string renders = "a table", Option? threads = null)
    {
        var json = new Option<bool>("--json") { Description = $"Print one JSON object (snake_case keys) instead of {renders}." };
        threads ??= Common.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var cmd = new Command(name, description) { json, threads };
        foreach (var option in options) cmd.Options.Add(option);
        cmd.SetAction(async (parse, ct) =>
        {
            var o = read(parse);
            validate(o);
            KernelPool.Default = new KernelPool(threads is Option<int> fixedDefault ? parse.GetValue(fixedDefault) : Common.Threads(parse, (Option<int?>)threads));
            var result = await run(o, line => Console.Error.WriteLine($"bench {name}: {line}…")).ConfigureAwait(false);
            return Report(parse, json, result, render);
        });
        return cmd;
    }

    /// <summary>Prints <paramref name="result"/> as JSON when <paramref name="json"/> is set, else renders it.</summary>
    static int Report<T>(ParseResult parse, Option<bool> json, T result, Action<T> render)
    {
        if (parse.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(result, Common.Json));
        else render(result);
        return 0;
    }

    static string Num(double? x) => x is { } v ? Common.F(v) : "–";

    static string Percent(double? x) => x is { } v ? (v * 100).ToString(v < 0.001 ? "0.000" : "0.0", CultureInfo.InvariantCulture) + "%" : "–";

    static string Times(double? x) => x is { } v ? v.ToString(v < 0.1 ? "0.000" : "0.00", CultureInfo.InvariantCulture) + "×" : "–";
}
