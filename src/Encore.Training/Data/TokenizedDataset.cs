using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Encore.Formats.Tokenization;

namespace Encore.Training.Data;

/// <summary>How many examples a truncation shortened.</summary>
/// <param name="Sources">Examples whose source (or document) was cut.</param>
/// <param name="Targets">Examples whose target was cut.</param>
/// <param name="Examples">Examples with either cut.</param>
public sealed record TruncationReport(int Sources, int Targets, int Examples);

/// <summary>A train/validation partition of a dataset's example indices (each ascending).</summary>
public sealed record DatasetSplit(int[] Train, int[] Validation);

/// <summary>
/// A dataset tokenized once: for pairs, <see cref="Sources"/> and <see cref="Targets"/>; for plain
/// text, the documents in <see cref="Sources"/> and no targets. Ids are the text alone
/// (<c>Encode(text, addSpecialTokens: false)</c>); objectives add EOS, decoder start, BOS or sentinels.
/// Files loaded with <see cref="LoadPairs"/> / <see cref="LoadDocuments"/> are cached in memory per
/// tokenizer instance, keyed by the SHA-256 of the file's bytes (and the layout), so a second load of
/// the same content with the same tokenizer does not tokenize again; there is no cache file.
/// </summary>
public sealed class TokenizedDataset
{
    static readonly ConditionalWeakTable<TextTokenizer, ConcurrentDictionary<string, TokenizedDataset>> Cache = new();

    TokenizedDataset(string name, int[][] sources, int[][]? targets)
    {
        Name = name;
        Sources = sources;
        Targets = targets;
    }

    /// <summary>Where the data came from (a path or a given name).</summary>
    public string Name { get; }

    /// <summary>Source ids per example (documents for plain text).</summary>
    public IReadOnlyList<int[]> Sources { get; }

    /// <summary>Target ids per example, or null for plain text.</summary>
    public IReadOnlyList<int[]>? Targets { get; }

    /// <summary>True for source/target pairs.</summary>
    public bool HasTargets => Targets is not null;

    /// <summary>Number of examples.</summary>
    public int Count => Sources.Count;

