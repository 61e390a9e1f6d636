using System.Globalization;
using System.Text;

namespace Encore.Formats.Tokenization;

/// <summary>
/// BERT's accent stripping (google-research/bert tokenization.py _run_strip_accents: NFD, then drop
/// nonspacing marks) without ICU: Encore runs with InvariantGlobalization, where
/// <see cref="string.Normalize()"/> returns its input unchanged, so the decompositions come from a
/// generated table and Hangul syllables are decomposed by the Unicode algorithm (§3.12).
/// </summary>
internal static partial class AccentStripping
{
    static readonly Dictionary<char, string> s_map = BuildMap();

    public static string Strip(string text)
    {
        StringBuilder? sb = null;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            string? repl = null;
            if (c is >= '\uAC00' and <= '\uD7A3') repl = Hangul(c);
            else if (c >= '\u00A0' && s_map.TryGetValue(c, out var r)) repl = r;
            else if (CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.NonSpacingMark) repl = "";
            if (repl is null)
            {
                sb?.Append(c);
                continue;
            }
            sb ??= new StringBuilder(text.Length).Append(text, 0, i);
            sb.Append(repl);
        }
        return sb?.ToString() ?? text;
    }

    static string Hangul(char c)
    {
        int s = c - 0xAC00;
        char l = (char)(0x1100 + s / (21 * 28)), v = (char)(0x1161 + s % (21 * 28) / 28);
        int t = s % 28;
        return t == 0 ? $"{l}{v}" : $"{l}{v}{(char)(0x11A7 + t)}";
    }

    static Dictionary<char, string> BuildMap()
    {
        var map = new Dictionary<char, string>();
        for (int i = 0; i < Table.Length;)
        {
            char c = Table[i];
            int n = Table[i + 1];
            map[c] = Table.Substring(i + 2, n);
            i += 2 + n;
        }
        return map;
    }
}
