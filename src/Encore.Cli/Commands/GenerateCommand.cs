using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Tensors.Threading;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore generate</c>: text from a checkpoint, for one prompt (printed, streamed, or as JSON) or
/// for a JSONL file of prompts (batched, one JSON line out per line in). Every option maps to one
/// <see cref="GenerationOptions"/> field with the library's default.
/// </summary>
internal static class GenerateCommand
{
    /// <summary>Largest --input-file accepted (bytes): prompts are held in memory.</summary>
    const long MaxInputBytes = 256L << 20;

    public static Command Create()
    {
        var d = new GenerationOptions();
        var model = new Option<string>("--model", "-m") { Description = "Checkpoint directory (config.json, model.safetensors and tokenizer files), a training run folder (its newest checkpoint), or a Hugging Face model id org/name[@revision] (fetched into the hub cache; docs/hub.md).", Required = true };
        var prompt = new Option<string?>("--prompt") { Description = "The prompt (the source text of an encoder–decoder)." };
        var inputFile = new Option<string?>("--input-file") { Description = "A JSONL file, one {\"prompt\": \"...\"} per line, generated in batches; one JSON line out per line in. - reads standard input." };
        var batchSize = new Option<int>("--batch-size") { Description = "Prompts of --input-file decoded together.", DefaultValueFactory = _ => 16 };
        var stream = new Option<bool>("--stream") { Description = "Print text as it is generated (one prompt, greedy or sampling)." };
        var json = new Option<bool>("--json") { Description = "Print JSON (with --stream: one JSON line per token)." };
        var maxNew = new Option<int>("--max-new-tokens") { Description = $"Most tokens to generate.", DefaultValueFactory = _ => d.MaxNewTokens };
        var minNew = new Option<int>("--min-new-tokens") { Description = $"EOS is banned before this many tokens.", DefaultValueFactory = _ => d.MinNewTokens };
        var doSample = new Option<bool>("--do-sample") { Description = "Sample instead of greedy decoding (default off). --temperature, --top-k, --top-p and --min-p act only with it; given without it, they are ignored with a warning." };
        var temperature = new Option<float>("--temperature") { Description = $"Sampling temperature; 0 is greedy.", DefaultValueFactory = _ => d.Temperature };
        var topK = new Option<int>("--top-k") { Description = $"Keep the k most likely tokens; 0 is off.", DefaultValueFactory = _ => d.TopK };
        var topP = new Option<float>("--top-p") { Description = $"Nucleus sampling mass; 1 is off.", DefaultValueFactory = _ => d.TopP };
        var minP = new Option<float>("--min-p") { Description = $"Drop tokens below min_p × the top probability; 0 is off.", DefaultValueFactory = _ => d.MinP };
        var seed = new Option<ulong?>("--seed") { Description = "Sampling seed (default: a fresh one per run)." };
        var numBeams = new Option<int>("--num-beams") { Description = $"Beam search width; 1 is off.", DefaultValueFactory = _ => d.NumBeams };
        var lengthPenalty = new Option<float>("--length-penalty") { Description = $"Beam scores are sum log p / length^α.", DefaultValueFactory = _ => d.LengthPenalty };
        var earlyStopping = new Option<bool>("--early-stopping") { Description = "Stop beam search once num_beams hypotheses are finished (default off)." };
        var numReturn = new Option<int>("--num-return-sequences") { Description = $"Sequences per prompt: best beams or samples.", DefaultValueFactory = _ => d.NumReturnSequences };
        var repetition = new Option<float>("--repetition-penalty") { Description = $"CTRL repetition penalty; 1 is off.", DefaultValueFactory = _ => d.RepetitionPenalty };
        var noRepeat = new Option<int>("--no-repeat-ngram-size") { Description = $"No n-gram of this size repeats; 0 is off.", DefaultValueFactory = _ => d.NoRepeatNgramSize };
        var stop = new Option<string[]>("--stop") { Description = "A stop string (repeatable); the output is cut before it." };
        var eos = new Option<string?>("--eos-token-ids") { Description = "Comma-separated ids that end a sequence (default: the model's and tokenizer's EOS)." };
        var bad = new Option<string?>("--bad-words-ids") { Description = "Comma-separated ids never generated." };
        var forcedBos = new Option<int?>("--forced-bos-token-id") { Description = "Force the first generated token." };
        var forcedEos = new Option<int?>("--forced-eos-token-id") { Description = "Force this token at max_new_tokens." };
        var srcLang = new Option<string?>("--src-lang") { Description = "mBART: the source language code the prompt is wrapped with (en_XX, ro_RO, …; default: tokenizer_config.json's src_lang)." };
        var tgtLang = new Option<string?>("--tgt-lang") { Description = "mBART-50: the target language, forced as the first generated token (the translation pipeline's forced_bos_token_id)." };
        var kvDType = new Option<string>("--kv-dtype") { Description = "KV cache storage: f32, or int8 (a quarter of the cache memory).", DefaultValueFactory = _ => d.KvCacheDType.Name() };
        var keepSpecial = new Option<bool>("--keep-special-tokens") { Description = "Keep special tokens in the text (default: dropped)." };
        var draftModel = new Option<string?>("--draft-model") { Description = "Speculative decoding: a smaller checkpoint (or run folder) with the same tokenizer drafts tokens that the model verifies in one pass; the output is the model's own (see docs/decoding.md)." };
        var promptLookup = new Option<bool>("--prompt-lookup") { Description = "Speculative decoding with drafts copied from the prompt: what followed the output's last n-gram there (no draft model)." };
        var draftTokens = new Option<int>("--draft-tokens") { Description = "Tokens drafted per verification pass (with --draft-model or --prompt-lookup).", DefaultValueFactory = _ => d.DraftTokens };
        var lookupNgram = new Option<int>("--prompt-lookup-ngram") { Description = "Longest n-gram --prompt-lookup matches.", DefaultValueFactory = _ => d.PromptLookupMaxNgram };
        var superposed = new SuperposedCli("Superposed decoding with K drafts (arXiv 2405.18400): one pass of the model per step feeds the drafts' superposed embeddings; the K drafts are printed as alternatives, best first (see docs/decoding.md).");
        var exit = new ExitThresholdOptions();
        var stats = new Option<bool>("--stats") { Description = "Print to stderr the tokens generated, the time and, with speculative decoding, tokens per pass of the model and the drafts' acceptance rate; with superposed decoding, the passes of the model." };
        var dtype = Common.WeightDTypeOption();
        var tokenizerDir = Common.TokenizerOption();
        var threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var adapterDir = Common.AdapterOption();
        var ignoreGenerationConfig = new Option<bool>("--ignore-generation-config") { Description = "Decode with the library's defaults instead of the checkpoint's generation_config.json (or config.json's generation fields), which otherwise set every decoding option not given here, as transformers' generate() does." };

        var cmd = new Command("generate", "Generate text with an encoder–decoder or decoder-only checkpoint.")
        {
            model, prompt, inputFile, batchSize, stream, json, maxNew, minNew, doSample, temperature, topK, topP, minP, seed,
            numBeams, lengthPenalty, earlyStopping, numReturn, repetition, noRepeat, stop, eos, bad, forcedBos, forcedEos, srcLang, tgtLang, keepSpecial, kvDType,
            draftModel, promptLookup, draftTokens, lookupNgram, stats, dtype, tokenizerDir, threads, adapterDir, ignoreGenerationConfig,
        };
        foreach (var option in superposed.All) cmd.Options.Add(option);
        var lexicalUnits = new LexicalUnitCli();
        foreach (var option in lexicalUnits.All) cmd.Options.Add(option);
        var routing = new RoutingCli();
        foreach (var option in routing.All) cmd.Options.Add(option);
        cmd.Options.Add(routing.Span);
        foreach (var option in exit.All) cmd.Options.Add(option);
        cmd.SetAction(async (parse, ct) =>
        {
            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNew),
                MinNewTokens = parse.GetValue(minNew),
                DoSample = parse.GetValue(doSample),
                Temperature = parse.GetValue(temperature),
                TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP),
                MinP = parse.GetValue(minP),
                Seed = parse.GetValue(seed),
                NumBeams = parse.GetValue(numBeams),
                LengthPenalty = parse.GetValue(lengthPenalty),
                EarlyStopping = parse.GetValue(earlyStopping),
                NumReturnSequences = parse.GetValue(numReturn),
                RepetitionPenalty = parse.GetValue(repetition),
                NoRepeatNgramSize = parse.GetValue(noRepeat),
                StopStrings = parse.GetValue(stop) ?? [],
                EosTokenIds = parse.GetValue(eos) is { } e ? ParseIds(e, "--eos-token-ids") : null,
                BadWordsIds = parse.GetValue(bad) is { } b ? ParseIds(b, "--bad-words-ids") : [],
                ForcedBosTokenId = parse.GetValue(forcedBos),
                ForcedEosTokenId = parse.GetValue(forcedEos),
                SkipSpecialTokens = !parse.GetValue(keepSpecial),
                KvCacheDType = KvCacheDTypes.Parse(parse.GetValue(kvDType)!, "--kv-dtype"),
                PromptLookup = parse.GetValue(promptLookup),
                DraftTokens = parse.GetValue(draftTokens),
                PromptLookupMaxNgram = parse.GetValue(lookupNgram),
                EarlyExit = exit.Parse(parse),
            };
            string? draftPath = parse.GetValue(draftModel);
            if (draftPath != null && options.PromptLookup) throw new ArgumentException("give one of --draft-model and --prompt-lookup");
            if (parse.GetValue(superposed.Drafts) != null)
            {
                if (draftPath != null || options.PromptLookup) throw new ArgumentException("--superposed does not combine with --draft-model or --prompt-lookup");
                if (parse.GetValue(stream)) throw new ArgumentException("--superposed does not stream: its drafts are known only at the end");
            }
            options = options with { Superposed = superposed.Parse(parse), LexicalUnits = lexicalUnits.Parse(parse) };
            if (draftPath != null && options.NumBeams > 1) throw new ArgumentException("--draft-model decodes one sequence at a time and does not combine with --num-beams");
            options.Validate();
            if (draftPath is null && !options.PromptLookup)
                foreach (var (option, name) in new (Option, string)[] { (draftTokens, "--draft-tokens"), (lookupNgram, "--prompt-lookup-ngram") })
                    if (parse.GetResult(option) is { Implicit: false }) Console.Error.WriteLine($"encore: {name} has no effect without --draft-model or --prompt-lookup");
            string? text = parse.GetValue(prompt), file = parse.GetValue(inputFile);
            if ((text is null) == (file is null)) throw new ArgumentException("give exactly one of --prompt and --input-file");
            bool asJson = parse.GetValue(json), streaming = parse.GetValue(stream);
            int batch = parse.GetValue(batchSize);
            if (batch is < 1 or > 4096) throw new ArgumentException($"--batch-size must be in [1, 4096], got {batch}");
            if (streaming && file != null) throw new ArgumentException("--stream works with --prompt, not --input-file");
            // Read the inputs before loading the model, so a bad file fails fast.
            var inputs = file is null ? null : ReadJsonl(file);

