using Encore.Tensors;
using System.Text.Json;
using Encore.Autograd.Optim;
using Encore.Formats.Tokenization;
using Encore.Training.Runs;
using Encore.Training.Trainer;

namespace Encore.Cli.Commands;

/// <summary><c>encore train</c> and <c>encore distill</c>: thin option parsing over <see cref="TrainingRun"/>.</summary>
internal static class TrainCommand
{
    sealed class Options
    {
        public Option<string> Data = new("--data") { Description = "Training data: JSONL {\"source\",\"target\"} pairs, or plain text (one document per line).", Required = true };
        public Option<string?> Validation = new("--validation") { Description = "Validation data (default: 5% of the training data, held out by seed)." };
        public Option<string?> Tokenizer = new("--tokenizer") { Description = "Directory with tokenizer files (default: the checkpoint's own when --model is one that has them, else train a byte-level BPE on the data)." };
        public Option<int> Vocab = new("--vocab") { Description = "Vocabulary of the BPE trained on the data.", DefaultValueFactory = _ => 2048 };
        public Option<string> Out = new("--out") { Description = "Output directory for checkpoints, metrics.jsonl and loss.png (default: runs/<name>).", };
        public Option<string> Objective = new("--objective") { Description = "auto, seq2seq, causal-lm, prefix-lm, span-corruption, ul2, mlm or lexical-units; auto picks from the model family and data. prefix-lm and ul2 on an encoder–decoder take plain text (the adaptation objectives of encore adapt). lexical-units fine-tunes a trained model on pairs for lexical-unit decoding (--lud-*, docs/decoding.md).", DefaultValueFactory = _ => "auto" };
        public Option<double> MlmProbability = new("--mlm-probability") { Description = "--objective mlm: probability that a token is selected for prediction (0.15 as in BERT; ModernBERT and Ettin use 0.3).", DefaultValueFactory = _ => 0.15 };
        public Option<int> Steps = new("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => 1000 };
        public Option<double> Lr = new("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => 1e-3 };
        public Option<int> Warmup = new("--warmup") { Description = "Warm-up steps.", DefaultValueFactory = _ => 100 };
        public Option<int> CrossOnly = new("--warmup-cross-attention-only") { Description = "First N steps train only cross-attention (and its norms), everything else frozen: the warm-up of an encoder–decoder whose cross-attention `encore adapt` started fresh.", DefaultValueFactory = _ => 0 };
        public Option<string> Optimizer = new("--optimizer") { Description = "adamw, adafactor or sgd.", DefaultValueFactory = _ => "adamw" };
        public Option<string> OptimizerMoments = new("--optimizer-moments") { Description = "Storage of AdamW's two moments: f32, or bf16 (half the optimizer memory; updated in f32, stored with stochastic rounding).", DefaultValueFactory = _ => "f32" };
        public Option<int> MaxTokens = new("--max-tokens") { Description = "Token budget per batch, padded source + target.", DefaultValueFactory = _ => 4096 };
        public Option<int> Accumulate = new("--grad-accum") { Description = "Micro-batches per optimizer step.", DefaultValueFactory = _ => 1 };
        public Option<int> EvalEvery = new("--eval-every") { Description = "Evaluate every N steps.", DefaultValueFactory = _ => 100 };
        public Option<int> SaveEvery = new("--save-every") { Description = "Checkpoint every N steps.", DefaultValueFactory = _ => 100 };
        public Option<int> EvalExamples = new("--eval-examples") { Description = "Validation examples decoded for exact match, F1, chrF, ROUGE-L and BLEU (0: loss only).", DefaultValueFactory = _ => 64 };
        public Option<ulong> Seed = new("--seed") { Description = "Seed of data order and dropout.", DefaultValueFactory = _ => 0UL };
        public Option<bool> Resume = new("--resume") { Description = "Continue from the newest checkpoint in --out." };
        public Option<string?> ResumeFrom = new("--resume-from") { Description = "Start from a checkpoint of another run (checkpoint-N directory, or a run directory for its newest): weights, optimizer state, step, data position and metrics up to that step; --steps and the schedule continue from there (e.g. distil the last steps of a cross-entropy run)." };
        public Option<bool> Overwrite = new("--overwrite") { Description = "Start over in an --out that holds a run (deletes its checkpoints, metrics.jsonl and loss.png)." };
        public Option<int> Keep = new("--keep-checkpoints") { Description = "Checkpoints kept on disk, the newest.", DefaultValueFactory = _ => 2 };
        public Option<float> EncoderLoss = new("--encoder-token-loss") { Description = "Weight of the encoder's own-token loss for encoder–decoders trained from scratch; 0 is off.", DefaultValueFactory = _ => 0f };
        public Option<bool> EarlyExitLoss = new("--early-exit-loss") { Description = "Train for early exit (MuE): the final norm and LM head applied to every decoder layer and the layers' cross-entropies averaged; an encoder–decoder's decoder also trains on an intermediate encoder layer drawn each step (see --early-exit-encoder). Then `generate --exit-threshold` skips layers. docs/adaptive-compute.md." };
        public Option<bool> EarlyExitEncoder = new("--early-exit-encoder") { Description = "With --early-exit-loss on an encoder–decoder: also run the decoder on the memory of an encoder layer drawn each step, so the encoder can exit early (one more decoder pass per step). false trains decoder exits only.", DefaultValueFactory = _ => true };
        public Option<int?> AttentionEntropy = new("--attention-entropy") { Description = "Log every attention layer's per-head entropy (nats, and normalized by log of the keys each row sees) every N steps (default 100) into metrics.jsonl, and plot it in attention-entropy.png. docs/lab.md.", Arity = ArgumentArity.ZeroOrOne };
        public Option<float?> EntropyReg = new("--entropy-reg") { Description = "Add the entropy regularizer of Entropy-Guided Attention (arXiv 2501.03489) with this weight λ (its code's default 1e-5): each head's attention entropy is penalized where it strays from a learned fraction θ of log S by more than the tolerance." };
        public Option<float> EntropyTolerance = new("--entropy-tolerance") { Description = "--entropy-reg: the tolerance margin γ, a fraction of the maximum entropy log S.", DefaultValueFactory = _ => 0.2f };
        public Option<float> EntropyThreshold = new("--entropy-threshold") { Description = "--entropy-reg: the starting value of every learned threshold θ, a fraction of log S.", DefaultValueFactory = _ => 0.5f };
        public Option<int> Samples = new("--samples") { Description = "Validation examples printed at every evaluation.", DefaultValueFactory = _ => 3 };
        public Option<bool> Json = new("--json") { Description = "Print one JSON line per step and evaluation instead of a progress bar." };
        public Option<int?> Threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count).");

        public Option<int> LoraRank = new("--lora-rank") { Description = "Train a LoRA adapter of this rank on the model (a checkpoint), which stays frozen; checkpoints hold the adapter in PEFT's layout (adapter_config.json, adapter_model.safetensors). 0 trains the model itself.", DefaultValueFactory = _ => 0 };
        public Option<float> LoraAlpha = new("--lora-alpha") { Description = "LoRA's alpha: the adapter's delta is scaled by alpha/rank (8 as in PEFT).", DefaultValueFactory = _ => 8f };
        public Option<float> LoraDropout = new("--lora-dropout") { Description = "Dropout on the adapter's input in training.", DefaultValueFactory = _ => 0f };
        public Option<string> LoraTargets = new("--lora-targets") { Description = "Layers adapted, comma-separated: q, k, v, o (self- and cross-attention), gate, up, down, ffn (all three), attn, all.", DefaultValueFactory = _ => "q,v" };

        public Common.FieldOptions Fields = new();
        public Option<int> MaxSource = new("--max-source-tokens") { Description = "Longest source kept, in tokens; longer ones are cut.", DefaultValueFactory = _ => 1024 };

        public Option<bool> CheckpointActivations = new("--activation-checkpointing") { Description = "Keep only each block's input between the forward and backward passes and run each block's forward again in the backward pass: the same gradients with far less activation memory, about a third more time per step." };
        public Option<string> LudPlaceholder = new("--lud-placeholder") { Description = "--objective lexical-units: the placeholder token (a token of the tokenizer; give the same to `generate --lexical-units`).", DefaultValueFactory = _ => "<mask>" };
        public Option<double> LudAlpha = new("--lud-alpha") { Description = "--objective lexical-units: a target token is in a lexical unit when the model as loaded gives it probability above this.", DefaultValueFactory = _ => 0.9 };
        public Option<int> LudSpan = new("--lud-span") { Description = "--objective lexical-units: the longest unit one pass emits (K; K − 1 placeholders per row).", DefaultValueFactory = _ => 4 };
        public Option<double> LudRate = new("--lud-rate") { Description = "--objective lexical-units: fraction of rows cut for placeholders (the others stay plain).", DefaultValueFactory = _ => 0.5 };
        public Option<double> LudUnitCuts = new("--lud-unit-cuts") { Description = "--objective lexical-units: fraction of cuts placed where a lexical unit follows (the others anywhere).", DefaultValueFactory = _ => 0.5 };
        public Option<string?> LudMarks = new("--lud-marks") { Description = "--objective lexical-units: read the marks an earlier run wrote (its lexical-units.marks; same data, starting model and --lud-alpha) instead of marking again." };
        public IEnumerable<Option> All => [Data, .. Fields.All, MaxSource, Validation, Tokenizer, Vocab, Out, Objective, MlmProbability, Steps, Lr, Warmup, CrossOnly, CheckpointActivations, Optimizer, OptimizerMoments, MaxTokens, Accumulate, EvalEvery, SaveEvery, Keep, EvalExamples, Samples, EncoderLoss, EarlyExitLoss, EarlyExitEncoder, AttentionEntropy, EntropyReg, EntropyTolerance, EntropyThreshold, Seed, Resume, ResumeFrom, Overwrite, LoraRank, LoraAlpha, LoraDropout, LoraTargets, LudPlaceholder, LudAlpha, LudSpan, LudRate, LudUnitCuts, LudMarks, Json, Threads];
    }

