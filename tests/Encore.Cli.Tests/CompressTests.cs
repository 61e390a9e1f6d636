using System.Text;
using System.Text.Json;
using Encore.Training.Data;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>encore compress</c> and <c>encore decompress</c> end to end on tiny untrained decoder-only
/// checkpoints: a bit-exact round trip across thread counts, and one clear line for every bad input.
/// </summary>
public sealed class CompressTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-compress-cli-").FullName;
    readonly string _model, _other, _input;
    readonly byte[] _original;

    public CompressTests()
    {
        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        _model = TestCheckpoints.Save(Path.Combine(_dir, "model"), "tiny-decoder", tokenizer);
        _other = TestCheckpoints.Save(Path.Combine(_dir, "other"), "tiny-encdec", tokenizer);
        _input = Path.Combine(_dir, "in.txt");
        _original = [.. Encoding.UTF8.GetBytes("package 3 parses images\nnaïve café — 日本語\n\n"), 0xFF, 0xFE, (byte)'\n', .. Encoding.UTF8.GetBytes("package 4 parses fonts")];
        File.WriteAllBytes(_input, _original);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void CompressedWithTwoThreadsDecompressesWithOneBitExactly()
    {
        string packed = Path.Combine(_dir, "in.enc"), restored = Path.Combine(_dir, "out.txt");
        var c = CliRunner.Run("compress", "--model", _model, _input, packed, "--threads", "2", "--json");
        Assert.True(c.ExitCode == 0, c.Stderr);
        var j = JsonDocument.Parse(c.Stdout).RootElement;
        Assert.Equal(_original.Length, j.GetProperty("original_bytes").GetInt64());
        Assert.Equal(new FileInfo(packed).Length, j.GetProperty("compressed_bytes").GetInt64());
        Assert.Equal(1, j.GetProperty("raw_lines").GetInt64());
        Assert.True(j.GetProperty("bits_per_byte").GetDouble() > 0);
        Assert.True(j.GetProperty("ideal_bits_per_byte").GetDouble() > 0);

        var d = CliRunner.Run("decompress", "--model", _model, packed, restored, "--threads", "1");
        Assert.True(d.ExitCode == 0, d.Stderr);
        Assert.Contains("checksum ok", d.Stdout);
        Assert.Equal(_original, File.ReadAllBytes(restored));

        // The text summary names bits per byte, the model's cross-entropy and the rate.
        var text = CliRunner.Run("compress", "--model", _model, _input, packed, "--threads", "1");
        Assert.True(text.ExitCode == 0, text.Stderr);
        Assert.Contains("bits/byte", text.Stdout);
        Assert.Contains("model cross-entropy", text.Stdout);
        Assert.Contains("bytes/s", text.Stdout);
    }

    [Fact]
    public void BadInputsFailWithOneLineNamingTheFile()
    {
        string packed = Path.Combine(_dir, "good.enc");
        Assert.Equal(0, CliRunner.Run("compress", "--model", _model, _input, packed, "--threads", "1").ExitCode);
        var bytes = File.ReadAllBytes(packed);

        string truncated = Path.Combine(_dir, "truncated.enc");
        File.WriteAllBytes(truncated, bytes[..^2]);
        string corrupt = Path.Combine(_dir, "corrupt.enc");
        var flipped = (byte[])bytes.Clone();
        flipped[70] ^= 0x40;
        File.WriteAllBytes(corrupt, flipped);
        string missing = Path.Combine(_dir, "missing.enc");
        string restored = Path.Combine(_dir, "restored.txt");

        foreach (var (file, model, expected) in new[]
        {
            (missing, _model, $"{missing}: no such file"),
            (_input, _model, $"{_input}: not an Encore compressed file"),
            (truncated, _model, $"{truncated}: truncated"),
            (corrupt, _model, $"{corrupt}: "),
            (packed, _other, $"{packed}: it was compressed with another model"),
        })
        {
            var r = CliRunner.Run("decompress", "--model", model, file, restored, "--threads", "1");
            Assert.NotEqual(0, r.ExitCode);
            var lines = r.Stderr.Trim().Split('\n');
            Assert.Single(lines);
            Assert.StartsWith($"encore: {expected}", lines[0]);
            Assert.False(File.Exists(restored), $"{file}: a failed decompression wrote its output");
        }

        var noInput = CliRunner.Run("compress", "--model", _model, missing, packed, "--threads", "1");
        Assert.NotEqual(0, noInput.ExitCode);
        Assert.Equal($"encore: {missing}: no such file", noInput.Stderr.Trim());
        var badSimd = CliRunner.Run("compress", "--model", _model, _input, packed, "--simd", "1024");
        Assert.NotEqual(0, badSimd.ExitCode);
        Assert.Contains("--simd '1024'", badSimd.Stderr);
    }
}
