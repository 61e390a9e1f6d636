namespace Encore.Training.Trainer;

/// <summary>The loss curve as a PNG (ScottPlot): training loss per step and, when present, validation loss.</summary>
public static class LossPlot
{
    /// <summary>Writes the plot to <paramref name="path"/> atomically.</summary>
    public static void Write(string path, IReadOnlyList<(long Step, double Loss)> train, IReadOnlyList<(long Step, double Loss)> validation, string title)
    {
        var png = Build(train, validation, title).GetImageBytes(800, 500, ScottPlot.ImageFormat.Png);
        Encore.Formats.AtomicFile.Write(path, s => s.Write(png));
    }

    /// <summary>The plot <see cref="Write"/> draws.</summary>
    internal static ScottPlot.Plot Build(IReadOnlyList<(long Step, double Loss)> train, IReadOnlyList<(long Step, double Loss)> validation, string title)
    {
        var plot = new ScottPlot.Plot();
        if (train.Count > 0)
        {
            var s = plot.Add.Scatter(train.Select(p => (double)p.Step).ToArray(), train.Select(p => p.Loss).ToArray());
            s.LegendText = "train";
            s.MarkerSize = 0;
        }
        if (validation.Count > 0)
        {
            var v = plot.Add.Scatter(validation.Select(p => (double)p.Step).ToArray(), validation.Select(p => p.Loss).ToArray());
            v.LegendText = "validation";
        }
        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel("cross-entropy (nats/token)");
        Layout(plot);
        return plot;
    }

    /// <summary>
    /// What every loss plot shares: the legend in a panel on the right edge, outside the data area where it
    /// would hide the curves' start, and whole-number ticks on the x axis (steps and tokens are counts; a
    /// 5-step run otherwise gets ticks at 1.5, 2.5, …).
    /// </summary>
    internal static void Layout(ScottPlot.Plot plot)
    {
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.ShowLegend(ScottPlot.Edge.Right);
    }
}
