using System.Runtime.InteropServices;

namespace Encore.Tensors.Storage;

/// <summary>Writable native memory aligned to <see cref="Alignment"/> bytes (a cache line, and one AVX-512 vector).</summary>
public sealed unsafe class NativeBuffer : TensorStorage
{
    /// <summary>Alignment of every buffer, in bytes.</summary>
    public const int Alignment = 64;

    NativeBuffer(byte* p, long n) : base(p, n, isReadOnly: false) { }

    /// <summary>Allocates <paramref name="byteLength"/> bytes, zeroed when <paramref name="zero"/> is set.</summary>
    public static NativeBuffer Allocate(long byteLength, bool zero = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(byteLength);
        // Round up so vector loops may read (never use) a whole final vector.
        nuint size = (nuint)Math.Max(Alignment, (byteLength + Alignment - 1) / Alignment * Alignment);
        var p = (byte*)NativeMemory.AlignedAlloc(size, Alignment);
        if (p == null) throw new OutOfMemoryException($"could not allocate {byteLength} bytes");
        if (zero) NativeMemory.Clear(p, size);
        GC.AddMemoryPressure((long)size);
        return new NativeBuffer(p, byteLength) { _size = (long)size };
    }

    long _size;

    protected override void Free(bool finalizing)
    {
        NativeMemory.AlignedFree(Pointer);
        GC.RemoveMemoryPressure(_size);
    }
}
