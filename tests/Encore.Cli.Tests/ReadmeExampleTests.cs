using System.Reflection;
using System.Text.RegularExpressions;
using Encore.Formats.Checkpoints;
using Encore.Generation;
using Encore.Training.Data;
using Encore.Training.Runs;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Encore.Cli.Tests;

/// <summary>The C# examples of the README and docs/embeddings.md compile against the libraries and run on a tiny checkpoint made here.</summary>
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

    static string Readme() => File.ReadAllText(Path.Combine(Repository(), "README.md"));

    static string Repository()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "README.md")) && Directory.Exists(Path.Combine(d.FullName, "src")))
                return d.FullName;
        throw new FileNotFoundException("README.md not found above " + AppContext.BaseDirectory);
    }

    /// <summary>A tiny encoder–decoder checkpoint with its tokenizer, made here.</summary>
    void TinyCheckpoint()
    {
        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        using var model = TrainingRun.LoadModel("tiny-encdec", tokenizer);
        Checkpoint.Save(model, _dir);
        TrainingRun.SaveTokenizer(tokenizer, _dir);
    }

    /// <summary>Compiles <paramref name="code"/> as a console app against the loaded libraries, runs it with <paramref name="args"/>, and returns what it printed.</summary>
    static string CompileAndRun(string code, params string[] args)
    {
        _ = typeof(Generator).Assembly; // loaded, so its references are found below
        _ = typeof(Microsoft.Extensions.AI.IEmbeddingGenerator).Assembly;
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
            assembly.EntryPoint!.Invoke(null, [args]);
        }
        finally
        {
            Console.SetOut(console);
        }
        return output.ToString();
    }

    static string OnlyCSharpBlock(string markdown)
    {
        var blocks = Regex.Matches(markdown, "```csharp\n(.*?)```", RegexOptions.Singleline);
        Assert.Single(blocks);
        return blocks[0].Groups[1].Value;
    }

    [Fact]
    public void TheCSharpExampleCompilesAndGenerates()
    {
        TinyCheckpoint();
        Assert.Matches(@"\(\d+ tokens\)\s*$", CompileAndRun(OnlyCSharpBlock(Readme()), _dir));
    }

    [Fact]
    public void TheEmbeddingsExampleCompilesAndEmbeds()
    {
        // docs/embeddings.md's example, on the tiny checkpoint given a sentence-transformers pipeline.
        TinyCheckpoint();
        Directory.CreateDirectory(Path.Combine(_dir, "1_Pooling"));
        File.WriteAllText(Path.Combine(_dir, "modules.json"), """
            [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
             {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
            """);
        File.WriteAllText(Path.Combine(_dir, "1_Pooling", "config.json"), """{"pooling_mode_mean_tokens": true}""");
        var code = OnlyCSharpBlock(File.ReadAllText(Path.Combine(Repository(), "docs", "embeddings.md")));
        Assert.Matches(@"^2 vectors of 32 values, \d+ tokens\s*$", CompileAndRun(code, _dir));
    }
}
