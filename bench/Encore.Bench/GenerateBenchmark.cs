using System.Diagnostics;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Bench;

/// <summary>Options of <see cref="GenerateBenchmark"/> (the flags of <c>encore bench generate</c>).</summary>
public sealed record GenerateBenchmarkOptions
{
    /// <summary>
    /// Models to measure: presets (random weights) or checkpoint directories and training run folders (their
    /// newest checkpoint, with its tokenizer). Default mu-330m and decoder-330m.
    /// </summary>
    public IReadOnlyList<string> Presets { get; init; } = ["mu-330m", "decoder-330m"];
    /// <summary>Batch sizes. Default 1 and 8 (1 with <see cref="Texts"/>).</summary>
    public IReadOnlyList<int> Batches { get; init; } = [1, 8];
    /// <summary>
    /// Source texts to generate from (e.g. a data set's sources), made into prompts as in training by each
    /// checkpoint's tokenizer and timed one after another at batch 1; generation stops at EOS (or
    /// <see cref="NewTokens"/>). Default null: random prompts of <see cref="InputLength"/> ids, every
    /// token forced.
    /// </summary>
    public IReadOnlyList<string>? Texts { get; init; }
    /// <summary>Also measure speculative decoding with this draft model (a preset or checkpoint; batch 1). Default null.</summary>
    public string? DraftModel { get; init; }
    /// <summary>Also measure speculative decoding with prompt-lookup drafts (batch 1). Default false.</summary>
    public bool PromptLookup { get; init; }
    /// <summary>Tokens drafted per verification pass. Default 4 (see <see cref="GenerationOptions.DraftTokens"/>).</summary>
    public int DraftTokens { get; init; } = new GenerationOptions().DraftTokens;
    /// <summary>Longest n-gram prompt lookup matches. Default 3.</summary>
    public int PromptLookupMaxNgram { get; init; } = new GenerationOptions().PromptLookupMaxNgram;
    /// <summary>
    /// Also measure Superposed Decoding with these settings at batch 1: K drafts against K nucleus-sampled runs,
    /// wall time and the drafts' perplexity under a normal pass (see <see cref="SuperposedFigure"/>). Default null.
    /// </summary>
    public SuperposedOptions? Superposed { get; init; }
    /// <summary>
    /// Also measure lexical-unit decoding with these settings at batch 1 (a model fine-tuned with the
    /// lexical-unit objective); the placeholder is <see cref="LexicalUnitPlaceholder"/> in each checkpoint's
    /// tokenizer. Default null.
    /// </summary>
    public LexicalUnitOptions? LexicalUnits { get; init; }
    /// <summary>The placeholder token of <see cref="LexicalUnits"/>. Default "&lt;mask&gt;".</summary>
    public string LexicalUnitPlaceholder { get; init; } = "<mask>";
    /// <summary>Input tokens per sequence. Default 512.</summary>
    public int InputLength { get; init; } = 512;
    /// <summary>Tokens generated per sequence (greedy, no early stop). Default 64.</summary>
    public int NewTokens { get; init; } = 64;
    /// <summary>Weight dtype: f32, bf16, f16 or q8_0. Default bf16.</summary>
    public DType Weights { get; init; } = DType.BF16;
    /// <summary>Timed runs; figures are medians. Default 3.</summary>
    public int Runs { get; init; } = 3;
    /// <summary>KV cache storage: f32 or int8. Default f32.</summary>
    public KvCacheDType KvCache { get; init; } = KvCacheDType.F32;
    /// <summary>
    /// Also time each model with these weights (batch 1, greedy), each timed run next to the same run with
    /// <see cref="Weights"/> (which goes first alternates), so both see the machine in the same state; the figure carries the median of the per-run
    /// ratios of its decode rate to the <see cref="Weights"/> rate. Null (default): only <see cref="Weights"/>.
    /// </summary>
    public DType? CompareWeights { get; init; }

