using Encore.Training.Data;

namespace Encore.Training.Tests;

public class DatasetReaderTests
{
    static DatasetFormatException ReadBad(string content, DatasetReadOptions? options = null)
    {
        using var f = new TempFile(content);
        var e = Assert.Throws<DatasetFormatException>(() => DatasetReader.ReadPairs(f.Path, options));
        Assert.Equal(f.Path, e.File);
        Assert.Contains(f.Path, e.Message);
        return e;
    }

    const string Good = "{\"source\": \"a\", \"target\": \"b\"}\n";

    [Fact]
    public void ReadsPairsSkippingBlankLinesWithCrlfAndBom()
    {
        using var f = new TempFile("\uFEFF{\"source\": \"x y\", \"target\": \"z\", \"id\": 3}\r\n\r\n{\"target\": \"t\", \"source\": \"s\"}");
        var pairs = DatasetReader.ReadPairs(f.Path);
        Assert.Equal([new TextPair("x y", "z"), new TextPair("s", "t")], pairs);
    }

    [Fact]
    public void BadJsonNamesTheLine()
    {
        var e = ReadBad(Good + "{\"source\": \"a\", \"target\": \n");
        Assert.Equal(2, e.Line);
        Assert.Contains("line 2: not valid JSON", e.Message);
    }

    [Theory]
    [InlineData("{\"source\": \"\\ud800\", \"target\": \"b\"}", "source")]
    [InlineData("{\"source\": \"a\", \"target\": \"x\\udfffy\"}", "target")]
    public void LoneSurrogateEscapeNamesTheLineAndField(string line, string field)
    {
        var e = ReadBad(Good + line + "\n");
        Assert.Equal(2, e.Line);
        Assert.Contains($"field \"{field}\"", e.Message);
        Assert.Contains("surrogate", e.Message);
    }

    [Fact]
    public void MissingFieldNamesTheField()
    {
        var e = ReadBad(Good + Good + "{\"source\": \"a\"}\n");
        Assert.Equal(3, e.Line);
        Assert.Contains("missing field \"target\"", e.Message);
    }

    [Fact]
    public void WrongTypeNamesTheFieldAndType()
    {
        var e = ReadBad("{\"source\": 5, \"target\": \"b\"}\n");
        Assert.Equal(1, e.Line);
        Assert.Contains("field \"source\" must be a string, found a number", e.Message);
        Assert.Contains("found an array", ReadBad("[1, 2]\n").Message);
        Assert.Contains("found null", ReadBad("{\"source\": \"a\", \"target\": null}").Message);
    }

    [Fact]
    public void OverlongLineFailsBeforeBufferingIt()
    {
        var e = ReadBad(Good + "{\"source\": \"" + new string('a', 500) + "\", \"target\": \"b\"}\n", new DatasetReadOptions { MaxLineBytes = 100 });
        Assert.Equal(2, e.Line);
        Assert.Contains("longer than 100 bytes", e.Message);
        // A line exactly at the cap, CRLF included, is fine.
        string line = "{\"source\": \"" + new string('a', 100 - 29) + "\", \"target\": \"b\"}";
        Assert.Equal(100, line.Length);
        using var f = new TempFile(line + "\r\n");
        Assert.Single(DatasetReader.ReadPairs(f.Path, new DatasetReadOptions { MaxLineBytes = 100 }));
    }

    [Fact]
    public void OversizedFileIsRejectedBeforeReading()
    {
        var e = ReadBad(Good + Good, new DatasetReadOptions { MaxFileBytes = 40 });
        Assert.Equal(0, e.Line);
        Assert.Contains("over the 40-byte limit", e.Message);
    }

    [Fact]
    public void InvalidUtf8AndMissingFileAreReported()
    {
        using var f = new TempFile([.. System.Text.Encoding.UTF8.GetBytes(Good), 0x7B, 0xFF, 0xFE, 0x7D, 0x0A]);
        var e = Assert.Throws<DatasetFormatException>(() => DatasetReader.ReadPairs(f.Path));
        Assert.Contains("line 2: not valid UTF-8", e.Message);
        Assert.Contains("file not found", Assert.Throws<DatasetFormatException>(() => DatasetReader.ReadPairs("/nonexistent/x.jsonl")).Message);
    }

    [Fact]
    public void ReadsPlainTextInBothLayouts()
    {
        using var f = new TempFile("one a\none b\n\n\ntwo\n  \nthree a\nthree b");
        Assert.Equal(["one a", "one b", "two", "three a", "three b"], DatasetReader.ReadDocuments(f.Path, TextLayout.LinePerDocument));
        Assert.Equal(["one a\none b", "two", "three a\nthree b"], DatasetReader.ReadDocuments(f.Path, TextLayout.BlankLineSeparated));
        var e = Assert.Throws<DatasetFormatException>(() =>
            DatasetReader.ReadDocuments(f.Path, TextLayout.BlankLineSeparated, new DatasetReadOptions { MaxDocumentBytes = 10 }));
        Assert.Equal(1, e.Line);
        Assert.Contains("longer than 10 bytes", e.Message);
    }

    [Fact]
    public void TokenizedFilesAreCachedByContentPerTokenizer()
    {
        using var a = new TempFile(Good + "{\"source\": \"define: bank (noun)\", \"target\": \"sloping land\"}\n");
        using var b = new TempFile(Good + "{\"source\": \"define: bank (noun)\", \"target\": \"sloping land\"}\n");
        var tok = TestData.Tokenizer;
        var da = TokenizedDataset.LoadPairs(a.Path, tok);
        Assert.Same(da, TokenizedDataset.LoadPairs(b.Path, tok)); // same bytes, same tokenizer
        Assert.Equal(tok.Encode("sloping land", addSpecialTokens: false), da.Targets![1]);
        File.AppendAllText(b.Path, Good);
        Assert.NotSame(da, TokenizedDataset.LoadPairs(b.Path, tok));
    }

    [Fact]
    public void TruncationCutsAndCounts()
    {
        var data = TokenizedDataset.FromIds([[1, 2, 3, 4], [5, 6], [7, 8, 9]], [[1], [1, 2, 3], [4, 5, 6, 7]]);
        var cut = data.Truncate(3, 2, out var report);
        Assert.Equal(new TruncationReport(Sources: 1, Targets: 2, Examples: 3), report);
        Assert.Equal([1, 2, 3], cut.Sources[0]);
        Assert.Equal([7, 8, 9], cut.Sources[2]);
        Assert.Equal([4, 5], cut.Targets![2]);
        data.Truncate(null, null, out var none);
        Assert.Equal(new TruncationReport(0, 0, 0), none);
    }
}