    public static Command Create()
    {
        var o = new Options();
        var config = new Option<string>("--config", "--model", "-m") { Description = "The model: a preset, an Encore config.json, a checkpoint directory, or a Hugging Face model id org/name[@revision] (docs/hub.md).", Required = true };
        var cmd = new Command("train", "Train a model on a JSONL or text file, with progress, evaluation, checkpoints and a loss curve.") { config };
        foreach (var opt in o.All) cmd.Options.Add(opt);
        cmd.SetAction(parse => Run(parse, o, parse.GetValue(config)!, teacher: null, alpha: null, temperature: null));
        return cmd;
    }

    public static Command CreateDistill()
    {
        var o = new Options();
        // The student reads the data with this tokenizer, and distillation compares the two models' distributions
        // id by id, so it has to be the teacher's.
        o.Tokenizer.Description = "Directory with the tokenizer files of student and data, which must be the teacher's (default: the teacher's own, from --teacher; a teacher saved without tokenizer files needs this).";
        var teacher = new Option<string>("--teacher") { Description = "Teacher checkpoint directory or Hugging Face model id org/name[@revision] (encoder–decoder or decoder-only, same tokenizer).", Required = true };
        var student = new Option<string>("--student", "--model", "-m") { Description = "The student: a preset, an Encore config.json, a checkpoint directory, or a Hugging Face model id org/name[@revision].", Required = true };
        var alpha = new Option<float?>("--alpha") { Description = "Weight α of the distillation term against (1−α)·cross-entropy (default 0.5; 0.9 with --on-policy)." };
        var temperature = new Option<float?>("--temperature") { Description = "Distillation temperature τ of τ²·KL(teacher‖student) (default 2; 1 with --on-policy)." };
        var onPolicy = new Option<bool>("--on-policy") { Description = "The Mu recipe: the student samples its own targets (temperature 0.9, top-k 128), the teacher scores them; cross-entropy stays on the references." };
        var cmd = new Command("distill", "Distill a teacher into a (typically encoder–decoder) student: α·KL + (1−α)·CE, teacher-forced or on-policy.") { teacher, student, alpha, temperature, onPolicy };
        foreach (var opt in o.All) cmd.Options.Add(opt);
        cmd.SetAction(parse =>
        {
            bool policy = parse.GetValue(onPolicy);
            return Run(parse, o, parse.GetValue(student)!, parse.GetValue(teacher), parse.GetValue(alpha) ?? (policy ? 0.9f : 0.5f),
                parse.GetValue(temperature) ?? (policy ? 1f : 2f), policy);
        });
        return cmd;
    }

