using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Encore.Autograd;
using Encore.Autograd.Optim;
using Encore.Formats;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Training.Metrics;
using Encore.Training.Objectives;

namespace Encore.Training.Trainer;

/// <summary>Batches of a training set, epoch by epoch; the same epoch always gives the same batches in the same order.</summary>
public interface IBatchSource
{
    /// <summary>The batches of <paramref name="epoch"/> (0-based), in order.</summary>
    IReadOnlyList<Batch> Epoch(int epoch);
}

/// <summary>A fixed list of batches, the same every epoch (tests, small sets).</summary>
public sealed class FixedBatches(IReadOnlyList<Batch> batches) : IBatchSource
{
    /// <inheritdoc />
    public IReadOnlyList<Batch> Epoch(int epoch) => batches;
}

/// <summary>Where a run stands; saved as <c>trainer_state.json</c> in every checkpoint.</summary>
public sealed record TrainerState
{
    /// <summary>Optimizer steps done.</summary>
    public long Step { get; init; }
    /// <summary>Current epoch.</summary>
    public int Epoch { get; init; }
    /// <summary>Micro-batches of the current epoch already consumed.</summary>
    public int BatchInEpoch { get; init; }
    /// <summary>Real tokens trained on.</summary>
    public long Tokens { get; init; }
    /// <summary>The run's seed (a resumed run must use the same).</summary>
    public ulong Seed { get; init; }
    /// <summary>Training wall-clock seconds so far.</summary>
    public double Seconds { get; init; }
    /// <summary>Loss of the last step.</summary>
    public double LastLoss { get; init; }
}

/// <summary>
/// A LoRA run: <see cref="Adapter"/> (active on the model) is trained and the base stays frozen;
/// checkpoints hold the adapter in PEFT's layout, its tensors named as <see cref="BaseModelType"/>
/// names the base's modules, with <see cref="BaseModel"/> as base_model_name_or_path.
/// </summary>
public sealed record AdapterTraining(LoraAdapter Adapter, string BaseModelType, string BaseModel);

/// <summary>What one optimizer step reports.</summary>
public sealed record StepReport(long Step, long MaxSteps, double Loss, double LearningRate, double GradientNorm, double TokensPerSecond, long Tokens, TimeSpan Elapsed, TimeSpan Remaining);

/// <summary>What an evaluation reports: validation loss, perplexity, and any generation metrics.</summary>
public sealed record EvalReport(long Step, double Loss, double Perplexity, IReadOnlyDictionary<string, double> Metrics);

