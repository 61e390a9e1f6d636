namespace Encore.Bench;

/// <summary>Benchmark programs run through <c>encore bench</c>.</summary>
public static class BenchInfo
{
    /// <summary>Names of the benchmark suites.</summary>
    public static readonly string[] Suites = ["kernels"];
}
