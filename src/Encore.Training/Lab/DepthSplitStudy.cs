using System.Diagnostics;
using System.Globalization;
using System.Text;
using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Runs;
using Encore.Training.Trainer;

namespace Encore.Training.Lab;

/// <summary>An encoder–decoder's layers: <see cref="Encoder"/> encoder blocks and <see cref="Decoder"/> decoder blocks, written "E+D".</summary>
public readonly record struct DepthSplit(int Encoder, int Decoder)
{
    /// <summary>"E+D", e.g. "8+4".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Encoder}+{Decoder}");

    /// <summary>The split written "E+D" (each 1–64); throws naming <paramref name="option"/>.</summary>
    public static DepthSplit Parse(string text, string option = "--splits")
    {
        var parts = (text ?? "").Trim().Split('+');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int e)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int d) && e is >= 1 and <= 64 && d is >= 1 and <= 64)
            return new DepthSplit(e, d);
        throw new ArgumentException($"{option}: '{text}' is not a split ENCODER+DECODER with 1–64 layers each, e.g. 8+4");
    }
}

/// <summary>Settings of <see cref="DepthSplitStudy"/>.</summary>
public sealed record DepthSplitOptions
{
    /// <summary>The splits compared; the first one with as many encoder as decoder layers (else the first) is the reference. Default 6+6, 8+4, 10+2, 4+8.</summary>
    public IReadOnlyList<DepthSplit> Splits { get; init; } = [new(6, 6), new(8, 4), new(10, 2), new(4, 8)];
    /// <summary>D. Default 128 (the Mu recipe's students).</summary>
    public int DModel { get; init; } = 128;
    /// <summary>Query heads. Default 4.</summary>
    public int Heads { get; init; } = 4;
    /// <summary>Key/value heads (GQA). Default 2.</summary>
    public int KvHeads { get; init; } = 2;
    /// <summary>hd. Default 32.</summary>
    public int HeadDim { get; init; } = 32;
    /// <summary>F. Default 512.</summary>
    public int FfnDim { get; init; } = 512;
    /// <summary>Optimizer steps per model. Default 1500.</summary>
    public int Steps { get; init; } = 1500;
    /// <summary>Peak learning rate (warm-up, then cosine decay). Default 3e-3.</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>Warm-up steps. Default 30.</summary>
    public int WarmupSteps { get; init; } = 30;
    /// <summary>Token budget of a batch (length-bucketed). Default 4096.</summary>
    public int MaxTokens { get; init; } = 4096;
    /// <summary>Sources are cut to this many tokens. Default 128.</summary>
    public int MaxSourceTokens { get; init; } = 128;
    /// <summary>Weight of the encoder's own-token loss (<see cref="TrainingOptions.EncoderTokenLoss"/>). Default 0.5, as in the Mu recipe.</summary>
    public float EncoderTokenLoss { get; init; } = 0.5f;
    /// <summary>Training examples read (the first of the bundled training split); 0 reads all. Default 0.</summary>
    public int TrainExamples { get; init; }
    /// <summary>Ids of the byte-level BPE trained on the training examples. Default 2048.</summary>
    public int VocabSize { get; init; } = 2048;
    /// <summary>Validation examples scored (loss and greedy ROUGE-L). Default 300.</summary>
    public int EvalExamples { get; init; } = 300;
    /// <summary>Tokens generated per validation example. Default 24.</summary>
    public int MaxNewTokens { get; init; } = 24;
    /// <summary>Prompts timed per round (batch 1, greedy). Default 20.</summary>
    public int SpeedPrompts { get; init; } = 20;
    /// <summary>Tokens generated per timed prompt (all forced). Default 24.</summary>
    public int SpeedNewTokens { get; init; } = 24;
    /// <summary>Timing rounds; every round times every model once, in turn, and the medians are reported. Default 3.</summary>
    public int SpeedRounds { get; init; } = 3;
    /// <summary>Seed of the weights and of the batch order. Default 0.</summary>
    public ulong Seed { get; init; }
    /// <summary>The folder holding debian/ (null: the bundled data, <see cref="BundledData.FindDataDirectory"/>).</summary>
    public string? DataDirectory { get; init; }

