using Encore.Tensors;
using Encore.Tensors.Kernels;
using Encore.Tensors.Threading;

namespace Encore.Bench;

/// <summary>Options of <see cref="KernelBenchmark"/> (the flags of <c>encore bench kernels</c>).</summary>
public sealed record KernelBenchmarkOptions
{
    /// <summary>Threads of the kernel pool, the caller included (<c>--threads</c>). Default: the processor count.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Timed runs per figure; each figure is their median (<c>--runs</c>). Default 5.</summary>
    public int Runs { get; init; } = 5;

    /// <summary>
    /// Small shapes and the quick machine probe, for CI smoke runs (<c>--quick</c>): the figures are not
    /// comparable with a full run's, and the GEMV weights may partly fit in cache. Default false.
    /// </summary>
    public bool Quick { get; init; }

    /// <summary>Run the PyTorch peer side by side (<c>--no-peers</c> turns it off). Default true.</summary>
    public bool Peers { get; init; } = true;

    /// <summary>
    /// Python interpreter for the peer (<c>--python</c>). Default null: <c>ENCORE_PYTHON</c>, then
    /// <c>python3</c> on the PATH, then <c>/usr/bin/python3</c>, the first that imports torch.
    /// </summary>
    public string? Python { get; init; }

    /// <summary>Shortest timed run, in seconds; fast calls repeat until a run lasts this long. Default 0.2.</summary>
    public double MinRunSeconds { get; init; } = 0.2;

    /// <summary>How long the peer script may run before it is stopped, in seconds. Default 600.</summary>
    public int PeerTimeoutSeconds { get; init; } = 600;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        if (Threads is < 1 or > 1024) throw new ArgumentException($"--threads must be between 1 and 1024, got {Threads}");
        if (Runs is < 1 or > 1000) throw new ArgumentException($"--runs must be between 1 and 1000, got {Runs}");
        if (!(MinRunSeconds > 0 && MinRunSeconds <= 60)) throw new ArgumentException($"the minimum run time must be in (0, 60] seconds, got {MinRunSeconds}");
        if (PeerTimeoutSeconds < 1) throw new ArgumentException($"the peer timeout must be at least 1 second, got {PeerTimeoutSeconds}");
        if (Python is { Length: 0 }) throw new ArgumentException("--python is empty");
    }
}

/// <summary>A GEMM problem C(M, N) = A(M, K)·B(K, N), labelled M×K×N.</summary>
public readonly record struct GemmShape(int M, int K, int N)
{
    /// <summary>"M×K×N".</summary>
    public string Label => $"{M}×{K}×{N}";

    /// <summary>Floating-point operations of one product (a multiply-add counts two).</summary>
    public double Flops => 2.0 * M * K * N;
}

/// <summary>One GEMM figure. GFLOP/s are 10⁹ flops per second, a multiply-add counting two.</summary>
/// <param name="Shape">"M×K×N".</param>
/// <param name="SecondsPerCall">Median seconds of one product.</param>
/// <param name="Gflops">Encore's throughput.</param>
/// <param name="FractionOfFmaPeak">Gflops over the machine's measured all-thread FMA peak.</param>
/// <param name="TorchGflops">PyTorch's throughput on the same shape, when the peer ran.</param>
/// <param name="EncoreOverTorch">Gflops ÷ TorchGflops.</param>
public sealed record GemmFigure(string Shape, int M, int K, int N, double SecondsPerCall, double Gflops,
    double? FractionOfFmaPeak, double? TorchGflops, double? EncoreOverTorch);

