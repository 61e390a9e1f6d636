using Encore.Formats;
using Encore.Formats.Tokenization;

namespace Encore.Generation.Tests;

/// <summary>
/// The n-gram store of Superposed Decoding: counts by hand, interpolated distributions that sum to 1 over
/// the vocabulary, a save/load round trip, and files that are truncated, corrupt or built for another
/// tokenizer refused with one message naming the file and the field.
/// </summary>
public class NgramTableTests
{
    static readonly float[] Weights = [0.01f, 0.04f, 0.15f, 0.18f, 0.12f];

    // Three documents over a vocabulary of 8: n-grams never span two of them.
    static NgramTable Small(int order = 3) => NgramTable.Build([[1, 2, 3, 1, 2, 4], [2, 3, 5], [6, 1, 2]], 8, order);

    [Fact]
    public void ProbabilitiesAreTheCountsByHand()
    {
        var t = Small();
        Assert.Equal(12, t.TokenCount);
        // Bigram only: after 2 come 3, 4, 3 → P(3|2) = 2/3, P(4|2) = 1/3.
        float[] bigram = [1f];
        Assert.Equal(2.0 / 3, t.Probability([2], 3, bigram), 12);
        Assert.Equal(1.0 / 3, t.Probability([2], 4, bigram), 12);
        Assert.Equal(0, t.Probability([2], 5, bigram));
        // "4 2" never spans the first two documents: 4 was never followed, so the unigram backs off: P(2) = 4/12.
        Assert.Equal(4.0 / 12, t.Probability([4], 2, bigram), 12);
        // Bigram and trigram mixed, weights renormalized over the seen contexts: after (1, 2): trigram 3 or 4 (½ each).
        float[] both = [0.25f, 0.75f];
        Assert.Equal((0.25 * 2 / 3 + 0.75 * 0.5) / 1.0, t.Probability([1, 2], 3, both), 12);
        // (5, 2) unseen as a trigram context: only the bigram counts, its weight renormalized to 1.
        Assert.Equal(2.0 / 3, t.Probability([5, 2], 3, both), 12);
        // Bigram contexts: 1, 2, 3 and 6 (5 and 4 end their documents).
        Assert.Equal(4, t.ContextCount(2));
    }

    [Fact]
    public void InterpolatedProbabilitiesSumToOneOverTheVocabulary()
    {
        var rng = new Random(3);
        var docs = Enumerable.Range(0, 40).Select(_ => Enumerable.Range(0, rng.Next(1, 30)).Select(_ => rng.Next(0, 50)).ToArray()).ToArray();
        var t = NgramTable.Build(docs, 60, 6);
        var p = new double[60];
        for (int trial = 0; trial < 200; trial++)
        {
            // Histories from the corpus (seen contexts) and random ones (mostly unseen), of every length up to 7.
            int[] history = trial % 2 == 0
                ? docs[rng.Next(docs.Length)].Take(rng.Next(0, 8)).ToArray()
                : Enumerable.Range(0, rng.Next(0, 8)).Select(_ => rng.Next(0, 60)).ToArray();
            var weights = trial % 3 == 0 ? Weights : [(float)rng.NextDouble(), 0f, (float)rng.NextDouble(), 1f];
            t.Distribution(history, weights, p);
            Assert.Equal(1.0, p.Sum(), 10);
            Assert.All(p, x => Assert.InRange(x, 0, 1));
        }
    }

