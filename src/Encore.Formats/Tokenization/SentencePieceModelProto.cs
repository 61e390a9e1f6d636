using System.Buffers.Binary;
using System.Text;

namespace Encore.Formats.Tokenization;

/// <summary>
/// The parts of a SentencePiece <c>ModelProto</c> (google/sentencepiece sentencepiece_model.proto)
/// Encore needs, read with a bounds-checked protobuf wire-format walker so that a corrupt file fails
/// with a message instead of an exception from deep inside the tokenizer library.
/// </summary>
internal sealed class SentencePieceModelProto
{
    /// <summary>SentencePiece.Type from the proto.</summary>
    public enum PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

    public readonly record struct Piece(string Text, float Score, PieceType Type);

    public List<Piece> Pieces { get; } = [];
    bool _hasNormalizerSpec;
    /// <summary>TrainerSpec.model_type: 1 unigram, 2 bpe, 3 word, 4 char.</summary>
    public int ModelType { get; private set; } = 1;
    public bool ByteFallback { get; private set; }
    public int UnkId { get; private set; }
    public int BosId { get; private set; } = 1;
    public int EosId { get; private set; } = 2;
    public int PadId { get; private set; } = -1;
    public string UnkPiece { get; private set; } = "<unk>";
    public string BosPiece { get; private set; } = "<s>";
    public string EosPiece { get; private set; } = "</s>";
    public string PadPiece { get; private set; } = "<pad>";
    public bool AddDummyPrefix { get; private set; } = true;
    public bool RemoveExtraWhitespaces { get; private set; } = true;
    public bool EscapeWhitespaces { get; private set; } = true;
    public bool TreatWhitespaceAsSuffix { get; private set; }
    /// <summary>Where the TrainerSpec record lies in the file (tag start, body offset, body length), or (-1, -1, 0).</summary>
    public (int RecordStart, int Offset, int Length) TrainerSpecSpan { get; private set; } = (-1, -1, 0);
    /// <summary>Where NormalizerSpec.precompiled_charsmap lies in the file (offset, length), or (-1, 0).</summary>
    public (int Offset, int Length) CharsMapSpan { get; private set; } = (-1, 0);

    /// <summary>Parses <paramref name="data"/>; throws <see cref="CheckpointFormatException"/> naming <paramref name="path"/>.</summary>
    public static SentencePieceModelProto Parse(string path, ReadOnlySpan<byte> data)
    {
        var m = new SentencePieceModelProto();
        try
        {
            var r = new ProtobufReader(data, 0, data.Length);
            while (r.More)
            {
                int start = r.Position;
                var (field, wire) = r.Tag();
                switch (field, wire)
                {
                    case (1, 2):
                        var (po, pl) = r.Bytes();
                        // Bounded while reading: a file of minimal pieces would otherwise grow the list to its size / 2.
                        if (m.Pieces.Count >= TokenizerFiles.MaxVocabSize) throw new FormatException($"more than {TokenizerFiles.MaxVocabSize} pieces");
                        m.Pieces.Add(ParsePiece(data, po, pl));
                        break;
                    case (2, 2):
                        var (to, tl) = r.Bytes();
                        m.TrainerSpecSpan = (start, to, tl);
                        m.ParseTrainer(data, to, tl);
                        break;
                    case (3, 2):
                        var (no, nl) = r.Bytes();
                        m._hasNormalizerSpec = true;
                        m.ParseNormalizer(data, no, nl);
                        break;
                    default:
                        r.Skip(wire);
                        break;
                }
            }
        }
        catch (FormatException e)
        {
            throw new CheckpointFormatException($"{path}: not a valid SentencePiece model ({e.Message})", e);
        }
        if (m.Pieces.Count == 0) throw new CheckpointFormatException($"{path}: not a valid SentencePiece model (no pieces)");
        // sentencepiece's ModelInterface refuses empty pieces ("piece must not be empty"); an empty
        // control piece would also be an empty special token, which no text splitter can cut out.
        int empty = m.Pieces.FindIndex(p => p.Text.Length == 0);
        if (empty >= 0) throw new CheckpointFormatException($"{path}: piece {empty} ({m.Pieces[empty].Type}) has empty text");
        if (m.TrainerSpecSpan.Offset < 0 || !m._hasNormalizerSpec)
            throw new CheckpointFormatException($"{path}: not a valid SentencePiece model (no {(m.TrainerSpecSpan.Offset < 0 ? "trainer_spec" : "normalizer_spec")})");
        if (m.ByteFallback)
        {
            // The library finds byte pieces from <0x00> on and adds the byte value: they must be 256 in a row, in order.
            int first = m.Pieces.FindIndex(p => p.Type == PieceType.Byte);
            for (int b = 0; b < 256; b++)
            {
                int i = first + b;
                if (first < 0 || i >= m.Pieces.Count || m.Pieces[i].Type != PieceType.Byte || m.Pieces[i].Text != $"<0x{b:X2}>")
                    throw new CheckpointFormatException($"{path}: byte_fallback is set but pieces <0x00>..<0xFF> are not 256 consecutive byte pieces (at <0x{b:X2}>)");
            }
        }
        if (m.ModelType is not (1 or 2))
            throw new CheckpointFormatException($"{path}: SentencePiece model type {m.ModelType} is not supported (only unigram=1 and bpe=2)");
        foreach (var (name, id) in new[] { ("unk", m.UnkId), ("bos", m.BosId), ("eos", m.EosId), ("pad", m.PadId) })
            if (id >= m.Pieces.Count)
                throw new CheckpointFormatException($"{path}: {name}_id {id} is outside the {m.Pieces.Count}-piece vocabulary");
        if (m.UnkId < 0) throw new CheckpointFormatException($"{path}: the model has no unk piece (unk_id {m.UnkId})");
        return m;
    }

