using Encore.Models;

namespace Encore.Generation.Tests;

/// <summary>
/// Speculative sampling keeps the model's distribution: on a five-token vocabulary, the first three
/// tokens of many seeded draws are tested (chi-square) against their exact joint distribution, computed
/// by recomputing the model's logits for every prefix and applying the same processors and warpers.
/// Plain sampling is held to the same test, and the draft model's own distribution must fail it, so the
/// test can tell a sampler that keeps the drafts' distribution from one that keeps the model's.
/// </summary>
public class SpeculativeSamplingTests
{
    internal const int Vocab = 5, Tokens = 3, Draws = 6000;
    internal static readonly int[] Prompt = [2, 3, 4, 2, 3, 0, 4, 2];

    internal static LanguageModel Create(string family, ulong seed)
    {
        if (family != "encdec") return TinyModels.Decoder(seed, vocab: Vocab);
        // The untied head of a fresh encoder–decoder gives five nearly equal probabilities, against which any
        // sampler looks right; a larger head makes them as uneven as the decoder-only model's.
        var m = TinyModels.EncDec(seed, vocab: Vocab);
        foreach (ref float x in m.Parameters[LanguageModel.LmHead].Value.AsSpan<float>()) x *= 8;
        return m;
    }

    /// <summary>P(x1, x2, x3) of plain sampling with <paramref name="o"/>, by recomputation: index x1·V² + x2·V + x3.</summary>
    internal static double[] Exact(LanguageModel m, GenerationOptions o)
    {
        var processors = LogitsProcessors.FromOptions(o, []);
        var warpers = LogitsProcessors.WarpersFromOptions(o);
        var joint = new double[(int)Math.Pow(Vocab, Tokens)];
        void Walk(int[] generated, double mass)
        {
            if (generated.Length == Tokens)
            {
                joint[generated.Aggregate(0, (a, t) => a * Vocab + t)] += mass;
                return;
            }
            int[] history = m is EncoderDecoderModel ? [m.Config.DecoderStartTokenId, .. generated] : [.. Prompt, .. generated];
            using var y = m is EncoderDecoderModel ed ? ed.Forward(Prompt, null, history, 1) : ((DecoderOnlyModel)m).Forward(history, 1);
            var scores = y.Value.AsReadOnlySpan<float>()[^Vocab..].ToArray();
            foreach (var p in processors) p.Process(history, generated.Length, scores);
            foreach (var w in warpers) w.Process([], 0, scores);
            var probs = Sampling.Softmax(scores);
            for (int t = 0; t < Vocab; t++)
                if (probs[t] > 0) Walk([.. generated, t], mass * probs[t]);
        }
        Walk([], 1);
        return joint;
    }

    static int[] Counts(Generator gen, GenerationOptions o, out SpeculativeStats stats)
    {
        var counts = new int[(int)Math.Pow(Vocab, Tokens)];
        stats = new SpeculativeStats();
        for (int s = 0; s < Draws; s++)
        {
            var r = gen.GenerateIds([Prompt], o with { Seed = (ulong)s })[0];
            Assert.Equal(Tokens, r.Tokens.Length);
            counts[r.Tokens.Aggregate(0, (a, t) => a * Vocab + t)]++;
            if (r.Speculative is { } st) stats += st;
        }
        return counts;
    }

    /// <summary>
    /// Pearson's chi-square of <paramref name="counts"/> against <paramref name="p"/>, cells expecting fewer
    /// than 5 pooled into one, and its critical value at significance 1e-4 (Wilson–Hilferty).
    /// </summary>
    internal static (double ChiSquare, double Critical) ChiSquare(int[] counts, double[] p)
    {
        int n = counts.Sum();
        double chi = 0, pooledE = 0, pooledO = 0;
        int cells = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double e = p[i] * n;
            if (e < 5)
            {
                pooledE += e;
                pooledO += counts[i];
                continue;
            }
            chi += (counts[i] - e) * (counts[i] - e) / e;
            cells++;
        }
        if (pooledE > 0)
        {
            chi += (pooledO - pooledE) * (pooledO - pooledE) / pooledE;
            cells++;
        }
        double df = cells - 1, z = 3.719;   // upper 1e-4 quantile of the standard normal
        double critical = df * Math.Pow(1 - 2 / (9 * df) + z * Math.Sqrt(2 / (9 * df)), 3);
        return (chi, critical);
    }

    public static TheoryData<string, string, string> Cases
    {
        get
        {
            var data = new TheoryData<string, string, string>();
            foreach (var family in new[] { "encdec", "decoder" })
                foreach (var method in new[] { "lookup", "draft" })
                    foreach (var processing in new[] { "plain", "warped" }) data.Add(family, method, processing);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void FirstTokensFollowTheModelsDistribution(string family, string method, string processing)
    {
        using var m = Create(family, 7);
        using var draft = Create(family, 31);
        var gen = new Generator(m);
        var o = new GenerationOptions { MaxNewTokens = Tokens, EosTokenIds = [], DoSample = true, DraftTokens = 2 };
        if (processing == "warped")
            o = o with { Temperature = 0.8f, TopK = 4, TopP = 0.97f, RepetitionPenalty = 1.4f };
        var exact = Exact(m, o);
        Assert.Equal(1, exact.Sum(), 9);

        var plain = Counts(gen, o, out _);
        var (chiPlain, critical) = ChiSquare(plain, exact);
        Assert.True(chiPlain < critical, $"plain sampling: chi-square {chiPlain:0.0} ≥ {critical:0.0}");

        var speculative = Counts(gen, method == "lookup" ? o with { PromptLookup = true } : o with { DraftModel = draft }, out var stats);
        var (chi, critical2) = ChiSquare(speculative, exact);
        Assert.True(chi < critical2, $"{method}: chi-square {chi:0.0} ≥ {critical2:0.0} (acceptance {stats.AcceptanceRate:0.00})");
        // Both the accepting and the rejecting path ran many times.
        Assert.True(stats.Accepted > Draws / 20 && stats.Drafted - stats.Accepted > Draws / 20, $"{stats.Accepted} of {stats.Drafted} drafts accepted");

        if (method == "draft")
        {
            // The draft's own distribution is far from the model's: a sampler that kept the drafts would fail above.
            var q = Exact(draft, o);
            double tv = exact.Zip(q).Sum(x => Math.Abs(x.First - x.Second)) / 2;
            Assert.True(tv > 0.15, $"the draft's distribution is within {tv:0.00} of the model's: the test would not tell them apart");
            var (chiDraft, criticalDraft) = ChiSquare(speculative, q);
            Assert.True(chiDraft > 10 * criticalDraft, $"the samples fit the draft's distribution too (chi-square {chiDraft:0.0})");
        }
    }
}
