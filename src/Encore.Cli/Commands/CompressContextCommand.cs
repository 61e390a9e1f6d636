using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Tensors.Threading;
using Encore.Training.Data;
using Encore.Training.Objectives;
using Encore.Training.Runs;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore compress-context train|eval</c>: ARC-Encoder context compression (<see cref="ContextCompressor"/>): an
/// encoder made from a decoder-only model turns n tokens into ⌈n/PF⌉ vectors that a frozen decoder reads in place of
/// the tokens' embeddings (docs/adaptive-compute.md, "Context compression").
/// </summary>
internal static class CompressContextCommand
{
    /// <summary>The run settings kept beside the weights, so evaluation cuts the same held-out chunks.</summary>
    const string RunFile = "compression_run.json";

    // Training prints JSON lines (its events, then the result); evaluation one indented object.
    static readonly JsonSerializerOptions JsonLine = new(Common.Json) { WriteIndented = false };

    public static Command Create() => new("compress-context", "Context compression after ARC-Encoder: train an encoder whose pooled last block turns n tokens into n/PF vectors a frozen decoder-only model reads instead of the tokens, and evaluate it.")
    {
        CreateTrain(),
        CreateEval(),
    };

    sealed record DataOptions(Option<string> Data, Option<int> Context, Option<int> Continuation, Option<double> HeldOut);

    static DataOptions MakeDataOptions(bool defaultsFromRun)
    {
        string note = defaultsFromRun ? "; the training run's value when not given" : "";
        return new DataOptions(
            new Option<string>("--data") { Description = "Plain text, one document per line (.txt or .txt.gz): joined by EOS and cut into chunks of context + continuation tokens.", Required = true },
            new Option<int>("--context-tokens") { Description = "Tokens compressed per chunk (n)" + note + ".", DefaultValueFactory = _ => 64 },
            new Option<int>("--continuation-tokens") { Description = "Tokens continued after them per chunk (m)" + note + ".", DefaultValueFactory = _ => 64 },
            new Option<double>("--held-out") { Description = "Share of the documents, the file's last, held out for evaluation" + note + ".", DefaultValueFactory = _ => 0.05 });
    }

