namespace Encore.Bench;

/// <summary>Benchmark suites run through <c>encore bench</c>.</summary>
public static class BenchInfo
{
    /// <summary>Names of the suites that exist today.</summary>
    public static readonly string[] Suites = ["kernels", "train", "forward", "generate", "arch", "peers", "serve"];

    /// <summary>Suites planned next; the CLI leaves room for them.</summary>
    public static readonly string[] Planned = [];
}
