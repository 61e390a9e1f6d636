using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats.Tokenization;

namespace Encore.Formats.Tests.Tokenization;

/// <summary>
/// BART's byte-level BPE with its special tokens and add_prefix_space, and Marian's source.spm / target.spm /
/// vocab.json pair against tools/reference/marian_tokenizer_fixture.py (the sentencepiece library and
/// MarianTokenizer's rules restated).
/// </summary>
public sealed class BartMarianTokenizerTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-bart-tok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", name);

    [Fact]
    public void MarianEncodesALeadingLanguageCodeAndSourcePiecesThroughTheSharedVocabularyAndDecodesWithTargetPieces()
    {
        var tok = Assert.IsType<MarianTokenizer>(TokenizerLoader.FromDirectory(Fixture("marian")));
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture("marian"), "expected.json")))!;
        foreach (var e in expected["encode"]!.AsArray())
            Assert.Equal(e!["ids"]!.Deserialize<int[]>(), tok.Encode((string)e["text"]!));
        foreach (var e in expected["decode"]!.AsArray())
            Assert.Equal((string?)e!["text"], tok.Decode(e["ids"]!.Deserialize<int[]>()));
        Assert.Equal(79, tok.VocabSize);   // two language codes (>>de<<, >>fr<<) after <pad>
        Assert.Equal([77, 10, 3], tok.Encode(">>de<< the quick archive").Take(3));
        Assert.Equal((0, 76, 76), (tok.EosId, tok.PadId, tok.DecoderStartId));
        Assert.True(tok.AddsEos);
        Assert.False(tok.AddsBos);
        // Streaming gives the same text as decoding at once.
        var ids = expected["decode"]![0]!["ids"]!.Deserialize<int[]>()!;
        var stream = tok.CreateStreamingDecoder();
        Assert.Equal(tok.Decode(ids), string.Concat(ids.Select(stream.Push)) + stream.Flush());
    }

    [Theory]
    [InlineData("<pad> >>de<< >>fr<<", "the token '<pad>' is not in the vocabulary")]   // the codes after it too: no gap
    [InlineData("▁", "no token has id")]
    public void AMarianVocabularyWithoutItsTokensFailsNamingTheFile(string remove, string message)
    {
        var dir = Path.Combine(_dir, "marian");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Fixture("marian"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var vocab = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "vocab.json")))!.AsObject();
        foreach (var token in remove.Split(' ')) Assert.True(vocab.Remove(token));
        File.WriteAllText(Path.Combine(dir, "vocab.json"), vocab.ToJsonString());
        var e = Assert.Throws<CheckpointFormatException>(() => TokenizerLoader.FromDirectory(dir));
        Assert.Contains(Path.Combine(dir, "vocab.json"), e.Message);
        Assert.Contains(message, e.Message);
    }

    // GPT-2's fixture vocabulary renumbered as BART lays its out: <s> <pad> </s> <unk> first, <mask> last.
    (string Dir, Func<int, int> Shift, int Mask) BartFiles(bool? addPrefixSpace)
    {
        var gpt2 = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture("gpt2-files"), "vocab.json")))!.AsObject();
        var vocab = new JsonObject { ["<s>"] = 0, ["<pad>"] = 1, ["</s>"] = 2, ["<unk>"] = 3 };
        foreach (var (k, v) in gpt2) vocab[k] = (int)v! + 4;
        int mask = gpt2.Count + 4;
        vocab["<mask>"] = mask;
        var dir = Path.Combine(_dir, $"bart-{addPrefixSpace}");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "vocab.json"), vocab.ToJsonString());
        File.Copy(Path.Combine(Fixture("gpt2-files"), "merges.txt"), Path.Combine(dir, "merges.txt"));
        File.WriteAllText(Path.Combine(dir, "config.json"),
            """{"model_type": "bart", "bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 2}""");
        if (addPrefixSpace is bool p) File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), $$"""{"add_prefix_space": {{(p ? "true" : "false")}}}""");
        return (dir, id => id + 4, mask);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(false)]
    [InlineData(true)]
    public void BartWrapsTextInItsSpecialTokensAndFollowsAddPrefixSpace(bool? addPrefixSpace)
    {
        var gpt2 = TokenizerLoader.FromDirectory(Fixture("gpt2-files"));
        var (dir, shift, mask) = BartFiles(addPrefixSpace);
        var bart = TokenizerLoader.FromDirectory(dir);
        const string text = "The cat and the hat.";
        // BartTokenizer's add_prefix_space defaults to false: the first word is spelled as at a text's start.
        string spelled = addPrefixSpace == true ? " " + text : text;
        int[] body = gpt2.Encode(spelled, addSpecialTokens: false).Select(shift).ToArray();
        Assert.Equal([0, .. body, 2], bart.Encode(text));
        Assert.Equal(body, bart.Encode(text, addSpecialTokens: false));
        Assert.Equal((0, 1, 2, 3, 2), (bart.BosId, bart.PadId, bart.EosId, bart.UnkId, bart.DecoderStartId));
        Assert.Equal(spelled, bart.Decode(bart.Encode(text)));
        // The role tokens and <mask> are matched whole in the text and skipped when decoding.
        Assert.Equal(mask, bart.AddedTokens["<mask>"]);
        Assert.Equal([0, .. gpt2.Encode(addPrefixSpace == true ? " The" : "The", false).Select(shift), mask, 2], bart.Encode("The<mask>"));
        // <mask> takes the space before it (lstrip), as BartTokenizer's AddedToken does: "The <mask> hat" is The, <mask>, " hat".
        int[] the = gpt2.Encode(addPrefixSpace == true ? " The" : "The", false).Select(shift).ToArray(), hat = gpt2.Encode(" hat", false).Select(shift).ToArray();
        Assert.Equal([0, .. the, mask, .. hat, 2], bart.Encode("The <mask> hat"));
        Assert.Equal([0, .. the, mask, mask, .. hat, 2], bart.Encode("The  <mask> <mask> hat"));
        Assert.True(bart.IsSpecial(mask) && bart.IsSpecial(0) && bart.IsSpecial(1));
        Assert.Equal("The cat", bart.Decode([0, .. gpt2.Encode("The cat", false).Select(shift), mask, 2, 1, 1]));
    }

    [Fact]
    public void ASavedBartTokenizerJsonKeepsTheMaskLStrip()
    {
        var (dir, _, _) = BartFiles(null);
        var bart = Assert.IsType<ByteLevelBpeTextTokenizer>(TokenizerLoader.FromDirectory(dir));
        var saved = Path.Combine(_dir, "saved");
        bart.Save(saved);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(saved, TokenizerLoader.TokenizerJson)))!;
        Assert.Contains(json["added_tokens"]!.AsArray(), a => (string?)a!["content"] == "<mask>" && (bool)a["lstrip"]!);
        var back = TokenizerLoader.FromDirectory(saved);
        Assert.Equal(bart.Encode("The <mask> hat", addSpecialTokens: false), back.Encode("The <mask> hat", addSpecialTokens: false));
    }

    [Fact]
    public void WithoutModelTypeBartTheOlderLayoutKeepsGpt2sBehaviour()
    {
        var (dir, _, _) = BartFiles(null);
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_type": "gpt2"}""");
        var tok = TokenizerLoader.FromDirectory(dir);
        Assert.False(tok.AddsBos || tok.AddsEos);
        Assert.False(tok.AddedTokens.ContainsKey("<mask>"));
    }
}
