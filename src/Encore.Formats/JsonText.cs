using System.Text.Json;

namespace Encore.Formats;

/// <summary>
/// Checks that JSON bytes are text every string of which can be read: valid UTF-8, and no escape
/// that decodes to malformed UTF-16 (a lone surrogate such as <c>"\ud800"</c>). System.Text.Json
/// parses both without complaint and throws a bare InvalidOperationException only when the string is
/// read, far from the file; checked here first, the error names the file and the line.
/// </summary>
public static class JsonText
{
    /// <summary>
    /// Throws <see cref="CheckpointFormatException"/> naming <paramref name="source"/> and the line when
    /// <paramref name="json"/> is not valid UTF-8 or holds an unreadable string. Syntax errors are left
    /// to the parser, which reports them with their position.
    /// </summary>
    public static void Check(ReadOnlySpan<byte> json, string source, int maxDepth = 64)
    {
        if (!System.Text.Unicode.Utf8.IsValid(json))
        {
            int at = InvalidUtf8Offset(json);
            throw new CheckpointFormatException($"{source}: line {LineAt(json, at)}: not valid UTF-8 text (byte {at})");
        }
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = maxDepth, CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName) || !reader.ValueIsEscaped) continue;
                try
                {
                    reader.GetString();
                }
                catch (InvalidOperationException)
                {
                    throw new CheckpointFormatException($"{source}: line {LineAt(json, (int)reader.TokenStartIndex)}: a string holds an escape that is not valid UTF-16 (a lone surrogate)");
                }
            }
        }
        catch (JsonException)
        {
            // Malformed JSON: the caller's parser reports it.
        }
    }

    static int InvalidUtf8Offset(ReadOnlySpan<byte> bytes)
    {
        int offset = 0;
        while (offset < bytes.Length)
        {
            var status = System.Text.Rune.DecodeFromUtf8(bytes[offset..], out _, out int used);
            if (status != System.Buffers.OperationStatus.Done) return offset;
            offset += used;
        }
        return offset;
    }

    /// <summary>The 1-based line of byte <paramref name="offset"/>.</summary>
    static int LineAt(ReadOnlySpan<byte> bytes, int offset) =>
        1 + System.MemoryExtensions.Count(bytes[..Math.Min(offset, bytes.Length)], (byte)'\n');
}