/// <summary>
/// Trains a model on batches with cross-entropy (and optionally distillation from a teacher):
/// forward and backward on a tape, gradient accumulation, clipping, the optimizer and its
/// schedule, periodic evaluation, atomic checkpoints (weights, optimizer state, trainer state)
/// and a <c>metrics.jsonl</c> log with a loss-curve PNG. Everything that varies from step to step
/// derives from the seed and the step number, so <see cref="Resume"/> after a kill continues to
/// the same final weights as an uninterrupted run.
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly LanguageModel _model;
    readonly TrainingOptions _o;
    readonly IBatchSource _train;
    readonly IReadOnlyList<Batch>? _validation;
    readonly Distillation? _teacher;
    readonly Optimizer _optimizer;
    readonly string _dir;
    readonly List<(long, double)> _trainCurve = [];
    readonly List<(long, double)> _evalCurve = [];
    readonly AdapterTraining? _adapter;
    readonly EntropyRegularizer? _entropyReg;
    readonly List<(long Step, IReadOnlyList<AttentionEntropyLayer> Layers)> _entropyCurve = [];
    double _entropyRegSum;

    /// <summary>
    /// Sets up a run writing into <paramref name="outputDir"/>. With <paramref name="adapter"/> (the model's active
    /// adapter), only the adapter is trained: every base parameter is frozen and the optimizer holds the adapter's alone.
    /// </summary>
    public Trainer(LanguageModel model, TrainingOptions options, IBatchSource train, string outputDir,
        IReadOnlyList<Batch>? validation = null, Distillation? teacher = null, AdapterTraining? adapter = null)
    {
        _model = model;
        _o = options.Validate();
        _adapter = adapter;
        if (adapter != null)
        {
            if (!ReferenceEquals(model.Adapters.Active, adapter.Adapter)) throw new ArgumentException("the adapter trained must be the model's active adapter");
            if (_o.CrossAttentionOnlySteps > 0) throw new ArgumentException("a LoRA run trains the adapter alone; a cross-attention-only warm-up does not apply to it");
            // The precedent is the cross-attention warm-up's freezing: a frozen parameter gets no gradient (its var does
            // not require one), so backward skips dW of every base layer and the optimizer never sees it.
            foreach (var p in model.Parameters.All)
                if (p.Trainable)
                {
                    p.Trainable = false;
                    p.ZeroGrad();
                }
        }
        if (_o.CrossAttentionOnlySteps > 0 && !model.Parameters.All.Any(p => p.Trainable && IsCrossAttention(p.Name)))
            throw new ArgumentException($"a cross-attention-only warm-up needs an encoder–decoder model; this {model.Config.Family} model has no cross-attention to train");
        if (_o.EarlyExit != null && model is not (EncoderDecoderModel or DecoderOnlyModel))
            throw new ArgumentException($"an early-exit loss trains a decoder's layers; this {model.Config.Family} model has no decoder");
        model.CheckpointActivations = _o.CheckpointActivations;
        _train = train;
        _validation = validation;
        _teacher = teacher;
        _dir = outputDir;
        Directory.CreateDirectory(outputDir);
        RemoveStaleTemporaries(outputDir);
        var ps = adapter != null ? adapter.Adapter.Parameters.All : model.Parameters.All.Where(p => p.Trainable);
        if (_o.EntropyRegularizer != null)
        {
            _entropyReg = new EntropyRegularizer(model, _o.EntropyRegularizer);
            ps = ps.Concat(_entropyReg.Thresholds);
        }
        _optimizer = options.Optimizer switch
        {
            OptimizerKind.Adafactor => new Adafactor(ps, new AdafactorOptions { WeightDecay = options.WeightDecay }),
            OptimizerKind.Sgd => new Sgd(ps, new SgdOptions { WeightDecay = options.WeightDecay }),
            _ => new AdamW(ps, new AdamWOptions { WeightDecay = options.WeightDecay, Moments = options.OptimizerMoments }),
        };
        State = new TrainerState { Seed = options.Seed };
        if (teacher != null && options.DistillOnPolicy) _sampler = new OnPolicySampler(model, options.OnPolicy);
        if (options.CrossAttentionOnlySteps > 0) _frozenInWarmup = _optimizer.Parameters.Where(p => !IsCrossAttention(p.Name)).ToArray();
    }

    // Parameters frozen during the cross-attention-only warm-up (null without one).
    readonly Parameter[]? _frozenInWarmup;
    bool _warmupFrozen;

    /// <summary>Whether <paramref name="name"/> is a cross-attention parameter (projections or norm) of an encoder–decoder's decoder.</summary>
    public static bool IsCrossAttention(string name) =>
        name.Contains(".cross_attn.", StringComparison.Ordinal) || name.Contains(".cross_attn_norm.", StringComparison.Ordinal);

    // Freezes everything but cross-attention during the first CrossAttentionOnlySteps steps, and unfreezes it after.
    void SetWarmupFrozen(bool frozen)
    {
        if (_frozenInWarmup is null || frozen == _warmupFrozen) return;
        foreach (var p in _frozenInWarmup)
        {
            p.Trainable = !frozen;
            if (frozen) p.ZeroGrad();
        }
        _warmupFrozen = frozen;
    }

    readonly OnPolicySampler? _sampler;

    /// <summary>Where the run stands.</summary>
    public TrainerState State { get; private set; }

    /// <summary>The options the run was made with.</summary>
    public TrainingOptions Options => _o;

    /// <summary>Values the optimizer updates (the adapter's alone in a LoRA run).</summary>
    public long TrainableParameters => _optimizer.Parameters.Sum(p => p.Length);

    /// <summary>Bytes of optimizer state (AdamW: two moments per trained value).</summary>
    public long OptimizerStateBytes => _optimizer.SaveState().Tensors.Sum(kv => kv.Value.ByteLength);

    /// <summary>
    /// Times one forward and backward pass of the training loss over <paramref name="batch"/>
    /// (teacher included) without updating anything: the gradients it leaves are cleared.
    /// </summary>
    public TimeSpan TimePass(Batch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var sw = Stopwatch.StartNew();
        using (var tape = Tape.Record())
        {
            var loss = Loss(batch, DropoutSeed(0, 0));
            tape.Backward(loss);
        }
        var elapsed = sw.Elapsed;
        _optimizer.ZeroGrad();
        return elapsed;
    }

    /// <summary>Called after every optimizer step.</summary>
    public Action<StepReport>? OnStep { get; set; }

    /// <summary>Called with each measurement of <see cref="TrainingOptions.AttentionEntropyEvery"/> (step, layers).</summary>
    public Action<long, IReadOnlyList<AttentionEntropyLayer>>? OnAttentionEntropy { get; set; }

    /// <summary>Called after every evaluation.</summary>
    public Action<EvalReport>? OnEval { get; set; }

    /// <summary>Extra evaluation metrics (e.g. exact match of generated outputs), computed by the caller.</summary>
    public Func<LanguageModel, IReadOnlyDictionary<string, double>>? GenerationMetrics { get; set; }

    /// <summary>Writes extra files into each checkpoint directory (e.g. the tokenizer).</summary>
    public Action<string>? WriteExtras { get; set; }

    /// <summary>The metrics log.</summary>
    public string MetricsPath => Path.Combine(_dir, "metrics.jsonl");

    /// <summary>Checkpoint directories present, oldest first.</summary>
    public IReadOnlyList<string> Checkpoints => ListCheckpoints(_dir);

    static IReadOnlyList<string> ListCheckpoints(string dir) => CheckpointDirectory.List(dir, StateFile);

    const string StateFile = "trainer_state.json";

    /// <summary>
    /// Deletes what a killed run left half-written: <c>.checkpoint-N.PID.tmp</c> directories and
    /// <c>.NAME.PID.GUID.tmp</c> files of atomic writes. A run directory has one writer at a time, so
    /// anything temporary found when a trainer starts belongs to a run that is gone.
    /// </summary>
    public static void RemoveStaleTemporaries(string dir)
    {
        if (!Directory.Exists(dir)) return;
        foreach (var d in Directory.GetDirectories(dir).Where(d => IsTemporary(Path.GetFileName(d)))) Directory.Delete(d, recursive: true);
        foreach (var f in Directory.GetFiles(dir).Where(f => IsTemporary(Path.GetFileName(f)))) File.Delete(f);
    }

    /// <summary>Whether <paramref name="name"/> is a temporary of a checkpoint or atomic write (a dot name ending in .tmp).</summary>
    public static bool IsTemporary(string name) => name.StartsWith('.') && name.EndsWith(".tmp", StringComparison.Ordinal);

    /// <summary>
    /// Continues from the newest complete checkpoint in the output directory, if any: weights,
    /// optimizer state, data position and the metrics log up to that step. Returns false when there is none.
    /// </summary>
    public bool Resume()
    {
        var latest = Checkpoints.LastOrDefault();
        if (latest == null) return false;
        ResumeFrom(latest, Path.Combine(Path.GetDirectoryName(Path.GetFullPath(latest))!, "metrics.jsonl"));
        return true;
    }

    /// <summary>
    /// Starts this run from <paramref name="checkpoint"/>, a checkpoint of this run or of another
    /// one with the same model shape and seed: weights, optimizer state and data position, and the
    /// lines of <paramref name="metrics"/> up to its step, which become this run's metrics log. A run
    /// forked this way continues the original's schedule with its own options (another objective,
    /// a teacher) from that step on.
    /// </summary>
    public void ResumeFrom(string checkpoint, string? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (!File.Exists(Path.Combine(checkpoint, StateFile)))
            throw new ArgumentException($"{checkpoint}: not a training checkpoint (no {StateFile}); pass a checkpoint-N directory of a run");
        var state = ReadState(checkpoint);
        if (state.Seed != _o.Seed) throw new ArgumentException($"{checkpoint} was trained with seed {state.Seed}; resume with the same seed (got {_o.Seed})");
        if (state.Step >= _o.MaxSteps) throw new ArgumentException($"{checkpoint} is at step {state.Step}: nothing left to do with --steps {_o.MaxSteps}");
        if (_adapter != null)
        {
            if (!PeftAdapter.IsAdapterDirectory(checkpoint))
                throw new ArgumentException($"{checkpoint}: not a LoRA checkpoint (no {PeftAdapter.ConfigFile}); a LoRA run continues a LoRA run");
            PeftAdapter.LoadInto(_adapter.Adapter, _model, checkpoint, _adapter.BaseModelType);
        }
        else
        {
            if (PeftAdapter.IsAdapterDirectory(checkpoint))
                throw new ArgumentException($"{checkpoint}: a LoRA checkpoint (adapter only); continue it with the same --lora-rank options");
            Checkpoint.LoadInto(_model, checkpoint);
        }
        OptimizerCheckpoint.Load(_optimizer, checkpoint);
        _entropyReg?.Load(checkpoint);
        State = state;
        _trainCurve.Clear();
        _evalCurve.Clear();
        // Keep the log consistent with the checkpoint: lines after its step belong to a lost or other run.
        var lines = metrics != null && File.Exists(metrics) ? File.ReadAllLines(metrics) : [];
        var kept = lines.Where(l =>
        {
            try
            {
                using var d = JsonDocument.Parse(l);
                return d.RootElement.GetProperty("step").GetInt64() <= state.Step;
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                return false;   // a line cut by a kill
            }
        }).ToList();
        AtomicFile.WriteAllText(MetricsPath, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
        foreach (var l in kept)
        {
            using var d = JsonDocument.Parse(l);
            var r = d.RootElement;
            long step = r.GetProperty("step").GetInt64();
            if (r.TryGetProperty("loss", out var loss)) _trainCurve.Add((step, ReadNumber(loss)));
            if (r.TryGetProperty("eval_loss", out var el) && ReadNumber(el) is var e && !double.IsNaN(e)) _evalCurve.Add((step, e));
        }
    }

    static TrainerState ReadState(string checkpoint)
    {
        var path = Path.Combine(checkpoint, StateFile);
        string Recovery() => $"start fresh with --overwrite, or delete {checkpoint} to resume from the checkpoint before it";
        try
        {
            var state = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), Json)
                ?? throw new CheckpointFormatException($"{path}: the file holds null; {Recovery()}");
            if (state.Step < 0 || state.Epoch < 0 || state.BatchInEpoch < 0 || state.Tokens < 0)
                throw new CheckpointFormatException($"{path}: negative step, epoch, batch or token count; {Recovery()}");
            return state;
        }
        catch (Exception e) when (e is JsonException or NotSupportedException or ArgumentException or DecoderFallbackException)
        {
            throw new CheckpointFormatException($"{path}: not a valid trainer state ({e.Message.Split('\n')[0]}); {Recovery()}");
        }
    }

    /// <summary>A number of the metrics log: JSON numbers, or the strings "NaN", "Infinity", "-Infinity" that non-finite values are written as.</summary>
    static double ReadNumber(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Number => e.GetDouble(),
        JsonValueKind.String => double.TryParse(e.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : double.NaN,
        _ => double.NaN,
    };

    /// <summary>Trains until <see cref="TrainingOptions.MaxSteps"/> (or cancellation, after finishing the current step).</summary>
    public void Run(CancellationToken cancel = default)
    {
        // Steps allocate the same activation and gradient sizes again and again: keep them pooled while training.
        using var pooled = Encore.Tensors.Storage.BufferPool.Enable();
        var sw = Stopwatch.StartNew();
        long startStep = State.Step;
        double secondsBefore = State.Seconds;
        long tokensAtStart = State.Tokens;
        var schedule = _o.LrSchedule;
        var epochBatches = _train.Epoch(State.Epoch);
        if (epochBatches.Count == 0) throw new ArgumentException("the training set gives no batches");
        using var log = new StreamWriter(new FileStream(MetricsPath, FileMode.Append, FileAccess.Write, FileShare.Read));
        while (State.Step < _o.MaxSteps && !cancel.IsCancellationRequested)
        {
            long step = State.Step + 1;
            SetWarmupFrozen(step <= _o.CrossAttentionOnlySteps);
            _optimizer.LearningRate = schedule.At(step);
            _optimizer.ZeroGrad();
            double lossSum = 0;
            long tokens = 0;
            _entropyRegSum = 0;
            Batch? firstBatch = null;
            int epoch = State.Epoch, index = State.BatchInEpoch;
            for (int micro = 0; micro < _o.GradientAccumulation; micro++)
            {
                if (index >= epochBatches.Count)
                {
                    epoch++;
                    index = 0;
                    epochBatches = _train.Epoch(epoch);
                }
                var batch = epochBatches[index++];
                firstBatch ??= batch;
                using var tape = Tape.Record();
                var loss = Loss(batch, DropoutSeed(step, micro));
                lossSum += loss.Value.AsReadOnlySpan<float>()[0];
                tape.Backward(loss, 1f / _o.GradientAccumulation);
                tokens += batch.RealTokens;
            }
            double norm = _o.GradientClip > 0 ? GradClip.ClipGlobalNorm(_optimizer.Parameters, _o.GradientClip) : double.NaN;
            _optimizer.Update();
            double stepLoss = lossSum / _o.GradientAccumulation;
            double seconds = secondsBefore + sw.Elapsed.TotalSeconds;
            State = State with { Step = step, Epoch = epoch, BatchInEpoch = index, Tokens = State.Tokens + tokens, Seconds = seconds, LastLoss = stepLoss };
            _trainCurve.Add((step, stepLoss));
            double tps = (State.Tokens - tokensAtStart) / Math.Max(1e-9, sw.Elapsed.TotalSeconds);
            double perStep = sw.Elapsed.TotalSeconds / (step - startStep);
            var remaining = TimeSpan.FromSeconds(perStep * (_o.MaxSteps - step));
            var stepLine = new Dictionary<string, object>
            {
                ["step"] = step, ["loss"] = stepLoss, ["lr"] = _optimizer.LearningRate, ["grad_norm"] = norm,
                ["tokens"] = State.Tokens, ["tokens_per_second"] = tps, ["seconds"] = seconds,
            };
            if (_entropyReg != null) stepLine["entropy_reg"] = _entropyRegSum / _o.GradientAccumulation;
            WriteLine(log, stepLine);
            if (_o.AttentionEntropyEvery > 0 && (step % _o.AttentionEntropyEvery == 0 || step == _o.MaxSteps) && firstBatch != null)
                LogAttentionEntropy(log, step, firstBatch);
            OnStep?.Invoke(new StepReport(step, _o.MaxSteps, stepLoss, _optimizer.LearningRate, norm, tps, State.Tokens, TimeSpan.FromSeconds(seconds), remaining));

            bool last = step == _o.MaxSteps;
            if ((_o.EvalEvery > 0 && step % _o.EvalEvery == 0) || last) Evaluate(log);
            if ((_o.CheckpointEvery > 0 && step % _o.CheckpointEvery == 0) || last) SaveCheckpoint();
        }
        SetWarmupFrozen(false);   // the model leaves the run with every parameter trainable
        log.Flush();
        WritePlot();
    }

    // Dropout masks depend only on (seed, step, micro-batch): a resumed run draws the same ones.
    ulong DropoutSeed(long step, int micro) => Hash(_o.Seed ^ Hash((ulong)step * 31 + (ulong)micro));

    static ulong Hash(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>
    /// The training loss of one batch: cross-entropy on its references (with <see cref="TrainingOptions.EarlyExit"/>,
    /// the early-exit loss, which averages it over the decoder's layers), mixed with distillation
    /// when a teacher is set: α·KL(teacher ‖ student) + (1 − α)·CE, the KL taken on the references
    /// (teacher-forced) or, on-policy, on the student's own samples of the batch's sources.
    /// </summary>
    Var Loss(Batch b, ulong dropoutSeed)
    {
        int v = _model.Config.VocabSize;
        Var logits;                                                                       // (B, T, V)
        Var? encoderLoss = null;
        Var? earlyExit = null;
        // The regularizer reads the entropy of the main forward pass only (not the teacher's or a sampler's).
        var probe = _entropyReg != null ? new AttentionEntropyProbe() : null;
        _model.AttentionEntropy = probe;
        try
        {
            if (_o.EarlyExit is { } exitOptions)
            {
                var r = EarlyExitLoss.Compute(_model, b, exitOptions, _o.LabelSmoothing, dropoutSeed);
                logits = r.FinalLogits;
                earlyExit = r.Loss;
                if (_model is EncoderDecoderModel exitModel && _o.EncoderTokenLoss > 0) encoderLoss = EncoderTokenCrossEntropy(exitModel, r.Memory!, b);
            }
            else if (_model is EncoderDecoderModel ed && _o.EncoderTokenLoss > 0)
            {
                var memory = ed.Encode(b.Source, b.Size, b.SourceLengths, dropoutSeed);       // (B, S, D)
                logits = ed.Decode(memory, b.SourceLengths, b.Inputs, b.Size, null, dropoutSeed);
                encoderLoss = EncoderTokenCrossEntropy(ed, memory, b);
            }
            else logits = Logits(_model, b, dropoutSeed);
        }
        finally
        {
            _model.AttentionEntropy = null;
        }
        var flat = Ops.Reshape(logits, b.Size * b.InputLength, v);
        // The early-exit loss holds the full model's cross-entropy among its layer terms.
        var ce = earlyExit ?? Ops.CrossEntropy(flat, b.Targets, new CrossEntropyOptions { LabelSmoothing = _o.LabelSmoothing });
        if (encoderLoss != null) ce = Ops.Add(ce, Ops.Scale(encoderLoss, _o.EncoderTokenLoss));
        if (probe != null)
        {
            var reg = _entropyReg!.Loss(probe.Records);
            _entropyRegSum += reg.Value.AsReadOnlySpan<float>()[0];
            ce = Ops.Add(ce, reg);
        }
        if (_teacher == null || _o.DistillAlpha == 0) return ce;
        var kd = b;
        var kdFlat = flat;
        if (_sampler != null)
        {
            kd = _sampler.Sample(b, Hash(dropoutSeed ^ 0x0DD5A3D1E5UL));
            kdFlat = Ops.Reshape(Logits(_model, kd, dropoutSeed), kd.Size * kd.InputLength, v);   // (B·T', V)
        }
        var teacherLogits = _teacher.Logits(kd);                                          // (B·T', V)
        var mask = new bool[kd.Targets.Length];
        for (int i = 0; i < mask.Length; i++) mask[i] = kd.Targets[i] != Labels.Ignore;
        var kl = Ops.KlDivergence(kdFlat, teacherLogits, _o.DistillTemperature, mask);
        return Ops.Add(Ops.Scale(kl, _o.DistillAlpha), Ops.Scale(ce, 1 - _o.DistillAlpha));
    }

    /// <summary>
    /// Cross-entropy of the encoder's own source tokens read back from its output through the LM
    /// head, over the valid source positions: a per-position signal that keeps the encoder's rows
    /// tied to their tokens (see <see cref="TrainingOptions.EncoderTokenLoss"/>).
    /// </summary>
    static Var EncoderTokenCrossEntropy(EncoderDecoderModel model, Var memory, Batch b)
    {
        int v = model.Config.VocabSize, s = b.SourceLength;
        var targets = new int[b.Size * s];
        for (int i = 0; i < b.Size; i++)
            for (int j = 0; j < s; j++)
                targets[i * s + j] = j < b.SourceLengths[i] ? b.Source[i * s + j] : Labels.Ignore;
        var logits = Ops.Reshape(model.EncoderTokenLogits(memory), b.Size * s, v);          // (B·S, V)
        return Ops.CrossEntropy(logits, targets);
    }

    /// <summary>Logits (B, T, V) of <paramref name="model"/> on a batch, whatever its family.</summary>
    public static Var Logits(LanguageModel model, Batch b, ulong dropoutSeed = 0) => model switch
    {
        EncoderDecoderModel ed => ed.Forward(b.Source, b.SourceLengths, b.Inputs, b.Size, dropoutSeed),
        DecoderOnlyModel dec => dec.Forward(b.Inputs, b.Size, b.InputLengths, null, dropoutSeed),
        EncoderOnlyModel enc => enc.MaskedLmLogits(enc.Forward(b.Inputs, b.Size, b.InputLengths, null, dropoutSeed)),
        _ => throw new ArgumentException($"cannot train a {model.GetType().Name}"),
    };

    /// <summary>Mean validation cross-entropy per target token (no gradient, no dropout).</summary>
    public double ValidationLoss() => _validation is { Count: > 0 } ? MeanLoss(_model, _validation) : double.NaN;

    /// <summary>Mean cross-entropy per loss-carrying token of <paramref name="model"/> over <paramref name="batches"/> (no gradient, no dropout); NaN when no token carries loss.</summary>
    public static double MeanLoss(LanguageModel model, IEnumerable<Batch> batches)
    {
        double total = 0;
        long count = 0;
        foreach (var b in batches)
        {
            int n = b.LossTokens;
            if (n == 0) continue;
            using var logits = Logits(model, b);
            using var flat = Ops.Reshape(logits, b.Size * b.InputLength, model.Config.VocabSize);
            using var ce = Ops.CrossEntropy(flat, b.Targets);
            total += ce.Value.AsReadOnlySpan<float>()[0] * n;
            count += n;
        }
        return count == 0 ? double.NaN : total / count;
    }

    void Evaluate(StreamWriter log)
    {
        double loss = ValidationLoss();
        var metrics = GenerationMetrics?.Invoke(_model) ?? new Dictionary<string, double>();
        var line = new Dictionary<string, object> { ["step"] = State.Step, ["eval_loss"] = loss, ["perplexity"] = Math.Exp(loss) };
        foreach (var (k, val) in metrics) line[k] = val;
        WriteLine(log, line);
        if (!double.IsNaN(loss)) _evalCurve.Add((State.Step, loss));
        OnEval?.Invoke(new EvalReport(State.Step, loss, Math.Exp(loss), metrics));
        WritePlot();
    }

    // Per-layer, per-head attention entropy of the model as it is now, on one batch, into the log and the curve.
    void LogAttentionEntropy(StreamWriter log, long step, Batch batch)
    {
        var layers = AttentionEntropyTally.Measure(_model, [batch]);
        var line = new Dictionary<string, object> { ["step"] = step };
        foreach (var l in layers)
            for (int h = 0; h < l.Entropy.Length; h++)
            {
                line[$"attn_entropy/{l.Scope}/{h}"] = l.Entropy[h];
                line[$"attn_entropy_norm/{l.Scope}/{h}"] = l.Normalized[h];
            }
        WriteLine(log, line);
        _entropyCurve.Add((step, layers));
        OnAttentionEntropy?.Invoke(step, layers);
    }

    void WritePlot()
    {
        try
        {
            if (_entropyCurve.Count > 0) AttentionEntropyPlot.Write(Path.Combine(_dir, "attention-entropy.png"), _entropyCurve, $"{_model.Config.Family} attention entropy");
            LossPlot.Write(Path.Combine(_dir, "loss.png"), _trainCurve, _evalCurve, $"{_model.Config.Family} training loss");
        }
        catch (Exception e) when (e is IOException or DllNotFoundException or TypeInitializationException)
        {
            // The plot is a convenience; a machine without the native drawing library still trains.
        }
    }

    /// <summary>
    /// Writes checkpoint-STEP: into a temporary directory first, renamed into place when complete,
    /// so a kill at any moment leaves either the previous checkpoints or the new one, never half of it.
    /// </summary>
    public string SaveCheckpoint()
    {
        var final = Path.Combine(_dir, $"checkpoint-{State.Step}");
        var tmp = Path.Combine(_dir, $".checkpoint-{State.Step}.{Environment.ProcessId}.tmp");
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        if (_adapter != null) PeftAdapter.Save(_adapter.Adapter, _model, tmp, _adapter.BaseModelType, _adapter.BaseModel);
        else Checkpoint.Save(_model, tmp);
        OptimizerCheckpoint.Save(_optimizer, tmp);
        _entropyReg?.Save(tmp);
        WriteExtras?.Invoke(tmp);
        AtomicFile.WriteAllText(Path.Combine(tmp, StateFile), JsonSerializer.Serialize(State, Json));
        CheckpointDirectory.Publish(tmp, final, _o.KeepCheckpoints, StateFile);
        return final;
    }

    static void WriteLine(StreamWriter log, Dictionary<string, object> values)
    {
        log.WriteLine(JsonSerializer.Serialize(values, Json));
        log.Flush();
    }

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        WriteIndented = false,
    };

    /// <summary>Frees the optimizer state.</summary>
    public void Dispose()
    {
        _optimizer.Dispose();
        _entropyReg?.Dispose();
    }
}
