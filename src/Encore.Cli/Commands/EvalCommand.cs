using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Commands;

/// <summary><c>encore eval</c>: loss, perplexity and generation metrics of a checkpoint on a JSONL file, beside trivial baselines.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var d = new EvaluationOptions();
        var model = new Option<string>("--model", "-m") { Description = "Checkpoint directory, or a training run folder (its newest checkpoint).", Required = true };
        var data = new Option<string>("--data") { Description = "JSONL {\"source\",\"target\"} pairs (.jsonl or .jsonl.gz).", Required = true };
        var examples = new Option<int>("--examples") { Description = "Examples evaluated from the start of the file; 0: all.", DefaultValueFactory = _ => d.Examples };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Tokens generated per example (greedy).", DefaultValueFactory = _ => d.MaxNewTokens };
        var batch = new Option<int>("--batch-size") { Description = "Prompts decoded together.", DefaultValueFactory = _ => d.BatchSize };
        var samples = new Option<int>("--samples") { Description = "Examples printed with source, reference and output.", DefaultValueFactory = _ => d.Samples };
        var lossOnly = new Option<bool>("--loss-only") { Description = "Report the loss alone (no generation)." };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object." };
        var threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var cmd = new Command("eval", "Score a checkpoint on source → target pairs: loss, perplexity, exact match, ROUGE-1/2/L, chrF and BLEU, beside the lead and majority baselines.")
        {
            model, data, examples, maxNew, batch, samples, lossOnly, json, threads,
        };
        cmd.SetAction(parse =>
        {
            Tensors.Threading.KernelPool.Default = new Tensors.Threading.KernelPool(parse.GetValue(threads));
            var options = d with
            {
                Examples = parse.GetValue(examples), MaxNewTokens = parse.GetValue(maxNew), BatchSize = parse.GetValue(batch),
                Samples = parse.GetValue(samples), LossOnly = parse.GetValue(lossOnly),
            };
            options.Validate();
            var dir = CheckpointDirectory.Resolve(parse.GetValue(model)!);
            var path = parse.GetValue(data)!;
            var pairs = DatasetReader.ReadPairs(path);
            var tokenizer = TokenizerLoader.FromDirectory(dir);
            using var m = Checkpoint.Load(dir);
            var result = Evaluation.Run(m, tokenizer, pairs, options);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new { checkpoint = dir, data = path, result }, Common.Json));
                return 0;
            }
            Render(dir, path, result);
            return 0;
        });
        return cmd;
    }

    static readonly string[] Columns = ["rouge_l", "rouge1", "rouge2", "chrf", "bleu", "exact_match"];

    static void Render(string dir, string data, EvaluationResult r)
    {
        AnsiConsole.MarkupLine($"[bold]encore eval[/] {Markup.Escape(dir)} on {Markup.Escape(data)}: {r.Examples} examples, {r.Seconds:0.0} s");
        AnsiConsole.MarkupLine($"loss {r.Loss:0.000} per target token, perplexity {r.Perplexity:0.00}");
        if (r.Metrics.Count == 0) return;
        var table = new Table().AddColumn("");
        foreach (var c in Columns) table.AddColumn(new TableColumn(c.Replace('_', '-').Replace("exact-match", "exact")).RightAligned());
        void Row(string name, IReadOnlyDictionary<string, double> m) => table.AddRow([name, .. Columns.Select(c => m.TryGetValue(c, out var v) ? v.ToString("0.0") : "")]);
        Row("[bold]model[/]", r.Metrics);
        foreach (var b in r.Baselines) Row(Markup.Escape($"{b.Name} ({b.Description})"), b.Metrics);
        AnsiConsole.Write(table);
        foreach (var s in r.Samples)
        {
            AnsiConsole.MarkupLine($"[grey]source:[/]    {Markup.Escape(Shorten(s.Source, 160))}");
            AnsiConsole.MarkupLine($"[grey]reference:[/] {Markup.Escape(s.Reference)}");
            AnsiConsole.MarkupLine($"[grey]output:[/]    [bold]{Markup.Escape(s.Output)}[/]");
        }
    }

    internal static string Shorten(string s, int max) => s.Length <= max ? s : s[..(max - 1)] + "…";
}