/// <summary>One batch-1 GEMV figure: y(1, N) = x(1, K)·Wᵀ with W (N, K) in <paramref name="Weights"/>.</summary>
/// <param name="Weights">Weight dtype name (f32, bf16, f16, q8_0).</param>
/// <param name="BytesPerMatrix">Bytes of one weight matrix, block scales included.</param>
/// <param name="Matrices">Distinct weight matrices the calls rotate over.</param>
/// <param name="WorkingSetBytes">Matrices × BytesPerMatrix.</param>
/// <param name="SecondsPerCall">Median seconds of one GEMV.</param>
/// <param name="GBPerSecond">Weight bytes read per second, 10⁹ bytes.</param>
/// <param name="FractionOfBandwidth">GBPerSecond over the machine's measured all-thread read bandwidth.</param>
/// <param name="TorchGBPerSecond">PyTorch's figure, when it ran this dtype.</param>
/// <param name="EncoreOverTorch">GBPerSecond ÷ TorchGBPerSecond.</param>
/// <param name="TorchCompared">What the PyTorch figure measures, or why there is none.</param>
public sealed record GemvFigure(string Weights, int N, int K, long BytesPerMatrix, int Matrices, long WorkingSetBytes,
    double SecondsPerCall, double GBPerSecond, double? FractionOfBandwidth, double? TorchGBPerSecond, double? EncoreOverTorch, string? TorchCompared);

/// <summary>
/// One prefill Linear figure: Y(M, N) = X(M, K)·Wᵀ with W (N, K) in <paramref name="Weights"/>, through
/// <c>Gemm.Linear</c> as a model's prefill calls it (binary32 weights packed per call; Q8_0/Q4_0 on the
/// int8 GEMM where the CPU has it).
/// </summary>
/// <param name="Path">Which kernel ran: "f32 GEMM", "int8 GEMM" (X quantized per block) or "dequantizing GEMM".</param>
/// <param name="Gops">2·M·K·N ÷ seconds ÷ 10⁹ (multiply-adds of either arithmetic count two).</param>
/// <param name="FractionOfFmaPeak">Gops over the machine's binary32 FMA peak (the int8 GEMM can exceed 1).</param>
/// <param name="SpeedupOverF32">This figure's speed ÷ the f32 weights' on the same shape.</param>
public sealed record LinearFigure(string Weights, string Shape, int M, int K, int N, string Path, double SecondsPerCall, double Gops,
    double? FractionOfFmaPeak, double? SpeedupOverF32);

/// <summary>Whether and how the PyTorch peer ran.</summary>
/// <param name="Ran">True when its figures are in the result.</param>
/// <param name="Version">torch.__version__.</param>
/// <param name="Interpreter">The Python interpreter used.</param>
/// <param name="Threads">torch.get_num_threads() after setting it.</param>
/// <param name="MathLibraries">BLAS-like libraries torch had loaded (which libblas decides its GEMM speed).</param>
/// <param name="Note">Why it did not run, or what to keep in mind.</param>
public sealed record PeerReport(string Name, bool Ran, string? Version, string? Interpreter, int? Threads, string? MathLibraries, string? Note);

/// <summary>Everything <c>encore bench kernels</c> measured; serialized snake_case for <c>--json</c>.</summary>
/// <param name="Machine">The probe: SIMD level, threads, bandwidth, FMA peak.</param>
/// <param name="GemmConvention">How GEMM shapes are labelled.</param>
/// <param name="GemvNote">How the GEMV figures are made.</param>
/// <param name="DispatchMicroseconds">Median cost of one back-to-back KernelPool dispatch of <paramref name="DispatchTasks"/> empty tasks.</param>
public sealed record KernelBenchmarkResult(
    MachineReport Machine,
    int Threads,
    int Runs,
    bool Quick,
    double MinRunSeconds,
    string GemmConvention,
    string GemvNote,
    IReadOnlyList<GemmFigure> Gemm,
    IReadOnlyList<GemvFigure> Gemv,
    IReadOnlyList<LinearFigure> Linear,
    double DispatchMicroseconds,
    int DispatchTasks,
    PeerReport Peer);

