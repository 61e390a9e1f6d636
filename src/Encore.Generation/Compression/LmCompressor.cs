// Lossless compression with a language model: arithmetic (range) coding of each token under the
// model's next-token distribution (Shannon; MacKay, Information Theory, Inference and Learning
// Algorithms ch. 6; "Language Modeling Is Compression", arXiv 2309.10668). A token of probability p
// costs about −log2 p bits, so the file approaches the model's cross-entropy on the text.
//
// Layout of the coded body. The original is cut at every '\n' into lines (the last may be empty);
// each line is one piece, coded as
//   kind   1 of 2^16 for "raw", the rest for "model"            (≈ 2·10^-5 bits for a model line)
//   model: the line's tokens, then EOS, each under the model's distribution after [start] and the
//          line's tokens before it; the model starts afresh at every line, as causal-LM training
//          saw one document per line (BOS text EOS)
//   raw:   its length (5 bits of bit count, then the bits) and its bytes at 8 bits each, for a line
//          the tokenizer cannot reproduce exactly (invalid UTF-8, a normalizing tokenizer, EOS text)
// and the decoder stops after the piece that completes the original length.
//
// Determinism: the decoder must compute the very same logits as the encoder. Both run one code path:
// the line starts with Truncate(0) + one decode step of the start token, every token is fed with one
// decode step, and when the context is full it restarts from [start] + the line's last window/2 − 1
// tokens in one Extend pass, at the same token on both sides. Encore's kernels give the same bits
// whatever the thread count (each output is reduced in a fixed order on one thread; see Gemm.cs,
// Gemv.cs, Attention.cs), but depend on the vector width: both sides run at the width recorded in the
// header (Simd.Override), on the same processor architecture. The logits become integer frequencies
// by IEEE double arithmetic alone (TokenFrequencies).
using System.Diagnostics;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Generation.Compression;

/// <summary>Settings of <see cref="LmCompressor"/>, recorded in the file so decompression uses the same.</summary>
public sealed record LmCompressionOptions
{
    /// <summary>
    /// Positions of context the model sees (at most its max_positions); when a line fills them, the context
    /// restarts from the line's last half. Default 512.
    /// </summary>
    public int Window { get; init; } = 512;

    /// <summary>Kernel vector width the probabilities are computed at; null: the widest this machine runs. Decompression needs a machine that runs it.</summary>
    public SimdWidth? Simd { get; init; }

    /// <summary>Checks the values; returns this.</summary>
    public LmCompressionOptions Validate()
    {
        if (Window < 2) throw new ArgumentOutOfRangeException(nameof(Window), Window, "the window needs at least 2 positions");
        return this;
    }
}

/// <summary>What one compression or decompression did.</summary>
public sealed record CompressionStats
{
    /// <summary>Bytes of the original.</summary>
    public long OriginalBytes { get; init; }
    /// <summary>Bytes of the compressed file, header included.</summary>
    public long CompressedBytes { get; init; }
    /// <summary>Bytes of the header.</summary>
    public int HeaderBytes { get; init; } = CompressedHeader.Size;
    /// <summary>Tokens coded with the model (each line's EOS included).</summary>
    public long Tokens { get; init; }
    /// <summary>Lines (pieces) of the original.</summary>
    public long Lines { get; init; }
    /// <summary>Lines stored as raw bytes because the tokenizer does not reproduce them.</summary>
    public long RawLines { get; init; }
    /// <summary>Σ −log2 p of the coded tokens under the model's softmax: its cross-entropy on the text, the length arithmetic coding approaches. Compression only.</summary>
    public double IdealBits { get; init; }
    /// <summary>Σ −log2 (frequency / total) of the coded tokens: the ideal length under the quantized tables. Compression only.</summary>
    public double QuantizedBits { get; init; }
    /// <summary>Bits of raw lines and the per-line kind flags (exact, not from the model). Compression only.</summary>
    public double SideBits { get; init; }
    /// <summary>Wall-clock seconds.</summary>
    public double Seconds { get; init; }

