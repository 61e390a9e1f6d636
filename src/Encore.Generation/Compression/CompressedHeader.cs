using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using Encore.Tensors;

namespace Encore.Generation.Compression;

/// <summary>
/// The 64-byte header of a compressed file, little-endian:
/// <code>
///  0  4  magic "ENCZ"            12  4  context window (positions)
///  4  1  format version (1)      16  8  original length (bytes)
///  5  1  b: frequency total 2^b  24  8  tokens coded by the model (EOS of every line included)
///  6  2  kernel vector width     32  8  coded body length (bytes, right after the header)
///  8  1  processor architecture  40  4  CRC-32 of the original
///  9  3  reserved (0)            44  8  model fingerprint (XxHash64 of config and weights)
///                                52  8  tokenizer fingerprint (XxHash64 of the vocabulary)
///                                60  4  CRC-32 of bytes 0–59
/// </code>
/// </summary>
public sealed record CompressedHeader
{
    /// <summary>Bytes of the header.</summary>
    public const int Size = 64;

    /// <summary>The format version this build writes and reads.</summary>
    public const byte CurrentVersion = 1;

    /// <summary>Largest original accepted (1 GiB): compression holds the whole text and its tokens in memory.</summary>
    public const long MaxOriginalBytes = 1L << 30;

    static ReadOnlySpan<byte> Magic => "ENCZ"u8;

    /// <summary>b: every frequency table sums to 2^b.</summary>
    public required int TotalBits { get; init; }

    /// <summary>The kernel vector width the probabilities were computed at.</summary>
    public required SimdWidth Simd { get; init; }

    /// <summary>The processor architecture they were computed on.</summary>
    public required Architecture Architecture { get; init; }

    /// <summary>Positions of model context before the window slides.</summary>
    public required int Window { get; init; }

    /// <summary>Length of the original in bytes.</summary>
    public required long OriginalLength { get; init; }

    /// <summary>Tokens coded with the model's distribution.</summary>
    public required long TokenCount { get; init; }

    /// <summary>Length of the coded body in bytes.</summary>
    public required long BodyLength { get; init; }

    /// <summary>CRC-32 of the original.</summary>
    public required uint Crc32 { get; init; }

    /// <summary>Fingerprint of the model's configuration and weights.</summary>
    public required ulong ModelFingerprint { get; init; }

    /// <summary>Fingerprint of the tokenizer's vocabulary and special ids.</summary>
    public required ulong TokenizerFingerprint { get; init; }