            string dir = CheckpointDirectory.Resolve(Common.ModelPath(parse.GetValue(model)!, asJson));
            KernelPool.Default = new KernelPool(Common.Threads(parse, threads));
            using var m = Common.LoadForInference(dir, parse.GetValue(dtype));
            using var adapter = parse.GetValue(adapterDir) is { } a ? Common.LoadAdapter(a, m, dir, asJson) : null;
            m.Adapters.Active = adapter;
            var tokenizer = Common.LoadTokenizer(dir, parse.GetValue(tokenizerDir), asJson);
            if (!parse.GetValue(ignoreGenerationConfig))
            {
                // The checkpoint's decoding defaults fill every option not given on the command line.
                var fileDefaults = GenerationConfigFile.Read(dir, m is EncoderDecoderModel);
                bool multiToken = draftPath != null || options.PromptLookup || options.Superposed != null || options.LexicalUnits != null;
                (Option Option, Func<GenerationOptions, GenerationOptions, GenerationOptions> Take)[] fields =
                [
                    (maxNew, (o, f) => o with { MaxNewTokens = f.MaxNewTokens }),
                    (minNew, (o, f) => o with { MinNewTokens = f.MinNewTokens }),
                    (doSample, (o, f) => o with { DoSample = f.DoSample }),
                    (temperature, (o, f) => o with { Temperature = f.Temperature }),
                    (topK, (o, f) => o with { TopK = f.TopK }),
                    (topP, (o, f) => o with { TopP = f.TopP }),
                    (minP, (o, f) => o with { MinP = f.MinP }),
                    // Beams do not combine with the multi-token decoders the command line chose.
                    (numBeams, (o, f) => multiToken ? o : o with { NumBeams = f.NumBeams }),
                    (lengthPenalty, (o, f) => o with { LengthPenalty = f.LengthPenalty }),
                    (earlyStopping, (o, f) => o with { EarlyStopping = f.EarlyStopping }),
                    (numReturn, (o, f) => multiToken ? o : o with { NumReturnSequences = f.NumReturnSequences }),
                    (repetition, (o, f) => o with { RepetitionPenalty = f.RepetitionPenalty }),
                    (noRepeat, (o, f) => o with { NoRepeatNgramSize = f.NoRepeatNgramSize }),
                    (eos, (o, f) => o with { EosTokenIds = f.EosTokenIds }),
                    (bad, (o, f) => o with { BadWordsIds = f.BadWordsIds }),
                    (forcedBos, (o, f) => o with { ForcedBosTokenId = f.ForcedBosTokenId }),
                    (forcedEos, (o, f) => o with { ForcedEosTokenId = f.ForcedEosTokenId }),
                ];
                foreach (var (option, take) in fields)
                    if (parse.GetResult(option) is null or { Implicit: true }) options = take(options, fileDefaults.Options);
                options = options with { DecoderStartTokenId = fileDefaults.Options.DecoderStartTokenId };
                try
                {
                    options.Validate();
                }
                catch (ArgumentException invalid)
                {
                    throw new ArgumentException($"{fileDefaults.Source} with the options given: {invalid.Message} (--ignore-generation-config decodes with the library's defaults)", invalid);
                }
                if (fileDefaults.Applied.Count > 0 && !asJson)
                    Console.Error.WriteLine($"encore: decoding defaults from {fileDefaults.Source}: {string.Join(", ", fileDefaults.Applied)} (options given here take precedence; --ignore-generation-config drops them)");
            }
            if (parse.GetValue(srcLang) is { } source) MBart(tokenizer, "--src-lang").SourceLanguage = source;
            if (parse.GetValue(tgtLang) is { } target)
            {
                if (parse.GetResult(forcedBos) is { Implicit: false }) throw new ArgumentException("give one of --tgt-lang and --forced-bos-token-id");
                options = options with { ForcedBosTokenId = MBart(tokenizer, "--tgt-lang").LanguageId(target) };
            }
            if (IgnoredSamplingOptions(parse, options, d, (temperature, "--temperature"), (topK, "--top-k"), (topP, "--top-p"), (minP, "--min-p")) is { } warning)
                Console.Error.WriteLine($"encore: {warning}");
            using var draft = draftPath is null ? null : Common.LoadDraft(draftPath, parse.GetValue(dtype), m, dir, tokenizer, asJson);
            options = options with { DraftModel = draft, LexicalUnits = lexicalUnits.Resolve(parse, options.LexicalUnits, tokenizer) };
            options.Superposed?.Ngrams?.CheckFits(m.Config.VocabSize, tokenizer);
            var generator = new Generator(m, tokenizer);
            if (parse.GetValue(routing.SuperModel) != null && streaming) throw new ArgumentException("--super-model does not stream: the model that answers is chosen first");
            using var super = routing.LoadSuper(parse, parse.GetValue(dtype), m, dir, tokenizer, out var routingOptions, out string? routingNote, options);
            var router = super is null ? null : new RoutedGenerator(generator, new Generator(super, tokenizer), routingOptions);
            if (routingNote != null && parse.GetValue(stats)) Console.Error.WriteLine($"encore: {routingNote}");
            bool printStats = parse.GetValue(stats);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int generated = 0;
            SpeculativeStats? speculative = null;
            EarlyExitStats? exits = null;
            int passes = 0;
            void Count(GenerationResult r)
            {
                generated += r.Sequences.Sum(x => x.Tokens.Length);
                if (r.EarlyExit is { } ee) exits = exits is { } sum ? sum + ee : ee;
                if (r.Speculative is { } st) speculative = (speculative ?? new SpeculativeStats()) + st;
                passes += r.SuperposedPasses ?? 0;
            }
            void PrintStats()
            {
                if (!printStats) return;
                string line = StatsLine(generated, clock.Elapsed.TotalSeconds, speculative, options);
                if (options.Superposed is { } sp)
                    line += $"; superposed decoding with {sp.Drafts} drafts{(sp.Ngrams is { } t ? $" and {t.Order}-gram interpolation" : "")}: {passes} passes of the model";
                if (exits is { } ee) line += "; " + ExitThresholdOptions.StatsLine(ee);
                Console.Error.WriteLine($"encore: {line}");
            }

