using System.Buffers.Binary;
using System.Text;

namespace Encore.Formats;

/// <summary>
/// A bounds-checked walker over protobuf wire format (https://protobuf.dev/programming-guides/encoding/),
/// for the protobuf files Encore reads (SentencePiece models, ONNX weights): every length is checked
/// against the message that holds it before it is used, and a malformed input throws
/// <see cref="FormatException"/> with the byte offset, which the caller wraps with the file's name.
/// </summary>
internal ref struct ProtobufReader(ReadOnlySpan<byte> data, int offset, int length)
{
    readonly ReadOnlySpan<byte> _data = data;
    int _pos = offset;
    readonly int _end = offset + length;

    public readonly bool More => _pos < _end;

    public readonly int Position => _pos;

    public (int Field, int Wire) Tag()
    {
        long t = Varint();
        int field = (int)(t >> 3), wire = (int)(t & 7);
        if (field <= 0 || t > int.MaxValue) throw new FormatException($"invalid field tag {t} at byte {_pos}");
        return (field, wire);
    }

    public long Varint()
    {
        ulong v = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (_pos >= _end) throw new FormatException($"truncated varint at byte {_pos}");
            byte b = _data[_pos++];
            v |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return (long)v;
        }
        throw new FormatException($"varint longer than 10 bytes at byte {_pos}");
    }

    public int Int32()
    {
        long v = Varint();
        // int32 fields are sign-extended to 64 bits on the wire.
        if (v is < int.MinValue or > int.MaxValue) throw new FormatException($"int32 value {v} out of range at byte {_pos}");
        return (int)v;
    }

    public (int Offset, int Length) Bytes()
    {
        long n = Varint();
        if (n < 0 || n > _end - _pos) throw new FormatException($"a length of {n} bytes at byte {_pos} runs past its message");
        int o = _pos;
        _pos += (int)n;
        return (o, (int)n);
    }

    public string String()
    {
        var (o, n) = Bytes();
        var s = _data.Slice(o, n);
        if (!System.Text.Unicode.Utf8.IsValid(s)) throw new FormatException($"a string at byte {o} is not valid UTF-8");
        return Encoding.UTF8.GetString(s);
    }

    /// <summary>A length-delimited UTF-8 string of at most <paramref name="maxBytes"/> bytes.</summary>
    public string String(int maxBytes)
    {
        var (o, n) = Bytes();
        if (n > maxBytes) throw new FormatException($"a string of {n} bytes at byte {o} (at most {maxBytes})");
        var s = _data.Slice(o, n);
        if (!System.Text.Unicode.Utf8.IsValid(s)) throw new FormatException($"a string at byte {o} is not valid UTF-8");
        return Encoding.UTF8.GetString(s);
    }

    public float Float()
    {
        if (_end - _pos < 4) throw new FormatException($"truncated float at byte {_pos}");
        float f = BinaryPrimitives.ReadSingleLittleEndian(_data.Slice(_pos, 4));
        _pos += 4;
        return f;
    }

    public void Skip(int wire)
    {
        switch (wire)
        {
            case 0: Varint(); break;
            case 1: Advance(8); break;
            case 2: Bytes(); break;
            case 5: Advance(4); break;
            default: throw new FormatException($"unsupported wire type {wire} at byte {_pos}");
        }
    }

    void Advance(int n)
    {
        if (_end - _pos < n) throw new FormatException($"truncated field at byte {_pos}");
        _pos += n;
    }
}
