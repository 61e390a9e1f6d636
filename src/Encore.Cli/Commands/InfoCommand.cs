using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Encore.Tensors.Runtime;
using Encore.Tensors.Threading;
using Spectre.Console;

namespace Encore.Cli.Commands;

/// <summary><c>encore info</c>: this machine's runtime, CPU, SIMD level, memory bandwidth and FMA peak.</summary>
internal static class InfoCommand
{
    /// <summary>JSON output of every command: snake_case keys, indented.</summary>
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // Labels such as "1024×1024×1024" stay readable; the output is never embedded in HTML.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The shared <c>--threads</c> option: kernel pool size, 1 to 1024, default the processor count.</summary>
    internal static Option<int> ThreadsOption(string description)
    {
        var option = new Option<int>("--threads")
        {
            Description = description,
            DefaultValueFactory = _ => Environment.ProcessorCount,
        };
        option.Validators.Add(r =>
        {
            // Only a parsed value is checked; a token that is not an integer is the parser's error to report.
            if (r.Tokens.Count == 1 && int.TryParse(r.Tokens[0].Value, out int v) && v is < 1 or > 1024)
                r.AddError($"--threads must be between 1 and 1024, got {v}");
        });
        return option;
    }

    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print one JSON object (snake_case keys) instead of a table." };
        var quick = new Option<bool>("--quick") { Description = "A rough probe (64 MiB buffer, which caches partly hold; short FMA loop) that takes well under a second." };
        var threads = ThreadsOption("Threads of the kernel pool the all-thread figures use (default: the processor count).");
        var cmd = new Command("info", "Describe this machine and measure its memory read bandwidth and FMA peak (about 2 s).")
        {
            json, quick, threads,
        };
        cmd.SetAction(parse =>
        {
            KernelPool.Default = new KernelPool(parse.GetValue(threads));
            var report = MachineProbe.Run(parse.GetValue(quick) ? MachineProbeOptions.Quick : MachineProbeOptions.Default, KernelPool.Default);
            if (parse.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(report, Json));
            else AnsiConsole.Write(MachineTable(report));
            return 0;
        });
        return cmd;
    }

    /// <summary>The machine as a two-column table (also printed at the top of every benchmark).</summary>
    internal static Table MachineTable(MachineReport m)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("[bold]Machine[/]");
        table.AddColumn("property");
        table.AddColumn("value");
        void Row(string name, string value) => table.AddRow(Markup.Escape(name), Markup.Escape(value));
        Row("runtime", $"{m.DotnetVersion} ({m.Architecture})");
        Row("OS", m.Os);
        Row("CPU", m.CpuModel);
        Row("logical cores", m.LogicalCores.ToString(CultureInfo.InvariantCulture));
        Row("SIMD", $"{m.Simd}; kernels use {(m.SimdBits == 0 ? "scalar code" : $"{m.SimdBits}-bit vectors")}");
        Row("last-level cache", m.LastLevelCacheBytes > 0 ? $"{m.LastLevelCacheBytes >> 20} MiB" : "unknown");
        Row("kernel threads", m.Threads.ToString(CultureInfo.InvariantCulture));
        Row("memory read bandwidth", $"{F(m.ReadGBPerSecond)} GB/s ({m.Threads} threads), {F(m.ReadGBPerSecondSingleThread)} GB/s (1 thread); {m.BandwidthBufferBytes >> 20} MiB buffer");
        Row("FMA peak (f32)", $"{F(m.FmaGflops)} GFLOP/s ({m.Threads} threads), {F(m.FmaGflopsPerThread)} GFLOP/s (1 thread)");
        Row("probe", $"median of {m.Repetitions}, {m.ProbeSeconds:0.00} s");
        return table;
    }

    internal static string F(double x) => x.ToString(x >= 100 ? "0" : x >= 10 ? "0.0" : "0.00", CultureInfo.InvariantCulture);
}
