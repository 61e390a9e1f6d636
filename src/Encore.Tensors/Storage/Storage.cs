namespace Encore.Tensors.Storage;

/// <summary>
/// A block of bytes that tensors view. Reference-counted: every tensor that views it holds one
/// reference, and the memory is released deterministically when the last one is disposed.
/// A finalizer releases what a caller forgot to dispose.
/// </summary>
public abstract unsafe class TensorStorage
{
    int _refs = 1;

    protected TensorStorage(byte* pointer, long byteLength, bool isReadOnly)
    {
        Pointer = pointer;
        ByteLength = byteLength;
        IsReadOnly = isReadOnly;
    }

    ~TensorStorage()
    {
        if (Interlocked.Exchange(ref _refs, 0) > 0) Free(finalizing: true);
    }

    /// <summary>Start of the bytes; valid while at least one reference is held.</summary>
    public byte* Pointer { get; private set; }

    /// <summary>Size in bytes.</summary>
    public long ByteLength { get; }

    /// <summary>True for memory that must not be written (memory-mapped weights).</summary>
    public bool IsReadOnly { get; }

    /// <summary>True once the memory has been released.</summary>
    public bool IsReleased => Volatile.Read(ref _refs) <= 0;

    /// <summary>Adds a reference (a new view).</summary>
    public void AddRef()
    {
        int r;
        do
        {
            r = Volatile.Read(ref _refs);
            if (r <= 0) throw new ObjectDisposedException(GetType().Name, "the storage was already released");
        } while (Interlocked.CompareExchange(ref _refs, r + 1, r) != r);
    }

    /// <summary>Drops a reference; the last one frees the memory.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _refs) == 0)
        {
            Free(finalizing: false);
            Pointer = null;
            GC.SuppressFinalize(this);
        }
    }

    /// <summary>
    /// Frees the underlying memory (called once). <paramref name="finalizing"/> is true on the
    /// finalizer thread, where other managed objects may already be finalized.
    /// </summary>
    protected abstract void Free(bool finalizing);
}

/// <summary>
/// A byte range of another storage, holding one reference to it: lets a tensor start at any byte
/// (block formats whose blocks are 18 or 34 bytes long rarely start at a multiple of their block size
/// inside a file).
/// </summary>
public sealed unsafe class SubStorage : TensorStorage
{
    readonly TensorStorage _parent;

    SubStorage(TensorStorage parent, long offset, long length)
        : base(parent.Pointer + offset, length, parent.IsReadOnly)
    {
        _parent = parent;
    }

    /// <summary>
    /// Bytes [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="length"/>) of
    /// <paramref name="parent"/>; the parent stays alive until this storage is released.
    /// </summary>
    public static SubStorage Of(TensorStorage parent, long offset, long length)
    {
        ArgumentNullException.ThrowIfNull(parent);
        if (offset < 0 || length < 0 || offset > parent.ByteLength - length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{length} bytes at offset {offset} lie outside the storage ({parent.ByteLength} bytes)");
        parent.AddRef();
        return new SubStorage(parent, offset, length);
    }

    /// <inheritdoc/>
    protected override void Free(bool finalizing)
    {
        // On the finalizer thread the parent may be finalized already; its own finalizer frees it then.
        if (!finalizing) _parent.Release();
    }
}
