using Encore.Tensors.Threading;

namespace Encore.Tensors.Tests;

public class KernelPoolTests
{
    unsafe struct FillTask : IParallelTask
    {
        public int* Hits;
        public int* Thread;
        public void Execute(int index)
        {
            Interlocked.Increment(ref Hits[index]);
            Thread[index] = Environment.CurrentManagedThreadId;
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 17)]
    [InlineData(4, 1000)]
    public unsafe void EveryIndexRunsExactlyOnce(int threads, int count)
    {
        using var pool = new KernelPool(threads);
        var hits = new int[count];
        var ids = new int[count];
        for (int round = 0; round < 50; round++)
        {
            Array.Clear(hits);
            fixed (int* h = hits, t = ids)
            {
                var task = new FillTask { Hits = h, Thread = t };
                pool.Run(count, ref task);
            }
            Assert.All(hits, x => Assert.Equal(1, x));
        }
    }

    // Back-to-back dispatches of different counts: a worker that saw one job's generation late must
    // neither run an index of the next job before that job is published (which would run it twice) nor
    // run the next job's indices against the previous job's task (which writes past its count).
    [Fact]
    public unsafe void BackToBackJobsOfDifferentCountsNeverMix()
    {
        using var pool = new KernelPool(2) { SpinIterations = 0 };
        const int max = 16;
        var arrays = new[] { new int[max], new int[max] };
        var ids = new int[max];
        for (int round = 0; round < 20_000; round++)
        {
            int count = round % 2 == 0 ? 2 : max;
            var hits = arrays[round % 2];
            Array.Clear(hits);
            fixed (int* h = hits, t = ids)
            {
                var task = new FillTask { Hits = h, Thread = t };
                pool.Run(count, ref task);
            }
            for (int i = 0; i < max; i++) Assert.Equal(i < count ? 1 : 0, hits[i]);
            if (round > 0)
            {
                // The previous job's hits must not have changed while this one was being set up.
                var previous = arrays[(round + 1) % 2];
                int previousCount = round % 2 == 0 ? max : 2;
                for (int i = 0; i < max; i++) Assert.Equal(i < previousCount ? 1 : 0, previous[i]);
            }
        }
    }

    // The same race, forced: a worker that saw job A's generation runs late, while job B's
    // description is already written but not yet published. It must claim nothing.
    [Fact]
    public unsafe void AWorkerLateForTheLastJobClaimsNothingOfTheNext()
    {
        using var pool = new KernelPool(2);
        var hits = new int[16];
        var ids = new int[16];
        fixed (int* h = hits, t = ids)
        {
            var first = new FillTask { Hits = h, Thread = t };
            pool.Run(2, ref first);
            long stale = pool.Generation;
            Array.Clear(hits);
            pool.JobWritten = () => pool.Work(stale);
            try
            {
                var next = new FillTask { Hits = h, Thread = t };
                pool.Run(16, ref next);
            }
            finally
            {
                pool.JobWritten = null;
            }
        }
        Assert.All(hits, x => Assert.Equal(1, x));
    }

    [Fact]
    public unsafe void WorkIsSpreadOverThePoolThreads()
    {
        using var pool = new KernelPool(2);
        var hits = new int[64];
        var ids = new int[64];
        var seen = new HashSet<int>();
        // Tasks that take a little time give the second thread a chance to claim some.
        for (int round = 0; round < 200 && seen.Count < 2; round++)
        {
            fixed (int* h = hits, t = ids)
            {
                var task = new SlowTask { Thread = t };
                pool.Run(64, ref task);
            }
            foreach (var id in ids) seen.Add(id);
        }
        Assert.Equal(2, seen.Count);
    }

    unsafe struct SlowTask : IParallelTask
    {
        public int* Thread;
        public void Execute(int index)
        {
            System.Threading.Thread.SpinWait(2000);
            Thread[index] = Environment.CurrentManagedThreadId;
        }
    }

    struct ThrowingTask : IParallelTask
    {
        public void Execute(int index)
        {
            if (index == 5) throw new InvalidOperationException("task 5 failed");
        }
    }

    [Fact]
    public void AnExceptionInATaskReachesTheCallerAndThePoolStillWorks()
    {
        using var pool = new KernelPool(2);
        var t = new ThrowingTask();
        var e = Assert.Throws<AggregateException>(() => pool.Run(16, ref t));
        Assert.Contains("task 5 failed", e.InnerException!.Message);
        var hits = new int[8];
        unsafe
        {
            fixed (int* h = hits)
            {
                int* ids = stackalloc int[8];
                var ok = new FillTask { Hits = h, Thread = ids };
                pool.Run(8, ref ok);
            }
        }
        Assert.All(hits, x => Assert.Equal(1, x));
    }

    unsafe struct NestedTask : IParallelTask
    {
        public KernelPool Pool;
        public int* Hits;
        public void Execute(int index)
        {
            var inner = new FillTask { Hits = Hits + index * 4, Thread = Hits + 64 + index * 4 };
            Pool.Run(4, ref inner);
        }
    }

    [Fact]
    public unsafe void NestedDispatchRunsInlineWithoutDeadlock()
    {
        using var pool = new KernelPool(2);
        var hits = new int[128];
        fixed (int* h = hits)
        {
            var task = new NestedTask { Pool = pool, Hits = h };
            pool.Run(16, ref task);
        }
        Assert.All(hits.Take(64), x => Assert.Equal(1, x));
    }

    [Fact]
    public void PartitionRangesCoverEveryItemOnce()
    {
        foreach (var (n, tasks) in new[] { (0, 1), (1, 1), (7, 3), (100, 8), (5, 8) })
        {
            int next = 0;
            for (int i = 0; i < tasks; i++)
            {
                var (s, e) = Partition.Range(n, tasks, i);
                Assert.Equal(next, s);
                Assert.True(e >= s);
                next = e;
            }
            Assert.Equal(n, next);
        }
    }
}
