using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Encore.Tensors;
using Encore.Tensors.Threading;

namespace Encore.Bench;

/// <summary>How long and how hard <see cref="MachineProbe"/> measures.</summary>
public sealed record MachineProbeOptions
{
    /// <summary>
    /// Bytes the bandwidth test streams through. Default 1 GiB: far past any last-level cache, so
    /// the figure is DRAM's. Capped at a quarter of the memory available to the process.
    /// </summary>
    public long BandwidthBufferBytes { get; init; } = 1L << 30;

    /// <summary>Timed repetitions of each measurement; the median is reported. Default 5.</summary>
    public int Repetitions { get; init; } = 5;

    /// <summary>
    /// Iterations of the FMA loop per thread per repetition, each 12 independent vector FMAs.
    /// Default 2²¹: about 5 ms per thread at 200 GFLOP/s with 512-bit vectors.
    /// </summary>
    public int FmaIterations { get; init; } = 1 << 21;

    /// <summary>The full probe (about 1–2 s, mostly filling and streaming the 1 GiB buffer).</summary>
    public static MachineProbeOptions Default { get; } = new();

    /// <summary>
    /// A rough probe for tests and smoke runs (well under a second): a 64 MiB buffer, which a large
    /// L3 partly holds, so the bandwidth reads high; 3 repetitions; a short FMA loop.
    /// </summary>
    public static MachineProbeOptions Quick { get; } = new() { BandwidthBufferBytes = 64L << 20, Repetitions = 3, FmaIterations = 1 << 16 };

    internal void Validate()
    {
        if (BandwidthBufferBytes < 1 << 20) throw new ArgumentException($"the bandwidth buffer must be at least 1 MiB, got {BandwidthBufferBytes} bytes");
        if (Repetitions < 1) throw new ArgumentException($"repetitions must be at least 1, got {Repetitions}");
        if (FmaIterations < 1) throw new ArgumentException($"FMA iterations must be at least 1, got {FmaIterations}");
    }
}

/// <summary>
/// What <see cref="MachineProbe"/> found. Serialized with snake_case names (System.Text.Json
/// <c>JsonNamingPolicy.SnakeCaseLower</c>) these are the keys of <c>encore info --json</c>, so
/// renaming a property changes a published format. GB are 10⁹ bytes, GFLOP 10⁹ floating-point
/// operations (an FMA counts two).
/// </summary>
/// <param name="DotnetVersion">The runtime, e.g. ".NET 10.0.0".</param>
/// <param name="Os">The operating system description.</param>
/// <param name="Architecture">The process architecture (X64, Arm64).</param>
/// <param name="CpuModel">The CPU model name (from /proc/cpuinfo where there is one), or "unknown".</param>
/// <param name="LogicalCores">Logical processors the process may use.</param>
/// <param name="Simd">Vector width and instruction sets, from <see cref="Encore.Tensors.Simd.Describe"/>.</param>
/// <param name="SimdBits">The vector width the probe and the kernels use (0 for scalar).</param>
/// <param name="LastLevelCacheBytes">Size of the largest CPU cache, 0 when unknown.</param>
/// <param name="Threads">Threads of the kernel pool the all-thread figures used.</param>
/// <param name="BandwidthBufferBytes">Bytes streamed per bandwidth repetition.</param>
/// <param name="ReadGBPerSecond">Memory read bandwidth with every pool thread streaming, GB/s.</param>
/// <param name="ReadGBPerSecondSingleThread">Memory read bandwidth of one thread, GB/s.</param>
/// <param name="FmaGflops">Peak FMA throughput with every pool thread, GFLOP/s.</param>
/// <param name="FmaGflopsPerThread">Peak FMA throughput of one thread, GFLOP/s.</param>
/// <param name="Repetitions">Repetitions behind each median.</param>
/// <param name="ProbeSeconds">Wall time of the whole probe.</param>
public sealed record MachineReport(
    string DotnetVersion,
    string Os,
    string Architecture,
    string CpuModel,
    int LogicalCores,
    string Simd,
    int SimdBits,
    long LastLevelCacheBytes,
    int Threads,
    long BandwidthBufferBytes,
    double ReadGBPerSecond,
    double ReadGBPerSecondSingleThread,
    double FmaGflops,
    double FmaGflopsPerThread,
    int Repetitions,
    double ProbeSeconds);

