using Encore.Training.Lab;

namespace Encore.Cli.Commands;

// encore lab codebook: codebook features on a finite-state machine (arXiv 2310.17230).
internal static partial class LabCommand
{
    static Command CreateCodebook()
    {
        var codes = new Option<int?>("--codes") { Description = "Codes per codebook F, 2–4096 (default 512; --quick 128)." };
        var topK = ListOption("--top-k", "Codes summed per position k, one codebook model per value, each below F (default 4,1).");
        var commitment = new Option<float?>("--commitment") { Description = "Commitment β of the codebooks' input gradient, 0–10 (default 0.25; 0: straight-through only)." };
        var length = new Option<int?>("--length") { Description = "States per walk, 2–200 (default 24)." };
        var scratch = new Option<bool>("--from-scratch") { Description = "Train the codebook model from scratch instead of fine-tuning the trained model without codebooks." };
        return Study("codebook", "Codebook features (arXiv 2310.17230): a decoder-only model with a codebook after every attention and feed-forward output against the same model without, on walks of a 20-state machine; next-token accuracy, and the codes that pick out each state.",
            [codes, topK, commitment, length, scratch],
            (parse, s) =>
            {
                var d = s.Quick ? CodebookStudyOptions.Quick(s.Seed) : CodebookStudyOptions.Full(s.Seed);
                return (d with
                {
                    Codes = parse.GetValue(codes) ?? d.Codes,
                    TopKs = List(parse, topK, x => int.TryParse(x, out int k) ? k : throw new ArgumentException($"--top-k: '{x}' is not a whole number")) ?? d.TopKs,
                    Commitment = parse.GetValue(commitment) ?? d.Commitment,
                    Length = parse.GetValue(length) ?? d.Length,
                    FromScratch = parse.GetValue(scratch) || d.FromScratch,
                    Training = Training(d.Training, s),
                }).Validate();
            },
            (o, progress, ct) => CodebookStudy.Run(o, progress, ct),
            (path, r) => LabPlot.WriteCodebook(path, r),
            r => r.ToMarkdown(),
            RenderCodebook);
    }

    static void RenderCodebook(CodebookStudyResult r)
    {
        var ci = CultureInfo.InvariantCulture;
        AnsiConsole.MarkupLine($"[bold]encore lab codebook[/]  {r.States}-state machine, walks of {r.Length} states, {r.Steps} steps of {r.BatchSize} walks per model, " +
            $"F = {r.Codes}, β = {r.Commitment.ToString("G3", ci)}{(r.FromScratch ? ", from scratch" : ", fine-tuned")}, seed {r.Seed}, {Common.Clock(TimeSpan.FromSeconds(r.Seconds))} in all");
        var t = NewTable($"[bold]held-out walks (best possible next-token accuracy {(r.Oracle * 100).ToString("0.0", ci)}%; a state is identified by a code of precision ≥ {r.PrecisionThreshold.ToString("0.##", ci)} firing ≥ {r.MinFirings} times)[/]",
            ["model"], ["params", "train s", "final loss", "next-token acc.", "legal next token", "states identified", "live codes"]);
        foreach (var m in r.Models)
            t.AddRow(Markup.Escape(m.Name), $"{m.Parameters / 1000.0:0}k", m.TrainSeconds.ToString("0", ci), m.FinalLoss.ToString("0.000", ci),
                (m.Accuracy * 100).ToString("0.0", ci) + "%", (m.Legal * 100).ToString("0.0", ci) + "%",
                m.TopK == 0 ? "–" : $"{m.StatesIdentified}/{r.States}", m.TopK == 0 ? "–" : string.Join(" ", m.Usage.Select(u => u.Live.ToString(ci))));
        AnsiConsole.Write(t);
        var coded = r.Models.Where(m => m.TopK > 0).ToList();
        if (coded.Count > 0)
        {
            var s = NewTable("[bold]per state, its most precise code: precision / recall (codebook #code)[/]", ["state"], ["positions", .. coded.Select(m => $"k = {m.TopK}")]);
            for (int i = 0; i < r.States; i++)
                s.AddRow([Markup.Escape(coded[0].StateCodes[i].Name), coded[0].StateCodes[i].Positions.ToString(ci),
                    .. coded.Select(m => m.StateCodes[i] is { Codebook: { } cb } c ? Markup.Escape($"{Percent(c.Precision)} / {Percent(c.Recall)} ({CodebookStudyResult.Short(cb)} #{c.Code})") : "–")]);
            AnsiConsole.Write(s);
        }
        AnsiConsole.MarkupLine($"[bold]Claim[/] (arXiv 2310.17230): {Markup.Escape(r.Claim)}");
        foreach (var o in r.Observed) AnsiConsole.MarkupLine($"[bold]Observed[/]: {Markup.Escape(o)}");
    }
}
