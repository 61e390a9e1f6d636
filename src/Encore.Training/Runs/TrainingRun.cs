using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Objectives;
using Encore.Training.Trainer;

namespace Encore.Training.Runs;

/// <summary>Training objectives selectable by name.</summary>
public enum ObjectiveKind
{
    /// <summary>Pick from the model family: seq2seq for encoder–decoders, causal LM for decoders, MLM for encoders.</summary>
    Auto,
    /// <summary>Sequence-to-sequence cross-entropy (encoder–decoder, source→target pairs).</summary>
    Seq2Seq,
    /// <summary>Causal LM; on pairs the loss is masked on the prompt (decoder-only).</summary>
    CausalLm,
    /// <summary>Prefix LM on plain text (decoder-only: one sequence, loss on the continuation; encoder–decoder: prefix to the encoder, continuation to the decoder).</summary>
    PrefixLm,
    /// <summary>T5 span corruption on plain text (encoder–decoder).</summary>
    SpanCorruption,
    /// <summary>Masked LM (encoder-only).</summary>
    MaskedLm,
    /// <summary>UL2's mixture of R, S and X denoisers on plain text (encoder–decoder).</summary>
    Ul2,
    /// <summary>
    /// Lexical-unit fine-tuning (arXiv 2405.15208) on pairs: the family's objective with placeholder rows that
    /// teach emitting a confidently predicted span in one pass (see <see cref="LexicalUnitObjective"/>).
    /// </summary>
    LexicalUnits,
}

/// <summary>Settings of a lexical-unit run (<see cref="ObjectiveKind.LexicalUnits"/>).</summary>
public sealed record LexicalUnitRunOptions
{
    /// <summary>The placeholder token (a token of the tokenizer). Default the mask token "&lt;mask&gt;".</summary>
    public string Placeholder { get; init; } = "<mask>";
    /// <summary>α: see <see cref="LexicalUnitTrainingOptions.Alpha"/>. Default 0.9.</summary>
    public double Alpha { get; init; } = 0.9;
    /// <summary>K: see <see cref="LexicalUnitTrainingOptions.Span"/>. Default 4.</summary>
    public int Span { get; init; } = 4;
    /// <summary>Fraction of rows with placeholders: see <see cref="LexicalUnitTrainingOptions.Rate"/>. Default 0.5.</summary>
    public double Rate { get; init; } = 0.5;
    /// <summary>Fraction of cuts at unit starts: see <see cref="LexicalUnitTrainingOptions.UnitCuts"/>. Default 0.5.</summary>
    public double UnitCuts { get; init; } = 0.5;
    /// <summary>
    /// Marks written by an earlier lexical-unit run on the same data from the same model and α (its
    /// <see cref="TrainingRunOptions.LexicalUnitMarksFile"/>), read instead of marking again. Default null.
    /// </summary>
    public string? Marks { get; init; }
}

