using System.Diagnostics;
using Encore.Autograd;
using Encore.Models;

namespace Encore.Bench;

/// <summary>Options of <see cref="ForwardBenchmark"/> (the flags of <c>encore bench forward</c>).</summary>
public sealed record ForwardBenchmarkOptions
{
    /// <summary>Presets to compare. Default mu-330m and decoder-330m.</summary>
    public IReadOnlyList<string> Presets { get; init; } = ["mu-330m", "decoder-330m"];
    /// <summary>Input tokens. Default 1024.</summary>
    public int Length { get; init; } = 1024;
    /// <summary>Timed runs; the figure is their median. Default 3.</summary>
    public int Runs { get; init; } = 3;

    /// <summary>Throws naming the first option out of range.</summary>
    public void Validate()
    {
        if (Presets.Count == 0) throw new ArgumentException("give at least one --preset");
        foreach (var p in Presets) Models.Presets.Get(p);
        if (Length is < 1 or > 65536) throw new ArgumentException($"--length must be between 1 and 65536, got {Length}");
        if (Runs is < 1 or > 100) throw new ArgumentException($"--runs must be between 1 and 100, got {Runs}");
    }
}

/// <summary>One model's figure.</summary>
/// <param name="Seconds">Median seconds of one forward pass over the input (encoder–decoder: encode, then the first decoder step).</param>
/// <param name="TokensPerSecond">Input tokens per second.</param>
public sealed record ForwardFigure(string Preset, string Family, long Parameters, double Seconds, double TokensPerSecond);

/// <summary>The result of <c>encore bench forward</c>.</summary>
public sealed record ForwardBenchmarkResult(int Length, int Runs, int Threads, MachineReport Machine, IReadOnlyList<ForwardFigure> Models);

/// <summary>
/// F32 forward throughput over one input of a given length, batch 1, random weights, up to the
/// logits of the first generated token: an encoder–decoder encodes the source and runs the first
/// decoder step; a decoder-only model runs its whole prompt (the LM head on the last position).
/// </summary>
public static class ForwardBenchmark
{
    /// <summary>Runs the benchmark.</summary>
    public static ForwardBenchmarkResult Run(ForwardBenchmarkOptions o, Action<string>? progress = null)
    {
        o.Validate();
        var machine = MachineProbe.Run(MachineProbeOptions.Quick);
        var figures = new List<ForwardFigure>();
        var rng = new Random(0);
        foreach (var name in o.Presets)
        {
            var config = Presets.Get(name);
            progress?.Invoke($"building {name}");
            using var model = LanguageModel.Create(config, seed: 1);
            var ids = Enumerable.Range(0, o.Length).Select(_ => rng.Next(2, config.VocabSize)).ToArray();
            void Pass()
            {
                switch (model)
                {
                    case EncoderDecoderModel ed:
                        using (var memory = ed.Encode(ids, 1))
                        using (var logits = ed.Decode(memory, null, [config.DecoderStartTokenId], 1)) { }
                        break;
                    case DecoderOnlyModel dec:
                        using (var cache = dec.CreateCache(1, ids.Length))
                        using (var logits = dec.Prefill(ids, 1, cache)) { }
                        break;
                    case EncoderOnlyModel enc:
                        using (var h = enc.Forward(ids, 1)) { }
                        break;
                }
            }
            progress?.Invoke($"timing {name} on {o.Length} tokens");
            Pass();   // warm-up
            var times = new double[o.Runs];
            for (int r = 0; r < o.Runs; r++)
            {
                var sw = Stopwatch.StartNew();
                Pass();
                times[r] = sw.Elapsed.TotalSeconds;
            }
            double s = MachineProbe.Median(times);
            figures.Add(new ForwardFigure(name, config.Family.ToString(), model.ParameterCount, s, o.Length / s));
        }
        return new ForwardBenchmarkResult(o.Length, o.Runs, Tensors.Threading.KernelPool.Default.ThreadCount, machine, figures);
    }
}
