// `encore bench generate --superposed K`: the measurement Superposed Decoding's paper reports (Shen et al.
// 2024, arXiv 2405.18400, "at least 2.44× faster for k ≥ 3" than k nucleus-sampling runs, drafts as
// coherent): the wall time of K superposed drafts of each prompt against K separate sampled runs of it
// (nucleus, p = 0.9, the paper's baseline), and the perplexity of every draft scored by a normal,
// non-superposed pass of the same model.
using System.Diagnostics;
using Encore.Generation;
using Encore.Models;

namespace Encore.Bench;

/// <summary>
/// One model's superposed figures at batch 1: per run, the prompts decoded one after another; times are the
/// medians over the runs of the sum over the prompts; perplexities are the mean over every draft of every prompt.
/// </summary>
/// <param name="Drafts">K.</param>
/// <param name="SuperposedSeconds">Wall time of K superposed drafts per run (encoder or prefill included).</param>
/// <param name="SampledSeconds">Wall time of K separate nucleus-sampling runs per run.</param>
/// <param name="SuperposedPerplexity">Mean over the superposed drafts of exp(−mean log p), log p from a normal pass.</param>
/// <param name="SampledPerplexity">The same over the sampled sequences.</param>
/// <param name="SuperposedPasses">Decoder passes of the superposed drafts, over the prompts.</param>
/// <param name="SampledPasses">Decoder passes of the sampled runs, over the prompts (one per token).</param>
/// <param name="DistinctDrafts">Mean number of distinct drafts per prompt (K when no two are alike).</param>
public sealed record SuperposedFigure(string Preset, int Drafts, double SuperposedSeconds, double SampledSeconds,
    double SuperposedPerplexity, double SampledPerplexity, int SuperposedPasses, int SampledPasses, double DistinctDrafts)
{
    /// <summary>SampledSeconds ÷ SuperposedSeconds.</summary>
    public double Speedup => SuperposedSeconds > 0 ? SampledSeconds / SuperposedSeconds : 0;
}

public static partial class GenerateBenchmark
{
    /// <summary>Top-p of the sampled runs superposed drafts are compared with (the paper's nucleus baseline).</summary>
    public const float SampledTopP = 0.9f;

    /// <summary>
    /// Times K superposed drafts of each prompt against K nucleus-sampled runs of it (seeded, stream i for run i),
    /// after one untimed warm-up of each on the first prompt, and scores every sequence by a normal pass.
    /// </summary>
    internal static SuperposedFigure MeasureSuperposed(string name, Generator generator, int[][] prompts, GenerationOptions greedy, SuperposedOptions superposed, int runs)
    {
        superposed.Ngrams?.CheckFits(generator.Model.Config.VocabSize, generator.Tokenizer);
        int k = superposed.Drafts;
        var sup = greedy with { Superposed = superposed };
        var sampled = greedy with { DoSample = true, Temperature = 1, TopP = SampledTopP };
        GenerationResult[] Superposed() => prompts.Select(p => generator.GenerateIds([p], sup)[0]).ToArray();
        // K separate runs, one after another, as K requests for alternatives would be served without it.
        GeneratedSequence[][] Sampled() => prompts.Select(p => Enumerable.Range(0, k)
            .Select(i => generator.GenerateIds([p], sampled with { Seed = (ulong)i + 1 })[0].Sequences[0]).ToArray()).ToArray();
        generator.GenerateIds([prompts[0]], sup);
        generator.GenerateIds([prompts[0]], sampled with { Seed = 1 });
        var supSeconds = new double[runs];
        var samSeconds = new double[runs];
        GenerationResult[] supResults = [];
        GeneratedSequence[][] samResults = [];
        for (int r = 0; r < runs; r++)
        {
            var clock = Stopwatch.StartNew();
            supResults = Superposed();
            supSeconds[r] = clock.Elapsed.TotalSeconds;
            clock.Restart();
            samResults = Sampled();
            samSeconds[r] = clock.Elapsed.TotalSeconds;
        }
        var model = generator.Model;
        int start = greedy.DecoderStartTokenId ?? model.Config.DecoderStartTokenId;
        double supPpl = MeanPerplexity(model, prompts, supResults.Select(x => x.Sequences.Select(s => s.Tokens).ToArray()).ToArray(), start);
        double samPpl = MeanPerplexity(model, prompts, samResults.Select(x => x.Select(s => s.Tokens).ToArray()).ToArray(), start);
        return new SuperposedFigure(name, k, MachineProbe.Median(supSeconds), MachineProbe.Median(samSeconds), supPpl, samPpl,
            supResults.Sum(x => x.SuperposedPasses ?? 0), samResults.Sum(x => x.Sum(s => s.Tokens.Length)),
            supResults.Average(x => x.Sequences.Select(s => string.Join(',', s.Tokens)).Distinct().Count()));
    }

    static double MeanPerplexity(LanguageModel model, int[][] prompts, int[][][] sequences, int start)
    {
        var all = new List<double>();
        for (int i = 0; i < prompts.Length; i++)
            foreach (var tokens in sequences[i])
                if (tokens.Length > 0) all.Add(Perplexity(model, prompts[i], tokens, start));
        return all.Count == 0 ? double.NaN : all.Average();
    }

    /// <summary>exp(−mean log p(token)) of <paramref name="tokens"/> after <paramref name="prompt"/>, from one teacher-forced pass of the model.</summary>
    public static double Perplexity(LanguageModel model, int[] prompt, int[] tokens, int decoderStartTokenId)
    {
        int t = tokens.Length, v = model.Config.VocabSize;
        if (t == 0) throw new ArgumentException("no tokens to score");
        int[] inputs;
        int first;
        Autograd.Var logits;
        if (model is EncoderDecoderModel ed)
        {
            inputs = [decoderStartTokenId, .. tokens[..^1]];
            logits = ed.Forward(prompt, null, inputs, 1);                    // (1, T, V)
            first = 0;
        }
        else
        {
            inputs = [.. prompt, .. tokens[..^1]];
            logits = ((DecoderOnlyModel)model).Forward(inputs, 1);         // (1, P + T − 1, V)
            first = prompt.Length - 1;
        }
        using (logits)
        {
            var s = logits.Value.AsReadOnlySpan<float>();
            double sum = 0;
            for (int i = 0; i < t; i++)
            {
                var row = s.Slice((first + i) * v, v);
                sum += row[tokens[i]] - Sampling.LogSumExp(row);
            }
            return Math.Exp(-sum / t);
        }
    }
}
