using System.Reflection;
using System.Runtime.Loader;

namespace Encore.Bench;

/// <summary>
/// A native engine that runs the GGUF files Encore exports, greedy over the raw logits (llama.cpp in
/// <c>bench/Encore.Bench.LlamaCpp</c>). It is a plug-in loaded only when <c>encore bench peers</c> runs, so
/// the <c>encore</c> tool itself carries no native library.
/// </summary>
public interface IGgufPeer : IDisposable
{
    /// <summary>
    /// Greedy generation of <paramref name="newTokens"/> tokens after <paramref name="prompt"/>: an
    /// encoder–decoder encodes the prompt and starts from <paramref name="decoderStart"/>, a decoder-only
    /// model prefills it. Returns seconds to the first token, tokens per second after it, and the tokens.
    /// </summary>
    (double First, double Rate, int[] Tokens) Generate(int[] prompt, int newTokens, int decoderStart, bool encoderDecoder);
}

/// <summary>Opens <see cref="IGgufPeer"/>s; the entry point of a peer plug-in (one public type with a parameterless constructor).</summary>
public interface IGgufPeerFactory
{
    /// <summary>The engine's name in tables ("llama.cpp").</summary>
    string Engine { get; }

    /// <summary>
    /// Loads <paramref name="gguf"/> for prompts of up to <paramref name="promptLength"/> tokens and
    /// <paramref name="contextSize"/> positions in all, on <paramref name="threads"/> threads. A failure of
    /// the engine (its native library missing, a file it cannot read) is an <see cref="InvalidOperationException"/>.
    /// </summary>
    IGgufPeer Open(string gguf, int contextSize, int promptLength, int threads);
}

/// <summary>
/// Finds and loads the llama.cpp peer plug-in (<c>Encore.Bench.LlamaCpp.dll</c> with its LLamaSharp and
/// native libraries) into its own load context. Where: the path given, else <c>ENCORE_LLAMACPP_PEER</c>,
/// else the build output of <c>bench/Encore.Bench.LlamaCpp</c> in the source tree the running
/// <c>encore</c> was built from (recorded at build time), else next to the running assembly.
/// </summary>
public static class GgufPeers
{
    /// <summary>The plug-in's assembly file name.</summary>
    public const string LlamaCppAssembly = "Encore.Bench.LlamaCpp.dll";

    /// <summary>The environment variable that may name the plug-in's assembly.</summary>
    public const string LlamaCppVariable = "ENCORE_LLAMACPP_PEER";

    static readonly Dictionary<string, IGgufPeerFactory> Loaded = new(StringComparer.Ordinal);

    /// <summary>
    /// The llama.cpp peer, or null with the reason it is unavailable (not built, not found, not loadable),
    /// naming the places looked in.
    /// </summary>
    public static IGgufPeerFactory? TryLoadLlamaCpp(string? path, out string? reason)
    {
        var candidates = Candidates(path).ToList();
        var found = candidates.FirstOrDefault(File.Exists);
        if (found is null)
        {
            reason = $"the llama.cpp peer is not installed ({LlamaCppAssembly} not found in {string.Join(", ", candidates.Distinct())}); " +
                $"build it with `dotnet build bench/Encore.Bench.LlamaCpp -c Release` in Encore's source tree and point {LlamaCppVariable} at the {LlamaCppAssembly} it writes";
            return null;
        }
        found = Path.GetFullPath(found);
        lock (Loaded)
        {
            if (Loaded.TryGetValue(found, out var known))
            {
                reason = null;
                return known;
            }
            try
            {
                var assembly = new PeerLoadContext(found).LoadFromAssemblyPath(found);
                var type = assembly.GetExportedTypes().SingleOrDefault(t => typeof(IGgufPeerFactory).IsAssignableFrom(t) && !t.IsAbstract)
                    ?? throw new InvalidOperationException($"{found} has no public {nameof(IGgufPeerFactory)}");
                var factory = (IGgufPeerFactory)Activator.CreateInstance(type)!;
                Loaded[found] = factory;
                reason = null;
                return factory;
            }
            catch (Exception e) when (e is FileLoadException or FileNotFoundException or BadImageFormatException or InvalidOperationException
                or ReflectionTypeLoadException or TypeLoadException or MissingMethodException or TargetInvocationException)
            {
                reason = $"the llama.cpp peer {found} could not be loaded: {e.GetBaseException().Message}";
                return null;
            }
        }
    }

    static IEnumerable<string> Candidates(string? path)
    {
        if (!string.IsNullOrEmpty(path))
        {
            yield return Directory.Exists(path) ? Path.Combine(path, LlamaCppAssembly) : path;
            yield break;
        }
        if (Environment.GetEnvironmentVariable(LlamaCppVariable) is { Length: > 0 } variable)
        {
            yield return Directory.Exists(variable) ? Path.Combine(variable, LlamaCppAssembly) : variable;
            yield break;
        }
        var entry = Assembly.GetEntryAssembly();
        var built = entry?.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "LlamaCppPeer")?.Value;
        if (!string.IsNullOrEmpty(built)) yield return built;
        yield return Path.Combine(AppContext.BaseDirectory, LlamaCppAssembly);
    }

    /// <summary>
    /// The plug-in's own context: LLamaSharp and its native libraries resolve from the plug-in's folder
    /// (through its deps.json); Encore's assemblies come from the host, so that the interfaces are one type.
    /// </summary>
    sealed class PeerLoadContext(string path) : AssemblyLoadContext("llama.cpp peer")
    {
        readonly AssemblyDependencyResolver _resolver = new(path);

        protected override Assembly? Load(AssemblyName name)
        {
            if (name.Name is { } n && (n.StartsWith("Encore.", StringComparison.Ordinal) || n.StartsWith("System.", StringComparison.Ordinal))) return null;
            return _resolver.ResolveAssemblyToPath(name) is { } file ? LoadFromAssemblyPath(file) : null;
        }

        protected override IntPtr LoadUnmanagedDll(string unmanagedDllName) =>
            _resolver.ResolveUnmanagedDllToPath(unmanagedDllName) is { } file ? LoadUnmanagedDllFromPath(file) : IntPtr.Zero;
    }
}
