using System.Diagnostics;

namespace Encore.Bench;

/// <summary>
/// The timing rule every figure of a suite follows (and the peer scripts copy): <c>runs + 1</c> runs,
/// each repeating the call until at least <c>minSeconds</c> have passed (at least once), so fast
/// kernels are not timed at the clock's resolution; the first run is a warm-up (JIT tiering, page
/// faults, caches, sleeping workers) and is discarded; the figure is the median of the others'
/// seconds per call.
/// </summary>
public static class Timing
{
    /// <summary>Median seconds per call of <paramref name="call"/> (its argument counts calls from 0, for rotating inputs).</summary>
    public static double MedianSecondsPerCall(Action<long> call, int runs, double minSeconds)
    {
        ArgumentNullException.ThrowIfNull(call);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        long index = 0;
        var perCall = new double[runs];
        long minTicks = (long)(minSeconds * Stopwatch.Frequency);
        for (int r = -1; r < runs; r++)
        {
            long calls = 0;
            long t0 = Stopwatch.GetTimestamp(), elapsed;
            do
            {
                call(index++);
                calls++;
                elapsed = Stopwatch.GetTimestamp() - t0;
            }
            while (elapsed < minTicks);
            if (r >= 0) perCall[r] = (double)elapsed / Stopwatch.Frequency / calls;
        }
        return MachineProbe.Median(perCall);
    }
}