    static int Run(ParseResult parse, Options o, string model, string? teacher, float? alpha, float? temperature, bool onPolicy = false)
    {
        // Hub ids become their cached snapshots; the run folder is still named after what was given.
        string modelSpec = model;
        bool quiet = parse.GetValue(o.Json);
        model = Common.ModelPath(model, quiet);
        teacher = teacher is null ? null : Common.ModelPath(teacher, quiet);
        Tensors.Threading.KernelPool.Default = new Tensors.Threading.KernelPool(Common.Threads(parse, o.Threads));
        var objective = parse.GetValue(o.Objective)!.ToLowerInvariant() switch
        {
            "auto" => ObjectiveKind.Auto,
            "seq2seq" => ObjectiveKind.Seq2Seq,
            "causal-lm" or "clm" => ObjectiveKind.CausalLm,
            "prefix-lm" => ObjectiveKind.PrefixLm,
            "span-corruption" or "span" => ObjectiveKind.SpanCorruption,
            "mlm" => ObjectiveKind.MaskedLm,
            "ul2" => ObjectiveKind.Ul2,
            "lexical-units" or "lud" => ObjectiveKind.LexicalUnits,
            var other => throw new ArgumentException($"--objective: unknown objective '{other}' (auto, seq2seq, causal-lm, prefix-lm, span-corruption, ul2, mlm, lexical-units)"),
        };
        var optimizer = parse.GetValue(o.Optimizer)!.ToLowerInvariant() switch
        {
            "adamw" => OptimizerKind.AdamW,
            "adafactor" => OptimizerKind.Adafactor,
            "sgd" => OptimizerKind.Sgd,
            var other => throw new ArgumentException($"--optimizer: unknown optimizer '{other}' (adamw, adafactor, sgd)"),
        };
        int steps = parse.GetValue(o.Steps);
        double mlmProbability = parse.GetValue(o.MlmProbability);
        if (!(mlmProbability is > 0 and <= 1)) throw new ArgumentException($"--mlm-probability must be in (0, 1], got {mlmProbability}");
        if (parse.GetResult(o.MlmProbability) is { Implicit: false } && objective is not (ObjectiveKind.MaskedLm or ObjectiveKind.Auto))
            throw new ArgumentException("--mlm-probability applies to --objective mlm only");
        var training = new TrainingOptions
        {
            MaxSteps = steps,
            LearningRate = parse.GetValue(o.Lr),
            WarmupSteps = Math.Min(parse.GetValue(o.Warmup), steps),
            CrossAttentionOnlySteps = parse.GetValue(o.CrossOnly),
            CheckpointActivations = parse.GetValue(o.CheckpointActivations),
            Optimizer = optimizer,
            OptimizerMoments = parse.GetValue(o.OptimizerMoments)!.ToLowerInvariant() switch
            {
                "f32" or "fp32" => DType.F32,
                "bf16" or "bfloat16" => DType.BF16,
                var other => throw new ArgumentException($"--optimizer-moments: unknown storage '{other}' (f32, bf16)"),
            },
            GradientAccumulation = parse.GetValue(o.Accumulate),
            EvalEvery = parse.GetValue(o.EvalEvery),
            CheckpointEvery = parse.GetValue(o.SaveEvery),
            KeepCheckpoints = parse.GetValue(o.Keep),
            EncoderTokenLoss = parse.GetValue(o.EncoderLoss),
            EarlyExit = parse.GetValue(o.EarlyExitLoss) ? new Training.Objectives.EarlyExitLossOptions { Encoder = parse.GetValue(o.EarlyExitEncoder) } : null,
            Seed = parse.GetValue(o.Seed),
            DistillAlpha = alpha ?? 0.5f,
            DistillTemperature = temperature ?? 2f,
            DistillOnPolicy = onPolicy,
            AttentionEntropyEvery = AttentionEntropyEvery(parse, o),
            EntropyRegularizer = EntropyRegularizer(parse, o),
        };
        var output = parse.GetValue(o.Out) ?? Path.Combine("runs", Path.GetFileNameWithoutExtension(modelSpec.TrimEnd('/')));
        var runOptions = new TrainingRunOptions
        {
            Model = model,
            Data = parse.GetValue(o.Data)!,
            Fields = o.Fields.Read(parse),
            MaxSourceTokens = parse.GetValue(o.MaxSource),
            Validation = parse.GetValue(o.Validation),
            // Distillation defaults to the teacher's tokenizer: a BPE trained on the data would not match it. A
            // checkpoint trained further defaults to its own, for the same reason (an adapted one, for one).
            Tokenizer = (parse.GetValue(o.Tokenizer) is { } t ? Common.ModelPath(t, quiet) : null) ?? (teacher != null && HasTokenizerFiles(teacher) ? teacher : null) ?? OwnTokenizer(model),
            TokenizerVocab = parse.GetValue(o.Vocab),
            Output = output,
            Objective = objective,
            MaskedLmProbability = mlmProbability,
            MaxTokens = parse.GetValue(o.MaxTokens),
            EvalExamples = parse.GetValue(o.EvalExamples),
            Teacher = teacher,
            Training = training,
            Resume = parse.GetValue(o.Resume),
            ResumeFrom = parse.GetValue(o.ResumeFrom),
            Overwrite = parse.GetValue(o.Overwrite),
            Lora = Lora(parse, o),
            LexicalUnits = new LexicalUnitRunOptions
            {
                Placeholder = parse.GetValue(o.LudPlaceholder)!,
                Alpha = parse.GetValue(o.LudAlpha),
                Span = parse.GetValue(o.LudSpan),
                Rate = parse.GetValue(o.LudRate),
                UnitCuts = parse.GetValue(o.LudUnitCuts),
                Marks = parse.GetValue(o.LudMarks),
            },
        };
        if (parse.GetValue(o.Samples) < 0) throw new ArgumentException($"--samples cannot be negative, got {parse.GetValue(o.Samples)}");
        bool json = parse.GetValue(o.Json);
        using var run = TrainingRun.Prepare(runOptions, json ? null : line => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}…[/]"));
        Execute(run, runOptions, json, samples: parse.GetValue(o.Samples));
        return 0;
    }

