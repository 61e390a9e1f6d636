using System.Globalization;
using System.Text.Json;
using Encore.Tensors;

namespace Encore.Bench;

/// <summary>What the PyTorch kernel peer is asked to measure: the same shapes, runs and timing rule as Encore.</summary>
public sealed record TorchPeerRequest(int Threads, int Runs, double MinRunSeconds, IReadOnlyList<GemmShape> Gemm,
    int GemvSize, IReadOnlyList<DType> GemvDTypes, long GemvWorkingSetBytes);

/// <summary>PyTorch's GEMM figure for one shape.</summary>
public sealed record TorchGemm(int M, int K, int N, double Gflops);

/// <summary>PyTorch's GEMV figure for one weight dtype; null GB/s with the reason in <paramref name="Compared"/> when unsupported.</summary>
public sealed record TorchGemv(string DType, double? GBPerSecond, string Compared);

/// <summary>The peer script's figures.</summary>
/// <param name="MathLibraries">BLAS-like libraries torch had loaded (its GEMM speed depends on which libblas is installed).</param>
public sealed record TorchKernelFigures(string TorchVersion, int Threads, string? MathLibraries, IReadOnlyList<TorchGemm> Gemm, IReadOnlyList<TorchGemv> Gemv);

/// <summary>The figures, or why there are none.</summary>
public sealed record TorchPeerOutcome(TorchKernelFigures? Figures, string? Interpreter, string? Note);

/// <summary>
/// Runs <c>bench/peers/torch_kernels.py</c> (Debian <c>python3-torch</c>) as a child process after
/// Encore's own measurements, never beside them, and reads the one JSON object it prints.
/// </summary>
public static class TorchPeer
{
    /// <summary>File name of the peer script.</summary>
    public const string ScriptName = "torch_kernels.py";

    /// <summary>Runs the peer; never throws for a missing Python, torch or script: the outcome's note says what happened.</summary>
    public static TorchPeerOutcome Run(TorchPeerRequest request, string? python, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(request);
        var output = PythonPeer.Run(ScriptName, Arguments(request), python, timeout);
        if (output.Json == null) return new(null, output.Interpreter, output.Note);
        try
        {
            return new(Parse(output.Json), output.Interpreter, null);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or KeyNotFoundException)
        {
            return new(null, output.Interpreter, $"PyTorch peer output unreadable: {e.Message}");
        }
    }

    /// <summary>The script's command-line arguments for <paramref name="r"/>.</summary>
    public static IReadOnlyList<string> Arguments(TorchPeerRequest r) =>
    [
        "--threads", r.Threads.ToString(CultureInfo.InvariantCulture),
        "--runs", r.Runs.ToString(CultureInfo.InvariantCulture),
        "--min-seconds", r.MinRunSeconds.ToString("R", CultureInfo.InvariantCulture),
        "--gemm", string.Join(",", r.Gemm.Select(s => $"{s.M}x{s.K}x{s.N}")),
        "--gemv-size", r.GemvSize.ToString(CultureInfo.InvariantCulture),
        "--gemv-dtypes", string.Join(",", r.GemvDTypes.Where(d => !d.IsBlocked()).Select(d => d.Name())),
        "--working-set-bytes", r.GemvWorkingSetBytes.ToString(CultureInfo.InvariantCulture),
    ];

    /// <summary>Reads the script's JSON object; throws <see cref="FormatException"/> when a field is missing or wrong.</summary>
    public static TorchKernelFigures Parse(string json)
    {
        using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new FormatException("expected one JSON object");
        if (root.TryGetProperty("error", out var error)) throw new FormatException(error.ToString());
        var gemm = new List<TorchGemm>();
        foreach (var g in Array(root, "gemm"))
            gemm.Add(new TorchGemm(Int(g, "m"), Int(g, "k"), Int(g, "n"), Positive(g, "gflops")));
        var gemv = new List<TorchGemv>();
        foreach (var g in Array(root, "gemv"))
        {
            string dtype = Str(g, "dtype");
            if (g.TryGetProperty("error", out var e))
                gemv.Add(new TorchGemv(dtype, null, $"not supported by this PyTorch: {e}"));
            else
                gemv.Add(new TorchGemv(dtype, Positive(g, "gb_per_second"), Str(g, "compared")));
        }
        string? libraries = root.TryGetProperty("math_libraries", out var lib) && lib.ValueKind == JsonValueKind.String ? lib.GetString() : null;
        return new TorchKernelFigures(Str(root, "torch_version"), Int(root, "threads"), libraries, gemm, gemv);
    }

    static JsonElement.ArrayEnumerator Array(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array ? v.EnumerateArray() : throw new FormatException($"'{name}' is not an array");

    static string Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new FormatException($"'{name}' is not a string");

    static int Int(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw new FormatException($"'{name}' is not an integer");

    static double Positive(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.GetDouble() is > 0 and var d && double.IsFinite(d)
            ? d : throw new FormatException($"'{name}' is not a positive number");
}
