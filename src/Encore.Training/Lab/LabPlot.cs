using Encore.Formats;
using Encore.Training.Runs;

namespace Encore.Training.Lab;

/// <summary>The studies' PNG figures (ScottPlot), written atomically.</summary>
public static partial class LabPlot
{
    /// <summary>
    /// Mean exact match over the tasks against the test length (bucket upper end, in multiples of L): one line per
    /// encoding, solid for decoder-only models and dashed for encoder–decoders, the training range shaded.
    /// </summary>
    public static void WriteLength(string path, LengthStudyResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var positions = result.Models.Select(m => m.Position).Distinct().ToList();
        var families = result.Models.Select(m => m.Family).Distinct().ToList();
        double maxX = result.Models.Max(m => m.Buckets[^1].UpTo);
        var shade = plot.Add.HorizontalSpan(0, 1);
        shade.FillStyle.Color = ScottPlot.Colors.Gray.WithOpacity(0.15);
        shade.LegendText = "training lengths";
        foreach (var family in families)
            foreach (var position in positions)
            {
                var rows = result.Models.Where(m => m.Family == family && m.Position == position).ToList();
                if (rows.Count == 0) continue;
                var xs = rows[0].Buckets.Select(b => b.UpTo).ToArray();
                var ys = xs.Select((_, i) => 100 * rows.Average(m => m.Buckets[i].ExactMatch)).ToArray();
                var s = plot.Add.Scatter(xs, ys);
                s.Color = palette.GetColor(positions.IndexOf(position));
                s.LineWidth = 2;
                s.MarkerSize = 7;
                s.LinePattern = family == families[0] ? ScottPlot.LinePattern.Solid : ScottPlot.LinePattern.Dashed;
                s.LegendText = families.Count > 1 ? $"{position} ({family})" : position;
            }
        plot.Axes.SetLimits(0, maxX + 0.1, -3, 103);
        plot.Title($"Length generalization: mean exact match over {result.Models.Select(m => m.Task).Distinct().Count()} task(s), trained on 1–L (L = {result.TrainLength})");
        plot.XLabel("test length bucket, upper end (multiples of L)");
        plot.YLabel("exact match (%)");
        plot.ShowLegend(ScottPlot.Edge.Right);
        Save(plot, path, 1000, 560);
    }