    // The interval of --attention-entropy: 0 when absent, 100 when given without a value.
    static int AttentionEntropyEvery(ParseResult parse, Options o)
    {
        if (parse.GetResult(o.AttentionEntropy) is not { Implicit: false }) return 0;
        int every = parse.GetValue(o.AttentionEntropy) ?? 100;
        if (every < 1) throw new ArgumentException($"--attention-entropy: the interval must be a positive number of steps, got {every}");
        return every;
    }

    // The regularizer of --entropy-reg and its companions, or null without --entropy-reg (the companions alone are an error).
    static Training.Objectives.EntropyRegularizerOptions? EntropyRegularizer(ParseResult parse, Options o)
    {
        if (parse.GetValue(o.EntropyReg) is not { } weight)
        {
            if (parse.GetResult(o.EntropyTolerance) is { Implicit: false } || parse.GetResult(o.EntropyThreshold) is { Implicit: false })
                throw new ArgumentException("--entropy-tolerance and --entropy-threshold shape the entropy regularizer: pass --entropy-reg too");
            return null;
        }
        return new Training.Objectives.EntropyRegularizerOptions
        {
            Weight = weight,
            Tolerance = parse.GetValue(o.EntropyTolerance),
            InitialThreshold = parse.GetValue(o.EntropyThreshold),
        }.Validate();
    }

