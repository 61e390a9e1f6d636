// `encore bench peers`: the same random weights and prompts, greedy generation timed in Encore, in
// llama.cpp (through LLamaSharp, loading the GGUF that Encore's exporter writes) and in PyTorch eager
// with a KV cache (bench/peers/torch_generate.py reading the same safetensors). Greedy outputs are
// compared token by token: equal outputs show that the three engines time the same computation.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Formats.Gguf;
using Encore.Generation;
using Encore.Models;
using Encore.Tensors;
using Encore.Tensors.Kernels;

namespace Encore.Bench;

/// <summary>Options of <see cref="PeersBenchmark"/> (the flags of <c>encore bench peers</c>).</summary>
public sealed record PeersBenchmarkOptions
{
    /// <summary>Models (see <see cref="PeerModels.Names"/>). Default t5-base, llama-330m and mu-330m.</summary>
    public IReadOnlyList<string> Models { get; init; } = ["t5-base", "llama-330m", "mu-330m"];
    /// <summary>Prompt lengths in tokens. Default 512 and 2048.</summary>
    public IReadOnlyList<int> InputLengths { get; init; } = [512, 2048];
    /// <summary>Tokens generated (greedy, no early stop). Default 64.</summary>
    public int NewTokens { get; init; } = 64;
    /// <summary>Weight types: f32 and/or q8_0. Default both.</summary>
    public IReadOnlyList<DType> Weights { get; init; } = [DType.F32, DType.Q8_0, DType.Q4_0];
    /// <summary>Timed runs per figure after one warm-up; figures are medians. Default 5.</summary>
    public int Runs { get; init; } = 5;
    /// <summary>Threads of every engine. Default 2.</summary>
    public int Threads { get; init; } = 2;
    /// <summary>Where the checkpoints and GGUF files are written. Default a folder under the temporary directory.</summary>
    public string? WorkDirectory { get; init; }
    /// <summary>Run llama.cpp. Default true.</summary>
    public bool LlamaCpp { get; init; } = true;
    /// <summary>The llama.cpp peer plug-in (its assembly or folder; default: see <see cref="GgufPeers"/>).</summary>
    public string? LlamaCppPeer { get; init; }
    /// <summary>Run PyTorch (f32 only: it has no Q8_0 or Q4_0 kernels). Default true.</summary>
    public bool Torch { get; init; } = true;
    /// <summary>Python interpreter for the PyTorch peer (default: see <see cref="PythonPeer.Interpreters"/>).</summary>
    public string? Python { get; init; }

    /// <summary>Throws naming the first option out of range.</summary>
    public void Validate()
    {
        if (Models.Count == 0) throw new ArgumentException("give at least one --model");
        foreach (var m in Models) PeerModels.Config(m);
        if (InputLengths.Count == 0 || InputLengths.Any(l => l is < 1 or > 16384)) throw new ArgumentException("input lengths must be between 1 and 16384");
        if (NewTokens is < 2 or > 1024) throw new ArgumentException($"--new-tokens must be between 2 and 1024, got {NewTokens}");
        if (Weights.Count == 0 || Weights.Any(w => w is not (DType.F32 or DType.Q8_0 or DType.Q4_0))) throw new ArgumentException("weights must be f32, q8_0 and/or q4_0");
        if (Runs is < 1 or > 100) throw new ArgumentException($"--runs must be between 1 and 100, got {Runs}");
        if (Threads is < 1 or > 1024) throw new ArgumentException($"--threads must be between 1 and 1024, got {Threads}");
    }
}

/// <summary>One engine's figure for one (model, weights, input length).</summary>
/// <param name="FirstTokenSeconds">Median seconds from the prompt to the first token (encode + first decoder step, or prefill).</param>
/// <param name="DecodeTokensPerSecond">Median tokens per second after the first.</param>
/// <param name="IdenticalTokens">Leading generated tokens equal to Encore's (Encore itself: all).</param>
/// <param name="EncoreOverPeer">Encore's decode tokens/s ÷ this engine's (null for Encore).</param>
/// <param name="EncoreFirstTokenSpeedup">This engine's first-token seconds ÷ Encore's (above 1: Encore is faster).</param>
/// <param name="BytesPerStep">Encore rows: bytes one decode step reads (see <see cref="GenerateBenchmark.BytesPerStep"/>).</param>
/// <param name="ReadGBPerSecond">Encore rows: the read bandwidth at the benchmark's thread count, the higher of two probes run just before and just after the figure's runs.</param>
/// <param name="FractionOfBound">Encore rows: decode tokens/s ÷ the bandwidth bound (bandwidth ÷ bytes per step).</param>
public sealed record PeerFigure(string Model, string Weights, int InputLength, string Engine, double FirstTokenSeconds, double DecodeTokensPerSecond,
    int IdenticalTokens, int Tokens, double? EncoreOverPeer, double? EncoreFirstTokenSpeedup, IReadOnlyList<int> Output,
    long? BytesPerStep = null, double? ReadGBPerSecond = null, double? FractionOfBound = null);

