using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Formats.Hub;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Cli.Commands;

/// <summary>What every command shares: the JSON settings of <c>--json</c>, the <c>--threads</c> option, number and machine rendering.</summary>
internal static class Common
{
    /// <summary>JSON output of every command: snake_case keys, indented.</summary>
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // Labels such as "1024×1024×1024" stay readable; the output is never embedded in HTML.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>
    /// The shared <c>--source-field</c> (repeatable) and <c>--target-field</c> options: which JSONL
    /// fields of a pair file are read as source (joined by ": ") and target.
    /// </summary>
    internal sealed class FieldOptions
    {
        public readonly Option<string[]> Source = new("--source-field")
        {
            Description = "JSONL field read as the source; repeat it to join several with \": \" (e.g. --source-field package --source-field source). Default: source.",
        };
        public readonly Option<string> Target = new("--target-field") { Description = "JSONL field read as the target (e.g. section of data/debian).", DefaultValueFactory = _ => "target" };

        public IEnumerable<Option> All => [Source, Target];

        public Training.Data.DatasetReadOptions Read(ParseResult parse)
        {
            var source = parse.GetValue(Source) is { Length: > 0 } s ? s : ["source"];
            return new Training.Data.DatasetReadOptions { SourceFields = source, TargetField = parse.GetValue(Target)! };
        }
    }

    /// <summary>
    /// What the user named as a model (or adapter, tokenizer, teacher …), as a local path: a file or folder that
    /// exists always wins; a name that is not shaped as a hub id (a preset, an absolute or ./ path) passes through;
    /// a Hugging Face id "org/name[@revision]" becomes its snapshot folder in the hub cache, downloaded when
    /// missing unless HF_HUB_OFFLINE is set (docs/hub.md). Downloads show a progress bar on stderr when it is a
    /// terminal, unless <paramref name="quiet"/> (--json) or stdout is redirected.
    /// </summary>
    internal static string ModelPath(string spec, bool quiet = false)
    {
        if (File.Exists(spec) || Directory.Exists(spec) || !HubModelId.LooksLikeHubId(spec)) return spec;
        var options = HubOptions.FromEnvironment() with { Warning = w => Console.Error.WriteLine($"encore: {w}") };
        if (quiet || options.Offline || Console.IsOutputRedirected || Console.IsErrorRedirected) return HubModels.ResolvePath(spec, options);
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        string path = spec;
        console.Progress().AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .Start(ctx => path = HubModels.ResolvePath(spec, options with { Progress = new DownloadProgress(ctx) }));
        return path;
    }

    /// <summary>One progress bar per downloaded file of at least 1 MiB (or of unknown size).</summary>
    sealed class DownloadProgress(ProgressContext ctx) : IProgress<HubDownloadProgress>
    {
        readonly Dictionary<string, ProgressTask> _tasks = [];

        public void Report(HubDownloadProgress p)
        {
            lock (_tasks)
            {
                if (!_tasks.TryGetValue(p.File, out var task))
                {
                    if (p.TotalBytes is < 1 << 20) return;
                    _tasks[p.File] = task = ctx.AddTask(Markup.Escape($"{p.RepoId}: {p.File}"), maxValue: p.TotalBytes ?? Math.Max(1, p.BytesDone));
                    if (p.TotalBytes is null) task.IsIndeterminate = true;
                }
                if (p.TotalBytes is null && p.BytesDone > task.MaxValue) task.MaxValue = p.BytesDone;
                task.Value = p.BytesDone;
                if (p.Done) task.StopTask();
            }
        }
    }

    /// <summary>
    /// The shared <c>--dtype</c> option of the inference commands: the weight matrices' type after
    /// loading (f32, bf16, f16, q8_0, q4_0; quantized at load when the checkpoint holds another), or
    /// none to keep them as stored.
    /// </summary>
    internal static Option<string?> WeightDTypeOption() => new("--dtype")
    {
        Description = "Weight matrices' type at run time: f32, bf16, f16, q8_0 or q4_0, converted at load when the checkpoint holds another (default: as stored; `encore quantize` writes a checkpoint that needs no conversion).",
    };

    /// <summary>Parses a weight dtype given on the command line, naming the option in the error.</summary>
    /// <summary>
    /// How a printed suggestion runs encore again: <c>encore</c> when this is an installed tool (its
    /// assembly under a tool store), <c>dotnet encore</c> for a local tool (under the NuGet package
    /// folder), else the repository's <c>dotnet run</c> line.
    /// </summary>
    internal static string SelfCommand
    {
        get
        {
            var dir = AppContext.BaseDirectory.Replace('\\', '/');
            if (dir.Contains("/.store/", StringComparison.Ordinal)) return "encore";
            if (dir.Contains("/tools/net10.0/any/", StringComparison.Ordinal)) return "dotnet encore";
            return "dotnet run --project src/Encore.Cli -c Release --";
        }
    }