    static Command CreateTrain()
    {
        var d = new ContextCompressionOptions();
        var decoder = new Option<string>("--decoder") { Description = "The frozen decoder-only checkpoint (or training run folder) the compressed vectors feed; its tokenizer is used.", Required = true };
        var encoderFrom = new Option<string?>("--encoder-from") { Description = "Decoder-only checkpoint whose blocks become the bidirectional encoder (default: --decoder)." };
        var init = new Option<string?>("--init") { Description = "Start from a compressor written by `compress-context train` (encoder, projector and special embeddings) instead of a fresh one; --pooling, when given, replaces its factor. Not with --encoder-from, --drop-layers or --projector-hidden." };
        var pooling = new Option<int>("--pooling") { Description = "Pooling factor PF: n tokens become ⌈n/PF⌉ vectors.", DefaultValueFactory = _ => 4 };
        var drop = new Option<int>("--drop-layers") { Description = "Last blocks of --encoder-from left out of the encoder (the paper drops 2).", DefaultValueFactory = _ => 0 };
        var hidden = new Option<int>("--projector-hidden") { Description = "Hidden width of the two-layer linear projector (0: the encoder's width).", DefaultValueFactory = _ => 0 };
        var data = MakeDataOptions(false);
        var steps = new Option<int>("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => d.Steps };
        var batch = new Option<int>("--batch") { Description = "Chunks per step.", DefaultValueFactory = _ => d.Batch };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate of the encoder and special embeddings (warm-up, then cosine to a tenth).", DefaultValueFactory = _ => d.LearningRate };
        var projectorLr = new Option<double>("--projector-lr") { Description = "Peak learning rate of the projector.", DefaultValueFactory = _ => d.ProjectorLearningRate };
        var warmup = new Option<int>("--warmup") { Description = "Warm-up steps.", DefaultValueFactory = _ => d.WarmupSteps };
        var share = new Option<double>("--reconstruction-share") { Description = "Share of the steps that train reconstruction; the rest train continuation (the paper's 20/80).", DefaultValueFactory = _ => d.ReconstructionShare };
        var maxChunks = new Option<int?>("--max-chunks") { Description = "Most training chunks cut from --data (default: all)." };
        var evalChunks = new Option<int>("--eval-chunks") { Description = "Held-out chunks evaluated after training (0: none; `compress-context eval` measures later).", DefaultValueFactory = _ => 0 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the fresh parameters, task draws and batch order.", DefaultValueFactory = _ => 0UL };
        var logEvery = new Option<int>("--log-every") { Description = "Steps between progress lines.", DefaultValueFactory = _ => d.LogEvery };
        var saveEvery = new Option<int>("--save-every") { Description = "Steps between checkpoints: --out then holds the newest, and --out/checkpoint-STEP a copy of each (0: only at the end).", DefaultValueFactory = _ => 0 };
        var keep = new Option<int>("--keep-checkpoints") { Description = "With --save-every: the checkpoint-STEP copies kept, the newest.", DefaultValueFactory = _ => 2 };
        var output = new Option<string>("--out") { Description = "Directory of the trained compressor (config.json, model.safetensors, tokenizer files; each written atomically).", Required = true };
        var json = new Option<bool>("--json") { Description = "Print JSON lines (progress events, then the result) instead of sentences." };
        var threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var cmd = new Command("train", "Train a context compressor against a frozen decoder-only model: 20% reconstruction, 80% continuation (ARC-Encoder's pretraining mixture), loss on the produced tokens only.")
        {
            decoder, encoderFrom, init, pooling, drop, hidden, data.Data, data.Context, data.Continuation, data.HeldOut, steps, batch, lr, projectorLr, warmup, share,
            maxChunks, evalChunks, seed, logEvery, saveEvery, keep, output, json, threads,
        };
        cmd.SetAction(parse =>
        {
            bool quiet = parse.GetValue(json);
            int pf = parse.GetValue(pooling);
            if (pf < 1) throw new ArgumentException($"--pooling must be ≥ 1, got {pf}");
            if (parse.GetValue(drop) < 0) throw new ArgumentException($"--drop-layers must be ≥ 0, got {parse.GetValue(drop)}");
            if (parse.GetValue(hidden) < 0) throw new ArgumentException($"--projector-hidden must be ≥ 0, got {parse.GetValue(hidden)}");
            var options = new ContextCompressionOptions
            {
                Steps = Positive(parse.GetValue(steps), "--steps"),
                Batch = Positive(parse.GetValue(batch), "--batch"),
                LearningRate = PositiveRate(parse.GetValue(lr), "--lr"),
                ProjectorLearningRate = PositiveRate(parse.GetValue(projectorLr), "--projector-lr"),
                WarmupSteps = Math.Max(0, parse.GetValue(warmup)),
                ReconstructionShare = parse.GetValue(share) is var s and >= 0 and <= 1 ? s : throw new ArgumentException($"--reconstruction-share must be in [0, 1], got {parse.GetValue(share)}"),
                LogEvery = Positive(parse.GetValue(logEvery), "--log-every"),
                SaveEvery = Math.Max(0, parse.GetValue(saveEvery)),
                Seed = parse.GetValue(seed),
            };
            int keepCount = Positive(parse.GetValue(keep), "--keep-checkpoints");
            var (n, m, heldOut) = ReadDataOptions(parse, data, null);
            string dataPath = RequireFile(parse.GetValue(data.Data)!, "--data");
            string outDir = parse.GetValue(output)!;
            if (File.Exists(outDir)) throw new ArgumentException($"--out {outDir} is a file, not a directory");
            string decoderDir = ResolveCheckpoint(parse.GetValue(decoder)!, "--decoder", quiet);
            string? initDir = parse.GetValue(init);
            if (initDir is not null)
                foreach (var (option, name) in new (Option, string)[] { (encoderFrom, "--encoder-from"), (drop, "--drop-layers"), (hidden, "--projector-hidden") })
                    if (parse.GetResult(option) is { Implicit: false }) throw new ArgumentException($"{name} shapes a fresh compressor; --init starts from a trained one (give one or the other)");
            string encoderDir = parse.GetValue(encoderFrom) is { } e ? ResolveCheckpoint(e, "--encoder-from", quiet) : decoderDir;
            int threadCount = Common.Threads(parse, threads);
            KernelPool.Default = new KernelPool(threadCount);

            using var dec = LoadDecoder(decoderDir, "--decoder");
            var tokenizer = Common.LoadTokenizer(decoderDir, null, quiet);
            using var source = encoderDir == decoderDir ? null : LoadDecoder(encoderDir, "--encoder-from");
            using var compressor = initDir is not null
                ? LoadInit(initDir, dec, decoderDir, parse.GetResult(pooling) is { Implicit: false } ? pf : 0)
                : ContextCompressor.FromDecoder(source ?? dec, dec, pf, parse.GetValue(drop), parse.GetValue(hidden), options.Seed);
            pf = compressor.Config.Pooling;
            var chunks = Cut(dataPath, tokenizer, n, m, heldOut, parse.GetValue(maxChunks));
            Progress(quiet, new { @event = "start", decoder = decoderDir, encoder_from = initDir is null ? encoderDir : null, init = initDir, pooling = pf, encoder_layers = compressor.Config.Encoder.EncoderLayers,
                parameters = compressor.ParameterCount, decoder_parameters = dec.ParameterCount, train_chunks = chunks.Train.Count, held_out_chunks = chunks.HeldOut.Count,
                context_tokens = n, continuation_tokens = m, compressed_vectors = compressor.CompressedLength(n), steps = options.Steps, batch = options.Batch, threads = threadCount },
                $"compressor: {compressor.Config.Encoder.EncoderLayers} bidirectional blocks from {(initDir is null ? encoderDir : $"the compressor {initDir}")}, PF {pf} ({n} tokens → {compressor.CompressedLength(n)} vectors), {compressor.ParameterCount:N0} parameters; " +
                $"decoder {decoderDir} frozen ({dec.ParameterCount:N0}); {chunks.Train.Count:N0} training / {chunks.HeldOut.Count:N0} held-out chunks of {n}+{m} tokens; {options.Steps} steps of {options.Batch}, {threadCount} threads");

            Encore.Training.Trainer.Trainer.RemoveStaleTemporaries(outDir);   // what a killed run left: half-built or half-deleted checkpoint copies
            var started = DateTime.UtcNow;
            using var training = new ContextCompressionTraining(compressor, dec, options);
            training.OnLog = r => Progress(quiet,
                new { @event = "step", step = r.Step, steps = r.Steps, loss = r.Loss, reconstruction_loss = Nullable(r.ReconstructionLoss), continuation_loss = Nullable(r.ContinuationLoss), lr = r.LearningRate, grad_norm = r.GradientNorm, seconds = r.Seconds },
                string.Create(CultureInfo.InvariantCulture, $"step {r.Step}/{r.Steps}  loss {r.Loss:0.000}  rec {LossText(r.ReconstructionLoss)}  cont {LossText(r.ContinuationLoss)}  lr {r.LearningRate:0.0e0}  |g| {r.GradientNorm:0.00}  {r.Seconds:0}s"));
            training.OnSave = step =>
            {
                Save(compressor, outDir, decoderDir, step, options, n, m, heldOut, dataPath, (DateTime.UtcNow - started).TotalSeconds);
                if (step < options.Steps) KeepCheckpoint(outDir, step, keepCount);
            };
            training.Run(chunks.Train, n);

            if (parse.GetValue(evalChunks) is > 0 and var count)
            {
                var report = Evaluate(compressor, dec, tokenizer, chunks.HeldOut.Take(count).ToArray(), n, 32, quiet);
                Print(report, outDir, quiet, pf, JsonLine);
            }
            else if (!quiet) Console.WriteLine($"wrote {outDir}; measure it: encore compress-context eval --model {outDir} --data {dataPath}");
            else Console.WriteLine(JsonSerializer.Serialize(new { @event = "done", output = outDir, steps = options.Steps, seconds = (DateTime.UtcNow - started).TotalSeconds }, JsonLine));
            return 0;
        });
        return cmd;
    }

    // The compressor of --init, checked against the decoder it will feed.
    static ContextCompressor LoadInit(string dir, DecoderOnlyModel decoder, string decoderDir, int pooling)
    {
        if (!Directory.Exists(dir)) throw new ArgumentException($"--init {dir}: no such directory");
        var (compressor, _) = ContextCompressorCheckpoint.Load(dir, pooling);
        try
        {
            if (compressor.Config.DecoderDModel != decoder.Config.DModel)
                throw new ArgumentException($"--init {dir}: the compressor feeds width {compressor.Config.DecoderDModel}, but --decoder {decoderDir} has width {decoder.Config.DModel}");
            if (compressor.Config.Encoder.VocabSize != decoder.Config.VocabSize)
                throw new ArgumentException($"--init {dir}: the compressor reads a vocabulary of {compressor.Config.Encoder.VocabSize}, but --decoder {decoderDir} has {decoder.Config.VocabSize}; they must share a tokenizer");
            return compressor;
        }
        catch
        {
            compressor.Dispose();
            throw;
        }
    }

    static Command CreateEval()
    {
        var model = new Option<string>("--model", "-m") { Description = "Directory written by `compress-context train`.", Required = true };
        var decoder = new Option<string?>("--decoder") { Description = "The frozen decoder (default: the one the compressor was trained for, recorded in its config.json)." };
        var data = MakeDataOptions(true);
        var chunksOption = new Option<int>("--chunks") { Description = "Held-out chunks evaluated (the first N).", DefaultValueFactory = _ => 256 };
        var timed = new Option<int>("--timed") { Description = "Chunks whose prefill is timed (batch 1, KV cache; 5 runs each after a warm-up, medians).", DefaultValueFactory = _ => 32 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var cmd = new Command("eval", "Measure a context compressor on held-out chunks: reconstruction token accuracy, continuation loss with the compressed context against no context and the full text, and prefill time (compressed vs full, medians).")
        {
            model, decoder, data.Data, data.Context, data.Continuation, data.HeldOut, chunksOption, timed, json, threads,
        };
        cmd.SetAction(parse =>
        {
            bool quiet = parse.GetValue(json);
            string dir = parse.GetValue(model)!;
            if (!Directory.Exists(dir)) throw new ArgumentException($"--model {dir}: no such directory");
            int count = Positive(parse.GetValue(chunksOption), "--chunks");
            int timedCount = Positive(parse.GetValue(timed), "--timed");
            string dataPath = RequireFile(parse.GetValue(data.Data)!, "--data");
            var run = ReadRun(dir);
            var (n, m, heldOut) = ReadDataOptions(parse, data, run);
            var (compressor, recorded) = ContextCompressorCheckpoint.Load(dir);
            using (compressor)
            {
                string decoderDir = parse.GetValue(decoder) is { } d ? ResolveCheckpoint(d, "--decoder", quiet)
                    : recorded is not null && Directory.Exists(recorded) ? recorded
                    : throw new ArgumentException($"{Path.Combine(dir, "config.json")}: the decoder it records ({recorded ?? "none"}) is not there; pass --decoder DIR");
                KernelPool.Default = new KernelPool(Common.Threads(parse, threads));
                using var dec = LoadDecoder(decoderDir, "--decoder");
                if (dec.Config.DModel != compressor.Config.DecoderDModel)
                    throw new ArgumentException($"--decoder {decoderDir}: width {dec.Config.DModel}, but the compressor feeds {compressor.Config.DecoderDModel}");
                var tokenizer = Common.LoadTokenizer(decoderDir, null, quiet);
                var chunks = Cut(dataPath, tokenizer, n, m, heldOut, count, heldOutOnly: true);
                var report = Evaluate(compressor, dec, tokenizer, chunks.HeldOut.Take(count).ToArray(), n, timedCount, quiet);
                Print(report, dir, quiet, compressor.Config.Pooling, Common.Json);
            }
            return 0;
        });
        return cmd;
    }

    static ContextCompressionReport Evaluate(ContextCompressor compressor, DecoderOnlyModel decoder, TextTokenizer tokenizer, int[][] chunks, int n, int timed, bool quiet)
    {
        int bos = tokenizer.BosId ?? tokenizer.EosId ?? throw new ArgumentException("the decoder's tokenizer has neither BOS nor EOS to start the baselines with");
        return ContextCompressionEval.Run(compressor, decoder, chunks, n, bos, timedChunks: Math.Min(timed, chunks.Length),
            progress: quiet ? null : done => Console.Error.Write($"\revaluated {done}/{chunks.Length} chunks"));
    }

    static void Print(ContextCompressionReport r, string dir, bool json, int pooling, JsonSerializerOptions jsonOptions)
    {
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                model = dir, pooling, chunks = r.Chunks, context_tokens = r.ContextTokens, continuation_tokens = r.ContinuationTokens, compressed_vectors = r.CompressedVectors,
                reconstruction_accuracy = r.ReconstructionAccuracy, reconstruction_loss = r.ReconstructionLoss, copy_accuracy = r.CopyAccuracy,
                reconstruction_by_slot = r.ReconstructionBySlot(pooling), reconstruction_by_position = r.ReconstructionByPosition,
                copy_accuracy_after_first = r.CopyAccuracyAfterFirst, copy_by_position = r.CopyByPosition,
                continuation_loss = new { compressed = r.CompressedLoss, no_context = r.NoContextLoss, full_context = r.FullContextLoss },
                gap_to_full = r.GapToFull, gain_kept = r.GainKept,
                prefill_ms = new { full = r.FullPrefillMs, compressed = r.CompressedPrefillMs, compressed_decoder_only = r.DecoderPrefillMs },
            }, jsonOptions));
            return;
        }
        Console.Error.WriteLine();
        var ci = CultureInfo.InvariantCulture;
        var t = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
        t.AddRow("held-out chunks", r.Chunks.ToString(ci));
        t.AddRow("context → vectors", $"{r.ContextTokens} → {r.CompressedVectors} (PF {pooling})");
        t.AddRow("reconstruction token accuracy", string.Create(ci, $"{100 * r.ReconstructionAccuracy:0.0}%"));
        t.AddRow("reconstruction loss", r.ReconstructionLoss.ToString("0.000", ci));
        t.AddRow("reconstruction by place in its group", string.Join(" / ", r.ReconstructionBySlot(pooling).Select(a => (100 * a).ToString("0.0", ci))) + "%");
        t.AddRow("copy accuracy, full text read twice", string.Create(ci, $"{100 * r.CopyAccuracy:0.0}% ({100 * r.CopyAccuracyAfterFirst:0.0}% after the repeat's first token)"));
        t.AddRow($"continuation loss ({r.ContinuationTokens} tokens), no context", r.NoContextLoss.ToString("0.000", ci));
        t.AddRow("continuation loss, compressed context", r.CompressedLoss.ToString("0.000", ci));
        t.AddRow("continuation loss, full context", r.FullContextLoss.ToString("0.000", ci));
        t.AddRow("compressed vs full", string.Create(ci, $"{100 * r.GapToFull:+0.0;-0.0}% ({100 * r.GainKept:0}% of the context's gain kept)"));
        t.AddRow("prefill, full text (median)", string.Create(ci, $"{r.FullPrefillMs:0.000} ms ({r.ContextTokens + 1} positions)"));
        t.AddRow("prefill, compressed (encoder + decoder)", string.Create(ci, $"{r.CompressedPrefillMs:0.000} ms ({r.FullPrefillMs / r.CompressedPrefillMs:0.00}×)"));
        t.AddRow("prefill, compressed (decoder alone)", string.Create(ci, $"{r.DecoderPrefillMs:0.000} ms ({r.CompressedVectors + 1} positions, {r.FullPrefillMs / r.DecoderPrefillMs:0.00}×)"));
        AnsiConsole.Write(t);
    }

    static void Save(ContextCompressor compressor, string outDir, string decoderDir, int step, ContextCompressionOptions o, int n, int m, double heldOut, string data, double seconds)
    {
        ContextCompressorCheckpoint.Save(compressor, outDir, Path.GetFullPath(decoderDir));
        foreach (var f in CheckpointAdaptation.TokenizerFiles)
        {
            var from = Path.Combine(decoderDir, f);
            if (File.Exists(from)) AtomicFile.Write(Path.Combine(outDir, f), s => { using var src = File.OpenRead(from); src.CopyTo(s); });
        }
        var run = new JsonObject
        {
            ["step"] = step, ["steps"] = o.Steps, ["batch"] = o.Batch, ["context_tokens"] = n, ["continuation_tokens"] = m, ["held_out"] = heldOut,
            ["data"] = Path.GetFullPath(data), ["lr"] = o.LearningRate, ["projector_lr"] = o.ProjectorLearningRate, ["warmup"] = o.WarmupSteps,
            ["reconstruction_share"] = o.ReconstructionShare, ["seed"] = o.Seed, ["seconds"] = seconds,
        };
        AtomicFile.WriteAllText(Path.Combine(outDir, RunFile), run.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    // A copy of the compressor just saved in outDir as outDir/checkpoint-STEP (built in a temporary directory and renamed
    // into place, so a kill leaves the older copies or the new one whole), then the oldest copies past `keep` removed.
    static void KeepCheckpoint(string outDir, int step, int keep)
    {
        var final = Path.Combine(outDir, $"checkpoint-{step}");
        var tmp = Path.Combine(outDir, $".checkpoint-{step}.{Environment.ProcessId}.tmp");
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        foreach (var file in Directory.GetFiles(outDir)) File.Copy(file, Path.Combine(tmp, Path.GetFileName(file)));
        CheckpointDirectory.Publish(tmp, final, keep, "config.json");
    }

    static JsonObject? ReadRun(string dir)
    {
        var path = Path.Combine(dir, RunFile);
        if (!File.Exists(path)) return null;
        if (new FileInfo(path).Length > 1 << 16) throw new CheckpointFormatException($"{path}: too large");
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new CheckpointFormatException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    // The chunking options, from the command line when given there, else from the training run's file, else the defaults.
    static (int N, int M, double HeldOut) ReadDataOptions(ParseResult parse, DataOptions o, JsonObject? run)
    {
        T Pick<T>(Option<T> option, string key)
        {
            var result = parse.GetResult(option);
            if ((result is null || result.Implicit) && run?[key] is JsonValue v && v.TryGetValue(out T? value)) return value;
            return parse.GetValue(option)!;
        }
        int n = Positive(Pick(o.Context, "context_tokens"), "--context-tokens");
        int m = Positive(Pick(o.Continuation, "continuation_tokens"), "--continuation-tokens");
        double h = Pick(o.HeldOut, "held_out");
        if (h is <= 0 or >= 1) throw new ArgumentException($"--held-out must be in (0, 1), got {h}");
        if (m < 2) throw new ArgumentException($"--continuation-tokens must be ≥ 2, got {m}");
        if (n < 2) throw new ArgumentException($"--context-tokens must be ≥ 2, got {n}");
        return (n, m, h);
    }

    static CompressionChunks Cut(string path, TextTokenizer tokenizer, int n, int m, double heldOut, int? maxChunks, bool heldOutOnly = false)
    {
        var docs = DatasetReader.ReadDocuments(path, TextLayout.LinePerDocument);
        try
        {
            return new CompressionChunks(docs, tokenizer, n, m, heldOut, maxChunks ?? int.MaxValue, heldOutOnly);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"--data {path}: {e.Message}", e);
        }
    }

    static DecoderOnlyModel LoadDecoder(string dir, string option)
    {
        var model = Checkpoint.Load(dir);
        if (model is DecoderOnlyModel d) return d;
        model.Dispose();
        throw new ArgumentException($"{option} {dir}: a {model.Config.Family} model; context compression needs a decoder-only model");
    }

    static string ResolveCheckpoint(string spec, string option, bool quiet)
    {
        var path = Common.ModelPath(spec, quiet);
        if (!Directory.Exists(path)) throw new ArgumentException($"{option} {spec}: no such directory");
        try
        {
            return CheckpointDirectory.Resolve(path);
        }
        catch (CheckpointFormatException e)
        {
            throw new ArgumentException($"{option} {e.Message}", e);
        }
    }

    static string RequireFile(string path, string option) =>
        File.Exists(path) ? path : throw new ArgumentException($"{option} {path}: no such file");

    static int Positive(int value, string option) => value >= 1 ? value : throw new ArgumentException($"{option} must be ≥ 1, got {value}");

    static double PositiveRate(double value, string option) => value > 0 && double.IsFinite(value) ? value : throw new ArgumentException($"{option} must be a positive number, got {value}");

    // A task with no step since the last line (a share of 0 or 1) prints a dash, not NaN.
    static string LossText(double v) => double.IsNaN(v) ? "–" : v.ToString("0.000", CultureInfo.InvariantCulture);

    static double? Nullable(double x) => double.IsNaN(x) ? null : x;

    static void Progress(bool json, object evt, string line)
    {
        if (json) Console.WriteLine(JsonSerializer.Serialize(evt, JsonLine));
        else Console.WriteLine(line);
    }
}
