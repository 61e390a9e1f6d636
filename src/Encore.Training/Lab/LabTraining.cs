using System.Diagnostics;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Objectives;
using Encore.Training.Trainer;

namespace Encore.Training.Lab;

/// <summary>The size of the lab's models; one default each, small enough to train in about a minute on two cores.</summary>
public sealed record LabModelSize
{
    /// <summary>D. Default 64.</summary>
    public int DModel { get; init; } = 64;
    /// <summary>Blocks of a decoder-only model. Default 4.</summary>
    public int DecoderOnlyLayers { get; init; } = 4;
    /// <summary>Encoder blocks of an encoder–decoder. Default 2.</summary>
    public int EncoderLayers { get; init; } = 2;
    /// <summary>Decoder blocks of an encoder–decoder. Default 2.</summary>
    public int DecoderLayers { get; init; } = 2;
    /// <summary>H (= Hkv). Default 4.</summary>
    public int Heads { get; init; } = 4;
    /// <summary>hd. Default 16.</summary>
    public int HeadDim { get; init; } = 16;
    /// <summary>F. Default 256.</summary>
    public int FfnDim { get; init; } = 256;

    /// <summary>Throws naming the first field out of range.</summary>
    public LabModelSize Validate()
    {
        if (DModel < 1 || DecoderOnlyLayers < 1 || EncoderLayers < 1 || DecoderLayers < 1 || Heads < 1 || HeadDim < 2 || FfnDim < 1)
            throw new ArgumentException("lab model size: every width and layer count must be positive (head_dim at least 2)");
        if (HeadDim % 4 != 0) throw new ArgumentException($"lab model size: head_dim must be a multiple of 4 (ComRoPE blocks of 4), got {HeadDim}");
        return this;
    }
}

/// <summary>How each lab model is trained: the Trainer's AdamW with warm-up and cosine decay, on fresh random examples every batch.</summary>
public sealed record LabTrainingOptions
{
    /// <summary>Optimizer steps. Default 1000.</summary>
    public int Steps { get; init; } = 1000;
    /// <summary>Examples per batch. Default 32.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Peak learning rate. Default 3e-3.</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>Seed of the data and of the weights. Default 0.</summary>
    public ulong Seed { get; init; }
    /// <summary>
    /// Weight of the encoder's own-token loss for encoder–decoders (<see cref="TrainingOptions.EncoderTokenLoss"/>): without it
    /// an encoder–decoder trained from scratch can stay blind to its source, its cross-attention uniform. Ignored by
    /// decoder-only models. Default 0.5.
    /// </summary>
    public float EncoderTokenLoss { get; init; } = 0.5f;
    /// <summary>Measure the attention entropy every this many steps (<see cref="TrainingOptions.AttentionEntropyEvery"/>); 0 never. Default 0.</summary>
    public int AttentionEntropyEvery { get; init; }
    /// <summary>The entropy regularizer added to the loss (<see cref="TrainingOptions.EntropyRegularizer"/>). Default null (off).</summary>
    public EntropyRegularizerOptions? EntropyRegularizer { get; init; }

    /// <summary>Throws naming the first option out of range.</summary>
    public LabTrainingOptions Validate()
    {
        if (Steps < 1) throw new ArgumentException($"--steps must be positive, got {Steps}");
        if (BatchSize < 1) throw new ArgumentException($"batch size must be positive, got {BatchSize}");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new ArgumentException($"learning rate must be positive, got {LearningRate}");
        if (!(EncoderTokenLoss >= 0) || !float.IsFinite(EncoderTokenLoss)) throw new ArgumentException($"encoder token loss weight must be ≥ 0, got {EncoderTokenLoss}");
        if (AttentionEntropyEvery < 0) throw new ArgumentException($"attention entropy interval cannot be negative, got {AttentionEntropyEvery}");
        EntropyRegularizer?.Validate();
        return this;
    }
}

/// <summary>What training one lab model gave.</summary>
/// <param name="Seconds">Wall time of the training steps.</param>
/// <param name="FinalLoss">Mean training loss of the last tenth of the steps.</param>
/// <param name="Curve">(step, loss) of every step.</param>
/// <param name="Entropy">The attention entropy measured every <see cref="LabTrainingOptions.AttentionEntropyEvery"/> steps (empty when never).</param>
public sealed record LabTrainingReport(double Seconds, double FinalLoss, IReadOnlyList<(long Step, double Loss)> Curve,
    IReadOnlyList<(long Step, IReadOnlyList<Metrics.AttentionEntropyLayer> Layers)> Entropy);

/// <summary>How a model did on a test set.</summary>
/// <param name="ExactMatch">Fraction of examples whose whole output is right (0–1).</param>
/// <param name="TokenAccuracy">Fraction of output tokens that are right (0–1).</param>
public readonly record struct LabScore(double ExactMatch, double TokenAccuracy);

