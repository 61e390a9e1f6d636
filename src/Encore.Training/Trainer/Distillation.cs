using Encore.Autograd;
using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Training.Trainer;

/// <summary>
/// A teacher for knowledge distillation (the Return of the Encoder recipe, arXiv 2501.16273 §4: a
/// larger decoder-only teacher, an encoder–decoder student). For each target position of the
/// student's batch it gives the teacher's logits for the same next token: an encoder–decoder
/// teacher sees the same batch; a decoder-only teacher reads an encoder–decoder example as it was
/// trained to read a (prompt, target) pair (<c>CausalLmObjective</c>): its BOS, the source without
/// the trailing EOS the encoder gets, then the target, and its logits at the position before
/// target token j predict it; a decoder-only student's rows are read by a decoder-only teacher as
/// they are. Teacher and student must share a tokenizer (the logits are compared id by id).
/// </summary>
public sealed class Distillation
{
    readonly LanguageModel _teacher;
    readonly int _teacherBos;      // prepended to a decoder-only teacher's view of a source; −1: none
    readonly int _sourceEos;       // dropped from the end of a source before a decoder-only teacher reads it; −1: none

    /// <summary>
    /// Checks the pairing and wraps the teacher (inference only; it is never updated). The BOS a
    /// decoder-only teacher's prompts start with is its tokenizer's (else its config's), and the
    /// EOS that ends an encoder–decoder student's sources is the student tokenizer's (else its
    /// config's), as <c>Generator.EncodePrompt</c> builds prompts for each.
    /// </summary>
    public Distillation(LanguageModel teacher, LanguageModel student, TextTokenizer? teacherTokenizer = null, TextTokenizer? studentTokenizer = null)
    {
        if (teacher is EncoderOnlyModel) throw new ArgumentException("a distillation teacher must be an encoder–decoder or a decoder-only model");
        if (teacher.Config.VocabSize != student.Config.VocabSize)
            throw new ArgumentException($"teacher and student must share a tokenizer: the teacher's vocabulary has {teacher.Config.VocabSize} ids, the student's {student.Config.VocabSize}");
        if (teacherTokenizer != null && studentTokenizer != null && !SameTokenizer(teacherTokenizer, studentTokenizer, out var why))
            throw new ArgumentException($"teacher and student must share a tokenizer: {why}");
        _teacher = teacher;
        _teacherBos = teacherTokenizer?.BosId ?? teacher.Config.BosTokenId;
        _sourceEos = studentTokenizer?.EosId ?? student.Config.EosTokenId;
    }

    static bool SameTokenizer(TextTokenizer a, TextTokenizer b, out string why)
    {
        why = "";
        if (a.VocabSize != b.VocabSize) { why = $"vocabulary sizes {a.VocabSize} and {b.VocabSize} differ"; return false; }
        if (a.EosId != b.EosId || a.PadId != b.PadId || a.BosId != b.BosId) { why = "their special token ids differ"; return false; }
        const string probe = "The quick brown fox jumps over the lazy dog: 42 naïve cafés, 東京, 🙂.";
        if (!a.Encode(probe).SequenceEqual(b.Encode(probe))) { why = "they encode the same text to different ids"; return false; }
        return true;
    }

    /// <summary>The teacher's logits aligned with the batch's targets: a constant (B·T, V) var.</summary>
    public Var Logits(Batch b)
    {
        int v = _teacher.Config.VocabSize, t = b.InputLength;
        if (_teacher is EncoderDecoderModel)
        {
            if (b.SourceLengths.Length == 0) throw new ArgumentException("an encoder–decoder teacher needs an encoder–decoder student (the batch has no source)");
            var aligned = Tape.NoGrad(() => Trainer.Logits(_teacher, b));
            using (aligned)
                return Var.Constant(aligned.Value.Reshape(b.Size * t, v));
        }
        var dec = (DecoderOnlyModel)_teacher;
        if (b.SourceLengths.Length == 0)
        {
            // A decoder-only student's rows are already one sequence each (prompt, then target):
            // the teacher reads the same ids, and its logits line up position by position.
            var same = Tape.NoGrad(() => dec.Forward(b.Inputs, b.Size, b.InputLengths));                // (B, T, V)
            using (same)
                return Var.Constant(same.Value.Reshape(b.Size * t, v));
        }
        // Per example: the teacher's prompt (BOS, source without its EOS), then the real target tokens.
        var sequences = new int[b.Size][];
        var prompts = new int[b.Size];
        for (int i = 0; i < b.Size; i++)
        {
            var source = b.Source.AsSpan(i * b.SourceLength, b.SourceLengths[i]);
            if (_sourceEos >= 0 && source.Length > 0 && source[^1] == _sourceEos) source = source[..^1];
            var seq = new List<int>(source.Length + t + 1);
            if (_teacherBos >= 0) seq.Add(_teacherBos);
            foreach (int id in source) seq.Add(id);
            if (seq.Count == 0) throw new ArgumentException($"example {i} has an empty source and the teacher has no BOS; a decoder-only teacher needs at least one prompt token to predict the first target");
            prompts[i] = seq.Count;
            for (int j = 0; j < t && b.Targets[i * t + j] != Labels.Ignore; j++) seq.Add(b.Targets[i * t + j]);
            sequences[i] = [.. seq];
        }
        int lt = sequences.Max(s => s.Length);
        var ids = new int[b.Size * lt];
        var lengths = new int[b.Size];
        for (int i = 0; i < b.Size; i++)
        {
            sequences[i].CopyTo(ids, i * lt);
            lengths[i] = sequences[i].Length;
        }
        var result = Tensor.Zeros(DType.F32, b.Size * t, v);
        using (var logits = Tape.NoGrad(() => dec.Forward(ids, b.Size, lengths)))    // (B, Lt, V)
        {
            var src = logits.Value.AsReadOnlySpan<float>();
            var dst = result.AsSpan<float>();
            for (int i = 0; i < b.Size; i++)
            {
                int sl = prompts[i];
                for (int j = 0; j < t && b.Targets[i * t + j] != Labels.Ignore; j++)
                    src.Slice((i * lt + sl - 1 + j) * v, v).CopyTo(dst.Slice((i * t + j) * v, v));
            }
        }
        return Var.Constant(result);
    }
}