    /// <summary>Throws naming the first option out of range.</summary>
    public void Validate()
    {
        if (Presets.Count == 0) throw new ArgumentException("give at least one --preset");
        foreach (var p in Presets) CheckModel(p, "--model");
        if (DraftModel != null) CheckModel(DraftModel, "--draft-model");
        if (Batches.Count == 0 || Batches.Any(b => b is < 1 or > 256)) throw new ArgumentException("batch sizes must be between 1 and 256");
        if (Texts != null)
        {
            if (Texts.Count == 0) throw new ArgumentException("--data holds no texts");
            if (Batches.Any(b => b != 1)) throw new ArgumentException("prompts from --data are timed one at a time: drop --batch or give --batch 1");
            if (Presets.FirstOrDefault(IsPreset) is { } preset) throw new ArgumentException($"--data needs checkpoints, whose tokenizers make the prompts; '{preset}' is a preset");
        }
        if ((DraftModel != null || PromptLookup) && !Batches.Contains(1))
            throw new ArgumentException("--draft-model and --prompt-lookup are measured at batch 1: add --batch 1");
        if (Superposed != null && !Batches.Contains(1)) throw new ArgumentException("--superposed is measured at batch 1: add --batch 1");
        if (LexicalUnits != null && !Batches.Contains(1)) throw new ArgumentException("--lexical-units is measured at batch 1: add --batch 1");
        LexicalUnits?.Validate();
        Superposed?.Validate();
        if (DraftTokens is < 1 or > 64) throw new ArgumentException($"--draft-tokens must be between 1 and 64, got {DraftTokens}");
        if (PromptLookupMaxNgram is < 1 or > 32) throw new ArgumentException($"--prompt-lookup-ngram must be between 1 and 32, got {PromptLookupMaxNgram}");
        if (InputLength is < 1 or > 32768) throw new ArgumentException($"--input-length must be between 1 and 32768, got {InputLength}");
        if (NewTokens is < 2 or > 4096) throw new ArgumentException($"--new-tokens must be between 2 and 4096, got {NewTokens}");
        if (Weights == DType.I32) throw new ArgumentException("weights must be f32, bf16, f16, q8_0 or q4_0");
        if (CompareWeights is { } cw)
        {
            if (cw == DType.I32) throw new ArgumentException("--compare-weights must be f32, bf16, f16, q8_0 or q4_0");
            if (cw == Weights) throw new ArgumentException($"--compare-weights {cw.Name()} is --weights itself; give another type");
            if (Batches.Any(b => b != 1)) throw new ArgumentException("--compare-weights times batch 1: give --batch 1");
            if (DraftModel != null || PromptLookup || Superposed != null || LexicalUnits != null)
                throw new ArgumentException("--compare-weights times plain greedy decoding: drop --draft-model, --prompt-lookup, --superposed and --lexical-units");
        }
        if (!Enum.IsDefined(KvCache)) throw new ArgumentException($"--kv-dtype must be f32 or int8, got {(int)KvCache}");
        if (Runs is < 1 or > 100) throw new ArgumentException($"--runs must be between 1 and 100, got {Runs}");
    }

    /// <summary>True when <paramref name="name"/> is a preset rather than a checkpoint.</summary>
    internal static bool IsPreset(string name) => Models.Presets.All.ContainsKey(name);

    static void CheckModel(string name, string option)
    {
        if (!IsPreset(name) && !Directory.Exists(name))
            throw new ArgumentException($"{option} '{name}' is neither a preset ({string.Join(", ", Models.Presets.All.Keys)}) nor a checkpoint directory or run folder");
    }
}

