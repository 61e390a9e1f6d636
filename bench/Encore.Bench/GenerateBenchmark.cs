using System.Diagnostics;
using Encore.Generation;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Bench;

/// <summary>Options of <see cref="GenerateBenchmark"/> (the flags of <c>encore bench generate</c>).</summary>
public sealed record GenerateBenchmarkOptions
{
    /// <summary>Presets to measure. Default mu-330m and decoder-330m.</summary>
    public IReadOnlyList<string> Presets { get; init; } = ["mu-330m", "decoder-330m"];
    /// <summary>Batch sizes. Default 1 and 8.</summary>
    public IReadOnlyList<int> Batches { get; init; } = [1, 8];
    /// <summary>Input tokens per sequence. Default 512.</summary>
    public int InputLength { get; init; } = 512;
    /// <summary>Tokens generated per sequence (greedy, no early stop). Default 64.</summary>
    public int NewTokens { get; init; } = 64;
    /// <summary>Weight dtype: f32, bf16, f16 or q8_0. Default bf16.</summary>
    public DType Weights { get; init; } = DType.BF16;
    /// <summary>Timed runs; figures are medians. Default 3.</summary>
    public int Runs { get; init; } = 3;
    /// <summary>KV cache storage: f32 or int8. Default f32.</summary>
    public KvCacheDType KvCache { get; init; } = KvCacheDType.F32;

    /// <summary>Throws naming the first option out of range.</summary>
    public void Validate()
    {
        if (Presets.Count == 0) throw new ArgumentException("give at least one --preset");
        foreach (var p in Presets) Models.Presets.Get(p);
        if (Batches.Count == 0 || Batches.Any(b => b is < 1 or > 256)) throw new ArgumentException("batch sizes must be between 1 and 256");
        if (InputLength is < 1 or > 32768) throw new ArgumentException($"--input-length must be between 1 and 32768, got {InputLength}");
        if (NewTokens is < 2 or > 4096) throw new ArgumentException($"--new-tokens must be between 2 and 4096, got {NewTokens}");
        if (Weights == DType.I32) throw new ArgumentException("weights must be f32, bf16, f16, q8_0 or q4_0");
        if (!Enum.IsDefined(KvCache)) throw new ArgumentException($"--kv-dtype must be f32 or int8, got {(int)KvCache}");
        if (Runs is < 1 or > 100) throw new ArgumentException($"--runs must be between 1 and 100, got {Runs}");
    }
}

/// <summary>One (model, batch) figure.</summary>
/// <param name="FirstTokenSeconds">Median time from the prompt to the first token's logits (encode or prefill, plus one decoder step).</param>
/// <param name="DecodeTokensPerSecond">Generated tokens per second after the first, over the whole batch.</param>
/// <param name="BytesPerStep">Bytes one decode step reads: the weights it uses plus the caches it attends to (mean over the steps).</param>
/// <param name="BoundTokensPerSecond">Memory-bandwidth bound of batch-1 decoding: bandwidth ÷ bytes per step (per sequence for batches).</param>
/// <param name="FractionOfBound">DecodeTokensPerSecond ÷ BoundTokensPerSecond (batch 1 only).</param>
public sealed record GenerateFigure(string Preset, string Family, long Parameters, int Batch, double FirstTokenSeconds, double DecodeTokensPerSecond,
    long WeightBytesPerStep, long CacheBytesPerStep, long BytesPerStep, double BoundTokensPerSecond, double? FractionOfBound);

/// <summary>The result of <c>encore bench generate</c>.</summary>
public sealed record GenerateBenchmarkResult(int InputLength, int NewTokens, string Weights, int Runs, int Threads, MachineReport Machine, IReadOnlyList<GenerateFigure> Figures)
{
    /// <summary>KV cache storage the figures were measured with (f32 or int8).</summary>
    public string KvCache { get; init; } = "f32";
}