/// <summary>Everything a training run needs, with documented defaults; shared by <c>encore train</c>, <c>distill</c> and <c>quickstart</c>.</summary>
public sealed record TrainingRunOptions
{
    /// <summary>The model: a preset name, an Encore config.json, or a checkpoint directory to continue from.</summary>
    public required string Model { get; init; }
    /// <summary>Training data: JSONL {"source","target"} pairs, or plain text (one document per line) for span corruption, MLM and prefix LM.</summary>
    public required string Data { get; init; }
    /// <summary>Which JSONL fields are read as source and target (and the reading limits). Default: "source" and "target".</summary>
    public DatasetReadOptions Fields { get; init; } = new();
    /// <summary>Validation data in the same format; default: a held-out split of the training data.</summary>
    public string? Validation { get; init; }
    /// <summary>Fraction held out when no validation file is given. Default 0.05.</summary>
    public double ValidationFraction { get; init; } = 0.05;
    /// <summary>A directory with tokenizer files; default: a byte-level BPE trained on the data (see <see cref="TokenizerVocab"/>).</summary>
    public string? Tokenizer { get; init; }
    /// <summary>Vocabulary size of a BPE trained on the data. Default 2048.</summary>
    public int TokenizerVocab { get; init; } = 2048;
    /// <summary>Where checkpoints, metrics.jsonl and loss.png go.</summary>
    public required string Output { get; init; }
    /// <summary>The objective. Default: from the model family.</summary>
    public ObjectiveKind Objective { get; init; } = ObjectiveKind.Auto;
    /// <summary>Token budget of a batch (padded tokens, source plus target). Default 4096.</summary>
    public int MaxTokens { get; init; } = 4096;
    /// <summary>Longest source kept (tokens); longer ones are truncated. Default 1024.</summary>
    public int MaxSourceTokens { get; init; } = 1024;
    /// <summary>Longest target kept (tokens). Default 256.</summary>
    public int MaxTargetTokens { get; init; } = 256;
    /// <summary>
    /// Probability that a token is selected for prediction under <see cref="ObjectiveKind.MaskedLm"/> (of the
    /// selected, 80% become the mask, 10% a random id, 10% stay). Default 0.15 (BERT); ModernBERT and Ettin train at 0.3.
    /// </summary>
    public double MaskedLmProbability { get; init; } = 0.15;
    /// <summary>Validation examples decoded for the generation metrics (0 turns them off). Default 64.</summary>
    public int EvalExamples { get; init; } = 64;
    /// <summary>Tokens generated per validation example. Default 32.</summary>
    public int EvalMaxNewTokens { get; init; } = 32;
    /// <summary>Teacher checkpoint directory for distillation; null trains with cross-entropy alone.</summary>
    public string? Teacher { get; init; }
    /// <summary>Optimizer, schedule, intervals, seed, distillation weights.</summary>
    public TrainingOptions Training { get; init; } = new();
    /// <summary>Continue from the newest checkpoint in <see cref="Output"/>.</summary>
    public bool Resume { get; init; }
    /// <summary>
    /// Start from a checkpoint of another run (a <c>checkpoint-N</c> directory, or a run directory
    /// for its newest): its weights, optimizer state, step, data position and metrics up to that
    /// step, so this run continues that run's schedule with its own options — another objective or
    /// a teacher for the last steps, say.
    /// </summary>
    public string? ResumeFrom { get; init; }
    /// <summary>Start over in an <see cref="Output"/> that holds an earlier run: its checkpoints, metrics.jsonl and loss.png are deleted (other files are kept).</summary>
    public bool Overwrite { get; init; }
    /// <summary>
    /// Train a low-rank adapter with these options on <see cref="Model"/> (a checkpoint), which stays frozen; the
    /// checkpoints hold the adapter alone, in PEFT's layout. Null (the default) trains the model itself.
    /// </summary>
    public LoraOptions? Lora { get; init; }
    /// <summary>
    /// Settings of <see cref="ObjectiveKind.LexicalUnits"/> (default ones when null). The units are marked once,
    /// by the model as loaded (before any step), and kept in <see cref="LexicalUnitMarksFile"/> of the run
    /// folder, which <see cref="Resume"/> reads back.
    /// </summary>
    public LexicalUnitRunOptions? LexicalUnits { get; init; }

    /// <summary>The file in a run folder that holds a lexical-unit run's marks.</summary>
    public const string LexicalUnitMarksFile = "lexical-units.marks";
}

/// <summary>A prepared run: model, tokenizer, data and trainer, ready to <see cref="Trainer.Trainer.Run"/>.</summary>
public sealed class TrainingRun : IDisposable
{
    TrainingRun(LanguageModel model, TextTokenizer tokenizer, Trainer.Trainer trainer, TrainingBatches train, IReadOnlyList<TextPair> validationPairs,
        LanguageModel? teacher, PaddingReport padding, TruncationReport truncation)
    {
        Model = model;
        Tokenizer = tokenizer;
        Trainer = trainer;
        Batches = train;
        ValidationPairs = validationPairs;
        Teacher = teacher;
        Padding = padding;
        Truncation = truncation;
    }