    /// <summary>Compressed bits per original byte, header included.</summary>
    public double BitsPerByte => OriginalBytes == 0 ? 0 : CompressedBytes * 8.0 / OriginalBytes;
    /// <summary>The model's cross-entropy in bits per original byte (raw lines counted at their exact cost).</summary>
    public double IdealBitsPerByte => OriginalBytes == 0 ? 0 : (IdealBits + SideBits) / OriginalBytes;
    /// <summary>Original bytes per compressed byte.</summary>
    public double Ratio => CompressedBytes == 0 ? 0 : (double)OriginalBytes / CompressedBytes;
    /// <summary>Original bytes per second.</summary>
    public double BytesPerSecond => Seconds > 0 ? OriginalBytes / Seconds : 0;
}

/// <summary>
/// Compresses bytes losslessly with a decoder-only or encoder–decoder model and its tokenizer
/// (an encoder–decoder codes with its decoder given the source [EOS], the encoding of empty text).
/// Decompression needs the same model and tokenizer (checked by fingerprint), the same processor
/// architecture and a machine that runs the recorded vector width.
/// </summary>
public sealed class LmCompressor
{
    const int KindBits = 16;            // the kind flag's table: raw owns [0, 1), model [1, 2^16)
    const int LengthBitsBits = 5;       // a raw line's length: its bit count (5 bits), then the bits

    readonly LanguageModel _model;
    readonly TextTokenizer _tokenizer;
    readonly int _start, _eos;
    readonly int[] _source;
    ulong? _modelFingerprint;
    ulong? _tokenizerFingerprint;

    /// <summary>A compressor for <paramref name="model"/> (decoder-only or encoder–decoder) with <paramref name="tokenizer"/>.</summary>
    public LmCompressor(LanguageModel model, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (model is not (DecoderOnlyModel or EncoderDecoderModel))
            throw new ArgumentException($"a {model.Config.Family} model has no decoder to predict the next token; compression needs a decoder-only or encoder–decoder model");
        if (tokenizer.VocabSize > model.Config.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} ids, more than the model's {model.Config.VocabSize}");
        _model = model;
        _tokenizer = tokenizer;
        var config = model.Config;
        _eos = tokenizer.EosId ?? config.EosTokenId;
        if (model is EncoderDecoderModel)
        {
            _start = config.DecoderStartTokenId;
            _source = [_eos];
        }
        else
        {
            int bos = tokenizer.BosId ?? config.BosTokenId;
            _start = bos >= 0 ? bos : _eos;
            _source = [];
        }
        TotalBits = TokenFrequencies.TotalBitsFor(config.VocabSize);
    }

    /// <summary>b: the frequency tables sum to 2^b (see <see cref="TokenFrequencies.TotalBitsFor"/>).</summary>
    public int TotalBits { get; }

    /// <summary>The model's fingerprint (computed once).</summary>
    public ulong ModelFingerprint => _modelFingerprint ??= CompressedHeader.FingerprintModel(_model);

    /// <summary>The tokenizer's fingerprint (computed once).</summary>
    public ulong TokenizerFingerprint => _tokenizerFingerprint ??= CompressedHeader.FingerprintTokenizer(_tokenizer);

