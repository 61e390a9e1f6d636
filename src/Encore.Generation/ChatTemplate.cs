namespace Encore.Generation;

/// <summary>
/// Flattens a chat into the one prompt a model reads. Encore checkpoints carry no chat template
/// (Hugging Face's Jinja <c>chat_template</c> is not interpreted), so every model gets one documented
/// plain-text default, the same for the server and <see cref="EncoreChatClient"/>:
/// <code>
/// System: {content}
/// User: {content}
/// Assistant: {content}
/// Assistant:
/// </code>
/// one line per message, the role name capitalized ("system" → "System", any other role likewise),
/// ending with the cue "Assistant:" that the model continues. An encoder–decoder reads the whole
/// text as its source and generates the reply.
/// </summary>
public static class ChatTemplate
{
    /// <summary>The prompt of <paramref name="messages"/> (role, content) in the default template.</summary>
    public static string Format(IEnumerable<(string Role, string Content)> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var sb = new System.Text.StringBuilder();
        foreach (var (role, content) in messages)
        {
            sb.Append(RoleName(role)).Append(": ").Append(content).Append('\n');
        }
        return sb.Append("Assistant:").ToString();
    }

    static string RoleName(string role) =>
        string.IsNullOrEmpty(role) ? "User" : char.ToUpperInvariant(role[0]) + role[1..].ToLowerInvariant();
}
