using Encore.Training.Lab;

namespace Encore.Cli.Commands;

// encore lab inverse-permutation: inverse permutation learning by architecture (arXiv 2509.24125).
internal static partial class LabCommand
{
    static Command CreateInversePermutation()
    {
        var setups = ListOption("--setups", "Setups: at-input, encdec, scratch, generating (default: all four; --quick: the first three).");
        var position = new Option<string?>("--position") { Description = "Position encoding of every model: nope, learned, sinusoidal, t5, alibi, rope, comrope, urpe (default: sinusoidal)." };
        var length = new Option<int?>("--length") { Description = "n, the length of π and of the strings, 2–10 (default 8; --quick 6)." };
        return Study("inverse-permutation", "Inverse permutation learning (arXiv 2509.24125): given π and π applied to a string, output the string; decoder-only read out at the input positions, encoder–decoder, decoder-only with scratch tokens, and decoder-only generating after the input.",
            [length, setups, position],
            (parse, s) =>
            {
                var d = s.Quick ? InversePermutationOptions.Quick(s.Seed) : InversePermutationOptions.Full(s.Seed);
                return (d with
                {
                    Length = parse.GetValue(length) ?? d.Length,
                    Setups = List(parse, setups, x => InversePermutationStudy.ParseSetup(x)) ?? d.Setups,
                    Position = parse.GetValue(position) is { } p ? LabNames.ParsePosition(p, "--position") : d.Position,
                    Training = Training(d.Training, s),
                }).Validate();
            },
            (o, progress, ct) => InversePermutationStudy.Run(o, progress, ct),
            (path, r) => LabPlot.WriteInversePermutation(path, r),
            r => r.ToMarkdown(),
            RenderInversePermutation);
    }

    static void RenderInversePermutation(InversePermutationResult r)
    {
        AnsiConsole.MarkupLine($"[bold]encore lab inverse-permutation[/]  n = {r.Length}, {Markup.Escape(r.Position)} positions, {r.Steps} steps of {r.BatchSize} examples per model, " +
            $"{r.EvalExamples} test examples, seed {r.Seed}, {Common.Clock(TimeSpan.FromSeconds(r.Seconds))} in all");
        var t = NewTable("[bold]test accuracy by setup[/]", ["setup", "format"], ["params", "train s", "loss", "exact match", "token accuracy", "expected"]);
        foreach (var s in r.Setups)
            t.AddRow(Markup.Escape(s.Setup), Markup.Escape(s.Format), $"{s.Parameters / 1000.0:0}k", s.TrainSeconds.ToString("0", CultureInfo.InvariantCulture),
                s.FinalLoss.ToString("0.000", CultureInfo.InvariantCulture), Percent(s.ExactMatch), Percent(s.TokenAccuracy), Markup.Escape(s.Expected));
        AnsiConsole.Write(t);
        AnsiConsole.MarkupLine($"[bold]Claim[/] (arXiv 2509.24125): {Markup.Escape(r.Claim)}");
        foreach (var o in r.Observed) AnsiConsole.MarkupLine($"[bold]Observed[/]: {Markup.Escape(o)}");
    }
}
