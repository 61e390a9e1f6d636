using System.Runtime.CompilerServices;

namespace Encore.Tensors.Threading;

/// <summary>A unit of parallel work: <see cref="Execute"/> runs once for every index in [0, count).</summary>
public interface IParallelTask
{
    /// <summary>Runs task <paramref name="index"/>. Must not depend on which thread runs it.</summary>
    void Execute(int index);
}

/// <summary>
/// The thread pool kernels fan out to. Decode loops call many small kernels, so a dispatch must
/// cost microseconds, not the tens of microseconds of <c>Parallel.For</c>: workers spin briefly on a
/// generation counter before they sleep, the caller works too, tasks are claimed with one atomic
/// increment each, and nothing is allocated per dispatch (the task is a struct passed by reference).
/// Results never depend on the thread count's timing: a task index always covers the same work.
/// </summary>
public sealed unsafe class KernelPool : IDisposable
{
    static KernelPool? s_default;

    /// <summary>
    /// The pool kernels use unless given another. Its size is the <c>ENCORE_THREADS</c> environment
    /// variable when set, else the processor count.
    /// </summary>
    public static KernelPool Default
    {
        get => s_default ??= CreateDefault();
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            s_default = value;
        }
    }

    static KernelPool CreateDefault()
    {
        int n = Environment.ProcessorCount;
        var env = Environment.GetEnvironmentVariable("ENCORE_THREADS");
        if (!string.IsNullOrEmpty(env))
        {
            if (!int.TryParse(env, out n) || n < 1 || n > 1024)
                throw new InvalidOperationException($"ENCORE_THREADS='{env}' is not a thread count between 1 and 1024");
        }
        var pool = new KernelPool(n);
        Interlocked.CompareExchange(ref s_default, pool, null);
        return s_default!;
    }

    readonly Thread[] _workers;
    readonly SemaphoreSlim _wake = new(0);

    // The job being run; written before _state is published, read by workers after they see it.
    delegate*<void*, int, void> _fn;
    void* _ctx;
    int _count;
    // High 32 bits: dispatch generation; low 32 bits: next task index to claim. Claiming checks the
    // generation in the same compare-exchange, so a worker that read an older job can never run a
    // newer job's index with the older function.
    long _state;
    int _pending;       // tasks not yet finished
    int _sleepers;      // workers blocked on _wake
    int _busy;          // 1 while a dispatch is in progress
    volatile bool _disposed;
    Exception? _error;

    /// <summary>Spin iterations a worker waits for new work before it sleeps (about 50 µs).</summary>
    public int SpinIterations { get; set; } = 20_000;

    /// <summary>Creates a pool of <paramref name="threads"/> threads, the caller included.</summary>
    public KernelPool(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ThreadCount = threads;
        _workers = new Thread[threads - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"encore-kernel-{i + 1}" };
            _workers[i].Start();
        }
    }

    /// <summary>Threads that run tasks, the dispatching thread included.</summary>
    public int ThreadCount { get; }

    /// <summary>Runs <paramref name="task"/>.Execute(i) for i in [0, count) across the pool and waits for all.</summary>
    public void Run<T>(int count, ref T task) where T : struct, IParallelTask
    {
        if (count <= 0) return;
        if (count == 1 || _workers.Length == 0)
        {
            for (int i = 0; i < count; i++) task.Execute(i);
            return;
        }
        // Nested or concurrent dispatch (a kernel called from inside a task, or from two threads)
        // runs inline: correct, and it never deadlocks.
        if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            for (int i = 0; i < count; i++) task.Execute(i);
            return;
        }
        try
        {
#pragma warning disable CS8500 // the task is pinned for the duration of the dispatch
            fixed (T* p = &task)
            {
                // Close the previous job before its description is overwritten: a worker that saw that
                // job's generation late reads the fields below while _state still shows that
                // generation, and must find no index left to claim whatever count it read.
                long previous = Volatile.Read(ref _state) >> 32;
                Interlocked.Exchange(ref _state, (previous << 32) | int.MaxValue);
                _fn = &Trampoline<T>;
                _ctx = p;
#pragma warning restore CS8500
                _count = count;
                _error = null;
                Volatile.Write(ref _pending, count);
                JobWritten?.Invoke();
                long generation = previous + 1;
                // A full fence (not just a release): pairs with the worker's increment of _sleepers
                // before its last look at _state, so either it sees this job or we see it asleep.
                Interlocked.Exchange(ref _state, generation << 32);
                int sleepers = Volatile.Read(ref _sleepers);
                if (sleepers > 0) _wake.Release(Math.Min(sleepers, Math.Min(count - 1, _workers.Length)));

                Work(generation);
                var spin = new SpinWait();
                while (Volatile.Read(ref _pending) > 0)
                {
                    if (spin.Count < 100) spin.SpinOnce(-1);
                    else Thread.Yield();
                }
            }
            if (_error is { } e)
                throw new AggregateException("a kernel task failed", e);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    static void Trampoline<T>(void* ctx, int index) where T : struct, IParallelTask
        => Unsafe.AsRef<T>(ctx).Execute(index);

    /// <summary>Test seam: runs between writing a job's description and publishing it (null in use).</summary>
    internal Action? JobWritten;

    /// <summary>The generation of the job last published.</summary>
    internal long Generation => Volatile.Read(ref _state) >> 32;

    internal void Work(long generation)
    {
        var fn = _fn;
        var ctx = _ctx;
        int count = _count;
        while (true)
        {
            long st = Volatile.Read(ref _state);
            if (st >> 32 != generation) return;
            int i = (int)(st & 0xFFFF_FFFF);
            if (i >= count) return;
            if (Interlocked.CompareExchange(ref _state, st + 1, st) != st) continue;
            try
            {
                fn(ctx, i);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, e, null);
            }
            Interlocked.Decrement(ref _pending);
        }
    }

    void WorkerLoop()
    {
        long seen = 0;
        while (!_disposed)
        {
            long g = Volatile.Read(ref _state) >> 32;
            if (g != seen)
            {
                seen = g;
                Work(g);
                continue;
            }
            // Spin first: the next kernel of a decode step usually follows within microseconds.
            int spins = SpinIterations;
            bool found = false;
            for (int s = 0; s < spins; s++)
            {
                if (Volatile.Read(ref _state) >> 32 != seen) { found = true; break; }
                Thread.SpinWait(1);
            }
            if (found) continue;
            Interlocked.Increment(ref _sleepers);
            // Re-check after registering as a sleeper, so a dispatch that read _sleepers == 0 is not
            // missed. The timeout is only a safety net; a sleeping pool uses no CPU.
            if (Volatile.Read(ref _state) >> 32 == seen && !_disposed) _wake.Wait(100);
            Interlocked.Decrement(ref _sleepers);
        }
    }

    /// <summary>Stops the workers.</summary>
    public void Dispose()
    {
        _disposed = true;
        if (_workers.Length > 0) _wake.Release(_workers.Length);
        foreach (var t in _workers) t.Join();
        _wake.Dispose();
    }
}

/// <summary>Helpers for splitting work into tasks.</summary>
public static class Partition
{
    /// <summary>
    /// Number of tasks to split <paramref name="work"/> units into: enough to balance the pool,
    /// no task smaller than <paramref name="minPerTask"/>.
    /// </summary>
    public static int Tasks(long work, long minPerTask, KernelPool pool)
    {
        if (work <= 0) return 0;
        long byGrain = Math.Max(1, work / Math.Max(1, minPerTask));
        return (int)Math.Min(byGrain, pool.ThreadCount * 4L);
    }

    /// <summary>The half-open range [start, end) of task <paramref name="index"/> when <paramref name="n"/> items split into <paramref name="tasks"/>.</summary>
    public static (int Start, int End) Range(int n, int tasks, int index)
    {
        long start = (long)n * index / tasks;
        long end = (long)n * (index + 1) / tasks;
        return ((int)start, (int)end);
    }
}