/// <summary>
/// The encoder–decoder claim against the engine people use: Encore running mu-330m against
/// llama.cpp running llama-330m, a decoder-only model of about the same size, on one prompt length
/// and weight type.
/// </summary>
/// <param name="FirstTokenSpeedup">llama.cpp's first-token seconds ÷ Encore's mu-330m (above 1: mu-330m answers sooner).</param>
/// <param name="DecodeRatio">mu-330m's decode tokens/s in Encore ÷ llama.cpp's (above 1: mu-330m streams faster).</param>
public sealed record ArchitectureClaim(string Weights, int InputLength, string EncoderDecoder, string DecoderOnly,
    double EncoderDecoderFirstTokenSeconds, double DecoderOnlyFirstTokenSeconds, double EncoderDecoderTokensPerSecond, double DecoderOnlyTokensPerSecond,
    double FirstTokenSpeedup, double DecodeRatio);

/// <summary>The result of <c>encore bench peers</c>.</summary>
public sealed record PeersBenchmarkResult(int Threads, int NewTokens, int Runs, MachineReport Machine, IReadOnlyDictionary<string, long> Parameters,
    IReadOnlyList<PeerFigure> Figures, IReadOnlyList<ArchitectureClaim> Claims, IReadOnlyList<string> Notes);

/// <summary>Encore against llama.cpp and PyTorch on identical models and prompts.</summary>
public static class PeersBenchmark
{
    /// <summary>File name of the PyTorch peer script.</summary>
    public const string TorchScript = "torch_generate.py";

