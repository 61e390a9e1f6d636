using Encore.Autograd;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Objectives;

namespace Encore.Training.Trainer;

/// <summary>How a student samples its own targets for on-policy distillation; defaults follow the Mu recipe.</summary>
public sealed record OnPolicyOptions
{
    /// <summary>Sampling temperature. Default 0.9 (Mu's KDDataset).</summary>
    public float Temperature { get; init; } = 0.9f;
    /// <summary>Top-k of the sampler. Default 128 (Mu's KDDataset).</summary>
    public int TopK { get; init; } = 128;
    /// <summary>Most tokens sampled per example; the batch's longest reference (with its EOS) caps it too. Default 64.</summary>
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Throws naming the first option out of range.</summary>
    public OnPolicyOptions Validate()
    {
        if (!(Temperature > 0) || !float.IsFinite(Temperature)) throw new ArgumentException($"on-policy sampling temperature must be positive, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"on-policy top-k cannot be negative, got {TopK}");
        if (MaxNewTokens < 1) throw new ArgumentException($"on-policy max new tokens must be positive, got {MaxNewTokens}");
        return this;
    }
}

/// <summary>
/// The student's own targets for on-policy distillation (Return of the Encoder, arXiv 2501.16273;
/// its code's <c>KDDataset(model=student)</c>): for each example of a training batch the student
/// samples a continuation of the example's source or prompt, and the batch is rebuilt on those
/// samples, laid out as the objective lays out references, so the teacher can score every sampled
/// token. Sampling runs without a tape; its seed depends only on the run seed, step and micro-batch,
/// so a resumed run draws the same samples.
/// </summary>
public sealed class OnPolicySampler
{
    readonly LanguageModel _student;
    readonly OnPolicyOptions _o;
    readonly Generator _generator;

    /// <summary>Samples from <paramref name="student"/> with <paramref name="options"/>.</summary>
    public OnPolicySampler(LanguageModel student, OnPolicyOptions? options = null)
    {
        if (student is EncoderOnlyModel) throw new ArgumentException("on-policy distillation needs a student that generates (encoder–decoder or decoder-only)");
        _student = student;
        _o = (options ?? new OnPolicyOptions()).Validate();
        _generator = new Generator(student);
    }

    /// <summary>
    /// <paramref name="b"/> with its targets replaced by the student's samples: an encoder–decoder
    /// keeps the sources and gets decoder inputs START s1 … and targets s1 … sn (sn is EOS when the
    /// sample ended); a decoder-only model keeps each row's prompt (its positions that carry no
    /// loss) and continues it with the sample, loss on the sample only.
    /// </summary>
    public Batch Sample(Batch b, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(b);
        var c = _student.Config;
        bool encDec = _student is EncoderDecoderModel;
        var prompts = new int[b.Size][];
        var promptLengths = new int[b.Size];
        for (int i = 0; i < b.Size; i++)
        {
            if (encDec) prompts[i] = b.Source.AsSpan(i * b.SourceLength, b.SourceLengths[i]).ToArray();
            else
            {
                int first = Array.FindIndex(b.Targets, i * b.InputLength, b.InputLength, t => t != Labels.Ignore) - i * b.InputLength;
                if (first < 0) throw new ArgumentException($"row {i} of the batch has no target to replace");
                promptLengths[i] = first + 1;   // inputs[first] is the last prompt token: it predicts the first target
                prompts[i] = b.Inputs.AsSpan(i * b.InputLength, first + 1).ToArray();
            }
        }
        int longestReference = 0;
        for (int i = 0; i < b.Size; i++)
        {
            int n = 0;
            foreach (int t in b.Targets.AsSpan(i * b.InputLength, b.InputLength)) if (t != Labels.Ignore) n++;
            longestReference = Math.Max(longestReference, n);
        }
        var options = new GenerationOptions
        {
            DoSample = true, Temperature = _o.Temperature, TopK = _o.TopK, Seed = seed,
            MaxNewTokens = Math.Max(1, Math.Min(_o.MaxNewTokens, longestReference)),
            EosTokenIds = [c.EosTokenId],
        };
        var results = Tape.NoGrad(() => _generator.GenerateIds(prompts, options));
        var rows = new TrainingRow[b.Size];
        for (int i = 0; i < b.Size; i++)
        {
            var s = results[i].Tokens;
            if (s.Length == 0) s = [c.EosTokenId];
            if (encDec) rows[i] = new TrainingRow(prompts[i], [c.DecoderStartTokenId, .. s[..^1]], s);
            else
            {
                int p = promptLengths[i];
                var inputs = new int[p + s.Length - 1];
                var targets = new int[inputs.Length];
                prompts[i].CopyTo(inputs, 0);
                s.AsSpan(0, s.Length - 1).CopyTo(inputs.AsSpan(p));
                Array.Fill(targets, Labels.Ignore, 0, p - 1);
                s.CopyTo(targets, p - 1);
                rows[i] = new TrainingRow([], inputs, targets);
            }
        }
        return Data.TrainingBatches.Collate(rows, c.PadTokenId, b.ExampleIndices, hasSource: encDec);
    }
}
