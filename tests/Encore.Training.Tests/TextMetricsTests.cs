using Encore.Training.Metrics;

namespace Encore.Training.Tests;

public class TextMetricsTests
{
    [Fact]
    public void BleuOfAShortHypothesisIsTheHandValue()
    {
        // Precisions 5/5, 3/4, 2/3, 1/2 → geometric mean ¼^¼; brevity penalty e^(1 − 6/5).
        double expected = 100 * Math.Exp(1 - 6.0 / 5) * Math.Pow(0.25, 0.25);
        Assert.Equal(expected, TextMetrics.Bleu(["the cat sat on mat"], ["the cat sat on the mat"]), 6);
        Assert.Equal(100, TextMetrics.Bleu(["the cat sat on the mat"], ["the cat sat on the mat"]), 6);
        Assert.Equal(0, TextMetrics.Bleu(["dog"], ["the cat sat on the mat"]));
    }

    [Fact]
    public void RougeLIsTheLongestCommonSubsequenceF1()
    {
        // LCS 5 of 5 and 6 words: P = 1, R = 5/6.
        Assert.Equal(100 * 2 * (5.0 / 6) / (1 + 5.0 / 6), TextMetrics.RougeL(["the cat sat on mat"], ["the cat sat on the mat"]), 6);
        Assert.Equal(0, TextMetrics.RougeL(["x y"], ["a b"]));
    }

    [Fact]
    public void RougeNIsTheF1OfClippedNgramOverlap()
    {
        // Unigrams: the prediction's 5 words all occur in the reference's 6 (case folded): P = 1, R = 5/6. Bigrams: the cat, cat sat, sat on, on mat → 3 of 4 match
        // the reference's 5 bigrams: P = 3/4, R = 3/5.
        Assert.Equal(100 * 2 * (5.0 / 6) / (1 + 5.0 / 6), TextMetrics.RougeN(["the cat sat on mat"], ["The cat sat on the mat"], 1), 6);
        Assert.Equal(100 * 2 * 0.75 * 0.6 / (0.75 + 0.6), TextMetrics.RougeN(["the cat sat on mat"], ["the cat sat on the mat"], 2), 6);
        // Clipping: "the the the" against "the cat": overlap 1, P = 1/3, R = 1/2.
        Assert.Equal(100 * 2 * (1 / 3.0) * 0.5 / (1 / 3.0 + 0.5), TextMetrics.RougeN(["the the the"], ["the cat"], 1), 6);
        // One word has no bigram: 0; a mean over examples.
        Assert.Equal(50, TextMetrics.RougeN(["cat", "a b"], ["cat", "x y"], 1), 6);
        Assert.Equal(0, TextMetrics.RougeN(["cat"], ["cat"], 2));
    }

    [Fact]
    public void AllNamesEveryMetric()
    {
        var all = TextMetrics.All(["the cat"], ["the cat"]);
        Assert.Equal(["bleu", "chrf", "exact_match", "rouge1", "rouge2", "rouge_l", "token_f1"], all.Keys.Order());
        Assert.Equal(100, all["rouge_l"], 6);
        Assert.Equal(100, all["rouge2"], 6);
    }

    [Fact]
    public void ExactMatchAndTokenF1NormalizeLikeSquad()
    {
        Assert.Equal(100, TextMetrics.ExactMatch(["The Cat."], ["cat"]));
        Assert.Equal(50, TextMetrics.ExactMatch(["blue", "red"], ["blue", "green"]));
        // [cat] against [cat, sat]: P = 1, R = ½.
        Assert.Equal(100 * 2.0 / 3, TextMetrics.TokenF1(["The cat!"], ["a cat sat"]), 6);
    }

    [Fact]
    public void ChrFOfAPrefixIsTheHandValue()
    {
        // "ab" vs "abc": order 1 P = 1, R = ⅔; order 2 P = 1, R = ½; order 3 P = 0, R = 0 (no hypothesis trigram).
        double p = 2.0 / 3, r = (2.0 / 3 + 0.5) / 3;
        Assert.Equal(100 * 5 * p * r / (4 * p + r), TextMetrics.ChrF(["ab"], ["abc"]), 6);
        Assert.Equal(100, TextMetrics.ChrF(["a b"], ["ab"]), 6);
        Assert.Throws<ArgumentException>(() => TextMetrics.ChrF(["a"], []));
    }
}

public class LossPlotTests
{
    [Fact]
    public void WritesAPng()
    {
        var path = Path.Combine(Path.GetTempPath(), $"encore-loss-{Guid.NewGuid():N}.png");
        try
        {
            Encore.Training.Trainer.LossPlot.Write(path, [(1, 3.0), (2, 2.5), (3, 2.0)], [(2, 2.7)], "test");
            var b = File.ReadAllBytes(path);
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, b[..4]);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
