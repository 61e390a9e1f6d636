using System.Diagnostics;
using System.Globalization;
using System.Text;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Objectives;
using V = Encore.Training.Lab.LabVocabulary;

namespace Encore.Training.Lab;

/// <summary>How the inverse-permutation task is laid out for a model.</summary>
public enum PermutationSetup
{
    /// <summary>Decoder-only, sⱼ read out at the position of tⱼ (same length, causal mask): <c>BOS π(0) t₀ … π(n−1) tₙ₋₁</c>.</summary>
    DecoderAtInput,
    /// <summary>Encoder–decoder: source <c>π(0) t₀ … π(n−1) tₙ₋₁ EOS</c>, target <c>s EOS</c>, generated.</summary>
    EncoderDecoder,
    /// <summary>Decoder-only with n scratch tokens appended, sⱼ read out at the j-th: <c>BOS π(0) t₀ … π(n−1) tₙ₋₁ _ … _</c>.</summary>
    DecoderScratch,
    /// <summary>Decoder-only generating s after the input: <c>BOS π(0) t₀ … π(n−1) tₙ₋₁ SEP → s EOS</c>.</summary>
    DecoderGenerating,
}

/// <summary>One example of the task: π, the permuted string t (tᵢ = s_π(i)) and the original s, as ids.</summary>
/// <param name="Permutation">π(0) … π(n−1), as digit ids.</param>
/// <param name="Permuted">t, as symbol ids.</param>
/// <param name="Original">s, as symbol ids.</param>
public sealed record PermutationExample(int[] Permutation, int[] Permuted, int[] Original)
{
    /// <summary>A random example of length <paramref name="n"/> (1–10): s uniform over the 16 symbols (repeats allowed), π uniform.</summary>
    public static PermutationExample Make(int n, DataRng rng)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(n, 10);
        var s = new int[n];
        for (int i = 0; i < n; i++) s[i] = V.Symbol0 + rng.NextInt(V.Symbols);
        var pi = rng.Permutation(n);
        var t = new int[n];
        for (int i = 0; i < n; i++) t[i] = s[pi[i]];
        return new PermutationExample([.. pi.Select(p => V.Digit0 + p)], t, s);
    }

    /// <summary>The example as a training row of <paramref name="setup"/>; loss only on s (and EOS where generated).</summary>
    public TrainingRow Row(PermutationSetup setup)
    {
        int n = Original.Length;
        int[] prompt = Pairs();
        switch (setup)
        {
            case PermutationSetup.EncoderDecoder: return Seq2SeqObjective.Build(prompt, Original, LabTraining.Seq2Seq);
            case PermutationSetup.DecoderGenerating: return CausalLmObjective.Build([.. prompt, V.Sep], Original, LabTraining.CausalLm);
            case PermutationSetup.DecoderAtInput:
            {
                // sⱼ is read where tⱼ stands, at 2 + 2j.
                int[] inputs = [V.Bos, .. prompt];
                var targets = new int[inputs.Length];
                Array.Fill(targets, Labels.Ignore);
                for (int j = 0; j < n; j++) targets[2 + 2 * j] = Original[j];
                return new TrainingRow([], inputs, targets);
            }
            case PermutationSetup.DecoderScratch:
            {
                // sⱼ is read at the j-th scratch token, after the whole input.
                int[] inputs = [V.Bos, .. prompt, .. Enumerable.Repeat(V.Scratch, n)];
                var targets = new int[inputs.Length];
                Array.Fill(targets, Labels.Ignore);
                Original.CopyTo(targets, inputs.Length - n);
                return new TrainingRow([], inputs, targets);
            }
            default: throw new ArgumentOutOfRangeException(nameof(setup), setup, null);
        }
    }

    /// <summary>
    /// As an input/output example for generation: input <see cref="Pairs"/>, output s. <see cref="LabTraining.Prompt"/> makes it
    /// the encoder's source <c>pairs EOS</c> or the decoder-only prompt <c>BOS pairs SEP</c>, as <see cref="Row"/> lays them out.
    /// </summary>
    public LabExample AsGeneration() => new(Pairs(), Original);

    /// <summary>
    /// π and t interleaved, π(0) t₀ π(1) t₁ … π(n−1) tₙ₋₁: each symbol of t beside the index of s it came from. Written
    /// as two blocks (π, then t) a model must first bring π(i) to tᵢ across n + 1 positions, and the lab's models
    /// (learned positions) did not learn that within 3000 steps; beside each other, π(i) is one position back.
    /// </summary>
    public int[] Pairs()
    {
        var p = new int[2 * Original.Length];
        for (int i = 0; i < Original.Length; i++)
        {
            p[2 * i] = Permutation[i];
            p[2 * i + 1] = Permuted[i];
        }
        return p;
    }
}

