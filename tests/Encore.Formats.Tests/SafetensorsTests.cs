using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Encore.Tensors;

namespace Encore.Formats.Tests;

public class SafetensorsTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-st-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    [Fact]
    public void ReadsAFileWrittenByTheReferenceScript()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture("small.json")));
        using var f = SafetensorsFile.Open(Fixture("small.safetensors"));
        Assert.Equal("pt", f.Metadata["format"]);
        foreach (var e in doc.RootElement.EnumerateObject())
        {
            using var t = f.Read(e.Name);
            var shape = e.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            Assert.Equal(shape, t.Shape.ToArray());
            var values = t.ToFloatArray();
            var want = e.Value.GetProperty("values").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            if (t.DType == DType.I32)
            {
                var ints = t.AsReadOnlySpan<int>().ToArray();
                Assert.Equal(want.Select(x => (int)x).ToArray(), ints);
            }
            else
            {
                for (int i = 0; i < want.Length; i++) Assert.Equal((float)want[i], values[i]);
            }
        }
        // F32/F16/BF16 are zero-copy views of the mapped file.
        using var w = f.Read("encoder.embed.weight");
        Assert.True(w.Storage.IsReadOnly);
        using var h = f.Read("decoder.norm.weight");
        Assert.Equal(DType.F16, h.DType);
        Assert.True(h.Storage.IsReadOnly);
    }

    [Fact]
    public void WriteThenReadRoundTripsEveryDtypeAndShards()
    {
        var rng = new Random(5);
        var tensors = new List<KeyValuePair<string, Tensor>>
        {
            new("a", Tensor.FromArray(Enumerable.Range(0, 12).Select(_ => (float)rng.NextDouble()).ToArray(), 3, 4)),
            new("b.bf16", Tensor.FromArray(new float[] { 1, -2, 3.5f, 1e-3f }, 4).To(DType.BF16)),
            new("c.f16", Tensor.FromArray(new float[] { 0.25f, 7 }, 2).To(DType.F16)),
            new("d.ids", Tensor.FromArray(new[] { 5, -6, 7 }, 3)),
            new("e.empty", Tensor.Zeros(DType.F32, 0, 4)),
        };
        SafetensorsCheckpoint.Write(Path.Combine(_dir, "one"), tensors);
        SafetensorsCheckpoint.Write(Path.Combine(_dir, "sharded"), tensors, maxShardBytes: 40);
        Assert.True(File.Exists(Path.Combine(_dir, "sharded", SafetensorsCheckpoint.IndexFile)));
        Assert.True(Directory.GetFiles(Path.Combine(_dir, "sharded"), "*.safetensors").Length > 1);
        foreach (var sub in new[] { "one", "sharded" })
        {
            using var ck = SafetensorsCheckpoint.Open(Path.Combine(_dir, sub));
            Assert.Equal(tensors.Select(t => t.Key).Order(), ck.Names.Order());
            foreach (var (name, t) in tensors)
            {
                using var back = ck.Read(name);
                Assert.Equal(t.DType, back.DType);
                Assert.Equal(t.Shape.ToArray(), back.Shape.ToArray());
                Assert.Equal(t.ToFloatArray(), back.ToFloatArray());
            }
        }
        // No temporary files are left behind.
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp", SearchOption.AllDirectories));
        foreach (var t in tensors) t.Value.Dispose();
    }

    [Fact]
    public void QuantizedTensorsRoundTripMappedAtAnyOffset()
    {
        var rng = new Random(6);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        // An odd-sized f16 tensor first, so the blocks that follow start at offsets that are not multiples
        // of 18 or 34 bytes.
        var tensors = new List<KeyValuePair<string, Tensor>>
        {
            new("odd.f16", Tensor.FromArray(Values(3), 3).To(DType.F16)),
            new("w.q4", Tensor.FromArray(Values(5 * 64), 5, 64).To(DType.Q4_0)),
            new("w.q8", Tensor.FromArray(Values(3 * 96), 3, 96).To(DType.Q8_0)),
            new("w2.q4", Tensor.FromArray(Values(2 * 32), 2, 32).To(DType.Q4_0)),
        };
        SafetensorsCheckpoint.Write(Path.Combine(_dir, "q"), tensors);
        using (var ck = SafetensorsCheckpoint.Open(Path.Combine(_dir, "q")))
        {
            foreach (var (name, t) in tensors)
            {
                using var back = ck.Read(name);
                Assert.Equal(t.DType, back.DType);
                Assert.Equal(t.Shape.ToArray(), back.Shape.ToArray());
                Assert.Equal(t.ToFloatArray(), back.ToFloatArray());
                if (t.DType.IsBlocked()) Assert.True(back.Storage.IsReadOnly, $"{name} is a view of the mapped file");
            }
        }
        var file = Path.Combine(_dir, "q", "model.safetensors");
        var header = Encoding.UTF8.GetString(File.ReadAllBytes(file).AsSpan(8, 400));
        Assert.Contains("\"dtype\":\"Q4_0\",\"shape\":[5,64],\"data_offsets\":[6,186]", header); // 5 rows × 2 blocks × 18 bytes after 6 bytes of f16
        foreach (var t in tensors) t.Value.Dispose();
        // A block whose scale is an infinity (binary16 0x7C00) is refused, naming the tensor and the block.
        var bytes = File.ReadAllBytes(file);
        long dataStart = 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        bytes[dataStart + 6 + 3 * 18] = 0x00;
        bytes[dataStart + 6 + 3 * 18 + 1] = 0x7C;
        File.WriteAllBytes(file, bytes);
        using var bad = SafetensorsFile.Open(file);
        var e = Assert.Throws<CheckpointFormatException>(() => bad.Read("w.q4"));
        Assert.Contains("tensor 'w.q4' block 3 has a non-finite scale", e.Message);
        bad.Read("w.q8").Dispose(); // the other tensors still read
    }

    static byte[] Build(string headerJson, int dataBytes)
    {
        var h = Encoding.UTF8.GetBytes(headerJson);
        var b = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)h.Length);
        h.CopyTo(b, 8);
        return b;
    }

    [Theory]
    [InlineData("""{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 4, "runs past the end")]
    [InlineData("""{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, "data_offsets span 8")]
    [InlineData("""{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "overlaps")]
    [InlineData("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "gap of 4 bytes")]
    [InlineData("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 8, "cover 4 bytes")]
    [InlineData("""{"x":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}""", 4, "unsupported dtype 'Q4'")]
    [InlineData("""{"x":{"dtype":"Q4_0","shape":[2,31],"data_offsets":[0,36]}}""", 36, "needs the last dimension to be a multiple of 32")]
    [InlineData("""{"x":{"dtype":"Q4_0","shape":[],"data_offsets":[0,18]}}""", 18, "needs the last dimension to be a multiple of 32")]
    [InlineData("""{"x":{"dtype":"Q4_0","shape":[2,32],"data_offsets":[0,34]}}""", 34, "= 36 bytes but its data_offsets span 34")]
    [InlineData("""{"x":{"dtype":"Q8_0","shape":[1,64],"data_offsets":[0,64]}}""", 64, "= 68 bytes but its data_offsets span 64")]
    [InlineData("""{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4, "invalid dimension")]
    [InlineData("""{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}""", 4, "invalid dimension")]
    [InlineData("""{"x":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,4]}}""", 4, "data_offsets span 4")]
    [InlineData("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", 4, "invalid data_offsets")]
    [InlineData("""{"x":{"dtype":"F32","shape":[1],"data_offsets":["0",4]}}""", 4, "invalid data_offsets")]
    [InlineData("""{"x":{"dtype":"F32","shape":[1]}}""", 4, "data_offsets")]
    [InlineData("""{"x":""", 0, "not valid JSON")]
    [InlineData("""[1,2]""", 0, "not a JSON object")]
    [InlineData("""{"__metadata__":{"a":1}}""", 0, "not a string")]
    public void MalformedHeadersAreRejectedWithTheFileAndProblemNamed(string header, int dataBytes, string expected)
    {
        var path = Path.Combine(_dir, "bad.safetensors");
        File.WriteAllBytes(path, Build(header, dataBytes));
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains("bad.safetensors", e.Message);
    }

    [Fact]
    public void TruncatedAndOversizedHeadersAreRejected()
    {
        var path = Path.Combine(_dir, "t.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("too short", Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path)).Message);
        var b = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(b, ulong.MaxValue);
        File.WriteAllBytes(path, b);
        Assert.Contains("exceeds", Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path)).Message);
        BinaryPrimitives.WriteUInt64LittleEndian(b, 1000);
        File.WriteAllBytes(path, b);
        Assert.Contains("past the end", Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path)).Message);
    }

    [Fact]
    public void RandomCorruptionNeverEscapesAsAnythingButAFormatError()
    {
        var good = File.ReadAllBytes(Fixture("small.safetensors"));
        var rng = new Random(42);
        var path = Path.Combine(_dir, "fuzz.safetensors");
        for (int round = 0; round < 300; round++)
        {
            var b = (byte[])good.Clone();
            int flips = rng.Next(1, 4);
            for (int i = 0; i < flips; i++)
            {
                // Mostly the header region, where the parsing happens.
                int at = rng.Next(0, Math.Min(b.Length, rng.Next(2) == 0 ? 8 : 400));
                b[at] = (byte)rng.Next(256);
            }
            if (rng.Next(5) == 0) b = b[..rng.Next(b.Length)];
            File.WriteAllBytes(path, b);
            try
            {
                using var f = SafetensorsFile.Open(path);
                foreach (var n in f.Names)
                {
                    using var t = f.Read(n);
                    _ = t.ToFloatArray();
                }
            }
            catch (CheckpointFormatException)
            {
            }
        }
    }

    [Fact]
    public void ShardIndexPointingOutsideTheDirectoryIsRejected()
    {
        var dir = Path.Combine(_dir, "evil");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, SafetensorsCheckpoint.IndexFile), """{"weight_map":{"x":"../x.safetensors"}}""");
        Assert.Contains("must be a file name", Assert.Throws<CheckpointFormatException>(() => SafetensorsCheckpoint.Open(dir)).Message);
    }
}
