using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Formats.Gguf;
using Encore.Formats.Tokenization;
using Encore.Models;

namespace Encore.Formats.Tests.Hostile;

/// <summary>
/// Regression tests built from the reproductions of a probe with mutated inputs: each input once
/// hung, crashed or failed with an error that named no file. Every case must now end quickly with a
/// <see cref="CheckpointFormatException"/> naming the file (or, where the input is legal, work).
/// </summary>
public sealed class HostileInputTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-hostile-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string TokenizerFixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", name);

    string CopyFixture(string name)
    {
        var dir = Path.Combine(_dir, name + "-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(TokenizerFixture(name))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    /// <summary>Runs <paramref name="work"/> on another thread and fails if it has not finished within 20 s (a hang).</summary>
    static T Within<T>(Func<T> work)
    {
        var task = Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.True(task.Wait(TimeSpan.FromSeconds(20)), "did not finish within 20 s");
        return task.Result;
    }

    // 1. An empty special token made Microsoft.ML.Tokenizers' splitter find the same empty match forever.
    [Fact]
    public void EmptyAdditionalSpecialTokenDoesNotHangSentencePieceEncoding()
    {
        var dir = CopyFixture("t5");
        var config = Path.Combine(dir, "tokenizer_config.json");
        var json = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        json["additional_special_tokens"] = new JsonArray("");
        File.WriteAllText(config, json.ToJsonString());
        var reference = TokenizerLoader.FromDirectory(TokenizerFixture("t5"));
        var ids = Within(() => TokenizerLoader.FromDirectory(dir).Encode("a", addSpecialTokens: false));
        Assert.Equal(reference.Encode("a", addSpecialTokens: false), ids);
    }

    [Fact]
    public void SpieceModelWithAnEmptyControlPieceIsRefused()
    {
        var dir = CopyFixture("t5");
        var model = Path.Combine(dir, "spiece.model");
        // One more ModelProto.pieces entry (field 1): SentencePiece { piece: "" (field 1), type: CONTROL (field 3 = 3) }.
        File.WriteAllBytes(model, [.. File.ReadAllBytes(model), 0x0A, 0x04, 0x0A, 0x00, 0x18, 0x03]);
        var e = Within(() => Record.Exception(() => TokenizerLoader.FromDirectory(dir).Encode("a")));
        Assert.IsType<CheckpointFormatException>(e);
        Assert.Contains("spiece.model", e.Message);
        Assert.Contains("empty text", e.Message);
    }

    // 2. A Split regex that matches the empty string.
    [Theory]
    [InlineData("x?", "xx")]
    [InlineData("x*|\\b", "xx yy")]
    [InlineData("(?=x)", "axbx")]
    public void SplitRegexMatchingTheEmptyStringDoesNotHang(string pattern, string text)
    {
        var dir = CopyFixture("qwen2");
        var path = Path.Combine(dir, "tokenizer.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"] = new JsonObject { ["Regex"] = pattern };
        File.WriteAllText(path, json.ToJsonString());
        var tok = TokenizerLoader.FromDirectory(dir);
        var ids = Within(() => tok.Encode(text, addSpecialTokens: false));
        Assert.Equal(text, tok.Decode(ids));
    }

    [Fact]
    public void AddedTokensAreStillCutOutWholeByTheSplitPreTokenizer()
    {
        var tok = TokenizerLoader.FromDirectory(TokenizerFixture("qwen2"));
        var ids = tok.Encode("hi<|im_start|>there<|endoftext|>", addSpecialTokens: false);
        Assert.Contains(437, ids);
        Assert.Equal(436, ids[^1]);
    }

    // 6. Lone surrogate escapes and invalid UTF-8: a bare InvalidOperationException before.
    [Theory]
    [InlineData("tokenizer.json")]
    [InlineData("vocab.json")]
    public void LoneSurrogatesInTokenizerFilesNameTheFileAndLine(string file)
    {
        var dir = CopyFixture(file == "vocab.json" ? "gpt2-files" : "gpt2");
        var path = Path.Combine(dir, file);
        var text = File.ReadAllText(path);
        int brace = text.IndexOf('{');
        File.WriteAllText(path, text[..(brace + 1)] + "\n\"\\ud800\": 5," + text[(brace + 1)..]);
        var e = Assert.Throws<CheckpointFormatException>(() => TokenizerLoader.FromDirectory(dir));
        Assert.Contains(file, e.Message);
        Assert.Contains("line 2", e.Message);
        Assert.Contains("surrogate", e.Message);
    }

    [Fact]
    public void InvalidUtf8InTokenizerJsonNamesTheFile()
    {
        var dir = CopyFixture("gpt2");
        var path = Path.Combine(dir, "tokenizer.json");
        var bytes = File.ReadAllBytes(path);
        int quote = Array.IndexOf(bytes, (byte)'"');
        bytes[quote + 1] = 0xFF;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<CheckpointFormatException>(() => TokenizerLoader.FromDirectory(dir));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("UTF-8", e.Message);
    }

    static byte[] Safetensors(string header, int dataBytes)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var b = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)h.Length);
        h.CopyTo(b, 8);
        return b;
    }

    [Theory]
    [InlineData("""{"\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "surrogate")]
    [InlineData("""{"__metadata__":{"a":"\udc00"},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "surrogate")]
    [InlineData("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "uplicate")]
    public void SafetensorsHeadersWithUnreadableStringsNameTheFile(string header, string expected)
    {
        var path = Path.Combine(_dir, "bad.safetensors");
        File.WriteAllBytes(path, Safetensors(header, 4));
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains("bad.safetensors", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void SafetensorsHeaderWithInvalidUtf8NamesTheFile()
    {
        var path = Path.Combine(_dir, "bad.safetensors");
        var b = Safetensors("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 4);
        b[10] = 0xC3;   // the 'x': a lead byte with no continuation
        File.WriteAllBytes(path, b);
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains("bad.safetensors", e.Message);
        Assert.Contains("UTF-8", e.Message);
    }

    [Theory]
    [InlineData("""{"weight_map":{"\ud800":"a.safetensors"}}""", "surrogate")]
    [InlineData("""{"weight_map":{"x":"\udfff.safetensors"}}""", "surrogate")]
    [InlineData("""[1]""", "not a JSON object")]
    [InlineData("""{"weight_map":{"x":""}}""", "must be a file name")]
    [InlineData("""{"weight_map":{"x":"a\u0000b"}}""", "must be a file name")]
    [InlineData("""{"weight_map":{"x":"a"},"weight_map":{"x":"b"}}""", "uplicate")]
    public void ShardIndexWithUnreadableStringsNamesTheFile(string index, string expected)
    {
        var dir = Path.Combine(_dir, "sharded");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, SafetensorsCheckpoint.IndexFile), index);
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsCheckpoint.Open(dir));
        Assert.Contains(SafetensorsCheckpoint.IndexFile, e.Message);
        Assert.Contains(expected, e.Message);
    }

    string WriteConfig(JsonObject json)
    {
        var dir = Path.Combine(_dir, "cfg-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString());
        return dir;
    }

    static JsonObject Encore(ModelConfig? config = null) =>
        JsonNode.Parse(ModelConfigJson.Serialize(config ?? Presets.Get("tiny-encdec")))!.AsObject();

    [Theory]
    [InlineData("encore")]
    [InlineData("t5")]
    [InlineData("llama")]
    [InlineData("bert")]
    public void LoneSurrogateInConfigJsonNamesTheFileAndLine(string type)
    {
        var dir = Path.Combine(_dir, "surrogate-" + type);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{\n\"model_type\": \"" + type + "\",\n\"hidden_act\": \"\\ud800\"\n}");
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.ReadConfig(dir));
        Assert.Contains("config.json", e.Message);
        Assert.Contains("line 3", e.Message);
    }

    // 7. Duplicate keys: "An item with the same key has already been added" before.
    [Theory]
    [InlineData("encore")]
    [InlineData("llama")]
    public void DuplicateKeysInConfigJsonAreAFormatError(string type)
    {
        var dir = Path.Combine(_dir, "dup-" + type);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), $$"""{"model_type": "{{type}}", "vocab_size": 10, "vocab_size": 12}""");
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.ReadConfig(dir));
        Assert.Contains("config.json", e.Message);
        Assert.Contains("vocab_size", e.Message);
    }

    // 3, 4, 5. Sizes that ran out of memory, overflowed or failed late, in Encore's own config.json.
    [Theory]
    [InlineData("vocab_size", 2147483647L, "vocab_size")]
    [InlineData("d_model", 2147483647L, "d_model")]
    [InlineData("ffn_dim", 2000000000L, "ffn_dim")]
    [InlineData("encoder_layers", 1000000L, "encoder_layers")]
    [InlineData("max_positions", -5L, "max_positions")]
    [InlineData("heads", 65536L, "heads")]
    public void OversizedEncoreConfigsAreRefusedNamingFileAndField(string field, long value, string named)
    {
        var json = Encore();
        json[field] = value;
        if (field == "heads")
        {
            json["kv_heads"] = value;
            json["head_dim"] = value;
        }
        var dir = WriteConfig(json);
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir));
        Assert.Contains("config.json", e.Message);
        Assert.Contains(named, e.Message);
    }

    [Theory]
    [InlineData(-1.0)]
    [InlineData(1e-320)]
    [InlineData(double.PositiveInfinity)]
    public void RopeThetaOutOfRangeIsRefusedWhenParsed(double theta)
    {
        var json = Encore();
        // JSON has no Infinity literal; System.Text.Json reads a huge number as +∞.
        json["decoder_positions"]!["rope_theta"] = double.IsInfinity(theta) ? JsonNode.Parse("1e400") : theta;
        var dir = WriteConfig(json);
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.ReadConfig(dir));
        Assert.Contains("config.json", e.Message);
        Assert.Contains("rope_theta", e.Message);
    }

    [Theory]
    [InlineData("vocab_size", 2147483647)]
    [InlineData("hidden_size", 1 << 30)]
    [InlineData("intermediate_size", 2000000000)]
    [InlineData("num_hidden_layers", 1000000)]
    [InlineData("max_position_embeddings", 2147483647)]
    public void OversizedLlamaConfigsAreRefusedNamingFileAndField(string field, int value)
    {
        var json = new JsonObject
        {
            ["model_type"] = "llama", ["hidden_size"] = 64, ["num_attention_heads"] = 4, ["num_hidden_layers"] = 2,
            ["intermediate_size"] = 128, ["vocab_size"] = 100,
        };
        json[field] = value;
        var dir = WriteConfig(json);
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.ReadConfig(dir));
        Assert.Contains("config.json", e.Message);
        Assert.Contains($"'{field}'", e.Message);
        Assert.Contains(value.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
    }

    // 13. [2, 1073741823, 1073741825] f32 is 2^63 − 8 bytes: offset + size wrapped and the file opened.
    [Fact]
    public void GgufTensorWhoseSizeWrapsTheOffsetCheckIsRefused()
    {
        var path = Path.Combine(_dir, "wrap.gguf");
        var b = new List<byte>();
        void U32(uint v) { var x = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(x, v); b.AddRange(x); }
        void U64(ulong v) { var x = new byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(x, v); b.AddRange(x); }
        b.AddRange("GGUF"u8.ToArray());
        U32(3);
        U64(1);   // tensors
        U64(0);   // metadata pairs
        U64(1);
        b.Add((byte)'t');
        U32(3);
        U64(2); U64(1073741823); U64(1073741825);
        U32((uint)GgmlType.F32);
        U64(0);
        while (b.Count % 32 != 0) b.Add(0);
        b.AddRange(new byte[64]);
        File.WriteAllBytes(path, b.ToArray());
        var e = Assert.Throws<CheckpointFormatException>(() => GgufReader.Open(path));
        Assert.Contains("wrap.gguf", e.Message);
        Assert.Contains("runs past the end", e.Message);
    }
}
