using System.Text.Json;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore eval</c>: loss, perplexity and generation metrics of one or several checkpoints on the same
/// JSONL examples, beside trivial baselines; optionally their decoding speed and loss curves.
/// </summary>
internal static partial class EvalCommand
{
    public static Command Create()
    {
        var d = new EvaluationOptions();
        var ds = new DecodingSpeedOptions();
        var model = new Option<string[]>("--model", "-m")
        {
            Description = "Checkpoint directory, training run folder (its newest checkpoint) or Hugging Face model id org/name[@revision], as PATH or NAME=PATH; repeat to compare models on the same examples.",
            Required = true,
        };
        var data = new Option<string>("--data") { Description = "JSONL {\"source\",\"target\"} pairs (.jsonl or .jsonl.gz).", Required = true };
        var examples = new Option<int>("--examples") { Description = "Examples evaluated from the start of the file; 0: all.", DefaultValueFactory = _ => d.Examples };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Tokens generated per example (greedy).", DefaultValueFactory = _ => d.MaxNewTokens };
        var batch = new Option<int>("--batch-size") { Description = "Prompts decoded together.", DefaultValueFactory = _ => d.BatchSize };
        var samples = new Option<int>("--samples") { Description = "Examples printed with source, reference and output.", DefaultValueFactory = _ => d.Samples };
        var lossOnly = new Option<bool>("--loss-only") { Description = "Report the loss alone (no generation)." };
        var speed = new Option<bool>("--speed") { Description = $"Also time batch-1 greedy decoding ({ds.NewTokens} tokens forced): median first-token latency, decode tokens/s and the KV cache of one request." };
        var speedPrompts = new Option<int>("--speed-prompts") { Description = "Prompts timed by --speed (the first examples, after half a second of warm-up runs on the first).", DefaultValueFactory = _ => ds.Prompts };
        var plot = new Option<string?>("--plot") { Description = "Write the models' training and validation loss curves (from each run's metrics.jsonl) to this PNG (with --route: ROUGE-L against the fraction routed)." };
        var markdown = new Option<bool>("--markdown") { Description = "Print the table as GitHub markdown." };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object." };
        var dtype = Common.WeightDTypeOption();
        var tokenizerDir = new Option<string?>("--tokenizer") { Description = "Directory with tokenizer files, used for every model whose checkpoint has none." };
        var kvDType = new Option<string>("--kv-dtype") { Description = "KV cache storage of the generation and --speed: f32, or int8.", DefaultValueFactory = _ => "f32" };
        var threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var fields = new Common.FieldOptions();
        var route = new RouteOptions();
        var exitSweep = new Option<string[]>("--exit-threshold") { Description = "Early-exit sweep instead of the table: for each value (τ for both stacks, or ENC:DEC), batch-1 greedy outputs of every example with that early exit (docs/adaptive-compute.md), scored, with the encoder and decoder layers run and the median wall time; repeat for the points of the sweep (add 1 for the plain model)." };
        var exitRounds = new Option<int>("--exit-rounds") { Description = "Timed rounds of an --exit-threshold sweep; the points take turns within each round and each point's time is its median.", DefaultValueFactory = _ => new ExitSweepOptions().Rounds };
        var cmd = new Command("eval", "Score checkpoints on source → target pairs: loss, perplexity, exact match, ROUGE-1/2/L, chrF and BLEU, beside the lead and majority baselines; with several -m, one table on the same examples.")
        {
            model, data, examples, maxNew, batch, samples, lossOnly, speed, speedPrompts, plot, markdown, json, threads, dtype, tokenizerDir, kvDType,
        };
        foreach (var opt in fields.All) cmd.Options.Add(opt);
        var lexicalUnits = new LexicalUnitCli();
        foreach (var opt in lexicalUnits.All) cmd.Options.Add(opt);
        foreach (var opt in route.All) cmd.Options.Add(opt);
        cmd.Options.Add(exitSweep);
        cmd.Options.Add(exitRounds);
        var embeddings = new EmbeddingEvalCli();
        foreach (var opt in embeddings.All) cmd.Options.Add(opt);
        cmd.SetAction(parse =>
        {
            Tensors.Threading.KernelPool.Default = new Tensors.Threading.KernelPool(Common.Threads(parse, threads));
            var kv = KvCacheDTypes.Parse(parse.GetValue(kvDType)!, "--kv-dtype");
            if (parse.GetValue(embeddings.Embeddings))
                return RunEmbeddings(parse, embeddings, model, data, examples, fields, parse.GetValue(dtype), parse.GetValue(tokenizerDir), parse.GetValue(json), parse.GetValue(markdown));
            if (parse.GetValue(route.Route))
                return RunRoute(parse, route, model, data, examples, maxNew, fields, kv, parse.GetValue(dtype), parse.GetValue(tokenizerDir), json, markdown, plot);
            if (parse.GetValue(exitSweep) is { Length: > 0 } points)
            {
                var sweep = new ExitSweepOptions
                {
                    Points = points.Select(ParseExitPoint).ToArray(), Rounds = parse.GetValue(exitRounds), MaxNewTokens = parse.GetValue(maxNew), KvCache = kv,
                }.Validate();
                return RunExitSweep(ModelSpec.ParseAll(parse.GetValue(model)!), DatasetReader.ReadPairs(parse.GetValue(data)!, fields.Read(parse)),
                    parse.GetValue(examples), sweep, parse.GetValue(tokenizerDir), parse.GetValue(dtype), parse.GetValue(json), parse.GetValue(data)!);
            }
            var options = new ComparisonOptions
            {
                Evaluation = (d with
                {
                    Examples = parse.GetValue(examples), MaxNewTokens = parse.GetValue(maxNew), BatchSize = parse.GetValue(batch),
                    Samples = parse.GetValue(samples), LossOnly = parse.GetValue(lossOnly), KvCache = kv,
                    LexicalUnits = lexicalUnits.Parse(parse), LexicalUnitPlaceholder = parse.GetValue(lexicalUnits.Placeholder)!,
                }).Validate(),
                Speed = parse.GetValue(speed) ? (ds with { Prompts = parse.GetValue(speedPrompts), KvCache = kv }).Validate() : null,
                Weights = parse.GetValue(dtype) is { } w ? Common.ParseWeightDType(w, "--dtype") : null,
                Tokenizer = parse.GetValue(tokenizerDir) is { } t ? Common.ModelPath(t, parse.GetValue(json)) : null,
            };
            var specs = ModelSpec.ParseAll(parse.GetValue(model)!).Select(s => s with { Path = Common.ModelPath(s.Path, parse.GetValue(json)) }).ToList();
            ModelComparison.Resolve(specs);
            bool asJson = parse.GetValue(json), asMarkdown = parse.GetValue(markdown);
            var path = parse.GetValue(data)!;
            var pairs = DatasetReader.ReadPairs(path, fields.Read(parse));
            var notes = new List<string>();
            string? plotPath = parse.GetValue(plot);
            if (plotPath != null && !WritePlot(specs, plotPath, notes)) plotPath = null;
            Action<string>? progress = asJson ? null : line => Console.Error.WriteLine($"{line}…");
            ComparisonResult result;
            try
            {
                result = ModelComparison.Run(specs, pairs, options, progress);
            }
            catch (FileNotFoundException e) when (options.Tokenizer is null && e.Message.Contains("no tokenizer found", StringComparison.Ordinal))
            {
                throw new FileNotFoundException($"{e.Message}; pass --tokenizer DIR with a directory that holds them", e);
            }
            if (!result.SharedTokenizer)
                notes.Add("the models tokenize the references differently: loss and perplexity are per token of each model's own tokenizer, comparable only between models that share one");
            var table = ModelComparison.Table(result);
            if (asJson)
            {
                string? md = asMarkdown ? table.ToMarkdown() : null;
                object output = result.Models.Count == 1
                    ? new
                    {
                        checkpoint = result.Models[0].Checkpoint, data = path, result = result.Models[0].Result,
                        name = result.Models[0].Name, family = result.Models[0].Family, parameters = result.Models[0].Parameters,
                        speed = result.Models[0].Speed, plot = plotPath, notes, markdown = md,
                    }
                    : new
                    {
                        data = path, examples = result.Examples, seconds = result.Seconds, shared_tokenizer = result.SharedTokenizer,
                        baselines = result.Baselines, models = result.Models, plot = plotPath, notes, markdown = md,
                    };
                Console.WriteLine(JsonSerializer.Serialize(output, Common.Json));
                return 0;
            }
            if (asMarkdown)
            {
                Console.Write(table.ToMarkdown());
                Console.WriteLine();
                Console.WriteLine(Footnote(result, options, path));
                foreach (var n in notes) Console.WriteLine($"Note: {n}.");
                return 0;
            }
            Render(result, table, options, path, notes, plotPath);
            return 0;
        });
        return cmd;
    }