    /// <summary>The model being trained.</summary>
    public LanguageModel Model { get; }
    /// <summary>The tokenizer (saved into every checkpoint).</summary>
    public TextTokenizer Tokenizer { get; }
    /// <summary>The trainer.</summary>
    public Trainer.Trainer Trainer { get; }
    /// <summary>The training batches.</summary>
    public TrainingBatches Batches { get; }
    /// <summary>Validation pairs (text).</summary>
    public IReadOnlyList<TextPair> ValidationPairs { get; }
    /// <summary>The distillation teacher, if any.</summary>
    public LanguageModel? Teacher { get; }
    /// <summary>Padding of the bucketed batches and of naive fixed-size batches.</summary>
    public PaddingReport Padding { get; }
    /// <summary>Examples truncated to the length limits.</summary>
    public TruncationReport Truncation { get; }
    /// <summary>Whether the run continued from a checkpoint.</summary>
    public bool Resumed { get; private set; }
    /// <summary>The generation metrics computed at each evaluation (null when off); its <see cref="GenerationEval.LastPredictions"/> are the latest outputs.</summary>
    public GenerationEval? Eval { get; private set; }
    /// <summary>The adapter trained by a LoRA run (active on <see cref="Model"/>), else null.</summary>
    public LoraAdapter? Adapter { get; private set; }

    /// <summary>
    /// Estimated time of the steps left: one forward and backward pass over the median-size batch
    /// of the run's first epoch, timed after a warm-up pass (no update is made), times the
    /// micro-batches still to run. Evaluation time is not included.
    /// </summary>
    public TimeSpan EstimateRemaining()
    {
        var plan = Batches.Plan(0);
        if (plan.Count == 0) return TimeSpan.Zero;
        var median = plan.OrderBy(b => b.Length).ElementAt(plan.Count / 2);
        var batch = Batches.MakeBatch(median, 0);
        Trainer.TimePass(batch);
        var once = Trainer.TimePass(batch);
        var o = Trainer.Options;
        long left = (long)(o.MaxSteps - Trainer.State.Step) * o.GradientAccumulation;
        return TimeSpan.FromSeconds(once.TotalSeconds * Math.Max(0, left));
    }

