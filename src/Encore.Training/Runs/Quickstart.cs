using System.Diagnostics;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Tensors.Kernels;
using Encore.Training.Data;
using Encore.Training.Metrics;
using Encore.Training.Objectives;
using Encore.Training.Trainer;

namespace Encore.Training.Runs;

/// <summary>Settings of <see cref="Quickstart"/>; the defaults take about two minutes on two quiet cores.</summary>
public sealed record QuickstartOptions
{
    /// <summary>Where both checkpoints go. Default "encore-quickstart".</summary>
    public string Output { get; init; } = "encore-quickstart";
    /// <summary>Optimizer steps for each model (the same budget for both). Default 400.</summary>
    public int Steps { get; init; } = 400;
    /// <summary>Peak learning rate (AdamW, warm-up then cosine). Default 3e-3.</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>Training examples, drawn by seed from the Debian training split. Default 16000.</summary>
    public int TrainExamples { get; init; } = 16000;
    /// <summary>
    /// The field of data/debian the models learn to write from a package's description: "section"
    /// (one of 58 archive sections, such as games, python or libdevel) or "target" (the one-line
    /// synopsis). Default "section".
    /// </summary>
    public string Target { get; init; } = "section";
    /// <summary>Longest source kept, in tokens (the opening of a description carries its kind). Default 64.</summary>
    public int MaxSourceTokens { get; init; } = 64;
    /// <summary>
    /// Whether the source starts with the package's name ("name: description"), as a maintainer
    /// choosing a section sees both. Default true.
    /// </summary>
    public bool PackageName { get; init; } = true;
    /// <summary>The data folder; default: found by walking up from the program (see <see cref="BundledData.FindDataDirectory"/>).</summary>
    public string? DataDirectory { get; init; }
    /// <summary>Token budget per batch. Default 2048.</summary>
    public int MaxTokens { get; init; } = 2048;
    /// <summary>Tokenizer vocabulary. Default 1024.</summary>
    public int Vocab { get; init; } = 1024;
    /// <summary>Validation examples scored (the first of the Debian validation split). Default 200.</summary>
    public int EvalExamples { get; init; } = 200;
    /// <summary>Weight of the encoder–decoder's own-token loss (see <see cref="TrainingOptions.EncoderTokenLoss"/>). Default 0.5.</summary>
    public float EncoderTokenLoss { get; init; } = 0.5f;
    /// <summary>Seed. Default 0.</summary>
    public ulong Seed { get; init; }
}

/// <summary>One model's line in the quickstart table.</summary>
public sealed record QuickstartFigure(string Name, string Family, long Parameters, int EncoderLayers, int DecoderLayers, double TrainSeconds, double TrainTokensPerSecond,
    double ValidationLoss, double ExactMatch, double TokenF1, double FirstTokenMs, double DecodeTokensPerSecond, long CacheBytesPerRequest, string Checkpoint);

/// <summary>One validation example with both models' outputs.</summary>
public sealed record QuickstartSample(string Source, string Reference, string EncoderDecoder, string DecoderOnly);

/// <summary>What the quickstart measured.</summary>
public sealed record QuickstartResult(IReadOnlyList<QuickstartFigure> Models, IReadOnlyList<QuickstartSample> Samples,
    double BucketedPadding, double NaivePadding, int TrainExamples, int ValidationExamples, double MeanSourceTokens, double TotalSeconds,
    string Target, string MajorityAnswer, double MajorityExactMatch, bool PackageName);

/// <summary>
/// Encore's main job in one command: train a small encoder–decoder (2/3 of the layers in the
/// encoder, as in Return of the Encoder, arXiv 2501.16273) and a decoder-only model with the same
/// parameter count, on the bundled Debian task (a package's description → its archive section, or
/// its synopsis) with the same steps and batches, then compare validation quality beside the
/// majority answer, first-token latency,
/// decode speed and cache memory on the same inputs, and save both checkpoints.
/// </summary>
public static class Quickstart
{
    /// <summary>The encoder–decoder (preset <c>quickstart</c>): width 128, 4 encoder + 2 decoder layers, GQA 4/2 heads of 32, RoPE (centered in the encoder).</summary>
    public static ModelConfig EncoderDecoder(int vocab) => Presets.Get("quickstart") with { VocabSize = vocab };

    /// <summary>The decoder-only model: the same blocks, with the layer count whose parameters come closest to the encoder–decoder's.</summary>
    public static ModelConfig DecoderOnly(ModelConfig encDec) => Presets.MatchingDecoderOnly(encDec);

