using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Encore.Formats.Tokenization;

/// <summary>
/// Hugging Face's <c>Split</c> pre-tokenizer with <c>Isolated</c> behavior: added tokens are cut out
/// whole (longest first), and the rest of the text is split at the matches of the model's regex.
/// Empty matches are skipped, as tokenizers' <c>Split</c> does: Microsoft.ML.Tokenizers'
/// RegexPreTokenizer restarts its search at the end of the last match, so a pattern that can match
/// the empty string (<c>"x?"</c>), or an empty added token, would find the same empty match forever.
/// </summary>
internal sealed class SplitPreTokenizer : PreTokenizer
{
    readonly Regex _regex;
    readonly Regex? _added;

    public SplitPreTokenizer(Regex regex, IEnumerable<string>? addedTokens)
    {
        _regex = regex;
        var alternatives = (addedTokens ?? []).Where(t => t.Length > 0).Distinct(StringComparer.Ordinal)
            .OrderByDescending(t => t.Length).ThenBy(t => t, StringComparer.Ordinal).Select(Regex.Escape).ToArray();
        _added = alternatives.Length == 0 ? null : new Regex(string.Join('|', alternatives), RegexOptions.CultureInvariant, regex.MatchTimeout);
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) =>
        string.IsNullOrEmpty(text) ? [] : Split(text);

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) =>
        text.IsEmpty ? [] : Split(text.ToString());

    IEnumerable<(int Offset, int Length)> Split(string text)
    {
        int start = 0;
        if (_added is not null)
        {
            for (var m = _added.Match(text); m.Success; m = m.NextMatch())
            {
                foreach (var piece in Matches(text, start, m.Index - start)) yield return piece;
                yield return (m.Index, m.Length);
                start = m.Index + m.Length;
            }
        }
        foreach (var piece in Matches(text, start, text.Length - start)) yield return piece;
    }

    // tokenizers' Split keeps what lies between matches as pieces of its own (Isolated): text the
    // pattern does not cover is not dropped.
    IEnumerable<(int Offset, int Length)> Matches(string text, int start, int length)
    {
        if (length == 0) yield break;
        int covered = start, end = start + length;
        // Match(text, start, length) sees only the segment, so anchors and lookarounds stop at an added token.
        for (var m = _regex.Match(text, start, length); m.Success; m = m.NextMatch())
        {
            if (m.Length == 0) continue;
            if (m.Index > covered) yield return (covered, m.Index - covered);
            yield return (m.Index, m.Length);
            covered = m.Index + m.Length;
        }
        if (covered < end) yield return (covered, end - covered);
    }
}
