using Encore.Tensors;
using Encore.Autograd.Optim;

namespace Encore.Training.Trainer;

/// <summary>Which optimizer trains the model.</summary>
public enum OptimizerKind
{
    /// <summary>AdamW with decoupled weight decay.</summary>
    AdamW,
    /// <summary>Adafactor (the T5 optimizer).</summary>
    Adafactor,
    /// <summary>SGD with momentum.</summary>
    Sgd,
}

/// <summary>Settings of a training run; every one has one documented default, shared by the library and <c>encore train</c>.</summary>
public sealed record TrainingOptions
{
    /// <summary>Optimizer steps to run in total. Default 1000.</summary>
    public int MaxSteps { get; init; } = 1000;
    /// <summary>Micro-batches whose gradients are summed into one step. Default 1.</summary>
    public int GradientAccumulation { get; init; } = 1;
    /// <summary>The optimizer. Default AdamW.</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.AdamW;
    /// <summary>Peak learning rate. Default 1e-3.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Linear warm-up steps. Default 100.</summary>
    public int WarmupSteps { get; init; } = 100;
    /// <summary>Decay after warm-up. Default cosine.</summary>
    public LrDecay Schedule { get; init; } = LrDecay.Cosine;
    /// <summary>Final learning rate as a fraction of the peak. Default 0.1.</summary>
    public double MinLearningRateRatio { get; init; } = 0.1;
    /// <summary>Decoupled weight decay (matrices only). Default 0.01.</summary>
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Global gradient-norm clip; 0 disables. Default 1.0.</summary>
    public double GradientClip { get; init; } = 1.0;
    /// <summary>Label smoothing of the cross-entropy. Default 0.</summary>
    public float LabelSmoothing { get; init; }
    /// <summary>Evaluate every this many steps (and at the end); 0 only at the end. Default 100.</summary>
    public int EvalEvery { get; init; } = 100;
    /// <summary>Write a checkpoint every this many steps (and at the end). Default 100.</summary>
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>Checkpoints kept on disk (the newest). Default 2.</summary>
    public int KeepCheckpoints { get; init; } = 2;
    /// <summary>Seed of the data order and dropout. Default 0.</summary>
    public ulong Seed { get; init; }
    /// <summary>Weight α of the distillation term in α·KL·τ² + (1−α)·CE. Default 0.5.</summary>
    public float DistillAlpha { get; init; } = 0.5f;
    /// <summary>Distillation temperature τ. Default 2.</summary>
    public float DistillTemperature { get; init; } = 2f;
    /// <summary>
    /// On-policy distillation (the Mu recipe): the KL term is taken on targets the student samples
    /// itself (<see cref="OnPolicy"/>) instead of on the references; the cross-entropy stays on the
    /// references. Default false (teacher-forced).
    /// </summary>
    public bool DistillOnPolicy { get; init; }
    /// <summary>
    /// Weight of an auxiliary loss for encoder–decoders trained from scratch: the encoder's output
    /// at each source position must give back that position's token through the LM head. An
    /// encoder learns only through cross-attention, whose gradient is nearly the same at every
    /// source position while attention is still uniform; a feed-forward layer then writes one
    /// vector into every row, the final norm shrinks what tells the rows apart, and the decoder
    /// never learns to read the source. The per-position term keeps the rows apart. 0 turns it
    /// off. Default 0.
    /// </summary>
    public float EncoderTokenLoss { get; init; }
    /// <summary>
    /// The early-exit loss (<see cref="Objectives.EarlyExitLoss"/>, after MuE): the model's final norm and LM head
    /// applied to every decoder layer's output and the layers' cross-entropies averaged, and, for an
    /// encoder–decoder, the decoder also trained on an intermediate encoder layer's memory, so that both
    /// stacks can exit early at inference (<c>GenerationOptions.EarlyExit</c>). It replaces the
    /// cross-entropy term; distillation and the encoder token loss stay on the full model. Encoder–decoder
    /// and decoder-only models. Default null (off).
    /// </summary>
    public Objectives.EarlyExitLossOptions? EarlyExit { get; init; }
    /// <summary>
    /// Steps at the start of the run in which only cross-attention (its projections and norms) is trained
    /// and every other parameter is frozen: the warm-up T5Gemma gives an encoder–decoder adapted from
    /// decoder-only models whose cross-attention starts fresh (<c>encore adapt --decoder-from</c>), so
    /// that random cross-attention does not disturb the pretrained blocks through large early gradients.
    /// Frozen parameters are neither updated nor decayed, and their optimizer moments start when they
    /// are unfrozen, bias-corrected as a fresh parameter's. The steps count toward <see cref="MaxSteps"/>
    /// and share the learning-rate schedule. Encoder–decoder models only. Default 0 (off).
    /// </summary>
    public int CrossAttentionOnlySteps { get; init; }
    /// <summary>
    /// Activation checkpointing per transformer block (<see cref="Encore.Models.LanguageModel.CheckpointActivations"/>):
    /// only each block's input is kept between the forward and backward passes, and each block's
    /// forward runs twice. Same gradients, less memory, about a third more time per step. Default off.
    /// </summary>
    public bool CheckpointActivations { get; init; }
    /// <summary>
    /// Storage of AdamW's two moments: <see cref="Encore.Tensors.DType.F32"/> (default) or
    /// <see cref="Encore.Tensors.DType.BF16"/> (half the optimizer memory, stochastically rounded; see
    /// <see cref="Encore.Autograd.Optim.AdamWOptions.Moments"/>). AdamW only.
    /// </summary>
    public Encore.Tensors.DType OptimizerMoments { get; init; } = Encore.Tensors.DType.F32;
    /// <summary>
    /// Measure every attention layer's per-head entropy (<see cref="Metrics.AttentionEntropyTally"/>) every this many steps
    /// and at the last, on the step's first batch (one more forward pass, no gradient): written to the metrics log as
    /// <c>attn_entropy/LAYER/HEAD</c> (nats) and <c>attn_entropy_norm/LAYER/HEAD</c> (over log of the keys each row sees)
    /// and drawn in <c>attention-entropy.png</c>. 0 turns it off. Default 0.
    /// </summary>
    public int AttentionEntropyEvery { get; init; }
    /// <summary>
    /// The entropy regularizer of Entropy-Guided Attention (<see cref="Objectives.EntropyRegularizer"/>) added to the
    /// training loss, with its learnable thresholds trained alongside the model. Not with
    /// <see cref="CheckpointActivations"/>. Default null (off).
    /// </summary>
    public Objectives.EntropyRegularizerOptions? EntropyRegularizer { get; init; }
    /// <summary>How the student samples in on-policy distillation. Default: temperature 0.9, top-k 128, 64 tokens.</summary>
    public OnPolicyOptions OnPolicy { get; init; } = new();

