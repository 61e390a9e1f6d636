using System.Text;
using Encore.Formats.Tokenization;

namespace Encore.Formats.Tests.Tokenization;

/// <summary>Decode(Encode(s)) == s and streaming decode == full decode, on Unicode text.</summary>
public class TokenizerRoundTripTests
{
    static readonly string[] s_texts =
    [
        "Hello world",
        "café naïve résumé Übergröße façade",
        "敏捷的棕色狐狸跳过了懒狗",
        "こんにちは、世界。カタカナ",
        "Привет, мир! Ελληνικά, עברית, العربية",
        "emoji 🙂🚀👍🏽 flags 🇫🇷🇯🇵 family 👨‍👩‍👧",
        "mixed: English, 中文, русский, 😀 and 12345",
        "rare: ∮ Ω ƒ ǅ ☃ 𝔘 𝄞",
        "  leading, inner   and trailing spaces  ",
        "tabs\tand\nnewlines\r\n",
        "math 𝑥² + 𝑦² = 𝑧² ≤ ∞",
        "",
        " ",
        "a",
    ];

    public static TheoryData<string> LosslessModels => new() { "llama", "gpt2", "qwen2", "gpt2-files" };

    public static TheoryData<string> AllModels => new() { "t5", "llama", "gpt2", "qwen2", "bert" };

    [Theory]
    [MemberData(nameof(LosslessModels))]
    public void DecodeOfEncodeIsTheText(string model)
    {
        var tok = TokenizerLoader.FromDirectory(TokenizerFixtureTests.Dir(model));
        foreach (var s in s_texts)
        {
            Assert.Equal(s, tok.Decode(tok.Encode(s, addSpecialTokens: false)));
            Assert.Equal(s, tok.Decode(tok.Encode(s)));
        }
        // Rare characters the fixture models never saw go through bytes, not unk.
        if (tok.UnkId is { } unk) Assert.DoesNotContain(unk, tok.Encode(string.Concat(s_texts)));
    }

    [Theory]
    [MemberData(nameof(AllModels))]
    public void StreamedPiecesAddUpToTheFullDecodeAndNeverSplitACharacter(string model)
    {
        var tok = TokenizerLoader.FromDirectory(TokenizerFixtureTests.Dir(model));
        var all = s_texts.Concat(TokenizerFixtureTests.Cases(model).Select(c => c.Text)).ToList();
        int partialSteps = 0;
        foreach (var skip in new[] { true, false })
        {
            foreach (var s in all)
            {
                var ids = tok.Encode(s);
                var stream = tok.CreateStreamingDecoder(skipSpecialTokens: skip);
                var sb = new StringBuilder();
                foreach (int id in ids)
                {
                    var piece = stream.Push(id);
                    if (piece.Length == 0) partialSteps++;
                    AssertWholeCharacters(piece);
                    Assert.DoesNotContain('\uFFFD', piece);
                    sb.Append(piece);
                }
                Assert.Equal("", stream.Flush());
                Assert.Equal(tok.Decode(ids, skip), sb.ToString());
            }
        }
        // Byte-level and byte-fallback models must have held back partial characters at some point.
        if (model is "llama" or "gpt2" or "qwen2") Assert.True(partialSteps > 0);
    }

    [Fact]
    public void StreamingHoldsBackEachByteOfAnEmojiUntilItIsComplete()
    {
        var tok = TokenizerLoader.FromDirectory(TokenizerFixtureTests.Dir("gpt2"));
        // 🚀 is F0 9F 9A 80; the fixture merges only F0 9F, so it takes three tokens.
        var ids = tok.Encode("🚀", false);
        Assert.Equal(3, ids.Length);
        var stream = tok.CreateStreamingDecoder();
        Assert.Equal("", stream.Push(ids[0]));
        Assert.Equal("", stream.Push(ids[1]));
        Assert.Equal("🚀", stream.Push(ids[2]));

        // A stream cut inside a character: Flush gives what Decode gives (U+FFFD), then starts afresh.
        stream.Push(ids[0]);
        stream.Push(ids[1]);
        Assert.Equal(tok.Decode(ids.AsSpan(0, 2)), stream.Flush());
        Assert.Equal("\uFFFD", tok.Decode(ids.AsSpan(0, 2)));
        Assert.Equal("a", stream.Push(tok.Encode("a", false)[0]));
    }

    [Fact]
    public void SentencePieceStreamingDropsOnlyTheFirstDummyPrefixSpace()
    {
        var tok = TokenizerLoader.FromDirectory(TokenizerFixtureTests.Dir("llama"));
        var ids = tok.Encode("Hello world", false);
        var stream = tok.CreateStreamingDecoder();
        var pieces = ids.Select(stream.Push).ToList();
        Assert.Equal("Hello world", string.Concat(pieces));
        Assert.False(pieces.First(p => p.Length > 0).StartsWith(' '));
        Assert.Contains(pieces, p => p.StartsWith(' '));
    }

    [Fact]
    public void OutOfRangeIdsThrow()
    {
        var tok = TokenizerLoader.FromDirectory(TokenizerFixtureTests.Dir("llama"));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([tok.VocabSize]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([-1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.CreateStreamingDecoder().Push(tok.VocabSize));
        Assert.Null(tok.IdToToken(tok.VocabSize));
        Assert.Null(tok.TokenToId("no such token"));
    }

    static void AssertWholeCharacters(string piece)
    {
        for (int i = 0; i < piece.Length; i++)
        {
            if (char.IsHighSurrogate(piece[i]))
            {
                Assert.True(i + 1 < piece.Length && char.IsLowSurrogate(piece[i + 1]), $"piece '{piece}' ends inside a surrogate pair");
                i++;
            }
            else
            {
                Assert.False(char.IsLowSurrogate(piece[i]), $"piece '{piece}' starts inside a surrogate pair");
            }
        }
    }
}
