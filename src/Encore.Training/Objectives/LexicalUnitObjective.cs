using System.Buffers.Binary;
using Encore.Autograd;
using Encore.Formats;
using Encore.Models;
using Encore.Training.Data;

namespace Encore.Training.Objectives;

/// <summary>Settings of <see cref="LexicalUnitObjective"/>.</summary>
public sealed record LexicalUnitTrainingOptions
{
    /// <summary>The placeholder token fed where the tokens after the next one are asked for (usually the tokenizer's mask token).</summary>
    public required int PlaceholderId { get; init; }

    /// <summary>α: a target token belongs to a lexical unit when the marking model gives it probability above α. Default 0.9.</summary>
    public double Alpha { get; init; } = 0.9;

    /// <summary>K: the longest unit a pass emits, so K − 1 placeholders per row. Default 4.</summary>
    public int Span { get; init; } = 4;

    /// <summary>Fraction of rows cut for placeholders; the others are the plain rows of the base objective. Default 0.5.</summary>
    public double Rate { get; init; } = 0.5;

    /// <summary>
    /// Fraction of cuts placed where a lexical unit opens (the cut's target and the next are marked), the
    /// others anywhere a target carries loss. Units are the minority of positions, so cuts placed
    /// uniformly teach mostly "the unit ends here". Default 0.5.
    /// </summary>
    public double UnitCuts { get; init; } = 0.5;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting out of range.</summary>
    public LexicalUnitTrainingOptions Validate()
    {
        if (PlaceholderId < 0) throw new ArgumentException($"--lud-placeholder must name a token of the vocabulary (id ≥ 0), got {PlaceholderId}");
        if (!double.IsFinite(Alpha) || Alpha is < 0 or >= 1) throw new ArgumentException($"--lud-alpha must be in [0, 1), got {Alpha}");
        if (Span is < 2 or > 16) throw new ArgumentException($"--lud-span must be in [2, 16], got {Span}");
        if (!double.IsFinite(Rate) || Rate is <= 0 or > 1) throw new ArgumentException($"--lud-rate must be in (0, 1], got {Rate}");
        if (!double.IsFinite(UnitCuts) || UnitCuts is < 0 or > 1) throw new ArgumentException($"--lud-unit-cuts must be in [0, 1], got {UnitCuts}");
        return this;
    }
}

/// <summary>
/// Which target tokens of each example a model predicts confidently (teacher-forced probability above α):
/// per example, one flag per position of the base objective's row. Lexical units are the runs of flagged
/// positions.
/// </summary>
public sealed class LexicalUnitMarks
{
    readonly bool[]?[] _marks;

    LexicalUnitMarks(bool[]?[] marks) => _marks = marks;

    /// <summary>Marks given directly: per example of the data set, one flag per position of its base row (null: not marked).</summary>
    public static LexicalUnitMarks FromFlags(IReadOnlyList<bool[]?> flags)
    {
        ArgumentNullException.ThrowIfNull(flags);
        return new LexicalUnitMarks([.. flags]);
    }

    /// <summary>Examples in the data set the marks were made for (marked or not).</summary>
    public int Count => _marks.Length;

    /// <summary>The flags of example <paramref name="index"/>'s row, or null when it was not marked.</summary>
    public bool[]? this[int index] => _marks[index];

    /// <summary>Flagged positions ÷ loss-carrying positions, over the marked examples.</summary>
    public double FlaggedFraction { get; private init; }

