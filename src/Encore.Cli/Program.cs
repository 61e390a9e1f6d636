using System.CommandLine.Help;
using System.CommandLine.Parsing;
using Encore.Cli.Commands;

namespace Encore.Cli;

/// <summary>The <c>encore</c> command line: a thin shell over the libraries.</summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static int Main(string[] args)
    {
        var root = new RootCommand("Encore: encoder–decoder small language models on the CPU, in managed .NET.")
        {
            QuickstartCommand.Create(),
            ForwardCommand.Create(),
            ConvertCommand.Create(),
            QuantizeCommand.Create(),
            AdaptCommand.Create(),
            MergeCommand.Create(),
            GenerateCommand.Create(),
            NgramCommand.Create(),
            EmbedCommand.Create(),
            CompressCommand.Create(),
            CompressCommand.CreateDecompress(),
            CompressContextCommand.Create(),
            ServeCommand.Create(),
            InitCommand.Create(),
            InitCommand.CreateConfig(),
            TrainCommand.Create(),
            TrainCommand.CreateDistill(),
            EvalCommand.Create(),
            InfoCommand.Create(),
            BenchCommand.Create(),
            LabCommand.Create(),
        };
        try
        {
            var parse = root.Parse(args);
            if (parse.Errors.Count > 0 && parse.Action is not HelpAction && ParseErrors.Report(parse, Console.Error))
                return 1;
            // Our own handler below prints a library's argument errors as one line, not a stack trace.
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException)
        {
            Console.Error.WriteLine($"encore: {e.Message}");
            return 1;
        }
    }
}
