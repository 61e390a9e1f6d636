using Encore.Formats.Tokenization;

namespace Encore.Training.Data;

/// <summary>
/// The data sets committed under <c>data/</c> (see data/README.md) and the small byte-level BPE
/// tokenizer trained on them at run time, so a quickstart needs neither network nor extra files.
/// </summary>
public static class BundledData
{
    /// <summary>WordNet definitions, training pairs (relative to the data folder).</summary>
    public const string WordNetTrain = "wordnet/train.jsonl";
    /// <summary>WordNet definitions, validation pairs.</summary>
    public const string WordNetValidation = "wordnet/validation.jsonl";
    /// <summary>The long-input fact lookup task, training pairs.</summary>
    public const string LongInputTrain = "long_input/train.jsonl";
    /// <summary>The long-input fact lookup task, validation pairs.</summary>
    public const string LongInputValidation = "long_input/validation.jsonl";

    /// <summary>Debian package descriptions (source), synopsis (target) and section, training pairs.</summary>
    public const string DebianTrain = "debian/train.jsonl.gz";
    /// <summary>Debian package descriptions, validation pairs.</summary>
    public const string DebianValidation = "debian/validation.jsonl.gz";
    /// <summary>Debian package descriptions, test pairs.</summary>
    public const string DebianTest = "debian/test.jsonl.gz";

    /// <summary>Special tokens of <see cref="TrainTokenizer"/>, in id order: pad 0, eos 1, bos 2, mask 3, then sentinels &lt;extra_id_0&gt; … (T5's pad 0 / eos 1 layout, matching ModelConfig's defaults).</summary>
    public static IReadOnlyList<string> SpecialTokens(int sentinels = 100) =>
        ["<pad>", "</s>", "<s>", "<mask>", .. Enumerable.Range(0, sentinels).Select(i => $"<extra_id_{i}>")];

    /// <summary>
    /// The <c>data</c> folder: the first <c>data</c> directory holding <see cref="WordNetTrain"/> found
    /// walking up from <paramref name="start"/> (default: the application's base directory, then the
    /// current directory), or null.
    /// </summary>
    public static string? FindDataDirectory(string? start = null)
    {
        foreach (var origin in start is null ? [AppContext.BaseDirectory, Directory.GetCurrentDirectory()] : new[] { start })
        {
            for (var dir = new DirectoryInfo(origin); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "data");
                if (File.Exists(Path.Combine(candidate, WordNetTrain))) return candidate;
            }
        }
        return null;
    }

    /// <summary>
    /// Trains a byte-level BPE of <paramref name="vocabSize"/> ids (specials included, see
    /// <see cref="SpecialTokens"/>) on the sources and targets of <paramref name="pairs"/> with
    /// <see cref="BpeTrainer"/>. Deterministic: the same pairs give the same tokenizer.
    /// </summary>
    public static ByteLevelBpeTextTokenizer TrainTokenizer(IEnumerable<TextPair> pairs, int vocabSize = 2048, int sentinels = 100)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var corpus = pairs.SelectMany(p => new[] { p.Source, p.Target });
        return BpeTrainer.Train(corpus, vocabSize, SpecialTokens(sentinels), new SpecialTokenRoles(Bos: "<s>", Eos: "</s>", Pad: "<pad>"));
    }
}