    /// <summary>The full study: 12 layers split four ways, 1500 steps each, as the Mu recipe trains its students.</summary>
    public static DepthSplitOptions Full(ulong seed = 0) => new() { Seed = seed };

    /// <summary>The quick study: 6 layers split four ways (3+3, the Mu split 4+2, 5+1, and 2+4), 400 steps each on 20,000 examples.</summary>
    public static DepthSplitOptions Quick(ulong seed = 0) => new()
    {
        Splits = [new(3, 3), new(4, 2), new(5, 1), new(2, 4)],
        Steps = 400,
        TrainExamples = 20_000,
        EvalExamples = 200,
        SpeedPrompts = 10,
        Seed = seed,
    };

    /// <summary>Throws naming the first setting out of range.</summary>
    public DepthSplitOptions Validate()
    {
        if (Splits.Count == 0) throw new ArgumentException("--splits: give at least one split");
        if (Splits.Distinct().Count() != Splits.Count) throw new ArgumentException("--splits: a split is given twice");
        if (DModel < 1 || Heads < 1 || KvHeads < 1 || HeadDim < 2 || FfnDim < 1 || Heads % KvHeads != 0)
            throw new ArgumentException("depth-split model: widths must be positive and heads a multiple of kv heads");
        if (Steps < 1) throw new ArgumentException($"--steps must be positive, got {Steps}");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new ArgumentException($"--lr must be positive, got {LearningRate}");
        if (WarmupSteps < 0) throw new ArgumentException($"warm-up steps must be ≥ 0, got {WarmupSteps}");
        if (MaxTokens < 64) throw new ArgumentException($"the batch token budget must be at least 64, got {MaxTokens}");
        if (MaxSourceTokens < 1) throw new ArgumentException($"max source tokens must be positive, got {MaxSourceTokens}");
        if (TrainExamples < 0) throw new ArgumentException($"--train-examples must be ≥ 0, got {TrainExamples}");
        if (VocabSize < 300) throw new ArgumentException($"the vocabulary needs at least 300 ids (256 bytes and the specials), got {VocabSize}");
        if (EvalExamples < 1) throw new ArgumentException($"--examples must be positive, got {EvalExamples}");
        if (MaxNewTokens < 1) throw new ArgumentException($"max new tokens must be positive, got {MaxNewTokens}");
        if (SpeedRounds < 1) throw new ArgumentException($"--speed-rounds must be positive, got {SpeedRounds}");
        new DecodingSpeedOptions { Prompts = SpeedPrompts, NewTokens = SpeedNewTokens }.Validate();
        return this;
    }

    /// <summary>The configuration of <paramref name="split"/>: the Mu shape (RoPE, GQA, RMSNorm, tied embeddings) with this depth.</summary>
    public ModelConfig Config(DepthSplit split) => new ModelConfig
    {
        Family = ModelFamily.EncoderDecoder,
        DModel = DModel,
        EncoderLayers = split.Encoder,
        DecoderLayers = split.Decoder,
        Heads = Heads,
        KvHeads = KvHeads,
        HeadDim = HeadDim,
        FfnDim = FfnDim,
        MaxPositions = 2048,
    };
}

/// <summary>One split's model, its quality and its speed.</summary>
/// <param name="Split">"E+D".</param>
/// <param name="EncoderLayers">E.</param>
/// <param name="DecoderLayers">D.</param>
/// <param name="Parameters">Parameter count.</param>
/// <param name="ParameterRatio">Parameters ÷ the reference split's.</param>
/// <param name="TrainSeconds">Wall time of the training steps.</param>
/// <param name="FinalLoss">Mean training loss over the last tenth of the steps.</param>
/// <param name="ValidationLoss">Mean cross-entropy per target token on the validation examples (nats).</param>
/// <param name="RougeL">Greedy ROUGE-L on the validation examples (0–100).</param>
/// <param name="FirstTokenMs">Median over the rounds of the median first-token latency (batch 1).</param>
/// <param name="DecodeTokensPerSecond">Median over the rounds of the batch-1 rate after the first token.</param>
/// <param name="DecodeSpeedup">Decode tokens/s ÷ the reference split's.</param>
/// <param name="FirstTokenSpeedup">The reference split's first-token latency ÷ this one's.</param>
public sealed record DepthSplitScore(string Split, int EncoderLayers, int DecoderLayers, long Parameters, double ParameterRatio, double TrainSeconds, double FinalLoss,
    double ValidationLoss, double RougeL, double FirstTokenMs, double DecodeTokensPerSecond, double DecodeSpeedup, double FirstTokenSpeedup);

