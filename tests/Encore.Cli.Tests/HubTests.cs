using System.Text.Json;
using Encore.Testing;
using Encore.Training.Data;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>--model org/name</c> end to end: the real <c>encore</c> program, its HF_* variables pointing at a fake
/// hub on 127.0.0.1 and a temporary cache (set for the child process only), downloads a tiny checkpoint and
/// generates exactly what the same checkpoint generates from a local folder; offline it reads the cache, and
/// a model the hub or the cache lacks is one line naming it.
/// </summary>
public sealed class HubTests : IAsyncLifetime
{
    const string Repo = "encore-test/tiny-encdec";
    readonly string _dir = Directory.CreateTempSubdirectory("encore-hub-cli-").FullName;
    FakeHub _hub = null!;
    string _local = null!;
    string Cache => Path.Combine(_dir, "cache");

    public async Task InitializeAsync()
    {
        _hub = await FakeHub.StartAsync();
        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        _local = TestCheckpoints.Save(Path.Combine(_dir, "local"), "tiny-encdec", BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0));
        _hub.Publish(Repo, Directory.GetFiles(_local).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes));
    }

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    Dictionary<string, string?> Environment(bool offline = false) => new()
    {
        ["HF_ENDPOINT"] = _hub.Endpoint, ["HF_HUB_CACHE"] = Cache, ["HF_HOME"] = Path.Combine(_dir, "home"),
        ["HF_HUB_OFFLINE"] = offline ? "1" : null, ["TRANSFORMERS_OFFLINE"] = null, ["HF_TOKEN"] = null, ["HUGGING_FACE_HUB_TOKEN"] = null,
        ["HF_TOKEN_PATH"] = null, ["HUGGINGFACE_HUB_CACHE"] = null,
    };

    static string[] Generate(string model) =>
        ["generate", "-m", model, "--prompt", "package 3 parses fonts", "--json", "--max-new-tokens", "4", "--min-new-tokens", "4", "--threads", "1"];

    static string Tokens(CliRunner.Result r) => JsonDocument.Parse(r.Stdout).RootElement.GetProperty("tokens").ToString();

    [Fact]
    public void GenerateDownloadsAHubModelThenRunsFromTheCacheOffline()
    {
        var local = CliRunner.Run(Generate(_local));
        Assert.True(local.ExitCode == 0, local.Stderr);

        var hub = CliRunner.Run(Generate(Repo), environment: Environment());
        Assert.True(hub.ExitCode == 0, hub.Stderr);
        Assert.Equal("", hub.Stderr.Trim());
        Assert.Equal(Tokens(local), Tokens(hub));
        Assert.True(File.Exists(Path.Combine(Cache, "models--encore-test--tiny-encdec", "refs", "main")));
        Assert.Contains(_hub.Requests, r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal));

        int before = _hub.Requests.Count;
        var offline = CliRunner.Run(Generate(Repo), environment: Environment(offline: true));
        Assert.True(offline.ExitCode == 0, offline.Stderr);
        Assert.Equal(Tokens(local), Tokens(offline));
        Assert.Equal(before, _hub.Requests.Count);
    }

    [Fact]
    public void EmbedReadsASentenceTransformersPipelineAndItsModuleFolderFromTheHub()
    {
        var st = Path.Combine(_dir, "st");
        Directory.CreateDirectory(Path.Combine(st, "1_Pooling"));
        foreach (var f in Directory.GetFiles(_local)) File.Copy(f, Path.Combine(st, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(st, "modules.json"), """
            [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
             {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
            """);
        // Max pooling, not the default mean: a pipeline read without its Pooling folder would fail or differ.
        File.WriteAllText(Path.Combine(st, "1_Pooling", "config.json"), """{"pooling_mode_mean_tokens": false, "pooling_mode_max_tokens": true}""");
        _hub.Publish("encore-test/st", Directory.GetFiles(st, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(st, f).Replace(Path.DirectorySeparatorChar, '/'), File.ReadAllBytes));

        string[] Embed(string model, string output) => ["embed", "-m", model, "--text", "package 3 parses fonts", "--text", "parser", "--out", output, "--json", "--threads", "1"];
        var local = CliRunner.Run(Embed(st, Path.Combine(_dir, "local.jsonl")));
        Assert.True(local.ExitCode == 0, local.Stderr);
        var hub = CliRunner.Run(Embed("encore-test/st", Path.Combine(_dir, "hub.jsonl")), environment: Environment());
        Assert.True(hub.ExitCode == 0, hub.Stderr);
        var written = JsonDocument.Parse(hub.Stdout).RootElement;
        Assert.Equal(("max", true), (written.GetProperty("pooling").GetString(), written.GetProperty("normalize").GetBoolean()));
        Assert.Equal(File.ReadAllText(Path.Combine(_dir, "local.jsonl")), File.ReadAllText(Path.Combine(_dir, "hub.jsonl")));
    }

    [Fact]
    public void AModelTheCacheOrTheHubLacksIsOneLineNamingIt()
    {
        var offline = CliRunner.Run(Generate("encore-test/other@v2"), environment: Environment(offline: true));
        Assert.Equal(1, offline.ExitCode);
        Assert.Equal("encore: encore-test/other@v2: no such directory; as a Hugging Face model: encore-test/other@v2: revision 'v2' is not in the hub cache and HF_HUB_OFFLINE is set " +
            $"(looked in {Path.Combine(Cache, "models--encore-test--other")} for refs/v2 and its snapshot); unset HF_HUB_OFFLINE to download it", offline.Stderr.Trim());

        var missing = CliRunner.Run(Generate("encore-test/missing"), environment: Environment());
        Assert.Equal(1, missing.ExitCode);
        Assert.StartsWith($"encore: encore-test/missing: no such directory; as a Hugging Face model: encore-test/missing@main: repository not found at {_hub.Endpoint} (404", missing.Stderr.Trim());
        Assert.DoesNotContain("\n", missing.Stderr.Trim());

        var bad = CliRunner.Run(Generate("encore-test/na me"), environment: Environment());
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("encore: encore-test/na me: no such directory, and 'encore-test/na me' is not a Hugging Face model id", bad.Stderr);
    }
}
