using Encore.Training.Lab;

namespace Encore.Cli.Commands;

// encore lab codebook: codebook features on a finite-state machine (arXiv 2310.17230).
internal static partial class LabCommand
{
    static Command CreateCodebook()
    {
        var codes = new Option<int?>("--codes") { Description = "Codes per codebook F, 2–4096 (default 512; --quick 128)." };
        var topK = new Option<int?>("--top-k") { Description = "Codes summed per position k, below F (default 4)." };
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
                    TopK = parse.GetValue(topK) ?? d.TopK,
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
            $"F = {r.Codes}, k = {r.TopK}, β = {r.Commitment.ToString("G3", ci)}{(r.FromScratch ? ", from scratch" : ", fine-tuned")}, seed {r.Seed}, {Common.Clock(TimeSpan.FromSeconds(r.Seconds))} in all");
        var t = NewTable($"[bold]held-out walks (best possible next-token accuracy {(r.Oracle * 100).ToString("0.0", ci)}%)[/]", ["model"],
            ["params", "train s", "final loss", "next-token acc.", "legal next token"]);
        foreach (var m in r.Models)
            t.AddRow(Markup.Escape(m.Name), $"{m.Parameters / 1000.0:0}k", m.TrainSeconds.ToString("0", ci), m.FinalLoss.ToString("0.000", ci),
                (m.Accuracy * 100).ToString("0.0", ci) + "%", (m.Legal * 100).ToString("0.0", ci) + "%");
        AnsiConsole.Write(t);
        var s = NewTable($"[bold]per state, the most precise code at its digit positions (≥ {r.MinFirings} firings): {r.StatesIdentified} of {r.States} at ≥ {r.PrecisionThreshold.ToString("0.##", ci)}[/]",
            ["state", "codebook"], ["positions", "code", "firings", "precision", "recall"]);
        foreach (var x in r.StateCodes)
            s.AddRow(Markup.Escape(x.Name), Markup.Escape(x.Codebook ?? "–"), x.Positions.ToString(ci), x.Code < 0 ? "–" : x.Code.ToString(ci), x.Firings.ToString(ci), Percent(x.Precision), Percent(x.Recall));
        AnsiConsole.Write(s);
        AnsiConsole.MarkupLine("Live codes: " + Markup.Escape(string.Join(", ", r.Usage.Select(u => $"{u.Codebook} {u.Live}/{u.Size}"))));
        AnsiConsole.MarkupLine($"[bold]Claim[/] (arXiv 2310.17230): {Markup.Escape(r.Claim)}");
        foreach (var o in r.Observed) AnsiConsole.MarkupLine($"[bold]Observed[/]: {Markup.Escape(o)}");
    }
}