/// <summary>Settings of <see cref="InversePermutationStudy"/>.</summary>
public sealed record InversePermutationOptions
{
    /// <summary>n, the length of π and of the strings (1–10). Default 8.</summary>
    public int Length { get; init; } = 8;
    /// <summary>Setups compared. Default all four.</summary>
    public IReadOnlyList<PermutationSetup> Setups { get; init; } =
        [PermutationSetup.DecoderAtInput, PermutationSetup.EncoderDecoder, PermutationSetup.DecoderScratch, PermutationSetup.DecoderGenerating];
    /// <summary>
    /// Position encoding of every model: absolute, so that an output position j can find the index token j. Default
    /// sinusoidal: with learned tables the encoder–decoder stayed at 0% exact match (n = 6, up to 4000 steps, also
    /// wider and deeper) while sinusoids, the same fixed basis in encoder and decoder, reach 100% in 1500 steps.
    /// </summary>
    public PositionKind Position { get; init; } = PositionKind.Sinusoidal;
    /// <summary>Test examples (the same for every setup). Default 500.</summary>
    public int EvalExamples { get; init; } = 500;
    /// <summary>Model size. Default <see cref="LabModelSize"/>'s.</summary>
    public LabModelSize Model { get; init; } = new();
    /// <summary>Training of each model. Default 3000 steps of 32 examples.</summary>
    public LabTrainingOptions Training { get; init; } = new() { Steps = 3000 };

    /// <summary>The full study: n = 8, four setups, 3000 steps each.</summary>
    public static InversePermutationOptions Full(ulong seed = 0) => new() { Training = new LabTrainingOptions { Steps = 3000, Seed = seed } };

    /// <summary>The quick study: n = 6, the paper's three setups, 1500 steps each.</summary>
    public static InversePermutationOptions Quick(ulong seed = 0) => new()
    {
        Length = 6,
        Setups = [PermutationSetup.DecoderAtInput, PermutationSetup.EncoderDecoder, PermutationSetup.DecoderScratch],
        EvalExamples = 300,
        Training = new LabTrainingOptions { Steps = 1500, Seed = seed },
    };

    /// <summary>Throws naming the first setting out of range.</summary>
    public InversePermutationOptions Validate()
    {
        if (Length is < 2 or > 10) throw new ArgumentException($"--length must be in [2, 10] (π is written with one digit per index), got {Length}");
        if (Setups.Count == 0) throw new ArgumentException("give at least one setup");
        if (EvalExamples < 1) throw new ArgumentException($"eval examples must be positive, got {EvalExamples}");
        Model.Validate();
        Training.Validate();
        return this;
    }
}

/// <summary>One setup's model and score.</summary>
/// <param name="Setup">Short name ("decoder-only, read at input").</param>
/// <param name="Format">The row layout, with → before what the model outputs.</param>
/// <param name="Family">"decoder-only" or "encoder–decoder".</param>
/// <param name="Parameters">Parameter count.</param>
/// <param name="TrainSeconds">Training wall time.</param>
/// <param name="FinalLoss">Mean training loss over the last tenth of the steps.</param>
/// <param name="ExactMatch">Fraction of test examples whose whole s is right (0–1).</param>
/// <param name="TokenAccuracy">Fraction of s's symbols right (0–1; generated setups count EOS too).</param>
/// <param name="Expected">What the paper's argument predicts for the setup.</param>
public sealed record PermutationSetupScore(string Setup, string Format, string Family, long Parameters, double TrainSeconds, double FinalLoss,
    double ExactMatch, double TokenAccuracy, string Expected);

