using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Encore.Training.Data;
using Encore.Training.Runs;
using Spectre.Console;

namespace Encore.Cli.Commands;

/// <summary><c>encore quickstart</c>: trains and compares a small encoder–decoder and decoder-only model on the bundled task.</summary>
internal static class QuickstartCommand
{
    public static Command Create()
    {
        var d = new QuickstartOptions();
        var output = new Option<string>("--out") { Description = $"Where both checkpoints go.", DefaultValueFactory = _ => d.Output };
        var steps = new Option<int>("--steps") { Description = $"Training steps per model, the same for both.", DefaultValueFactory = _ => d.Steps };
        var lr = new Option<double>("--lr") { Description = $"Peak learning rate.", DefaultValueFactory = _ => d.LearningRate };
        var target = new Option<string>("--target") { Description = $"What the models learn to write from a package description: section or synopsis.", DefaultValueFactory = _ => d.Target };
        var trainExamples = new Option<int>("--train-examples") { Description = $"Training examples drawn from data/debian.", DefaultValueFactory = _ => d.TrainExamples };
        var evalExamples = new Option<int>("--eval-examples") { Description = $"Validation examples scored.", DefaultValueFactory = _ => d.EvalExamples };
        var packageName = new Option<bool>("--package-name") { Description = $"Start each source with the package's name, \"name: description\" (--package-name false: the description alone).", DefaultValueFactory = _ => d.PackageName };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object." };
        var threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var cmd = new Command("quickstart", "Train a small encoder–decoder and a decoder-only model of equal size on Debian packages (name and description → archive section) and compare them (≈4 minutes on 2 cores).")
        {
            output, steps, lr, target, trainExamples, evalExamples, packageName, json, threads,
        };
        cmd.SetAction(parse =>
        {
            Tensors.Threading.KernelPool.Default = new Tensors.Threading.KernelPool(Common.Threads(parse, threads));
            var o = d with
            {
                Output = parse.GetValue(output)!, Steps = parse.GetValue(steps), LearningRate = parse.GetValue(lr),
                Target = parse.GetValue(target) switch
                {
                    "section" => "section",
                    "synopsis" => "target",
                    var other => throw new ArgumentException($"--target: '{other}' is not section or synopsis"),
                },
                TrainExamples = parse.GetValue(trainExamples), EvalExamples = parse.GetValue(evalExamples),
                PackageName = parse.GetValue(packageName),
            };
            if (o.Steps < 1) throw new ArgumentException($"--steps must be positive, got {o.Steps}");
            if (o.TrainExamples < 1 || o.EvalExamples < 1) throw new ArgumentException("--train-examples and --eval-examples must be positive");
            bool asJson = parse.GetValue(json);
            QuickstartResult result;
            if (asJson) result = Quickstart.Run(o);
            else
            {
                AnsiConsole.MarkupLine("[bold]encore quickstart[/]: an encoder–decoder and a decoder-only model of the same size, trained on the same long-input task with the same budget.");
                result = null!;
                AnsiConsole.Progress().AutoClear(true)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        var tasks = new Dictionary<string, ProgressTask>();
                        result = Quickstart.Run(o,
                            line => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}…[/]"),
                            (name, r) =>
                            {
                                if (!tasks.TryGetValue(name, out var t)) tasks[name] = t = ctx.AddTask(name, maxValue: r.MaxSteps);
                                t.Value = r.Step;
                                t.Description = $"{name}: step {r.Step}/{r.MaxSteps}  loss {r.Loss:0.000}  {r.TokensPerSecond:0} tok/s";
                            });
                    });
            }
            if (asJson)
            {
                Console.WriteLine(JsonSerializer.Serialize(result, Common.Json));
                return 0;
            }
            Render(result);
            return 0;
        });
        return cmd;
    }

    static void Render(QuickstartResult r)
    {
        string F(double x, string f = "0.0") => x.ToString(f, CultureInfo.InvariantCulture);
        var ed = r.Models[0];
        var dec = r.Models[1];
        var t = new Table().Border(TableBorder.Rounded).Title($"[bold]Debian {(r.PackageName ? "package name and description" : "description")} → {(r.Target == "target" ? "synopsis" : Markup.Escape(r.Target))}[/]: {r.TrainExamples} training examples (mean source {F(r.MeanSourceTokens, "0")} tokens), {r.ValidationExamples} validation");
        t.AddColumn("");
        t.AddColumn(new TableColumn("encoder–decoder").RightAligned());
        t.AddColumn(new TableColumn("decoder-only").RightAligned());
        t.AddColumn(new TableColumn("enc–dec ÷ dec").RightAligned());
        void Row(string name, double a, double b, string f = "0.0", string unit = "") =>
            t.AddRow(name, F(a, f) + unit, F(b, f) + unit, b == 0 ? "–" : F(a / b, "0.00") + "×");
        t.AddRow("layers (enc + dec)", $"{ed.EncoderLayers} + {ed.DecoderLayers}", $"0 + {dec.DecoderLayers}", "");
        Row("parameters (M)", ed.Parameters / 1e6, dec.Parameters / 1e6, "0.000");
        Row("training tokens/s", ed.TrainTokensPerSecond, dec.TrainTokensPerSecond, "0");
        Row("validation loss (nats/token)", ed.ValidationLoss, dec.ValidationLoss, "0.000");
        Row("exact match (%)", ed.ExactMatch, dec.ExactMatch);
        t.AddRow("majority answer's exact match (%)", F(r.MajorityExactMatch), F(r.MajorityExactMatch), $"\"{Markup.Escape(r.MajorityAnswer)}\"");
        Row("token F1 (%)", ed.TokenF1, dec.TokenF1);
        Row("first-token latency (ms)", ed.FirstTokenMs, dec.FirstTokenMs, "0.0");
        Row("decode tokens/s (batch 1)", ed.DecodeTokensPerSecond, dec.DecodeTokensPerSecond, "0");
        Row("KV cache per request (KiB)", ed.CacheBytesPerRequest / 1024.0, dec.CacheBytesPerRequest / 1024.0, "0");
        AnsiConsole.Write(t);
        AnsiConsole.MarkupLine($"[grey]batches: length-bucketed, padding {r.BucketedPadding:P1} (fixed-size batches would pad {r.NaivePadding:P1}). Latency and decode speed: greedy, batch 1, 16 new tokens, median over 10 validation prompts. Total {Common.Clock(TimeSpan.FromSeconds(r.TotalSeconds))}.[/]");
        var s = new Table().Border(TableBorder.Rounded).Title("[bold]samples[/]");
        s.AddColumn("source");
        s.AddColumn("answer");
        s.AddColumn("encoder–decoder");
        s.AddColumn("decoder-only");
        foreach (var x in r.Samples) s.AddRow(Markup.Escape(x.Source), Markup.Escape(x.Reference), Markup.Escape(x.EncoderDecoder), Markup.Escape(x.DecoderOnly));
        AnsiConsole.Write(s);
        AnsiConsole.MarkupLine("Try them:");
        var encore = Common.SelfCommand;
        var validation = Path.Combine("data", "debian", "validation.jsonl.gz");
        if (!File.Exists(validation) && BundledData.FindDataDirectory() is { } data) validation = Path.Combine(data, "debian", "validation.jsonl.gz");
        foreach (var m in r.Models)
            AnsiConsole.MarkupLine($"  [bold]{encore} generate --model {Markup.Escape(m.Checkpoint)} --prompt \"{(r.PackageName ? "python3-httpx: " : "")}A next generation HTTP client for Python 3, with sync and async APIs.\"[/]");
        AnsiConsole.MarkupLine($"  [bold]{encore} eval --model {Markup.Escape(r.Models[0].Checkpoint)} --data {Markup.Escape(validation)} --examples {r.ValidationExamples}{(r.PackageName ? " --source-field package --source-field source" : "")} --target-field {r.Target}[/]");
    }
}
