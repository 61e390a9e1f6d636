using Encore.Tensors;

namespace Encore.Cli.Commands;

// encore bench generate: first-token latency and decode rate beside the memory-bandwidth bound.
internal static partial class BenchCommand
{
    static Command CreateGenerate()
    {
        var d = new GenerateBenchmarkOptions();
        var presets = new Option<string[]>("--preset", "--model", "-m")
        {
            Description = $"Presets (random weights) or checkpoint directories / training run folders (repeatable; default {string.Join(", ", d.Presets)}).",
            AllowMultipleArgumentsPerToken = true,
        };
        var batches = new Option<int[]>("--batch") { Description = $"Batch sizes (repeatable; default {string.Join(", ", d.Batches)}; 1 with --data).", AllowMultipleArgumentsPerToken = true };
        var data = new Option<string?>("--data") { Description = "JSONL(.gz) whose \"source\" texts are the prompts (checkpoints only; made into prompts as in training, timed one at a time at batch 1, generation stopping at EOS)." };
        var texts = new Option<int>("--prompts") { Description = "Texts of --data used, from the start.", DefaultValueFactory = _ => 20 };
        var draftModel = new Option<string?>("--draft-model") { Description = "Also time speculative decoding with this draft model (preset or checkpoint; batch 1)." };
        var promptLookup = new Option<bool>("--prompt-lookup") { Description = "Also time speculative decoding with prompt-lookup drafts (batch 1)." };
        var draftTokens = new Option<int>("--draft-tokens") { Description = "Tokens drafted per verification pass.", DefaultValueFactory = _ => d.DraftTokens };
        var lookupNgram = new Option<int>("--prompt-lookup-ngram") { Description = "Longest n-gram prompt lookup matches.", DefaultValueFactory = _ => d.PromptLookupMaxNgram };
        var lexicalUnits = new LexicalUnitCli();
        var superposed = new SuperposedCli("Also measure superposed decoding with K drafts at batch 1: its wall time against K nucleus-sampled runs (p = 0.9) and every draft's perplexity under a normal pass of the model.");
        var input = new Option<int>("--input-length") { Description = $"Input tokens per sequence.", DefaultValueFactory = _ => d.InputLength };
        var output = new Option<int>("--new-tokens") { Description = $"Generated tokens per sequence.", DefaultValueFactory = _ => d.NewTokens };
        var weights = WeightsOption(d.Weights);
        var compare = new Option<string?>("--compare-weights") { Description = "Also time each model with this weight type (batch 1, greedy), each run next to the same run with --weights (which goes first alternates), and report the median of the runs' decode-rate ratios." };
        var kvDType = KvDTypeOption(d.KvCache);
        var runs = RunsOption(d.Runs, $"Timed runs; figures are medians");
        return Suite("generate", "First-token latency and decode tokens/s of greedy generation, beside the memory-bandwidth bound; at batch 1 also speculative decoding (--prompt-lookup, --draft-model).",
            [presets, batches, input, output, weights, compare, kvDType, runs, data, texts, draftModel, promptLookup, draftTokens, lookupNgram, .. superposed.All, .. lexicalUnits.All],
            parse =>
            {
                var sources = parse.GetValue(data) is { } path ? ReadSources(path, parse.GetValue(texts)) : null;
                return new GenerateBenchmarkOptions
                {
                    Presets = parse.GetValue(presets) is { Length: > 0 } p ? p : d.Presets,
                    Batches = parse.GetValue(batches) is { Length: > 0 } b ? b : sources != null ? [1] : d.Batches,
                    InputLength = parse.GetValue(input),
                    NewTokens = parse.GetValue(output),
                    Weights = Encore.Tensors.DTypes.Parse(parse.GetValue(weights)!),
                    CompareWeights = parse.GetValue(compare) is { } cw ? Encore.Tensors.DTypes.Parse(cw) : null,
                    KvCache = Encore.Models.KvCacheDTypes.Parse(parse.GetValue(kvDType)!, "--kv-dtype"),
                    Runs = parse.GetValue(runs),
                    Texts = sources,
                    DraftModel = parse.GetValue(draftModel),
                    PromptLookup = parse.GetValue(promptLookup),
                    DraftTokens = parse.GetValue(draftTokens),
                    PromptLookupMaxNgram = parse.GetValue(lookupNgram),
                    Superposed = superposed.Parse(parse),
                    LexicalUnits = lexicalUnits.Parse(parse),
                    LexicalUnitPlaceholder = parse.GetValue(lexicalUnits.Placeholder)!,
                };
            },
            o => o.Validate(),
            (o, progress) => Task.FromResult(GenerateBenchmark.Run(o, progress)),
            RenderGenerate);
    }

    /// <summary>The "source" texts of the first <paramref name="count"/> examples of a JSONL(.gz) file.</summary>
    static IReadOnlyList<string> ReadSources(string path, int count)
    {
        if (count is < 1 or > 100_000) throw new ArgumentException($"--prompts must be between 1 and 100000, got {count}");
        return Encore.Training.Data.DatasetReader.ReadPairs(path).Take(count).Select(p => p.Source).ToArray();
    }

