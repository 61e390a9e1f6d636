using System.Security.Cryptography;
using System.Text;
using Encore.Formats.Checkpoints;
using Encore.Formats.Hub;
using Encore.Models;
using Encore.Testing;

namespace Encore.Formats.Tests.Hub;

/// <summary>
/// Hub models against a fake hub on 127.0.0.1 and a cache in a temporary folder: the layout
/// huggingface_hub writes (refs, snapshots as symlinks into blobs), downloads, resumes, pinning, and
/// every failure as a message naming the repository and file with nothing half-written in snapshots/.
/// </summary>
public sealed class HubTests : IAsyncLifetime
{
    const string Repo = "encore-test/tiny-encdec";
    readonly string _dir = Directory.CreateTempSubdirectory("encore-hub-").FullName;
    FakeHub _hub = null!;
    string Cache => Path.Combine(_dir, "hub");
    string RepoFolder => Path.Combine(Cache, "models--encore-test--tiny-encdec");

    public async Task InitializeAsync() => _hub = await FakeHub.StartAsync();

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    HubOptions Options(int attempts = 3) => new() { Endpoint = _hub.Endpoint, CacheDirectory = Cache, Attempts = attempts, Timeout = TimeSpan.FromSeconds(20) };

    static string Resolve(string spec, HubOptions options)
    {
        using var client = new HubClient(options);
        return client.Resolve(HubModelId.Parse(spec));
    }