    /// <summary>Runs the benchmark.</summary>
    public static PeersBenchmarkResult Run(PeersBenchmarkOptions o, Action<string>? progress = null)
    {
        o.Validate();
        progress?.Invoke("probing the machine");
        var machine = MachineProbe.Run(MachineProbeOptions.Quick);
        var work = o.WorkDirectory ?? Path.Combine(Path.GetTempPath(), "encore-bench-peers");
        Directory.CreateDirectory(work);
        var figures = new List<PeerFigure>();
        var notes = new List<string>();
        var parameters = new Dictionary<string, long>();
        IGgufPeerFactory? llamaCpp = null;
        if (o.LlamaCpp && o.Models.Any(PeerModels.HasPeers))
        {
            llamaCpp = GgufPeers.TryLoadLlamaCpp(o.LlamaCppPeer, out var reason);
            if (llamaCpp is null) notes.Add($"llama.cpp skipped: {reason}");
        }
        foreach (var name in o.Models)
        {
            var config = PeerModels.Config(name);
            bool t5 = config.Family == ModelFamily.EncoderDecoder;
            bool peers = PeerModels.HasPeers(name);
            string dir = Path.Combine(work, name);
            progress?.Invoke(peers ? $"{name}: building the model and writing its checkpoint and GGUF files under {dir}" : $"{name}: building the model");
            using var model = LanguageModel.Create(config, seed: 1);
            PeerModels.ScaleWeights(model, 20251126, embedStd: 1f, outGain: 1f);
            parameters[name] = model.ParameterCount;
            var ggufs = new Dictionary<DType, string>();
            if (peers)
            {
                Checkpoint.Save(model, dir, t5 ? "t5" : "llama");
                foreach (var w in o.Weights)
                {
                    ggufs[w] = Path.Combine(dir, $"model-{w.Name()}.gguf");
                    GgufExport.Write(model, null, ggufs[w], new GgufExportOptions { Matrices = w switch { DType.Q8_0 => GgmlType.Q8_0, DType.Q4_0 => GgmlType.Q4_0, _ => GgmlType.F32 }, Name = name });
                }
            }
            else if (o.LlamaCpp || o.Torch)
            {
                notes.Add($"{name} runs in Encore only: neither llama.cpp nor the PyTorch script has its architecture; see the encoder–decoder claim against llama-330m.");
            }
            var rng = new Random(7);
            var prompts = o.InputLengths.ToDictionary(l => l, l => Enumerable.Range(0, l).Select(_ => rng.Next(3, config.VocabSize)).ToArray());
            var encore = new Dictionary<(DType, int), PeerFigure>();
            var llamaFigures = new List<PeerFigure>();
            bool llama = llamaCpp != null && peers;
            // Conversion is in place and lossy: f32 goes first, and every quantized type starts from the f32
            // weights (as its GGUF file did), not from another quantization.
            var f32 = o.Weights.Count(w => w != DType.F32) > 1
                ? model.Parameters.All.Where(p => model.Parameters.MayStayCompact(p.Name)).ToDictionary(p => p.Name, p => p.Value.Clone())
                : null;
            foreach (var w in o.Weights.OrderBy(w => w == DType.F32 ? 0 : 1))
            {
                if (f32 != null)
                    foreach (var (n, t) in f32) model.Parameters.Assign(n, t.Clone());
                model.ConvertWeights(w);
                foreach (var length in o.InputLengths)
                {
                    IGgufPeer? peer = null;
                    if (llama)
                    {
                        try
                        {
                            peer = llamaCpp!.Open(ggufs[w], length + o.NewTokens + 8, length, o.Threads);
                        }
                        catch (Exception e) when (IsPeerFailure(e))
                        {
                            notes.Add($"llama.cpp skipped ({name} {w.Name()} {length} and after): {e.GetBaseException().Message}");
                            llama = false;
                        }
                    }
                    using (peer)
                    {
                        var before = MachineProbe.Run(MachineProbeOptions.Default);
                        progress?.Invoke($"{name} {w.Name()} {length} in → {o.NewTokens} out: Encore{(peer is null ? "" : " and llama.cpp, run by run")}");
                        var (f, lf, error) = Interleaved(name, w, length, o, () => MeasureEncore(model, prompts[length], o.NewTokens),
                            peer is null ? null : () => peer.Generate(prompts[length], o.NewTokens, config.DecoderStartTokenId, t5));
                        if (error != null)
                        {
                            notes.Add($"llama.cpp skipped ({name} {w.Name()} {length} and after): {error}");
                            llama = false;
                        }
                        // The bound is taken against probes run just before and just after, so that they see about
                        // the same load as the runs; the higher of the two keeps the fraction conservative.
                        var after = MachineProbe.Run(MachineProbeOptions.Default);
                        double bandwidth = o.Threads == 1
                            ? Math.Max(before.ReadGBPerSecondSingleThread, after.ReadGBPerSecondSingleThread)
                            : Math.Max(before.ReadGBPerSecond, after.ReadGBPerSecond);
                        var (weightBytes, cacheBytes) = GenerateBenchmark.BytesPerStep(model, length, o.NewTokens, w);
                        long bytes = weightBytes + cacheBytes;
                        f = f with { BytesPerStep = bytes, ReadGBPerSecond = bandwidth, FractionOfBound = f.DecodeTokensPerSecond * bytes / (bandwidth * 1e9) };
                        encore[(w, length)] = f;
                        figures.Add(f);
                        if (lf != null) llamaFigures.Add(lf);
                    }
                }
            }
            if (f32 != null) foreach (var t in f32.Values) t.Dispose();
            figures.AddRange(llamaFigures);
            if (o.Torch && peers && o.Weights.Contains(DType.F32))
            {
                progress?.Invoke($"{name} f32: PyTorch eager (bench/peers/{TorchScript})");
                var promptFile = Path.Combine(dir, "prompts.json");
                File.WriteAllText(promptFile, JsonSerializer.Serialize(o.InputLengths.Select(l => prompts[l]).ToArray()));
                var output = PythonPeer.Run(TorchScript,
                [
                    "--model", dir, "--prompts", promptFile, "--new-tokens", o.NewTokens.ToString(CultureInfo.InvariantCulture),
                    "--runs", o.Runs.ToString(CultureInfo.InvariantCulture), "--threads", o.Threads.ToString(CultureInfo.InvariantCulture),
                ], o.Python, TimeSpan.FromHours(2));
                if (output.Json is null) notes.Add(output.Note ?? "PyTorch peer produced nothing");
                else
                {
                    try
                    {
                        using var doc = JsonDocument.Parse(output.Json);
                        var root = doc.RootElement;
                        var version = root.GetProperty("torch_version").GetString();
                        int i = 0;
                        foreach (var r in root.GetProperty("results").EnumerateArray())
                        {
                            int length = o.InputLengths[i++];
                            var tokens = r.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
                            var e = encore[(DType.F32, length)];
                            double first = r.GetProperty("first_token_seconds").GetDouble(), rate = r.GetProperty("decode_tokens_per_second").GetDouble();
                            figures.Add(new PeerFigure(name, "f32", length, $"PyTorch {version}", first, rate, Identical(e.Output, tokens), tokens.Length,
                                e.DecodeTokensPerSecond / rate, first / e.FirstTokenSeconds, tokens));
                        }
                    }
                    catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentOutOfRangeException)
                    {
                        notes.Add($"PyTorch peer output unreadable: {e.Message}");
                    }
                }
            }
        }
        return new PeersBenchmarkResult(o.Threads, o.NewTokens, o.Runs, machine, parameters, figures, Claims(figures), notes);
    }

    // Encoder–decoder models and the decoder-only model of about their size that llama.cpp runs.
    static readonly Dictionary<string, string> ClaimPairs = new() { ["mu-330m"] = "llama-330m", ["tiny-mu"] = "tiny-llama" };

    /// <summary>mu-330m in Encore against llama-330m in llama.cpp (and the tiny pair), wherever both were measured.</summary>
    static List<ArchitectureClaim> Claims(List<PeerFigure> figures)
    {
        var claims = new List<ArchitectureClaim>();
        foreach (var ed in figures.Where(f => ClaimPairs.ContainsKey(f.Model) && f.Engine == "Encore"))
        {
            string decoderOnly = ClaimPairs[ed.Model];
            var d = figures.FirstOrDefault(f => f.Model == decoderOnly && f.Engine == "llama.cpp" && f.Weights == ed.Weights && f.InputLength == ed.InputLength);
            if (d is null) continue;
            claims.Add(new ArchitectureClaim(ed.Weights, ed.InputLength, $"{ed.Model} (Encore)", $"{decoderOnly} (llama.cpp)",
                ed.FirstTokenSeconds, d.FirstTokenSeconds, ed.DecodeTokensPerSecond, d.DecodeTokensPerSecond,
                d.FirstTokenSeconds / ed.FirstTokenSeconds, ed.DecodeTokensPerSecond / d.DecodeTokensPerSecond));
        }
        return claims;
    }

    static bool IsPeerFailure(Exception e) => e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException
        or BadImageFormatException or InvalidOperationException;

    /// <summary>
    /// One warm-up each, then Encore and the peer take turns run by run, so that both meet the same
    /// moments of a shared machine's load; figures are medians. A peer that fails on its warm-up
    /// is dropped with the reason.
    /// </summary>
    static (PeerFigure Encore, PeerFigure? Peer, string? PeerError) Interleaved(string model, DType w, int length, PeersBenchmarkOptions o,
        Func<(double First, double Rate, int[] Tokens)> encore, Func<(double First, double Rate, int[] Tokens)>? peer)
    {
        var (_, _, encoreTokens) = encore();
        int[]? peerTokens = null;
        string? error = null;
        if (peer != null)
        {
            try
            {
                (_, _, peerTokens) = peer();
            }
            catch (Exception e) when (IsPeerFailure(e))
            {
                error = e.GetBaseException().Message;
                peer = null;
            }
        }
        var ef = new double[o.Runs];
        var er = new double[o.Runs];
        var pf = new double[o.Runs];
        var pr = new double[o.Runs];
        for (int r = 0; r < o.Runs; r++)
        {
            (ef[r], er[r], _) = encore();
            if (peer != null) (pf[r], pr[r], _) = peer();
        }
        var e0 = new PeerFigure(model, w.Name(), length, "Encore", MachineProbe.Median(ef), MachineProbe.Median(er), encoreTokens.Length, encoreTokens.Length,
            null, null, encoreTokens);
        PeerFigure? p0 = null;
        if (peer != null && peerTokens != null)
        {
            double f = MachineProbe.Median(pf), d = MachineProbe.Median(pr);
            p0 = new PeerFigure(model, w.Name(), length, "llama.cpp", f, d, Identical(encoreTokens, peerTokens), peerTokens.Length,
                e0.DecodeTokensPerSecond / d, f / e0.FirstTokenSeconds, peerTokens);
        }
        return (e0, p0, error);
    }

    static int Identical(IReadOnlyList<int> a, IReadOnlyList<int> b)
    {
        int n = 0;
        while (n < a.Count && n < b.Count && a[n] == b[n]) n++;
        return n;
    }

    static (double, double, int[]) MeasureEncore(LanguageModel model, int[] prompt, int newTokens)
    {
        var t = GenerationTiming.Measure(model, [prompt], newTokens);
        return (t.FirstTokenSeconds, t.DecodeTokensPerSecond, t.Tokens);
    }
}
