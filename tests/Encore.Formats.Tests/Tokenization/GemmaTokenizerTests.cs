using System.Text.Json;
using Encore.Formats.Tokenization;

namespace Encore.Formats.Tests.Tokenization;

/// <summary>
/// A Gemma-style tokenizer directory (SentencePiece BPE with byte fallback, no dummy prefix, identity
/// normalizer, pad/eos/bos/unk = 0/1/2/3, user-defined &lt;start_of_turn&gt; and &lt;end_of_turn&gt;, add_bos_token)
/// against the ids of the sentencepiece library, written by tools/reference/gemma_tokenizer_fixture.py.
/// </summary>
public class GemmaTokenizerTests
{
    static readonly string s_dir = TokenizerFixtureTests.Dir("gemma");
    static readonly JsonElement s_expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(s_dir, "expected.json"))).RootElement;

    [Fact]
    public void EncodesAndDecodesLikeSentencePiece()
    {
        var tok = TokenizerLoader.FromDirectory(s_dir);
        Assert.Equal(TokenizerKind.SentencePieceBpe, tok.Kind);
        Assert.Equal(s_expected.GetProperty("vocab_size").GetInt32(), tok.VocabSize);
        foreach (var c in s_expected.GetProperty("cases").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            int[] ids = c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            var got = tok.Encode(text, addSpecialTokens: false);
            Assert.True(ids.SequenceEqual(got), $"'{text}': want [{string.Join(",", ids)}] got [{string.Join(",", got)}]");
            Assert.Equal(c.GetProperty("decoded").GetString(), tok.Decode(ids, skipSpecialTokens: false));
        }
    }

    [Fact]
    public void SpecialTokensAndTurnMarkers()
    {
        var tok = TokenizerLoader.FromDirectory(s_dir);
        Assert.Equal((0, 1, 2, 3), (tok.PadId, tok.EosId, tok.BosId, tok.UnkId));
        Assert.True(tok.AddsBos);
        var ids = tok.Encode("Hello world");
        Assert.Equal(2, ids[0]);
        Assert.Equal(tok.Encode("Hello world", false), ids[1..]);
        int start = s_expected.GetProperty("start_of_turn").GetInt32(), end = s_expected.GetProperty("end_of_turn").GetInt32();
        var turn = tok.Encode("<start_of_turn>user\nHi<end_of_turn>", false);
        Assert.Equal(start, turn[0]);
        Assert.Equal(end, turn[^1]);
        Assert.Equal("<start_of_turn>", tok.IdToToken(start));
    }
}
