using System.Diagnostics;
using System.Globalization;
using System.Text;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Objectives;

namespace Encore.Training.Lab;

/// <summary>Settings of <see cref="CodebookStudy"/>.</summary>
public sealed record CodebookStudyOptions
{
    /// <summary>Codes per codebook (F). Default 512.</summary>
    public int Codes { get; init; } = 512;
    /// <summary>
    /// k, codes summed per position: one codebook model per value. Default 4 (the setting of the brief) and 1 (one code per
    /// position, so that a state cannot be spread over a combination of codes).
    /// </summary>
    public IReadOnlyList<int> TopKs { get; init; } = [4, 1];
    /// <summary>The commitment β of the codebooks (<see cref="CodebookConfig.Commitment"/>); 0 is straight-through only. Default 0.25.</summary>
    public float Commitment { get; init; } = 0.25f;
    /// <summary>
    /// Train the codebook model from scratch instead of from the trained model without codebooks (its weights copied, its codebooks
    /// started from its own activations by <see cref="CodebookInitialization"/>, then fine-tuned for as many steps). Default false.
    /// </summary>
    public bool FromScratch { get; init; }
    /// <summary>States per sequence (each two tokens). Default 24.</summary>
    public int Length { get; init; } = 24;
    /// <summary>Held-out sequences scored and probed. Default 256.</summary>
    public int EvalSequences { get; init; } = 256;
    /// <summary>A code counts for a state when at least this fraction of its firings at digit positions are that state. Default 0.9.</summary>
    public double Precision { get; init; } = 0.9;
    /// <summary>…and it fires at least this many times there. Default 10.</summary>
    public int MinFirings { get; init; } = 10;
    /// <summary>Model size. Default two blocks of <see cref="LabModelSize"/>'s width.</summary>
    public LabModelSize Model { get; init; } = new() { DecoderOnlyLayers = 2 };
    /// <summary>Training of each model. Default 2000 steps of 32 sequences.</summary>
    public LabTrainingOptions Training { get; init; } = new() { Steps = 2000 };

    /// <summary>The full study: F = 512, k = 4, 2000 steps per model.</summary>
    public static CodebookStudyOptions Full(ulong seed = 0) => new() { Training = new LabTrainingOptions { Steps = 2000, Seed = seed } };

    /// <summary>The quick study: F = 128, k = 4, 600 steps per model, 128 held-out sequences.</summary>
    public static CodebookStudyOptions Quick(ulong seed = 0) => new()
    {
        Codes = 128,
        EvalSequences = 128,
        Training = new LabTrainingOptions { Steps = 600, Seed = seed },
    };

    /// <summary>Throws naming the first setting out of range.</summary>
    public CodebookStudyOptions Validate()
    {
        if (Codes is < 2 or > 4096) throw new ArgumentException($"--codes must be in [2, 4096], got {Codes}");
        if (TopKs.Count == 0) throw new ArgumentException("--top-k: give at least one k");
        foreach (int k in TopKs)
            if (k < 1 || k >= Codes) throw new ArgumentException($"--top-k must be in [1, {Codes - 1}] (below --codes), got {k}");
        if (!(Commitment >= 0 && Commitment <= 10)) throw new ArgumentException($"--commitment must be in [0, 10], got {Commitment}");
        if (Length is < 2 or > 200) throw new ArgumentException($"--length must be in [2, 200], got {Length}");
        if (EvalSequences < 1) throw new ArgumentException($"held-out sequences must be positive, got {EvalSequences}");
        if (!(Precision > 0 && Precision <= 1)) throw new ArgumentException($"precision threshold must be in (0, 1], got {Precision}");
        if (MinFirings < 1) throw new ArgumentException($"minimum firings must be positive, got {MinFirings}");
        Model.Validate();
        Training.Validate();
        return this;
    }
}

