using System.Text;
using Encore.Tensors;

namespace Encore.Formats.Tests;

public class NpyTests
{
    [Fact]
    public void WritesAVersion1HeaderAlignedTo64BytesAndTheRawValues()
    {
        var path = Path.GetTempFileName();
        try
        {
            using var t = Tensor.FromArray(new float[] { 1, -2, 3.5f, 0, 5, 6 }, 1, 2, 3);
            Npy.Write(path, t);
            var b = File.ReadAllBytes(path);
            Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }, b[..8]);
            int headerLength = b[8] | b[9] << 8;
            Assert.Equal(0, (10 + headerLength) % 64);
            var header = Encoding.ASCII.GetString(b, 10, headerLength);
            Assert.Equal("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", header.TrimEnd());
            Assert.EndsWith("\n", header);
            var values = new float[6];
            Buffer.BlockCopy(b, 10 + headerLength, values, 0, 24);
            Assert.Equal(new float[] { 1, -2, 3.5f, 0, 5, 6 }, values);
            using var bf = t.To(DType.BF16);
            Assert.Throws<ArgumentException>(() => Npy.Write(path, bf));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
