using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Encore.Generation;
using OpenAI.Chat;

namespace Encore.Server.Tests;

/// <summary>/v1/chat/completions flattens messages with the checkpoint's own chat template when it ships one.</summary>
public class ChatTemplateServerTests
{
    // ChatML-like, with the BOS the template prints itself and a refusal like Gemma's.
    const string Template =
        "{{ bos_token }}{% if messages[0]['role'] == 'system' and messages[0]['content'] == 'forbidden' %}{{ raise_exception('System role not supported') }}{% endif %}"
        + "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] | trim + '\\n' }}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

    static void AddTemplate(string dir)
    {
        string path = Path.Combine(dir, "tokenizer_config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config["chat_template"] = Template;
        File.WriteAllText(path, config.ToJsonString());
    }

    [Theory]
    [InlineData("tiny-decoder")]
    [InlineData("tiny-encdec")]
    public async Task TheCheckpointsTemplateIsApplied(string preset)
    {
        await using var s = await TinyServer.StartAsync(preset, new ServerOptions { MaxBatch = 2, ContextLength = 128 }, AddTemplate);
        var result = (await s.Chat().CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("  the quick brown fox ")],
            new ChatCompletionOptions { MaxOutputTokenCount = 10, Temperature = 0f })).Value;

        // The prompt written out by hand from the template: bos_token from the saved tokenizer_config.json, content trimmed.
        const string prompt = "<s><|system|>Be brief.\n<|user|>the quick brown fox\n<|assistant|>";
        var template = ChatTemplate.ForTokenizer(s.Tokenizer);
        Assert.Equal(prompt, template.Apply([("system", "Be brief."), ("user", "  the quick brown fox ")]));
        var generator = new Generator(s.Model, s.Tokenizer);
        var ids = generator.EncodeChatPrompt(prompt, template);
        // A decoder-only prompt starts with the one BOS the template printed; an encoder–decoder source ends with EOS.
        if (preset == "tiny-decoder") Assert.Equal(s.Tokenizer.Encode(prompt, addSpecialTokens: false), ids);
        else Assert.Equal(s.Tokenizer.EosId, ids[^1]);
        var expected = generator.GenerateIds([ids], new GenerationOptions { MaxNewTokens = 10 })[0];
        Assert.Equal(expected.Text, result.Content[0].Text);
        Assert.Equal(ids.Length, result.Usage.InputTokenCount);
        // The default template's prompt would be another one.
        Assert.NotEqual(generator.EncodePrompt(ChatTemplate.Format([("system", "Be brief."), ("user", "  the quick brown fox ")])).Length, ids.Length);
    }

    [Fact]
    public async Task ARefusalOfTheTemplateIsA400WithItsMessage()
    {
        await using var s = await TinyServer.StartAsync("tiny-encdec", new ServerOptions { MaxBatch = 2, ContextLength = 128 }, AddTemplate);
        using var body = new StringContent("""{"messages": [{"role": "system", "content": "forbidden"}, {"role": "user", "content": "hi"}], "max_tokens": 4}""", Encoding.UTF8, "application/json");
        var r = await s.Http.PostAsync("v1/chat/completions", body);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        var error = JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!;
        Assert.Contains("System role not supported", (string)error["message"]!);
        Assert.Equal("messages", (string?)error["param"]);
        // Completions are not templated.
        using var completion = new StringContent("""{"prompt": "forbidden", "max_tokens": 2}""", Encoding.UTF8, "application/json");
        Assert.Equal(HttpStatusCode.OK, (await s.Http.PostAsync("v1/completions", completion)).StatusCode);
    }

    [Fact]
    public async Task ServerOptionsOverrideTheCheckpointsTemplate()
    {
        await using var s = await TinyServer.StartAsync("tiny-encdec", new ServerOptions { MaxBatch = 2, ContextLength = 128, ChatTemplate = ChatTemplate.Default }, AddTemplate);
        var result = (await s.Chat().CompleteChatAsync([new UserChatMessage("hello there")], new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0f })).Value;
        var generator = new Generator(s.Model, s.Tokenizer);
        var expected = generator.Generate("User: hello there\nAssistant:", new GenerationOptions { MaxNewTokens = 8 });
        Assert.Equal(expected.Text, result.Content[0].Text);
    }

    [Fact]
    public async Task ATemplateOutsideTheSupportedJinjaFailsTheStartNamingItsLine()
    {
        var e = await Assert.ThrowsAsync<ChatTemplateException>(() => TinyServer.StartAsync("tiny-encdec", new ServerOptions { MaxBatch = 2, ContextLength = 128 }, dir =>
        {
            string path = Path.Combine(dir, "tokenizer_config.json");
            var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            config["chat_template"] = "{% for m in messages %}\n{% macro f() %}{% endmacro %}{% endfor %}";
            File.WriteAllText(path, config.ToJsonString());
        }));
        Assert.Contains("tokenizer_config.json", e.Message);
        Assert.Contains("line 2, column 4: unknown tag 'macro'", e.Message);
    }
}
