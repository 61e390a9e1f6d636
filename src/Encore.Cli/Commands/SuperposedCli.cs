using Encore.Generation;

namespace Encore.Cli.Commands;

/// <summary>
/// The Superposed Decoding options shared by <c>generate</c>, <c>serve</c> and <c>bench generate</c>: each maps to
/// one <see cref="SuperposedOptions"/> field with the library's default (see docs/decoding.md).
/// </summary>
internal sealed class SuperposedCli
{
    static readonly SuperposedOptions Defaults = new();

    public SuperposedCli(string draftsDescription)
    {
        Drafts = new Option<int?>("--superposed") { Description = draftsDescription };
        Ngram = new Option<string?>("--ngram") { Description = "With --superposed: an n-gram table built with the model's tokenizer (encore ngram build) whose interpolation smooths the drafts (default: none)." };
        Alpha = new Option<float>("--ngram-alpha") { Description = "With --ngram: weight of the n-gram distribution against the model's (log space).", DefaultValueFactory = _ => Defaults.NgramAlpha };
        Weights = new Option<string?>("--ngram-weights")
        {
            Description = $"With --ngram: comma-separated interpolation weights of the bigram, trigram, … (default {string.Join(",", Defaults.NgramWeights.Select(w => w.ToString(CultureInfo.InvariantCulture)))}).",
        };
        Tokens = new Option<int>("--superposed-tokens") { Description = "With --superposed: the model's top tokens each draft takes as candidates (at least the number of drafts).", DefaultValueFactory = _ => Defaults.Tokens };
        Temperature = new Option<float>("--superposed-temperature") { Description = "With --superposed: temperature of the distribution the drafts are scored and weighted by.", DefaultValueFactory = _ => Defaults.Temperature };
    }

    public Option<int?> Drafts { get; }
    public Option<string?> Ngram { get; }
    public Option<float> Alpha { get; }
    public Option<string?> Weights { get; }
    public Option<int> Tokens { get; }
    public Option<float> Temperature { get; }

    /// <summary>Every option, to add to a command.</summary>
    public IEnumerable<Option> All => [Drafts, Ngram, Alpha, Weights, Tokens, Temperature];

    /// <summary>
    /// The options the command line asks for, with the n-gram table loaded (and refused with one message when it
    /// is not a table); null without <c>--superposed</c>, after a warning for each superposed option given anyway.
    /// </summary>
    public SuperposedOptions? Parse(ParseResult parse)
    {
        if (parse.GetValue(Drafts) is not { } k)
        {
            foreach (var option in All.Skip(1))
                if (parse.GetResult(option) is { Implicit: false }) Console.Error.WriteLine($"encore: {option.Name} has no effect without --superposed");
            return null;
        }
        if (parse.GetValue(Ngram) is null)
            foreach (var option in new Option[] { Alpha, Weights })
                if (parse.GetResult(option) is { Implicit: false }) Console.Error.WriteLine($"encore: {option.Name} has no effect without --ngram");
        var options = new SuperposedOptions
        {
            Drafts = k,
            Tokens = parse.GetValue(Tokens),
            Temperature = parse.GetValue(Temperature),
            NgramAlpha = parse.GetValue(Alpha),
            NgramWeights = parse.GetValue(Weights) is { } w ? ParseWeights(w) : Defaults.NgramWeights,
        };
        // Checked before the table is read, so a bad k fails fast.
        options.Validate();
        return parse.GetValue(Ngram) is { } path ? (options with { Ngrams = NgramTable.Load(path) }).Validate() : options;
    }

    static float[] ParseWeights(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var weights = new float[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out weights[i]) || !float.IsFinite(weights[i]) || weights[i] < 0)
                throw new ArgumentException($"--ngram-weights: '{parts[i]}' (position {i}) is not a number ≥ 0");
        return weights;
    }
}