    /// <summary>Loads or builds everything <paramref name="o"/> names; errors name the file or option at fault.</summary>
    public static TrainingRun Prepare(TrainingRunOptions o, Action<string>? progress = null)
    {
        var training = o.Training.Validate();
        if (o.MaxSourceTokens < 1) throw new ArgumentException($"--max-source-tokens must be positive, got {o.MaxSourceTokens}");
        if (o.Resume && o.Overwrite) throw new ArgumentException("--resume continues a run and --overwrite deletes it: pass one of them");
        if (o.Resume && o.ResumeFrom != null) throw new ArgumentException("--resume continues the run in --out and --resume-from starts one from another run's checkpoint: pass one of them");
        if (o.ResumeFrom != null && !Directory.Exists(o.ResumeFrom)) throw new ArgumentException($"--resume-from: {o.ResumeFrom} does not exist");
        if (o.ResumeFrom != null && IsWithin(o.ResumeFrom, o.Output))
            throw new ArgumentException($"--resume-from: {o.ResumeFrom} is in --out {o.Output}, which this run writes (and --overwrite would delete); to continue that run pass --resume, or fork it into another --out");
        var stale = CheckOutput(o);
        // A training run folder stands for its newest checkpoint wherever a checkpoint is expected.
        o = o with
        {
            Model = CheckpointDirectory.ResolveRun(o.Model),
            Tokenizer = o.Tokenizer is null ? null : CheckpointDirectory.ResolveRun(o.Tokenizer),
            Teacher = o.Teacher is null ? null : CheckpointDirectory.ResolveRun(o.Teacher),
        };
        bool plainText = !DatasetReader.IsPairFile(o.Data);
        List<TextPair> pairs = plainText ? [] : [.. DatasetReader.ReadPairs(o.Data, o.Fields)];
        List<string> documents = plainText ? [.. DatasetReader.ReadDocuments(o.Data, TextLayout.LinePerDocument)] : [];
        var validationPairs = o.Validation is null ? null : DatasetReader.ReadPairs(o.Validation, o.Fields).ToList();

        progress?.Invoke(o.Tokenizer is null ? $"training a {o.TokenizerVocab}-id BPE tokenizer on the data" : $"loading the tokenizer from {o.Tokenizer}");
        TextTokenizer tokenizer = o.Tokenizer is not null ? TokenizerLoader.FromDirectory(o.Tokenizer)
            : plainText ? BpeTrainer.Train(documents, o.TokenizerVocab, BundledData.SpecialTokens(), new SpecialTokenRoles(Bos: "<s>", Eos: "</s>", Pad: "<pad>"))
            : BundledData.TrainTokenizer(pairs, o.TokenizerVocab);

        if (o.Lora != null && !Directory.Exists(o.Model))
            throw new ArgumentException($"a LoRA run adapts a trained model: --model must be a checkpoint directory, not '{o.Model}'");
        var model = LoadModel(o.Model, tokenizer);
        LoraAdapter? adapter = null;
        try
        {
            AdapterTraining? adapterTraining = null;
            if (o.Lora != null)
            {
                adapter = LoraAdapter.Create(model, o.Lora, training.Seed);
                adapter.Name = Path.GetFileName(Path.TrimEndingDirectorySeparator(o.Output));
                model.Adapters.Active = adapter;
                adapterTraining = new AdapterTraining(adapter, Checkpoint.ReadConfig(o.Model).Architecture.ModelType, Path.GetFullPath(o.Model));
            }
            var objective = MakeObjective(o.Objective, model, tokenizer, plainText, training.Seed, o.MaskedLmProbability);
            var data = plainText ? TokenizedDataset.FromDocuments(documents, tokenizer, Path.GetFileName(o.Data))
                : TokenizedDataset.FromPairs(pairs, tokenizer, Path.GetFileName(o.Data));
            // Every example must fit one batch: sources are cut to what the token budget leaves after
            // the target (and the EOS, start or BOS ids the objective adds).
            int maxTarget = Math.Min(o.MaxTargetTokens, o.MaxTokens / 4);
            int maxSource = Math.Min(o.MaxSourceTokens, o.MaxTokens - (plainText ? 0 : maxTarget) - 4);
            if (maxSource < 1) throw new ArgumentException($"--max-tokens {o.MaxTokens} leaves no room for a source; raise it");
            data = data.Truncate(maxSource, plainText ? null : maxTarget, out var truncation);
            int[] trainIdx, validIdx;
            TokenizedDataset validData;
            if (validationPairs is null && !plainText)
            {
                var split = data.Split(o.ValidationFraction, training.Seed);
                (trainIdx, validIdx) = (split.Train, split.Validation);
                validationPairs = validIdx.Select(i => pairs[i]).ToList();
                validData = data;
            }
            else if (validationPairs is not null)
            {
                trainIdx = Enumerable.Range(0, data.Count).ToArray();
                validData = TokenizedDataset.FromPairs(validationPairs, tokenizer, "validation").Truncate(maxSource, maxTarget, out _);
                validIdx = Enumerable.Range(0, validData.Count).ToArray();
            }
            else
            {
                var split = data.Split(o.ValidationFraction, training.Seed);
                (trainIdx, validIdx) = (split.Train, split.Validation);
                validData = data;
                validationPairs = [];
            }
            var bucketing = new BucketingOptions { MaxTokens = o.MaxTokens, Seed = training.Seed };
            var validObjective = objective;
            if (o.Objective == ObjectiveKind.LexicalUnits)
                objective = LexicalUnitObjectiveFor(o, model, tokenizer, objective, data, trainIdx, progress);
            var train = new TrainingBatches(data, objective, bucketing, trainIdx);
            var valid = new TrainingBatches(validData, validObjective, bucketing with { Seed = training.Seed + 1 }, validIdx);
            var padding = train.MeasurePadding();

            LanguageModel? teacher = null;
            Distillation? distillation = null;
            if (o.Teacher is not null)
            {
                progress?.Invoke($"loading the teacher from {o.Teacher}");
                teacher = Checkpoint.Load(o.Teacher, new CheckpointLoadOptions { MapWeights = true });
                TextTokenizer? teacherTokenizer = null;
                try
                {
                    teacherTokenizer = TokenizerLoader.FromDirectory(o.Teacher);
                }
                catch (FileNotFoundException)
                {
                    // A teacher without tokenizer files is checked by vocabulary size alone.
                }
                distillation = new Distillation(teacher, model, teacherTokenizer, tokenizer);
            }

            Delete(stale);
            var trainer = new Trainer.Trainer(model, training, train.AsSource(), o.Output, valid.Epoch(0).ToList(), distillation, adapterTraining);
            var run = new TrainingRun(model, tokenizer, trainer, train, validationPairs, teacher, padding, truncation) { Adapter = adapter };
            trainer.WriteExtras = dir => SaveTokenizer(tokenizer, dir);
            if (o.EvalExamples > 0 && validationPairs.Count > 0 && model is not EncoderOnlyModel)
            {
                var eval = new GenerationEval(tokenizer, validationPairs.Take(o.EvalExamples).ToList(), o.EvalMaxNewTokens);
                trainer.GenerationMetrics = eval.Evaluate;
                run.Eval = eval;
            }
            if (o.Resume) run.Resumed = trainer.Resume();
            else if (o.ResumeFrom != null)
            {
                var from = CheckpointDirectory.ResolveRun(o.ResumeFrom);
                trainer.ResumeFrom(from, Path.Combine(Path.GetDirectoryName(Path.GetFullPath(from))!, "metrics.jsonl"));
                run.Resumed = true;
            }
            return run;
        }
        catch
        {
            adapter?.Dispose();
            model.Dispose();
            throw;
        }
    }