/// <summary>
/// Describes this machine and measures its two physical limits, the ones kernel figures are judged
/// against (DESIGN.md "Measuring"): memory read bandwidth (the ceiling of batch-1 decoding, which
/// streams every weight once per token) and FMA peak (the ceiling of GEMM).
/// </summary>
/// <remarks>
/// Bandwidth is a read-only streaming sum (likwid-bench's <c>sum</c> kernel; STREAM's kernels also
/// write, which a decode step hardly does): the threads start together, each streams its own slice
/// of one buffer with 8 independent vector accumulators, so loads, not the add latency, are the
/// limit. FMA peak is a register-resident loop
/// of 12 independent accumulator chains: enough to cover latency × throughput (4 cycles × 2 pipes
/// on Zen 4 and recent Intel cores) with room to spare, so the pipes never wait.
/// </remarks>
public static unsafe partial class MachineProbe
{
    /// <summary>
    /// Describes the machine and measures bandwidth and FMA peak on <paramref name="pool"/>
    /// (default <see cref="KernelPool.Default"/>) at <see cref="Simd.Current"/>'s width.
    /// </summary>
    public static MachineReport Run(MachineProbeOptions? options = null, KernelPool? pool = null)
    {
        options ??= MachineProbeOptions.Default;
        options.Validate();
        pool ??= KernelPool.Default;
        var width = Encore.Tensors.Simd.Current;
        long start = Stopwatch.GetTimestamp();

        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        long bytes = options.BandwidthBufferBytes;
        if (available > 0) bytes = Math.Min(bytes, Math.Max(1L << 20, available / 4));
        bytes &= ~(64L * 1024 - 1);
        var (all, single) = MeasureReadBandwidth(pool, bytes, options.Repetitions, width);
        var (fmaAll, fmaOne) = MeasureFmaPeak(pool, options.FmaIterations, options.Repetitions, width);

        return new MachineReport(
            DotnetVersion: RuntimeInformation.FrameworkDescription,
            Os: RuntimeInformation.OSDescription,
            Architecture: RuntimeInformation.ProcessArchitecture.ToString(),
            CpuModel: CpuModel(),
            LogicalCores: Environment.ProcessorCount,
            Simd: Encore.Tensors.Simd.Describe(),
            SimdBits: (int)width,
            LastLevelCacheBytes: LastLevelCacheBytes(),
            Threads: pool.ThreadCount,
            BandwidthBufferBytes: bytes,
            ReadGBPerSecond: all,
            ReadGBPerSecondSingleThread: single,
            FmaGflops: fmaAll,
            FmaGflopsPerThread: fmaOne,
            Repetitions: options.Repetitions,
            ProbeSeconds: Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    // ---------------------------------------------------------------- description

    /// <summary>The CPU model name, or "unknown".</summary>
    public static string CpuModel()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo") && ParseCpuModel(File.ReadAllText("/proc/cpuinfo")) is { } model) return model;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return Environment.GetEnvironmentVariable("PROCESSOR_IDENTIFIER") is { Length: > 0 } id ? id : "unknown";
    }

    /// <summary>
    /// The model from /proc/cpuinfo text: x86's "model name", else ARM's "Model" or "Hardware",
    /// else the "CPU implementer"/"CPU part" codes.
    /// </summary>
    internal static string? ParseCpuModel(string cpuinfo)
    {
        string? Field(string key)
        {
            foreach (var line in cpuinfo.Split('\n'))
            {
                int colon = line.IndexOf(':');
                if (colon < 0) continue;
                if (line[..colon].Trim().Equals(key, StringComparison.OrdinalIgnoreCase))
                {
                    var value = line[(colon + 1)..].Trim();
                    if (value.Length > 0) return value;
                }
            }
            return null;
        }
        if (Field("model name") is { } x86) return x86;
        if (Field("Model") is { } board) return board;
        if (Field("Hardware") is { } hw) return hw;
        if (Field("CPU part") is { } part) return $"ARM implementer {Field("CPU implementer") ?? "?"} part {part}";
        return null;
    }

    /// <summary>Size in bytes of the largest cache of CPU 0 (Linux sysfs), or 0 when unknown.</summary>
    public static long LastLevelCacheBytes()
    {
        const string dir = "/sys/devices/system/cpu/cpu0/cache";
        long best = 0;
        try
        {
            if (!Directory.Exists(dir)) return 0;
            foreach (var index in Directory.GetDirectories(dir, "index*"))
            {
                var sizeFile = Path.Combine(index, "size");
                var typeFile = Path.Combine(index, "type");
                if (!File.Exists(sizeFile)) continue;
                if (File.Exists(typeFile) && File.ReadAllText(typeFile).Trim() == "Instruction") continue;
                best = Math.Max(best, ParseCacheSize(File.ReadAllText(sizeFile)));
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return best;
    }

    /// <summary>Parses a sysfs cache size such as "32768K" or "1M"; 0 when unreadable.</summary>
    internal static long ParseCacheSize(string text)
    {
        text = text.Trim();
        if (text.Length == 0) return 0;
        long unit = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1 };
        var digits = unit == 1 ? text : text[..^1];
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n >= 0 && n < 1L << 40 ? n * unit : 0;
    }

    /// <summary>The median (mean of the middle two for an even count).</summary>
    public static double Median(ReadOnlySpan<double> values)
    {
        if (values.IsEmpty) throw new ArgumentException("median of no values");
        var sorted = values.ToArray();
        Array.Sort(sorted);
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
