using System.IO.MemoryMappedFiles;

namespace Encore.Tensors.Storage;

/// <summary>
/// A read-only memory-mapped file region. Tensors over it are zero-copy views of the file
/// (weights are paged in on first touch and shared between processes).
/// </summary>
public sealed unsafe class MappedStorage : TensorStorage
{
    readonly MemoryMappedFile _file;
    readonly MemoryMappedViewAccessor _view;
    readonly byte* _base;

    MappedStorage(MemoryMappedFile file, MemoryMappedViewAccessor view, byte* basePtr, long offset, long length)
        : base(basePtr + offset, length, isReadOnly: true)
    {
        _file = file;
        _view = view;
        _base = basePtr;
    }

    /// <summary>Path of the mapped file.</summary>
    public string Path { get; private init; } = "";

    /// <summary>Maps <paramref name="length"/> bytes of <paramref name="path"/> from <paramref name="offset"/> (the rest of the file by default).</summary>
    public static MappedStorage Open(string path, long offset = 0, long length = -1)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"{path}: no such file", path);
        // A symbolic link (the Hugging Face cache's snapshot entries are links into blobs/) is measured by
        // the file it points at: FileInfo.Length is the link's own length.
        if (info.LinkTarget is not null)
        {
            var target = info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo;
            if (target is not { Exists: true }) throw new FileNotFoundException($"{path}: a link to {info.LinkTarget}, which does not exist", path);
            info = target;
        }
        long fileLength = info.Length;
        if (offset < 0 || offset > fileLength)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{path}: offset {offset} is outside the file ({fileLength} bytes)");
        if (length < 0) length = fileLength - offset;
        if (length > fileLength - offset)
            throw new ArgumentOutOfRangeException(nameof(length), $"{path}: {length} bytes from offset {offset} run past the end of the file ({fileLength} bytes)");
        if (fileLength == 0)
        {
            // A zero-length file cannot be mapped; give an empty storage.
            var empty = MemoryMappedFile.CreateNew(null, 1);
            var ev = empty.CreateViewAccessor(0, 1, MemoryMappedFileAccess.Read);
            byte* ep = null;
            ev.SafeMemoryMappedViewHandle.AcquirePointer(ref ep);
            return new MappedStorage(empty, ev, ep, 0, 0) { Path = path };
        }
        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            var view = file.CreateViewAccessor(0, fileLength, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            return new MappedStorage(file, view, p, offset, length) { Path = path };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    protected override void Free(bool finalizing)
    {
        // The view and file handles are SafeHandles that finalize themselves.
        if (finalizing) return;
        if (_base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
