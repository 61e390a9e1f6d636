// Microsoft.Extensions.AI's IChatClient over a Generator, for .NET applications that want Encore
// models behind the common chat abstraction without running the HTTP server.
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Encore.Generation;

/// <summary>
/// An <see cref="IChatClient"/> that generates in process. Messages are flattened by the
/// <see cref="ChatTemplate"/> given, else the one the tokenizer's checkpoint ships
/// (<see cref="ChatTemplate.ForTokenizer"/>), else the plain-text default; a template that refuses a
/// conversation (raise_exception) throws <see cref="ChatTemplateException"/>. <see cref="ChatOptions"/> map onto <see cref="GenerationOptions"/>:
/// MaxOutputTokens → max_new_tokens, Temperature (sampling when &gt; 0), TopP, TopK, Seed,
/// StopSequences; options left null keep <see cref="DefaultOptions"/>' values (greedy decoding of up
/// to 64 tokens unless given others). Safe to call concurrently: each call decodes its own session.
/// </summary>
public sealed class EncoreChatClient : IChatClient
{
    readonly Generator _generator;
    readonly ChatClientMetadata _metadata;

    /// <summary>
    /// A client for <paramref name="generator"/> (which needs a tokenizer), reporting <paramref name="modelId"/>;
    /// <paramref name="chatTemplate"/> null: the tokenizer's checkpoint template, else the default.
    /// </summary>
    public EncoreChatClient(Generator generator, string modelId = "encore", GenerationOptions? defaultOptions = null, ChatTemplate? chatTemplate = null)
    {
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        if (generator.Tokenizer is null) throw new ArgumentException("a chat client needs a generator with a tokenizer");
        ChatTemplate = chatTemplate ?? ChatTemplate.ForTokenizer(generator.Tokenizer);
        ModelId = modelId;
        DefaultOptions = (defaultOptions ?? new GenerationOptions()).Validate();
        _metadata = new ChatClientMetadata("encore", null, modelId);
    }

    /// <summary>The template that flattens a conversation into the prompt.</summary>
    public ChatTemplate ChatTemplate { get; }

    /// <summary>The model name reported in responses.</summary>
    public string ModelId { get; }

    /// <summary>Options used where a request's <see cref="ChatOptions"/> say nothing.</summary>
    public GenerationOptions DefaultOptions { get; }

    /// <summary>The generation options of one request.</summary>
    public GenerationOptions ToGenerationOptions(ChatOptions? options)
    {
        var o = DefaultOptions;
        if (options is null) return o;
        if (options.MaxOutputTokens is { } max) o = o with { MaxNewTokens = max };
        if (options.Temperature is { } t) o = o with { Temperature = t, DoSample = t > 0 };
        if (options.TopP is { } p) o = o with { TopP = p };
        if (options.TopK is { } k) o = o with { TopK = k };
        if (options.Seed is { } seed) o = o with { Seed = unchecked((ulong)seed) };
        if (options.StopSequences is { Count: > 0 } stops) o = o with { StopStrings = [.. stops] };
        return o.Validate();
    }

    int[] Prompt(IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return _generator.EncodeChatPrompt(ChatTemplate.Apply(messages.Select(m => (m.Role.Value, m.Text))), ChatTemplate);
    }

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var prompt = Prompt(messages);
        var o = ToGenerationOptions(options);
        // Decoding is CPU-bound: run it off the caller's context.
        var result = await Task.Run(() => _generator.GenerateIds([prompt], o, cancellationToken)[0], cancellationToken).ConfigureAwait(false);
        var seq = result.Sequences[0];
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, seq.Text))
        {
            ModelId = ModelId,
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = seq.Finish == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop,
            Usage = Usage(prompt.Length, seq.Tokens.Length),
        };
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var prompt = Prompt(messages);
        var o = ToGenerationOptions(options);
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var tokens = new SequenceState([], o.MaxNewTokens);
        await foreach (var chunk in _generator.StreamIdsAsync(prompt, o, cancellationToken).ConfigureAwait(false))
        {
            if (chunk.Token >= 0) tokens.Append(chunk.Token);
            if (chunk.Text.Length == 0) continue;
            yield return new ChatResponseUpdate(ChatRole.Assistant, chunk.Text) { ModelId = ModelId, ResponseId = id, MessageId = id };
        }
        // The stream does not say why it ended: the stop criteria say it from the tokens, as they did while decoding.
        new StopCriteria(_generator.EosIds(o), o.StopStrings, o.MaxNewTokens, _generator.Tokenizer, o.SkipSpecialTokens).Update(tokens);
        var finish = tokens.Finish == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop;
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(Usage(prompt.Length, tokens.GeneratedCount))])
        {
            ModelId = ModelId,
            ResponseId = id,
            MessageId = id,
            FinishReason = finish,
        };
    }

    static UsageDetails Usage(int prompt, int completion) => new()
    {
        InputTokenCount = prompt,
        OutputTokenCount = completion,
        TotalTokenCount = prompt + completion,
    };

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey != null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        if (serviceType == typeof(Generator)) return _generator;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Nothing to free: the generator and its model belong to the caller.</summary>
    public void Dispose() { }
}