    /// <summary>Compresses <paramref name="input"/> into a complete file (header and body).</summary>
    public (byte[] File, CompressionStats Stats) Compress(ReadOnlySpan<byte> input, LmCompressionOptions? options = null)
    {
        options = (options ?? new LmCompressionOptions()).Validate();
        if (input.Length > CompressedHeader.MaxOriginalBytes) throw new ArgumentException($"the input has {input.Length} bytes; at most {CompressedHeader.MaxOriginalBytes} are compressed at once");
        int window = Math.Min(options.Window, _model.Config.MaxPositions);
        var width = options.Simd ?? Simd.Best;
        if (width > Simd.Best) throw new ArgumentException($"this machine runs kernels at {(int)Simd.Best}-bit vectors at most, not {(int)width}");
        var clock = Stopwatch.StartNew();
        var body = new List<byte>();
        double ideal = 0, quantized = 0, side = 0;
        long tokens = 0, lines = 0, rawLines = 0;
        if (input.Length > 0)
        {
            using var _ = Simd.Override(width);
            var encoder = new RangeEncoder(body);
            using var context = new Context(this, window);
            int offset = 0;
            while (true)
            {
                int newline = input[offset..].IndexOf((byte)'\n');
                var line = newline < 0 ? input[offset..] : input.Slice(offset, newline);
                lines++;
                if (TokenizeExactly(line) is { } ids)
                {
                    encoder.Encode(1, (1u << KindBits) - 1, KindBits);
                    side += -Math.Log2(1 - 1.0 / (1 << KindBits));
                    context.Begin();
                    for (int i = 0; i <= ids.Length; i++)
                    {
                        int id = i < ids.Length ? ids[i] : _eos;
                        var table = context.Table;
                        uint f = table.Frequency(id);
                        encoder.Encode(table.Cumulative[id], f, TotalBits);
                        ideal -= Math.Log2(table.Probability(id));
                        quantized -= Math.Log2(f / (double)(1L << TotalBits));
                        tokens++;
                        if (i < ids.Length) context.Feed(id);
                    }
                }
                else
                {
                    encoder.Encode(0, 1, KindBits);
                    side += KindBits;
                    side += EncodeLength(encoder, line.Length);
                    foreach (byte b in line) encoder.EncodeBits(b, 8);
                    side += 8.0 * line.Length;
                    rawLines++;
                }
                if (newline < 0) break;
                offset += newline + 1;
            }
            encoder.Finish();
        }
        var header = new CompressedHeader
        {
            TotalBits = TotalBits, Simd = width, Architecture = RuntimeInformation.ProcessArchitecture, Window = window,
            OriginalLength = input.Length, TokenCount = tokens, BodyLength = body.Count, Crc32 = System.IO.Hashing.Crc32.HashToUInt32(input),
            ModelFingerprint = ModelFingerprint, TokenizerFingerprint = TokenizerFingerprint,
        };
        var file = new byte[CompressedHeader.Size + body.Count];
        header.Write(file);
        CollectionsMarshal.AsSpan(body).CopyTo(file.AsSpan(CompressedHeader.Size));
        return (file, new CompressionStats
        {
            OriginalBytes = input.Length, CompressedBytes = file.Length, Tokens = tokens, Lines = lines, RawLines = rawLines,
            IdealBits = ideal, QuantizedBits = quantized, SideBits = side, Seconds = clock.Elapsed.TotalSeconds,
        });
    }