    /// <summary>"0.9" (both stacks) or "0.9:0.99" (encoder:decoder) → the thresholds; throws naming the option.</summary>
    internal static EarlyExitOptions ParseExitPoint(string text)
    {
        var parts = text.Split(':');
        var values = new float[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (parts.Length > 2 || !float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !float.IsFinite(values[i]))
                throw new ArgumentException($"--exit-threshold: '{text}' is not a threshold τ or a pair ENC:DEC of finite numbers");
        return new EarlyExitOptions { EncoderThreshold = values[0], DecoderThreshold = values[^1] };
    }

    // Each model's sweep, one model loaded at a time: a markdown table per model, or one JSON object.
    static int RunExitSweep(IReadOnlyList<ModelSpec> specs, IReadOnlyList<TextPair> pairs, int examples, ExitSweepOptions sweep, string? tokenizer, string? dtype, bool asJson, string data)
    {
        var dirs = ModelComparison.Resolve(specs);
        var chosen = examples > 0 ? pairs.Take(examples).ToList() : [.. pairs];
        var results = new List<object>();
        for (int i = 0; i < specs.Count; i++)
        {
            using var m = Common.LoadForInference(dirs[i], dtype);
            var tok = Common.LoadTokenizer(dirs[i], tokenizer);
            var points = ExitSweep.Run(m, tok, chosen, sweep, asJson ? null : line => Console.Error.WriteLine($"{specs[i].Name}: {line}…"));
            if (asJson)
                results.Add(new
                {
                    name = specs[i].Name, checkpoint = dirs[i], encoder_layers = m.Config.Family == ModelFamily.EncoderDecoder ? m.Config.EncoderLayers : 0, decoder_layers = m.Config.DecoderLayers,
                    points = points.Select(p => new
                    {
                        encoder_threshold = p.Exit.EncoderThreshold, decoder_threshold = p.Exit.DecoderThreshold,
                        encoder_fraction = double.IsNaN(p.Layers.EncoderFraction) ? (double?)null : p.Layers.EncoderFraction,
                        decoder_fraction = p.Layers.DecoderFraction, layer_fraction = p.Layers.LayerFraction,
                        encoder_layers = p.Layers.EncoderLayers, encoder_examples = p.Layers.EncoderExamples,
                        decoder_layers = p.Layers.DecoderLayers, decoder_tokens = p.Layers.DecoderTokens,
                        metrics = p.Metrics, median_seconds = p.MedianSeconds, seconds = p.Seconds,
                    }).ToArray(),
                    markdown = ExitSweep.Markdown(points),
                });
            else
            {
                Console.WriteLine($"{specs[i].Name} ({dirs[i]}): {m.Config.EncoderLayers} encoder and {m.Config.DecoderLayers} decoder layers");
                Console.WriteLine();
                Console.Write(ExitSweep.Markdown(points));
                Console.WriteLine();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{chosen.Count} examples of {data}; batch-1 greedy outputs of up to {sweep.MaxNewTokens} tokens; layers = blocks run as a share of every block for every example (encoder) and token (decoder); time = median of {sweep.Rounds} interleaved passes over the examples; Δ and ratio against the plain point (both τ ≥ 1)."));
            }
        }
        if (asJson) Console.WriteLine(JsonSerializer.Serialize(new { data, examples = chosen.Count, rounds = sweep.Rounds, max_new_tokens = sweep.MaxNewTokens, models = results }, Common.Json));
        return 0;
    }

    // The plot comes first: it needs only the runs' logs, so a bad path fails before the long evaluation.
    static bool WritePlot(IReadOnlyList<ModelSpec> specs, string path, List<string> notes)
    {
        var (curves, skipped) = ModelComparison.ReadCurves(specs);
        notes.AddRange(skipped);
        if (curves.Count == 0)
        {
            notes.Add($"--plot: no model's run has a loss log; {path} was not written");
            return false;
        }
        LossCurves.WritePlot(path, curves, curves.Count == 1 ? $"{curves[0].Name} loss" : "loss curves");
        return true;
    }

    static string Footnote(ComparisonResult r, ComparisonOptions o, string data)
    {
        var ci = CultureInfo.InvariantCulture;
        var text = string.Create(ci, $"{r.Examples} examples of {data}; loss in nats per target token");
        if (!o.Evaluation.LossOnly)
            text += string.Create(ci, $"; metrics 0–100 on greedy outputs of up to {o.Evaluation.MaxNewTokens} tokens (ROUGE F1 on lower-cased words)");
        if (!o.Evaluation.LossOnly && r.Baselines.Count > 0)
            text += "; baselines: " + string.Join(", ", r.Baselines.Select(b => $"{b.Name} = {Quoted(Shorten(b.Description, 60), b.Description)}"));
        if (r.Models.FirstOrDefault(m => m.Speed != null)?.Speed is { } s)
            text += string.Create(ci, $"; speed at batch 1, greedy, {s.NewTokens} tokens forced, median first-token latency over {s.Prompts} prompts after a warm-up, decode rate of the tokens after the first, cache = f32 keys and values of one request (decoder self-attention of every position, plus cross-attention of the source for an encoder–decoder)");
        return text + ".";
    }

    static void Render(ComparisonResult r, ComparisonTable table, ComparisonOptions o, string data, IReadOnlyList<string> notes, string? plot)
    {
        // Written to a file or a pipe, the console's width is a default of 80 columns, too narrow for a
        // dozen figures a row; there the table takes the width it needs.
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 200);
        if (r.Models.Count == 1)
        {
            var m = r.Models[0];
            AnsiConsole.MarkupLine($"[bold]encore eval[/] {Markup.Escape(m.Checkpoint)} on {Markup.Escape(data)}: {r.Examples} examples, {r.Seconds:0.0} s");
            AnsiConsole.MarkupLine($"loss {m.Result.Loss:0.000} per target token, perplexity {m.Result.Perplexity:0.00}");
        }
        else
            AnsiConsole.MarkupLine($"[bold]encore eval[/] {r.Models.Count} models on {Markup.Escape(data)}: {r.Examples} examples each, {r.Seconds:0.0} s");
        if (r.Models.Count > 1 || table.Columns.Count > 4)
        {
            var t = new Table();
            t.AddColumn(Markup.Escape(table.Columns[0]));
            foreach (var c in table.Columns.Skip(1)) t.AddColumn(new TableColumn(Markup.Escape(c)).RightAligned());
            for (int i = 0; i < table.Rows.Count; i++)
            {
                var row = table.Rows[i].Select(Markup.Escape).ToArray();
                if (i < table.ModelRows) row[0] = $"[bold]{row[0]}[/]";
                else row = row.Select(c => $"[grey]{c}[/]").ToArray();
                t.AddRow(row);
            }
            AnsiConsole.Write(t);
        }
        AnsiConsole.MarkupLine($"[grey]{Markup.Escape(Footnote(r, o, data))}[/]");
        foreach (var n in notes) AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape(n)}");
        if (plot != null) AnsiConsole.MarkupLine($"loss curves: {Markup.Escape(plot)}");
        int samples = r.Models.Min(m => m.Result.Samples.Count);
        for (int i = 0; i < samples; i++)
        {
            var s = r.Models[0].Result.Samples[i];
            AnsiConsole.MarkupLine($"[grey]source:[/]    {Markup.Escape(Shorten(s.Source, 160))}");
            AnsiConsole.MarkupLine($"[grey]reference:[/] {Markup.Escape(s.Reference)}");
            if (r.Models.Count == 1) AnsiConsole.MarkupLine($"[grey]output:[/]    [bold]{Markup.Escape(s.Output)}[/]");
            else
                foreach (var m in r.Models)
                    AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m.Name)}:[/] [bold]{Markup.Escape(m.Result.Samples[i].Output)}[/]");
        }
    }

    internal static string Shorten(string s, int max) => s.Length <= max ? s : s[..(max - 1)] + "…";

    // A shortened description keeps its closing quote: always "a long answer…".
    static string Quoted(string shortened, string full) => full.EndsWith('"') && !shortened.EndsWith('"') ? shortened + "\"" : shortened;
}
