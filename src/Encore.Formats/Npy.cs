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
        string shape = tensor.Rank == 1 ? $"({tensor.Shape[0]},)" : $"({string.Join(", ", tensor.Shape.ToArray())})";
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in '\n'.
        int total = 10 + dict.Length + 1;
        int pad = (64 - total % 64) % 64;
        var header = dict + new string(' ', pad) + "\n";
        using var c = tensor.Contiguous();
        AtomicFile.Write(path, s =>
        {
            s.WriteByte(0x93);
            s.Write("NUMPY"u8);
            s.WriteByte(1);
            s.WriteByte(0);
            s.WriteByte((byte)(header.Length & 0xFF));
            s.WriteByte((byte)(header.Length >> 8));
            s.Write(Encoding.ASCII.GetBytes(header));
            s.Write(new ReadOnlySpan<byte>(c.DataPointer, checked((int)c.ByteLength)));
        });
    }
}
