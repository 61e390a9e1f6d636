using System.Globalization;
using Microsoft.ML.Tokenizers;

namespace Encore.Formats.Tokenization;

/// <summary>
/// A SentencePiece model (unigram or BPE, google/sentencepiece) encoded by Microsoft.ML.Tokenizers'
/// <see cref="SentencePieceTokenizer"/>. Added tokens past the model's pieces (T5's
/// <c>&lt;extra_id_N&gt;</c>, which Hugging Face appends after the 32,000 spiece pieces) are matched
/// whole before the model runs. Decoding follows sentencepiece's DecodeIds: "▁" becomes a space, the
/// dummy-prefix space of the first piece is dropped, <c>&lt;0xNN&gt;</c> byte pieces give raw bytes,
/// control pieces give nothing and the unknown piece gives " ⁇ ".
/// </summary>
public sealed class SentencePieceTextTokenizer : TextTokenizer
{
    const string UnkSurface = " \u2047 ";
    readonly SentencePieceTokenizer _inner;
    readonly SentencePieceModelProto _proto;
    readonly string[] _idToToken;
    readonly byte[]?[] _byteOf;
    readonly Dictionary<string, int> _tokenToId;
    readonly int _vocabSize;

    internal SentencePieceTextTokenizer(string path, ReadOnlySpan<byte> model, SentencePieceModelProto proto, SpecialTokenIds special)
        : base(special)
    {
        _proto = proto;
        int pieces = proto.Pieces.Count;
        _vocabSize = Math.Max(pieces, special.Added.Count == 0 ? 0 : special.Added.Values.Max() + 1);
        _idToToken = new string[_vocabSize];
        _byteOf = new byte[]?[pieces];
        _tokenToId = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < pieces; i++)
        {
            var p = proto.Pieces[i];
            _idToToken[i] = p.Text;
            _tokenToId.TryAdd(p.Text, i);
            if (p.Type == SentencePieceModelProto.PieceType.Byte)
            {
                if (p.Text.Length != 6 || !p.Text.StartsWith("<0x", StringComparison.Ordinal) || p.Text[5] != '>'
                    || !byte.TryParse(p.Text.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte b))
                    throw new CheckpointFormatException($"{path}: byte piece {i} is '{p.Text}', not <0xNN>");
                _byteOf[i] = [b];
            }
        }
        foreach (var (tok, id) in special.Added)
        {
            if (id >= pieces) _idToToken[id] = tok;
            _tokenToId[tok] = id;
        }
        for (int i = pieces; i < _vocabSize; i++) _idToToken[i] ??= "";

        // Microsoft.ML.Tokenizers 2.0 indexes its tables with bos_id even when it is -1 (T5 has no
        // BOS) and crashes; point BOS at the pad (or unk) piece, which is never added since AddBos is ours.
        var bytes = model;
        byte[]? patched = null;
        if (proto.BosId < 0)
        {
            int stand = proto.PadId >= 0 ? proto.PadId : proto.UnkId;
            string piece = stand == proto.PadId ? proto.PadPiece : proto.UnkPiece;
            patched = SentencePieceModelProto.WithTrainerOverrides(model, proto.TrainerSpecSpan, [(41, stand), (46, piece)]);
        }
        // An empty added token would match everywhere: the library's splitter would find it forever.
        var nonEmpty = special.Added.Where(a => a.Key.Length > 0).ToDictionary(StringComparer.Ordinal);
        var added = nonEmpty.Count == 0 ? null : nonEmpty;
        try
        {
            using var ms = new MemoryStream(patched ?? bytes.ToArray(), writable: false);
            _inner = SentencePieceTokenizer.Create(ms, addBeginningOfSentence: false, addEndOfSentence: false, specialTokens: added);
        }
        // The library trusts the model: on inconsistent ones it fails with whatever exception its indexing hits.
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IndexOutOfRangeException or NullReferenceException
                                      or KeyNotFoundException or FormatException or NotSupportedException or IOException)
        {
            throw new CheckpointFormatException($"{path}: the SentencePiece model could not be loaded ({e.Message})", e);
        }
        Path = path;
    }

    /// <summary>The model file read.</summary>
    public string Path { get; }

    /// <summary>The Microsoft.ML.Tokenizers model doing the encoding.</summary>
    public SentencePieceTokenizer Inner => _inner;

    /// <summary>True when the model spells unknown characters as <c>&lt;0xNN&gt;</c> byte pieces.</summary>
    public bool ByteFallback => _proto.ByteFallback;

    /// <inheritdoc/>
    public override TokenizerKind Kind => _proto.ModelType == 2 ? TokenizerKind.SentencePieceBpe : TokenizerKind.SentencePieceUnigram;

    /// <inheritdoc/>
    public override int VocabSize => _vocabSize;

    /// <inheritdoc/>
    public override int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;

    /// <inheritdoc/>
    public override string? IdToToken(int id) => (uint)id < (uint)_vocabSize ? _idToToken[id] : null;

    private protected override int[] EncodeText(string text)
    {
        if (text.Length == 0) return [];
        IReadOnlyList<int> ids;
        try
        {
            ids = _inner.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is IndexOutOfRangeException or ArgumentOutOfRangeException or NullReferenceException)
        {
            // The library trusts the model's tables; a damaged one that passed the load checks ends here.
            throw new CheckpointFormatException($"{Path}: the SentencePiece model failed while encoding ({e.Message}); the file is damaged", e);
        }
        if (_proto.ByteFallback || ids.Count < 2) return ids.ToArray();
        // sentencepiece merges a run of unknown characters into one unk piece; the library emits one per character.
        var merged = new List<int>(ids.Count);
        foreach (int id in ids)
            if (!(id == _proto.UnkId && merged.Count > 0 && merged[^1] == id)) merged.Add(id);
        return merged.ToArray();
    }

    private protected override bool IsModelControl(int id) =>
        id < _proto.Pieces.Count && _proto.Pieces[id].Type == SentencePieceModelProto.PieceType.Control;

    internal override void AppendTokenBytes(int id, bool skipSpecialTokens, ref DecodeState state, List<byte> output)
    {
        if (id >= _proto.Pieces.Count)
        {
            // An added token (T5 sentinel): its text when kept, as Hugging Face decodes it.
            if (!skipSpecialTokens || !Special.SpecialIds.Contains(id))
            {
                AppendUtf8(_idToToken[id], output);
                state.Started = true;
            }
            return;
        }
        var piece = _proto.Pieces[id];
        switch (piece.Type)
        {
            case SentencePieceModelProto.PieceType.Control:
                if (!skipSpecialTokens)
                {
                    AppendUtf8(piece.Text, output);
                    state.Started = true;
                }
                return;
            case SentencePieceModelProto.PieceType.Unknown:
                AppendUtf8(UnkSurface, output);
                state.Started = true;
                return;
            case SentencePieceModelProto.PieceType.Byte:
                output.Add(_byteOf[id]![0]);
                state.Started = true;
                return;
        }
        if (skipSpecialTokens && Special.SpecialIds.Contains(id)) return;
        var text = piece.Text.AsSpan();
        // sentencepiece DecodeSentencePiece: the first piece loses the space add_dummy_prefix put there.
        if (!state.Started && _proto.AddDummyPrefix && !_proto.TreatWhitespaceAsSuffix && text.Length > 0 && text[0] == '\u2581')
            text = text[1..];
        state.Started = true;
        AppendUtf8(text.ToString().Replace('\u2581', ' '), output);
    }
}
