// One fuzz target per parser. A target takes the bytes of one input, hands them to the parser as a
// file would (most parsers read files), and goes as far as a valid input lets it: a loaded
// tokenizer encodes and decodes text, an opened weights file has every tensor read. The refusals a
// parser documents (CheckpointFormatException, DatasetFormatException, a 4xx ApiException …) are
// expected; any other exception escapes and is a finding, as is an input that allocates past
// MaxAllocatedBytes.
using System.Text;
using Encore.Formats;
using Encore.Formats.Checkpoints;
using Encore.Formats.Gguf;
using Encore.Formats.Onnx;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Server;
using Encore.Training.Trainer;
using Encore.Training.Data;

namespace Encore.Fuzz;

/// <summary>A fuzz target: its name (also its seed folder under fuzz/corpus/), what it feeds, and the run over one input.</summary>
public sealed record FuzzTarget(string Name, string Description, Action<byte[]> Run);

/// <summary>Every fuzz target.</summary>
public static class Targets
{
    /// <summary>Managed bytes one input may allocate; more is a finding (unbounded allocation).</summary>
    public const long MaxAllocatedBytes = 512L << 20;

    /// <summary>Text encoded by the tokenizer targets: scripts, digits, whitespace runs and special-token spellings.</summary>
    public const string SampleText = "Hello wörld 123, ça va? 日本語 \t\n  x  <s></s><pad><unk><extra_id_0> [CLS] <|endoftext|> ▁a 😀";

    static readonly Lazy<string> s_root = new(() =>
    {
        // tmpfs when there is one: every execution writes its input to a file.
        string parent = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        var dir = Path.Combine(parent, $"encore-fuzz-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        };
        return dir;
    });

    /// <summary>All targets.</summary>
    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        new("safetensors", "a .safetensors file: header, offsets, every tensor read", SafetensorsFileTarget),
        new("shard-index", "model.safetensors.index.json beside one valid shard", ShardIndex),
        new("gguf", "a .gguf file: metadata, tensor infos, every tensor read", Gguf),
        new("config-encore", "config.json with model_type encore", ConfigJson),
        new("config-t5", "config.json with model_type t5", ConfigJson),
        new("config-llama", "config.json with model_type llama", ConfigJson),
        new("config-qwen2", "config.json with model_type qwen2", ConfigJson),
        new("config-bert", "config.json with model_type bert", ConfigJson),
        new("config-bart", "config.json with model_type bart", ConfigJson),
        new("config-mbart", "config.json with model_type mbart", ConfigJson),
        new("config-marian", "config.json with model_type marian", ConfigJson),
        new("tokenizer-json", "tokenizer.json (byte-level BPE), then encode and decode", Dir1("tokenizer.json")),
        new("spiece-model", "spiece.model (SentencePiece protobuf), then encode and decode", Dir1("spiece.model")),
        new("vocab-txt", "vocab.txt (WordPiece), then encode and decode", Dir1("vocab.txt")),
        new("vocab-merges", "vocab.json, a 0 byte, merges.txt (byte-level BPE), then encode and decode", VocabMerges),
        new("tokenizer-config", "tokenizer_config.json beside T5's spiece.model, then encode and decode", TokenizerConfig),
        new("jsonl", "a JSONL dataset of {source, target} lines", Jsonl),
        new("trainer-state", "checkpoint-N/trainer_state.json, read by Trainer.Resume", TrainerState),
        new("server-request", "an HTTP body for /v1/completions, /v1/chat/completions and /v1/embeddings", ServerRequest),
        new("onnx", "model.onnx: graph, initializers, every tensor read, then the BERT import", Onnx),
        new("sentence-transformers", "modules.json, a 0 byte, 1_Pooling/config.json (a sentence-transformers pipeline)", SentenceTransformers),
        new("peft-adapter", "adapter_config.json, a 0 byte, adapter_model.safetensors (a LoRA adapter in PEFT's layout) loaded onto tiny-encdec", PeftAdapterTarget),
        new("chat-template", "chat_template.jinja (a Jinja chat template), then applied to two conversations", ChatTemplateTarget),
    ];

    /// <summary>The target named <paramref name="name"/>.</summary>
    public static FuzzTarget Get(string name) => All.FirstOrDefault(t => t.Name == name)
        ?? throw new ArgumentException($"no fuzz target '{name}'; targets: {string.Join(", ", All.Select(t => t.Name))}");

