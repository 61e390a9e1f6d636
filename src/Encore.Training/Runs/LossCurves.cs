using System.Globalization;
using System.Text.Json;
using Encore.Formats;

namespace Encore.Training.Runs;

/// <summary>One point of a loss curve: the optimizer step, the training tokens seen by then (null when the log has none) and the loss.</summary>
public readonly record struct LossPoint(long Step, long? Tokens, double Loss);

/// <summary>
/// A run's loss curves as its <c>metrics.jsonl</c> holds them (see <see cref="Trainer.Trainer"/>): a line per
/// step with <c>loss</c> and <c>tokens</c>, and a line per evaluation with <c>eval_loss</c>, placed at the
/// tokens of the step it follows.
/// </summary>
/// <param name="Name">The curve's label.</param>
/// <param name="Train">Training loss per step, in step order.</param>
/// <param name="Validation">Validation loss per evaluation, in step order.</param>
public sealed record LossCurve(string Name, IReadOnlyList<LossPoint> Train, IReadOnlyList<LossPoint> Validation)
{
    /// <summary>Whether every point has a token count, so the curve can be drawn against training tokens.</summary>
    public bool HasTokens => Train.All(p => p.Tokens.HasValue) && Validation.All(p => p.Tokens.HasValue);

    /// <summary>
    /// Reads <paramref name="metricsPath"/>. A line that is not a JSON object with a step (one cut by a
    /// kill) and a non-finite loss (written as "NaN") are skipped; a step logged twice keeps its last
    /// line, as a resumed run rewrites the steps after its checkpoint.
    /// </summary>
    public static LossCurve Read(string name, string metricsPath)
    {
        var train = new SortedDictionary<long, (long? Tokens, double Loss)>();
        var validation = new SortedDictionary<long, double>();
        foreach (var line in File.ReadLines(metricsPath))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var d = JsonDocument.Parse(line);
                var r = d.RootElement;
                if (r.ValueKind != JsonValueKind.Object || !r.TryGetProperty("step", out var s) || !s.TryGetInt64(out long step)) continue;
                long? tokens = r.TryGetProperty("tokens", out var t) && t.TryGetInt64(out long n) ? n : null;
                if (r.TryGetProperty("loss", out var l) && Number(l) is var loss && double.IsFinite(loss)) train[step] = (tokens, loss);
                if (r.TryGetProperty("eval_loss", out var e) && Number(e) is var el && double.IsFinite(el)) validation[step] = el;
            }
            catch (JsonException)
            {
            }
        }
        return new LossCurve(name,
            [.. train.Select(p => new LossPoint(p.Key, p.Value.Tokens, p.Value.Loss))],
            [.. validation.Select(p => new LossPoint(p.Key, train.TryGetValue(p.Key, out var t) ? t.Tokens : null, p.Value))]);
    }

    // JSON numbers, or the strings "NaN", "Infinity", "-Infinity" non-finite values are written as.
    static double Number(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Number => e.GetDouble(),
        JsonValueKind.String => double.TryParse(e.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : double.NaN,
        _ => double.NaN,
    };
}

/// <summary>Several runs' loss curves on one figure, and where a model's run keeps its log.</summary>
public static class LossCurves
{
    /// <summary>The log a trainer writes into its run folder.</summary>
    public const string MetricsFile = "metrics.jsonl";

    /// <summary>
    /// The run folder of <paramref name="modelPath"/>, as given to <c>--model</c>: a checkpoint directory's
    /// parent (a trainer's <c>checkpoint-N</c> lies in its run folder), or the folder itself when it is a run
    /// folder (no config.json of its own).
    /// </summary>
    public static string RunDirectory(string modelPath)
    {
        var full = Path.GetFullPath(modelPath);
        if (!File.Exists(Path.Combine(full, "config.json"))) return full;
        return Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(full)) ?? full;
    }

    /// <summary>The metrics log of <paramref name="modelPath"/>'s run, or null when its run folder has none.</summary>
    public static string? FindMetrics(string modelPath)
    {
        var path = Path.Combine(RunDirectory(modelPath), MetricsFile);
        return File.Exists(path) ? path : null;
    }

    /// <summary>
    /// Draws every curve's validation loss (solid, with markers) and training loss (the same colour, light)
    /// against training tokens, or against steps when a curve lacks token counts (one axis for all), and
    /// writes the PNG to <paramref name="path"/> atomically (a temporary file renamed into place). Throws
    /// <see cref="IOException"/> naming the file when it cannot be drawn or written.
    /// </summary>
    public static void WritePlot(string path, IReadOnlyList<LossCurve> curves, string title = "loss curves")
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(curves);
        if (curves.Count == 0) throw new ArgumentException("no loss curves to plot");
        bool byTokens = curves.All(c => c.HasTokens);
        double X(LossPoint p) => byTokens ? p.Tokens!.Value : p.Step;
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < curves.Count; i++)
        {
            var c = curves[i];
            var color = palette.GetColor(i);
            if (c.Train.Count > 0)
            {
                var t = plot.Add.Scatter(c.Train.Select(X).ToArray(), c.Train.Select(p => p.Loss).ToArray());
                t.Color = color.WithOpacity(0.35);
                t.LineWidth = 1;
                t.MarkerSize = 0;
                t.LegendText = $"{c.Name} train";
            }
            if (c.Validation.Count > 0)
            {
                var v = plot.Add.Scatter(c.Validation.Select(X).ToArray(), c.Validation.Select(p => p.Loss).ToArray());
                v.Color = color;
                v.LineWidth = 2;
                v.MarkerSize = 6;
                v.LegendText = $"{c.Name} validation";
            }
        }
        plot.Title(title);
        plot.XLabel(byTokens ? "training tokens" : "step");
        plot.YLabel("cross-entropy (nats/token)");
        Encore.Training.Trainer.LossPlot.Layout(plot);
        try
        {
            var png = plot.GetImageBytes(900, 560, ScottPlot.ImageFormat.Png);
            AtomicFile.Write(path, s => s.Write(png));
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or UnauthorizedAccessException or IOException)
        {
            // ScottPlot draws with SkiaSharp's native library; a machine without it, or a folder that cannot
            // be written, gets one line naming the file instead of a stack trace.
            throw new IOException($"{path}: the loss plot could not be written ({e.GetBaseException().Message})", e);
        }
    }
}