            if (inputs != null)
            {
                for (int start = 0; start < inputs.Count; start += batch)
                {
                    var chunk = inputs.Skip(start).Take(batch).ToArray();
                    var prompts = chunk.Select(c => c.Prompt).ToArray();
                    var routed = router?.Generate(prompts, options, ct);
                    IReadOnlyList<GenerationResult> results = routed != null ? routed.Select(r => r.Result).ToArray() : generator.Generate(prompts, options, ct);
                    for (int i = 0; i < chunk.Length; i++)
                    {
                        Count(results[i]);
                        var o = ResultJson(chunk[i].Prompt, results[i]);
                        o.Insert(0, "line", chunk[i].Line);
                        if (routed != null) AddRoute(o, routed[i]);
                        Console.WriteLine(o.ToJsonString(JsonLine));
                    }
                }
                PrintStats();
                return 0;
            }
            if (streaming)
            {
                await foreach (var c in generator.StreamAsync(text!, options, ct))
                {
                    if (c.Token >= 0) generated++;
                    if (c.Speculative != null) speculative = c.Speculative;
                    if (asJson) Console.WriteLine(new JsonObject { ["token"] = c.Token, ["text"] = c.Text }.ToJsonString(JsonLine));
                    else
                    {
                        Console.Write(c.Text);
                        Console.Out.Flush();
                    }
                }
                if (!asJson) Console.WriteLine();
                PrintStats();
                return 0;
            }
            var routedResult = router?.Generate(text!, options, ct);
            var result = routedResult?.Result ?? generator.Generate(text!, options, ct);
            Count(result);
            PrintStats();
            if (routedResult != null && printStats)
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"encore: answered by the {(routedResult.AnsweredBy == RoutedModel.Super ? "super" : "swift")} model (score {routedResult.Score:0.####})"));
            if (asJson)
            {
                var o = ResultJson(text!, result);
                if (routedResult != null) AddRoute(o, routedResult);
                Console.WriteLine(o.ToJsonString(Common.Json));
            }
            else if (result.Sequences.Count == 1) Console.WriteLine(result.Text);
            else for (int i = 0; i < result.Sequences.Count; i++) Console.WriteLine($"[{i}] {result.Sequences[i].Text}");
            return 0;
        });
        return cmd;
    }

    /// <summary>Adds which model answered (<c>routed_to</c>: swift or super) and the swift model's score to a result's JSON.</summary>
    static void AddRoute(JsonObject o, RoutedResult r)
    {
        o["routed_to"] = r.AnsweredBy == RoutedModel.Super ? "super" : "swift";
        o["route_score"] = double.IsFinite(r.Score) ? r.Score : null;
    }

    /// <summary>
    /// The warning for sampling options set to other than their default while <c>--do-sample</c> is off, where
    /// decoding ignores them; null when there is nothing to warn about.
    /// </summary>
    static string? IgnoredSamplingOptions(ParseResult parse, GenerationOptions options, GenerationOptions defaults, params (Option Option, string Name)[] sampling)
    {
        if (options.DoSample) return null;
        var set = sampling.Where(s => parse.GetResult(s.Option) is { Implicit: false } && s.Name switch
        {
            "--temperature" => options.Temperature != defaults.Temperature,
            "--top-k" => options.TopK != defaults.TopK,
            "--top-p" => options.TopP != defaults.TopP,
            _ => options.MinP != defaults.MinP,
        }).Select(s => s.Name).ToArray();
        if (set.Length == 0) return null;
        string decoding = options.NumBeams > 1 ? "decoding with beam search" : "decoding greedily";
        return $"{string.Join(", ", set)} {(set.Length == 1 ? "has" : "have")} no effect without --do-sample; {decoding}";
    }

    /// <summary>The --stats line: tokens and time, and with speculative decoding its tokens per pass of the model and acceptance rate.</summary>
    internal static string StatsLine(int tokens, double seconds, SpeculativeStats? speculative, GenerationOptions options)
    {
        var inv = CultureInfo.InvariantCulture;
        string line = string.Create(inv, $"{tokens} tokens in {seconds:0.000} s ({tokens / Math.Max(seconds, 1e-9):0.0} tokens/s, model load excluded)");
        if (speculative is not { } s) return line;
        if (options.LexicalUnits is { } lu)
            return line + string.Create(inv, $"; lexical-unit decoding, up to {lu.Span} tokens per pass (β {lu.Beta}): {s.TargetPasses} passes of the model, {s.TokensPerPass:0.00} tokens per pass, {s.Accepted} of {s.Drafted} look-ahead guesses kept");
        string source = options.PromptLookup ? $"prompt lookup (n-grams up to {options.PromptLookupMaxNgram})" : "a draft model";
        string rate = s.AcceptanceRate is { } a ? string.Create(inv, $"{s.Accepted} of {s.Drafted} drafted tokens accepted ({a:0.0%})") : "no tokens drafted";
        return line + string.Create(inv, $"; speculative decoding with {source}, {options.DraftTokens} drafts per pass: {s.TargetPasses} passes of the model, {s.TokensPerPass:0.00} tokens per pass, {rate}");
    }

    static readonly JsonSerializerOptions JsonLine = new(Common.Json) { WriteIndented = false };

    static JsonObject ResultJson(string prompt, GenerationResult r)
    {
        var o = new JsonObject
        {
            ["prompt"] = prompt,
            ["text"] = r.Text,
            ["tokens"] = new JsonArray(r.Tokens.Select(t => (JsonNode)t).ToArray()),
            ["finish_reason"] = r.Sequences[0].Finish.OpenAiName(),
        };
        if (r.Speculative is { } s)
            o["speculative"] = new JsonObject
            {
                ["target_passes"] = s.TargetPasses,
                ["drafted"] = s.Drafted,
                ["accepted"] = s.Accepted,
                ["tokens_per_pass"] = Math.Round(s.TokensPerPass, 4),
                ["acceptance_rate"] = s.AcceptanceRate is { } a ? Math.Round(a, 4) : null,
            };
        if (r.SuperposedPasses is { } passes) o["superposed_passes"] = passes;
        if (r.EarlyExit is { } ee) o["early_exit"] = ExitThresholdOptions.Json(ee);
        if (r.Sequences.Count > 1)
            o["sequences"] = new JsonArray(r.Sequences.Select(s => (JsonNode)new JsonObject
            {
                ["text"] = s.Text,
                ["tokens"] = new JsonArray(s.Tokens.Select(t => (JsonNode)t).ToArray()),
                ["finish_reason"] = s.Finish.OpenAiName(),
                ["score"] = s.Score,
            }).ToArray());
        return o;
    }

    // The tokenizer as mBART's, for the options that set its languages.
    static MBartTokenizer MBart(TextTokenizer tokenizer, string option) => tokenizer as MBartTokenizer
        ?? throw new ArgumentException($"{option} is for mBART tokenizers (sentencepiece.bpe.model with language codes); this checkpoint's is {tokenizer.Kind}");

    static int[] ParseIds(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length > 100_000) throw new ArgumentException($"{option} has {parts.Length} ids; at most 100000");
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], out ids[i]) || ids[i] < 0)
                throw new ArgumentException($"{option}: '{parts[i]}' (position {i}) is not a token id");
        return ids;
    }

    /// <summary>
    /// The prompts of a JSONL file, or of standard input for <c>-</c>, with their 1-based line numbers; blank
    /// lines are skipped.
    /// </summary>
    internal static List<(int Line, string Prompt)> ReadJsonl(string path)
    {
        IEnumerable<string> lines;
        if (path == "-")
        {
            path = "<stdin>";
            lines = ReadBounded(Console.In, path);
        }
        else
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new FileNotFoundException($"{path}: no such file");
            if (info.Length > MaxInputBytes) throw new ArgumentException($"{path}: {info.Length} bytes; --input-file holds at most {MaxInputBytes}");
            lines = File.ReadLines(path);
        }
        var result = new List<(int, string)>();
        int n = 0;
        foreach (var line in lines)
        {
            n++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException e)
            {
                throw new ArgumentException($"{path}:{n}: not valid JSON ({e.Message.Split(" LineNumber:")[0]})");
            }
            if (node is not JsonObject obj) throw new ArgumentException($"{path}:{n}: expected a JSON object with a \"prompt\" string");
            if (!obj.TryGetPropertyValue("prompt", out var p) || p is not JsonValue v || !v.TryGetValue<string>(out var prompt))
                throw new ArgumentException($"{path}:{n}: missing \"prompt\" or it is not a string");
            result.Add((n, prompt));
        }
        if (result.Count == 0) throw new ArgumentException($"{path}: no prompts");
        return result;
    }

    /// <summary>The lines of a stream of unknown length, failing once they pass the size a file may have.</summary>
    static IEnumerable<string> ReadBounded(TextReader reader, string name)
    {
        long chars = 0;
        while (reader.ReadLine() is { } line)
        {
            chars += line.Length + 1;
            if (chars > MaxInputBytes) throw new ArgumentException($"{name}: more than {MaxInputBytes} characters; --input-file holds at most {MaxInputBytes} bytes");
            yield return line;
        }
    }
}