    /// <summary>
    /// Decompresses a file made by <see cref="Compress"/> with this model and tokenizer. Throws
    /// <see cref="CompressedDataException"/> when the file is corrupt, truncated or made with another model.
    /// </summary>
    public (byte[] Original, CompressionStats Stats) Decompress(ReadOnlySpan<byte> file)
    {
        var clock = Stopwatch.StartNew();
        var header = CompressedHeader.Read(file);
        CheckCompatible(header);
        var output = new List<byte>();
        long tokens = 0, lines = 0, rawLines = 0;
        if (header.OriginalLength > 0)
        {
            using var _ = Simd.Override(header.Simd);
            var decoder = new RangeDecoder(file[CompressedHeader.Size..]);
            using var context = new Context(this, header.Window);
            var ids = new List<int>();
            while (true)
            {
                long remaining = header.OriginalLength - output.Count;
                lines++;
                if (decoder.Peek(KindBits) >= 1)
                {
                    decoder.Consume(1, (1u << KindBits) - 1);
                    context.Begin();
                    ids.Clear();
                    while (true)
                    {
                        var table = context.Table;
                        int id = table.Find(decoder.Peek(TotalBits));
                        decoder.Consume(table.Cumulative[id], table.Frequency(id));
                        if (++tokens > header.TokenCount) throw new CompressedDataException($"the coded stream holds more than the {header.TokenCount} tokens its header announces (corrupt)");
                        if (id == _eos) break;
                        if (id >= _tokenizer.VocabSize) throw new CompressedDataException($"token {id} is outside the tokenizer's {_tokenizer.VocabSize} ids (corrupt)");
                        // A line never has more tokens than bytes (Compress stores such a line raw).
                        if (ids.Count >= remaining) throw new CompressedDataException("a coded line runs past the original length (corrupt)");
                        ids.Add(id);
                        context.Feed(id);
                    }
                    var text = _tokenizer.Decode(CollectionsMarshal.AsSpan(ids), skipSpecialTokens: false);
                    AppendUtf8(text, output, remaining);
                }
                else
                {
                    decoder.Consume(0, 1);
                    long length = DecodeLength(ref decoder);
                    if (length > remaining) throw new CompressedDataException("a raw line runs past the original length (corrupt)");
                    for (long i = 0; i < length; i++) output.Add((byte)decoder.DecodeBits(8));
                    rawLines++;
                }
                if (output.Count == header.OriginalLength) break;
                output.Add((byte)'\n');
            }
            if (!decoder.AtEnd) throw new CompressedDataException($"{file.Length - CompressedHeader.Size - decoder.Position} bytes of coded data are left after the original is complete (corrupt)");
            if (tokens != header.TokenCount) throw new CompressedDataException($"{tokens} tokens decoded, the header announces {header.TokenCount} (corrupt)");
        }
        var original = output.ToArray();
        if (System.IO.Hashing.Crc32.HashToUInt32(original) != header.Crc32)
            throw new CompressedDataException("the decompressed bytes fail the checksum: the file is corrupt, or the probabilities were not reproduced on this machine");
        return (original, new CompressionStats
        {
            OriginalBytes = original.Length, CompressedBytes = file.Length, Tokens = tokens, Lines = lines, RawLines = rawLines,
            Seconds = clock.Elapsed.TotalSeconds,
        });
    }

    /// <summary>Refuses a header this model, tokenizer and machine cannot decode, saying why.</summary>
    public void CheckCompatible(CompressedHeader header)
    {
        ArgumentNullException.ThrowIfNull(header);
        if (header.TokenizerFingerprint != TokenizerFingerprint)
            throw new CompressedDataException($"it was compressed with another tokenizer (fingerprint {header.TokenizerFingerprint:x16}, this one's is {TokenizerFingerprint:x16}); decompress with the model it was compressed with");
        if (header.ModelFingerprint != ModelFingerprint)
            throw new CompressedDataException($"it was compressed with another model (fingerprint {header.ModelFingerprint:x16}, this one's is {ModelFingerprint:x16}); decompress with the model it was compressed with");
        if (header.TotalBits != TotalBits)
            throw new CompressedDataException($"its frequency total 2^{header.TotalBits} is not this model's 2^{TotalBits} (corrupt)");
        if (header.Window > _model.Config.MaxPositions)
            throw new CompressedDataException($"its context window {header.Window} exceeds the model's {_model.Config.MaxPositions} positions (corrupt)");
        if (header.Architecture != RuntimeInformation.ProcessArchitecture)
            throw new CompressedDataException($"it was compressed on {header.Architecture}; this machine is {RuntimeInformation.ProcessArchitecture}, whose kernels round differently");
        if (header.Simd > Simd.Best)
            throw new CompressedDataException($"it was compressed with {(int)header.Simd}-bit kernels; this machine runs {(int)Simd.Best}-bit vectors at most");
    }

    /// <summary>
    /// The ids of <paramref name="line"/> when the tokenizer reproduces it exactly (valid UTF-8, decodes back
    /// to the same bytes, no EOS inside, no more tokens than bytes); null otherwise.
    /// </summary>
    int[]? TokenizeExactly(ReadOnlySpan<byte> line)
    {
        if (!System.Text.Unicode.Utf8.IsValid(line)) return null;
        string text = Encoding.UTF8.GetString(line);
        int[] ids;
        try
        {
            ids = _tokenizer.Encode(text, addSpecialTokens: false);
        }
        catch (ArgumentException)
        {
            return null;
        }
        if (ids.Length > line.Length || ids.AsSpan().Contains(_eos)) return null;
        foreach (int id in ids)
            if ((uint)id >= (uint)_model.Config.VocabSize) return null;
        var back = Encoding.UTF8.GetBytes(_tokenizer.Decode(ids, skipSpecialTokens: false));
        return back.AsSpan().SequenceEqual(line) ? ids : null;
    }

