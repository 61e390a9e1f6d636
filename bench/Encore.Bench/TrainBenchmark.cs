using Encore.Tensors;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Encore.Autograd;
using Encore.Autograd.Optim;
using Encore.Models;

namespace Encore.Bench;

/// <summary>Options of <see cref="TrainBenchmark"/> (the flags of <c>encore bench train</c>).</summary>
public sealed record TrainBenchmarkOptions
{
    /// <summary>
    /// The model: a preset name. Default <c>mu-25m</c> (a ~25M-parameter encoder–decoder); a
    /// decoder-only preset trains on sequences of S + T tokens.
    /// </summary>
    public string Preset { get; init; } = "mu-25m";
    /// <summary>Sequences per batch. Default 8.</summary>
    public int Batch { get; init; } = 8;
    /// <summary>Source tokens per sequence. Default 128.</summary>
    public int SourceLength { get; init; } = 128;
    /// <summary>Target tokens per sequence. Default 128.</summary>
    public int TargetLength { get; init; } = 128;
    /// <summary>Threads of the kernel pool and of the peer. Default: the processor count.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Timed runs; the figure is their median. Default 5.</summary>
    public int Runs { get; init; } = 5;
    /// <summary>Optimizer steps per timed run. Default 2.</summary>
    public int StepsPerRun { get; init; } = 2;
    /// <summary>Run the PyTorch peer. Default true.</summary>
    public bool Peers { get; init; } = true;
    /// <summary>Python interpreter for the peer. Default null (see <see cref="PythonPeer.Interpreters"/>).</summary>
    public string? Python { get; init; }
    /// <summary>Train Encore's model with activation checkpointing per block (the peer trains as usual). Default false.</summary>
    public bool CheckpointActivations { get; init; }
    /// <summary>Storage of Encore's AdamW moments (f32 or bf16; as <c>encore train --optimizer-moments</c>). The peer keeps f32.</summary>
    public Encore.Tensors.DType OptimizerMoments { get; init; } = Encore.Tensors.DType.F32;

    /// <summary>Throws naming the first option out of range.</summary>
    public void Validate()
    {
        if (Presets.Get(Preset).Family == ModelFamily.EncoderOnly) throw new ArgumentException($"--model {Preset} is an encoder-only preset; bench train takes encoder–decoder and decoder-only models");
        if (Batch is < 1 or > 4096) throw new ArgumentException($"--batch must be between 1 and 4096, got {Batch}");
        if (SourceLength is < 1 or > 65536) throw new ArgumentException($"--source-length must be between 1 and 65536, got {SourceLength}");
        if (TargetLength is < 1 or > 65536) throw new ArgumentException($"--target-length must be between 1 and 65536, got {TargetLength}");
        if (Threads is < 1 or > 1024) throw new ArgumentException($"--threads must be between 1 and 1024, got {Threads}");
        if (Runs is < 1 or > 1000) throw new ArgumentException($"--runs must be between 1 and 1000, got {Runs}");
        if (StepsPerRun is < 1 or > 1000) throw new ArgumentException($"steps per run must be between 1 and 1000, got {StepsPerRun}");
        if (OptimizerMoments is not (Encore.Tensors.DType.F32 or Encore.Tensors.DType.BF16)) throw new ArgumentException($"--optimizer-moments must be f32 or bf16, got {OptimizerMoments.Name()}");
    }
}

/// <summary>One side of the training race.</summary>
/// <param name="SecondsPerStep">Median seconds of one optimizer step (forward, backward, AdamW).</param>
/// <param name="TokensPerSecond">B·(S + T) tokens per step over SecondsPerStep.</param>
/// <param name="PeakWorkingSetBytes">The process's peak resident memory during the benchmark.</param>
public sealed record TrainFigure(double SecondsPerStep, double TokensPerSecond, long PeakWorkingSetBytes);

/// <summary>The result of <c>encore bench train</c>.</summary>
/// <param name="FlopsPerStep">Model FLOPs of one step by <see cref="ModelFlops.TrainingStep"/> (bench/README.md).</param>
/// <param name="FlopsPerToken">FlopsPerStep ÷ B·(S + T).</param>
/// <param name="EncoreGflops">Encore's achieved model GFLOP/s: FlopsPerStep ÷ seconds per step.</param>
/// <param name="FractionOfPeak">EncoreGflops ÷ the FMA peak probed in the same run with the same threads.</param>
/// <param name="CheckpointActivations">Whether Encore trained with activation checkpointing per block.</param>
public sealed record TrainBenchmarkResult(string Preset, string Family, long Parameters, int Batch, int SourceLength, int TargetLength, int Threads, int Runs,
    MachineReport Machine, TrainFigure Encore, long ParameterAndOptimizerBytes, TrainFigure? Torch, string? TorchVersion, double? EncoreOverTorch, string? PeerNote,
    double FlopsPerStep, double FlopsPerToken, double EncoreGflops, double FractionOfPeak, bool CheckpointActivations = false, string OptimizerMoments = "f32");