    /// <summary>The learning-rate schedule these options describe.</summary>
    public LrSchedule LrSchedule => new()
    {
        Peak = LearningRate,
        WarmupSteps = WarmupSteps,
        TotalSteps = MaxSteps,
        Decay = Schedule,
        MinRatio = MinLearningRateRatio,
    };

    /// <summary>Throws naming the first option out of range.</summary>
    public TrainingOptions Validate()
    {
        if (MaxSteps < 1) throw new ArgumentException($"steps must be positive, got {MaxSteps}");
        if (GradientAccumulation < 1) throw new ArgumentException($"gradient accumulation must be positive, got {GradientAccumulation}");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new ArgumentException($"learning rate must be positive, got {LearningRate}");
        if (WarmupSteps < 0) throw new ArgumentException($"warm-up steps cannot be negative, got {WarmupSteps}");
        if (MinLearningRateRatio is < 0 or > 1) throw new ArgumentException($"minimum learning-rate ratio must be in [0, 1], got {MinLearningRateRatio}");
        if (WeightDecay < 0) throw new ArgumentException($"weight decay cannot be negative, got {WeightDecay}");
        if (GradientClip < 0) throw new ArgumentException($"gradient clip cannot be negative, got {GradientClip}");
        if (LabelSmoothing is < 0 or >= 1) throw new ArgumentException($"label smoothing must be in [0, 1), got {LabelSmoothing}");
        if (EvalEvery < 0 || CheckpointEvery < 0) throw new ArgumentException("eval and checkpoint intervals cannot be negative");
        if (CrossAttentionOnlySteps < 0) throw new ArgumentException($"cross-attention-only warm-up steps cannot be negative, got {CrossAttentionOnlySteps}");
        if (KeepCheckpoints < 1) throw new ArgumentException($"keep at least one checkpoint, got {KeepCheckpoints}");
        if (DistillAlpha is < 0 or > 1) throw new ArgumentException($"distillation alpha must be in [0, 1], got {DistillAlpha}");
        if (!(DistillTemperature > 0)) throw new ArgumentException($"distillation temperature must be positive, got {DistillTemperature}");
        OnPolicy.Validate();
        if (!(EncoderTokenLoss >= 0) || !float.IsFinite(EncoderTokenLoss)) throw new ArgumentException($"encoder token loss weight must be ≥ 0, got {EncoderTokenLoss}");
        if (AttentionEntropyEvery < 0) throw new ArgumentException($"--attention-entropy: the interval must be a positive number of steps, got {AttentionEntropyEvery}");
        EntropyRegularizer?.Validate();
        if (OptimizerMoments is not (Encore.Tensors.DType.F32 or Encore.Tensors.DType.BF16))
            throw new ArgumentException($"--optimizer-moments: f32 or bf16, got {OptimizerMoments.Name()}");
        if (OptimizerMoments != Encore.Tensors.DType.F32 && Optimizer != OptimizerKind.AdamW)
            throw new ArgumentException($"--optimizer-moments bf16 stores AdamW's moments; the {Optimizer} optimizer keeps its own state in f32");
        if (EntropyRegularizer != null && CheckpointActivations)
            throw new ArgumentException("--entropy-reg does not combine with --activation-checkpointing (recomputed blocks would record their entropy again)");
        return this;
    }
}
