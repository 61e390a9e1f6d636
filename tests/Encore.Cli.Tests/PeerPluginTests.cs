using System.Reflection;
using Encore.Bench;
using Encore.Tensors;
using Xunit;

namespace Encore.Cli.Tests;

/// <summary>
/// llama.cpp, the native peer of <c>encore bench peers</c>, is a plug-in: the CLI (and so the tool
/// package) carries neither LLamaSharp nor a native library, and the benchmark loads the plug-in
/// from its own build output.
/// </summary>
public class PeerPluginTests
{
    static string RecordedPlugin() =>
        typeof(Program).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "LlamaCppPeer").Value!;

    [Fact]
    public void NeitherLLamaSharpNorANativeLlamaLibraryIsAmongTheCliDependencies()
    {
        // Everything the CLI depends on is copied beside this test assembly (and listed in its deps.json).
        var dir = AppContext.BaseDirectory;
        Assert.True(File.Exists(Path.Combine(dir, "encore.dll")), $"encore.dll not beside the tests in {dir}");
        Assert.False(File.Exists(Path.Combine(dir, "LLamaSharp.dll")));
        Assert.Empty(Directory.Exists(Path.Combine(dir, "runtimes"))
            ? Directory.EnumerateFiles(Path.Combine(dir, "runtimes"), "*llama*", SearchOption.AllDirectories)
            : []);
        var deps = File.ReadAllText(Directory.GetFiles(dir, "Encore.Cli.Tests.deps.json").Single());
        Assert.DoesNotContain("LLamaSharp", deps, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void AMissingPlugInIsReportedWithWhereItWasLookedFor()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"no-peer-{Guid.NewGuid():N}", GgufPeers.LlamaCppAssembly);
        Assert.Null(GgufPeers.TryLoadLlamaCpp(missing, out var reason));
        Assert.Contains(missing, reason);
        Assert.Contains("not installed", reason);
    }

    [Fact]
    public void ThePlugInRecordedByTheCliBuildLoadsAndReproducesEncoresGreedyTokens()
    {
        var plugin = RecordedPlugin();
        Assert.True(File.Exists(plugin), $"the llama.cpp peer was not built beside the CLI: {plugin}");
        var factory = GgufPeers.TryLoadLlamaCpp(plugin, out var reason);
        Assert.True(factory != null, reason);
        Assert.Equal("llama.cpp", factory.Engine);
        var work = Path.Combine(Path.GetTempPath(), $"encore-peer-plugin-{Guid.NewGuid():N}");
        try
        {
            var r = PeersBenchmark.Run(new PeersBenchmarkOptions
            {
                Models = ["tiny-llama"], InputLengths = [16], NewTokens = 8, Weights = [DType.F32], Runs = 1, Threads = 1,
                WorkDirectory = work, Torch = false, LlamaCppPeer = plugin,
            });
            var peer = Assert.Single(r.Figures, f => f.Engine == "llama.cpp");
            Assert.Equal(8, peer.Tokens);
            Assert.Equal(8, peer.IdenticalTokens);
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }
}
