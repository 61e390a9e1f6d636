using Encore.Training.Objectives;

namespace Encore.Training.Data;

/// <summary>Padding of bucketed batches beside naive fixed-size random batches with the same number of batches.</summary>
/// <param name="MaxTokens">The token budget of the bucketed batches.</param>
/// <param name="Bucketed">Length-bucketed batches under the budget.</param>
/// <param name="NaiveBatchSize">Sequences per naive batch: examples ÷ bucketed batches, rounded.</param>
/// <param name="Naive">Random batches of <paramref name="NaiveBatchSize"/> sequences.</param>
public sealed record PaddingReport(int MaxTokens, PaddingStats Bucketed, int NaiveBatchSize, PaddingStats Naive);

/// <summary>
/// A dataset, an objective and the bucketing settings: the batches of each epoch. Row lengths are
/// computed once from the objective (which also validates every example up front); rows are built
/// when a batch is made, each from its own (seed, epoch, index) random stream.
/// </summary>
public sealed class TrainingBatches
{
    readonly int[] _sourceLengths;
    readonly int[] _inputLengths;

    /// <summary>Batches of <paramref name="data"/> under <paramref name="objective"/>; <paramref name="indices"/> restricts them to a subset (a split).</summary>
    public TrainingBatches(TokenizedDataset data, ITrainingObjective objective, BucketingOptions options, IReadOnlyList<int>? indices = null)
    {
        Data = data ?? throw new ArgumentNullException(nameof(data));
        Objective = objective ?? throw new ArgumentNullException(nameof(objective));
        Options = options ?? throw new ArgumentNullException(nameof(options));
        Indices = indices?.ToArray() ?? Enumerable.Range(0, data.Count).ToArray();
        _sourceLengths = new int[data.Count];
        _inputLengths = new int[data.Count];
        foreach (int i in Indices)
        {
            if ((uint)i >= (uint)data.Count) throw new ArgumentOutOfRangeException(nameof(indices), $"index {i} is outside the {data.Count} examples");
            (_sourceLengths[i], _inputLengths[i]) = objective.RowLengths(data, i);
        }
    }

    /// <summary>The dataset.</summary>
    public TokenizedDataset Data { get; }
    /// <summary>The objective.</summary>
    public ITrainingObjective Objective { get; }
    /// <summary>The bucketing settings.</summary>
    public BucketingOptions Options { get; }
    /// <summary>The examples batched.</summary>
    public IReadOnlyList<int> Indices { get; }

    /// <summary>Row source length of each example (index into the dataset).</summary>
    public IReadOnlyList<int> SourceLengths => _sourceLengths;
    /// <summary>Row input length of each example.</summary>
    public IReadOnlyList<int> InputLengths => _inputLengths;

    /// <summary>The example indices of each batch of <paramref name="epoch"/>, in training order.</summary>
    public List<int[]> Plan(int epoch) => LengthBucketSampler.Plan(_sourceLengths, _inputLengths, Options, epoch, Indices);

    /// <summary>The batches of <paramref name="epoch"/>.</summary>
    public IEnumerable<Batch> Epoch(int epoch)
    {
        foreach (var b in Plan(epoch)) yield return MakeBatch(b, epoch);
    }

    /// <summary>The batches as a trainer's source: each epoch planned when the trainer reaches it, each batch made when it is read.</summary>
    public Trainer.IBatchSource AsSource() => new LazySource(this);

    sealed class LazySource(TrainingBatches batches) : Trainer.IBatchSource
    {
        public IReadOnlyList<Batch> Epoch(int epoch) => new EpochView(batches, epoch, batches.Plan(epoch));
    }

    sealed class EpochView(TrainingBatches batches, int epoch, List<int[]> plan) : IReadOnlyList<Batch>
    {
        public Batch this[int index] => batches.MakeBatch(plan[index], epoch);
        public int Count => plan.Count;
        public IEnumerator<Batch> GetEnumerator()
        {
            for (int i = 0; i < plan.Count; i++) yield return this[i];
        }
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>Builds and pads the batch of examples <paramref name="indices"/> for <paramref name="epoch"/>.</summary>
    public Batch MakeBatch(IReadOnlyList<int> indices, int epoch)
    {
        var rows = new TrainingRow[indices.Count];
        for (int k = 0; k < rows.Length; k++)
        {
            int i = indices[k];
            rows[k] = Objective.MakeRow(Data, i, DataRng.For(Options.Seed, 0x5EED_0000UL + (ulong)(uint)epoch, (ulong)i));
            if (rows[k].Source.Length != _sourceLengths[i] || rows[k].Inputs.Length != _inputLengths[i])
                throw new InvalidOperationException($"{Objective.Name} built a row of lengths ({rows[k].Source.Length}, {rows[k].Inputs.Length}) for example {i}, not the ({_sourceLengths[i]}, {_inputLengths[i]}) it announced");
        }
        return Collate(rows, Objective.PadId, indices.ToArray(), Objective.HasSource);
    }

    /// <summary>
    /// Pads rows on the right into a <see cref="Batch"/>: sources and inputs with <paramref name="padId"/>,
    /// targets with <see cref="Labels.Ignore"/>.
    /// </summary>
    public static Batch Collate(IReadOnlyList<TrainingRow> rows, int padId, int[] exampleIndices, bool hasSource)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0) throw new ArgumentException("a batch needs at least one row", nameof(rows));
        int b = rows.Count;
        int s = hasSource ? rows.Max(r => r.Source.Length) : 0;
        int t = rows.Max(r => r.Inputs.Length);
        var source = new int[b * s];
        var sourceLengths = hasSource ? new int[b] : [];
        var inputs = new int[b * t];
        var inputLengths = new int[b];
        var targets = new int[b * t];
        Array.Fill(source, padId);
        Array.Fill(inputs, padId);
        Array.Fill(targets, Labels.Ignore);
        for (int r = 0; r < b; r++)
        {
            var row = rows[r];
            if (row.Targets.Length != row.Inputs.Length) throw new ArgumentException($"row {r} has {row.Inputs.Length} inputs but {row.Targets.Length} targets", nameof(rows));
            if (!hasSource && row.Source.Length != 0) throw new ArgumentException($"row {r} has a source but the batch has none", nameof(rows));
            if (hasSource)
            {
                row.Source.CopyTo(source, r * s);
                sourceLengths[r] = row.Source.Length;
            }
            row.Inputs.CopyTo(inputs, r * t);
            row.Targets.CopyTo(targets, r * t);
            inputLengths[r] = row.Inputs.Length;
        }
        return new Batch
        {
            Size = b, SourceLength = s, Source = source, SourceLengths = sourceLengths,
            InputLength = t, Inputs = inputs, InputLengths = inputLengths, Targets = targets,
            ExampleIndices = exampleIndices,
        };
    }

    /// <summary>
    /// Padding of <paramref name="epoch"/>'s bucketed batches and of naive random batches with the
    /// same mean number of sequences (examples ÷ bucketed batches).
    /// </summary>
    public PaddingReport MeasurePadding(int epoch = 0)
    {
        var plan = Plan(epoch);
        var bucketed = PaddingStats.Measure(plan, _sourceLengths, _inputLengths);
        int size = Math.Max(1, (int)Math.Round((double)Indices.Count / Math.Max(1, plan.Count)));
        var naive = PaddingStats.Measure(LengthBucketSampler.FixedSize(Data.Count, size, Options.Seed, epoch, Indices), _sourceLengths, _inputLengths);
        return new PaddingReport(Options.MaxTokens, bucketed, size, naive);
    }
}
