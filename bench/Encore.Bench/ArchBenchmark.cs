using System.Globalization;
using System.Text;
using Encore.Generation;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Bench;

/// <summary>Options of <see cref="ArchBenchmark"/> (the flags of <c>encore bench arch</c>).</summary>
public sealed record ArchBenchmarkOptions
{
    /// <summary>Pairs compared, encoder–decoder first. Default the 330M pair and the 25M pair.</summary>
    public IReadOnlyList<(string EncoderDecoder, string DecoderOnly)> Pairs { get; init; } = [("mu-330m", "decoder-330m"), ("mu-25m", "decoder-25m")];
    /// <summary>Input lengths. Default 128, 256, 512, 1024, 2048.</summary>
    public IReadOnlyList<int> InputLengths { get; init; } = [128, 256, 512, 1024, 2048];
    /// <summary>Tokens generated. Default 64.</summary>
    public int NewTokens { get; init; } = 64;
    /// <summary>Batch sizes for decode throughput. Default 1 and 8.</summary>
    public IReadOnlyList<int> Batches { get; init; } = [1, 8];
    /// <summary>Weight dtype. Default f32.</summary>
    public DType Weights { get; init; } = DType.F32;
    /// <summary>Timed runs; figures are medians. Default 3.</summary>
    public int Runs { get; init; } = 3;
    /// <summary>KV cache storage: f32 or int8. Default f32.</summary>
    public KvCacheDType KvCache { get; init; } = KvCacheDType.F32;
    /// <summary>Where to write the PNG (null: none).</summary>
    public string? Plot { get; init; }
}

/// <summary>One architecture at one input length.</summary>
/// <param name="FirstTokenSeconds">Batch-1 time to the first token (encode or prefill, plus one decoder step).</param>
/// <param name="DecodeTokensPerSecond">Generated tokens per second after the first, per batch size.</param>
/// <param name="CacheBytes">KV (and cross-attention) cache bytes of one request at the end of generation.</param>
/// <param name="MemoryBytes">Weights plus the caches of one request.</param>
/// <param name="Gflops">Analytic GFLOPs of one request (prompt and output, LM head included).</param>
public sealed record ArchPoint(string Preset, string Family, int InputLength, double FirstTokenSeconds, IReadOnlyDictionary<int, double> DecodeTokensPerSecond,
    long CacheBytes, long MemoryBytes, double Gflops);

/// <summary>The result of <c>encore bench arch</c>.</summary>
public sealed record ArchBenchmarkResult(int NewTokens, string Weights, int Runs, int Threads, MachineReport Machine, IReadOnlyList<ArchPoint> Points, string Markdown)
{
    /// <summary>KV cache storage the figures were measured with (f32 or int8).</summary>
    public string KvCache { get; init; } = "f32";
}

/// <summary>
/// The Return of the Encoder comparison (arXiv 2501.16273, Fig. 1 and Table 3): an encoder–decoder
/// against a decoder-only model of the same parameter count, random weights, across input lengths:
/// first-token latency, decode throughput, cache memory and analytic FLOPs, with the paper's
/// reported advantages beside the ratios measured here.
/// </summary>
public static class ArchBenchmark
{
    /// <summary>What the paper reports for its edge-device comparison, to print beside ours.</summary>
    public const string PaperClaims = "paper (edge devices): 47% lower first-token latency, 4.7× decode throughput, 11–16% less memory, 22% fewer FLOPs";