    /// <summary>
    /// Marks examples <paramref name="indices"/> of <paramref name="data"/>: <paramref name="marker"/> reads
    /// <paramref name="inner"/>'s rows teacher-forced (no gradient, no dropout) in batches of at most
    /// <paramref name="maxTokens"/> padded tokens, and a position is flagged when its target carries loss
    /// and gets probability above <paramref name="alpha"/>. <paramref name="progress"/> gets (done, total).
    /// </summary>
    public static LexicalUnitMarks Mark(LanguageModel marker, TokenizedDataset data, ITrainingObjective inner, IReadOnlyList<int> indices,
        double alpha, int maxTokens = 4096, Action<int, int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(marker);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(indices);
        var marks = new bool[]?[data.Count];
        int v = marker.Config.VocabSize;
        long flagged = 0, carried = 0;
        // Similar lengths together: less padding per batch.
        var order = indices.OrderBy(i => inner.RowLengths(data, i).Input).ThenBy(i => inner.RowLengths(data, i).Source).ToArray();
        var rows = new List<TrainingRow>();
        var batchIndices = new List<int>();
        int done = 0;
        void Flush()
        {
            if (rows.Count == 0) return;
            var b = TrainingBatches.Collate(rows, inner.PadId, [.. batchIndices], inner.HasSource);
            using (var logits = Tape.NoGrad(() => Trainer.Trainer.Logits(marker, b)))
            {
                var all = logits.Value.AsReadOnlySpan<float>();
                int t = b.InputLength;
                for (int r = 0; r < b.Size; r++)
                {
                    var flags = new bool[rows[r].Targets.Length];
                    for (int j = 0; j < flags.Length; j++)
                    {
                        int target = rows[r].Targets[j];
                        if (target == Labels.Ignore) continue;
                        if ((uint)target >= (uint)v) throw new ArgumentException($"example {batchIndices[r]} has target id {target} outside the marking model's vocabulary of {v}");
                        var row = all.Slice((r * t + j) * v, v);
                        flags[j] = Math.Exp(row[target] - LogSumExp(row)) > alpha;
                        carried++;
                        if (flags[j]) flagged++;
                    }
                    marks[batchIndices[r]] = flags;
                }
            }
            done += rows.Count;
            progress?.Invoke(done, order.Length);
            rows.Clear();
            batchIndices.Clear();
        }
        int longest = 0;
        foreach (int i in order)
        {
            var (s, n) = inner.RowLengths(data, i);
            int next = Math.Max(longest, s + n);
            if (rows.Count > 0 && next * (rows.Count + 1) > maxTokens)
            {
                Flush();
                next = s + n;
            }
            rows.Add(inner.MakeRow(data, i, DataRng.For(0, (ulong)i)));
            batchIndices.Add(i);
            longest = next;
        }
        Flush();
        return new LexicalUnitMarks(marks) { FlaggedFraction = carried == 0 ? 0 : (double)flagged / carried };
    }

    static double LogSumExp(ReadOnlySpan<float> x)
    {
        float max = float.NegativeInfinity;
        foreach (float f in x) max = Math.Max(max, f);
        double sum = 0;
        foreach (float f in x) sum += Math.Exp(f - max);
        return max + Math.Log(sum);
    }

    const uint Magic = 0x444E554C;   // "LUND"

    /// <summary>Writes the marks to <paramref name="path"/> atomically (so a resumed run reuses them).</summary>
    public void Save(string path)
    {
        AtomicFile.Write(path, stream =>
        {
            var word = new byte[4];
            void Int(int x)
            {
                BinaryPrimitives.WriteInt32LittleEndian(word, x);
                stream.Write(word);
            }
            Int((int)Magic);
            Int(_marks.Length);
            foreach (var m in _marks)
            {
                Int(m?.Length ?? -1);
                if (m != null) foreach (bool f in m) stream.WriteByte(f ? (byte)1 : (byte)0);
            }
        });
    }

    /// <summary>
    /// Reads marks written by <see cref="Save"/> for a data set of <paramref name="count"/> examples; throws
    /// <see cref="FormatException"/> naming <paramref name="path"/> when the file is damaged or made for other data.
    /// </summary>
    public static LexicalUnitMarks Load(string path, int count)
    {
        var bytes = File.ReadAllBytes(path);
        int at = 0;
        int Int()
        {
            if (at + 4 > bytes.Length) throw new FormatException($"{path}: truncated lexical-unit marks");
            int x = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(at));
            at += 4;
            return x;
        }
        if ((uint)Int() != Magic) throw new FormatException($"{path}: not a lexical-unit marks file");
        int n = Int();
        if (n != count) throw new FormatException($"{path}: marks for {n} examples, but the data has {count}");
        var marks = new bool[]?[n];
        for (int i = 0; i < n; i++)
        {
            int len = Int();
            if (len == -1) continue;
            if (len < 0 || len > bytes.Length - at) throw new FormatException($"{path}: example {i} has a bad length {len}");
            var m = new bool[len];
            for (int j = 0; j < len; j++) m[j] = bytes[at + j] != 0;
            at += len;
            marks[i] = m;
        }
        if (at != bytes.Length) throw new FormatException($"{path}: {bytes.Length - at} bytes after the marks");
        return new LexicalUnitMarks(marks);
    }
}