/// <summary>What one model of the codebook study gave.</summary>
/// <param name="Name">Printed name.</param>
/// <param name="Parameters">Parameter count.</param>
/// <param name="TrainSeconds">Training wall time.</param>
/// <param name="FinalLoss">Mean training loss over the last tenth of the steps.</param>
/// <param name="Accuracy">Next-token accuracy (argmax) on the held-out walks, every token after the first state.</param>
/// <param name="Legal">Fraction of those argmax predictions the machine allows from the true state.</param>
/// <param name="Curve">(step, training loss) every 10 steps.</param>
/// <param name="TopK">k of its codebooks; 0 without.</param>
/// <param name="StatesIdentified">States with a code of precision ≥ the threshold (codebook models).</param>
/// <param name="StateCodes">Per state, its most precise code (empty without codebooks).</param>
/// <param name="Usage">Per codebook, the codes that fired (empty without codebooks).</param>
public sealed record CodebookModelResult(string Name, long Parameters, double TrainSeconds, double FinalLoss, double Accuracy, double Legal, IReadOnlyList<double[]> Curve,
    int TopK, int StatesIdentified, IReadOnlyList<CodebookStateCode> StateCodes, IReadOnlyList<CodebookUsage> Usage);

/// <summary>The code that best picks out one state at its digit positions.</summary>
/// <param name="State">The state.</param>
/// <param name="Name">Its tokens ("b3").</param>
/// <param name="Positions">Digit positions of the held-out walks in that state.</param>
/// <param name="Codebook">The codebook's scope, or null when no code fires often enough.</param>
/// <param name="Code">The code's index in it (−1 without one).</param>
/// <param name="Firings">How often the code fires at digit positions.</param>
/// <param name="Precision">Fraction of those firings at this state.</param>
/// <param name="Recall">Fraction of this state's positions where it fires.</param>
public sealed record CodebookStateCode(int State, string Name, int Positions, string? Codebook, int Code, int Firings, double Precision, double Recall);

/// <summary>Codes of one codebook that fired on the held-out walks.</summary>
public sealed record CodebookUsage(string Codebook, int Live, int Size);

/// <summary>What <see cref="CodebookStudy.Run"/> measured.</summary>
public sealed record CodebookStudyResult(string Study, string Claim, int States, int Length, int Steps, int BatchSize, ulong Seed, int Codes,
    float Commitment, bool FromScratch, double Oracle, IReadOnlyList<CodebookModelResult> Models, double PrecisionThreshold, int MinFirings,
    IReadOnlyList<string> Observed, double Seconds)
{
    /// <summary>The tables in GitHub markdown.</summary>
    public string ToMarkdown()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        var coded = Models.Where(m => m.TopK > 0).ToList();
        sb.Append(ci, $"Decoder-only, {States}-state machine, walks of {Length} states ({2 * Length} tokens), {Steps} steps of {BatchSize} walks per model; ");
        sb.Append(ci, $"codebooks of F = {Codes} after every attention and feed-forward output (commitment β = {Commitment:G3}), ");
        sb.Append(FromScratch ? "trained from scratch. " : "added to the trained model without codebooks (codes started from its activations) and fine-tuned as many steps. ");
        sb.Append(ci, $"Best possible next-token accuracy (knowing the machine and the state): {Oracle * 100:0.0}%. ");
        sb.Append(ci, $"A state is identified when some code fires at ≥ {MinFirings} digit positions and ≥ {PrecisionThreshold:0.##} of them are that state's.\n\n");
        sb.Append("| model | params | train s | final loss | next-token acc. | legal next token | states identified | live codes per codebook |\n|---|---:|---:|---:|---:|---:|---:|---|\n");
        foreach (var m in Models)
            sb.Append(ci, $"| {m.Name} | {m.Parameters / 1000.0:0}k | {m.TrainSeconds:0} | {m.FinalLoss:0.000} | {m.Accuracy * 100:0.0}% | {m.Legal * 100:0.0}% | ")
                .Append(m.TopK == 0 ? "– | – |\n" : string.Create(ci, $"{m.StatesIdentified}/{States} | {string.Join(", ", m.Usage.Select(u => string.Create(ci, $"{u.Live}/{u.Size}")))} |\n"));
        if (coded.Count > 0)
        {
            sb.Append("\nPer state, its most precise code (precision / recall, the codebook's layer and sublayer):\n\n| state | positions |");
            foreach (var m in coded) sb.Append(ci, $" k = {m.TopK} |");
            sb.Append("\n|---|---:|");
            foreach (var _ in coded) sb.Append("---|");
            sb.Append('\n');
            for (int i = 0; i < States; i++)
            {
                sb.Append(ci, $"| {coded[0].StateCodes[i].Name} | {coded[0].StateCodes[i].Positions} |");
                foreach (var m in coded)
                {
                    var c = m.StateCodes[i];
                    sb.Append(c.Codebook is null ? " – |" : string.Create(ci, $" {c.Precision * 100:0}% / {c.Recall * 100:0}% ({Short(c.Codebook)} #{c.Code}) |"));
                }
                sb.Append('\n');
            }
        }
        LengthStudyResult.AppendClaim(sb, "2310.17230", Claim, Observed);
        return sb.ToString();
    }

    /// <summary>"L1 mlp" for decoder.layers.1.mlp.codebook.</summary>
    public static string Short(string scope)
    {
        var parts = scope.Split('.');
        return parts.Length >= 4 ? $"L{parts[2]} {parts[3].Replace("self_attn", "attn", StringComparison.Ordinal)}" : scope;
    }
}

