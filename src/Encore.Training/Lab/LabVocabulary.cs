namespace Encore.Training.Lab;

/// <summary>
/// The one token vocabulary of the lab studies (64 ids): the special ids Encore's objectives use
/// (pad 0, EOS 1, BOS 2), a separator, a scratch token, digits, 16 letter symbols and the words and
/// actions of the SCAN-like command task. Every study generates its data as ids in this vocabulary,
/// so no tokenizer is involved and the models' vocabulary stays tiny.
/// </summary>
public static class LabVocabulary
{
    /// <summary>Padding; also the encoder–decoder's first decoder input (T5's convention, <see cref="Models.ModelConfig.DecoderStartTokenId"/>).</summary>
    public const int Pad = 0;
    /// <summary>End of sequence: ends every target.</summary>
    public const int Eos = 1;
    /// <summary>Beginning of sequence: first id of every decoder-only row.</summary>
    public const int Bos = 2;
    /// <summary>Separates a decoder-only prompt's parts (input from output, π from the permuted string).</summary>
    public const int Sep = 3;
    /// <summary>A scratch token: carries no meaning, only a position to compute at.</summary>
    public const int Scratch = 4;
    /// <summary>The plus sign of the addition task.</summary>
    public const int Plus = 5;
    /// <summary>Digit 0; digit d is <c>Digit0 + d</c>.</summary>
    public const int Digit0 = 6;
    /// <summary>Symbol 'a'; the 16 symbols a–p are <c>Symbol0 + k</c>.</summary>
    public const int Symbol0 = 16;
    /// <summary>How many letter symbols there are.</summary>
    public const int Symbols = 16;
    /// <summary>The first SCAN word; the words are <see cref="ScanWords"/> in order.</summary>
    public const int ScanWord0 = 32;
    /// <summary>The first SCAN action; the actions are <see cref="ScanActions"/> in order.</summary>
    public const int ScanAction0 = 44;
    /// <summary>V of every lab model.</summary>
    public const int Size = 64;

    /// <summary>The command words of the SCAN-like task.</summary>
    public static readonly string[] ScanWords = ["jump", "walk", "run", "look", "turn", "left", "right", "twice", "thrice", "and", "after", "opposite"];
    /// <summary>The output actions of the SCAN-like task.</summary>
    public static readonly string[] ScanActions = ["JUMP", "WALK", "RUN", "LOOK", "LTURN", "RTURN"];

    /// <summary>The id of a SCAN word.</summary>
    public static int Word(string word)
    {
        int i = Array.IndexOf(ScanWords, word);
        return i >= 0 ? ScanWord0 + i : throw new ArgumentException($"'{word}' is not a SCAN word");
    }

    /// <summary>The id of a SCAN action.</summary>
    public static int Action(string action)
    {
        int i = Array.IndexOf(ScanActions, action);
        return i >= 0 ? ScanAction0 + i : throw new ArgumentException($"'{action}' is not a SCAN action");
    }

    /// <summary>The printed form of one id ("a", "7", "+", "walk", "LTURN", "[SEP]").</summary>
    public static string Name(int id) => id switch
    {
        Pad => "[PAD]",
        Eos => "[EOS]",
        Bos => "[BOS]",
        Sep => "[SEP]",
        Scratch => "_",
        Plus => "+",
        >= Digit0 and < Digit0 + 10 => ((char)('0' + id - Digit0)).ToString(),
        >= Symbol0 and < Symbol0 + Symbols => ((char)('a' + id - Symbol0)).ToString(),
        >= ScanWord0 and < ScanAction0 => ScanWords[id - ScanWord0],
        >= ScanAction0 and < ScanAction0 + 6 => ScanActions[id - ScanAction0],
        _ => $"[{id}]",
    };

    /// <summary>Ids as text: letters and digits run together, words separated by spaces ("abc", "walk left twice").</summary>
    public static string Render(IEnumerable<int> ids)
    {
        var parts = ids.Select(Name).ToList();
        return parts.All(p => p.Length == 1) ? string.Concat(parts) : string.Join(' ', parts);
    }
}