    /// <summary>Tokenizes pairs.</summary>
    public static TokenizedDataset FromPairs(IReadOnlyList<TextPair> pairs, TextTokenizer tokenizer, string name = "pairs")
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var s = new int[pairs.Count][];
        var t = new int[pairs.Count][];
        for (int i = 0; i < pairs.Count; i++)
        {
            s[i] = tokenizer.Encode(pairs[i].Source, addSpecialTokens: false);
            t[i] = tokenizer.Encode(pairs[i].Target, addSpecialTokens: false);
        }
        return new TokenizedDataset(name, s, t);
    }

    /// <summary>Tokenizes plain-text documents.</summary>
    public static TokenizedDataset FromDocuments(IReadOnlyList<string> documents, TextTokenizer tokenizer, string name = "documents")
    {
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var s = new int[documents.Count][];
        for (int i = 0; i < documents.Count; i++) s[i] = tokenizer.Encode(documents[i], addSpecialTokens: false);
        return new TokenizedDataset(name, s, null);
    }

    /// <summary>Wraps ids that are already tokenized (tests, generated data); the arrays are copied.</summary>
    public static TokenizedDataset FromIds(IReadOnlyList<int[]> sources, IReadOnlyList<int[]>? targets = null, string name = "ids")
    {
        ArgumentNullException.ThrowIfNull(sources);
        if (targets is not null && targets.Count != sources.Count)
            throw new ArgumentException($"{sources.Count} sources but {targets.Count} targets", nameof(targets));
        return new TokenizedDataset(name, sources.Select(x => x.ToArray()).ToArray(), targets?.Select(x => x.ToArray()).ToArray());
    }

    /// <summary>Reads and tokenizes a JSONL pairs file (see <see cref="DatasetReader.ReadPairs(string, DatasetReadOptions?)"/>), through the in-memory cache.</summary>
    public static TokenizedDataset LoadPairs(string path, TextTokenizer tokenizer, DatasetReadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var pairs = DatasetReader.ReadPairs(path, options, out string hash);
        return Cache.GetOrCreateValue(tokenizer).GetOrAdd("pairs:" + hash, _ => FromPairs(pairs, tokenizer, path));
    }

    /// <summary>Reads and tokenizes a plain-text file (see <see cref="DatasetReader.ReadDocuments(string, TextLayout, DatasetReadOptions?)"/>), through the in-memory cache.</summary>
    public static TokenizedDataset LoadDocuments(string path, TextTokenizer tokenizer, TextLayout layout = TextLayout.LinePerDocument, DatasetReadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var docs = DatasetReader.ReadDocuments(path, layout, options, out string hash);
        return Cache.GetOrCreateValue(tokenizer).GetOrAdd($"text:{layout}:{hash}", _ => FromDocuments(docs, tokenizer, path));
    }

    /// <summary>
    /// Cuts sources (documents) to <paramref name="maxSourceTokens"/> and targets to
    /// <paramref name="maxTargetTokens"/> text tokens (null: no limit), keeping the beginning, and
    /// counts what was cut. The limits count text ids only: objectives add up to two ids (EOS,
    /// decoder start or BOS, and one sentinel per span for span corruption) on top.
    /// </summary>
    public TokenizedDataset Truncate(int? maxSourceTokens, int? maxTargetTokens, out TruncationReport report)
    {
        if (maxSourceTokens is < 1) throw new ArgumentOutOfRangeException(nameof(maxSourceTokens), "must be at least 1");
        if (maxTargetTokens is < 1) throw new ArgumentOutOfRangeException(nameof(maxTargetTokens), "must be at least 1");
        int cutS = 0, cutT = 0, cutAny = 0;
        var s = new int[Count][];
        var t = Targets is null ? null : new int[Count][];
        for (int i = 0; i < Count; i++)
        {
            bool cs = maxSourceTokens is int ms && Sources[i].Length > ms;
            s[i] = cs ? Sources[i][..maxSourceTokens!.Value] : Sources[i];
            bool ct = false;
            if (t is not null)
            {
                ct = maxTargetTokens is int mt && Targets![i].Length > mt;
                t[i] = ct ? Targets![i][..maxTargetTokens!.Value] : Targets![i];
            }
            if (cs) cutS++;
            if (ct) cutT++;
            if (cs || ct) cutAny++;
        }
        report = new TruncationReport(cutS, cutT, cutAny);
        return new TokenizedDataset(Name, s, t);
    }

    /// <summary>The examples at <paramref name="indices"/>, in that order (arrays shared, not copied).</summary>
    public TokenizedDataset Select(IReadOnlyList<int> indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        var s = new int[indices.Count][];
        var t = Targets is null ? null : new int[indices.Count][];
        for (int k = 0; k < indices.Count; k++)
        {
            int i = indices[k];
            if ((uint)i >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(indices), $"index {i} is outside the {Count} examples");
            s[k] = Sources[i];
            if (t is not null) t[k] = Targets![i];
        }
        return new TokenizedDataset(Name, s, t);
    }

    /// <summary>
    /// A deterministic split: a <see cref="DataRng"/> permutation from <paramref name="seed"/> puts
    /// its first round(fraction·N) examples in validation (at least one when the fraction is positive
    /// and N ≥ 2). Index lists come back ascending.
    /// </summary>
    public DatasetSplit Split(double validationFraction, ulong seed)
    {
        if (!(validationFraction >= 0 && validationFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), "must be in [0, 1)");
        int n = (int)Math.Round(validationFraction * Count, MidpointRounding.AwayFromZero);
        if (validationFraction > 0 && n == 0 && Count >= 2) n = 1;
        return Split(n, seed);
    }

    /// <summary>A deterministic split with exactly <paramref name="validationCount"/> validation examples.</summary>
    public DatasetSplit Split(int validationCount, ulong seed)
    {
        if (validationCount < 0 || validationCount > Count)
            throw new ArgumentOutOfRangeException(nameof(validationCount), $"must be in [0, {Count}]");
        var perm = new DataRng(seed).Permutation(Count);
        var val = perm[..validationCount];
        var train = perm[validationCount..];
        Array.Sort(val);
        Array.Sort(train);
        return new DatasetSplit(train, val);
    }
}
