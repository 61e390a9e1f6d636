using System.Text.Json;
using Encore.Bench;
using Encore.Tensors;
using Encore.Tensors.Threading;

namespace Encore.Cli.Tests;

// Sanity only: the probe's figures depend on the machine and its load, so no test asserts a speed.
[Trait("Category", "Runtime")]
public unsafe class MachineProbeTests
{
    static readonly MachineProbeOptions Tiny = new() { BandwidthBufferBytes = 4L << 20, Repetitions = 3, FmaIterations = 1 << 12 };

    [Fact]
    public void QuickProbe_ReportIsWellFormed()
    {
        using var pool = new KernelPool(2);
        var r = MachineProbe.Run(MachineProbeOptions.Quick, pool);
        Assert.False(string.IsNullOrWhiteSpace(r.DotnetVersion));
        Assert.False(string.IsNullOrWhiteSpace(r.Os));
        Assert.False(string.IsNullOrWhiteSpace(r.CpuModel));
        Assert.Equal(Environment.ProcessorCount, r.LogicalCores);
        Assert.Equal((int)Simd.Current, r.SimdBits);
        Assert.Equal(Simd.Describe(), r.Simd);
        Assert.Equal(2, r.Threads);
        Assert.Equal(64L << 20, r.BandwidthBufferBytes);
        Assert.Equal(3, r.Repetitions);
        foreach (double x in new[] { r.ReadGBPerSecond, r.ReadGBPerSecondSingleThread, r.FmaGflops, r.FmaGflopsPerThread, r.ProbeSeconds })
            Assert.True(double.IsFinite(x) && x > 0, $"figure {x} is not a positive number");
    }

    [Fact]
    public void Probe_RunsAtEverySupportedWidth()
    {
        using var pool = new KernelPool(2);
        foreach (var w in Simd.Supported)
        {
            using (Simd.Override(w))
            {
                var r = MachineProbe.Run(Tiny, pool);
                Assert.Equal((int)w, r.SimdBits);
                Assert.True(r.ReadGBPerSecond > 0 && r.FmaGflops > 0 && r.FmaGflopsPerThread > 0, $"{w}: {r}");
            }
        }
    }

    [Fact]
    public void SumStream_MatchesExactSumAtEveryWidth()
    {
        // Lengths around each width's 8-vector unroll, so main loops and tails are both covered.
        int[] lengths = [0, 1, 3, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 4099];
        var data = new float[4099];
        var rng = new Random(7);
        for (int i = 0; i < data.Length; i++) data[i] = rng.Next(-64, 65) / 8f; // exact in float, so sums are exact
        fixed (float* p = data)
        {
            foreach (int n in lengths)
            {
                double expected = 0;
                for (int i = 0; i < n; i++) expected += data[i];
                foreach (var w in Simd.Supported)
                    Assert.Equal(expected, MachineProbe.SumStream(p, n, w));
            }
        }
    }

    [Fact]
    public void SumStream_LiteralExample()
    {
        float[] x = [1, 2, 3, 4, 5];
        fixed (float* p = x)
            Assert.Equal(15f, MachineProbe.SumStream(p, x.Length, Simd.Best));
    }

    [Fact]
    public void FmaLoop_EveryLaneFollowsTheScalarRecurrence()
    {
        // Each lane runs acc ← acc·0.9999 + 0.0001 from the same 12 starting values, so a width's
        // result is its lane count times the scalar loop's (up to rounding in the final sums).
        float scalar = MachineProbe.FmaLoop(1000, SimdWidth.Scalar);
        foreach (var w in Simd.Supported.Where(w => w != SimdWidth.Scalar))
        {
            int lanes = (int)w / 32;
            Assert.Equal(scalar, MachineProbe.FmaLoop(1000, w) / lanes, 4);
        }
        // Converges towards 12 accumulators × 1.
        Assert.InRange(MachineProbe.FmaLoop(1 << 18, SimdWidth.Scalar), 11.9f, 12.01f);
    }

    [Fact]
    public void ParseCpuModel_ReadsX86AndArmFormats()
    {
        Assert.Equal("AMD EPYC 9654 96-Core Processor",
            MachineProbe.ParseCpuModel("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\nflags\t\t: fpu\n"));
        Assert.Equal("Raspberry Pi 4 Model B Rev 1.4",
            MachineProbe.ParseCpuModel("processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"));
        Assert.Equal("ARM implementer 0x41 part 0xd0c",
            MachineProbe.ParseCpuModel("processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"));
        Assert.Null(MachineProbe.ParseCpuModel("processor\t: 0\nmodel name\t:\n"));
        Assert.Null(MachineProbe.ParseCpuModel(""));
    }

    [Theory]
    [InlineData("32768K", 32L << 20)]
    [InlineData("1M\n", 1L << 20)]
    [InlineData("512", 512L)]
    [InlineData("", 0L)]
    [InlineData("abcK", 0L)]
    [InlineData("-1K", 0L)]
    public void ParseCacheSize_ReadsSysfsSizes(string text, long expected) =>
        Assert.Equal(expected, MachineProbe.ParseCacheSize(text));

    [Fact]
    public void Median_OddAndEvenCounts()
    {
        Assert.Equal(2.0, MachineProbe.Median([3.0, 1.0, 2.0]));
        Assert.Equal(2.5, MachineProbe.Median([4.0, 1.0, 3.0, 2.0]));
        Assert.Throws<ArgumentException>(() => MachineProbe.Median([]));
    }

    [Fact]
    public void Options_OutOfRangeAreRejected()
    {
        Assert.Throws<ArgumentException>(() => MachineProbe.Run(Tiny with { Repetitions = 0 }));
        Assert.Throws<ArgumentException>(() => MachineProbe.Run(Tiny with { FmaIterations = 0 }));
        Assert.Throws<ArgumentException>(() => MachineProbe.Run(Tiny with { BandwidthBufferBytes = 1000 }));
    }

    [Fact]
    public void Report_SerializesToTheStableSnakeCaseKeys()
    {
        var r = new MachineReport(".NET 10", "Linux", "X64", "cpu", 2, "512-bit", 512, 1 << 25, 2, 1 << 30, 30, 20, 200, 100, 5, 1.5);
        var json = JsonSerializer.Serialize(r, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower });
        using var doc = JsonDocument.Parse(json);
        string[] keys = doc.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(new[]
        {
            "dotnet_version", "os", "architecture", "cpu_model", "logical_cores", "simd", "simd_bits",
            "last_level_cache_bytes", "threads", "bandwidth_buffer_bytes", "read_gb_per_second",
            "read_gb_per_second_single_thread", "fma_gflops", "fma_gflops_per_thread", "repetitions", "probe_seconds",
        }, keys);
        Assert.Equal(30.0, doc.RootElement.GetProperty("read_gb_per_second").GetDouble());
    }
}