/// <summary>
/// Lexical-unit fine-tuning (after Sun et al. 2024, arXiv 2405.15208). A row of the base objective (inputs
/// x_0 … x_{m−1}, targets y_0 … y_{m−1}, y_j the token after x_j) is, with probability
/// <see cref="LexicalUnitTrainingOptions.Rate"/>, cut after a position c whose target carries loss, and
/// K − 1 placeholders follow:
/// <code>
/// inputs  = x_0 … x_c  PH_1 … PH_{K−1}  pad …
/// targets = y_0 … y_c  u_1  … u_{K−1}   ignore …
/// u_i     = y_{c+i}  when y_c … y_{c+i} all carry loss and are marked (a lexical unit opens with y_c, the
///                    token the pass predicts exactly, and runs on)
///           PH       otherwise (the unit ends: nothing more to emit in this pass)
/// </code>
/// Cuts fall where a unit follows with probability <see cref="LexicalUnitTrainingOptions.UnitCuts"/>, else
/// anywhere a target carries loss. The other rows are the base rows. Every row is padded to m + K − 1 inputs (ignored targets), so its
/// length is known without drawing. The decoding side is Encore.Generation's lexical-unit decoding, which
/// feeds the same placeholders after the last real token and keeps the leading guesses with probability
/// ≥ β. The exact layout of the paper's training data is not published; this is Encore's reading of it.
/// </summary>
public sealed class LexicalUnitObjective : ITrainingObjective
{
    readonly ITrainingObjective _inner;
    readonly LexicalUnitMarks _marks;
    readonly LexicalUnitTrainingOptions _o;

    /// <summary>Wraps <paramref name="inner"/> (sequence-to-sequence or causal LM) with the marks of its rows.</summary>
    public LexicalUnitObjective(ITrainingObjective inner, LexicalUnitMarks marks, LexicalUnitTrainingOptions options)
    {
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
        _marks = marks ?? throw new ArgumentNullException(nameof(marks));
        _o = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
    }

    /// <inheritdoc/>
    public string Name => $"lexical-units({_inner.Name})";
    /// <inheritdoc/>
    public bool HasSource => _inner.HasSource;
    /// <inheritdoc/>
    public int PadId => _inner.PadId;

    /// <inheritdoc/>
    public (int Source, int Input) RowLengths(TokenizedDataset data, int index)
    {
        var (s, n) = _inner.RowLengths(data, index);
        return (s, n + _o.Span - 1);
    }

    /// <inheritdoc/>
    public TrainingRow MakeRow(TokenizedDataset data, int index, DataRng rng)
    {
        var row = _inner.MakeRow(data, index, rng);
        int m = row.Inputs.Length, length = m + _o.Span - 1;
        var inputs = new int[length];
        var targets = new int[length];
        Array.Fill(inputs, PadId);
        Array.Fill(targets, Labels.Ignore);
        var flags = index < _marks.Count ? _marks[index] : null;
        if (flags is null || flags.Length != m)
            throw new InvalidOperationException($"example {index} has no lexical-unit marks for its row of {m} positions");
        // Cut points: positions whose target carries loss (unit starts: the next target is marked too); a row without one stays plain.
        int cuts = 0, unitStarts = 0;
        for (int j = 0; j < m; j++)
        {
            if (row.Targets[j] == Labels.Ignore) continue;
            cuts++;
            if (UnitStart(row, flags, j)) unitStarts++;
        }
        bool cut = cuts > 0 && rng.NextDouble() < _o.Rate;
        if (!cut)
        {
            row.Inputs.CopyTo(inputs, 0);
            row.Targets.CopyTo(targets, 0);
            return new TrainingRow(row.Source, inputs, targets);
        }
        bool atUnit = unitStarts > 0 && rng.NextDouble() < _o.UnitCuts;
        int pick = rng.NextInt(atUnit ? unitStarts : cuts), c = -1;
        for (int j = 0; j < m; j++)
            if (row.Targets[j] != Labels.Ignore && (!atUnit || UnitStart(row, flags, j)) && pick-- == 0) { c = j; break; }
        Array.Copy(row.Inputs, inputs, c + 1);
        Array.Copy(row.Targets, targets, c + 1);
        // The pass's exact token (y_c's target) opens the unit: the guesses after it are learnable only when it is predictable too.
        bool inUnit = flags[c];
        for (int i = 1; i < _o.Span; i++)
        {
            int j = c + i;
            inUnit = inUnit && j < m && row.Targets[j] != Labels.Ignore && flags[j];
            inputs[c + i] = _o.PlaceholderId;
            targets[c + i] = inUnit ? row.Targets[j] : _o.PlaceholderId;
        }
        return new TrainingRow(row.Source, inputs, targets);
    }

    // A unit opens at j: its target and the next one are both marked.
    static bool UnitStart(TrainingRow row, bool[] flags, int j) => flags[j] && j + 1 < flags.Length && row.Targets[j + 1] != Labels.Ignore && flags[j + 1];
}
