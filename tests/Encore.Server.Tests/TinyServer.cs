using System.ClientModel;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Models;
using OpenAI;
using OpenAI.Chat;

namespace Encore.Server.Tests;

/// <summary>
/// A seeded tiny model and a byte-level BPE tokenizer trained on a few sentences, saved as a
/// checkpoint directory and loaded back as <c>encore serve</c> loads it, served on a free loopback port.
/// </summary>
public sealed class TinyServer : IAsyncDisposable
{
    public const string ModelName = "tiny";

    static readonly Lazy<ByteLevelBpeTextTokenizer> s_tokenizer = new(() => BpeTrainer.Train(
        [
            "The quick brown fox jumps over the lazy dog.",
            "Encoder–decoder models encode the source once and decode one token at a time.",
            "Ça coûte 5 €, déjà payé — naïve café crème.",
            "User: hello there\nAssistant: general kenobi",
        ],
        300, ["<pad>", "</s>", "<s>"], new SpecialTokenRoles(Bos: "<s>", Eos: "</s>", Pad: "<pad>")));

    TinyServer(string dir, LanguageModel model, TextTokenizer tokenizer, EncoreServer server)
    {
        Directory = dir;
        Model = model;
        Tokenizer = tokenizer;
        Server = server;
        Http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public string Directory { get; }
    public LanguageModel Model { get; }
    public TextTokenizer Tokenizer { get; }
    public EncoreServer Server { get; }
    public HttpClient Http { get; }

    /// <summary>
    /// Saves and loads a tiny model of <paramref name="preset"/>, then serves it; <paramref name="editCheckpoint"/>
    /// may change the saved directory's files before they are loaded.
    /// </summary>
    public static async Task<TinyServer> StartAsync(string preset = "tiny-encdec", ServerOptions? options = null, Action<string>? editCheckpoint = null)
    {
        var tok = s_tokenizer.Value;
        string dir = Path.Combine(Path.GetTempPath(), "encore-server-" + Guid.NewGuid().ToString("N"));
        using (var m = CreateModel(preset))
            Checkpoint.Save(m, dir);
        tok.Save(dir);
        editCheckpoint?.Invoke(dir);
        var model = Checkpoint.Load(dir);
        var tokenizer = TokenizerLoader.FromDirectory(dir);
        var server = await EncoreServer.StartAsync(model, tokenizer, (options ?? new ServerOptions()) with { Port = 0, ModelName = ModelName }, _ => { });
        return new TinyServer(dir, model, tokenizer, server);
    }

    /// <summary>The tokenizer every tiny server serves with.</summary>
    public static TextTokenizer SharedTokenizer => s_tokenizer.Value;

    /// <summary>The model a server of <paramref name="preset"/> serves (the same weights every time; <paramref name="seed"/> 7 is the served one).</summary>
    public static LanguageModel CreateModel(string preset, ulong seed = 7)
    {
        var m = LanguageModel.Create(Presets.Get(preset) with { VocabSize = s_tokenizer.Value.VocabSize, TieEmbeddings = false, BosTokenId = 2 }, seed);
        // Projections scaled up from their 0.02 init so the prompt visibly steers the output.
        foreach (var p in m.Parameters.All)
            if (p.Name.Contains("_proj.weight"))
                foreach (ref float x in p.Value.AsSpan<float>()) x *= 8f;
        return m;
    }

    /// <summary>The official OpenAI chat client pointed at this server.</summary>
    public ChatClient Chat() => new(ModelName, new ApiKeyCredential("unused"), Options());

    public OpenAIClientOptions Options() => new() { Endpoint = new Uri(Server.BaseAddress, "v1") };

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        Model.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // The weights may still be mapped; the temp folder is cleaned by the OS.
        }
    }
}

/// <summary>One encoder–decoder server shared by a test class.</summary>
public sealed class EncDecServerFixture : IAsyncLifetime
{
    public TinyServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await TinyServer.StartAsync("tiny-encdec", new ServerOptions { MaxBatch = 8, ContextLength = 256 });

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