    internal static DType ParseWeightDType(string value, string option)
    {
        DType t;
        try { t = DTypes.Parse(value); }
        catch (ArgumentException) { t = DType.I32; }
        if (t is not (DType.F32 or DType.BF16 or DType.F16 or DType.Q8_0 or DType.Q4_0))
            throw new ArgumentException($"{option} '{value}' is not one of f32, bf16, f16, q8_0, q4_0");
        return t;
    }

    /// <summary>
    /// Loads the checkpoint in <paramref name="dir"/> memory-mapped for inference, converting its weight
    /// matrices to <paramref name="dtype"/> when one is given and differs from what is stored.
    /// </summary>
    internal static LanguageModel LoadForInference(string dir, string? dtype)
    {
        var target = dtype is null ? (DType?)null : ParseWeightDType(dtype, "--dtype");
        var m = Checkpoint.Load(dir, new CheckpointLoadOptions { MapWeights = true });
        try
        {
            if (target is DType t) m.ConvertWeights(t);
            else m.UseKernelLayouts();
            return m;
        }
        catch
        {
            m.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads the LoRA adapter at <paramref name="adapterPath"/> (a PEFT adapter directory, or a LoRA run folder for its
    /// newest checkpoint) for <paramref name="model"/>, loaded from <paramref name="modelDir"/>: checked against it first.
    /// </summary>
    internal static LoraAdapter LoadAdapter(string adapterPath, LanguageModel model, string modelDir, bool quiet = false)
    {
        var dir = PeftAdapter.Resolve(ModelPath(adapterPath, quiet));
        return PeftAdapter.Load(dir, model, Checkpoint.ReadConfig(modelDir).Architecture.ModelType);
    }

    /// <summary>The --adapter option of the commands that run a model.</summary>
    internal static Option<string?> AdapterOption() => new("--adapter")
    {
        Description = "A LoRA adapter to apply on top of the model: a PEFT adapter directory (adapter_config.json, adapter_model.safetensors) or the run folder of `encore train --lora-rank`.",
    };

    /// <summary>
    /// Loads the draft model of speculative decoding from <paramref name="draftPath"/> (a checkpoint or run
    /// folder) as <paramref name="dtype"/>, and checks it against the model of <paramref name="modelDir"/>: the
    /// same family and vocabulary size, and, when the draft checkpoint has tokenizer files, the same tokens
    /// (every id's piece and the special ids). Errors name both directories.
    /// </summary>
    internal static LanguageModel LoadDraft(string draftPath, string? dtype, LanguageModel model, string modelDir, TextTokenizer tokenizer, bool quiet = false)
    {
        string dir = CheckpointDirectory.Resolve(ModelPath(draftPath, quiet));
        var draft = LoadForInference(dir, dtype);
        try
        {
            Generation.SpeculativeDecoding.CheckDraft(model, draft, $"--model {modelDir}", $"--draft-model {dir}");
            if (TryLoadTokenizer(dir) is { } own)
            {
                string? difference = own.VocabSize != tokenizer.VocabSize ? $"{own.VocabSize} tokens against {tokenizer.VocabSize}"
                    : (own.BosId, own.EosId, own.PadId) != (tokenizer.BosId, tokenizer.EosId, tokenizer.PadId) ? "other special token ids"
                    : Enumerable.Range(0, Math.Min(own.VocabSize, 1 << 20)).FirstOrDefault(i => own.IdToToken(i) != tokenizer.IdToToken(i), -1) is int id and >= 0
                        ? $"token {id} is '{own.IdToToken(id)}' against '{tokenizer.IdToToken(id)}'" : null;
                if (difference != null)
                    throw new ArgumentException($"--draft-model {dir} has another tokenizer than --model {modelDir} ({difference}): a draft model must share the model's tokenizer");
            }
            return draft;
        }
        catch
        {
            draft.Dispose();
            throw;
        }
    }

    static TextTokenizer? TryLoadTokenizer(string dir)
    {
        try
        {
            return TokenizerLoader.FromDirectory(dir);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// The shared <c>--tokenizer</c> option of the inference commands: a directory with tokenizer files, for a
    /// checkpoint saved without them.
    /// </summary>
    internal static Option<string?> TokenizerOption() => new("--tokenizer")
    {
        Description = "Directory with the tokenizer files (tokenizer.json, spiece.model, vocab.json + merges.txt, vocab.txt), for a checkpoint without them (default: the checkpoint's own).",
    };

    /// <summary>
    /// The tokenizer in <paramref name="tokenizerDir"/> when given, else the checkpoint's own in
    /// <paramref name="modelDir"/>; a checkpoint without one fails with a message naming <c>--tokenizer</c>.
    /// </summary>
    internal static TextTokenizer LoadTokenizer(string modelDir, string? tokenizerDir, bool quiet = false)
    {
        if (tokenizerDir != null) return TokenizerLoader.FromDirectory(ModelPath(tokenizerDir, quiet));
        try
        {
            return TokenizerLoader.FromDirectory(modelDir);
        }
        catch (FileNotFoundException e)
        {
            throw new FileNotFoundException($"{e.Message}; pass --tokenizer DIR with a directory that holds them", e);
        }
    }

    /// <summary>
    /// What <c>embed</c> and <c>serve</c> load for embeddings from <paramref name="dir"/>: a sentence-transformers
    /// directory (its pipeline decides pooling, normalization and length, and its Transformer folder holds the
    /// checkpoint), a checkpoint, or a training run folder. The model is memory-mapped (<see cref="LoadForInference"/>)
    /// and belongs to the caller.
    /// </summary>
    internal static (LanguageModel Model, string CheckpointDirectory, TextTokenizer Tokenizer, EmbeddingOptions Defaults) LoadEmbedding(string dir, string? dtype, string? tokenizerDir,
        bool requireEncoder = false, bool quiet = false)
    {
        dir = ModelPath(dir, quiet);
        var pipeline = SentenceTransformersConfig.Read(dir);
        string checkpoint = pipeline?.TransformerDirectory ?? CheckpointDirectory.Resolve(dir);
        // Refused before the weights are read.
        if (requireEncoder && Checkpoint.ReadConfig(checkpoint).Config.Family == ModelFamily.DecoderOnly)
            throw new ArgumentException($"{checkpoint} is a decoder-only model: it has no encoder to embed with (embeddings come from encoder-only and encoder–decoder models)");
        var model = LoadForInference(checkpoint, dtype);
        try
        {
            pipeline?.EnsureFits(model.Config.Family == ModelFamily.EncoderDecoder ? model.Config.EncoderDModel : model.Config.DModel);
            return (model, checkpoint, LoadTokenizer(checkpoint, tokenizerDir, quiet), EmbeddingOptions.FromSentenceTransformers(pipeline));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The shared <c>--threads</c> option: kernel pool size, 1 to 1024, default the processor count.</summary>
    /// <remarks>
    /// No DefaultValueFactory: help would print this machine's count as a fixed "[default: N]" next to the
    /// description's "(default: the processor count)". Read it with <see cref="Threads"/>.
    /// </remarks>
    internal static Option<int?> ThreadsOption(string description)
    {
        var option = new Option<int?>("--threads") { Description = description };
        option.Validators.Add(r =>
        {
            // Only a parsed value is checked; a token that is not an integer is the parser's error to report.
            if (r.Tokens.Count == 1 && int.TryParse(r.Tokens[0].Value, out int v) && v is < 1 or > 1024)
                r.AddError($"--threads must be between 1 and 1024, got {v}");
        });
        return option;
    }

    /// <summary>The value of a <see cref="ThreadsOption"/>: the number given, else the processor count.</summary>
    internal static int Threads(ParseResult parse, Option<int?> option) => parse.GetValue(option) ?? Environment.ProcessorCount;

    /// <summary>The machine as a two-column table (also printed at the top of every benchmark).</summary>
    internal static Table MachineTable(MachineReport m)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("[bold]Machine[/]");
        table.AddColumn("property");
        table.AddColumn("value");
        void Row(string name, string value) => table.AddRow(Markup.Escape(name), Markup.Escape(value));
        Row("runtime", $"{m.DotnetVersion} ({m.Architecture})");
        Row("OS", m.Os);
        Row("CPU", m.CpuModel);
        Row("logical cores", m.LogicalCores.ToString(CultureInfo.InvariantCulture));
        Row("SIMD", $"{m.Simd}; kernels use {(m.SimdBits == 0 ? "scalar code" : $"{m.SimdBits}-bit vectors")}");
        Row("last-level cache", m.LastLevelCacheBytes > 0 ? $"{m.LastLevelCacheBytes >> 20} MiB" : "unknown");
        Row("kernel threads", m.Threads.ToString(CultureInfo.InvariantCulture));
        Row("memory read bandwidth", $"{F(m.ReadGBPerSecond)} GB/s ({m.Threads} threads), {F(m.ReadGBPerSecondSingleThread)} GB/s (1 thread); {m.BandwidthBufferBytes >> 20} MiB buffer");
        Row("FMA peak (f32)", $"{F(m.FmaGflops)} GFLOP/s ({m.Threads} threads), {F(m.FmaGflopsPerThread)} GFLOP/s (1 thread)");
        Row("probe", $"median of {m.Repetitions}, {m.ProbeSeconds:0.00} s");
        return table;
    }

    /// <summary>
    /// The one format of durations in progress lines, estimates and totals: h:mm:ss, or m:ss under an hour,
    /// rounded to the nearest second ("0:59", "1:02:05"). A negative or unbounded span prints as "?:??".
    /// </summary>
    internal static string Clock(TimeSpan t)
    {
        double seconds = Math.Round(t.TotalSeconds);
        if (!(seconds >= 0) || seconds > int.MaxValue) return "?:??";
        long s = (long)seconds;
        return s >= 3600 ? $"{s / 3600}:{s / 60 % 60:00}:{s % 60:00}" : $"{s / 60}:{s % 60:00}";
    }

    internal static string F(double x) => x.ToString(x >= 100 ? "0" : x >= 10 ? "0.0" : "0.00", CultureInfo.InvariantCulture);
}