    /// <summary>Runs the quickstart; <paramref name="progress"/> hears each stage, <paramref name="onStep"/> each training step.</summary>
    public static QuickstartResult Run(QuickstartOptions o, Action<string>? progress = null, Action<string, StepReport>? onStep = null)
    {
        var total = Stopwatch.StartNew();
        var dataDir = o.DataDirectory ?? BundledData.FindDataDirectory()
            ?? throw new DirectoryNotFoundException("the bundled data folder (data/debian) was not found above the program or the current directory");
        var read = new DatasetReadOptions { TargetField = o.Target, SourceFields = o.PackageName ? ["package", "source"] : ["source"] };
        var all = DatasetReader.ReadPairs(Path.Combine(dataDir, BundledData.DebianTrain), read).Where(p => p.Target.Length > 0).ToList();
        var rng = DataRng.For(1000 + o.Seed, 0, 0);
        var train = Enumerable.Range(0, all.Count).Select(i => (Key: rng.NextUInt64(), Pair: all[i])).OrderBy(x => x.Key).Take(o.TrainExamples).Select(x => x.Pair).ToList();
        var validation = DatasetReader.ReadPairs(Path.Combine(dataDir, BundledData.DebianValidation), read).Where(p => p.Target.Length > 0).Take(o.EvalExamples).ToList();
        progress?.Invoke($"training a {o.Vocab}-id BPE tokenizer on {train.Count} examples");
        var tokenizer = BundledData.TrainTokenizer(train, o.Vocab);
        var edConfig = TrainingRun.ForTokenizer(EncoderDecoder(tokenizer.VocabSize), tokenizer);
        var decConfig = DecoderOnly(edConfig);

        var figures = new List<QuickstartFigure>();
        var outputs = new List<IReadOnlyList<string>>();
        double bucketed = 0, naive = 0, meanSource = 0;
        foreach (var (name, config) in new[] { ("encoder-decoder", edConfig), ("decoder-only", decConfig) })
        {
            var dir = Path.Combine(o.Output, name);
            using var model = LanguageModel.Create(config, seed: o.Seed);
            ITrainingObjective objective = model is EncoderDecoderModel
                ? new Seq2SeqObjective(Seq2SeqOptions.For(tokenizer, config))
                : new CausalLmObjective(CausalLmOptions.For(tokenizer));
            var data = TokenizedDataset.FromPairs(train, tokenizer, "debian").Truncate(o.MaxSourceTokens, null, out _);
            var valid = TokenizedDataset.FromPairs(validation, tokenizer, "debian validation").Truncate(o.MaxSourceTokens, null, out _);
            var batches = new TrainingBatches(data, objective, new BucketingOptions { MaxTokens = o.MaxTokens, Seed = o.Seed });
            if (model is EncoderDecoderModel)
            {
                var pad = batches.MeasurePadding();
                (bucketed, naive) = (pad.Bucketed.PaddingFraction, pad.Naive.PaddingFraction);
                meanSource = data.Sources.Average(s => s.Length);
            }
            var validBatches = new TrainingBatches(valid, objective, new BucketingOptions { MaxTokens = o.MaxTokens, Seed = o.Seed }).Epoch(0).ToList();
            var options = new TrainingOptions
            {
                MaxSteps = o.Steps, LearningRate = o.LearningRate, WarmupSteps = Math.Min(30, o.Steps), EvalEvery = 0, CheckpointEvery = 0, Seed = o.Seed, KeepCheckpoints = 1,
                EncoderTokenLoss = o.EncoderTokenLoss,
            };
            progress?.Invoke($"training the {name} model ({model.ParameterCount / 1e6:0.00}M parameters, {o.Steps} steps)");
            var sw = Stopwatch.StartNew();
            using (var trainer = new Trainer.Trainer(model, options, new PlannedBatches(batches), Path.Combine(o.Output, "runs", name), validBatches))
            {
                trainer.WriteExtras = d => TrainingRun.SaveTokenizer(tokenizer, d);
                if (onStep != null) trainer.OnStep = r => onStep(name, r);
                trainer.Run();
                double trainSeconds = sw.Elapsed.TotalSeconds;
                double loss = trainer.ValidationLoss();
                progress?.Invoke($"evaluating the {name} model on {validation.Count} validation examples");
                var eval = new GenerationEval(tokenizer, validation, maxNewTokens: 8);
                var predictions = eval.Predict(model);
                outputs.Add(predictions);
                var references = validation.Select(v => v.Target).ToList();
                var (firstMs, decodeTps, cacheBytes) = DecodingSpeed.Measure(model, tokenizer, validation, new DecodingSpeedOptions { Prompts = 10, NewTokens = 16 });
                Directory.CreateDirectory(dir);
                Checkpoint.Save(model, dir);
                TrainingRun.SaveTokenizer(tokenizer, dir);
                figures.Add(new QuickstartFigure(name, config.Family.ToString(), model.ParameterCount, config.Family == ModelFamily.DecoderOnly ? 0 : config.EncoderLayers,
                    config.DecoderLayers, trainSeconds, trainer.State.Tokens / trainSeconds, loss,
                    TextMetrics.ExactMatch(predictions, references), TextMetrics.TokenF1(predictions, references), firstMs, decodeTps, cacheBytes, dir));
            }
        }
        var samples = validation.Take(8).Select((v, i) => new QuickstartSample(Shorten(v.Source), v.Target, outputs[0][i], outputs[1][i])).ToList();
        // The majority answer is the training set's most frequent target, the floor a model must beat.
        var majority = train.GroupBy(p => p.Target, StringComparer.Ordinal).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).First().Key;
        double majorityExact = TextMetrics.ExactMatch(validation.Select(_ => majority).ToList(), validation.Select(v => v.Target).ToList());
        return new QuickstartResult(figures, samples, bucketed, naive, train.Count, validation.Count, meanSource, total.Elapsed.TotalSeconds, o.Target, majority, majorityExact, o.PackageName);
    }

    static string Shorten(string s) => s.Length <= 90 ? s : s[..40] + " … " + s[^45..];

    sealed class PlannedBatches(TrainingBatches batches) : IBatchSource
    {
        public IReadOnlyList<Batch> Epoch(int epoch) => batches.Epoch(epoch).ToList();
    }
}