    static Piece ParsePiece(ReadOnlySpan<byte> data, int offset, int length)
    {
        var r = new ProtobufReader(data, offset, length);
        string text = "";
        float score = 0;
        var type = PieceType.Normal;
        while (r.More)
        {
            var (field, wire) = r.Tag();
            switch (field, wire)
            {
                case (1, 2): text = r.String(); break;
                case (2, 5): score = r.Float(); break;
                case (3, 0):
                    long t = r.Varint();
                    if (t is < 1 or > 6) throw new FormatException($"piece type {t} is unknown");
                    type = (PieceType)t;
                    break;
                default: r.Skip(wire); break;
            }
        }
        return new Piece(text, score, type);
    }

    void ParseTrainer(ReadOnlySpan<byte> data, int offset, int length)
    {
        var r = new ProtobufReader(data, offset, length);
        while (r.More)
        {
            var (field, wire) = r.Tag();
            switch (field, wire)
            {
                case (3, 0): ModelType = (int)r.Varint(); break;
                case (35, 0): ByteFallback = r.Varint() != 0; break;
                case (40, 0): UnkId = r.Int32(); break;
                case (41, 0): BosId = r.Int32(); break;
                case (42, 0): EosId = r.Int32(); break;
                case (43, 0): PadId = r.Int32(); break;
                case (45, 2): UnkPiece = r.String(); break;
                case (46, 2): BosPiece = r.String(); break;
                case (47, 2): EosPiece = r.String(); break;
                case (48, 2): PadPiece = r.String(); break;
                case (24, 0): TreatWhitespaceAsSuffix = r.Varint() != 0; break;
                default: r.Skip(wire); break;
            }
        }
    }

    void ParseNormalizer(ReadOnlySpan<byte> data, int offset, int length)
    {
        var r = new ProtobufReader(data, offset, length);
        while (r.More)
        {
            var (field, wire) = r.Tag();
            switch (field, wire)
            {
                case (2, 2):
                    var (co, cl) = r.Bytes();
                    CharsMapSpan = (co, cl);
                    CheckCharsMap(data.Slice(co, cl));
                    break;
                case (3, 0): AddDummyPrefix = r.Varint() != 0; break;
                case (4, 0): RemoveExtraWhitespaces = r.Varint() != 0; break;
                case (5, 0): EscapeWhitespaces = r.Varint() != 0; break;
                default: r.Skip(wire); break;
            }
        }
    }