    // Whether path is dir or lies under it.
    static bool IsWithin(string path, string dir)
    {
        var p = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        var d = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));
        return p == d || p.StartsWith(d + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }

    /// <summary>Files of a run directory that belong to the trainer.</summary>
    static bool IsRunFile(string path)
    {
        var name = Path.GetFileName(path);
        return name is "metrics.jsonl" or "loss.png" || name.StartsWith("checkpoint-", StringComparison.Ordinal) || Encore.Training.Trainer.Trainer.IsTemporary(name);
    }

    // A run directory holds one run: a second run in it would append to its metrics and rotate its
    // checkpoints together with the first one's, so reuse is refused unless asked for.
    // Returns what --overwrite will delete once everything else has loaded (so a bad option loses nothing).
    static List<string> CheckOutput(TrainingRunOptions o)
    {
        if (!Directory.Exists(o.Output) || o.Resume) return [];
        var ours = Directory.EnumerateFileSystemEntries(o.Output).Where(IsRunFile).Order(StringComparer.Ordinal).ToList();
        if (ours.Count > 0 && !o.Overwrite)
            throw new ArgumentException($"{o.Output} already holds a run ({string.Join(", ", ours.Take(3).Select(Path.GetFileName))}{(ours.Count > 3 ? ", …" : "")}): " +
                "pass --resume to continue it, --overwrite to start over (its checkpoints and metrics are deleted), or another --out");
        return ours;
    }

    static void Delete(IEnumerable<string> entries)
    {
        foreach (var entry in entries)
        {
            if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
            else if (File.Exists(entry)) File.Delete(entry);
        }
    }

    /// <summary>A preset, a config.json, or a checkpoint directory; the vocabulary follows the tokenizer.</summary>
    public static LanguageModel LoadModel(string spec, TextTokenizer tokenizer)
    {
        if (Directory.Exists(spec))
        {
            var m = Checkpoint.Load(spec);
            if (m.Config.VocabSize < tokenizer.VocabSize)
            {
                m.Dispose();
                throw new ArgumentException($"{spec}: the model's vocabulary ({m.Config.VocabSize}) is smaller than the tokenizer's ({tokenizer.VocabSize})");
            }
            return m;
        }
        ModelConfig config;
        if (Presets.All.TryGetValue(spec, out var preset)) config = preset;
        else if (File.Exists(spec))
        {
            try
            {
                config = ModelConfigJson.Deserialize(File.ReadAllText(spec), spec);
            }
            catch (FormatException e)
            {
                throw new ArgumentException(e.Message, e);
            }
        }
        else throw new ArgumentException($"'{spec}' is neither a preset ({string.Join(", ", Presets.All.Keys)}), a config.json nor a checkpoint directory");
        return LanguageModel.Create(ForTokenizer(config, tokenizer), seed: 0);
    }

    /// <summary>
    /// <paramref name="config"/> with the vocabulary size and special ids of <paramref name="tokenizer"/>;
    /// the decoder starts from the tokenizer's decoder-start id (its BOS, else pad), which the
    /// objectives then read back from the config, so training and generation start alike.
    /// </summary>
    public static ModelConfig ForTokenizer(ModelConfig config, TextTokenizer tokenizer) => config with
    {
        VocabSize = tokenizer.VocabSize,
        PadTokenId = tokenizer.PadId ?? config.PadTokenId,
        EosTokenId = tokenizer.EosId ?? config.EosTokenId,
        BosTokenId = tokenizer.BosId ?? config.BosTokenId,
        DecoderStartTokenId = tokenizer.DecoderStartId ?? config.DecoderStartTokenId,
    };

    /// <summary>
    /// The lexical-unit objective around <paramref name="inner"/>: the placeholder resolved with
    /// <paramref name="tokenizer"/>, and the training examples marked by <paramref name="model"/> as loaded
    /// (or the marks of the run folder when resuming).
    /// </summary>
    static LexicalUnitObjective LexicalUnitObjectiveFor(TrainingRunOptions o, LanguageModel model, TextTokenizer tokenizer, ITrainingObjective inner,
        TokenizedDataset data, int[] trainIdx, Action<string>? progress)
    {
        var lu = o.LexicalUnits ?? new LexicalUnitRunOptions();
        int placeholder = tokenizer.TokenToId(lu.Placeholder)
            ?? throw new ArgumentException($"--lud-placeholder: '{lu.Placeholder}' is not a token of the tokenizer; name one it has (a mask or unused special token)");
        var options = new LexicalUnitTrainingOptions { PlaceholderId = placeholder, Alpha = lu.Alpha, Span = lu.Span, Rate = lu.Rate, UnitCuts = lu.UnitCuts }.Validate();
        var file = Path.Combine(o.Output, TrainingRunOptions.LexicalUnitMarksFile);
        LexicalUnitMarks marks;
        if ((o.Resume && File.Exists(file)) || lu.Marks != null)
        {
            var from = o.Resume && File.Exists(file) ? file : lu.Marks!;
            progress?.Invoke($"reading lexical-unit marks from {from}");
            marks = LexicalUnitMarks.Load(from, data.Count);
            if (from != file)
            {
                Directory.CreateDirectory(o.Output);
                marks.Save(file);
            }
        }
        else
        {
            progress?.Invoke($"marking lexical units (probability above {lu.Alpha.ToString(System.Globalization.CultureInfo.InvariantCulture)}) in {trainIdx.Length} training examples with the model as loaded");
            marks = LexicalUnitMarks.Mark(model, data, inner, trainIdx, lu.Alpha, o.MaxTokens);
            Directory.CreateDirectory(o.Output);
            marks.Save(file);
            progress?.Invoke($"{marks.FlaggedFraction:P1} of the target tokens are in lexical units");
        }
        return new LexicalUnitObjective(inner, marks, options);
    }

    /// <summary>
    /// The objective <paramref name="kind"/> for <paramref name="model"/> (Auto: from the family and whether the
    /// data is plain text); throws when they do not fit. <paramref name="seed"/> fixes what an objective draws
    /// once per example (an encoder–decoder prefix LM's cut points, UL2's denoisers); <paramref name="maskedLmProbability"/>
    /// is masked LM's selection probability (see <see cref="TrainingRunOptions.MaskedLmProbability"/>).
    /// </summary>
    public static ITrainingObjective MakeObjective(ObjectiveKind kind, LanguageModel model, TextTokenizer tok, bool plainText, ulong seed = 0, double maskedLmProbability = 0.15)
    {
        if (kind == ObjectiveKind.LexicalUnits)
        {
            // The base rows the lexical-unit objective cuts; it is built around them once the data is marked.
            if (plainText) throw new ArgumentException("the lexical-unit objective fine-tunes on source/target pairs, not plain text");
            if (model is EncoderOnlyModel) throw new ArgumentException("the lexical-unit objective needs a model that generates (encoder–decoder or decoder-only)");
            kind = ObjectiveKind.Auto;
        }
        if (kind == ObjectiveKind.Auto)
            kind = model switch
            {
                EncoderDecoderModel => plainText ? ObjectiveKind.SpanCorruption : ObjectiveKind.Seq2Seq,
                DecoderOnlyModel => plainText ? ObjectiveKind.PrefixLm : ObjectiveKind.CausalLm,
                _ => ObjectiveKind.MaskedLm,
            };
        bool ok = kind switch
        {
            ObjectiveKind.Seq2Seq or ObjectiveKind.SpanCorruption or ObjectiveKind.Ul2 => model is EncoderDecoderModel,
            ObjectiveKind.PrefixLm => model is DecoderOnlyModel or EncoderDecoderModel,
            ObjectiveKind.CausalLm => model is DecoderOnlyModel,
            ObjectiveKind.MaskedLm => model is EncoderOnlyModel,
            _ => false,
        };
        if (!ok) throw new ArgumentException($"objective {kind} does not fit a {model.Config.Family} model");
        return kind switch
        {
            ObjectiveKind.Seq2Seq => new Seq2SeqObjective(Seq2SeqOptions.For(tok, model.Config)),
            ObjectiveKind.SpanCorruption => new SpanCorruptionObjective(SpanCorruptionOptions.For(tok, model.Config)),
            ObjectiveKind.CausalLm => new CausalLmObjective(CausalLmOptions.For(tok)),
            ObjectiveKind.PrefixLm when model is EncoderDecoderModel => new PrefixLmObjective(Seq2SeqOptions.For(tok, model.Config), seed),
            ObjectiveKind.PrefixLm => new PrefixLmObjective(CausalLmOptions.For(tok)),
            ObjectiveKind.Ul2 => new Ul2Objective(Ul2Options.For(tok, model.Config, seed)),
            _ => new MaskedLmObjective(new MaskedLmOptions
            {
                PadId = tok.PadId ?? 0,
                MaskId = tok.TokenToId("<mask>") ?? tok.TokenToId("[MASK]") ?? throw new ArgumentException("masked LM needs a <mask> or [MASK] token in the tokenizer"),
                VocabSize = model.Config.VocabSize,
                NoRandom = tok.AddedTokens.Values.ToArray(),
                SelectProbability = maskedLmProbability,
            }),
        };
    }

    /// <summary>Writes the tokenizer files into a checkpoint directory (byte-level BPE: tokenizer.json; others: copied files).</summary>
    public static void SaveTokenizer(TextTokenizer tokenizer, string dir)
    {
        if (tokenizer is ByteLevelBpeTextTokenizer bpe) bpe.Save(dir);
    }

    /// <summary>Frees the model and the teacher.</summary>
    public void Dispose()
    {
        Trainer.Dispose();
        Adapter?.Dispose();
        Model.Dispose();
        Teacher?.Dispose();
    }
}
