using Encore.Formats.Tokenization;
using Encore.Generation;

namespace Encore.Cli.Commands;

/// <summary>
/// The lexical-unit decoding options shared by <c>generate</c>, <c>serve</c>, <c>eval</c> and <c>bench generate</c>:
/// each maps to one <see cref="LexicalUnitOptions"/> field (see docs/decoding.md).
/// </summary>
internal sealed class LexicalUnitCli
{
    static readonly LexicalUnitOptions Defaults = new() { PlaceholderId = 0 };

    public Option<int?> Span { get; } = new("--lexical-units")
    {
        Description = "Lexical-unit decoding with up to K tokens per pass, for a model fine-tuned with `train --objective lexical-units`: " +
            "each pass fixes the next token and keeps the leading look-ahead guesses with probability ≥ --lud-beta (docs/decoding.md).",
    };
    public Option<double> Beta { get; } = new("--lud-beta") { Description = "With --lexical-units: the probability a look-ahead guess needs to be kept (1 keeps none: plain decoding).", DefaultValueFactory = _ => Defaults.Beta };
    public Option<string> Placeholder { get; } = new("--lud-placeholder") { Description = "With --lexical-units: the placeholder token the model was fine-tuned with (train's --lud-placeholder).", DefaultValueFactory = _ => "<mask>" };

    /// <summary>Every option, to add to a command.</summary>
    public IEnumerable<Option> All => [Span, Beta, Placeholder];

    /// <summary>
    /// The options the command line asks for, the placeholder not yet resolved (id 0; see <see cref="Resolve"/>);
    /// null without <c>--lexical-units</c>, after a warning for each lexical-unit option given anyway.
    /// </summary>
    public LexicalUnitOptions? Parse(ParseResult parse)
    {
        if (parse.GetValue(Span) is not { } k)
        {
            foreach (var option in All.Skip(1))
                if (parse.GetResult(option) is { Implicit: false }) Console.Error.WriteLine($"encore: {option.Name} has no effect without --lexical-units");
            return null;
        }
        return new LexicalUnitOptions { PlaceholderId = 0, Span = k, Beta = parse.GetValue(Beta) }.Validate();
    }

    /// <summary><paramref name="options"/> with the placeholder's id in <paramref name="tokenizer"/>; refused naming the option when it has no such token.</summary>
    public LexicalUnitOptions? Resolve(ParseResult parse, LexicalUnitOptions? options, TextTokenizer tokenizer)
    {
        if (options is null) return null;
        string token = parse.GetValue(Placeholder)!;
        int id = tokenizer.TokenToId(token) ?? throw new ArgumentException($"--lud-placeholder: '{token}' is not a token of the model's tokenizer");
        return options with { PlaceholderId = id };
    }
}