/// <summary>
/// <c>encore bench kernels</c>: GEMM GFLOP/s, batch-1 GEMV GB/s per weight dtype and the thread
/// pool's dispatch cost, each judged against the machine's measured limit (FMA peak, read
/// bandwidth) and against PyTorch measured side by side in the same run (DESIGN.md "Measuring").
/// </summary>
public static class KernelBenchmark
{
    /// <summary>The label convention of <see cref="GemmShapes"/>.</summary>
    public const string GemmConvention = "M×K×N: C(M,N) = A(M,K)·B(K,N), row-major f32, no transposes";

    /// <summary>GEMM shapes: a square cube, a prompt-sized projection, an encoder-sized one.</summary>
    public static IReadOnlyList<GemmShape> GemmShapes(bool quick) => quick
        ? [new(256, 256, 256), new(32, 256, 1024), new(128, 96, 256)]
        : [new(1024, 1024, 1024), new(128, 1024, 4096), new(512, 384, 1024)];

    /// <summary>N = K of the GEMV weight matrices.</summary>
    public static int GemvSize(bool quick) => quick ? 1024 : 4096;

    /// <summary>Prefill Linear shapes M×K×N: 512 input positions through mu-330m's FFN (up, down) and query projection, and T5-base's FFN.</summary>
    public static IReadOnlyList<GemmShape> LinearShapes(bool quick) => quick
        ? [new(64, 256, 256)]
        : [new(512, 1024, 4096), new(512, 4096, 1024), new(512, 1024, 384), new(512, 768, 3072)];

    /// <summary>Weight dtypes of the prefill Linear figures.</summary>
    public static IReadOnlyList<DType> LinearDTypes { get; } = [DType.F32, DType.Q8_0, DType.Q4_0];

    /// <summary>Weight dtypes of the GEMV figures (Q4_0R8, the layout models load Q4_0 into, where this machine regroups).</summary>
    public static IReadOnlyList<DType> GemvDTypes { get; } = Gemv.RegroupsQ4()
        ? [DType.F32, DType.BF16, DType.F16, DType.Q8_0, DType.Q4_0, DType.Q4_0R8]
        : [DType.F32, DType.BF16, DType.F16, DType.Q8_0, DType.Q4_0];

    /// <summary>
    /// Bytes of weights the GEMV calls rotate over: four times the last-level cache (256 MiB when
    /// its size is unknown), so each matrix has been evicted before it comes round again and the
    /// figure is DRAM's, as in decoding, where every weight is read once per token.
    /// </summary>
    public static long GemvWorkingSetBytes(long lastLevelCacheBytes) => lastLevelCacheBytes > 0 ? 4 * lastLevelCacheBytes : 256L << 20;

    /// <summary>Matrices of <paramref name="bytesPerMatrix"/> needed to fill <paramref name="workingSet"/> (at least 2).</summary>
    public static int GemvMatrices(long bytesPerMatrix, long workingSet) => (int)Math.Max(2, (workingSet + bytesPerMatrix - 1) / bytesPerMatrix);

