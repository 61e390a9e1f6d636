using System.Globalization;
using System.Text;

namespace Encore.Formats.Tokenization;

/// <summary>
/// Unicode canonical normalization (UAX #15: NFD and NFC) from generated tables, because Encore
/// builds with InvariantGlobalization, where <see cref="string.Normalize()"/> returns its input
/// unchanged. Tokenizers need it for Qwen2's NFC normalizer and BERT's accent stripping
/// (google-research/bert tokenization.py _run_strip_accents: NFD, then drop nonspacing marks).
/// </summary>
internal static partial class UnicodeNormalization
{
    // Hangul syllables decompose and compose by arithmetic (The Unicode Standard §3.12).
    const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    static readonly Dictionary<int, (int A, int B)> s_decompose = new();
    static readonly Dictionary<long, int> s_compose = new();
    static readonly Dictionary<int, int> s_ccc = new();

    static UnicodeNormalization()
    {
        var d = Decompositions;
        for (int i = 0; i < d.Length; i += 3)
        {
            int cp = Math.Abs(d[i]);
            s_decompose[cp] = (d[i + 1], d[i + 2]);
            if (d[i] > 0 && d[i + 2] >= 0) s_compose[Key(d[i + 1], d[i + 2])] = cp;
        }
        var c = CombiningClasses;
        for (int i = 0; i < c.Length; i += 2) s_ccc[c[i]] = c[i + 1];
    }

    static long Key(int a, int b) => (long)a << 21 | (uint)b;

    static int Ccc(int cp) => cp < 0x300 ? 0 : s_ccc.GetValueOrDefault(cp);

    // Below U+00C0 nothing decomposes; below U+0300 there are also no combining marks, so NFC changes nothing.
    static bool Below(string s, char limit)
    {
        foreach (char ch in s)
            if (ch >= limit) return false;
        return true;
    }

    /// <summary>Canonical decomposition (NFD).</summary>
    public static string Nfd(string s) => Below(s, '\u00C0') ? s : Build(Decompose(s));

    /// <summary>Canonical decomposition then composition (NFC).</summary>
    public static string Nfc(string s)
    {
        if (Below(s, '\u0300')) return s;
        var cps = Decompose(s);
        Compose(cps);
        return Build(cps);
    }

    /// <summary>BERT's accent stripping: NFD without nonspacing marks (Hangul syllables become jamo, as in BERT).</summary>
    public static string StripAccents(string s)
    {
        if (Below(s, '\u00C0')) return s;
        var cps = Decompose(s);
        cps.RemoveAll(cp => cp is >= 0 and <= 0x10FFFF and not (>= 0xD800 and <= 0xDFFF)
            && CharUnicodeInfo.GetUnicodeCategory(cp) == UnicodeCategory.NonSpacingMark);
        return Build(cps);
    }

    static List<int> Decompose(string s)
    {
        var cps = new List<int>(s.Length + 8);
        for (int i = 0; i < s.Length; i++)
        {
            int cp = s[i];
            // A lone surrogate stays as it is.
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) cp = char.ConvertToUtf32(s[i], s[++i]);
            Append(cp, cps);
        }
        // Canonical ordering: a stable sort of each run of non-starters by combining class.
        for (int i = 1; i < cps.Count; i++)
        {
            int cc = Ccc(cps[i]);
            if (cc == 0) continue;
            for (int j = i; j > 0 && Ccc(cps[j - 1]) > cc; j--) (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
        }
        return cps;
    }

    static void Append(int cp, List<int> output)
    {
        if (cp is >= SBase and < SBase + SCount)
        {
            int si = cp - SBase;
            output.Add(LBase + si / NCount);
            output.Add(VBase + si % NCount / TCount);
            if (si % TCount != 0) output.Add(TBase + si % TCount);
            return;
        }
        if (cp >= 0xC0 && s_decompose.TryGetValue(cp, out var d))
        {
            Append(d.A, output);
            if (d.B >= 0) Append(d.B, output);
            return;
        }
        output.Add(cp);
    }

    static int Pair(int a, int b)
    {
        if (a is >= LBase and < LBase + LCount && b is >= VBase and < VBase + VCount)
            return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
        if (a is >= SBase and < SBase + SCount && (a - SBase) % TCount == 0 && b is > TBase and < TBase + TCount)
            return a + (b - TBase);
        return s_compose.TryGetValue(Key(a, b), out int c) ? c : -1;
    }

    // UAX #15 canonical composition: a character joins the last starter unless a character between
    // them has the same or a higher combining class (is "blocked").
    static void Compose(List<int> cps)
    {
        if (cps.Count < 2) return;
        int starterPos = 0, starter = cps[0];
        int lastClass = Ccc(starter) == 0 ? 0 : 256;
        int outPos = 1;
        for (int i = 1; i < cps.Count; i++)
        {
            int ch = cps[i], cc = Ccc(ch);
            int composite = Pair(starter, ch);
            if (composite >= 0 && (lastClass < cc || lastClass == 0))
            {
                cps[starterPos] = starter = composite;
                continue;
            }
            if (cc == 0)
            {
                starterPos = outPos;
                starter = ch;
            }
            lastClass = cc;
            cps[outPos++] = ch;
        }
        cps.RemoveRange(outPos, cps.Count - outPos);
    }

    static string Build(List<int> cps)
    {
        var sb = new StringBuilder(cps.Count + 4);
        foreach (int cp in cps)
        {
            if (cp is >= 0xD800 and <= 0xDFFF) sb.Append((char)cp);
            else sb.Append(char.ConvertFromUtf32(cp));
        }
        return sb.ToString();
    }
}
