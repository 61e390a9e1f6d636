using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;

namespace Encore.Formats.Tests.Tokenization;

/// <summary>
/// mBART's and mBART-50's tokenizer (fairseq's sentencepiece.bpe.model, language codes, &lt;mask&gt;) against
/// tools/reference/mbart_tokenizer_fixture.py (the sentencepiece library and transformers' MBartTokenizer and
/// MBart50Tokenizer rules restated).
/// </summary>
public sealed class MBartTokenizerTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-mbart-tok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", name);

    static JsonNode Expected(string name) => JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture(name), "expected.json")))!;

    [Theory]
    [InlineData("mbart", false, "en_XX")]
    [InlineData("mbart50", true, "fr_XX")]
    public void EncodesAndDecodesAsTransformersDoes(string name, bool fifty, string source)
    {
        var tok = Assert.IsType<MBartTokenizer>(TokenizerLoader.FromDirectory(Fixture(name)));
        var e = Expected(name);
        Assert.Equal(fifty, tok.IsMBart50);
        Assert.Equal(source, tok.SourceLanguage);
        Assert.Equal("ro_RO", tok.TargetLanguage);
        Assert.Equal((int)e["vocab_size"]!, tok.VocabSize);
        Assert.Equal((int)e["mask"]!, tok.TokenToId("<mask>"));
        Assert.Equal((int)e["codes"]!["ro_RO"]!, tok.LanguageId("ro_RO"));
        Assert.Equal("ro_RO", tok.IdToToken(tok.LanguageId("ro_RO")));
        Assert.Equal((0, 1, 2, 3), (tok.TokenToId("<s>"), tok.PadId, tok.EosId, tok.TokenToId("<unk>")));
        Assert.Equal(2, tok.DecoderStartId);
        foreach (var c in e["encode"]!.AsArray())
            Assert.Equal(c!["ids"]!.Deserialize<int[]>(), tok.Encode((string)c["text"]!));
        foreach (var c in e["decode"]!.AsArray())
            Assert.Equal((string?)c!["text"], tok.Decode(c["ids"]!.Deserialize<int[]>()));
        // Another source language wraps with its own code.
        var other = e["encode_as"]![0]!;
        tok.SourceLanguage = (string)other["lang"]!;
        Assert.Equal(other["ids"]!.Deserialize<int[]>(), tok.Encode((string)other["text"]!));
        // Streaming gives the same text as decoding at once.
        var ids = e["decode"]![0]!["ids"]!.Deserialize<int[]>()!;
        var stream = tok.CreateStreamingDecoder();
        Assert.Equal(tok.Decode(ids), string.Concat(ids.Select(stream.Push)) + stream.Flush());
    }

    [Fact]
    public void HostileTextsOfManySpecialTokensEncodeInLinearTime()
    {
        // 200,000 characters of codes and near-codes: a per-split rescan of the text for every special token (or a
        // backtracking Marian code pattern) would take minutes.
        var mbart = (MBartTokenizer)TokenizerLoader.FromDirectory(Fixture("mbart50"));
        var marian = TokenizerLoader.FromDirectory(Fixture("marian"));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(20_000 + 2, mbart.Encode(string.Concat(Enumerable.Repeat("<s>ro_RO", 10_000))).Length);
        marian.Encode(new string('>', 200_000) + "x");
        marian.Encode(">>" + string.Concat(Enumerable.Repeat("a>>", 60_000)));
        Assert.True(sw.Elapsed.TotalSeconds < 20, $"took {sw.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public void AnUnknownLanguageIsRefusedNamingTheFileOrListingTheCodes()
    {
        var dir = Path.Combine(_dir, "bad");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Fixture("mbart"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"tokenizer_class": "MBartTokenizer", "src_lang": "xx_YY"}""");
        var e = Assert.Throws<CheckpointFormatException>(() => TokenizerLoader.FromDirectory(dir));
        Assert.Contains(Path.Combine(dir, "tokenizer_config.json"), e.Message);
        Assert.Contains("src_lang 'xx_YY' is not one of the 25 language codes of mBART", e.Message);

        var tok = (MBartTokenizer)TokenizerLoader.FromDirectory(Fixture("mbart50"));
        var bad = Assert.Throws<ArgumentException>(() => tok.SourceLanguage = "en_US");
        Assert.Contains("'en_US' is not a language code of this tokenizer; codes: ar_AR, cs_CZ", bad.Message);
        Assert.Equal("fr_XX", tok.SourceLanguage);
    }
}