/// <summary>What <see cref="DepthSplitStudy.Run"/> measured.</summary>
public sealed record DepthSplitResult(string Study, string Claim, string Reference, int Steps, int TokensPerBatch, int TrainExamples, ulong Seed, int EvalExamples,
    int SpeedPrompts, int SpeedNewTokens, int SpeedRounds, int Threads, IReadOnlyList<DepthSplitScore> Splits, IReadOnlyList<BaselineScore> Baselines,
    IReadOnlyList<string> Observed, double Seconds)
{
    /// <summary>The table in GitHub markdown.</summary>
    public string ToMarkdown()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(ci, $"{Steps} steps of ≤ {TokensPerBatch} tokens per model on {TrainExamples} training examples, {EvalExamples} validation examples (greedy, ≤ 24 tokens), ");
        sb.Append(ci, $"speed at batch 1 on {SpeedPrompts} prompts × {SpeedNewTokens} tokens, median of {SpeedRounds} interleaved rounds, {Threads} thread(s); reference {Reference}:\n\n");
        sb.Append("| split | params | train s | final loss | val loss | ROUGE-L | 1st token ms | decode tok/s | decode × | 1st token × |\n");
        sb.Append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        foreach (var s in Splits)
            sb.Append(ci, $"| {s.Split} | {ModelComparison.Parameters(s.Parameters)} ({s.ParameterRatio:0.00}×) | {s.TrainSeconds:0} | {s.FinalLoss:0.000} | {s.ValidationLoss:0.000} | {s.RougeL:0.0} | {s.FirstTokenMs:0.00} | {s.DecodeTokensPerSecond:0} | {s.DecodeSpeedup:0.00} | {s.FirstTokenSpeedup:0.00} |\n");
        foreach (var b in Baselines)
            sb.Append(ci, $"| {b.Name} baseline | | | | | {(b.Metrics.TryGetValue("rouge_l", out var r) ? r.ToString("0.0", ci) : "–")} | | | | |\n");
        LengthStudyResult.AppendClaim(sb, "2503.05931", Claim, Observed);
        return sb.ToString();
    }
}

/// <summary>
/// Where an encoder–decoder's layers should go ("Training and Inference Efficiency of Encoder-Decoder Speech
/// Models", NVIDIA Canary, arXiv 2503.05931; and the 2/3 encoder split of "Return of the Encoder"): encoder–decoders
/// of one width with the layers split differently between the stacks, each trained with the same steps, batches and
/// schedule on the bundled Debian task (description → synopsis), then scored on validation loss and greedy ROUGE-L,
/// and timed at batch 1 (first-token latency, decode tokens/s) in interleaved rounds. The encoder runs once per
/// request and the decoder once per token, so moving layers into the encoder should speed decoding nearly in
/// proportion to the decoder's depth; the question is what it costs in quality.
/// </summary>
public static class DepthSplitStudy
{
    /// <summary>The paper's finding, and the pass criterion of the project's research notes.</summary>
    public const string Claim = "moving parameters from the decoder to the encoder gives a 3× inference speed-up at preserved accuracy " +
        "(Canary-1B: 24+24 layers → Canary-1B-Flash: 32+4); at equal parameters, 10+2 against 6+6 should decode ≥ 2× faster with ≤ 1 point metric loss.";

    /// <summary>The reference split: the first with as many encoder as decoder layers, else the first.</summary>
    public static DepthSplit Reference(IReadOnlyList<DepthSplit> splits) =>
        splits.FirstOrDefault(s => s.Encoder == s.Decoder, splits[0]);