/// <summary>
/// Codebook features (Tamkin, Taufeeque and Goodman, arXiv 2310.17230) on a finite-state machine (<see cref="FsmTask"/>): a small
/// decoder-only model with a codebook after every attention and feed-forward output (<see cref="ModelConfig.Codebook"/>) and the
/// same model without, trained alike on walks of the machine; their next-token accuracy, and for each state the code whose
/// firings at the state's digit positions (where the state is fully written) are most often that state. Production code
/// throughout: the model family with its codebooks (<see cref="Autograd.Ops.Codebook"/>), the Trainer, the codes read
/// through <see cref="LanguageModel.Codebooks"/>.
/// </summary>
public static class CodebookStudy
{
    /// <summary>The paper's finding, and the brief's pass criterion.</summary>
    public const string Claim = "replacing a transformer's activations by the sum of a few (k) of many (F) learned codes costs only modest " +
        "performance, and on a finite-state-machine data set the codes line up with the machine's states. The brief's pass criterion: " +
        "next-token accuracy within 2 points of the model without codebooks, and for most states some code fires with ≥ 0.9 precision for that state.";

    /// <summary>The rows of one walk: the first state as the prompt, the rest (and EOS) as the continuation that carries loss.</summary>
    public static TrainingRow Row(FsmTask fsm, int length, DataRng rng)
    {
        var tokens = FsmTask.Tokens(fsm.Walk(length, rng));
        return CausalLmObjective.Build(tokens.AsSpan(0, 2), tokens.AsSpan(2), LabTraining.CausalLm);
    }

    /// <summary>The configuration of the study's model: <see cref="LabTraining.Config"/> decoder-only with RoPE, with or without codebooks.</summary>
    public static ModelConfig Config(CodebookStudyOptions o, int topK) =>
        (LabTraining.Config(ModelFamily.DecoderOnly, PositionKind.Rope, o.Model, 4 * o.Length + 8) with
        {
            Codebook = topK > 0 ? new CodebookConfig { Size = o.Codes, TopK = topK, Commitment = o.Commitment } : null,
        }).Validate();

    /// <summary>Runs the study; <paramref name="progress"/> hears each model as it is trained and measured.</summary>
    public static CodebookStudyResult Run(CodebookStudyOptions options, Action<string>? progress = null, CancellationToken cancel = default)
    {
        var o = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
        var total = Stopwatch.StartNew();
        ulong seed = o.Training.Seed;
        var fsm = new FsmTask(seed);
        var testRng = DataRng.For(seed ^ 0x7E57UL, 0xC0DE);
        var test = Enumerable.Range(0, o.EvalSequences).Select(_ => fsm.Walk(o.Length, testRng)).ToList();
        var models = new List<CodebookModelResult>();
        using var plain = LanguageModel.Create(Config(o, 0), seed);
        models.Add(TrainAndScore(plain, "no codebooks", o, fsm, test, progress, cancel));
        foreach (int k in o.TopKs)
        {
            using var coded = LanguageModel.Create(Config(o, k), seed);
            string name = $"codebooks F = {o.Codes}, k = {k}";
            if (!o.FromScratch)
            {
                // As the paper does with its language models: the trained model gains codebooks and is fine-tuned with them.
                foreach (var p in plain.Parameters.All) p.Value.AsReadOnlySpan<float>().CopyTo(coded.Parameters[p.Name].Value.AsSpan<float>());
                var sampleRng = DataRng.For(seed ^ 0x5A3B1EUL, 0xC0DF);
                var sample = Enumerable.Range(0, 32).Select(_ => fsm.Walk(o.Length, sampleRng)).ToList();
                CodebookInitialization.FromInputs(coded, () => Evaluate(coded, fsm, sample, probe: false), seed);
                name += ", fine-tuned";
            }
            else name += ", from scratch";
            models.Add(TrainAndScore(coded, name, o, fsm, test, progress, cancel));
        }
        double oracle = fsm.OracleAccuracy(o.Length);
        return new CodebookStudyResult("codebook", Claim, FsmTask.States, o.Length, o.Training.Steps, o.Training.BatchSize, seed, o.Codes, o.Commitment,
            o.FromScratch, oracle, models, o.Precision, o.MinFirings, Observe(models, oracle), total.Elapsed.TotalSeconds);
    }