    static void RenderSuperposed(GenerateBenchmarkResult r)
    {
        var inv = CultureInfo.InvariantCulture;
        var table = new Table().Border(TableBorder.Rounded)
            .Title($"[bold]superposed drafts against sampled runs (top-p {GenerateBenchmark.SampledTopP.ToString(inv)}), batch 1[/] (median of {r.Runs})");
        foreach (var col in new[] { "model", "K", "superposed (s)", "K sampled runs (s)", "speedup", "draft ppl", "sampled ppl", "passes", "sampled passes", "distinct drafts" })
            table.AddColumn(col == "model" ? new TableColumn(col) : new TableColumn(col).RightAligned());
        foreach (var f in r.Superposed)
            table.AddRow(Markup.Escape(f.Preset), f.Drafts.ToString(inv), f.SuperposedSeconds.ToString("0.000", inv), f.SampledSeconds.ToString("0.000", inv),
                f.Speedup.ToString("0.00", inv) + "×", Common.F(f.SuperposedPerplexity), Common.F(f.SampledPerplexity),
                f.SuperposedPasses.ToString(inv), f.SampledPasses.ToString(inv), f.DistinctDrafts.ToString("0.0", inv));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine("[grey]Times are the sums over the prompts; perplexities the mean over every sequence of exp(−mean log p) under a normal (not superposed) pass of the model.[/]");
    }

    static void RenderGenerate(GenerateBenchmarkResult r)
    {
        var inv = CultureInfo.InvariantCulture;
        bool speculative = r.Figures.Any(f => f.Method != "greedy");
        bool compared = r.Figures.Any(f => f.Weights != null);
        string input = r.Texts ? $"{r.Figures[0].Prompts} texts of {r.Figures[0].PromptTokens:0.#} tokens on average" : $"{r.InputLength} in";
        string output = r.Texts ? $"up to {r.NewTokens} out, stopping at EOS" : $"{r.NewTokens} out";
        var table = new Table().Border(TableBorder.Rounded)
            .Title($"[bold]generation, {Markup.Escape(input)} → {output}, {(compared ? "" : r.Weights + " weights, ")}{r.KvCache} KV cache[/] (median of {r.Runs}, {r.Threads} threads)");
        var columns = new List<string> { "model", "method", "batch" };
        if (compared) columns.Add("weights");
        columns.AddRange(["first token (s)", "decode tok/s"]);
        if (compared) columns.Add($"× {r.Weights}");
        if (speculative) columns.AddRange(["× greedy", "tok/pass", "accepted"]);
        columns.AddRange(["MB read/step", "bound tok/s", "of bound"]);
        foreach (var col in columns)
            table.AddColumn(col is "model" or "method" or "weights" ? new TableColumn(col) : new TableColumn(col).RightAligned());
        foreach (var f in r.Figures)
        {
            var row = new List<string> { Markup.Escape(f.Preset), Markup.Escape(f.Method), f.Batch.ToString(inv) };
            if (compared) row.Add(f.Weights ?? r.Weights);
            row.AddRange([f.FirstTokenSeconds.ToString("0.000", inv), Common.F(f.DecodeTokensPerSecond)]);
            if (compared) row.Add(f.DecodeRatio is { } x ? x.ToString("0.00", inv) + "×" : "–");
            if (speculative)
            {
                var greedy = r.Figures.FirstOrDefault(g => g.Preset == f.Preset && g.Batch == f.Batch && g.Method == "greedy");
                row.Add(greedy is null || f.Method == "greedy" ? "–" : (f.DecodeTokensPerSecond / greedy.DecodeTokensPerSecond).ToString("0.00", inv) + "×");
                row.Add(f.Method == "greedy" ? "1.00" : f.TokensPerPass.ToString("0.00", inv));
                row.Add(f.AcceptanceRate is { } a ? (a * 100).ToString("0", inv) + "%" : "–");
            }
            row.AddRange([(f.BytesPerStep / 1e6).ToString("0", inv), Common.F(f.BoundTokensPerSecond), f.FractionOfBound is { } q ? (q * 100).ToString("0", inv) + "%" : "–"]);
            table.AddRow(row.ToArray());
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"[grey]Bound = measured read bandwidth ({Common.F(r.Machine.ReadGBPerSecond)} GB/s) ÷ bytes a plain batch-1 step reads (the weights it uses + its caches). Decode tok/s counts every sequence of the batch.[/]");
        if (compared)
            AnsiConsole.MarkupLine($"[grey]Each run timed both weight types, one right after the other (which went first alternated); × {r.Weights} = the median over the runs of the pair's decode-rate ratio.[/]");
        if (r.Superposed.Count > 0) RenderSuperposed(r);
        if (speculative)
            AnsiConsole.MarkupLine($"[grey]Speculative rows draft {r.DraftTokens} tokens per pass; tok/pass = tokens ÷ decoder passes of the model (the first token's included); accepted = drafted tokens the model kept ÷ proposed. Greedy speculative output is the greedy output, so every row of a model generates the same tokens.[/]");
    }
}