    // The LoRA options of --lora-rank and its companions, or null without --lora-rank (the companions alone are an error).
    static Models.LoraOptions? Lora(ParseResult parse, Options o)
    {
        int rank = parse.GetValue(o.LoraRank);
        bool companions = parse.GetResult(o.LoraAlpha) is { Implicit: false } || parse.GetResult(o.LoraDropout) is { Implicit: false } || parse.GetResult(o.LoraTargets) is { Implicit: false };
        if (rank == 0)
        {
            if (companions) throw new ArgumentException("--lora-alpha, --lora-dropout and --lora-targets shape a LoRA adapter: pass --lora-rank too");
            return null;
        }
        if (rank < 0) throw new ArgumentException($"--lora-rank must be positive, got {rank}");
        try
        {
            return new Models.LoraOptions
            {
                Rank = rank,
                Alpha = parse.GetValue(o.LoraAlpha),
                Dropout = parse.GetValue(o.LoraDropout),
                Targets = Models.LoraOptions.ParseTargets(parse.GetValue(o.LoraTargets)!),
            }.Validate();
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"--lora-*: {e.Message}", e);
        }
    }

    /// <summary>The checkpoint (or run folder's newest checkpoint) <paramref name="model"/> names when it holds tokenizer files, else null.</summary>
    static string? OwnTokenizer(string model)
    {
        if (!Directory.Exists(model)) return null;
        var dir = Encore.Formats.Checkpoints.CheckpointDirectory.ResolveRun(model);
        return HasTokenizerFiles(dir) ? dir : null;
    }

