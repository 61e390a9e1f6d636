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
/// teacher sees the same batch; a decoder-only teacher sees source then target as one sequence,
/// and its logits at position |source| − 1 + j predict target j; a decoder-only student's rows are
/// read by a decoder-only teacher as they are. Teacher and student must share a tokenizer (the
/// logits are compared id by id).
/// </summary>
public sealed class Distillation
{
    readonly LanguageModel _teacher;

    /// <summary>Checks the pairing and wraps the teacher (inference only; it is never updated).</summary>
    public Distillation(LanguageModel teacher, LanguageModel student, TextTokenizer? teacherTokenizer = null, TextTokenizer? studentTokenizer = null)
    {
        if (teacher is EncoderOnlyModel) throw new ArgumentException("a distillation teacher must be an encoder–decoder or a decoder-only model");
        if (teacher.Config.VocabSize != student.Config.VocabSize)
            throw new ArgumentException($"teacher and student must share a tokenizer: the teacher's vocabulary has {teacher.Config.VocabSize} ids, the student's {student.Config.VocabSize}");
        if (teacherTokenizer != null && studentTokenizer != null && !SameTokenizer(teacherTokenizer, studentTokenizer, out var why))
            throw new ArgumentException($"teacher and student must share a tokenizer: {why}");
        _teacher = teacher;
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
        // Per example: source tokens, then the real target tokens.
        var sequences = new int[b.Size][];
        for (int i = 0; i < b.Size; i++)
        {
            int sl = b.SourceLengths.Length > 0 ? b.SourceLengths[i] : 0;
            if (sl == 0) throw new ArgumentException($"example {i} has an empty source; a decoder-only teacher needs at least one source token to predict the first target");
            var seq = new List<int>(sl + t);
            for (int j = 0; j < sl; j++) seq.Add(b.Source[i * b.SourceLength + j]);
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
                int sl = b.SourceLengths[i];
                for (int j = 0; j < t && b.Targets[i * t + j] != Labels.Ignore; j++)
                    src.Slice((i * lt + sl - 1 + j) * v, v).CopyTo(dst.Slice((i * t + j) * v, v));
            }
        }
        return Var.Constant(result);
    }
}
