using System.Runtime.InteropServices;
using System.Text;
using Encore.Formats.Tokenization;
using Encore.Generation.Compression;
using Encore.Models;
using Encore.Tensors;
using Encore.Tensors.Threading;

namespace Encore.Generation.Tests;

/// <summary>Tests that swap <see cref="KernelPool.Default"/> run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KernelPoolSwapCollection
{
    public const string Name = "kernel pool swaps";
}

[Collection(KernelPoolSwapCollection.Name)]
public class LmCompressorTests
{
    // Wide enough that the feed-forward and head matrices (128 × 1024, 320 × 128 …) pass the kernels'
    // thresholds for splitting work across threads, so the thread-count tests compare real splits.
    static DecoderOnlyModel Decoder(ulong seed = 7) =>
        new(Presets.Get("tiny-decoder") with { VocabSize = TinyModels.Tokenizer.VocabSize, BosTokenId = 2, DModel = 128, HeadDim = 32, FfnDim = 1024 }, seed);

    static LmCompressor Compressor(LanguageModel model) => new(model, TinyModels.Tokenizer);

    static byte[] RoundTrip(LmCompressor c, byte[] input, LmCompressionOptions? options = null)
    {
        var (file, stats) = c.Compress(input, options);
        Assert.Equal(input.Length, stats.OriginalBytes);
        Assert.Equal(file.Length, stats.CompressedBytes);
        var (back, _) = c.Decompress(file);
        Assert.Equal(input, back);
        return file;
    }

    public static TheoryData<string> Texts => [.. TextList];

    static readonly string[] TextList =
    [
        "",
        "a",
        "\n",
        "\n\n\n",
        "The quick brown fox jumps over the lazy dog.",
        "The quick brown fox\njumps over the lazy dog.\n",
        "Ça coûte 5 €, déjà payé — naïve café crème.\r\nStreaming: 日本語のテキスト 🙂\n",
        "   leading and trailing spaces   \n\ttabs\t\n",
        "the EOS text </s> and BOS text <s> <pad> inside a line\nnext",
    ];

    [Theory]
    [MemberData(nameof(Texts))]
    public void TextsRoundTripBitExactly(string text)
    {
        using var model = Decoder();
        var bytes = Encoding.UTF8.GetBytes(text);
        var file = RoundTrip(Compressor(model), bytes);
        if (bytes.Length == 0) Assert.Equal(CompressedHeader.Size, file.Length);      // an empty original has an empty body
        else Assert.True(file.Length > CompressedHeader.Size);
    }

    [Fact]
    public void ArbitraryBytesRoundTripThroughRawLines()
    {
        using var model = Decoder();
        var c = Compressor(model);
        var rng = new Random(11);
        var noise = new byte[3000];
        rng.NextBytes(noise);
        var mixed = Encoding.UTF8.GetBytes("valid text line\n").Concat(new byte[] { 0xFF, 0xFE, (byte)'a', 0xC3, (byte)'\n', 0xE6, 0x97 })
            .Concat(Encoding.UTF8.GetBytes("\nmore text after the broken bytes")).ToArray();
        foreach (var input in new[] { noise, mixed, new byte[] { 0xC3 } })
        {
            var (file, stats) = c.Compress(input);
            Assert.True(stats.RawLines > 0);
            Assert.Equal(input, c.Decompress(file).Original);
        }
        RoundTrip(c, [0, 1, 2, 0x7F]);                                 // control bytes are valid UTF-8 text
        // The lines that are text still go through the model.
        var (_, s) = c.Compress(mixed);
        Assert.Equal(4, s.Lines);                                     // "valid text line", FF FE 'a' C3, E6 97, "more text …"
        Assert.Equal(2, s.RawLines);
        Assert.True(s.Tokens > 5);
    }