/// <summary>One (model, batch, method) figure.</summary>
/// <param name="FirstTokenSeconds">Median time from the prompt to the first token (encode or prefill, plus one decoder step).</param>
/// <param name="DecodeTokensPerSecond">Generated tokens per second after the first, over the whole batch (over every prompt, with texts).</param>
/// <param name="BytesPerStep">Bytes one plain decode step reads: the weights it uses plus the caches it attends to (mean over the steps).</param>
/// <param name="BoundTokensPerSecond">Memory-bandwidth bound of plain batch-1 decoding: bandwidth ÷ bytes per step (per sequence for batches).</param>
/// <param name="FractionOfBound">DecodeTokensPerSecond ÷ BoundTokensPerSecond (batch 1 only).</param>
public sealed record GenerateFigure(string Preset, string Family, long Parameters, int Batch, double FirstTokenSeconds, double DecodeTokensPerSecond,
    long WeightBytesPerStep, long CacheBytesPerStep, long BytesPerStep, double BoundTokensPerSecond, double? FractionOfBound)
{
    /// <summary>How tokens were chosen: greedy, prompt lookup, or draft (name of the draft model).</summary>
    public string Method { get; init; } = "greedy";
    /// <summary>Prompts timed per run (1 for a batch of random prompts).</summary>
    public int Prompts { get; init; } = 1;
    /// <summary>Mean prompt tokens.</summary>
    public double PromptTokens { get; init; }
    /// <summary>Tokens generated per run, over every prompt (the same for every greedy method: speculative decoding changes the speed, not the tokens).</summary>
    public int GeneratedTokens { get; init; }
    /// <summary>Tokens per decoder pass of the model (1 for greedy; the first token's pass counted).</summary>
    public double TokensPerPass { get; init; } = 1;
    /// <summary>Draft tokens accepted ÷ proposed (speculative methods; null when nothing was drafted or for greedy).</summary>
    public double? AcceptanceRate { get; init; }
    /// <summary>Draft tokens proposed per run.</summary>
    public int Drafted { get; init; }
    /// <summary>Draft tokens accepted per run.</summary>
    public int Accepted { get; init; }
    /// <summary>This figure's weight type when the run compares two (<see cref="GenerateBenchmarkOptions.CompareWeights"/>); null otherwise (the result's).</summary>
    public string? Weights { get; init; }
    /// <summary>With <see cref="GenerateBenchmarkOptions.CompareWeights"/>, on its figure: decode tok/s ÷ that of the --weights figure, the median over the runs of each adjacent pair's ratio.</summary>
    public double? DecodeRatio { get; init; }
}

/// <summary>The result of <c>encore bench generate</c>.</summary>
public sealed record GenerateBenchmarkResult(int InputLength, int NewTokens, string Weights, int Runs, int Threads, MachineReport Machine, IReadOnlyList<GenerateFigure> Figures)
{
    /// <summary>KV cache storage the figures were measured with (f32 or int8).</summary>
    public string KvCache { get; init; } = "f32";
    /// <summary>True when the prompts were texts (generation stops at EOS); false for random prompts (every token forced).</summary>
    public bool Texts { get; init; }
    /// <summary>Tokens drafted per verification pass of the speculative methods.</summary>
    public int DraftTokens { get; init; }
    /// <summary>With --superposed, per model: K superposed drafts against K sampled runs.</summary>
    public IReadOnlyList<SuperposedFigure> Superposed { get; init; } = [];
}

