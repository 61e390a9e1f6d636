namespace Encore.Training.Lab;

public static partial class LabPlot
{
    /// <summary>
    /// Per state of the machine, the precision of its most precise code in each codebook model (grouped bars, one colour per k), the
    /// 0.9 level dashed; the legend carries each model's next-token accuracy against the model without codebooks.
    /// </summary>
    public static void WriteCodebook(string path, CodebookStudyResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var coded = result.Models.Where(m => m.TopK > 0).ToList();
        int group = coded.Count + 1;
        var bars = new List<ScottPlot.Bar>();
        for (int j = 0; j < coded.Count; j++)
            for (int i = 0; i < coded[j].StateCodes.Count; i++)
                bars.Add(new ScottPlot.Bar { Position = group * i + j, Value = 100 * coded[j].StateCodes[i].Precision, FillColor = palette.GetColor(j) });
        plot.Add.Bars(bars);
        var level = plot.Add.HorizontalLine(100 * result.PrecisionThreshold);
        level.LinePattern = ScottPlot.LinePattern.Dashed;
        level.Color = ScottPlot.Colors.Gray;
        var names = coded.Count == 0 ? [] : coded[0].StateCodes.Select(s => s.Name).ToArray();
        plot.Axes.Bottom.SetTicks([.. names.Select((_, i) => group * i + (coded.Count - 1) / 2.0)], names);
        var plain = result.Models[0];
        for (int j = 0; j < coded.Count; j++)
            plot.Legend.ManualItems.Add(new ScottPlot.LegendItem
            {
                LabelText = $"k = {coded[j].TopK}: {coded[j].StatesIdentified}/{result.States} states, acc. {coded[j].Accuracy * 100:0.0}% (none: {plain.Accuracy * 100:0.0}%)",
                FillColor = palette.GetColor(j),
            });
        plot.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = $"{result.PrecisionThreshold:0.##} precision", LineColor = ScottPlot.Colors.Gray, LineWidth = 1, LinePattern = ScottPlot.LinePattern.Dashed });
        plot.Axes.SetLimits(-1, group * Math.Max(1, names.Length) - 1, 0, 105);
        plot.Title($"Codebook features, F = {result.Codes}: per state, the precision of its most precise code");
        plot.XLabel("state (letter, digit)");
        plot.YLabel("precision at the state's digit positions (%)");
        plot.ShowLegend(ScottPlot.Edge.Bottom);
        Save(plot, path, 1200, 600);
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