    [Fact]
    public void LongLinesSlideTheWindowAndRoundTrip()
    {
        using var model = Decoder();
        var c = Compressor(model);
        var rng = new Random(2);
        string[] words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "encoder", "decoder", "café", "日本語"];
        var line = string.Join(' ', Enumerable.Range(0, 400).Select(_ => words[rng.Next(words.Length)]));
        var text = line + "\nshort line\n" + line[..300];
        var bytes = Encoding.UTF8.GetBytes(text);
        var options = new LmCompressionOptions { Window = 16 };
        var (file, stats) = c.Compress(bytes, options);
        Assert.True(stats.Tokens > 20 * options.Window, $"{stats.Tokens} tokens do not span many windows of {options.Window}");
        Assert.Equal(bytes, c.Decompress(file).Original);
        Assert.Equal(16, CompressedHeader.Read(file).Window);
        // Another window codes another stream: the window really is in the probabilities.
        Assert.NotEqual(file, c.Compress(bytes, options with { Window = 64 }).File);
    }

    [Fact]
    public void CompressingWithOneThreadAndDecompressingWithTwoGivesTheSameBits()
    {
        var previous = KernelPool.Default;
        try
        {
            using var model = Decoder();
            var c = Compressor(model);
            var text = Encoding.UTF8.GetBytes(string.Join('\n', TextList) + "\n"
                + string.Concat(Enumerable.Repeat("a longer line that fills the window and slides it; ", 12)));
            var options = new LmCompressionOptions { Window = 64 };
            KernelPool.Default = new KernelPool(1);
            var one = c.Compress(text, options).File;
            KernelPool.Default = new KernelPool(2);
            var two = c.Compress(text, options).File;
            Assert.Equal(one, two);                                   // the same bits, not just a valid stream
            Assert.Equal(text, c.Decompress(one).Original);           // 1 thread → 2 threads
            KernelPool.Default = new KernelPool(1);
            Assert.Equal(text, c.Decompress(two).Original);           // 2 threads → 1 thread
        }
        finally
        {
            KernelPool.Default = previous;
        }
    }

    [Fact]
    public void ANarrowerVectorWidthIsRecordedAndUsedToDecompress()
    {
        using var model = Decoder();
        var c = Compressor(model);
        var text = Encoding.UTF8.GetBytes("The quick brown fox jumps over the lazy dog.\nEncoder–decoder models encode the source once.");
        foreach (var width in Simd.Supported)
        {
            var (file, _) = c.Compress(text, new LmCompressionOptions { Simd = width });
            Assert.Equal(width, CompressedHeader.Read(file).Simd);
            Assert.Equal(text, c.Decompress(file).Original);
        }
    }

    [Fact]
    public void EncoderDecoderModelsCompressWithTheirDecoder()
    {
        using var model = TinyModels.EncDec();
        var c = Compressor(model);
        RoundTrip(c, Encoding.UTF8.GetBytes("Encoder–decoder models encode the source once.\nand decode one token at a time\n"), new LmCompressionOptions { Window = 8 });
    }

    [Fact]
    public void EncoderOnlyModelsAreRefused()
    {
        using var model = new EncoderOnlyModel(Presets.Get("tiny-encoder") with { VocabSize = TinyModels.Tokenizer.VocabSize });
        var e = Assert.Throws<ArgumentException>(() => Compressor(model));
        Assert.Contains("no decoder", e.Message);
    }

    [Fact]
    public void AnotherModelOrTokenizerIsRefusedByFingerprint()
    {
        using var model = Decoder(7);
        using var other = Decoder(8);
        var text = Encoding.UTF8.GetBytes("The quick brown fox jumps over the lazy dog.");
        var (file, _) = Compressor(model).Compress(text);
        var e = Assert.Throws<CompressedDataException>(() => Compressor(other).Decompress(file));
        Assert.Contains("another model", e.Message);

        var tokenizer = BpeTrainer.Train(["Completely different sentences train another vocabulary.", "Zebras quietly vex jumping fowl."],
            TinyModels.Tokenizer.VocabSize, ["<pad>", "</s>", "<s>"], new SpecialTokenRoles(Bos: "<s>", Eos: "</s>", Pad: "<pad>"));
        e = Assert.Throws<CompressedDataException>(() => new LmCompressor(model, tokenizer).Decompress(file));
        Assert.Contains("another tokenizer", e.Message);
    }

    [Fact]
    public void CorruptTruncatedAndForeignFilesAreRefusedWithAReason()
    {
        using var model = Decoder();
        var c = Compressor(model);
        var text = Encoding.UTF8.GetBytes("The quick brown fox jumps over the lazy dog.\nEncoder–decoder models encode the source once and decode one token at a time.\n");
        var (file, _) = c.Compress(text);

        string Refusal(byte[] bad) => Assert.Throws<CompressedDataException>(() => c.Decompress(bad)).Message;

        Assert.Contains("not an Encore compressed file", Refusal(Encoding.UTF8.GetBytes("plain text, not compressed at all, long enough for a header ............")));
        Assert.Contains("not an Encore compressed file", Refusal([]));
        Assert.Contains("truncated", Refusal(file[..40]));
        Assert.Contains("truncated", Refusal(file[..^3]));
        Assert.Contains("trailing data", Refusal([.. file, 0]));
        var header = (byte[])file.Clone();
        header[20] ^= 0x01;                                           // original length, under the header's checksum
        Assert.Contains("header is corrupt", Refusal(header));
        var version = (byte[])file.Clone();
        version[4] = 9;
        Assert.Contains("format version 9", Refusal(version));
        // A flipped byte of the body is refused (by the decoder, the length and token checks or the CRC),
        // or, in the last bytes of the flush that no decision reads, changes nothing: never a wrong output.
        int refused = 0;
        for (int i = CompressedHeader.Size; i < file.Length; i++)
        {
            var bad = (byte[])file.Clone();
            bad[i] ^= 0x5A;
            try
            {
                Assert.Equal(text, c.Decompress(bad).Original);
                Assert.True(i >= file.Length - 4, $"a flipped byte at {i} of {file.Length} went unnoticed");
            }
            catch (CompressedDataException)
            {
                refused++;
            }
        }
        Assert.True(refused >= file.Length - CompressedHeader.Size - 4);
    }

    [Fact]
    public void AFileFromAnotherArchitectureIsRefused()
    {
        using var model = Decoder();
        var c = Compressor(model);
        var (file, _) = c.Compress(Encoding.UTF8.GetBytes("hello"));
        var other = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? Architecture.Arm64 : Architecture.X64;
        (CompressedHeader.Read(file) with { Architecture = other }).Write(file);
        var e = Assert.Throws<CompressedDataException>(() => c.Decompress(file));
        Assert.Contains($"compressed on {other}", e.Message);
    }

    [Fact]
    public void ReportedIdealMatchesTheModelsCrossEntropyAndTheFileIsClose()
    {
        using var model = Decoder();
        var c = Compressor(model);
        var text = "The quick brown fox jumps over the lazy dog. Encoder–decoder models encode the source once and decode one token at a time.";
        var (file, stats) = c.Compress(Encoding.UTF8.GetBytes(text));
        // The same figure from a full forward pass over [BOS] ids EOS.
        var ids = TinyModels.Tokenizer.Encode(text, addSpecialTokens: false);
        int[] seq = [2, .. ids];
        using var logits = model.Forward(seq, 1);
        var lp = TinyModels.AllLogProbs(logits, 0);
        double bits = 0;
        for (int t = 0; t < seq.Length; t++) bits -= lp[t][t + 1 < seq.Length ? seq[t + 1] : 1] / Math.Log(2);
        Assert.Equal(bits, stats.IdealBits, bits * 1e-4);
        double coded = (file.Length - CompressedHeader.Size) * 8.0;
        Assert.InRange(coded, stats.QuantizedBits, stats.QuantizedBits + 40);
        Assert.InRange(stats.QuantizedBits, stats.IdealBits * 0.98, stats.IdealBits * 1.02);
    }
}