/// <summary>What <see cref="InversePermutationStudy.Run"/> measured.</summary>
public sealed record InversePermutationResult(string Study, string Claim, int Length, string Position, int Steps, int BatchSize, ulong Seed, int EvalExamples,
    IReadOnlyList<PermutationSetupScore> Setups, IReadOnlyList<string> Observed, double Seconds)
{
    /// <summary>The table in GitHub markdown.</summary>
    public string ToMarkdown()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(ci, $"n = {Length}, {Position} positions, {Steps} steps of {BatchSize} examples per model, {EvalExamples} test examples:\n\n");
        sb.Append("| setup | format | params | train s | final loss | exact match | token accuracy | expected |\n|---|---|---:|---:|---:|---:|---:|---|\n");
        foreach (var s in Setups)
            sb.Append(ci, $"| {s.Setup} | `{s.Format}` | {s.Parameters / 1000.0:0}k | {s.TrainSeconds:0} | {s.FinalLoss:0.000} | {LengthStudyResult.Percent(s.ExactMatch)} | {LengthStudyResult.Percent(s.TokenAccuracy)} | {s.Expected} |\n");
        LengthStudyResult.AppendClaim(sb, "2509.24125", Claim, Observed);
        return sb.ToString();
    }
}

/// <summary>
/// Inverse permutation learning ("The Impossibility of Inverse Permutation Learning in Transformer Models",
/// arXiv 2509.24125): given π and t = π applied to s (tᵢ = s_π(i)), output s. Read out position-wise under a
/// causal mask, sⱼ = t_π⁻¹(j) may lie after position j, so a decoder-only model cannot express it; an
/// encoder–decoder's bidirectional encoder, or scratch tokens after the input, make it feasible.
/// </summary>
public static class InversePermutationStudy
{
    /// <summary>The paper's finding.</summary>
    public const string Claim = "a decoder-only transformer of any depth cannot express inverse permutation read out at the input positions; " +
        "an encoder–decoder, or a decoder-only model given scratch tokens after the input, can (the brief's target: ≥ 95% exact match for both, the plain decoder-only far below).";

    /// <summary>Short name, family and what is expected of each setup.</summary>
    public static (string Name, ModelFamily Family, string Expected) Describe(PermutationSetup setup) => setup switch
    {
        PermutationSetup.DecoderAtInput => ("decoder-only, read at input", ModelFamily.DecoderOnly, "far below (sⱼ may come after position j)"),
        PermutationSetup.EncoderDecoder => ("encoder–decoder", ModelFamily.EncoderDecoder, "≥ 95%"),
        PermutationSetup.DecoderScratch => ("decoder-only + scratch", ModelFamily.DecoderOnly, "≥ 95%"),
        _ => ("decoder-only, generating after input", ModelFamily.DecoderOnly, "feasible (outputs see the whole input)"),
    };

    /// <summary>The setup named <paramref name="flag"/> on the command line: at-input, encdec, scratch, generating.</summary>
    public static PermutationSetup ParseSetup(string flag, string option = "--setups") => (flag ?? "").Trim().ToLowerInvariant() switch
    {
        "at-input" => PermutationSetup.DecoderAtInput,
        "encdec" => PermutationSetup.EncoderDecoder,
        "scratch" => PermutationSetup.DecoderScratch,
        "generating" => PermutationSetup.DecoderGenerating,
        _ => throw new ArgumentException($"{option}: unknown setup '{flag}'; one of at-input, encdec, scratch, generating"),
    };

    /// <summary>The layout of <paramref name="setup"/> for length <paramref name="n"/>, as printed in tables.</summary>
    public static string Format(PermutationSetup setup, int n) => setup switch
    {
        PermutationSetup.DecoderAtInput => $"[BOS] π₀ t₀ … π{Sub(n - 1)} t{Sub(n - 1)} → sⱼ read at tⱼ",
        PermutationSetup.EncoderDecoder => $"encoder: π₀ t₀ … π{Sub(n - 1)} t{Sub(n - 1)} [EOS]; decoder: [PAD] → s₀ … s{Sub(n - 1)} [EOS]",
        PermutationSetup.DecoderScratch => $"[BOS] π₀ t₀ … π{Sub(n - 1)} t{Sub(n - 1)} _×{n} → sⱼ read at the j-th _",
        _ => $"[BOS] π₀ t₀ … π{Sub(n - 1)} t{Sub(n - 1)} [SEP] → s₀ … s{Sub(n - 1)} [EOS]",
    };