    /// <summary>
    /// Checks a precompiled_charsmap (sentencepiece normalizer.cc): a little-endian uint32 byte size of
    /// a darts-clone double-array trie, the trie's uint32 units, then NUL-terminated replacement strings
    /// the leaves point into. The library walks it unchecked, so every node reachable from the root
    /// must keep all 256 of its possible children and its leaf value inside the data.
    /// </summary>
    static void CheckCharsMap(ReadOnlySpan<byte> map)
    {
        if (map.Length == 0) return;
        if (map.Length < 4) throw new FormatException("precompiled_charsmap is shorter than its header");
        uint trieBytes = BinaryPrimitives.ReadUInt32LittleEndian(map);
        if (trieBytes % 4 != 0 || trieBytes == 0 || trieBytes > map.Length - 4)
            throw new FormatException($"precompiled_charsmap trie size {trieBytes} does not fit its {map.Length} bytes");
        int units = (int)(trieBytes / 4);
        var trie = map.Slice(4, (int)trieBytes);
        var strings = map[(4 + (int)trieBytes)..];
        int lastNul = strings.LastIndexOf((byte)0);
        var unit = new uint[units];
        for (int i = 0; i < units; i++) unit[i] = BinaryPrimitives.ReadUInt32LittleEndian(trie.Slice(i * 4, 4));
        // darts.h DoubleArrayUnit: offset = (unit >> 10) << ((unit & (1 << 9)) >> 6), label = unit & (1 << 31 | 0xFF), has_leaf = bit 8.
        static int Offset(uint u) => (int)((u >> 10) << (int)((u & (1u << 9)) >> 6));
        var seen = new bool[units];
        var stack = new Stack<int>();
        stack.Push(0);
        seen[0] = true;
        while (stack.Count > 0)
        {
            int i = stack.Pop();
            uint u = unit[i];
            long next = i ^ Offset(u);
            if ((next | 0xFF) >= units) throw new FormatException($"precompiled_charsmap trie node {i} points outside the trie");
            if (((u >> 8) & 1) != 0)
            {
                uint value = unit[next] & 0x7FFFFFFF;
                if (value > lastNul) throw new FormatException($"precompiled_charsmap trie node {i} points outside its strings");
            }
            for (int c = 1; c < 256; c++)
            {
                int j = (int)next ^ c;
                if (!seen[j] && (unit[j] & (1u << 31 | 0xFF)) == c)
                {
                    seen[j] = true;
                    stack.Push(j);
                }
            }
        }
    }

    /// <summary>
    /// The model bytes with TrainerSpec fields appended (protobuf keeps the last value of a scalar
    /// field, so appending overrides without re-encoding the rest).
    /// </summary>
    public static byte[] WithTrainerOverrides(ReadOnlySpan<byte> data, (int RecordStart, int Offset, int Length) trainer, IEnumerable<(int Field, object Value)> overrides)
    {
        var extra = new List<byte>();
        foreach (var (field, value) in overrides)
        {
            switch (value)
            {
                case int i:
                    WriteVarint(extra, (ulong)(field << 3));
                    WriteVarint(extra, (ulong)(long)i);
                    break;
                case string s:
                    WriteVarint(extra, (ulong)(field << 3 | 2));
                    var b = Encoding.UTF8.GetBytes(s);
                    WriteVarint(extra, (ulong)b.Length);
                    extra.AddRange(b);
                    break;
                default: throw new ArgumentException("override values are int or string");
            }
        }
        var outp = new List<byte>(data.Length + extra.Count + 16);
        if (trainer.Offset < 0)
        {
            outp.AddRange(data.ToArray());
            outp.Add(2 << 3 | 2);
            WriteVarint(outp, (ulong)extra.Count);
            outp.AddRange(extra);
            return outp.ToArray();
        }
        // Rewrite the top-level TrainerSpec record: tag, new length, old body, appended fields.
        outp.AddRange(data[..trainer.RecordStart].ToArray());
        outp.Add(2 << 3 | 2);
        WriteVarint(outp, (ulong)(trainer.Length + extra.Count));
        outp.AddRange(data.Slice(trainer.Offset, trainer.Length).ToArray());
        outp.AddRange(extra);
        outp.AddRange(data[(trainer.Offset + trainer.Length)..].ToArray());
        return outp.ToArray();
    }

    static void WriteVarint(List<byte> o, ulong v)
    {
        while (v >= 0x80)
        {
            o.Add((byte)(v | 0x80));
            v >>= 7;
        }
        o.Add((byte)v);
    }
}
