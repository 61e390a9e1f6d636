using Encore.Formats.Tokenization;
using Encore.Generation.Jinja;

namespace Encore.Generation;

/// <summary>
/// Flattens a chat into the one prompt a model reads, the same way for the server and
/// <see cref="EncoreChatClient"/>. A checkpoint that ships a Hugging Face chat template
/// (<c>chat_template.jinja</c>, or <c>chat_template</c> in tokenizer_config.json: a string, or a list
/// of named templates of which "default" is used) gets it applied as transformers'
/// <c>apply_chat_template</c> does (<see cref="FromDirectory"/>): Jinja with trim_blocks and
/// lstrip_blocks, the variables <c>messages</c> (role and content of each), <c>add_generation_prompt</c>
/// (true), <c>bos_token</c> and <c>eos_token</c> (the checkpoint's, undefined when it has none),
/// <c>tools</c> and <c>documents</c> (none), and the global <c>raise_exception</c>. <c>strftime_now</c>
/// is not defined, so templates that probe it (Llama 3.2) print their own fixed date. The interpreter
/// (<see cref="JinjaTemplate"/>) covers the Jinja subset chat templates use; a construct outside it is
/// an error naming its line and column when the template is loaded.
/// <para>
/// A checkpoint without one (Encore's own checkpoints) gets the documented plain-text default,
/// <see cref="Default"/>:
/// <code>
/// System: {content}
/// User: {content}
/// Assistant: {content}
/// Assistant:
/// </code>
/// one line per message, the role name capitalized ("system" → "System", any other role likewise),
/// ending with the cue "Assistant:" that the model continues. An encoder–decoder reads the whole
/// text as its source and generates the reply.
/// </para>
/// </summary>
public sealed class ChatTemplate
{
    readonly JinjaTemplate? _jinja;

    ChatTemplate(JinjaTemplate? jinja, string? bosToken, string? eosToken, string origin)
    {
        _jinja = jinja;
        BosToken = bosToken;
        EosToken = eosToken;
        Origin = origin;
    }

    /// <summary>The plain-text "User:/Assistant:" template of checkpoints without their own.</summary>
    public static ChatTemplate Default { get; } = new(null, null, null, "the default template");

    /// <summary>True for <see cref="Default"/>.</summary>
    public bool IsDefault => _jinja is null;

    /// <summary>The Jinja source, or null for <see cref="Default"/>.</summary>
    public string? Source => _jinja?.Source;

    /// <summary>Where the template comes from (a file path, or "the default template"), named in errors.</summary>
    public string Origin { get; }

    /// <summary>The bos_token the template sees, or null (undefined in the template).</summary>
    public string? BosToken { get; }

    /// <summary>The eos_token the template sees, or null (undefined in the template).</summary>
    public string? EosToken { get; }

    /// <summary>
    /// True when the rendered prompt holds the special tokens the model expects (a Jinja template prints
    /// bos_token itself), so it is tokenized as it stands, as apply_chat_template(tokenize=True) does; false
    /// for <see cref="Default"/>, whose prompt is wrapped like any other (<see cref="Generator.EncodePrompt"/>).
    /// </summary>
    public bool RendersSpecialTokens => _jinja != null;

    /// <summary>
    /// Parses a Jinja chat template; <paramref name="origin"/> (a file name) is named in errors. A syntax
    /// error or an unsupported construct is a <see cref="ChatTemplateException"/> naming the line and column.
    /// </summary>
    public static ChatTemplate Parse(string source, string? bosToken = null, string? eosToken = null, string origin = "the chat template", JinjaLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        try
        {
            return new ChatTemplate(JinjaTemplate.Parse(source, limits), bosToken, eosToken, origin);
        }
        catch (JinjaException e)
        {
            throw new ChatTemplateException($"{origin}: the chat template cannot be read: {e.Message}", e);
        }
    }

    /// <summary>The chat template of checkpoint directory <paramref name="dir"/> (see <see cref="ChatTemplateFiles"/>), else <see cref="Default"/>.</summary>
    public static ChatTemplate FromDirectory(string dir, JinjaLimits? limits = null)
    {
        var found = ChatTemplateFiles.Read(dir);
        return found is null ? Default : Parse(found.Template, found.BosToken, found.EosToken, found.Path, limits);
    }

    /// <summary>The chat template <paramref name="tokenizer"/>'s checkpoint ships (<see cref="TextTokenizer.ChatTemplate"/>), else <see cref="Default"/>.</summary>
    public static ChatTemplate ForTokenizer(TextTokenizer? tokenizer, JinjaLimits? limits = null) =>
        tokenizer?.ChatTemplate is { } t ? Parse(t.Template, t.BosToken, t.EosToken, t.Path, limits) : Default;

    /// <summary>
    /// The template of <paramref name="path"/>, a Jinja file (bos_token and eos_token from
    /// <paramref name="tokenizerDir"/>'s tokenizer files when given), or <see cref="Default"/> for the word "default".
    /// </summary>
    public static ChatTemplate FromFile(string path, string? tokenizerDir = null, JinjaLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path == "default") return Default;
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such chat template file", path);
        var (bos, eos) = tokenizerDir is null ? (null, null) : ChatTemplateFiles.ReadSpecialTokens(tokenizerDir);
        return Parse(ChatTemplateFiles.ReadText(path), bos, eos, path, limits);
    }

    /// <summary>
    /// The prompt of <paramref name="messages"/> (role, content). With <paramref name="addGenerationPrompt"/>
    /// the template ends with the cue for the assistant's reply. A Jinja template that refuses the chat
    /// (<c>raise_exception</c>, e.g. Gemma's "System role not supported") or fails on it throws
    /// <see cref="ChatTemplateException"/> with the template's message.
    /// </summary>
    public string Apply(IEnumerable<(string Role, string Content)> messages, bool addGenerationPrompt = true)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (_jinja is null) return Format(messages);
        var list = messages.Select(m => (object?)new Dictionary<object, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList();
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = list,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["tools"] = null,
            ["documents"] = null,
        };
        if (BosToken != null) variables["bos_token"] = BosToken;
        if (EosToken != null) variables["eos_token"] = EosToken;
        try
        {
            return _jinja.Render(variables);
        }
        catch (JinjaRaisedException e)
        {
            throw new ChatTemplateException($"the chat template refused the conversation: {e.TemplateMessage}", e, e.TemplateMessage);
        }
        catch (JinjaException e)
        {
            throw new ChatTemplateException($"{Origin}: the chat template failed on this conversation: {e.Message}", e);
        }
    }

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

/// <summary>A chat template that cannot be read, or that refuses or fails on a conversation.</summary>
public sealed class ChatTemplateException(string message, Exception? inner = null, string? templateMessage = null) : Exception(message, inner)
{
    /// <summary>The message the template raised with raise_exception, or null when it failed otherwise.</summary>
    public string? TemplateMessage { get; } = templateMessage;
}