/// <summary>
/// What the lab studies share: the models (Encore's own families and position kinds at
/// <see cref="LabModelSize"/>), rows laid out by the production objectives (<see cref="Seq2SeqObjective"/>,
/// <see cref="CausalLmObjective"/>), training with <see cref="Encore.Training.Trainer.Trainer"/> in a temporary folder,
/// and scoring by greedy generation (<see cref="Generator"/>) or by one forward pass.
/// </summary>
public static class LabTraining
{
    /// <summary>The encoder–decoder objective's ids in the lab vocabulary (source + EOS, decoder starts from pad).</summary>
    public static readonly Seq2SeqOptions Seq2Seq = new() { PadId = LabVocabulary.Pad, EosId = LabVocabulary.Eos, DecoderStartId = LabVocabulary.Pad };
    /// <summary>The decoder-only objective's ids: BOS first, EOS last, loss on the output only.</summary>
    public static readonly CausalLmOptions CausalLm = new() { PadId = LabVocabulary.Pad, EosId = LabVocabulary.Eos, BosId = LabVocabulary.Bos };

    /// <summary>
    /// The configuration of a lab model of <paramref name="family"/> whose stacks all use <paramref name="position"/>,
    /// with learned and sinusoidal tables of <paramref name="maxPositions"/> rows (longer than any test sequence).
    /// </summary>
    public static ModelConfig Config(ModelFamily family, PositionKind position, LabModelSize size, int maxPositions)
    {
        var p = new PositionConfig { Kind = position };
        bool decoderOnly = family == ModelFamily.DecoderOnly;
        return new ModelConfig
        {
            Family = family,
            VocabSize = LabVocabulary.Size,
            DModel = size.DModel,
            EncoderLayers = decoderOnly ? 0 : size.EncoderLayers,
            DecoderLayers = decoderOnly ? size.DecoderOnlyLayers : size.DecoderLayers,
            Heads = size.Heads,
            KvHeads = size.Heads,
            HeadDim = size.HeadDim,
            FfnDim = size.FfnDim,
            EncoderPositions = p,
            DecoderPositions = p,
            MaxPositions = maxPositions,
            PadTokenId = LabVocabulary.Pad,
            EosTokenId = LabVocabulary.Eos,
            BosTokenId = decoderOnly ? LabVocabulary.Bos : -1,
            DecoderStartTokenId = LabVocabulary.Pad,
        }.Validate();
    }

    /// <summary>The row an input/output example becomes for <paramref name="family"/>: <c>input → output EOS</c>, or <c>BOS input SEP → output EOS</c>.</summary>
    public static TrainingRow Row(ModelFamily family, LabExample e) => family == ModelFamily.DecoderOnly
        ? CausalLmObjective.Build([.. e.Input, LabVocabulary.Sep], e.Output, CausalLm)
        : Seq2SeqObjective.Build(e.Input, e.Output, Seq2Seq);

    /// <summary>The prompt generation starts from: the encoder's source <c>input EOS</c>, or the decoder-only prompt <c>BOS input SEP</c>.</summary>
    public static int[] Prompt(ModelFamily family, LabExample e) => family == ModelFamily.DecoderOnly
        ? [LabVocabulary.Bos, .. e.Input, LabVocabulary.Sep]
        : [.. e.Input, LabVocabulary.Eos];

    /// <summary>
    /// Trains <paramref name="model"/> for <see cref="LabTrainingOptions.Steps"/> steps on batches of rows
    /// drawn by <paramref name="row"/>, each batch from its own random stream of (seed, step), so that no two
    /// batches repeat. The Trainer writes its log and final checkpoint into a temporary folder, deleted after.
    /// </summary>
    public static LabTrainingReport Train(LanguageModel model, Func<DataRng, TrainingRow> row, LabTrainingOptions options, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(row);
        var o = options.Validate();
        var training = new TrainingOptions
        {
            MaxSteps = o.Steps,
            LearningRate = o.LearningRate,
            WarmupSteps = Math.Max(1, o.Steps / 20),
            EvalEvery = 0,
            CheckpointEvery = 0,
            KeepCheckpoints = 1,
            Seed = o.Seed,
            EncoderTokenLoss = model is EncoderDecoderModel ? o.EncoderTokenLoss : 0,
            AttentionEntropyEvery = o.AttentionEntropyEvery,
            EntropyRegularizer = o.EntropyRegularizer,
        };
        return Train(model, training, new GeneratedBatches(row, o.BatchSize, o.Seed, model is EncoderDecoderModel), cancel);
    }

    /// <summary>
    /// Trains <paramref name="model"/> with <paramref name="training"/> on <paramref name="source"/>; the Trainer writes its
    /// log and final checkpoint into a temporary folder, deleted after.
    /// </summary>
    public static LabTrainingReport Train(LanguageModel model, TrainingOptions training, IBatchSource source, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(training);
        ArgumentNullException.ThrowIfNull(source);
        string dir = Path.Combine(Path.GetTempPath(), $"encore-lab-{Environment.ProcessId}-{Guid.NewGuid():N}");
        var curve = new List<(long, double)>(training.MaxSteps);
        var entropy = new List<(long, IReadOnlyList<Metrics.AttentionEntropyLayer>)>();
        var sw = Stopwatch.StartNew();
        try
        {
            using var trainer = new Encore.Training.Trainer.Trainer(model, training, source, dir);
            trainer.OnStep = s => curve.Add((s.Step, s.Loss));
            trainer.OnAttentionEntropy = (step, layers) => entropy.Add((step, layers));
            trainer.Run(cancel);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
        }
        double seconds = sw.Elapsed.TotalSeconds;
        int tail = Math.Max(1, curve.Count / 10);
        return new LabTrainingReport(seconds, curve.Count == 0 ? double.NaN : curve.TakeLast(tail).Average(c => c.Item2), curve, entropy);
    }