    /// <summary>Exact match and token accuracy of each inverse-permutation setup, as grouped bars.</summary>
    public static void WriteInversePermutation(string path, InversePermutationResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<ScottPlot.Bar>();
        for (int i = 0; i < result.Setups.Count; i++)
        {
            var s = result.Setups[i];
            bars.Add(new ScottPlot.Bar { Position = 3 * i, Value = 100 * s.ExactMatch, FillColor = palette.GetColor(0) });
            bars.Add(new ScottPlot.Bar { Position = 3 * i + 1, Value = 100 * s.TokenAccuracy, FillColor = palette.GetColor(1) });
        }
        plot.Add.Bars(bars);
        var target = plot.Add.HorizontalLine(95);
        target.LinePattern = ScottPlot.LinePattern.Dashed;
        target.Color = ScottPlot.Colors.Gray;
        plot.Axes.Bottom.SetTicks(result.Setups.Select((_, i) => 3.0 * i + 0.5).ToArray(), result.Setups.Select(s => s.Setup).ToArray());
        plot.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = "exact match", FillColor = palette.GetColor(0) });
        plot.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = "token accuracy", FillColor = palette.GetColor(1) });
        plot.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = "95% target", LineColor = ScottPlot.Colors.Gray, LineWidth = 1, LinePattern = ScottPlot.LinePattern.Dashed });
        plot.Axes.SetLimits(-1, 3 * result.Setups.Count - 1, 0, 105);
        plot.Title($"Inverse permutation, n = {result.Length}: test accuracy by setup");
        plot.YLabel("%");
        plot.ShowLegend(ScottPlot.Edge.Right);
        Save(plot, path, 1000, 520);
    }

    /// <summary>
    /// Validation ROUGE-L against decode tokens/s (batch 1): one point per split, labelled with the split and its
    /// first-token latency; the lead baseline as a dashed line.
    /// </summary>
    public static void WriteDepthSplit(string path, DepthSplitResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < result.Splits.Count; i++)
        {
            var s = result.Splits[i];
            var color = palette.GetColor(i);
            var point = plot.Add.Scatter(new[] { s.DecodeTokensPerSecond }, new[] { s.RougeL });
            point.Color = color;
            point.MarkerSize = 10;
            point.LegendText = $"{s.Split}: {ModelComparison.Parameters(s.Parameters)}, first token {s.FirstTokenMs.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)} ms";
            var label = plot.Add.Text(s.Split, s.DecodeTokensPerSecond, s.RougeL);
            label.LabelFontColor = color;
            label.OffsetY = -10;
        }
        if (result.Baselines.FirstOrDefault(b => b.Name.StartsWith("lead", StringComparison.Ordinal)) is { } lead && lead.Metrics.TryGetValue("rouge_l", out var leadRouge))
        {
            var line = plot.Add.HorizontalLine(leadRouge);
            line.LinePattern = ScottPlot.LinePattern.Dashed;
            line.Color = ScottPlot.Colors.Gray;
            line.LegendText = $"{lead.Name} baseline";
        }
        plot.Title($"Encoder/decoder splits: quality against decode speed ({result.Steps} steps each)");
        plot.XLabel("decode tokens/s (batch 1)");
        plot.YLabel("validation ROUGE-L");
        plot.ShowLegend(ScottPlot.Edge.Right);
        Save(plot, path, 1100, 520);
    }

    /// <summary>
    /// Normalized attention entropy (H / log of the keys seen) by layer: one line per variant through the layers' means over
    /// heads, each head a dot beside it; the overload (0.9) and collapse (0.1) levels dashed.
    /// </summary>
    public static void WriteEntropy(string path, EntropyStudyResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int n = result.Variants.Count;
        for (int i = 0; i < n; i++)
        {
            var v = result.Variants[i];
            var color = palette.GetColor(i);
            double offset = n == 1 ? 0 : (i - (n - 1) / 2.0) * 0.5 / n;
            var xs = v.Layers.Select((_, l) => l + offset).ToArray();
            var line = plot.Add.Scatter(xs, v.Layers);
            line.Color = color;
            line.LineWidth = 2;
            line.MarkerSize = 0;
            line.LegendText = v.Name;
            var hx = v.Heads.SelectMany((heads, l) => heads.Select(_ => l + offset)).ToArray();
            var hy = v.Heads.SelectMany(h => h).ToArray();
            var dots = plot.Add.ScatterPoints(hx, hy);
            dots.Color = color;
            dots.MarkerSize = 6;
        }
        foreach (var (level, label) in new[] { (EntropyStudy.OverloadLevel, "overload 0.9"), (EntropyStudy.CollapseLevel, "collapse 0.1") })
        {
            var h = plot.Add.HorizontalLine(level);
            h.LinePattern = ScottPlot.LinePattern.Dashed;
            h.Color = ScottPlot.Colors.Gray;
            h.LegendText = label;
        }
        int layers = result.Variants.Count == 0 ? 0 : result.Variants[0].Layers.Length;
        plot.Axes.Bottom.SetTicks([.. Enumerable.Range(0, layers).Select(l => (double)l)], [.. Enumerable.Range(0, layers).Select(l => $"layer {l}")]);
        plot.Axes.SetLimits(-0.5, layers - 0.5, 0, 1.05);
        plot.Title($"Attention entropy by layer ({result.Task}, {result.Steps} steps): lines = mean over heads, dots = heads");
        plot.YLabel("H / log(keys seen), held-out rows");
        plot.ShowLegend(ScottPlot.Edge.Right);
        Save(plot, path, 1100, 560);
    }

    /// <summary>Renders <paramref name="plot"/> and writes the PNG atomically; a failure is one <see cref="IOException"/> naming the file.</summary>
    internal static void Save(ScottPlot.Plot plot, string path, int width, int height)
    {
        try
        {
            var png = plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
            AtomicFile.Write(path, s => s.Write(png));
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or UnauthorizedAccessException or IOException)
        {
            throw new IOException($"{path}: the plot could not be written ({e.GetBaseException().Message})", e);
        }
    }
}
