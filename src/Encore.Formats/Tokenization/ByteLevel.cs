using System.Text.RegularExpressions;

namespace Encore.Formats.Tokenization;

/// <summary>
/// GPT-2's byte-level alphabet (openai/gpt-2 encoder.py <c>bytes_to_unicode</c>): every byte maps to
/// a printable character so BPE runs on strings. Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ')
/// map to themselves; the other 68 map to U+0100 onwards in byte order (space becomes 'Ġ').
/// </summary>
public static class ByteLevel
{
    /// <summary>GPT-2's pre-tokenizer pattern (encoder.py): contractions, letters, digits, other symbols, whitespace.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    static readonly char[] s_byteToChar = BuildByteToChar();
    static readonly Dictionary<char, byte> s_charToByte = Enumerable.Range(0, 256).ToDictionary(b => s_byteToChar[b], b => (byte)b);

    /// <summary>The character byte <paramref name="b"/> stands for.</summary>
    public static char ByteToChar(byte b) => s_byteToChar[b];

    /// <summary>The byte <paramref name="c"/> stands for, or false when <paramref name="c"/> is not in the alphabet.</summary>
    public static bool TryCharToByte(char c, out byte b) => s_charToByte.TryGetValue(c, out b);

    /// <summary>The 256 alphabet characters in code-point order (GPT-2's first 256 vocabulary entries).</summary>
    public static IEnumerable<char> Alphabet => s_byteToChar.Order();

    /// <summary>The byte-level spelling of <paramref name="text"/>'s UTF-8 bytes.</summary>
    public static string Encode(ReadOnlySpan<char> text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text.ToArray());
        return string.Create(bytes.Length, bytes, (dst, b) =>
        {
            for (int i = 0; i < b.Length; i++) dst[i] = s_byteToChar[b[i]];
        });
    }

    /// <summary>A compiled regex for <see cref="Gpt2Pattern"/>.</summary>
    public static Regex Gpt2Regex { get; } = new(Gpt2Pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);

    static char[] BuildByteToChar()
    {
        var map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + n++);
        }
        return map;
    }
}