    static void AppendUtf8(string text, List<byte> output, long limit)
    {
        // A corrupt stream could decode a line far longer than the original: refuse before copying it.
        if (Encoding.UTF8.GetByteCount(text) > limit) throw new CompressedDataException("a coded line runs past the original length (corrupt)");
        output.AddRange(Encoding.UTF8.GetBytes(text));
    }

    static double EncodeLength(RangeEncoder encoder, int length)
    {
        int bits = length == 0 ? 0 : 32 - BitOperations.LeadingZeroCount((uint)length);
        encoder.EncodeBits((uint)bits, LengthBitsBits);
        if (bits > 16)
        {
            encoder.EncodeBits((uint)length >> 16, bits - 16);
            encoder.EncodeBits((uint)length & 0xFFFF, 16);
        }
        else if (bits > 0) encoder.EncodeBits((uint)length, bits);
        return LengthBitsBits + bits;
    }

    static long DecodeLength(ref RangeDecoder decoder)
    {
        int bits = (int)decoder.DecodeBits(LengthBitsBits);
        if (bits > 31) throw new CompressedDataException("a raw line's length is out of range (corrupt)");
        if (bits > 16) return ((long)decoder.DecodeBits(bits - 16) << 16) | decoder.DecodeBits(16);
        return bits > 0 ? decoder.DecodeBits(bits) : 0;
    }

    /// <summary>
    /// The model's state within one line: the KV cache of [start] and the line's tokens so far (or the last
    /// of them after the window slid), and the frequency table of the next token.
    /// </summary>
    sealed class Context : IDisposable
    {
        readonly LmCompressor _owner;
        readonly int _window;
        readonly GenerationSession _session;
        readonly TokenFrequencies _table;
        readonly List<int> _line = [];
        readonly int[] _one = new int[1];
        float[] _extendLogits = [];

        public Context(LmCompressor owner, int window)
        {
            _owner = owner;
            _window = window;
            var model = owner._model;
            int[] prompt = model is EncoderDecoderModel ? owner._source : [owner._start];
            // Capacity = window: a decoder-only session holds the prompt [start] + window − 1 new tokens,
            // an encoder–decoder's decoder the start token + window − 1.
            _session = GenerationSession.Create(model, [prompt], 1, window - 1, owner._start);
            _table = new TokenFrequencies(model.Config.VocabSize, owner.TotalBits);
        }

        public TokenFrequencies Table => _table;

        /// <summary>Starts a line: the context is [start] alone.</summary>
        public void Begin()
        {
            _line.Clear();
            _session.Truncate(0);
            _one[0] = _owner._start;
            _session.Advance(_one);
            _table.Set(_session.Logits);
        }

        /// <summary>Appends <paramref name="id"/> to the context and computes the next table.</summary>
        public void Feed(int id)
        {
            _line.Add(id);
            if (_session.Cache.Length < _window)
            {
                _one[0] = id;
                _session.Advance(_one);
            }
            else
            {
                // The window is full: restart from [start] + the line's last window/2 − 1 tokens.
                int keep = _window / 2;
                var ids = new int[keep];
                ids[0] = _owner._start;
                _line.CopyTo(_line.Count - (keep - 1), ids, 1, keep - 1);
                int v = _session.VocabSize;
                if (_extendLogits.Length < keep * v) _extendLogits = new float[keep * v];
                _session.Truncate(0);
                _session.Extend(ids, _extendLogits);
            }
            _table.Set(_session.Logits);
        }

        public void Dispose() => _session.Dispose();
    }
}
