using System.Text.Json;
using Encore.Formats.Tokenization;

namespace Encore.Formats.Tests.Tokenization;

/// <summary>NFC, NFD and BERT accent stripping against Python's unicodedata.</summary>
public class UnicodeNormalizationTests
{
    [Fact]
    public void MatchesPythonUnicodedata()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TokenizerFixtureTests.Dir("expected.json")));
        int n = 0;
        foreach (var c in doc.RootElement.GetProperty("normalization").EnumerateArray())
        {
            var text = c.GetProperty("text").GetString()!;
            Assert.Equal(c.GetProperty("nfc").GetString(), UnicodeNormalization.Nfc(text));
            Assert.Equal(c.GetProperty("nfd").GetString(), UnicodeNormalization.Nfd(text));
            Assert.Equal(c.GetProperty("stripped").GetString(), UnicodeNormalization.StripAccents(text));
            n++;
        }
        Assert.True(n >= 10);
    }

    [Fact]
    public void HandComputedCases()
    {
        Assert.Equal("\u00E9", UnicodeNormalization.Nfc("e\u0301"));
        Assert.Equal("e\u0301", UnicodeNormalization.Nfd("\u00E9"));
        // Angstrom sign is a singleton: NFC gives Å, never back.
        Assert.Equal("\u00C5", UnicodeNormalization.Nfc("\u212B"));
        // Dot below (class 220) sorts before acute (230), then both compose onto e.
        Assert.Equal("\u1EB9\u0301", UnicodeNormalization.Nfc("e\u0301\u0323"));
        Assert.Equal("\uD55C", UnicodeNormalization.Nfc("\u1112\u1161\u11AB"));
        Assert.Equal("cafe", UnicodeNormalization.StripAccents("café"));
        Assert.Equal("a\uD800b", UnicodeNormalization.Nfc("a\uD800b"));
    }
}
