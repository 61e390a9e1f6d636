using System.Reflection;
using System.Text.RegularExpressions;
using Encore.Formats.Checkpoints;
using Encore.Generation;
using Encore.Training.Data;
using Encore.Training.Runs;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Encore.Cli.Tests;

/// <summary>The README's C# example compiles against the libraries and runs on a tiny checkpoint made here.</summary>
public sealed class ReadmeExampleTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-readme-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // What `dotnet new console` projects import implicitly (ImplicitUsings), as a user's app would.
    const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    static string Readme()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "README.md")) && Directory.Exists(Path.Combine(d.FullName, "src")))
                return File.ReadAllText(Path.Combine(d.FullName, "README.md"));
        throw new FileNotFoundException("README.md not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void TheCSharpExampleCompilesAndGenerates()
    {
        var blocks = Regex.Matches(Readme(), "```csharp\n(.*?)```", RegexOptions.Singleline);
        Assert.Single(blocks);
        string code = blocks[0].Groups[1].Value;

        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        using (var model = TrainingRun.LoadModel("tiny-encdec", tokenizer))
        {
            Checkpoint.Save(model, _dir);
            TrainingRun.SaveTokenizer(tokenizer, _dir);
        }

        _ = typeof(Generator).Assembly; // loaded, so its references are found below
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var references = AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => !a.IsDynamic && !string.IsNullOrEmpty(a.Location))
            .Select(a => MetadataReference.CreateFromFile(a.Location));
        var compilation = CSharpCompilation.Create("ReadmeExample",
            [CSharpSyntaxTree.ParseText(code, parse), CSharpSyntaxTree.ParseText(ImplicitUsings, parse)],
            references, new CSharpCompilationOptions(OutputKind.ConsoleApplication).WithNullableContextOptions(NullableContextOptions.Enable));
        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        Assert.True(emitted.Success, string.Join("\n", emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));

        var assembly = Assembly.Load(image.ToArray());
        var output = new StringWriter();
        var console = Console.Out;
        Console.SetOut(output);
        try
        {
            assembly.EntryPoint!.Invoke(null, [new[] { _dir }]);
        }
        finally
        {
            Console.SetOut(console);
        }
        Assert.Matches(@"\(\d+ tokens\)\s*$", output.ToString());
    }
}
