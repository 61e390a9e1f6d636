using Encore.Training.Metrics;

namespace Encore.Training.Trainer;

/// <summary>
/// Attention entropy over training as a PNG (ScottPlot): for every attention layer, the mean over its heads of the
/// normalized entropy (H / log of the keys each row sees), with the range of its heads shaded.
/// </summary>
public static class AttentionEntropyPlot
{
    /// <summary>Writes the plot to <paramref name="path"/> atomically.</summary>
    public static void Write(string path, IReadOnlyList<(long Step, IReadOnlyList<AttentionEntropyLayer> Layers)> curve, string title)
    {
        var png = Build(curve, title).GetImageBytes(900, 520, ScottPlot.ImageFormat.Png);
        Encore.Formats.AtomicFile.Write(path, s => s.Write(png));
    }

    internal static ScottPlot.Plot Build(IReadOnlyList<(long Step, IReadOnlyList<AttentionEntropyLayer> Layers)> curve, string title)
    {
        ArgumentNullException.ThrowIfNull(curve);
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int layers = curve.Count == 0 ? 0 : curve[0].Layers.Count;
        var steps = curve.Select(c => (double)c.Step).ToArray();
        for (int l = 0; l < layers; l++)
        {
            var color = palette.GetColor(l);
            if (steps.Length > 1)
            {
                var lo = curve.Select(c => c.Layers[l].Normalized.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Min()).ToArray();
                var hi = curve.Select(c => c.Layers[l].Normalized.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max()).ToArray();
                var band = plot.Add.FillY(steps, lo, hi);
                band.FillColor = color.WithOpacity(0.12);
                band.LineWidth = 0;
            }
            var mean = plot.Add.Scatter(steps, curve.Select(c => c.Layers[l].MeanNormalized).ToArray());
            mean.Color = color;
            mean.LineWidth = 2;
            mean.MarkerSize = steps.Length > 1 ? 4 : 8;
            mean.LegendText = curve[0].Layers[l].Scope;
        }
        plot.Axes.SetLimitsY(0, 1.05);
        plot.Title($"{title}: mean over heads, band = the heads' range");
        plot.XLabel("step");
        plot.YLabel("H / log(keys seen)");
        LossPlot.Layout(plot);
        return plot;
    }
}