    /// <summary>Whether <paramref name="dir"/> holds the files of a tokenizer that <see cref="TokenizerLoader"/> reads.</summary>
    static bool HasTokenizerFiles(string dir) =>
        new[] { TokenizerLoader.TokenizerJson, TokenizerLoader.SpieceModel, TokenizerLoader.TokenizerModel, TokenizerLoader.VocabJson, TokenizerLoader.VocabTxt }
            .Any(name => File.Exists(Path.Combine(dir, name)));

    /// <summary>Runs a prepared run with a progress bar (or JSON lines), then prints where everything went.</summary>
    public static void Execute(TrainingRun run, TrainingRunOptions o, bool json, string? title = null, int samples = 3)
    {
        var p = run.Padding;
        var estimate = run.EstimateRemaining();
        if (json)
        {
            var jo = new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };
            Console.WriteLine(JsonSerializer.Serialize(new { @event = "start", parameters = run.Model.ParameterCount, trainable_parameters = run.Trainer.TrainableParameters, lora_layers = run.Adapter?.Modules.Count, resumed = run.Resumed, padding = p.Bucketed.PaddingFraction, naive_padding = p.Naive.PaddingFraction, estimated_seconds = estimate.TotalSeconds }, jo));
            run.Trainer.OnStep = r => Console.WriteLine(JsonSerializer.Serialize(new { @event = "step", r.Step, r.Loss, learning_rate = r.LearningRate, tokens_per_second = r.TokensPerSecond, eta_seconds = r.Remaining.TotalSeconds }, jo));
            run.Trainer.OnEval = e => Console.WriteLine(JsonSerializer.Serialize(new { @event = "eval", e.Step, e.Loss, e.Perplexity, e.Metrics, samples = Samples(run, samples) }, jo));
            run.Trainer.Run();
            Console.WriteLine(JsonSerializer.Serialize(new { @event = "done", checkpoint = run.Trainer.Checkpoints.LastOrDefault(), metrics = run.Trainer.MetricsPath }, jo));
            return;
        }
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(title ?? "encore train")}[/]  {run.Model.Config.Family}, {run.Model.ParameterCount / 1e6:0.00}M parameters, tokenizer {run.Tokenizer.VocabSize} ids" +
            (run.Resumed ? $", resumed at step {run.Trainer.State.Step}" : ""));
        if (run.Adapter is { } adapter)
            AnsiConsole.MarkupLine($"LoRA rank {adapter.Options.Rank}, alpha {adapter.Options.Alpha} on {adapter.Modules.Count} layers: [bold]{run.Trainer.TrainableParameters:N0}[/] trainable parameters ({100.0 * run.Trainer.TrainableParameters / run.Model.ParameterCount:0.00}% of the model's), the base frozen");
        AnsiConsole.MarkupLine($"[grey]batches: ≤ {o.MaxTokens} tokens, length-bucketed: padding {p.Bucketed.PaddingFraction:P1} (fixed-size batches of {p.NaiveBatchSize} would pad {p.Naive.PaddingFraction:P1}); truncated examples: {run.Truncation.Examples}[/]");
        AnsiConsole.MarkupLine($"estimated training time: [bold]{Common.Clock(estimate)}[/] for {o.Training.MaxSteps - run.Trainer.State.Step} steps (timed on one batch; evaluations add to it)");
        AnsiConsole.MarkupLine(o.Training.CheckpointEvery > 0
            ? $"[grey]checkpoints every {o.Training.CheckpointEvery} steps and at the end into {Markup.Escape(o.Output)}; the newest {o.Training.KeepCheckpoints} are kept (--keep-checkpoints)[/]"
            : $"[grey]one checkpoint at the end into {Markup.Escape(o.Output)}[/]");
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: o.Training.MaxSteps);
                task.Value = run.Trainer.State.Step;
                run.Trainer.OnStep = r =>
                {
                    task.Value = r.Step;
                    task.Description = $"step {r.Step}/{r.MaxSteps}  loss {r.Loss:0.000}  lr {r.LearningRate:0.0e0}  {r.TokensPerSecond:0} tok/s  ETA {Common.Clock(r.Remaining)}";
                };
                run.Trainer.OnEval = e =>
                {
                    var metrics = string.Join("  ", e.Metrics.Select(kv => $"{kv.Key} {kv.Value:0.0}"));
                    AnsiConsole.MarkupLine($"[blue]eval @ {e.Step}[/]: loss {e.Loss:0.000}, perplexity {e.Perplexity:0.00}  {Markup.Escape(metrics)}");
                    foreach (var x in Samples(run, samples))
                    {
                        AnsiConsole.MarkupLine($"  [grey]source[/]    {Markup.Escape(EvalCommand.Shorten(x.Source, 120))}");
                        AnsiConsole.MarkupLine($"  [grey]reference[/] {Markup.Escape(x.Reference)}");
                        AnsiConsole.MarkupLine($"  [grey]output[/]    [bold]{Markup.Escape(x.Output)}[/]");
                    }
                };
                run.Trainer.Run();
            });
        AnsiConsole.MarkupLine($"checkpoint: [bold]{Markup.Escape(run.Trainer.Checkpoints.LastOrDefault() ?? "none")}[/]; metrics: {Markup.Escape(run.Trainer.MetricsPath)}; loss curve: {Markup.Escape(Path.Combine(o.Output, "loss.png"))}");
    }

    /// <summary>The first <paramref name="count"/> validation examples with the outputs of the latest evaluation.</summary>
    static List<EvaluationSample> Samples(TrainingRun run, int count)
    {
        if (run.Eval is not { } eval || eval.LastPredictions.Count == 0) return [];
        return eval.Examples.Take(Math.Min(count, eval.LastPredictions.Count)).Select((e, i) => new EvaluationSample(e.Source, e.Target, eval.LastPredictions[i])).ToList();
    }
}
