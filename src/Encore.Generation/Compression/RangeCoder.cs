// A 32-bit range coder with carry propagation: the byte output of LZMA's encoder (Igor Pavlov, LZMA
// SDK LzmaEnc.c RangeEnc_ShiftLow; public domain), driven by cumulative frequencies whose total is a
// power of two 2^b. The interval [low, low + range) narrows to [low + ⌊range·c/2^b⌋, low + ⌊range·(c + f)/2^b⌋)
// for a symbol owning [c, c + f), computed exactly in 64 bits rather than as (range >> b)·c, so the
// coder loses nothing to truncating range (LZMA's form loses up to 2^b/range of the interval per
// symbol: at b = 22, 840 bits for 100,000 symbols of ideal length 92 in all). Whenever range falls
// below 2^24 its top byte is settled and shifted out; since range ≥ 2^24 ≥ 2^b, every symbol keeps a
// width ≥ 1.
namespace Encore.Generation.Compression;

/// <summary>
/// Encodes symbols given as (cumulative start, frequency) out of a total of 2^<c>totalBits</c>
/// (1 ≤ totalBits ≤ 24) into a byte stream that <see cref="RangeDecoder"/> reads back.
/// </summary>
public sealed class RangeEncoder
{
    const uint Top = 1u << 24;

    ulong _low;                 // 33 bits: bit 32 is a carry into the bytes not yet written
    uint _range = uint.MaxValue;
    byte _cache;                // the last byte settled except for a possible carry
    long _cacheSize = 1;        // _cache plus the 0xFF bytes behind it that a carry would turn to 0x00
    bool _first = true;         // the first byte out is always 0 (the code value is < 1): never written
    readonly List<byte> _out;
    bool _finished;

    /// <summary>A new encoder that appends to <paramref name="output"/> (a new list when null).</summary>
    public RangeEncoder(List<byte>? output = null) => _out = output ?? [];

    /// <summary>The bytes written so far (all of them after <see cref="Finish"/>).</summary>
    public List<byte> Output => _out;

    /// <summary>Encodes the symbol that owns [<paramref name="start"/>, start + <paramref name="size"/>) of 2^<paramref name="totalBits"/>.</summary>
    public void Encode(uint start, uint size, int totalBits)
    {
        if (_finished) throw new InvalidOperationException("the encoder is finished");
        if ((uint)(totalBits - 1) >= 24) throw new ArgumentOutOfRangeException(nameof(totalBits), totalBits, "the total must be 2^1 … 2^24");
        if (size == 0 || (ulong)start + size > 1ul << totalBits)
            throw new ArgumentOutOfRangeException(nameof(size), $"symbol [{start}, {(ulong)start + size}) is empty or outside the total 2^{totalBits}");
        uint lo = (uint)(((ulong)_range * start) >> totalBits);
        uint hi = (uint)(((ulong)_range * (start + size)) >> totalBits);
        _low += lo;
        _range = hi - lo;
        while (_range < Top)
        {
            _range <<= 8;
            ShiftLow();
        }
    }

    /// <summary>Encodes <paramref name="value"/> as <paramref name="bits"/> uniform bits (1 ≤ bits ≤ 16).</summary>
    public void EncodeBits(uint value, int bits)
    {
        if ((uint)(bits - 1) >= 16) throw new ArgumentOutOfRangeException(nameof(bits), bits, "1 to 16 bits at a time");
        if (value >> bits != 0) throw new ArgumentOutOfRangeException(nameof(value), value, $"does not fit in {bits} bits");
        Encode(value, 1, bits);
    }

    /// <summary>Writes the last bytes: enough of low that the decoder's reads end exactly at the end of the stream.</summary>
    public void Finish()
    {
        if (_finished) return;
        for (int i = 0; i < 5; i++) ShiftLow();
        _finished = true;
    }