    /// <summary>Runs the study; <paramref name="progress"/> hears each stage.</summary>
    public static DepthSplitResult Run(DepthSplitOptions options, Action<string>? progress = null, CancellationToken cancel = default)
    {
        var o = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
        var total = Stopwatch.StartNew();
        string data = o.DataDirectory ?? BundledData.FindDataDirectory()
            ?? throw new FileNotFoundException("the bundled data folder (data/debian) was not found beside the program or above the current folder");
        string trainPath = Path.Combine(data, BundledData.DebianTrain), validPath = Path.Combine(data, BundledData.DebianValidation);
        foreach (var p in new[] { trainPath, validPath })
            if (!File.Exists(p)) throw new FileNotFoundException($"{p}: the depth-split study trains on the bundled Debian task and this file is missing", p);

        var pairs = DatasetReader.ReadPairs(trainPath).Take(o.TrainExamples > 0 ? o.TrainExamples : int.MaxValue).ToList();
        var validation = DatasetReader.ReadPairs(validPath).Take(o.EvalExamples).ToList();
        progress?.Invoke($"training a {o.VocabSize}-id BPE tokenizer on {pairs.Count} training examples");
        var tokenizer = BundledData.TrainTokenizer(pairs, o.VocabSize);
        int maxTarget = o.MaxTokens / 4;
        var dataset = TokenizedDataset.FromPairs(pairs, tokenizer, Path.GetFileName(trainPath))
            .Truncate(Math.Min(o.MaxSourceTokens, o.MaxTokens - maxTarget - 4), maxTarget, out _);

        var reference = Reference(o.Splits);
        var models = new List<(DepthSplit Split, LanguageModel Model, LabTrainingReport Report, EvaluationResult Eval)>();
        try
        {
            foreach (var split in o.Splits)
            {
                cancel.ThrowIfCancellationRequested();
                string tag = $"[{models.Count + 1}/{o.Splits.Count}] {split}";
                var model = LanguageModel.Create(TrainingRun.ForTokenizer(o.Config(split), tokenizer), o.Seed);
                progress?.Invoke($"{tag}: {ModelComparison.Parameters(model.ParameterCount)} parameters, training {o.Steps} steps");
                LabTrainingReport report;
                EvaluationResult eval;
                try
                {
                    report = Train(model, tokenizer, dataset, o, cancel);
                    eval = Evaluation.Run(model, tokenizer, validation, new EvaluationOptions
                    {
                        MaxNewTokens = o.MaxNewTokens,
                        MaxSourceTokens = o.MaxSourceTokens,
                        MaxTokens = o.MaxTokens,
                        Samples = 0,
                    });
                }
                catch
                {
                    model.Dispose();
                    throw;
                }
                models.Add((split, model, report, eval));
                progress?.Invoke($"{tag}: {report.Seconds:0} s, validation loss {eval.Loss:0.000}, ROUGE-L {Rouge(eval.Metrics):0.0}");
            }

            // Timing in interleaved rounds, so a change of load touches every split alike.
            var speeds = models.Select(_ => new List<DecodingSpeed>()).ToList();
            var speed = new DecodingSpeedOptions { Prompts = o.SpeedPrompts, NewTokens = o.SpeedNewTokens };
            for (int round = 0; round < o.SpeedRounds; round++)
            {
                progress?.Invoke($"timing round {round + 1}/{o.SpeedRounds}: batch 1, {o.SpeedNewTokens} tokens from each of {Math.Min(o.SpeedPrompts, validation.Count)} prompts");
                for (int i = 0; i < models.Count; i++)
                {
                    cancel.ThrowIfCancellationRequested();
                    speeds[i].Add(DecodingSpeed.Measure(models[i].Model, tokenizer, validation, speed));
                }
            }

            int r = o.Splits.ToList().IndexOf(reference);
            double refFirst = Median(speeds[r].Select(s => s.FirstTokenMs)), refDecode = Median(speeds[r].Select(s => s.DecodeTokensPerSecond));
            long refParams = models[r].Model.ParameterCount;
            var scores = models.Select((m, i) =>
            {
                double first = Median(speeds[i].Select(s => s.FirstTokenMs)), decode = Median(speeds[i].Select(s => s.DecodeTokensPerSecond));
                return new DepthSplitScore(m.Split.ToString(), m.Split.Encoder, m.Split.Decoder, m.Model.ParameterCount, (double)m.Model.ParameterCount / refParams,
                    m.Report.Seconds, m.Report.FinalLoss, m.Eval.Loss, Rouge(m.Eval.Metrics), first, decode, decode / refDecode, refFirst / first);
            }).ToList();
            return new DepthSplitResult("depth-split", Claim, reference.ToString(), o.Steps, o.MaxTokens, pairs.Count, o.Seed, validation.Count,
                Math.Min(o.SpeedPrompts, validation.Count), o.SpeedNewTokens, o.SpeedRounds, Tensors.Threading.KernelPool.Default.ThreadCount,
                scores, Evaluation.Baselines(validation), Observe(scores, reference.ToString()), total.Elapsed.TotalSeconds);
        }
        finally
        {
            foreach (var m in models) m.Model.Dispose();
        }
    }