    /// <summary>
    /// Runs the suite on <see cref="KernelPool.Default"/>, which the kernels use; when its size is not
    /// <see cref="KernelBenchmarkOptions.Threads"/> it is replaced by a pool of that size (a program
    /// should set it first, as <c>encore bench</c> does). <paramref name="progress"/> receives one line per step.
    /// </summary>
    public static KernelBenchmarkResult Run(KernelBenchmarkOptions options, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        progress ??= _ => { };
        if (KernelPool.Default.ThreadCount != options.Threads) KernelPool.Default = new KernelPool(options.Threads);
        var pool = KernelPool.Default;

        progress("probing the machine (bandwidth, FMA peak)");
        var machine = MachineProbe.Run(options.Quick ? MachineProbeOptions.Quick : MachineProbeOptions.Default, pool);

        var rng = new Random(1234);
        var gemm = new List<GemmFigure>();
        foreach (var shape in GemmShapes(options.Quick))
        {
            progress($"GEMM {shape.Label}");
            gemm.Add(MeasureGemm(shape, options, machine, rng));
        }

        int size = GemvSize(options.Quick);
        long workingSet = GemvWorkingSetBytes(machine.LastLevelCacheBytes);
        var gemv = new List<GemvFigure>();
        using (var source = RandomTensor(rng, size, size))
        {
            foreach (var dtype in GemvDTypes)
            {
                progress($"GEMV {dtype.Name()} {size}×{size}");
                gemv.Add(MeasureGemv(source, dtype, workingSet, options, machine, rng));
            }
        }

        var linear = new List<LinearFigure>();
        foreach (var shape in LinearShapes(options.Quick))
        {
            using var source = RandomTensor(rng, shape.N, shape.K);
            using var x = RandomTensor(rng, shape.M, shape.K);
            double? f32Seconds = null;
            foreach (var dtype in LinearDTypes)
            {
                progress($"Linear {shape.Label} {dtype.Name()}");
                var figure = MeasureLinear(source, x, shape, dtype, options, machine, f32Seconds);
                if (dtype == DType.F32) f32Seconds = figure.SecondsPerCall;
                linear.Add(figure with { SpeedupOverF32 = f32Seconds is { } f ? f / figure.SecondsPerCall : null });
            }
        }

        progress("KernelPool dispatch");
        double dispatch = MeasureDispatch(pool, options);

        var peer = new PeerReport("pytorch", false, null, null, null, null, "PyTorch peer skipped (--no-peers)");
        if (options.Peers)
        {
            progress("PyTorch peer (bench/peers/torch_kernels.py)");
            var outcome = TorchPeer.Run(new TorchPeerRequest(options.Threads, options.Runs, options.MinRunSeconds,
                GemmShapes(options.Quick), size, GemvDTypes, workingSet), options.Python, TimeSpan.FromSeconds(options.PeerTimeoutSeconds));
            string? note = outcome.Note;
            // Debian's python3-torch hands torch.mm to the system libblas.so.3; with only libblas3
            // installed that is netlib's reference Fortran, so PyTorch's GEMM is far below its usual speed.
            if (outcome.Figures?.MathLibraries is { } libs && libs.Contains("/blas/libblas.so", StringComparison.Ordinal))
                note = "PyTorch's torch.mm runs on the netlib reference BLAS (Debian libblas3) here, not an optimized one; " +
                    "install libopenblas0-pthread (update-alternatives picks it) for a stronger GEMM peer";
            peer = new PeerReport("pytorch", outcome.Figures != null, outcome.Figures?.TorchVersion, outcome.Interpreter, outcome.Figures?.Threads, outcome.Figures?.MathLibraries, note);
            if (outcome.Figures is { } torch)
            {
                gemm = gemm.Select(g => torch.Gemm.FirstOrDefault(t => t.M == g.M && t.K == g.K && t.N == g.N) is { } t
                    ? g with { TorchGflops = t.Gflops, EncoreOverTorch = Ratio(g.Gflops, t.Gflops) }
                    : g).ToList();
                gemv = gemv.Select(g => torch.Gemv.FirstOrDefault(t => t.DType == g.Weights) is { } t
                    ? g with { TorchGBPerSecond = t.GBPerSecond, EncoreOverTorch = t.GBPerSecond is { } tg ? Ratio(g.GBPerSecond, tg) : null, TorchCompared = t.Compared }
                    : g with { TorchCompared = "no PyTorch counterpart" }).ToList();
            }
        }

        return new KernelBenchmarkResult(machine, options.Threads, options.Runs, options.Quick, options.MinRunSeconds,
            GemmConvention,
            $"batch-1 Linear y = x·Wᵀ with W {size}×{size}; GB/s counts weight bytes read; calls rotate over distinct matrices " +
            $"totalling ≥ {workingSet >> 20} MiB ({(machine.LastLevelCacheBytes > 0 ? $"4× the {machine.LastLevelCacheBytes >> 20} MiB last-level cache" : "last-level cache size unknown")}), so weights come from DRAM",
            gemm, gemv, linear, dispatch, pool.ThreadCount, peer);
    }