/// <summary>
/// First-token latency and decode throughput of greedy generation with random weights in a chosen
/// dtype, beside the memory-bandwidth bound of a decode step (the bytes of the weights it reads and
/// of the caches it attends to, divided by the measured read bandwidth).
/// </summary>
public static class GenerateBenchmark
{
    /// <summary>Runs the benchmark.</summary>
    public static GenerateBenchmarkResult Run(GenerateBenchmarkOptions o, Action<string>? progress = null)
    {
        o.Validate();
        progress?.Invoke("probing the machine");
        var machine = MachineProbe.Run(MachineProbeOptions.Default);
        var figures = new List<GenerateFigure>();
        var rng = new Random(0);
        foreach (var name in o.Presets)
        {
            var config = Presets.Get(name);
            progress?.Invoke($"building {name} with {o.Weights.Name()} weights");
            using var model = LanguageModel.Create(config, seed: 1);
            model.ConvertWeights(o.Weights);
            foreach (int batch in o.Batches)
            {
                var prompts = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, o.InputLength).Select(_ => rng.Next(2, config.VocabSize)).ToArray()).ToArray();
                progress?.Invoke($"{name}: batch {batch}, {o.InputLength} in, {o.NewTokens} out");
                GenerationTiming.Measure(model, prompts, o.NewTokens, o.KvCache);   // warm-up
                var first = new double[o.Runs];
                var rate = new double[o.Runs];
                for (int r = 0; r < o.Runs; r++) (first[r], rate[r]) = Timed(model, prompts, o.NewTokens, o.KvCache);
                var (weights, cache) = BytesPerStep(model, o.InputLength, o.NewTokens, o.Weights, o.KvCache);
                long bytes = weights + cache;
                double bound = machine.ReadGBPerSecond * 1e9 / bytes;
                double decode = MachineProbe.Median(rate);
                figures.Add(new GenerateFigure(name, config.Family.ToString(), model.ParameterCount, batch, MachineProbe.Median(first), decode,
                    weights, cache, bytes, bound, batch == 1 ? decode / bound : null));
            }
        }
        return new GenerateBenchmarkResult(o.InputLength, o.NewTokens, o.Weights.Name(), o.Runs, Tensors.Threading.KernelPool.Default.ThreadCount, machine, figures)
        {
            KvCache = o.KvCache.Name(),
        };
    }

    /// <summary>First-token seconds and decode tokens per second of one <see cref="GenerationTiming"/> run.</summary>
    internal static (double FirstSeconds, double DecodeTokensPerSecond) Timed(LanguageModel model, int[][] prompts, int newTokens, KvCacheDType kvCache = KvCacheDType.F32)
    {
        var t = GenerationTiming.Measure(model, prompts, newTokens, kvCache);
        return (t.FirstTokenSeconds, t.DecodeTokensPerSecond);
    }

    /// <summary>
    /// Bytes one batch-1 decode step reads: every weight the step multiplies by (for an
    /// encoder–decoder: the decoder, except the cross-attention key/value projections, whose outputs
    /// are cached; the tied or separate LM head), plus the self-attention cache at its mean length
    /// and the cross-attention cache, stored as <paramref name="kvCache"/>.
    /// </summary>
    public static (long Weights, long Cache) BytesPerStep(LanguageModel model, int inputLength, int newTokens, DType dtype, KvCacheDType kvCache = KvCacheDType.F32)
    {
        var c = model.Config;
        long weights = 0;
        foreach (var p in model.Parameters.All)
        {
            bool used = p.Name.StartsWith("decoder.", StringComparison.Ordinal)
                && !p.Name.Contains(".cross_attn.k_proj", StringComparison.Ordinal)
                && !p.Name.Contains(".cross_attn.v_proj", StringComparison.Ordinal);
            if (p.Name is LanguageModel.LmHead) used = true;
            if (p.Name is LanguageModel.EmbedTokens && c.TieEmbeddings) used = true;
            if (used) weights += p.Value.ByteLength;
        }
        long kvPerPosition = 2L * c.KvHeads * kvCache.VectorBytes(c.HeadDim) * c.DecoderLayers;
        double selfLength = (model is EncoderDecoderModel ? 0 : inputLength) + newTokens / 2.0;
        long cache = (long)(kvPerPosition * selfLength) + (model is EncoderDecoderModel ? kvPerPosition * inputLength : 0);
        return (weights, cache);
    }
}