    void ShiftLow()
    {
        // Either the byte above bit 24 is final (no carry can reach it: low < 0xFF000000), or a carry
        // has already happened (bit 32): then the cached byte and the 0xFF run behind it are settled.
        if ((uint)_low < 0xFF00_0000u || (_low >> 32) != 0)
        {
            byte carry = (byte)(_low >> 32);
            byte temp = _cache;
            do
            {
                Put((byte)(temp + carry));
                temp = 0xFF;
            }
            while (--_cacheSize != 0);
            _cache = (byte)((uint)_low >> 24);
        }
        _cacheSize++;
        _low = (_low & 0x00FF_FFFF) << 8;
    }

    void Put(byte b)
    {
        if (_first) _first = false;
        else _out.Add(b);
    }
}

/// <summary>
/// Decodes what <see cref="RangeEncoder"/> wrote. A read past the end of the stream, or a value outside
/// the total, means the stream is corrupt or was not made with the same frequencies: both throw
/// <see cref="CompressedDataException"/>, so a bad stream can never decode without bound.
/// </summary>
public ref struct RangeDecoder
{
    const uint Top = 1u << 24;

    readonly ReadOnlySpan<byte> _input;
    int _position;
    uint _range;
    uint _code;
    int _bits;                  // b of the pending symbol

    /// <summary>Starts decoding <paramref name="input"/>.</summary>
    public RangeDecoder(ReadOnlySpan<byte> input)
    {
        _input = input;
        _range = uint.MaxValue;
        for (int i = 0; i < 4; i++) _code = (_code << 8) | Next();
    }

    /// <summary>Bytes consumed so far.</summary>
    public readonly int Position => _position;

    /// <summary>True when every byte has been read, as after the last symbol of a whole stream.</summary>
    public readonly bool AtEnd => _position == _input.Length;

    /// <summary>
    /// The cumulative value in [0, 2^<paramref name="totalBits"/>) that the next symbol's interval holds;
    /// call <see cref="Consume"/> with that symbol's start and size next.
    /// </summary>
    public uint Peek(int totalBits)
    {
        if ((uint)(totalBits - 1) >= 24) throw new ArgumentOutOfRangeException(nameof(totalBits), totalBits, "the total must be 2^1 … 2^24");
        _bits = totalBits;
        // The largest c with ⌊range·c/2^b⌋ ≤ code: the symbol whose interval holds code owns c.
        ulong v = ((((ulong)_code + 1) << totalBits) - 1) / _range;
        // A valid stream's code lies below range; beyond it only a corrupt stream can point.
        if (v >> totalBits != 0) throw new CompressedDataException("the coded stream is corrupt (a value outside the frequency table)");
        return (uint)v;
    }

    /// <summary>Removes the symbol [<paramref name="start"/>, start + <paramref name="size"/>) found by <see cref="Peek"/>.</summary>
    public void Consume(uint start, uint size)
    {
        uint lo = (uint)(((ulong)_range * start) >> _bits);
        uint hi = (uint)(((ulong)_range * (start + size)) >> _bits);
        _code -= lo;
        _range = hi - lo;
        while (_range < Top)
        {
            _code = (_code << 8) | Next();
            _range <<= 8;
        }
    }

    /// <summary>Decodes <paramref name="bits"/> uniform bits (1 ≤ bits ≤ 16).</summary>
    public uint DecodeBits(int bits)
    {
        if ((uint)(bits - 1) >= 16) throw new ArgumentOutOfRangeException(nameof(bits), bits, "1 to 16 bits at a time");
        uint v = Peek(bits);
        Consume(v, 1);
        return v;
    }

    uint Next()
    {
        if (_position >= _input.Length) throw new CompressedDataException("the coded stream ends early (truncated or corrupt)");
        return _input[_position++];
    }
}

/// <summary>A compressed stream or file that is not valid: corrupt, truncated, or made with another model.</summary>
public sealed class CompressedDataException(string message, Exception? inner = null) : IOException(message, inner);
