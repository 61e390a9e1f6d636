using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Encore.Tensors;
using Encore.Tensors.Threading;

namespace Encore.Bench;

// The measuring loops of MachineProbe: streaming read bandwidth and register-resident FMA peak.
public static unsafe partial class MachineProbe
{
    const int FmaChains = 12;

    // Keeps the measured loops' results observable so the JIT cannot drop them.
    static float s_sink;

    // ---------------------------------------------------------------- bandwidth

    /// <summary>
    /// Median read bandwidth in GB/s over <paramref name="repetitions"/> passes over a
    /// <paramref name="bytes"/>-byte buffer: with all threads of <paramref name="pool"/> streaming
    /// their own slices at once, and with the calling thread alone.
    /// </summary>
    public static (double AllThreads, double SingleThread) MeasureReadBandwidth(KernelPool pool, long bytes, int repetitions, SimdWidth width)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1L << 16);
        ArgumentOutOfRangeException.ThrowIfLessThan(repetitions, 1);
        long n = bytes / sizeof(float);
        var data = (float*)NativeMemory.AlignedAlloc((nuint)(n * sizeof(float)), 64);
        if (data == null) throw new OutOfMemoryException($"could not allocate the {bytes}-byte bandwidth buffer");
        int threads = pool.ThreadCount;
        var sinks = new float[threads];
        var clock = new Rendezvous(threads);
        try
        {
            fixed (float* s = sinks)
            {
                // Pages are faulted in by a parallel write before any timing.
                var fill = new FillTask { Data = data, Length = n, Chunks = threads * 4 };
                pool.Run(fill.Chunks, ref fill);

                var read = new StreamTask { Data = data, Length = n, Width = width, Sinks = s, Clock = clock };
                var all = new double[repetitions];
                for (int r = -1; r < repetitions; r++) // r = -1: warm-up (TLB, workers awake)
                {
                    clock.Reset();
                    pool.Run(threads, ref read);
                    if (r >= 0) all[r] = bytes / clock.Seconds() / 1e9;
                }
                var one = new double[repetitions];
                for (int r = 0; r < repetitions; r++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    s_sink += SumStream(data, n, width);
                    one[r] = bytes / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
                }
                for (int i = 0; i < threads; i++) s_sink += s[i];
                return (Median(all), Median(one));
            }
        }
        finally
        {
            clock.Dispose();
            NativeMemory.AlignedFree(data);
        }
    }

    struct FillTask : IParallelTask
    {
        public float* Data;
        public long Length;
        public int Chunks;

        // Small distinct values: no denormals, and no page is all zeros (which a hypervisor may share).
        public readonly void Execute(int index)
        {
            long start = Length * index / Chunks, end = Length * (index + 1) / Chunks;
            for (long i = start; i < end; i++) Data[i] = 1f + (i & 1023) * (1f / 1024);
        }
    }

    struct StreamTask : IParallelTask
    {
        public float* Data;
        public long Length;
        public SimdWidth Width;
        public float* Sinks;
        public Rendezvous Clock;

        public readonly void Execute(int index)
        {
            long start = Length * index / Clock.Parties, end = Length * (index + 1) / Clock.Parties;
            Clock.Arrive(index);
            Sinks[index] = SumStream(Data + start, end - start, Width);
            Clock.Finish(index);
        }
    }

    /// <summary>
    /// Makes the pool's threads start a measured loop together and times them from the first start
    /// to the last finish. A worker that wakes late would otherwise leave the caller running its
    /// loop alone (or running two tasks in turn), and the "all threads" figure would be one thread's.
    /// Each task waits at most 200 ms for the others (a pool busy with a nested dispatch runs tasks
    /// inline, one after another), so it can never hang.
    /// </summary>
    readonly struct Rendezvous : IDisposable
    {
        readonly long* _words; // [0] arrived count, then a (start, end) timestamp pair per party

        public Rendezvous(int parties)
        {
            Parties = parties;
            _words = (long*)NativeMemory.AllocZeroed((nuint)(1 + 2 * parties), sizeof(long));
        }

        public int Parties { get; }

        public void Reset() => NativeMemory.Clear(_words, (nuint)((1 + 2 * Parties) * sizeof(long)));

        public void Arrive(int index)
        {
            Interlocked.Increment(ref _words[0]);
            long deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 5;
            while (Volatile.Read(ref _words[0]) < Parties && Stopwatch.GetTimestamp() < deadline) Thread.SpinWait(1);
            _words[1 + 2 * index] = Stopwatch.GetTimestamp();
        }

        public void Finish(int index) => _words[2 + 2 * index] = Stopwatch.GetTimestamp();

        /// <summary>Seconds from the first start to the last finish.</summary>
        public double Seconds()
        {
            long first = long.MaxValue, last = long.MinValue;
            for (int i = 0; i < Parties; i++)
            {
                first = Math.Min(first, _words[1 + 2 * i]);
                last = Math.Max(last, _words[2 + 2 * i]);
            }
            return (double)(last - first) / Stopwatch.Frequency;
        }

        public void Dispose() => NativeMemory.Free(_words);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float SumStream(float* p, long n, SimdWidth width)
    {
        long i = 0;
        float sum = 0;
        if (width == SimdWidth.V512)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            for (; i + 128 <= n; i += 128)
            {
                a0 += Vector512.Load(p + i);
                a1 += Vector512.Load(p + i + 16);
                a2 += Vector512.Load(p + i + 32);
                a3 += Vector512.Load(p + i + 48);
                a4 += Vector512.Load(p + i + 64);
                a5 += Vector512.Load(p + i + 80);
                a6 += Vector512.Load(p + i + 96);
                a7 += Vector512.Load(p + i + 112);
            }
            sum = Vector512.Sum((a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7));
        }
        else if (width == SimdWidth.V256)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            for (; i + 64 <= n; i += 64)
            {
                a0 += Vector256.Load(p + i);
                a1 += Vector256.Load(p + i + 8);
                a2 += Vector256.Load(p + i + 16);
                a3 += Vector256.Load(p + i + 24);
                a4 += Vector256.Load(p + i + 32);
                a5 += Vector256.Load(p + i + 40);
                a6 += Vector256.Load(p + i + 48);
                a7 += Vector256.Load(p + i + 56);
            }
            sum = Vector256.Sum((a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7));
        }
        else if (width == SimdWidth.V128)
        {
            Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            for (; i + 32 <= n; i += 32)
            {
                a0 += Vector128.Load(p + i);
                a1 += Vector128.Load(p + i + 4);
                a2 += Vector128.Load(p + i + 8);
                a3 += Vector128.Load(p + i + 12);
                a4 += Vector128.Load(p + i + 16);
                a5 += Vector128.Load(p + i + 20);
                a6 += Vector128.Load(p + i + 24);
                a7 += Vector128.Load(p + i + 28);
            }
            sum = Vector128.Sum((a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7));
        }
        else
        {
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (; i + 4 <= n; i += 4)
            {
                s0 += p[i];
                s1 += p[i + 1];
                s2 += p[i + 2];
                s3 += p[i + 3];
            }
            sum = (s0 + s1) + (s2 + s3);
        }
        for (; i < n; i++) sum += p[i];
        return sum;
    }

    // ---------------------------------------------------------------- FMA peak

    /// <summary>
    /// Median FMA throughput in GFLOP/s over <paramref name="repetitions"/> runs of
    /// <paramref name="iterations"/> loop iterations per thread: all threads of <paramref name="pool"/>
    /// at once (total flops from the first start to the last finish), and the calling thread alone.
    /// </summary>
    public static (double AllThreads, double PerThread) MeasureFmaPeak(KernelPool pool, int iterations, int repetitions, SimdWidth width)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(repetitions, 1);
        int lanes = width == SimdWidth.Scalar ? 1 : (int)width / 32;
        double flopsPerThread = 2.0 * FmaChains * lanes * iterations;
        int threads = pool.ThreadCount;
        var sinks = new float[threads];
        using var clock = new Rendezvous(threads);
        fixed (float* s = sinks)
        {
            var task = new FmaTask { Iterations = iterations, Width = width, Sinks = s, Clock = clock };
            s_sink += FmaLoop(iterations, width); // compiles the loop before timing
            var one = new double[repetitions];
            for (int r = 0; r < repetitions; r++)
            {
                long t0 = Stopwatch.GetTimestamp();
                s_sink += FmaLoop(iterations, width);
                one[r] = flopsPerThread / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
            }
            var all = new double[repetitions];
            for (int r = -1; r < repetitions; r++) // r = -1: warm-up
            {
                clock.Reset();
                pool.Run(threads, ref task);
                if (r >= 0) all[r] = flopsPerThread * threads / clock.Seconds() / 1e9;
            }
            for (int i = 0; i < threads; i++) s_sink += s[i];
            return (Median(all), Median(one));
        }
    }

    struct FmaTask : IParallelTask
    {
        public int Iterations;
        public SimdWidth Width;
        public float* Sinks;
        public Rendezvous Clock;

        public readonly void Execute(int index)
        {
            Clock.Arrive(index);
            Sinks[index] = FmaLoop(Iterations, Width);
            Clock.Finish(index);
        }
    }

    internal static float FmaLoop(int iterations, SimdWidth width) => width switch
    {
        SimdWidth.V512 => FmaLoop512(iterations),
        SimdWidth.V256 => FmaLoop256(iterations),
        SimdWidth.V128 => FmaLoop128(iterations),
        _ => FmaLoopScalar(iterations),
    };

    // acc ← acc·m + c converges to c/(1−m) = 1: no overflow, no denormals, however long it runs.
    // MultiplyAddEstimate is one fused instruction where the hardware has FMA, else a multiply and an add.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float FmaLoop512(int iterations)
    {
        var m = Vector512.Create(0.9999f);
        var c = Vector512.Create(0.0001f);
        Vector512<float> a0 = Vector512.Create(0.10f), a1 = Vector512.Create(0.11f), a2 = Vector512.Create(0.12f), a3 = Vector512.Create(0.13f),
            a4 = Vector512.Create(0.14f), a5 = Vector512.Create(0.15f), a6 = Vector512.Create(0.16f), a7 = Vector512.Create(0.17f),
            a8 = Vector512.Create(0.18f), a9 = Vector512.Create(0.19f), a10 = Vector512.Create(0.20f), a11 = Vector512.Create(0.21f);
        for (int i = 0; i < iterations; i++)
        {
            a0 = Vector512.MultiplyAddEstimate(a0, m, c);
            a1 = Vector512.MultiplyAddEstimate(a1, m, c);
            a2 = Vector512.MultiplyAddEstimate(a2, m, c);
            a3 = Vector512.MultiplyAddEstimate(a3, m, c);
            a4 = Vector512.MultiplyAddEstimate(a4, m, c);
            a5 = Vector512.MultiplyAddEstimate(a5, m, c);
            a6 = Vector512.MultiplyAddEstimate(a6, m, c);
            a7 = Vector512.MultiplyAddEstimate(a7, m, c);
            a8 = Vector512.MultiplyAddEstimate(a8, m, c);
            a9 = Vector512.MultiplyAddEstimate(a9, m, c);
            a10 = Vector512.MultiplyAddEstimate(a10, m, c);
            a11 = Vector512.MultiplyAddEstimate(a11, m, c);
        }
        return Vector512.Sum(((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11)));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float FmaLoop256(int iterations)
    {
        var m = Vector256.Create(0.9999f);
        var c = Vector256.Create(0.0001f);
        Vector256<float> a0 = Vector256.Create(0.10f), a1 = Vector256.Create(0.11f), a2 = Vector256.Create(0.12f), a3 = Vector256.Create(0.13f),
            a4 = Vector256.Create(0.14f), a5 = Vector256.Create(0.15f), a6 = Vector256.Create(0.16f), a7 = Vector256.Create(0.17f),
            a8 = Vector256.Create(0.18f), a9 = Vector256.Create(0.19f), a10 = Vector256.Create(0.20f), a11 = Vector256.Create(0.21f);
        for (int i = 0; i < iterations; i++)
        {
            a0 = Vector256.MultiplyAddEstimate(a0, m, c);
            a1 = Vector256.MultiplyAddEstimate(a1, m, c);
            a2 = Vector256.MultiplyAddEstimate(a2, m, c);
            a3 = Vector256.MultiplyAddEstimate(a3, m, c);
            a4 = Vector256.MultiplyAddEstimate(a4, m, c);
            a5 = Vector256.MultiplyAddEstimate(a5, m, c);
            a6 = Vector256.MultiplyAddEstimate(a6, m, c);
            a7 = Vector256.MultiplyAddEstimate(a7, m, c);
            a8 = Vector256.MultiplyAddEstimate(a8, m, c);
            a9 = Vector256.MultiplyAddEstimate(a9, m, c);
            a10 = Vector256.MultiplyAddEstimate(a10, m, c);
            a11 = Vector256.MultiplyAddEstimate(a11, m, c);
        }
        return Vector256.Sum(((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11)));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float FmaLoop128(int iterations)
    {
        var m = Vector128.Create(0.9999f);
        var c = Vector128.Create(0.0001f);
        Vector128<float> a0 = Vector128.Create(0.10f), a1 = Vector128.Create(0.11f), a2 = Vector128.Create(0.12f), a3 = Vector128.Create(0.13f),
            a4 = Vector128.Create(0.14f), a5 = Vector128.Create(0.15f), a6 = Vector128.Create(0.16f), a7 = Vector128.Create(0.17f),
            a8 = Vector128.Create(0.18f), a9 = Vector128.Create(0.19f), a10 = Vector128.Create(0.20f), a11 = Vector128.Create(0.21f);
        for (int i = 0; i < iterations; i++)
        {
            a0 = Vector128.MultiplyAddEstimate(a0, m, c);
            a1 = Vector128.MultiplyAddEstimate(a1, m, c);
            a2 = Vector128.MultiplyAddEstimate(a2, m, c);
            a3 = Vector128.MultiplyAddEstimate(a3, m, c);
            a4 = Vector128.MultiplyAddEstimate(a4, m, c);
            a5 = Vector128.MultiplyAddEstimate(a5, m, c);
            a6 = Vector128.MultiplyAddEstimate(a6, m, c);
            a7 = Vector128.MultiplyAddEstimate(a7, m, c);
            a8 = Vector128.MultiplyAddEstimate(a8, m, c);
            a9 = Vector128.MultiplyAddEstimate(a9, m, c);
            a10 = Vector128.MultiplyAddEstimate(a10, m, c);
            a11 = Vector128.MultiplyAddEstimate(a11, m, c);
        }
        return Vector128.Sum(((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11)));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float FmaLoopScalar(int iterations)
    {
        const float m = 0.9999f, c = 0.0001f;
        float a0 = 0.10f, a1 = 0.11f, a2 = 0.12f, a3 = 0.13f, a4 = 0.14f, a5 = 0.15f,
            a6 = 0.16f, a7 = 0.17f, a8 = 0.18f, a9 = 0.19f, a10 = 0.20f, a11 = 0.21f;
        for (int i = 0; i < iterations; i++)
        {
            a0 = float.MultiplyAddEstimate(a0, m, c);
            a1 = float.MultiplyAddEstimate(a1, m, c);
            a2 = float.MultiplyAddEstimate(a2, m, c);
            a3 = float.MultiplyAddEstimate(a3, m, c);
            a4 = float.MultiplyAddEstimate(a4, m, c);
            a5 = float.MultiplyAddEstimate(a5, m, c);
            a6 = float.MultiplyAddEstimate(a6, m, c);
            a7 = float.MultiplyAddEstimate(a7, m, c);
            a8 = float.MultiplyAddEstimate(a8, m, c);
            a9 = float.MultiplyAddEstimate(a9, m, c);
            a10 = float.MultiplyAddEstimate(a10, m, c);
            a11 = float.MultiplyAddEstimate(a11, m, c);
        }
        return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
    }
}