/// <summary>
/// Training throughput of an encoder–decoder or decoder-only model: random token batches,
/// cross-entropy, AdamW, with the model FLOPs achieved against the FMA peak probed in the same run;
/// for an encoder–decoder, the same model and step in PyTorch eager (bench/peers/torch_train.py),
/// run after Encore in its own process with the same thread count.
/// </summary>
public static class TrainBenchmark
{
    /// <summary>Runs the benchmark; <paramref name="progress"/> hears what is being measured.</summary>
    public static TrainBenchmarkResult Run(TrainBenchmarkOptions o, Action<string>? progress = null)
    {
        o.Validate();
        progress?.Invoke("probing the machine");
        var machine = MachineProbe.Run(MachineProbeOptions.Quick);
        var config = Presets.Get(o.Preset);
        progress?.Invoke($"building {o.Preset}");
        using var pooled = Encore.Tensors.Storage.BufferPool.Enable();   // as the trainer does
        using var model = LanguageModel.Create(config, seed: 1);
        model.CheckpointActivations = o.CheckpointActivations;
        using var opt = new AdamW(model.Parameters.All, new AdamWOptions { Moments = o.OptimizerMoments }) { LearningRate = 1e-4 };
        var rng = new Random(0);
        int b = o.Batch, s = o.SourceLength, t = o.TargetLength, v = config.VocabSize;
        bool decoderOnly = config.Family == ModelFamily.DecoderOnly;
        var src = Enumerable.Range(0, b * s).Select(_ => rng.Next(2, v)).ToArray();
        var tgt = Enumerable.Range(0, b * (t + 1)).Select(_ => rng.Next(2, v)).ToArray();
        var tin = new int[b * t];
        var labels = new int[b * t];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < t; j++)
            {
                tin[i * t + j] = tgt[i * (t + 1) + j];
                labels[i * t + j] = tgt[i * (t + 1) + j + 1];
            }

        // A decoder-only model reads each source and target as one sequence and predicts every next token.
        int n = s + t;
        var seq = new int[b * n];
        var seqLabels = new int[b * n];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < n; j++)
            {
                seq[i * n + j] = j < s ? src[i * s + j] : tin[i * t + j - s];
                seqLabels[i * n + j] = j + 1 < s ? src[i * s + j + 1] : j + 1 == s ? tin[i * t] : labels[i * t + j - s];
            }

        void Step()
        {
            opt.ZeroGrad();
            using var tape = Tape.Record();
            Var loss = model switch
            {
                EncoderDecoderModel ed => Ops.CrossEntropy(Ops.Reshape(ed.Forward(src, null, tin, b), b * t, v), labels),   // (B, T, V)
                DecoderOnlyModel dec => Ops.CrossEntropy(Ops.Reshape(dec.Forward(seq, b), b * n, v), seqLabels),           // (B, S+T, V)
                _ => throw new InvalidOperationException($"bench train does not train {config.Family} models"),
            };
            tape.Backward(loss);
            opt.Update();
        }

        progress?.Invoke($"training {o.Runs}×{o.StepsPerRun} steps of batch {b}×({s}+{t})");
        Step();   // warm-up: JIT, first-touch of optimizer state
        var times = new double[o.Runs];
        for (int r = 0; r < o.Runs; r++)
        {
            var sw = Stopwatch.StartNew();
            for (int k = 0; k < o.StepsPerRun; k++) Step();
            times[r] = sw.Elapsed.TotalSeconds / o.StepsPerRun;
        }
        double step = MachineProbe.Median(times);
        long tokens = (long)b * (s + t);
        var encore = new TrainFigure(step, tokens / step, Process.GetCurrentProcess().PeakWorkingSet64);
        long paramBytes = model.ParameterCount * (4 + 4 + 2 * o.OptimizerMoments.UnitBytes());   // values, gradients, two AdamW moments

        TrainFigure? torch = null;
        string? version = null, note = null;
        if (o.Peers && decoderOnly) note = "the PyTorch peer implements encoder–decoders only";
        if (o.Peers && !decoderOnly)
        {
            progress?.Invoke("running the PyTorch peer");
            var configPath = Path.Combine(Path.GetTempPath(), $"encore-bench-train-{Environment.ProcessId}.json");
            File.WriteAllText(configPath, ModelConfigJson.Serialize(config));
            try
            {
                var output = PythonPeer.Run("torch_train.py",
                [
                    "--config", configPath, "--batch", I(b), "--source-length", I(s), "--target-length", I(t),
                    "--threads", I(o.Threads), "--runs", I(o.Runs), "--steps-per-run", I(o.StepsPerRun),
                ], o.Python, TimeSpan.FromMinutes(30));
                note = output.Note;
                if (output.Json != null)
                {
                    using var doc = JsonDocument.Parse(output.Json);
                    var root = doc.RootElement;
                    if (root.TryGetProperty("error", out var err)) note = $"PyTorch peer: {err}";
                    else
                    {
                        torch = new TrainFigure(root.GetProperty("seconds_per_step").GetDouble(), root.GetProperty("tokens_per_second").GetDouble(),
                            root.GetProperty("peak_rss_bytes").GetInt64());
                        version = root.GetProperty("torch_version").GetString();
                        long theirs = root.GetProperty("parameters").GetInt64();
                        if (theirs != model.ParameterCount) note = $"PyTorch model has {theirs} parameters, Encore's {model.ParameterCount}";
                    }
                }
            }
            finally
            {
                File.Delete(configPath);
            }
        }
        double flops = ModelFlops.TrainingStep(config, b, s, t);
        double gflops = flops / step / 1e9;
        return new TrainBenchmarkResult(o.Preset, config.Family.ToString(), model.ParameterCount, b, s, t, o.Threads, o.Runs, machine, encore, paramBytes,
            torch, version, torch is null ? null : encore.TokensPerSecond / torch.TokensPerSecond, note,
            flops, flops / tokens, gflops, machine.FmaGflops > 0 ? gflops / machine.FmaGflops : 0, o.CheckpointActivations, o.OptimizerMoments.Name());
    }

    static string I(int x) => x.ToString(CultureInfo.InvariantCulture);
}