    /// <summary>A tiny encoder–decoder checkpoint's files, with files Encore must not fetch beside them.</summary>
    Dictionary<string, byte[]> TinyCheckpoint()
    {
        var dir = Path.Combine(_dir, "source");
        using (var model = LanguageModel.Create(Presets.Get("tiny-encdec"), seed: 5)) Checkpoint.Save(model, dir);
        var files = Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);
        files["README.md"] = Encoding.UTF8.GetBytes("# tiny\n");
        files["pytorch_model.bin"] = new byte[64];
        files["onnx/model.onnx"] = new byte[32];
        return files;
    }

    static string Sha256(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    [Theory]
    [InlineData("google/t5-small", "google/t5-small", "main")]
    [InlineData("org/name@v1.0", "org/name", "v1.0")]
    [InlineData("org/name@refs/pr/3", "org/name", "refs/pr/3")]
    [InlineData("Org_1/a.b-c@0123456789abcdef0123456789abcdef01234567", "Org_1/a.b-c", "0123456789abcdef0123456789abcdef01234567")]
    public void IdsParseIntoRepositoryAndRevision(string spec, string repo, string revision)
    {
        var id = HubModelId.Parse(spec);
        Assert.Equal(repo, id.RepoId);
        Assert.Equal(revision, id.Revision);
        Assert.Equal(revision.Length == 40, id.RevisionIsCommit);
    }

    [Theory]
    [InlineData("../name", "'..'")]
    [InlineData("org/..", "'..'")]
    [InlineData("org/na..me", "'..'")]
    [InlineData("/abs/path", "absolute path")]
    [InlineData("org/na me", "holds ' '")]
    [InlineData("org/námé", "holds 'á'")]
    [InlineData("org/a--b", "'--'")]
    [InlineData("name", "no namespace")]
    [InlineData("a/b/c", "more than one '/'")]
    [InlineData("org/-name", "start and end")]
    [InlineData("org/name@", "empty revision")]
    [InlineData("org/name@../../x", "not a valid git ref")]
    [InlineData("org/name@a b", "holds ' '")]
    public void BadIdsAreRefusedNamingTheRule(string spec, string why)
    {
        var e = Assert.Throws<ArgumentException>(() => HubModelId.Parse(spec));
        Assert.Contains($"'{spec}'", e.Message);
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void EnvironmentGivesHuggingFaceHubDefaults()
    {
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var none = HubOptions.FromEnvironment(_ => null);
        Assert.Equal("https://huggingface.co", none.Endpoint);
        Assert.Equal(Path.Combine(home, ".cache", "huggingface", "hub"), none.CacheDirectory);
        Assert.False(none.Offline);

        var hfHome = Path.Combine(_dir, "hf-home");
        Directory.CreateDirectory(hfHome);
        File.WriteAllText(Path.Combine(hfHome, "token"), "hf_fromfile\n");
        var env = new Dictionary<string, string> { ["HF_HOME"] = hfHome, ["HF_HUB_OFFLINE"] = "yes", ["HF_ENDPOINT"] = "http://mirror.example/" };
        var o = HubOptions.FromEnvironment(k => env.GetValueOrDefault(k));
        Assert.Equal(Path.Combine(hfHome, "hub"), o.CacheDirectory);
        Assert.Equal("hf_fromfile", o.Token);
        Assert.True(o.Offline);
        Assert.Equal("http://mirror.example", o.Endpoint);

        env["HF_HUB_CACHE"] = "/elsewhere/hub";
        env["HF_TOKEN"] = "hf_env";
        env["HF_HUB_OFFLINE"] = "0";
        o = HubOptions.FromEnvironment(k => env.GetValueOrDefault(k));
        Assert.Equal("/elsewhere/hub", o.CacheDirectory);
        Assert.Equal("hf_env", o.Token);
        Assert.False(o.Offline);

        env["HF_ENDPOINT"] = "ftp://x";
        Assert.Contains("HF_ENDPOINT", Assert.Throws<ArgumentException>(() => HubOptions.FromEnvironment(k => env.GetValueOrDefault(k))).Message);
    }

    /// <summary>A cache laid out by hand as huggingface_hub writes it: refs/main, blobs by hash, snapshot symlinks (and one plain file).</summary>
    string BuildCache(out string commit, out byte[] config)
    {
        commit = "5f3c0c9a3b7f0e1d2c4b6a8e9f0a1b2c3d4e5f60";
        config = Encoding.UTF8.GetBytes("{\"model_type\": \"t5\"}");
        var blobs = Path.Combine(RepoFolder, "blobs");
        var snapshot = Path.Combine(RepoFolder, "snapshots", commit);
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(Path.Combine(snapshot, "1_Pooling"));
        Directory.CreateDirectory(Path.Combine(RepoFolder, "refs"));
        File.WriteAllText(Path.Combine(RepoFolder, "refs", "main"), commit);
        string hash = FakeHub.GitBlobHash(config);
        File.WriteAllBytes(Path.Combine(blobs, hash), config);
        File.CreateSymbolicLink(Path.Combine(snapshot, "config.json"), $"../../blobs/{hash}");
        var pooling = Encoding.UTF8.GetBytes("{\"pooling_mode_mean_tokens\": true}");
        File.WriteAllBytes(Path.Combine(blobs, FakeHub.GitBlobHash(pooling)), pooling);
        File.CreateSymbolicLink(Path.Combine(snapshot, "1_Pooling", "config.json"), $"../../../blobs/{FakeHub.GitBlobHash(pooling)}");
        File.WriteAllText(Path.Combine(snapshot, "tokenizer_config.json"), "{}");
        return snapshot;
    }

    [Fact]
    public void OfflineResolvesFromAPrebuiltCacheByBranchAndByCommit()
    {
        var snapshot = BuildCache(out var commit, out var config);
        var offline = Options() with { Offline = true };
        Assert.Equal(snapshot, Resolve(Repo, offline));
        Assert.Equal(snapshot, Resolve($"{Repo}@{commit}", offline));
        Assert.Equal(config, File.ReadAllBytes(Path.Combine(snapshot, "config.json")));
        Assert.Equal("{\"pooling_mode_mean_tokens\": true}", File.ReadAllText(Path.Combine(snapshot, "1_Pooling", "config.json")));
        Assert.Empty(_hub.Requests);

        // A branch never fetched is not there, and the message says where it looked.
        var e = Assert.Throws<HubException>(() => Resolve($"{Repo}@dev", offline));
        Assert.Contains($"{Repo}@dev", e.Message);
        Assert.Contains("revision 'dev'", e.Message);
        Assert.Contains("HF_HUB_OFFLINE", e.Message);
        Assert.Contains(RepoFolder, e.Message);
        Assert.Contains("refs/dev", e.Message);
    }

    [Fact]
    public void AnUnreachableHubFallsBackToTheCacheOrSaysWhereItLooked()
    {
        int port;
        using (var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0)) { l.Start(); port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port; }
        var down = Options() with { Endpoint = $"http://127.0.0.1:{port}" };
        var e = Assert.Throws<HubException>(() => Resolve(Repo, down));
        Assert.True(e.Unreachable);
        Assert.Contains($"{Repo}@main", e.Message);
        Assert.Contains("cannot reach", e.Message);
        Assert.Contains(RepoFolder, e.Message);

        var snapshot = BuildCache(out _, out _);
        var warnings = new List<string>();
        Assert.Equal(snapshot, Resolve(Repo, down with { Warning = warnings.Add }));
        Assert.Contains(snapshot, Assert.Single(warnings));
    }

    [Fact]
    public void DownloadsOnlyWhatEncoreReadsIntoTheHuggingFaceLayoutAndLoads()
    {
        var files = TinyCheckpoint();
        var commit = _hub.Publish(Repo, files);
        var progress = new List<HubDownloadProgress>();
        var snapshot = Resolve(Repo, Options() with { Progress = new SyncProgress(progress.Add) });

        Assert.Equal(Path.Combine(RepoFolder, "snapshots", commit), snapshot);
        Assert.Equal(commit, File.ReadAllText(Path.Combine(RepoFolder, "refs", "main")));
        Assert.Equal(new[] { "config.json", "generation_config.json", "model.safetensors" }.Where(files.ContainsKey).Order(),
            Directory.GetFiles(snapshot).Select(Path.GetFileName).Order());
        // LFS files are named by their sha256, others by their git blob hash; snapshot entries are relative symlinks.
        var weights = new FileInfo(Path.Combine(snapshot, "model.safetensors"));
        Assert.Equal($"../../blobs/{Sha256(files["model.safetensors"])}", weights.LinkTarget);
        Assert.Equal($"../../blobs/{FakeHub.GitBlobHash(files["config.json"])}", new FileInfo(Path.Combine(snapshot, "config.json")).LinkTarget);
        foreach (var name in Directory.GetFiles(snapshot).Select(Path.GetFileName))
            Assert.Equal(files[name!], File.ReadAllBytes(Path.Combine(snapshot, name!)));
        Assert.Empty(Directory.GetFiles(Path.Combine(RepoFolder, "blobs"), "*.incomplete"));
        Assert.DoesNotContain(_hub.Requests, r => r.Path.Contains("pytorch_model.bin") || r.Path.Contains("README") || r.Path.Contains("onnx"));
        var last = progress.Last(p => p.File == "model.safetensors");
        Assert.True(last.Done);
        Assert.Equal(files["model.safetensors"].Length, last.BytesDone);

        using var original = LanguageModel.Create(Presets.Get("tiny-encdec"), seed: 5);
        using var loaded = Checkpoint.Load(snapshot, new CheckpointLoadOptions { MapWeights = true });
        foreach (var p in original.Parameters.All)
            Assert.Equal(p.Value.ToFloatArray(), loaded.Parameters[p.Name].Value.ToFloatArray());

        // A second resolve asks for the revision's commit and fetches nothing.
        int before = _hub.Requests.Count;
        Assert.Equal(snapshot, Resolve(Repo, Options()));
        Assert.All(_hub.Requests.Skip(before), r => Assert.StartsWith("/api/models/", r.Path));
    }

    [Fact]
    public void ShardedWeightsAndSentenceTransformersModulesAreFetchedFromTheirIndexAndPipeline()
    {
        var shard1 = RandomBytes(300, 1);
        var shard2 = RandomBytes(200, 2);
        var index = "{\"metadata\": {}, \"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00002-of-00002.safetensors\", \"c\": \"model-00001-of-00002.safetensors\"}}";
        var modules = "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"}, {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"}]";
        var commit = _hub.Publish(Repo, new Dictionary<string, byte[]>
        {
            ["config.json"] = "{}"u8.ToArray(),
            ["model.safetensors.index.json"] = Encoding.UTF8.GetBytes(index),
            ["model-00001-of-00002.safetensors"] = shard1,
            ["model-00002-of-00002.safetensors"] = shard2,
            ["model-00003-of-00003.safetensors"] = RandomBytes(10, 3),
            ["modules.json"] = Encoding.UTF8.GetBytes(modules),
            ["1_Pooling/config.json"] = "{\"pooling_mode_mean_tokens\": true}"u8.ToArray(),
            ["2_Dense/config.json"] = "{}"u8.ToArray(),
        });
        var snapshot = Resolve(Repo, Options());
        Assert.Equal(shard1, File.ReadAllBytes(Path.Combine(snapshot, "model-00001-of-00002.safetensors")));
        Assert.Equal(shard2, File.ReadAllBytes(Path.Combine(snapshot, "model-00002-of-00002.safetensors")));
        Assert.False(File.Exists(Path.Combine(snapshot, "model-00003-of-00003.safetensors")));
        Assert.Equal($"../../../blobs/{FakeHub.GitBlobHash("{\"pooling_mode_mean_tokens\": true}"u8.ToArray())}",
            new FileInfo(Path.Combine(snapshot, "1_Pooling", "config.json")).LinkTarget);
        Assert.False(Directory.Exists(Path.Combine(snapshot, "2_Dense")));
        Assert.Equal(Path.Combine(RepoFolder, "snapshots", commit), snapshot);
    }

    static byte[] RandomBytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Fact]
    public void APartialDownloadResumesWithARangeRequest()
    {
        var files = TinyCheckpoint();
        var commit = _hub.Publish(Repo, files);
        var weights = files["model.safetensors"];
        var blob = Path.Combine(RepoFolder, "blobs", Sha256(weights));
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        int held = weights.Length / 3;
        File.WriteAllBytes(blob + ".incomplete", weights[..held]);

        var snapshot = Resolve(Repo, Options());
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        var get = Assert.Single(_hub.Requests, r => r.Method == "GET" && r.Path.EndsWith("/model.safetensors", StringComparison.Ordinal));
        Assert.Equal($"/cdn/{Repo}/{commit}/model.safetensors", get.Path);
        Assert.Equal($"bytes={held}-", get.Range);
        Assert.False(File.Exists(blob + ".incomplete"));
    }

    [Fact]
    public void ABodyThatBreaksOffIsRetriedFromWhereItStoppedThenResumedOnTheNextRun()
    {
        var files = TinyCheckpoint();
        _hub.Publish(Repo, files);
        var weights = files["model.safetensors"];
        _hub.TruncateAfter = 1000;
        var e = Assert.Throws<HubException>(() => Resolve(Repo, Options(attempts: 2)));
        Assert.Contains($"{Repo}@main: model.safetensors", e.Message);
        Assert.Contains("broke off at 2000 of", e.Message);
        Assert.Contains("run again to resume", e.Message);
        AssertNothingInSnapshots();
        var incomplete = Path.Combine(RepoFolder, "blobs", Sha256(weights) + ".incomplete");
        Assert.Equal(weights[..2000], File.ReadAllBytes(incomplete));
        Assert.False(File.Exists(Path.Combine(RepoFolder, "refs", "main")));

        _hub.TruncateAfter = null;
        var snapshot = Resolve(Repo, Options());
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        Assert.Equal("bytes=2000-", _hub.Requests.Last(r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal)).Range);
    }

    void AssertNothingInSnapshots()
    {
        var snapshots = Path.Combine(RepoFolder, "snapshots");
        Assert.True(!Directory.Exists(snapshots) || Directory.GetFiles(snapshots, "*", SearchOption.AllDirectories).Length == 0,
            "files were left in snapshots/");
    }

    [Fact]
    public void AWrongSha256IsRefusedAndLeavesNothingBehind()
    {
        var files = TinyCheckpoint();
        var commit = _hub.Publish(Repo, files);
        var served = (byte[])files["model.safetensors"].Clone();
        served[^1] ^= 0x55;
        _hub.File(Repo, commit, "model.safetensors").Served = served;
        var e = Assert.Throws<HubException>(() => Resolve(Repo, Options()));
        Assert.Contains($"{Repo}@main: model.safetensors", e.Message);
        Assert.Contains($"sha256 {Sha256(served)}, not {Sha256(files["model.safetensors"])}", e.Message);
        AssertNothingInSnapshots();
        Assert.False(File.Exists(Path.Combine(RepoFolder, "blobs", Sha256(files["model.safetensors"]))));
        Assert.Empty(Directory.GetFiles(Path.Combine(RepoFolder, "blobs"), "*.incomplete"));
        Assert.False(File.Exists(Path.Combine(RepoFolder, "refs", "main")));
    }

    [Fact]
    public void RevisionsPinByCommitAndFollowBranches()
    {
        var first = _hub.Publish(Repo, new Dictionary<string, byte[]> { ["config.json"] = "{\"v\": 1}"u8.ToArray() });
        var second = _hub.Publish(Repo, new Dictionary<string, byte[]> { ["config.json"] = "{\"v\": 2}"u8.ToArray() });
        var dev = _hub.Publish(Repo, new Dictionary<string, byte[]> { ["config.json"] = "{\"v\": 3}"u8.ToArray() }, branch: "dev");

        string Config(string spec) => File.ReadAllText(Path.Combine(Resolve(spec, Options()), "config.json"));
        Assert.Equal("{\"v\": 2}", Config(Repo));
        Assert.Equal("{\"v\": 1}", Config($"{Repo}@{first}"));
        Assert.Equal("{\"v\": 3}", Config($"{Repo}@dev"));
        Assert.Equal(second, File.ReadAllText(Path.Combine(RepoFolder, "refs", "main")));
        Assert.Equal(dev, File.ReadAllText(Path.Combine(RepoFolder, "refs", "dev")));
        Assert.False(File.Exists(Path.Combine(RepoFolder, "refs", first)));
        // Offline, each revision finds its own snapshot.
        var offline = Options() with { Offline = true };
        Assert.Equal(Path.Combine(RepoFolder, "snapshots", first), Resolve($"{Repo}@{first}", offline));
        Assert.Equal(Path.Combine(RepoFolder, "snapshots", dev), Resolve($"{Repo}@dev", offline));
    }

    [Fact]
    public void NotFoundAndUnauthorizedAnswersNameTheRepositoryAndRevision()
    {
        _hub.Publish(Repo, new Dictionary<string, byte[]> { ["config.json"] = "{}"u8.ToArray() });
        var e = Assert.Throws<HubException>(() => Resolve("encore-test/missing", Options()));
        Assert.Equal(404, e.StatusCode);
        Assert.Contains("encore-test/missing@main: repository not found", e.Message);

        e = Assert.Throws<HubException>(() => Resolve($"{Repo}@nope", Options()));
        Assert.Contains($"{Repo}@nope: revision 'nope' not found in {Repo}", e.Message);

        _hub.RequiredToken = "hf_secret";
        e = Assert.Throws<HubException>(() => Resolve(Repo, Options()));
        Assert.Equal(401, e.StatusCode);
        Assert.Contains($"{Repo}@main: not authorized", e.Message);
        Assert.Contains("set HF_TOKEN", e.Message);
        Assert.Contains("Invalid credentials", e.Message);
        AssertNothingInSnapshots();

        var snapshot = Resolve(Repo, Options() with { Token = "hf_secret" });
        Assert.True(File.Exists(Path.Combine(snapshot, "config.json")));
        Assert.All(_hub.Requests.Where(r => r.Authorization != null), r => Assert.Equal("Bearer hf_secret", r.Authorization));
    }

    [Theory]
    [InlineData("<html>busy</html>", "invalid JSON")]
    [InlineData("[1, 2]", "not a JSON object")]
    [InlineData("{\"sha\": \"../../etc\", \"siblings\": []}", "no 'sha' commit hash")]
    [InlineData("{\"sha\": \"0123456789abcdef0123456789abcdef01234567\"}", "no 'siblings' array")]
    [InlineData("{\"sha\": \"0123456789abcdef0123456789abcdef01234567\", \"siblings\": [{\"rfilename\": 3}]}", "without a string 'rfilename'")]
    public void AGarbageModelDescriptionIsAClearError(string body, string why)
    {
        _hub.Publish(Repo, new Dictionary<string, byte[]> { ["config.json"] = "{}"u8.ToArray() });
        _hub.GarbageInfo = body;
        var e = Assert.Throws<HubException>(() => Resolve(Repo, Options()));
        Assert.Contains($"{Repo}@main: the hub's answer to GET {_hub.Endpoint}/api/models/{Repo}/revision/main is not a model description", e.Message);
        Assert.Contains(why, e.Message);
        AssertNothingInSnapshots();
    }

    [Fact]
    public void ALocalPathWinsOverAHubIdAndOtherNamesPassThrough()
    {
        _hub.Publish(Repo, new Dictionary<string, byte[]> { ["config.json"] = "{}"u8.ToArray() });
        string top = $"hubtest-{Guid.NewGuid():N}";
        string local = Path.Combine(top, "tiny-encdec");
        Directory.CreateDirectory(local);
        try
        {
            Assert.Equal($"{top}/tiny-encdec", HubModels.ResolvePath($"{top}/tiny-encdec", Options()));
            Assert.Equal("mu-25m", HubModels.ResolvePath("mu-25m", Options()));
            Assert.Equal("./x/y", HubModels.ResolvePath("./x/y", Options()));
            Assert.Empty(_hub.Requests);
            Assert.Equal(Path.Combine(RepoFolder, "snapshots"), Path.GetDirectoryName(HubModels.ResolvePath(Repo, Options())));

            var e = Assert.Throws<DirectoryNotFoundException>(() => HubModels.ResolvePath("org/na me", Options()));
            Assert.Contains("org/na me: no such directory, and 'org/na me' is not a Hugging Face model id", e.Message);
            var missing = Assert.Throws<HubException>(() => HubModels.ResolvePath("encore-test/missing", Options()));
            Assert.StartsWith("encore-test/missing: no such directory; as a Hugging Face model: encore-test/missing@main: repository not found", missing.Message);
        }
        finally
        {
            Directory.Delete(top, recursive: true);
        }
    }

    /// <summary>An <see cref="IProgress{T}"/> that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    sealed class SyncProgress(Action<HubDownloadProgress> report) : IProgress<HubDownloadProgress>
    {
        public void Report(HubDownloadProgress value) => report(value);
    }
}
