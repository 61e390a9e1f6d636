using System.Text;
using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Formats;

/// <summary>NumPy's .npy format (version 1.0), for float32 and int32 arrays: what <c>numpy.load</c> reads.</summary>
public static class Npy
{
    /// <summary>Writes <paramref name="tensor"/> (F32 or I32, any shape) to <paramref name="path"/>, atomically.</summary>
    public static unsafe void Write(string path, Tensor tensor)
    {
        string descr = tensor.DType switch
        {
            DType.F32 => "<f4",
            DType.I32 => "<i4",
            _ => throw new ArgumentException($".npy output holds f32 or i32, not {tensor.DType.Name()}"),
        };
        using var c = tensor.Contiguous();
        AtomicFile.Write(path, s =>
        {
            WriteHeader(s, descr, tensor.Shape.ToArray().Select(d => (long)d).ToArray());
            s.Write(new ReadOnlySpan<byte>(c.DataPointer, checked((int)c.ByteLength)));
        });
    }

    /// <summary>
    /// Writes the header of a C-order array of <paramref name="shape"/> whose elements are
    /// <paramref name="descr"/> ("&lt;f4" float32, "&lt;i4" int32); the caller writes the data after it
    /// (row by row, for an array too large to hold).
    /// </summary>
    public static void WriteHeader(Stream stream, string descr, IReadOnlyList<long> shape)
    {
        ArgumentNullException.ThrowIfNull(stream);
        string dims = shape.Count == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}";
        // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in '\n'.
        int total = 10 + dict.Length + 1;
        int pad = (64 - total % 64) % 64;
        var header = dict + new string(' ', pad) + "\n";
        if (header.Length > ushort.MaxValue) throw new ArgumentException($"a shape of {shape.Count} dimensions does not fit a version 1.0 header");
        stream.WriteByte(0x93);
        stream.Write("NUMPY"u8);
        stream.WriteByte(1);
        stream.WriteByte(0);
        stream.WriteByte((byte)(header.Length & 0xFF));
        stream.WriteByte((byte)(header.Length >> 8));
        stream.Write(Encoding.ASCII.GetBytes(header));
    }
}
