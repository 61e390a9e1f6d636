// The routing study's markdown table and its figure (ScottPlot), from a RoutingStudyResult.
using System.Globalization;

namespace Encore.Training.Runs;

/// <summary>The study's table and figure.</summary>
public static class RoutingReport
{
    /// <summary>The readable name of a method key.</summary>
    public static string Name(string method) => method switch
    {
        "energy-first" => "energy, first step",
        "energy-mean" => "energy, mean over tokens",
        "maxprob-first" => "max-softmax, first step",
        "maxprob-mean" => "max-softmax, mean over tokens",
        "random" => "random (expectation)",
        "oracle" => "oracle (per-example best first)",
        _ => method,
    };

    /// <summary>The result as GitHub markdown: the bounds, the calibrated thresholds applied to the scored examples, the claim.</summary>
    public static string ToMarkdown(RoutingStudyResult r)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new System.Text.StringBuilder();
        sb.Append(string.Create(inv, $"Swift {r.Swift} ({ModelComparison.Parameters(r.SwiftParameters)}), super {r.Super} ({ModelComparison.Parameters(r.SuperParameters)}); "));
        sb.Append(string.Create(inv, $"{r.Examples} scored examples of {r.Data}, thresholds calibrated on {r.CalibrationExamples} others of {r.CalibrationData}; greedy, up to {r.MaxNewTokens} tokens, energy at T = {r.Temperature}.\n"));
        sb.Append(string.Create(inv, $"Batch-1 latency, medians over the scored examples, the two models interleaved: swift {r.SwiftMedianMs:0.0} ms (first step {r.SwiftScoreMedianMs:0.0} ms), super {r.SuperMedianMs:0.0} ms; load average (1/5/15 min) {r.LoadBefore ?? "?"} before, {r.LoadAfter ?? "?"} after.\n\n"));
        sb.Append(string.Create(inv, $"| router | target | threshold | routed | {r.Metric} | ms/example |\n"));
        sb.Append("|---|---|---:|---:|---:|---:|\n");
        sb.Append(string.Create(inv, $"| all swift | – | – | 0% | {r.SwiftQuality:0.00} | {r.Curves[0].MsPerExample[0]:0.0} |\n"));
        var random = r.Curves.Single(c => c.Method == "random");
        sb.Append(string.Create(inv, $"| all super | – | – | 100% | {r.SuperQuality:0.00} | {random.MsPerExample[^1]:0.0} |\n"));
        foreach (var p in r.Calibrated.Concat(r.ReachSuper).OrderBy(p => RoutingStudy.Methods.ToList().IndexOf(p.Method)))
            sb.Append(string.Create(inv, $"| {Name(p.Method)} | {p.Target} | {(p.Threshold is { } t ? t.ToString("0.####", inv) : "–")} | {p.Routed * 100:0.0}% | {p.Quality:0.00} | {p.MsPerExample:0.0} |\n"));
        sb.Append(string.Create(inv, $"\nRouted fraction at which each router reaches the super model's {r.Metric} on the scored examples (ranking alone, no threshold):\n\n"));
        sb.Append(string.Create(inv, $"| router | routed to reach super | mean {r.Metric} over all fractions |\n"));
        sb.Append("|---|---:|---:|\n");
        foreach (var c in r.Curves)
            sb.Append(string.Create(inv, $"| {Name(c.Method)} | {(r.FractionForSuperQuality[c.Method] is { } f ? (f * 100).ToString("0.0", inv) + "%" : "not reached")} | {c.Quality.Average():0.00} |\n"));
        sb.Append(string.Create(inv, $"\nRouters compared on the same examples: difference of mean {r.Metric} over all routed fractions, with a 95% interval from {r.Comparisons.FirstOrDefault()?.Resamples ?? 0} paired bootstrap resamples of the scored examples:\n\n"));
        sb.Append("| router | against | difference | 95% interval |\n|---|---|---:|---:|\n");
        foreach (var d in r.Comparisons)
            sb.Append(string.Create(inv, $"| {Name(d.Method)} | {Name(d.Baseline)} | {d.Difference:+0.00;-0.00;0.00} | [{d.Low:+0.00;-0.00;0.00}, {d.High:+0.00;-0.00;0.00}] |\n"));
        sb.Append("\n**Claim**: ").Append(r.Claim).Append(".\n");
        foreach (var o in r.Observed) sb.Append("\n**Observed**: ").Append(o).Append(".\n");
        return sb.ToString();
    }

    /// <summary>The metric against the routed fraction, one line per method, the two models' own scores as dashed lines; written atomically.</summary>
    public static void WritePlot(string path, RoutingStudyResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < r.Curves.Count; i++)
        {
            var c = r.Curves[i];
            var s = plot.Add.Scatter(c.Routed.Select(x => 100 * x).ToArray(), c.Quality);
            s.Color = palette.GetColor(i);
            s.LineWidth = c.Method.StartsWith("energy", StringComparison.Ordinal) ? 2.5f : 1.5f;
            s.MarkerSize = 0;
            s.LinePattern = c.Method is "random" or "oracle" ? ScottPlot.LinePattern.Dotted : ScottPlot.LinePattern.Solid;
            s.LegendText = Name(c.Method);
        }
        foreach (var (q, label, color) in new[] { (r.SwiftQuality, $"all swift ({r.Swift})", ScottPlot.Colors.Gray), (r.SuperQuality, $"all super ({r.Super})", ScottPlot.Colors.Black) })
        {
            var line = plot.Add.HorizontalLine(q);
            line.LinePattern = ScottPlot.LinePattern.Dashed;
            line.Color = color;
            line.LegendText = label;
        }
        plot.Title($"Swift/super routing: {r.Swift} → {r.Super}, {r.Examples} examples");
        plot.XLabel("inputs routed to the super model (%)");
        plot.YLabel(r.Metric);
        plot.ShowLegend(ScottPlot.Edge.Right);
        Lab.LabPlot.Save(plot, path, 1000, 560);
    }
}
