using System.Text.Json;
using Encore.Tensors.Threading;

namespace Encore.Cli.Commands;

/// <summary><c>encore info</c>: this machine's runtime, CPU, SIMD level, memory bandwidth and FMA peak.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print one JSON object (snake_case keys) instead of a table." };
        var quick = new Option<bool>("--quick") { Description = "A rough probe (64 MiB buffer, which caches partly hold; short FMA loop) that takes well under a second." };
        var threads = Common.ThreadsOption("Threads of the kernel pool the all-thread figures use (default: the processor count).");
        var cmd = new Command("info", "Describe this machine and measure its memory read bandwidth and FMA peak (about 2 s).")
        {
            json, quick, threads,
        };
        cmd.SetAction(parse =>
        {
            KernelPool.Default = new KernelPool(Common.Threads(parse, threads));
            var report = MachineProbe.Run(parse.GetValue(quick) ? MachineProbeOptions.Quick : MachineProbeOptions.Default, KernelPool.Default);
            if (parse.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(report, Common.Json));
            else AnsiConsole.Write(Common.MachineTable(report));
            return 0;
        });
        return cmd;
    }
}