    // Trains one model and scores it on the held-out walks (reading its codes when it has codebooks).
    static CodebookModelResult TrainAndScore(LanguageModel model, string name, CodebookStudyOptions o, FsmTask fsm, List<int[]> test,
        Action<string>? progress, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        progress?.Invoke($"{name}: training {o.Training.Steps} steps");
        var report = LabTraining.Train(model, rng => Row(fsm, o.Length, rng), o.Training, cancel);
        int k = model.Config.Codebook?.TopK ?? 0;
        var evaluation = Evaluate(model, fsm, test, k > 0);
        var (states, usage) = k > 0 ? StateCodes(evaluation, test, o) : ([], []);
        int identified = states.Count(s => s.Codebook != null && s.Precision >= o.Precision);
        progress?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{name}: {report.Seconds:0} s, final loss {report.FinalLoss:0.000}, next-token accuracy {evaluation.Accuracy * 100:0.0}%") +
            (k > 0 ? $", {identified} states identified" : ""));
        return new CodebookModelResult(name, model.ParameterCount, report.Seconds, report.FinalLoss, evaluation.Accuracy, evaluation.Legal,
            [.. report.Curve.Where(c => c.Step % 10 == 0 || c.Step == report.Curve.Count).Select(c => new[] { c.Step, c.Loss })], k, identified, states, usage);
    }

    /// <summary>Accuracy on held-out walks, and (with codebooks) the codes each codebook chose at every position.</summary>
    internal sealed record Evaluation(double Accuracy, double Legal, List<CodebookRecord> Codes, int Positions);

    /// <summary>
    /// Scores <paramref name="model"/> on <paramref name="walks"/> with one forward pass per batch of 32: the argmax after each token
    /// against the next (every token after the first state), and whether the machine allows it from the true state.
    /// </summary>
    internal static Evaluation Evaluate(LanguageModel model, FsmTask fsm, IReadOnlyList<int[]> walks, bool probe)
    {
        var decoder = (DecoderOnlyModel)model;
        int v = model.Config.VocabSize, length = walks[0].Length, t = 2 * length + 1;
        long scored = 0, right = 0, legal = 0;
        var records = new List<CodebookRecord>();
        for (int i = 0; i < walks.Count; i += 32)
        {
            var chunk = walks.Skip(i).Take(32).ToArray();
            int b = chunk.Length;
            var ids = new int[b * t];                                                               // (B·T): BOS, letter, digit, …
            for (int r = 0; r < b; r++)
            {
                ids[r * t] = LabVocabulary.Bos;
                FsmTask.Tokens(chunk[r]).CopyTo(ids, r * t + 1);
            }
            // Reading the codes sets the model's probe for this pass only; otherwise the caller's probe (if any) stays.
            var codes = probe ? new CodebookProbe() : null;
            var previous = model.Codebooks;
            if (codes != null) model.Codebooks = codes;
            try
            {
                using var logits = decoder.Forward(ids, b);                                         // (B, T, V)
                var values = logits.Value.AsReadOnlySpan<float>();
                for (int r = 0; r < b; r++)
                    // Input position p predicts ids[p + 1]; scored from the second state's letter (p = 2) to the last digit.
                    for (int p = 2; p < t - 1; p++)
                    {
                        var row = values.Slice((r * t + p) * v, v);
                        int best = 0;
                        for (int c = 1; c < v; c++) if (row[c] > row[best]) best = c;
                        int target = ids[r * t + p + 1];
                        scored++;
                        if (best == target) right++;
                        // p even: the digit of state (p/2 − 1) was just read, the next letter is due; p odd: the letter of the next state was.
                        int state = chunk[r][(p - 1) / 2 - (p % 2 == 1 ? 1 : 0)];
                        bool ok = p % 2 == 0 ? fsm.LegalLetter(state, best) : fsm.LegalDigit(state, ids[r * t + p], best);
                        if (ok) legal++;
                    }
            }
            finally { model.Codebooks = previous; }
            if (codes != null) records.AddRange(codes.Records);
        }
        return new Evaluation((double)right / scored, (double)legal / scored, records, t);
    }

    /// <summary>
    /// For each state, the code (over every codebook) with the highest precision at the digit positions, where the state is fully
    /// written (input position 2j + 2 of walk state j), among codes firing there at least MinFirings times; and each codebook's live codes.
    /// </summary>
    internal static (List<CodebookStateCode> States, List<CodebookUsage> Usage) StateCodes(Evaluation e, IReadOnlyList<int[]> walks, CodebookStudyOptions o)
    {
        int t = e.Positions, length = walks[0].Length;
        var scopes = e.Codes.Select(r => r.Scope).Distinct().ToList();
        var counts = scopes.ToDictionary(s => s, _ => new int[o.Codes, FsmTask.States]);
        var live = scopes.ToDictionary(s => s, _ => new HashSet<int>());
        var positions = new int[FsmTask.States];
        // Records come per batch of 32 walks, one per codebook in order: walk the batches in the same order.
        int batchStart = 0, recordIndex = 0;
        while (batchStart < walks.Count)
        {
            int b = Math.Min(32, walks.Count - batchStart);
            for (int j = 0; j < length; j++)
                for (int r = 0; r < b; r++) positions[walks[batchStart + r][j]]++;
            for (int q = 0; q < scopes.Count; q++, recordIndex++)
            {
                var rec = e.Codes[recordIndex];
                var count = counts[rec.Scope];
                for (int r = 0; r < b; r++)
                    for (int p = 0; p < t; p++)
                    {
                        int row = r * t + p;
                        for (int i = 0; i < rec.TopK; i++) live[rec.Scope].Add(rec.Codes[row * rec.TopK + i]);
                        if (p < 2 || p % 2 != 0) continue;
                        int state = walks[batchStart + r][p / 2 - 1];
                        for (int i = 0; i < rec.TopK; i++) count[rec.Codes[row * rec.TopK + i], state]++;
                    }
            }
            batchStart += b;
        }
        var states = new List<CodebookStateCode>();
        for (int s = 0; s < FsmTask.States; s++)
        {
            var best = new CodebookStateCode(s, FsmTask.Name(s), positions[s], null, -1, 0, 0, 0);
            foreach (var scope in scopes)
            {
                var count = counts[scope];
                for (int c = 0; c < o.Codes; c++)
                {
                    int firings = 0;
                    for (int x = 0; x < FsmTask.States; x++) firings += count[c, x];
                    if (firings < o.MinFirings || count[c, s] == 0) continue;
                    double precision = (double)count[c, s] / firings, recall = positions[s] == 0 ? 0 : (double)count[c, s] / positions[s];
                    if (precision > best.Precision || (precision == best.Precision && recall > best.Recall))
                        best = new CodebookStateCode(s, FsmTask.Name(s), positions[s], scope, c, firings, precision, recall);
                }
            }
            states.Add(best);
        }
        return (states, [.. scopes.Select(s => new CodebookUsage(s, live[s].Count, o.Codes))]);
    }

    static List<string> Observe(IReadOnlyList<CodebookModelResult> models, double oracle)
    {
        var ci = CultureInfo.InvariantCulture;
        var lines = new List<string>();
        var plain = models[0];
        foreach (var m in models.Skip(1))
        {
            double gap = (plain.Accuracy - m.Accuracy) * 100;
            bool close = gap <= 2, most = m.StatesIdentified * 2 > FsmTask.States;
            lines.Add(string.Create(ci, $"k = {m.TopK}: next-token accuracy {m.Accuracy * 100:0.0}% against {plain.Accuracy * 100:0.0}% without codebooks (best possible {oracle * 100:0.0}%), ") +
                (gap <= 0 ? "no lower" : string.Create(ci, $"{gap:0.0} points lower")) + (close ? " (within 2 points); " : " (outside 2 points); ") +
                string.Create(ci, $"{m.StatesIdentified} of {FsmTask.States} states have a code of precision ≥ 0.9 ") + (most ? "(most states). " : "(not most states). ") +
                (close && most ? "Both parts of the criterion hold." : "The criterion is not met."));
        }
        return lines;
    }
}