    static GemmFigure MeasureGemm(GemmShape s, KernelBenchmarkOptions options, MachineReport machine, Random rng)
    {
        using var a = RandomTensor(rng, s.M, s.K);
        using var b = RandomTensor(rng, s.K, s.N);
        using var c = Tensor.Zeros(DType.F32, s.M, s.N);
        double seconds = Timing.MedianSecondsPerCall(_ => Gemm.Multiply(Transpose.No, Transpose.No, s.M, s.N, s.K, 1f,
            a.AsReadOnlySpan<float>(), s.K, b.AsReadOnlySpan<float>(), s.N, 0f, c.AsSpan<float>(), s.N), options.Runs, options.MinRunSeconds);
        double gflops = s.Flops / seconds / 1e9;
        return new GemmFigure(s.Label, s.M, s.K, s.N, seconds, gflops, Ratio(gflops, machine.FmaGflops), null, null);
    }

    static GemvFigure MeasureGemv(Tensor source, DType dtype, long workingSet, KernelBenchmarkOptions options, MachineReport machine, Random rng)
    {
        int n = source.Dim(0), k = source.Dim(1);
        var matrices = new List<Tensor>();
        try
        {
            // Conversion (quantization) once, then plain copies: the rotation is about addresses, not contents.
            matrices.Add(source.To(dtype));
            long bytes = matrices[0].ByteLength;
            int count = GemvMatrices(bytes, workingSet);
            while (matrices.Count < count) matrices.Add(matrices[0].Clone());
            var weights = matrices.Select(WeightMatrix.From).ToArray();
            using var x = RandomTensor(rng, 1, k);
            using var y = Tensor.Zeros(DType.F32, 1, n);
            double seconds = Timing.MedianSecondsPerCall(i => Gemm.Linear(x.AsReadOnlySpan<float>(), 1, weights[i % count], y.AsSpan<float>()),
                options.Runs, options.MinRunSeconds);
            double gbps = bytes / seconds / 1e9;
            return new GemvFigure(dtype.Name(), n, k, bytes, count, bytes * count, seconds, gbps, Ratio(gbps, machine.ReadGBPerSecond), null, null, null);
        }
        finally
        {
            foreach (var m in matrices) m.Dispose();
        }
    }

    static LinearFigure MeasureLinear(Tensor source, Tensor x, GemmShape s, DType dtype, KernelBenchmarkOptions options, MachineReport machine, double? f32Seconds)
    {
        using var w = source.To(dtype);
        var weights = WeightMatrix.From(w);
        using var y = Tensor.Zeros(DType.F32, s.M, s.N);
        double seconds = Timing.MedianSecondsPerCall(_ => Gemm.Linear(x.AsReadOnlySpan<float>(), s.M, weights, y.AsSpan<float>()),
            options.Runs, options.MinRunSeconds);
        string path = dtype == DType.F32 ? "f32 GEMM" : Gemm.TakesInt8Path(dtype, s.M) ? "int8 GEMM" : "dequantizing GEMM";
        double gops = s.Flops / seconds / 1e9;
        return new LinearFigure(dtype.Name(), s.Label, s.M, s.K, s.N, path, seconds, gops, Ratio(gops, machine.FmaGflops), null);
    }

    struct EmptyTask : IParallelTask
    {
        public readonly void Execute(int index) { }
    }

    static double MeasureDispatch(KernelPool pool, KernelBenchmarkOptions options)
    {
        var task = new EmptyTask();
        int count = pool.ThreadCount;
        return 1e6 * Timing.MedianSecondsPerCall(_ => pool.Run(count, ref task), options.Runs, options.MinRunSeconds);
    }

    static Tensor RandomTensor(Random rng, int rows, int cols)
    {
        var t = Tensor.Empty(DType.F32, rows, cols);
        var span = t.AsSpan<float>();
        for (int i = 0; i < span.Length; i++) span[i] = rng.NextSingle() * 2 - 1;
        return t;
    }

    static double? Ratio(double x, double y) => y > 0 && double.IsFinite(x / y) ? x / y : null;
}
