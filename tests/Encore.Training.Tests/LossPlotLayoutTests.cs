using Encore.Training.Trainer;

namespace Encore.Training.Tests;

/// <summary>The loss plot's layout: the legend outside the data area, whole-number step ticks.</summary>
public sealed class LossPlotLayoutTests
{
    [Fact]
    public void AShortRunGetsIntegerStepTicksAndTheLegendBesideTheData()
    {
        var train = Enumerable.Range(1, 5).Select(i => ((long)i, 3.0 / i)).ToList();
        var plot = LossPlot.Build(train, [(5L, 0.9)], "loss");
        plot.Axes.SetLimits(1, 5, 0, 3);
        // Ticks are generated when drawn; at this width, 1 to 5 would get half steps (1.5, 2.5, …) by default.
        plot.GetImageBytes(800, 500, ScottPlot.ImageFormat.Png);
        var ticks = plot.Axes.Bottom.TickGenerator.Ticks;
        Assert.NotEmpty(ticks);
        Assert.All(ticks.Where(t => t.IsMajor), t => Assert.Equal(Math.Round(t.Position), t.Position));
        // ShowLegend(Edge) hides the legend drawn inside the data area and puts a panel on the edge.
        Assert.False(plot.Legend.IsVisible);
        Assert.Contains(plot.Axes.GetPanels(), p => p.GetType().Name.Contains("Legend", StringComparison.Ordinal));
    }
}