    /// <summary>Writes the header into the first <see cref="Size"/> bytes of <paramref name="dst"/>.</summary>
    public void Write(Span<byte> dst)
    {
        dst = dst[..Size];
        dst.Clear();
        Magic.CopyTo(dst);
        dst[4] = CurrentVersion;
        dst[5] = (byte)TotalBits;
        BinaryPrimitives.WriteUInt16LittleEndian(dst[6..], (ushort)Simd);
        dst[8] = (byte)Architecture;
        BinaryPrimitives.WriteInt32LittleEndian(dst[12..], Window);
        BinaryPrimitives.WriteInt64LittleEndian(dst[16..], OriginalLength);
        BinaryPrimitives.WriteInt64LittleEndian(dst[24..], TokenCount);
        BinaryPrimitives.WriteInt64LittleEndian(dst[32..], BodyLength);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[40..], Crc32);
        BinaryPrimitives.WriteUInt64LittleEndian(dst[44..], ModelFingerprint);
        BinaryPrimitives.WriteUInt64LittleEndian(dst[52..], TokenizerFingerprint);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[60..], System.IO.Hashing.Crc32.HashToUInt32(dst[..60]));
    }

    /// <summary>
    /// Reads and checks the header of <paramref name="file"/>, the whole compressed file: magic, version, the
    /// header's own CRC, that the body is all there, and that every field is in range. Throws
    /// <see cref="CompressedDataException"/> saying what is wrong.
    /// </summary>
    public static CompressedHeader Read(ReadOnlySpan<byte> file)
    {
        if (file.Length < Size || !file.StartsWith(Magic))
            throw new CompressedDataException(file.Length >= 4 && file.StartsWith(Magic)
                ? $"truncated: {file.Length} bytes, shorter than the {Size}-byte header"
                : "not an Encore compressed file (no ENCZ magic)");
        if (file[4] != CurrentVersion) throw new CompressedDataException($"format version {file[4]}; this build reads version {CurrentVersion}");
        var h = file[..Size];
        if (BinaryPrimitives.ReadUInt32LittleEndian(h[60..]) != System.IO.Hashing.Crc32.HashToUInt32(h[..60]))
            throw new CompressedDataException("the header is corrupt (its checksum does not match)");
        var header = new CompressedHeader
        {
            TotalBits = h[5],
            Simd = (SimdWidth)BinaryPrimitives.ReadUInt16LittleEndian(h[6..]),
            Architecture = (Architecture)h[8],
            Window = BinaryPrimitives.ReadInt32LittleEndian(h[12..]),
            OriginalLength = BinaryPrimitives.ReadInt64LittleEndian(h[16..]),
            TokenCount = BinaryPrimitives.ReadInt64LittleEndian(h[24..]),
            BodyLength = BinaryPrimitives.ReadInt64LittleEndian(h[32..]),
            Crc32 = BinaryPrimitives.ReadUInt32LittleEndian(h[40..]),
            ModelFingerprint = BinaryPrimitives.ReadUInt64LittleEndian(h[44..]),
            TokenizerFingerprint = BinaryPrimitives.ReadUInt64LittleEndian(h[52..]),
        };
        if (header.TotalBits is < 1 or > TokenFrequencies.MaxTotalBits) throw new CompressedDataException($"the header's frequency total 2^{header.TotalBits} is out of range");
        if (header.Simd is not (SimdWidth.Scalar or SimdWidth.V128 or SimdWidth.V256 or SimdWidth.V512)) throw new CompressedDataException($"the header's vector width {(int)header.Simd} is not one of 0, 128, 256, 512");
        if (header.Window < 2) throw new CompressedDataException($"the header's context window {header.Window} is below 2");
        if (header.OriginalLength is < 0 or > MaxOriginalBytes) throw new CompressedDataException($"the header's original length {header.OriginalLength} is outside [0, {MaxOriginalBytes}]");
        if (header.TokenCount < 0 || header.TokenCount > header.OriginalLength + 1) throw new CompressedDataException($"the header's token count {header.TokenCount} does not fit an original of {header.OriginalLength} bytes");
        if (header.BodyLength != file.Length - Size)
            throw new CompressedDataException(header.BodyLength > file.Length - Size
                ? $"truncated: the header announces {header.BodyLength} bytes of coded data, the file holds {file.Length - Size}"
                : $"{file.Length - Size - header.BodyLength} bytes of trailing data after the coded body");
        if (header.OriginalLength == 0 != (header.BodyLength == 0)) throw new CompressedDataException("the header's lengths disagree (an empty original has an empty body and only it)");
        return header;
    }

    /// <summary>
    /// XxHash64 of what decides a model's logits: its configuration and every parameter's name, dtype,
    /// shape and bytes, in registration order.
    /// </summary>
    public static unsafe ulong FingerprintModel(Models.LanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var hash = new XxHash64();
        hash.Append(System.Text.Encoding.UTF8.GetBytes(model.Config.ToString()));
        Span<byte> scratch = stackalloc byte[8];
        foreach (var p in model.Parameters.All)
        {
            hash.Append(System.Text.Encoding.UTF8.GetBytes(p.Name));
            var t = p.Value;
            BinaryPrimitives.WriteInt32LittleEndian(scratch, (int)t.DType);
            hash.Append(scratch[..4]);
            foreach (int d in t.Shape)
            {
                BinaryPrimitives.WriteInt32LittleEndian(scratch, d);
                hash.Append(scratch[..4]);
            }
            long bytes = t.ByteLength;
            for (long offset = 0; offset < bytes; offset += 1 << 30)
                hash.Append(new ReadOnlySpan<byte>(t.DataPointer + offset, (int)Math.Min(1 << 30, bytes - offset)));
        }
        return hash.GetCurrentHashAsUInt64();
    }

    /// <summary>XxHash64 of what decoding ids needs: the tokenizer's kind, every id's vocabulary string, and its special ids.</summary>
    public static ulong FingerprintTokenizer(Formats.Tokenization.TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var hash = new XxHash64();
        var text = new System.Text.StringBuilder();
        text.Append(tokenizer.Kind).Append('\0').Append(tokenizer.VocabSize).Append('\0')
            .Append(tokenizer.BosId).Append('\0').Append(tokenizer.EosId).Append('\0').Append(tokenizer.PadId).Append('\0');
        for (int i = 0; i < tokenizer.VocabSize; i++) text.Append(tokenizer.IdToToken(i)).Append('\0');
        hash.Append(System.Text.Encoding.UTF8.GetBytes(text.ToString()));
        return hash.GetCurrentHashAsUInt64();
    }
}
