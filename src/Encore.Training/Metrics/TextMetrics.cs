using System.Globalization;
using System.Text;

namespace Encore.Training.Metrics;

/// <summary>
/// Corpus-level text metrics for evaluating generated outputs against references, each following
/// its usual definition: exact match and token F1 with SQuAD's answer normalization (Rajpurkar et
/// al. 2016), chrF (Popović 2015; character n-grams up to 6, β = 2, as sacreBLEU's default),
/// ROUGE-L (Lin 2004; F-measure of the longest common subsequence of words) and BLEU (Papineni et
/// al. 2002; corpus BLEU-4 with brevity penalty, whitespace tokens, no smoothing). All return 0–100.
/// </summary>
public static class TextMetrics
{
    /// <summary>Percentage of predictions equal to their reference after normalization.</summary>
    public static double ExactMatch(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
        => MeanPercent(predictions, references, (p, r) => string.Join(' ', Normalize(p)) == string.Join(' ', Normalize(r)) ? 1 : 0);

    /// <summary>Mean over examples of the F1 of normalized word overlap (bag of words).</summary>
    public static double TokenF1(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
        => MeanPercent(predictions, references, (prediction, reference) =>
        {
            var p = Normalize(prediction);
            var r = Normalize(reference);
            if (p.Count == 0 || r.Count == 0) return p.Count == r.Count ? 1 : 0;
            var counts = r.GroupBy(w => w).ToDictionary(g => g.Key, g => g.Count());
            int common = 0;
            foreach (var w in p)
            {
                if (counts.TryGetValue(w, out int c) && c > 0)
                {
                    common++;
                    counts[w] = c - 1;
                }
            }
            return F1(common, p.Count, r.Count);
        });

    /// <summary>
    /// Corpus chrF: character n-gram (n = 1..6, spaces removed) precision and recall summed over
    /// the corpus per order, averaged over orders, combined as F_β with β = 2.
    /// </summary>
    public static double ChrF(IReadOnlyList<string> predictions, IReadOnlyList<string> references, int maxOrder = 6, double beta = 2)
    {
        Check(predictions, references);
        var matches = new double[maxOrder];
        var hypTotal = new double[maxOrder];
        var refTotal = new double[maxOrder];
        for (int i = 0; i < predictions.Count; i++)
        {
            string h = predictions[i].Replace(" ", ""), r = references[i].Replace(" ", "");
            for (int n = 1; n <= maxOrder; n++)
            {
                var hc = CharNgrams(h, n);
                var rc = CharNgrams(r, n);
                foreach (var (g, c) in hc) if (rc.TryGetValue(g, out int rcount)) matches[n - 1] += Math.Min(c, rcount);
                hypTotal[n - 1] += hc.Values.Sum();
                refTotal[n - 1] += rc.Values.Sum();
            }
        }
        double precision = 0, recall = 0;
        int orders = 0;
        for (int n = 0; n < maxOrder; n++)
        {
            if (hypTotal[n] == 0 && refTotal[n] == 0) continue;
            precision += hypTotal[n] > 0 ? matches[n] / hypTotal[n] : 0;
            recall += refTotal[n] > 0 ? matches[n] / refTotal[n] : 0;
            orders++;
        }
        if (orders == 0) return 0;
        precision /= orders;
        recall /= orders;
        if (precision + recall == 0) return 0;
        double b2 = beta * beta;
        return 100 * (1 + b2) * precision * recall / (b2 * precision + recall);
    }

    /// <summary>Mean over examples of ROUGE-L F1: the longest common subsequence of lower-cased words.</summary>
    public static double RougeL(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
        => MeanPercent(predictions, references, (prediction, reference) =>
        {
            var p = Words(prediction);
            var r = Words(reference);
            return p.Length == 0 || r.Length == 0 ? 0 : F1(Lcs(p, r), p.Length, r.Length);
        });

    /// <summary>
    /// Mean over examples of ROUGE-N F1 (Lin 2004): clipped overlap of the lower-cased word
    /// n-grams of prediction and reference. An example with no n-gram on either side scores 0.
    /// </summary>
    public static double RougeN(IReadOnlyList<string> predictions, IReadOnlyList<string> references, int n)
    {
        Check(predictions, references);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        return MeanPercent(predictions, references, (prediction, reference) =>
        {
            var p = Words(prediction);
            var r = Words(reference);
            int pn = p.Length - n + 1, rn = r.Length - n + 1;
            if (pn <= 0 || rn <= 0) return 0;
            var rc = WordNgrams(r, n);
            long overlap = 0;
            foreach (var (g, c) in WordNgrams(p, n)) if (rc.TryGetValue(g, out int k)) overlap += Math.Min(c, k);
            return F1(overlap, pn, rn);
        });
    }

    /// <summary>100 × the mean of <paramref name="score"/> over the (prediction, reference) pairs; 0 for none.</summary>
    static double MeanPercent(IReadOnlyList<string> predictions, IReadOnlyList<string> references, Func<string, string, double> score)
    {
        Check(predictions, references);
        if (predictions.Count == 0) return 0;
        double total = 0;
        for (int i = 0; i < predictions.Count; i++) total += score(predictions[i], references[i]);
        return 100.0 * total / predictions.Count;
    }

    /// <summary>F1 of <paramref name="overlap"/> units shared by a prediction and a reference of the given sizes; 0 without overlap.</summary>
    static double F1(double overlap, long predicted, long reference)
    {
        if (overlap == 0) return 0;
        double precision = overlap / predicted, recall = overlap / reference;
        return 2 * precision * recall / (precision + recall);
    }

    /// <summary>
    /// Every metric of this class under its report name: exact_match, token_f1, rouge1, rouge2,
    /// rouge_l, chrf, bleu (all 0–100).
    /// </summary>
    public static IReadOnlyDictionary<string, double> All(IReadOnlyList<string> predictions, IReadOnlyList<string> references) => new Dictionary<string, double>
    {
        ["exact_match"] = ExactMatch(predictions, references),
        ["token_f1"] = TokenF1(predictions, references),
        ["rouge1"] = RougeN(predictions, references, 1),
        ["rouge2"] = RougeN(predictions, references, 2),
        ["rouge_l"] = RougeL(predictions, references),
        ["chrf"] = ChrF(predictions, references),
        ["bleu"] = Bleu(predictions, references),
    };

    /// <summary>
    /// Corpus BLEU-4: the geometric mean of clipped n-gram precisions (n = 1..4, summed over the
    /// corpus) times the brevity penalty exp(1 − r/c) when the hypotheses are shorter. 0 when any
    /// order has no match (unsmoothed, as sacreBLEU's default for corpus scores).
    /// </summary>
    public static double Bleu(IReadOnlyList<string> predictions, IReadOnlyList<string> references, int maxOrder = 4)
    {
        Check(predictions, references);
        var matches = new long[maxOrder];
        var totals = new long[maxOrder];
        long hypLen = 0, refLen = 0;
        for (int i = 0; i < predictions.Count; i++)
        {
            var h = predictions[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var r = references[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            hypLen += h.Length;
            refLen += r.Length;
            for (int n = 1; n <= maxOrder; n++)
            {
                var hc = WordNgrams(h, n);
                var rc = WordNgrams(r, n);
                foreach (var (g, c) in hc) if (rc.TryGetValue(g, out int rcount)) matches[n - 1] += Math.Min(c, rcount);
                totals[n - 1] += Math.Max(0, h.Length - n + 1);
            }
        }
        if (hypLen == 0) return 0;
        double logSum = 0;
        for (int n = 0; n < maxOrder; n++)
        {
            if (matches[n] == 0 || totals[n] == 0) return 0;
            logSum += Math.Log((double)matches[n] / totals[n]);
        }
        double bp = hypLen < refLen ? Math.Exp(1 - (double)refLen / hypLen) : 1;
        return 100 * bp * Math.Exp(logSum / maxOrder);
    }

    // SQuAD normalization: lower case, drop punctuation and the articles a/an/the, split on whitespace.
    static List<string> Normalize(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (char c in s.ToLowerInvariant())
            if (!char.IsPunctuation(c) && !char.IsSymbol(c)) sb.Append(c);
        return sb.ToString().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
            .Where(w => w is not ("a" or "an" or "the")).ToList();
    }

    static string[] Words(string s) => s.ToLowerInvariant().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);

    static int Lcs(string[] a, string[] b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
                cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : Math.Max(prev[j], cur[j - 1]);
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }

    static Dictionary<string, int> CharNgrams(string s, int n)
    {
        var d = new Dictionary<string, int>(StringComparer.Ordinal);
        var e = StringInfo.GetTextElementEnumerator(s);
        var chars = new List<string>();
        while (e.MoveNext()) chars.Add((string)e.Current);
        for (int i = 0; i + n <= chars.Count; i++)
        {
            var g = string.Concat(chars.Skip(i).Take(n));
            d[g] = d.GetValueOrDefault(g) + 1;
        }
        return d;
    }

    static Dictionary<string, int> WordNgrams(string[] w, int n)
    {
        var d = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i + n <= w.Length; i++)
        {
            var g = string.Join('\u0001', w, i, n);
            d[g] = d.GetValueOrDefault(g) + 1;
        }
        return d;
    }

    static void Check(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
    {
        if (predictions.Count != references.Count)
            throw new ArgumentException($"{predictions.Count} predictions for {references.Count} references");
    }
}