    // The Trainer on the shared batches (same order for every split: the batch plan depends on the seed and the
    // lengths alone), writing into a temporary folder deleted after.
    static LabTrainingReport Train(LanguageModel model, TextTokenizer tokenizer, TokenizedDataset data, DepthSplitOptions o, CancellationToken cancel)
    {
        var objective = TrainingRun.MakeObjective(ObjectiveKind.Auto, model, tokenizer, plainText: false, o.Seed);
        var batches = new TrainingBatches(data, objective, new BucketingOptions { MaxTokens = o.MaxTokens, Seed = o.Seed });
        var training = new TrainingOptions
        {
            MaxSteps = o.Steps,
            LearningRate = o.LearningRate,
            WarmupSteps = o.WarmupSteps,
            EvalEvery = 0,
            CheckpointEvery = 0,
            KeepCheckpoints = 1,
            Seed = o.Seed,
            EncoderTokenLoss = o.EncoderTokenLoss,
        };
        return LabTraining.Train(model, training, batches.AsSource(), cancel);
    }

    static double Rouge(IReadOnlyDictionary<string, double> metrics) => metrics.TryGetValue("rouge_l", out var v) ? v : double.NaN;

    static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToList();
        return v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2;
    }

    /// <summary>What the scores say about the claim: each split against the reference, and the research notes' pass criterion for the most encoder-heavy split.</summary>
    internal static List<string> Observe(IReadOnlyList<DepthSplitScore> scores, string reference)
    {
        var ci = CultureInfo.InvariantCulture;
        var lines = new List<string>();
        var r = scores.First(s => s.Split == reference);
        foreach (var s in scores.Where(s => s != r))
            lines.Add(string.Create(ci, $"{s.Split} against {r.Split}: decode {s.DecodeSpeedup:0.00}×, first token {s.FirstTokenSpeedup:0.00}×, ROUGE-L {s.RougeL - r.RougeL:+0.0;-0.0;0.0}, validation loss {s.ValidationLoss - r.ValidationLoss:+0.000;-0.000;0.000}, {s.ParameterRatio:0.00}× the parameters."));
        var heavy = scores.Where(s => s.EncoderLayers > s.DecoderLayers).OrderByDescending(s => (double)s.EncoderLayers / s.DecoderLayers).FirstOrDefault();
        if (heavy != null && heavy != r)
        {
            bool fast = heavy.DecodeSpeedup >= 2, kept = heavy.RougeL >= r.RougeL - 1;
            lines.Add(string.Create(ci, $"pass criterion (≥ 2× decoding, ≤ 1 point ROUGE-L loss) for {heavy.Split} against {r.Split}: {(fast && kept ? "met" : "not met")} ") +
                $"({(fast ? "fast enough" : "not 2× faster")}, {(kept ? "quality kept" : "quality lost")}).");
        }
        return lines;
    }
}
