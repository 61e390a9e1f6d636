using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats;
using Encore.Formats.Tokenization;
using Encore.Generation.Jinja;
using Microsoft.Extensions.AI;

namespace Encore.Generation.Tests;

/// <summary>
/// Chat templates against real Jinja2: Fixtures/chat_templates.json holds the chat templates of widely
/// used instruct models and small templates for each construct, rendered by Jinja2 in transformers'
/// environment (tools/reference/chat_templates.py); the interpreter must give the same text byte for byte.
/// </summary>
public class ChatTemplateTests
{
    static readonly Lazy<JsonDocument> s_fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "chat_templates.json"))));

    static JsonElement Fixture => s_fixture.Value.RootElement;

    public static TheoryData<string> ModelNames()
    {
        var data = new TheoryData<string>();
        foreach (var t in Fixture.GetProperty("templates").EnumerateArray()) data.Add(t.GetProperty("name").GetString()!);
        return data;
    }

    static List<(string Role, string Content)> Conversation(string name) =>
        Fixture.GetProperty("conversations").GetProperty(name).EnumerateArray()
            .Select(m => (m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList();

    [Theory]
    [MemberData(nameof(ModelNames))]
    public void ModelTemplatesRenderAsJinja2Does(string model)
    {
        var t = Fixture.GetProperty("templates").EnumerateArray().Single(x => x.GetProperty("name").GetString() == model);
        string? bos = t.GetProperty("bos_token").GetString(), eos = t.GetProperty("eos_token").GetString();
        var template = ChatTemplate.Parse(t.GetProperty("template").GetString()!, bos, eos, model);
        int checkedRenders = 0;
        foreach (var r in Fixture.GetProperty("renders").EnumerateArray().Where(r => r.GetProperty("template").GetString() == model))
        {
            string conversation = r.GetProperty("conversation").GetString()!;
            bool agp = r.GetProperty("add_generation_prompt").GetBoolean();
            var messages = Conversation(conversation);
            string what = $"{model}, {conversation}, add_generation_prompt={agp}";
            if (r.TryGetProperty("output", out var output))
            {
                Assert.True(output.GetString() == template.Apply(messages, agp), $"{what}: expected {JsonSerializer.Serialize(output.GetString())}, got {JsonSerializer.Serialize(template.Apply(messages, agp))}");
            }
            else
            {
                // A refusal (raise_exception) carries the template's message; Jinja2's other errors (a TypeError) are failures here too.
                var e = Assert.Throws<ChatTemplateException>(() => template.Apply(messages, agp));
                if (r.TryGetProperty("raised", out _))
                {
                    Assert.Equal(r.GetProperty("error").GetString(), e.TemplateMessage);
                    Assert.Contains(e.TemplateMessage!, e.Message);
                }
                else Assert.Null(e.TemplateMessage);
            }
            checkedRenders++;
        }
        Assert.Equal(Fixture.GetProperty("conversations").EnumerateObject().Count() * 2, checkedRenders);
    }

    public static TheoryData<int> ConstructIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Fixture.GetProperty("constructs").GetArrayLength(); i++) data.Add(i);
        return data;
    }

    [Theory]
    [MemberData(nameof(ConstructIndices))]
    public void ConstructsRenderAsJinja2Does(int index)
    {
        var c = Fixture.GetProperty("constructs")[index];
        string source = c.GetProperty("template").GetString()!;
        var variables = c.GetProperty("variables").EnumerateObject().ToDictionary(p => p.Name, p => JinjaValues.FromJson(p.Value));
        if (c.TryGetProperty("output", out var output))
        {
            string actual = JinjaTemplate.Parse(source).Render(variables);
            Assert.True(output.GetString() == actual, $"{source}: expected {JsonSerializer.Serialize(output.GetString())}, got {JsonSerializer.Serialize(actual)}");
            return;
        }
        var e = Assert.ThrowsAny<JinjaException>(() => JinjaTemplate.Parse(source).Render(variables));
        if (c.TryGetProperty("raised", out _)) Assert.Equal(c.GetProperty("error").GetString(), Assert.IsType<JinjaRaisedException>(e).TemplateMessage);
        else Assert.IsNotType<JinjaRaisedException>(e);
    }

    [Fact]
    public void TheDefaultTemplateIsThePlainTextOne()
    {
        (string, string)[] chat = [("system", "Be brief."), ("user", "hi"), ("assistant", "hello"), ("user", "bye")];
        Assert.Equal("System: Be brief.\nUser: hi\nAssistant: hello\nUser: bye\nAssistant:", ChatTemplate.Default.Apply(chat));
        Assert.Equal(ChatTemplate.Format(chat), ChatTemplate.Default.Apply(chat));
        Assert.True(ChatTemplate.Default.IsDefault);
        Assert.False(ChatTemplate.Default.RendersSpecialTokens);
    }

    static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "encore-chat-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    const string Template = "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content | trim }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";

    [Fact]
    public void ACheckpointsTokenizerConfigTemplateIsApplied()
    {
        string dir = TempDir();
        try
        {
            // bos_token as an AddedToken object, eos_token as a string: both forms are published.
            var config = new JsonObject
            {
                ["chat_template"] = Template,
                ["bos_token"] = new JsonObject { ["content"] = "<s>", ["special"] = true },
                ["eos_token"] = "</s>",
            };
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
            var template = ChatTemplate.FromDirectory(dir);
            Assert.False(template.IsDefault);
            Assert.Equal(Path.Combine(dir, "tokenizer_config.json"), template.Origin);
            Assert.Equal("<s>[system] Be brief.</s>\n[user] hi</s>\n[assistant]", template.Apply([("system", "Be brief."), ("user", "  hi ")]));
            Assert.Equal("<s>[user] hi</s>\n", template.Apply([("user", "hi")], addGenerationPrompt: false));

            // The list form: the template named "default" is the one used.
            config["chat_template"] = new JsonArray(
                new JsonObject { ["name"] = "tool_use", ["template"] = "tools" },
                new JsonObject { ["name"] = "default", ["template"] = "{{ messages | length }} {{ eos_token }}" });
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
            Assert.Equal("2 </s>", ChatTemplate.FromDirectory(dir).Apply([("user", "a"), ("user", "b")]));

            config["chat_template"] = new JsonArray(new JsonObject { ["name"] = "tool_use", ["template"] = "tools" });
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
            var e = Assert.Throws<CheckpointFormatException>(() => ChatTemplate.FromDirectory(dir));
            Assert.Contains("tokenizer_config.json", e.Message);
            Assert.Contains("'default'", e.Message);

            // chat_template.jinja, the file newer transformers writes, takes precedence.
            File.WriteAllText(Path.Combine(dir, "chat_template.jinja"), "jinja file {{ bos_token }}\n");
            Assert.Equal("jinja file <s>", ChatTemplate.FromDirectory(dir).Apply([("user", "x")]));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ACheckpointWithoutATemplateGetsTheDefault()
    {
        string dir = TempDir();
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"eos_token": "</s>"}""");
            Assert.Same(ChatTemplate.Default, ChatTemplate.FromDirectory(dir));
            Assert.Same(ChatTemplate.Default, ChatTemplate.FromFile("default"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ATemplateOutsideTheSupportedJinjaFailsAtLoadNamingTheFileAndLine()
    {
        string dir = TempDir();
        try
        {
            var config = new JsonObject { ["chat_template"] = "{% for m in messages %}\n  {{ m.content | wordwrap(5) }}\n{% endfor %}" };
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
            var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.FromDirectory(dir));
            Assert.Contains("tokenizer_config.json", e.Message);
            Assert.Contains("line 2, column 18", e.Message);
            Assert.Contains("unknown filter 'wordwrap'", e.Message);
            config["chat_template"] = 42;
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
            Assert.Contains("chat_template must be a string", Assert.Throws<CheckpointFormatException>(() => ChatTemplate.FromDirectory(dir)).Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void TheTemplateFileOverrideReadsTheTokenizersSpecialTokens()
    {
        string dir = TempDir();
        try
        {
            File.WriteAllText(Path.Combine(dir, "special_tokens_map.json"), """{"bos_token": "<bos>", "eos_token": {"content": "<eos>"}}""");
            string file = Path.Combine(dir, "t.jinja");
            File.WriteAllText(file, "\uFEFF{{ bos_token }}{{ messages[0].content }}{{ eos_token }}");
            var template = ChatTemplate.FromFile(file, dir);
            Assert.Equal("<bos>x<eos>", template.Apply([("user", "x")]));
            Assert.Equal("x", ChatTemplate.FromFile(file).Apply([("user", "x")]));
            Assert.Throws<FileNotFoundException>(() => ChatTemplate.FromFile(Path.Combine(dir, "missing.jinja")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void TheTokenizerCarriesItsCheckpointsTemplateToTheChatClient()
    {
        string dir = TempDir();
        try
        {
            TinyModels.Tokenizer.Save(dir);
            var path = Path.Combine(dir, "tokenizer_config.json");
            var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            config["chat_template"] = Template;
            File.WriteAllText(path, config.ToJsonString());
            var tokenizer = TokenizerLoader.FromDirectory(dir);
            Assert.Equal(Template, tokenizer.ChatTemplate!.Template);

            using var m = TinyModels.Decoder();
            var generator = new Generator(m, tokenizer);
            var client = new EncoreChatClient(generator, "tiny");
            Assert.Equal(Template, client.ChatTemplate.Source);
            var prompt = client.ChatTemplate.Apply([("user", "the quick brown fox")]);
            Assert.Equal("<s>[user] the quick brown fox</s>\n[assistant]", prompt);
            // The template printed BOS: the ids start with it once, as the text tokenizes.
            var ids = generator.EncodeChatPrompt(prompt, client.ChatTemplate);
            Assert.Equal(tokenizer.Encode(prompt, addSpecialTokens: false), ids);
            Assert.Equal(tokenizer.BosId, ids[0]);
            Assert.NotEqual(tokenizer.BosId, ids[1]);
            Assert.Equal(generator.EncodePrompt("x"), generator.EncodeChatPrompt("x", ChatTemplate.Default));
            // A template that prints no BOS gets none (Qwen's ChatML), where a plain prompt gets one.
            var chatml = ChatTemplate.Parse("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}");
            string text = chatml.Apply([("user", "the fox")]);
            Assert.Equal(tokenizer.Encode(text, addSpecialTokens: false), generator.EncodeChatPrompt(text, chatml));
            Assert.NotEqual(tokenizer.BosId, generator.EncodeChatPrompt(text, chatml)[0]);
            Assert.Equal(tokenizer.BosId, generator.EncodePrompt(text)[0]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task TheChatClientGeneratesFromTheTemplatedPrompt()
    {
        using var m = TinyModels.Decoder();
        var generator = new Generator(m, TinyModels.Tokenizer);
        var template = ChatTemplate.Parse(Template, "<s>", "</s>");
        IChatClient client = new EncoreChatClient(generator, "tiny", chatTemplate: template);
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "the lazy dog")], new ChatOptions { MaxOutputTokens = 8 });
        var ids = generator.EncodeChatPrompt("<s>[user] the lazy dog</s>\n[assistant]", template);
        var expected = generator.GenerateIds([ids], new GenerationOptions { MaxNewTokens = 8 })[0];
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(ids.Length, response.Usage!.InputTokenCount);

        // Gemma's refusal reaches the caller with the template's message.
        var gemma = ChatTemplate.Parse("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok");
        IChatClient strict = new EncoreChatClient(generator, chatTemplate: gemma);
        var e = await Assert.ThrowsAsync<ChatTemplateException>(() => strict.GetResponseAsync([new ChatMessage(ChatRole.System, "s"), new ChatMessage(ChatRole.User, "u")]));
        Assert.Equal("System role not supported", e.TemplateMessage);
    }
}