    static string Sub(int i) => string.Concat(i.ToString(CultureInfo.InvariantCulture).Select(c => "₀₁₂₃₄₅₆₇₈₉"[c - '0']));

    /// <summary>The test examples, the same for every setup.</summary>
    public static IReadOnlyList<PermutationExample> TestSet(int n, int count, ulong seed)
    {
        var rng = DataRng.For(seed ^ 0x7E57_5E7UL, 0x9E4A, (ulong)n);
        return Enumerable.Range(0, count).Select(_ => PermutationExample.Make(n, rng)).ToList();
    }

    /// <summary>Runs the study; <paramref name="progress"/> hears each setup as it is trained and scored.</summary>
    public static InversePermutationResult Run(InversePermutationOptions options, Action<string>? progress = null, CancellationToken cancel = default)
    {
        var o = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
        var total = Stopwatch.StartNew();
        int n = o.Length;
        ulong seed = o.Training.Seed;
        var test = TestSet(n, o.EvalExamples, seed);
        var scores = new List<PermutationSetupScore>();
        int done = 0;
        foreach (var setup in o.Setups)
        {
            cancel.ThrowIfCancellationRequested();
            done++;
            var (name, family, expected) = Describe(setup);
            using var model = LanguageModel.Create(LabTraining.Config(family, o.Position, o.Model, 64), seed);
            progress?.Invoke($"[{done}/{o.Setups.Count}] {name}: training {o.Training.Steps} steps");
            var report = LabTraining.Train(model, rng => PermutationExample.Make(n, rng).Row(setup), o.Training, cancel);
            var score = setup is PermutationSetup.EncoderDecoder or PermutationSetup.DecoderGenerating
                ? LabTraining.Generate(model, test.Select(e => e.AsGeneration()).ToList())
                : LabTraining.Positionwise(model, test.Select(e => e.Row(setup)).ToList());
            scores.Add(new PermutationSetupScore(name, Format(setup, n), LabNames.Name(family), model.ParameterCount, report.Seconds, report.FinalLoss, score.ExactMatch, score.TokenAccuracy, expected));
            progress?.Invoke($"[{done}/{o.Setups.Count}] {name}: {report.Seconds:0} s, loss {report.FinalLoss:0.000}, exact match {LengthStudyResult.Percent(score.ExactMatch)}, tokens {LengthStudyResult.Percent(score.TokenAccuracy)}");
        }
        return new InversePermutationResult("inverse-permutation", Claim, n, LabNames.Name(o.Position), o.Training.Steps, o.Training.BatchSize, seed, o.EvalExamples,
            scores, Observe(scores, n), total.Elapsed.TotalSeconds);
    }

    static List<string> Observe(IReadOnlyList<PermutationSetupScore> scores, int n)
    {
        var lines = new List<string>();
        var ci = CultureInfo.InvariantCulture;
        var plain = scores.FirstOrDefault(s => s.Setup == Describe(PermutationSetup.DecoderAtInput).Name);
        foreach (var s in scores.Where(s => s.Expected == "≥ 95%"))
            lines.Add($"{s.Setup}: {LengthStudyResult.Percent(s.ExactMatch)} exact match ({(s.ExactMatch >= 0.95 ? "meets" : "misses")} the ≥ 95% target).");
        if (plain != null)
        {
            // Read at position j, sⱼ is visible only when π⁻¹(j) ≤ j; a row is fully visible only for the identity.
            double visible = ExpectedVisibleFraction(n);
            lines.Add(string.Create(ci, $"decoder-only read at input: {LengthStudyResult.Percent(plain.ExactMatch)} exact match, {LengthStudyResult.Percent(plain.TokenAccuracy)} of symbols; ") +
                string.Create(ci, $"under the causal mask {visible * 100:0}% of the symbols are visible where they are read, and a whole row only when π is the identity (1/{Factorial(n)}), so the rest can only be guessed."));
        }
        return lines;
    }

    /// <summary>The expected fraction of output positions j whose source t_π⁻¹(j) lies at or before j, for a uniform π of n: (n + 1) / (2n).</summary>
    public static double ExpectedVisibleFraction(int n) => (n + 1) / (2.0 * n);

    static long Factorial(int n) => n <= 1 ? 1 : n * Factorial(n - 1);
}