    /// <summary>
    /// Greedy generation scored against <paramref name="examples"/>: exact match is the expected output followed by
    /// EOS, token accuracy the fraction of output positions (EOS included) generated right. Each example
    /// generates at most its output's length + 1 tokens.
    /// </summary>
    public static LabScore Generate(LanguageModel model, IReadOnlyList<LabExample> examples, int batchSize = 32)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(examples);
        if (examples.Count == 0) return new LabScore(double.NaN, double.NaN);
        var generator = new Generator(model);
        var family = model.Config.Family;
        int right = 0;
        long tokens = 0, rightTokens = 0;
        for (int i = 0; i < examples.Count; i += batchSize)
        {
            var chunk = examples.Skip(i).Take(batchSize).ToArray();
            var options = new GenerationOptions { MaxNewTokens = chunk.Max(e => e.Output.Length) + 1, EosTokenIds = [LabVocabulary.Eos] };
            var results = generator.GenerateIds(chunk.Select(e => Prompt(family, e)).ToArray(), options);
            for (int k = 0; k < chunk.Length; k++)
            {
                int[] expected = [.. chunk[k].Output, LabVocabulary.Eos];
                var got = results[k].Sequences[0].Tokens;
                if (got.AsSpan().SequenceEqual(expected)) right++;
                tokens += expected.Length;
                for (int j = 0; j < Math.Min(expected.Length, got.Length); j++) if (got[j] == expected[j]) rightTokens++;
            }
        }
        return new LabScore((double)right / examples.Count, (double)rightTokens / tokens);
    }

    /// <summary>
    /// One forward pass scored at the positions that carry a target: a row is exactly right when the argmax
    /// at every such position is its target. For read-outs at fixed positions (no generation).
    /// </summary>
    public static LabScore Positionwise(LanguageModel model, IReadOnlyList<TrainingRow> rows, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0) return new LabScore(double.NaN, double.NaN);
        int v = model.Config.VocabSize, right = 0;
        long tokens = 0, rightTokens = 0;
        for (int i = 0; i < rows.Count; i += batchSize)
        {
            var chunk = rows.Skip(i).Take(batchSize).ToArray();
            var batch = TrainingBatches.Collate(chunk, LabVocabulary.Pad, [.. Enumerable.Range(i, chunk.Length)], model is EncoderDecoderModel);
            using var logits = Encore.Training.Trainer.Trainer.Logits(model, batch);                  // (B, T, V)
            var values = logits.Value.AsReadOnlySpan<float>();
            for (int b = 0; b < batch.Size; b++)
            {
                bool all = true;
                for (int t = 0; t < batch.InputLength; t++)
                {
                    int target = batch.Targets[b * batch.InputLength + t];
                    if (target == Labels.Ignore) continue;
                    var row = values.Slice((b * batch.InputLength + t) * v, v);
                    int best = 0;
                    for (int c = 1; c < v; c++) if (row[c] > row[best]) best = c;
                    tokens++;
                    if (best == target) rightTokens++;
                    else all = false;
                }
                if (all) right++;
            }
        }
        return new LabScore((double)right / rows.Count, tokens == 0 ? double.NaN : (double)rightTokens / tokens);
    }

    /// <summary>
    /// Batches of freshly drawn rows: batch k of epoch e comes from the stream (seed, e, k), so every
    /// step sees new examples and a rerun sees the same ones.
    /// </summary>
    sealed class GeneratedBatches(Func<DataRng, TrainingRow> row, int batchSize, ulong seed, bool hasSource) : IBatchSource
    {
        const int PerEpoch = 100;

        public IReadOnlyList<Batch> Epoch(int epoch) => new LazyEpoch(this, epoch);

        Batch Make(int epoch, int k)
        {
            var rng = DataRng.For(seed, 0x1AB0_0000UL + (ulong)(uint)epoch, (ulong)k);
            var rows = new TrainingRow[batchSize];
            for (int i = 0; i < rows.Length; i++) rows[i] = row(rng);
            return TrainingBatches.Collate(rows, LabVocabulary.Pad, [.. Enumerable.Range(k * batchSize, batchSize)], hasSource);
        }

        sealed class LazyEpoch(GeneratedBatches owner, int epoch) : IReadOnlyList<Batch>
        {
            public Batch this[int index] => (uint)index < PerEpoch ? owner.Make(epoch, index) : throw new ArgumentOutOfRangeException(nameof(index));
            public int Count => PerEpoch;
            public IEnumerator<Batch> GetEnumerator() { for (int i = 0; i < PerEpoch; i++) yield return this[i]; }
            System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
        }
    }
}