/// <summary>
/// First-token latency and decode throughput of greedy generation with random or trained weights in a
/// chosen dtype, beside the memory-bandwidth bound of a decode step (the bytes of the weights it reads
/// and of the caches it attends to, divided by the measured read bandwidth); at batch 1 also speculative
/// decoding (prompt lookup, a draft model) measured side by side with greedy in the same run, with its
/// tokens per pass of the model and acceptance rate; with <see cref="GenerateBenchmarkOptions.Superposed"/>, K superposed
/// drafts against K sampled runs (see <see cref="MeasureSuperposed"/>).
/// </summary>
public static partial class GenerateBenchmark
{
    /// <summary>Runs the benchmark.</summary>
    public static GenerateBenchmarkResult Run(GenerateBenchmarkOptions o, Action<string>? progress = null)
    {
        o.Validate();
        progress?.Invoke("probing the machine");
        var machine = MachineProbe.Run(MachineProbeOptions.Default);
        var figures = new List<GenerateFigure>();
        var superposed = new List<SuperposedFigure>();
        var rng = new Random(0);
        foreach (var name in o.Presets)
        {
            progress?.Invoke($"loading {name} with {o.Weights.Name()} weights");
            var (model, tokenizer) = Load(name, o.Weights);
            using var owned = model;
            LanguageModel? draft = null;
            try
            {
                if (o.CompareWeights is { } cw)
                {
                    progress?.Invoke($"loading {name} with {cw.Name()} weights");
                    using var other = Load(name, cw).Model;
                    figures.AddRange(Compare(o, name, model, other, tokenizer, machine, rng, progress));
                    continue;
                }
                if (o.DraftModel != null)
                {
                    draft = Load(o.DraftModel, o.Weights).Model;
                    SpeculativeDecoding.CheckDraft(model, draft, name, o.DraftModel);
                }
                var config = model.Config;
                var generator = new Generator(model, tokenizer);
                int[][]? texts = o.Texts?.Select(generator.EncodePrompt).ToArray();
                foreach (int batch in o.Batches)
                {
                    var prompts = texts ?? Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, o.InputLength).Select(_ => rng.Next(2, config.VocabSize)).ToArray()).ToArray();
                    double promptTokens = prompts.Average(p => p.Length);
                    var (weights, cache) = BytesPerStep(model, (int)Math.Round(promptTokens), o.NewTokens, o.Weights, o.KvCache);
                    long bytes = weights + cache;
                    double bound = machine.ReadGBPerSecond * 1e9 / bytes;
                    GenerateFigure Figure(double first, double decode) => new(name, config.Family.ToString(), model.ParameterCount, batch, first, decode,
                        weights, cache, bytes, bound, batch == 1 ? decode / bound : null) { Prompts = batch == 1 ? prompts.Length : 1, PromptTokens = promptTokens };
                    if (batch > 1)
                    {
                        progress?.Invoke($"{name}: batch {batch}, {o.InputLength} in, {o.NewTokens} out");
                        GenerationTiming.Measure(model, prompts, o.NewTokens, o.KvCache);   // warm-up
                        var first = new double[o.Runs];
                        var rate = new double[o.Runs];
                        for (int r = 0; r < o.Runs; r++) (first[r], rate[r]) = Timed(model, prompts, o.NewTokens, o.KvCache);
                        figures.Add(Figure(MachineProbe.Median(first), MachineProbe.Median(rate)) with { GeneratedTokens = batch * o.NewTokens });
                        continue;
                    }
                    foreach (var (method, options) in Methods(o, draft, tokenizer))
                    {
                        progress?.Invoke($"{name}: batch 1, {method}, {prompts.Length} prompt{(prompts.Length == 1 ? "" : "s")} of {promptTokens:0.#} tokens, up to {o.NewTokens} out");
                        var m = TimedBatchOne(generator, prompts, options, o.Runs);
                        var s = m.Speculative;
                        figures.Add(Figure(m.FirstTokenSeconds, m.DecodeTokensPerSecond) with
                        {
                            Method = method,
                            GeneratedTokens = m.Tokens,
                            TokensPerPass = s?.TokensPerPass ?? 1,
                            AcceptanceRate = s?.AcceptanceRate,
                            Drafted = s?.Drafted ?? 0,
                            Accepted = s?.Accepted ?? 0,
                        });
                    }
                    if (o.Superposed is { } sp)
                    {
                        progress?.Invoke($"{name}: batch 1, {sp.Drafts} superposed drafts against {sp.Drafts} sampled runs, {prompts.Length} prompt{(prompts.Length == 1 ? "" : "s")}");
                        superposed.Add(MeasureSuperposed(name, generator, prompts, Methods(o, null, tokenizer).First().Options, sp, o.Runs));
                    }
                }
            }
            finally
            {
                draft?.Dispose();
            }
        }
        return new GenerateBenchmarkResult(o.InputLength, o.NewTokens, o.Weights.Name(), o.Runs, Tensors.Threading.KernelPool.Default.ThreadCount, machine, figures)
        {
            KvCache = o.KvCache.Name(),
            Texts = o.Texts != null,
            DraftTokens = o.DraftTokens,
            Superposed = superposed,
        };
    }

    /// <summary>A preset with random weights (seed 1), or a checkpoint with its tokenizer, its weights converted to <paramref name="weights"/>.</summary>
    static (LanguageModel Model, Formats.Tokenization.TextTokenizer? Tokenizer) Load(string name, DType weights)
    {
        LanguageModel model;
        Formats.Tokenization.TextTokenizer? tokenizer = null;
        if (GenerateBenchmarkOptions.IsPreset(name)) model = LanguageModel.Create(Presets.Get(name), seed: 1);
        else
        {
            string dir = Formats.Checkpoints.CheckpointDirectory.Resolve(name);
            model = Formats.Checkpoints.Checkpoint.Load(dir, new Formats.Checkpoints.CheckpointLoadOptions { MapWeights = true });
            try
            {
                tokenizer = Formats.Tokenization.TokenizerLoader.FromDirectory(dir);
            }
            catch (FileNotFoundException)
            {
                // Random prompts need no tokenizer; texts are refused without one when they are made into prompts.
            }
        }
        try
        {
            model.ConvertWeights(weights);
            return (model, tokenizer);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The batch-1 methods measured: greedy, then prompt lookup, the draft model and lexical units when asked; texts stop at EOS, random prompts never do.</summary>
    static IEnumerable<(string Name, GenerationOptions Options)> Methods(GenerateBenchmarkOptions o, LanguageModel? draft, TextTokenizer? tokenizer)
    {
        var greedy = new GenerationOptions { MaxNewTokens = o.NewTokens, KvCacheDType = o.KvCache, EosTokenIds = o.Texts is null ? [] : null, DraftTokens = o.DraftTokens, PromptLookupMaxNgram = o.PromptLookupMaxNgram };
        yield return ("greedy", greedy);
        if (o.PromptLookup) yield return ("prompt lookup", greedy with { PromptLookup = true });
        if (draft != null) yield return ($"draft {DraftName(o.DraftModel!)}", greedy with { DraftModel = draft });
        if (o.LexicalUnits is { } lu)
        {
            int placeholder = tokenizer?.TokenToId(o.LexicalUnitPlaceholder)
                ?? throw new ArgumentException($"--lud-placeholder: '{o.LexicalUnitPlaceholder}' is not a token of the model's tokenizer");
            yield return ($"lexical units K={lu.Span} β={lu.Beta.ToString(System.Globalization.CultureInfo.InvariantCulture)}", greedy with { LexicalUnits = lu with { PlaceholderId = placeholder } });
        }
    }

    static string DraftName(string path) => GenerateBenchmarkOptions.IsPreset(path) ? path : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)));

    /// <summary>What <see cref="TimedBatchOne"/> measured: medians over the runs, and the tokens and speculative counts of one run.</summary>
    internal readonly record struct BatchOneTiming(double FirstTokenSeconds, double DecodeTokensPerSecond, int Tokens, SpeculativeStats? Speculative);

    /// <summary>
    /// Times each prompt alone with <paramref name="options"/>, after one untimed warm-up on the first (unless
    /// <paramref name="warmUp"/> is false): per
    /// run, the median first-token time over the prompts and the decode rate of all their tokens after the
    /// first over all their decode time; the figures are the medians over <paramref name="runs"/> runs.
    /// </summary>
    internal static BatchOneTiming TimedBatchOne(Generator generator, int[][] prompts, GenerationOptions options, int runs, bool warmUp = true)
    {
        if (warmUp) GenerationTiming.Measure(generator, prompts[0], options);
        var first = new double[runs];
        var rate = new double[runs];
        int tokens = 0;
        SpeculativeStats? stats = null;
        for (int r = 0; r < runs; r++)
        {
            var firsts = new double[prompts.Length];
            double seconds = 0;
            int decoded = 0;
            tokens = 0;
            stats = null;
            for (int i = 0; i < prompts.Length; i++)
            {
                var t = GenerationTiming.Measure(generator, prompts[i], options);
                firsts[i] = t.FirstTokenSeconds;
                seconds += t.DecodeSeconds;
                decoded += t.DecodedTokens;
                tokens += t.Tokens.Length;
                if (t.Speculative is { } s) stats = (stats ?? new SpeculativeStats()) + s;
            }
            first[r] = MachineProbe.Median(firsts);
            rate[r] = seconds > 0 ? decoded / seconds : 0;
        }
        return new BatchOneTiming(MachineProbe.Median(first), MachineProbe.Median(rate), tokens, stats);
    }

    /// <summary>
    /// Greedy batch-1 figures of <paramref name="model"/> (o.Weights) and <paramref name="other"/> (o.CompareWeights),
    /// the same model at two weight types: after a warm-up of each, every run times both, one right after the other
    /// (which goes first alternates), and the second figure carries the median of the runs' ratios.
    /// </summary>
    static IEnumerable<GenerateFigure> Compare(GenerateBenchmarkOptions o, string name, LanguageModel model, LanguageModel other, TextTokenizer? tokenizer,
        MachineReport machine, Random rng, Action<string>? progress)
    {
        var config = model.Config;
        var generators = new[] { new Generator(model, tokenizer), new Generator(other, tokenizer) };
        var types = new[] { o.Weights, o.CompareWeights!.Value };
        int[][] prompts = o.Texts?.Select(generators[0].EncodePrompt).ToArray()
            ?? [Enumerable.Range(0, o.InputLength).Select(_ => rng.Next(2, config.VocabSize)).ToArray()];
        double promptTokens = prompts.Average(p => p.Length);
        var options = Methods(o, null, tokenizer).First().Options;
        progress?.Invoke($"{name}: batch 1, greedy, {types[0].Name()} and {types[1].Name()} run by run, {prompts.Length} prompt{(prompts.Length == 1 ? "" : "s")} of {promptTokens:0.#} tokens, up to {o.NewTokens} out");
        foreach (var g in generators) GenerationTiming.Measure(g, prompts[0], options);
        var runs = new BatchOneTiming[2, o.Runs];
        var ratios = new double[o.Runs];
        for (int r = 0; r < o.Runs; r++)
        {
            // Alternate which goes first, so neither always follows the other.
            for (int j = 0; j < 2; j++)
            {
                int i = (r + j) % 2;
                runs[i, r] = TimedBatchOne(generators[i], prompts, options, 1, warmUp: false);
            }
            ratios[r] = runs[1, r].DecodeTokensPerSecond / runs[0, r].DecodeTokensPerSecond;
        }
        for (int i = 0; i < 2; i++)
        {
            var m = i == 0 ? model : other;
            var (weights, cache) = BytesPerStep(m, (int)Math.Round(promptTokens), o.NewTokens, types[i], o.KvCache);
            long bytes = weights + cache;
            double bound = machine.ReadGBPerSecond * 1e9 / bytes;
            double first = MachineProbe.Median(Enumerable.Range(0, o.Runs).Select(r => runs[i, r].FirstTokenSeconds).ToArray());
            double decode = MachineProbe.Median(Enumerable.Range(0, o.Runs).Select(r => runs[i, r].DecodeTokensPerSecond).ToArray());
            yield return new GenerateFigure(name, config.Family.ToString(), m.ParameterCount, 1, first, decode, weights, cache, bytes, bound, decode / bound)
            {
                Prompts = prompts.Length,
                PromptTokens = promptTokens,
                GeneratedTokens = runs[i, 0].Tokens,
                Weights = types[i].Name(),
                DecodeRatio = i == 1 ? MachineProbe.Median(ratios) : null,
            };
        }
    }

    /// <summary>First-token seconds and decode tokens per second of one <see cref="GenerationTiming"/> run.</summary>
    internal static (double FirstSeconds, double DecodeTokensPerSecond) Timed(LanguageModel model, int[][] prompts, int newTokens, KvCacheDType kvCache = KvCacheDType.F32)
    {
        var t = GenerationTiming.Measure(model, prompts, newTokens, kvCache);
        return (t.FirstTokenSeconds, t.DecodeTokensPerSecond);
    }

    /// <summary>
    /// Bytes one batch-1 decode step reads: every weight the step multiplies by (for an
    /// encoder–decoder: the decoder, except the cross-attention key/value projections, whose outputs
    /// are cached; the tied or separate LM head), plus the self-attention cache at its mean length
    /// and the cross-attention cache, stored as <paramref name="kvCache"/>.
    /// </summary>
    public static (long Weights, long Cache) BytesPerStep(LanguageModel model, int inputLength, int newTokens, DType dtype, KvCacheDType kvCache = KvCacheDType.F32)
    {
        var c = model.Config;
        long weights = 0;
        foreach (var p in model.Parameters.All)
        {
            bool used = p.Name.StartsWith("decoder.", StringComparison.Ordinal)
                && !p.Name.Contains(".cross_attn.k_proj", StringComparison.Ordinal)
                && !p.Name.Contains(".cross_attn.v_proj", StringComparison.Ordinal);
            if (p.Name is LanguageModel.LmHead) used = true;
            if (p.Name is LanguageModel.EmbedTokens && c.TieEmbeddings) used = true;
            if (used) weights += p.Value.ByteLength;
        }
        long kvPerPosition = 2L * c.KvHeads * kvCache.VectorBytes(c.HeadDim) * c.DecoderLayers;
        double selfLength = (model is EncoderDecoderModel ? 0 : inputLength) + newTokens / 2.0;
        long cache = (long)(kvPerPosition * selfLength) + (model is EncoderDecoderModel ? kvPerPosition * inputLength : 0);
        return (weights, cache);
    }
}
