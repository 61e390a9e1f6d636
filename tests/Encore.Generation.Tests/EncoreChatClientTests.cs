using Microsoft.Extensions.AI;

namespace Encore.Generation.Tests;

/// <summary>The IChatClient over a Generator, without a server.</summary>
public class EncoreChatClientTests
{
    static List<ChatMessage> Chat() => [new(ChatRole.System, "Be brief."), new(ChatRole.User, "the quick brown fox")];

    [Fact]
    public async Task ResponseIsTheTemplatedPromptsGeneration()
    {
        using var m = TinyModels.EncDec();
        var generator = new Generator(m, TinyModels.Tokenizer);
        IChatClient client = new EncoreChatClient(generator, "tiny");
        var response = await client.GetResponseAsync(Chat(), new ChatOptions { MaxOutputTokens = 10 });
        string prompt = ChatTemplate.Format([("system", "Be brief."), ("user", "the quick brown fox")]);
        Assert.Equal("System: Be brief.\nUser: the quick brown fox\nAssistant:", prompt);
        var expected = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 10 });
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(ChatRole.Assistant, response.Messages[0].Role);
        Assert.Equal(generator.EncodePrompt(prompt).Length, response.Usage!.InputTokenCount);
        Assert.Equal(expected.Tokens.Length, response.Usage.OutputTokenCount);
        Assert.Equal("tiny", response.ModelId);
        Assert.Equal("tiny", client.GetService<ChatClientMetadata>()!.DefaultModelId);
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(0.8f)]
    public async Task StreamingEqualsNonStreamingForTheSameSeed(float temperature)
    {
        using var m = TinyModels.Decoder();
        IChatClient client = new EncoreChatClient(new Generator(m, TinyModels.Tokenizer));
        var options = new ChatOptions { MaxOutputTokens = 16, Temperature = temperature, Seed = 77, TopP = 0.9f };
        var whole = await client.GetResponseAsync(Chat(), options);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(Chat(), options)) updates.Add(u);
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.True(updates.Count > 2);
        var usage = updates.SelectMany(u => u.Contents).OfType<UsageContent>().Single();
        Assert.Equal(whole.Usage!.OutputTokenCount, usage.Details.OutputTokenCount);
        Assert.Equal(whole.FinishReason, updates[^1].FinishReason);
        // The updates combine into the same response through the abstraction's own helper.
        Assert.Equal(whole.Text, updates.ToChatResponse().Text);
    }

    [Fact]
    public async Task StreamingReportsWhyItStopped()
    {
        using var m = TinyModels.EncDec();
        IChatClient client = new EncoreChatClient(new Generator(m, TinyModels.Tokenizer));
        var full = await client.GetResponseAsync(Chat(), new ChatOptions { MaxOutputTokens = 12 });
        Assert.True(full.Text.Length >= 4, $"'{full.Text}' is too short to cut");
        // A stop string from the middle of the text: the stream ends early, cut before it, and says "stop".
        var options = new ChatOptions { MaxOutputTokens = 12, StopSequences = [full.Text.Substring(full.Text.Length / 2, 2)] };
        var whole = await client.GetResponseAsync(Chat(), options);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(Chat(), options)) updates.Add(u);
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(ChatFinishReason.Stop, whole.FinishReason);
        Assert.Equal(ChatFinishReason.Stop, updates[^1].FinishReason);
        var length = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(Chat(), new ChatOptions { MaxOutputTokens = 3 })) length.Add(u);
        Assert.Equal((await client.GetResponseAsync(Chat(), new ChatOptions { MaxOutputTokens = 3 })).FinishReason, length[^1].FinishReason);
    }

    [Fact]
    public async Task BadOptionsThrowAndCancellationStops()
    {
        using var m = TinyModels.Decoder();
        IChatClient client = new EncoreChatClient(new Generator(m, TinyModels.Tokenizer));
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync(Chat(), new ChatOptions { TopP = 0 }));
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetResponseAsync(Chat(), new ChatOptions { MaxOutputTokens = 5 }, cts.Token));
    }
}
