namespace Encore.Training.Lab;

public static partial class LabPlot
{
    /// <summary>
    /// Per state of the machine, the precision and recall of its most precise code (bars), the 0.9 precision level dashed;
    /// the title carries both models' next-token accuracy.
    /// </summary>
    public static void WriteCodebook(string path, CodebookStudyResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<ScottPlot.Bar>();
        for (int i = 0; i < result.StateCodes.Count; i++)
        {
            var s = result.StateCodes[i];
            bars.Add(new ScottPlot.Bar { Position = 3 * i, Value = 100 * s.Precision, FillColor = palette.GetColor(0) });
            bars.Add(new ScottPlot.Bar { Position = 3 * i + 1, Value = 100 * s.Recall, FillColor = palette.GetColor(1) });
        }
        plot.Add.Bars(bars);
        var level = plot.Add.HorizontalLine(100 * result.PrecisionThreshold);
        level.LinePattern = ScottPlot.LinePattern.Dashed;
        level.Color = ScottPlot.Colors.Gray;
        plot.Axes.Bottom.SetTicks(result.StateCodes.Select((_, i) => 3.0 * i + 0.5).ToArray(), result.StateCodes.Select(s => s.Name).ToArray());
        plot.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = "precision of the state's best code", FillColor = palette.GetColor(0) });
        plot.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = "its recall", FillColor = palette.GetColor(1) });
        plot.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = "0.9 precision", LineColor = ScottPlot.Colors.Gray, LineWidth = 1, LinePattern = ScottPlot.LinePattern.Dashed });
        plot.Axes.SetLimits(-1, 3 * result.StateCodes.Count - 1, 0, 105);
        string accuracy = string.Join(", ", result.Models.Select(m => $"{m.Name} {m.Accuracy * 100:0.0}%"));
        plot.Title($"Codebook features, F = {result.Codes}, k = {result.TopK}: {result.StatesIdentified}/{result.States} states with a ≥ 0.9-precision code; next-token acc. {accuracy}");
        plot.XLabel("state (letter, digit)");
        plot.YLabel("%");
        plot.ShowLegend(ScottPlot.Edge.Bottom);
        Save(plot, path, 1200, 560);
    }
}

public static partial class LabPlot
{
    /// <summary>Accuracy on the classes seen so far after each task, one line per sequentially trained model; the joint references dashed.</summary>
    public static void WriteKeyValueBottleneck(string path, KeyValueBottleneckStudyResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var names = result.Models.Select(m => m.Name).Distinct().ToList();
        foreach (var m in result.Models)
        {
            var color = palette.GetColor(names.IndexOf(m.Name));
            if (m.Sequential)
            {
                var xs = m.AfterTask.Select((_, i) => (double)(i + 1)).ToArray();
                var s = plot.Add.Scatter(xs, m.AfterTask.Select(a => 100 * a).ToArray());
                s.Color = color;
                s.LineWidth = 2;
                s.MarkerSize = 7;
                s.LegendText = $"{m.Name}, task by task";
            }
            else
            {
                var h = plot.Add.HorizontalLine(100 * m.Final);
                h.Color = color;
                h.LinePattern = ScottPlot.LinePattern.Dashed;
                h.LegendText = $"{m.Name}, all classes at once";
            }
        }
        plot.Axes.SetLimits(0.8, result.Tasks + 0.2, 0, 105);
        plot.Axes.Bottom.SetTicks([.. Enumerable.Range(1, result.Tasks).Select(i => (double)i)], [.. Enumerable.Range(1, result.Tasks).Select(i => $"after task {i}")]);
        plot.Title($"Class-incremental 2-D Gaussians ({result.Classes} classes, {result.Tasks} tasks): accuracy on the classes seen so far");
        plot.YLabel("test accuracy (%)");
        plot.ShowLegend(ScottPlot.Edge.Right);
        Save(plot, path, 1100, 520);
    }
}