    /// <summary>Runs <paramref name="target"/> on <paramref name="input"/>, failing past the allocation bound.</summary>
    public static void Execute(FuzzTarget target, byte[] input)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        target.Run(input);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        if (allocated > MaxAllocatedBytes)
            throw new InvalidOperationException($"{target.Name}: an input of {input.Length} bytes allocated {allocated} bytes (bound {MaxAllocatedBytes})");
    }

    static string Fresh(string name)
    {
        var dir = Path.Combine(s_root.Value, name);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        return dir;
    }

    static bool Refused(Exception e) => e is CheckpointFormatException or DatasetFormatException;

    static void SafetensorsFileTarget(byte[] input)
    {
        var path = Path.Combine(Fresh("safetensors"), "model.safetensors");
        File.WriteAllBytes(path, input);
        try
        {
            using var f = SafetensorsFile.Open(path);
            foreach (var name in f.Names)
            {
                using var t = f.Read(name);
                _ = t.Describe();
            }
        }
        catch (Exception e) when (Refused(e)) { }
    }

    static readonly Lazy<byte[]> s_shard = new(() =>
    {
        var dir = Fresh("shard-source");
        using (var t = Encore.Tensors.Tensor.FromArray(new float[] { 1, 2, 3, 4 }, [2, 2]))
            SafetensorsCheckpoint.Write(dir, [new("x", t)]);
        return File.ReadAllBytes(Path.Combine(dir, "model.safetensors"));
    });

    static void ShardIndex(byte[] input)
    {
        var dir = Fresh("shard-index");
        File.WriteAllBytes(Path.Combine(dir, "a.safetensors"), s_shard.Value);
        File.WriteAllBytes(Path.Combine(dir, SafetensorsCheckpoint.IndexFile), input);
        try
        {
            using var c = SafetensorsCheckpoint.Open(dir);
            if (c.Contains("x")) c.Read("x").Dispose();
        }
        // A shard the index names but the folder lacks.
        catch (Exception e) when (Refused(e) || e is FileNotFoundException) { }
    }

    static void Gguf(byte[] input)
    {
        var path = Path.Combine(Fresh("gguf"), "model.gguf");
        File.WriteAllBytes(path, input);
        try
        {
            var r = GgufReader.Open(path);
            foreach (var t in r.Tensors) _ = r.ReadTensorBytes(t);
        }
        catch (Exception e) when (Refused(e)) { }
    }

    static void ConfigJson(byte[] input)
    {
        var dir = Fresh("config");
        File.WriteAllBytes(Path.Combine(dir, "config.json"), input);
        try
        {
            var (config, arch) = Checkpoint.ReadConfig(dir);
            // What a loader does next, short of allocating: count, size, and write the config back.
            _ = ModelMemory.ParameterBytes(config);
            _ = ModelMemory.CacheBytes(config, 1, Math.Min(config.MaxPositions, 1024));
            try
            {
                _ = arch.WriteConfig(config);
            }
            catch (ArgumentException) { }   // a configuration the model type cannot express
        }
        catch (Exception e) when (Refused(e)) { }
    }

    static void Tokenize(string dir)
    {
        try
        {
            var tok = TokenizerLoader.FromDirectory(dir);
            var ids = tok.Encode(SampleText);
            _ = tok.Decode(ids, skipSpecialTokens: false);
            _ = tok.Decode(ids);
            var all = Enumerable.Range(0, Math.Min(tok.VocabSize, 4096)).ToArray();
            _ = tok.Decode(all, skipSpecialTokens: false);
        }
        catch (Exception e) when (Refused(e)) { }
    }

    static Action<byte[]> Dir1(string file) => input =>
    {
        var dir = Fresh(file);
        File.WriteAllBytes(Path.Combine(dir, file), input);
        Tokenize(dir);
    };

    static void VocabMerges(byte[] input)
    {
        var dir = Fresh("vocab-merges");
        int split = Array.IndexOf(input, (byte)0);
        File.WriteAllBytes(Path.Combine(dir, "vocab.json"), split < 0 ? input : input[..split]);
        File.WriteAllBytes(Path.Combine(dir, "merges.txt"), split < 0 ? [] : input[(split + 1)..]);
        Tokenize(dir);
    }

    static readonly Lazy<byte[]> s_spiece = new(() => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "fixtures", "spiece.model")));

    static void TokenizerConfig(byte[] input)
    {
        var dir = Fresh("tokenizer-config");
        File.WriteAllBytes(Path.Combine(dir, "spiece.model"), s_spiece.Value);
        File.WriteAllBytes(Path.Combine(dir, "tokenizer_config.json"), input);
        Tokenize(dir);
    }

    static void Jsonl(byte[] input)
    {
        var path = Path.Combine(Fresh("jsonl"), "train.jsonl");
        File.WriteAllBytes(path, input);
        try
        {
            _ = DatasetReader.ReadPairs(path);
        }
        catch (Exception e) when (Refused(e)) { }
    }

    /// <summary>One trainer over a tiny model, kept for the process: only its state file changes between inputs.</summary>
    sealed class ResumeProbe
    {
        public readonly string Dir = Path.Combine(s_root.Value, "trainer-state");
        public readonly Trainer Trainer;

        public ResumeProbe()
        {
            Directory.CreateDirectory(Dir);
            var model = LanguageModel.Create(Presets.Get("tiny-decoder") with { VocabSize = 16 });
            Trainer = new Trainer(model, new TrainingOptions(), new FixedBatches([]), Dir);
        }
    }

    static readonly Lazy<ResumeProbe> s_resume = new(() => new ResumeProbe());

    static void TrainerState(byte[] input)
    {
        var probe = s_resume.Value;
        var checkpoint = Path.Combine(probe.Dir, "checkpoint-1");
        Directory.CreateDirectory(checkpoint);
        File.WriteAllBytes(Path.Combine(checkpoint, "trainer_state.json"), input);
        try
        {
            probe.Trainer.Resume();
        }
        // Past a valid state: a different seed, then the checkpoint's missing config.json.
        catch (Exception e) when (Refused(e) || e is FileNotFoundException || (e is ArgumentException a && a.Message.Contains("seed", StringComparison.Ordinal))) { }
    }

    static void ChatTemplateTarget(byte[] input)
    {
        var dir = Fresh("chat-template");
        File.WriteAllBytes(Path.Combine(dir, ChatTemplateFiles.ChatTemplateJinja), input);
        File.WriteAllText(Path.Combine(dir, TokenizerLoader.TokenizerConfigJson), """{"bos_token": "<s>", "eos_token": {"content": "</s>"}}""");
        ChatTemplate template;
        try
        {
            template = ChatTemplate.FromDirectory(dir);
        }
        catch (Exception e) when (Refused(e) || e is ChatTemplateException) { return; }
        (string, string)[][] conversations =
        [
            [("system", "Be brief."), ("user", "  hi {{ x }} ")],
            [("user", "a"), ("assistant", "b"), ("user", "ç 😀")],
        ];
        foreach (var chat in conversations)
        {
            try
            {
                _ = template.Apply(chat);
            }
            catch (ChatTemplateException) { }
        }
    }

    static void ServerRequest(byte[] input)
    {
        foreach (var api in new[] { CompletionApi.Completions, CompletionApi.Chat })
        {
            try
            {
                _ = OpenAiRequests.Parse(input, api);
            }
            catch (ApiException e) when (e.Status is >= 400 and < 500) { }
        }
        try
        {
            _ = EmbeddingsApi.Parse(input, 2048);
        }
        catch (ApiException e) when (e.Status is >= 400 and < 500) { }
    }

    static void Onnx(byte[] input)
    {
        var dir = Fresh("onnx");
        var path = Path.Combine(dir, "model.onnx");
        File.WriteAllBytes(path, input);
        try
        {
            using (var m = OnnxModel.Open(path))
            {
                foreach (var t in m.Initializers.Concat(m.Nodes.SelectMany(n => n.Attributes.Values).Select(a => a.Tensor).OfType<OnnxTensor>()))
                {
                    if (OnnxModel.IsFloating(t) && t.Dims.Length > 0) m.ReadTensor(t).Dispose();
                    _ = m.ReadIntegers(t);
                    _ = m.ReadScalar(t);
                }
            }
            OnnxBertImport.Convert(path, Path.Combine(dir, "out"));
        }
        catch (Exception e) when (Refused(e)) { }
    }

    // The base the adapters are checked against and loaded onto (its weights are never read).
    static readonly Lazy<LanguageModel> s_adapterBase = new(() => LanguageModel.Create(Presets.Get("tiny-encdec"), seed: 1));

    static void PeftAdapterTarget(byte[] input)
    {
        var dir = Fresh("peft-adapter");
        int split = Array.IndexOf(input, (byte)0);
        File.WriteAllBytes(Path.Combine(dir, "adapter_config.json"), split < 0 ? input : input[..split]);
        File.WriteAllBytes(Path.Combine(dir, "adapter_model.safetensors"), split < 0 ? [] : input[(split + 1)..]);
        try
        {
            using var adapter = PeftAdapter.Load(dir, s_adapterBase.Value, "encore");
        }
        catch (Exception e) when (Refused(e)) { }
    }

    static void SentenceTransformers(byte[] input)
    {
        var dir = Fresh("sentence-transformers");
        int split = Array.IndexOf(input, (byte)0);
        File.WriteAllBytes(Path.Combine(dir, SentenceTransformersConfig.ModulesJson), split < 0 ? input : input[..split]);
        Directory.CreateDirectory(Path.Combine(dir, "1_Pooling"));
        File.WriteAllBytes(Path.Combine(dir, "1_Pooling", "config.json"), split < 0 ? [] : input[(split + 1)..]);
        try
        {
            SentenceTransformersConfig.Read(dir)?.EnsureFits(384);
        }
        catch (Exception e) when (Refused(e)) { }
    }
}