    /// <summary>Runs the benchmark.</summary>
    public static ArchBenchmarkResult Run(ArchBenchmarkOptions o, Action<string>? progress = null)
    {
        progress?.Invoke("probing the machine");
        var machine = MachineProbe.Run(MachineProbeOptions.Quick);
        var points = new List<ArchPoint>();
        var rng = new Random(0);
        foreach (var (ed, dec) in o.Pairs)
        {
            foreach (var name in new[] { ed, dec })
            {
                var config = Presets.Get(name);
                progress?.Invoke($"building {name}");
                using var model = LanguageModel.Create(config, seed: 1);
                model.ConvertWeights(o.Weights);
                long weightBytes = model.Parameters.All.Sum(p => p.Value.ByteLength);
                foreach (int length in o.InputLengths)
                {
                    progress?.Invoke($"{name}: {length} input tokens");
                    var rates = new Dictionary<int, double>();
                    double first = double.NaN;
                    foreach (int batch in o.Batches)
                    {
                        var prompts = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, length).Select(_ => rng.Next(2, config.VocabSize)).ToArray()).ToArray();
                        GenerationTiming.Measure(model, prompts, o.NewTokens, o.KvCache);   // warm-up
                        var f = new double[o.Runs];
                        var r = new double[o.Runs];
                        for (int i = 0; i < o.Runs; i++) (f[i], r[i]) = GenerateBenchmark.Timed(model, prompts, o.NewTokens, o.KvCache);
                        rates[batch] = MachineProbe.Median(r);
                        if (batch == 1) first = MachineProbe.Median(f);
                    }
                    long cache = CacheBytes(config, length, o.NewTokens, o.KvCache);
                    points.Add(new ArchPoint(name, config.Family.ToString(), length, first, rates, cache, weightBytes + cache, Flops(config, length, o.NewTokens) / 1e9));
                }
            }
        }
        var result = new ArchBenchmarkResult(o.NewTokens, o.Weights.Name(), o.Runs, Tensors.Threading.KernelPool.Default.ThreadCount, machine, points, "") { KvCache = o.KvCache.Name() };
        result = result with { Markdown = Markdown(result, o) };
        if (o.Plot != null) WritePlot(result, o);
        return result;
    }

    /// <summary>K/V bytes of one request at the end, stored as <paramref name="kvCache"/>: decoder self-attention over its positions, plus cross-attention over the source.</summary>
    public static long CacheBytes(ModelConfig c, int input, int output, KvCacheDType kvCache = KvCacheDType.F32)
    {
        long perPosition = 2L * c.KvHeads * kvCache.VectorBytes(c.HeadDim) * c.DecoderLayers;
        return c.Family == ModelFamily.EncoderDecoder ? perPosition * (output + input) : perPosition * (input + output);
    }

    /// <summary>
    /// Analytic FLOPs of one request (2 per multiply-add): every token through the blocks it
    /// passes (projections and FFN: 2·params; attention scores and weighted sums: 4·keys·H·hd per
    /// layer), and the LM head for the output tokens only.
    /// </summary>
    public static double Flops(ModelConfig c, int input, int output)
    {
        double d = c.DModel, a = c.AttentionDim, kv = (double)c.KvHeads * c.HeadDim, f = c.FfnDim;
        double attnProj = d * a + 2 * d * kv + a * d;
        double ffn = (c.GatedFfn ? 3 : 2) * d * f;
        double head = 2.0 * c.VocabSize * d * output;
        if (c.Family == ModelFamily.EncoderDecoder)
        {
            double enc = c.EncoderLayers * (input * 2 * (attnProj + ffn) + 4.0 * input * input * a);
            double crossKv = c.DecoderLayers * input * 2 * (2 * d * kv);
            double dec = 0;
            for (int t = 1; t <= output; t++)
                dec += c.DecoderLayers * (2 * (attnProj + (d * a + a * d) + ffn) + 4.0 * t * a + 4.0 * input * a);
            return enc + crossKv + dec + head;
        }
        double total = 0;
        total += c.DecoderLayers * (input * 2 * (attnProj + ffn) + 4.0 * input * (input + 1) / 2 * a);
        for (int t = 1; t <= output; t++) total += c.DecoderLayers * (2 * (attnProj + ffn) + 4.0 * (input + t) * a);
        return total + head;
    }

    static string Markdown(ArchBenchmarkResult r, ArchBenchmarkOptions o)
    {
        var sb = new StringBuilder();
        var ci = CultureInfo.InvariantCulture;
        foreach (var (ed, dec) in o.Pairs)
        {
            sb.AppendLine(ci, $"#### {ed} vs {dec} ({r.Weights} weights, {r.KvCache} KV cache, {r.NewTokens} output tokens, {r.Threads} threads)");
            sb.AppendLine();
            sb.Append("| input | first token enc–dec (s) | first token dec (s) | latency ratio |");
            foreach (int b in o.Batches) sb.Append(ci, $" decode b{b} enc–dec | decode b{b} dec | ratio |");
            sb.AppendLine(" cache enc–dec (MB) | cache dec (MB) | memory ratio | GFLOPs enc–dec | GFLOPs dec | FLOP ratio |");
            sb.Append("|---|---|---|---|");
            foreach (int _ in o.Batches) sb.Append("---|---|---|");
            sb.AppendLine("---|---|---|---|---|---|");
            foreach (int length in o.InputLengths)
            {
                var a = r.Points.First(p => p.Preset == ed && p.InputLength == length);
                var b = r.Points.First(p => p.Preset == dec && p.InputLength == length);
                sb.Append(ci, $"| {length} | {a.FirstTokenSeconds:0.000} | {b.FirstTokenSeconds:0.000} | {a.FirstTokenSeconds / b.FirstTokenSeconds:0.00}× |");
                foreach (int batch in o.Batches)
                    sb.Append(ci, $" {a.DecodeTokensPerSecond[batch]:0.0} | {b.DecodeTokensPerSecond[batch]:0.0} | {a.DecodeTokensPerSecond[batch] / b.DecodeTokensPerSecond[batch]:0.00}× |");
                sb.AppendLine(ci, $" {a.CacheBytes / 1e6:0.0} | {b.CacheBytes / 1e6:0.0} | {(double)a.MemoryBytes / b.MemoryBytes:0.00}× | {a.Gflops:0.0} | {b.Gflops:0.0} | {a.Gflops / b.Gflops:0.00}× |");
            }
            sb.AppendLine();
        }
        sb.AppendLine(ci, $"Ratios are encoder–decoder ÷ decoder-only (latency, memory and FLOPs: lower is better for the encoder–decoder; decode: higher). Memory = weights + caches of one request. {PaperClaims}.");
        return sb.ToString();
    }

    static void WritePlot(ArchBenchmarkResult r, ArchBenchmarkOptions o)
    {
        var plot = new ScottPlot.Plot();
        foreach (var preset in r.Points.Select(p => p.Preset).Distinct())
        {
            var pts = r.Points.Where(p => p.Preset == preset).OrderBy(p => p.InputLength).ToArray();
            var s = plot.Add.Scatter(pts.Select(p => (double)p.InputLength).ToArray(), pts.Select(p => p.FirstTokenSeconds).ToArray());
            s.LegendText = $"{preset} first token";
        }
        plot.Title($"Time to first token vs input length ({r.Weights}, {r.Threads} threads)");
        plot.XLabel("input tokens");
        plot.YLabel("seconds");
        plot.ShowLegend();
        plot.SavePng(o.Plot!, 900, 550);
    }
}
