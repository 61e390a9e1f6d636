using System.Runtime.InteropServices;

namespace Encore.Tensors.Storage;

/// <summary>Writable native memory aligned to <see cref="Alignment"/> bytes (a cache line, and one AVX-512 vector).</summary>
/// <remarks>
/// Buffers of at least <see cref="BufferPool.MinPooledBytes"/> come from <see cref="BufferPool"/>:
/// a training step allocates and frees the same activation and gradient sizes every step, and
/// taking them from the operating system each time costs a page fault per 4 KiB touched.
/// </remarks>
public sealed unsafe class NativeBuffer : TensorStorage
{
    /// <summary>Alignment of every buffer, in bytes.</summary>
    public const int Alignment = 64;

    NativeBuffer(byte* p, long n, nuint size) : base(p, n, isReadOnly: false) => _size = size;

    readonly nuint _size;

    /// <summary>Allocates <paramref name="byteLength"/> bytes, zeroed when <paramref name="zero"/> is set.</summary>
    public static NativeBuffer Allocate(long byteLength, bool zero = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(byteLength);
        // Round up so vector loops may read (never use) a whole final vector.
        nuint size = BufferPool.SizeClass((nuint)Math.Max(Alignment, (byteLength + Alignment - 1) / Alignment * Alignment));
        var p = BufferPool.Rent(size);
        if (zero) NativeMemory.Clear(p, size);
        return new NativeBuffer(p, byteLength, size);
    }

    protected override void Free(bool finalizing) => BufferPool.Return(Pointer, _size);
}

/// <summary>
/// Keeps freed native buffers for reuse, by size class, up to <see cref="LimitBytes"/> in all
/// (the caching allocator of PyTorch's GPU backend, for host memory). Sizes from
/// <see cref="MinPooledBytes"/> up are rounded to a quarter of their power of two, so a batch a
/// little shorter than the last reuses its buffers; smaller ones go straight to the C allocator.
/// Thread-safe (a finalizer may return a buffer).
/// </summary>
public static unsafe class BufferPool
{
    /// <summary>Buffers smaller than this are not kept.</summary>
    public const int MinPooledBytes = 64 * 1024;

    static readonly object s_lock = new();
    static readonly Dictionary<nuint, Stack<nint>> s_free = [];
    static long s_retained;
    static long s_limit = EnvironmentLimit() ?? 0;

    static long? EnvironmentLimit()
    {
        var env = Environment.GetEnvironmentVariable("ENCORE_BUFFER_POOL_MB");
        return env != null && long.TryParse(env, out long mb) && mb >= 0 ? mb << 20 : null;
    }

    static long DefaultLimit() => EnvironmentLimit() is { } env ? env : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes is > 0 and var total ? total / 4 : 1L << 30;

    static int s_scopes;

    /// <summary>
    /// Pools buffers until the returned scope is disposed (training does this around its steps):
    /// while any scope is open the limit is a quarter of the memory available to the process, or
    /// <c>ENCORE_BUFFER_POOL_MB</c> megabytes; when the last one closes it falls back to the
    /// environment's limit (0 without one) and frees what exceeds it. Scopes may overlap across
    /// threads. Inference passes reuse their buffers through workspaces and run unpooled.
    /// </summary>
    public static Scope Enable()
    {
        if (Interlocked.Increment(ref s_scopes) == 1) LimitBytes = DefaultLimit();
        return new Scope(true);
    }

    /// <summary>The extent of <see cref="Enable"/>.</summary>
    public readonly struct Scope(bool open) : IDisposable
    {
        /// <summary>Closes the scope; the last one to close turns pooling back to the environment's limit.</summary>
        public void Dispose()
        {
            if (open && Interlocked.Decrement(ref s_scopes) == 0) LimitBytes = EnvironmentLimit() ?? 0;
        }
    }

    /// <summary>
    /// Bytes of freed buffers kept for reuse at most; 0 (the default, unless <c>ENCORE_BUFFER_POOL_MB</c>
    /// is set) turns pooling off; see <see cref="Enable"/>. Lowering it frees what exceeds the new limit.
    /// </summary>
    public static long LimitBytes
    {
        get => Volatile.Read(ref s_limit);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            Volatile.Write(ref s_limit, value);
            Trim(value);
        }
    }

    /// <summary>Bytes of freed buffers held for reuse now.</summary>
    public static long RetainedBytes => Interlocked.Read(ref s_retained);

    /// <summary>Returns every kept buffer to the operating system.</summary>
    public static void Clear() => Trim(0);

    /// <summary>The size actually allocated for a request of <paramref name="size"/> bytes.</summary>
    internal static nuint SizeClass(nuint size)
    {
        if (size < MinPooledBytes) return size;
        nuint step = (nuint)1 << (63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)size) - 2);
        return (size + step - 1) / step * step;
    }

    internal static byte* Rent(nuint size)
    {
        if (size >= MinPooledBytes)
            lock (s_lock)
                if (s_free.TryGetValue(size, out var stack) && stack.Count > 0)
                {
                    s_retained -= (long)size;
                    return (byte*)stack.Pop();
                }
        var p = (byte*)NativeMemory.AlignedAlloc(size, NativeBuffer.Alignment);
        if (p == null && RetainedBytes > 0)
        {
            Clear();
            p = (byte*)NativeMemory.AlignedAlloc(size, NativeBuffer.Alignment);
        }
        if (p == null) throw new OutOfMemoryException($"could not allocate {size} bytes");
        GC.AddMemoryPressure((long)size);
        return p;
    }

    internal static void Return(byte* p, nuint size)
    {
        if (size >= MinPooledBytes)
            lock (s_lock)
                if (s_retained + (long)size <= s_limit)
                {
                    if (!s_free.TryGetValue(size, out var stack)) s_free[size] = stack = new Stack<nint>();
                    stack.Push((nint)p);
                    s_retained += (long)size;
                    return;
                }
        Release(p, size);
    }

    static void Release(byte* p, nuint size)
    {
        NativeMemory.AlignedFree(p);
        GC.RemoveMemoryPressure((long)size);
    }

    static void Trim(long keep)
    {
        List<(nint, nuint)> freed = [];
        lock (s_lock)
        {
            foreach (var (size, stack) in s_free)
                while (s_retained > keep && stack.Count > 0)
                {
                    freed.Add((stack.Pop(), size));
                    s_retained -= (long)size;
                }
        }
        foreach (var (p, size) in freed) Release((byte*)p, size);
    }
}