    [Fact]
    public void SaveAndLoadGiveTheSameTable()
    {
        var rng = new Random(4);
        var docs = Enumerable.Range(0, 30).Select(_ => Enumerable.Range(0, rng.Next(1, 40)).Select(_ => rng.Next(0, 20)).ToArray()).ToArray();
        var t = NgramTable.Build(docs, 32, 5, tokenizerFingerprint: 0x1234);
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "corpus.ngram");
        t.Save(path);
        var u = NgramTable.Load(path);
        Assert.Equal((t.Order, t.VocabSize, t.TokenizerFingerprint, t.TokenCount), (u.Order, u.VocabSize, u.TokenizerFingerprint, u.TokenCount));
        Assert.Equal(path, u.Path);
        for (int n = 2; n <= 5; n++) Assert.Equal(t.ContextCount(n), u.ContextCount(n));
        var a = new double[32];
        var b = new double[32];
        for (int trial = 0; trial < 50; trial++)
        {
            var history = docs[trial % docs.Length].Take(trial % 6).ToArray();
            t.Distribution(history, Weights, a);
            u.Distribution(history, Weights, b);
            Assert.Equal(a, b);
        }
    }

    [Fact]
    public void TruncatedCorruptOrForeignFilesAreRefusedNamingTheFile()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "t.ngram");
        Small(4).Save(path);
        var bytes = File.ReadAllBytes(path);

        // Truncated anywhere: a clear message with the file name, never a crash or a huge allocation.
        foreach (int length in new[] { 0, 5, 20, 40, bytes.Length / 2, bytes.Length - 1 })
        {
            File.WriteAllBytes(path, bytes[..length]);
            var e = Assert.Throws<CheckpointFormatException>(() => NgramTable.Load(path));
            Assert.Contains(path, e.Message);
            Assert.True(e.Message.Contains("truncated") || e.Message.Contains("magic"), e.Message);
        }
        // A flipped bit anywhere is corruption.
        for (int i = 40; i < bytes.Length; i += 7)
        {
            var bad = (byte[])bytes.Clone();
            bad[i] ^= 0x10;
            File.WriteAllBytes(path, bad);
            var e = Assert.Throws<CheckpointFormatException>(() => NgramTable.Load(path));
            Assert.Contains(path, e.Message);
        }
        // A header field out of range is named (the checksum comes after the header).
        var wrongOrder = (byte[])bytes.Clone();
        wrongOrder[12] = 99;
        File.WriteAllBytes(path, wrongOrder);
        Assert.Contains("order", Assert.Throws<CheckpointFormatException>(() => NgramTable.Load(path)).Message);
        File.WriteAllBytes(path, "not a table at all"u8.ToArray());
        Assert.Contains("magic", Assert.Throws<CheckpointFormatException>(() => NgramTable.Load(path)).Message);
    }

    [Fact]
    public void ATableOfAnotherTokenizerOrVocabularyIsRefusedNamingTheField()
    {
        var tok = TinyModels.Tokenizer;
        ulong fp = NgramTable.Fingerprint(tok);
        Assert.Equal(fp, NgramTable.Fingerprint(tok));
        var docs = new[] { tok.Encode("The quick brown fox jumps over the lazy dog.", addSpecialTokens: false) };
        var good = NgramTable.Build(docs, tok.VocabSize, 3, fp);
        good.CheckFits(tok.VocabSize, tok);

        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "other.ngram");
        NgramTable.Build(docs, tok.VocabSize, 3, fp ^ 1).Save(path);
        var e = Assert.Throws<ArgumentException>(() => NgramTable.Load(path).CheckFits(tok.VocabSize, tok));
        Assert.Contains(path, e.Message);
        Assert.Contains("tokenizer_fingerprint", e.Message);

        NgramTable.Build(docs, tok.VocabSize + 5, 3, fp).Save(path);
        e = Assert.Throws<ArgumentException>(() => NgramTable.Load(path).CheckFits(tok.VocabSize + 5, tok));
        Assert.Contains(path, e.Message);
        Assert.Contains("vocab_size", e.Message);
        // Without a tokenizer only the size is known: a table larger than the model's vocabulary is refused.
        e = Assert.Throws<ArgumentException>(() => NgramTable.Load(path).CheckFits(tok.VocabSize, null));
        Assert.Contains("vocab_size", e.Message);
        // A different tokenizer: another fingerprint.
        var other = BpeTrainer.Train(["completely different text for another vocabulary"], 300, ["<pad>", "</s>", "<s>"],
            new SpecialTokenRoles(Bos: "<s>", Eos: "</s>", Pad: "<pad>"));
        Assert.NotEqual(fp, NgramTable.Fingerprint(other));
    }

    [Fact]
    public void BuildRefusesBadInput()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => NgramTable.Build([[1, 2]], 8, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => NgramTable.Build([[1, 2]], 8, NgramTable.MaxOrder + 1));
        Assert.Contains("outside the vocabulary", Assert.Throws<ArgumentException>(() => NgramTable.Build([[1, 9]], 8, 2)).Message);
        Assert.Contains("no tokens", Assert.Throws<ArgumentException>(() => NgramTable.Build([[]], 8, 2)).Message);
    }

    sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("encore-ngram-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
