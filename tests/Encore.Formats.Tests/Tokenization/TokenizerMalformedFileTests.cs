using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats.Tokenization;

namespace Encore.Formats.Tests.Tokenization;

/// <summary>Broken tokenizer files fail with a <see cref="CheckpointFormatException"/> naming the file, never a crash.</summary>
public class TokenizerMalformedFileTests : IDisposable
{
    readonly string _root = Directory.CreateTempSubdirectory("encore-tokbad-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>A copy of fixture <paramref name="model"/> to break.</summary>
    string Copy(string model)
    {
        var dst = Path.Combine(_root, model + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dst);
        foreach (var f in Directory.GetFiles(TokenizerFixtureTests.Dir(model)))
            File.Copy(f, Path.Combine(dst, Path.GetFileName(f)));
        return dst;
    }

    static void AssertFails(string dir, string file, string fragment)
    {
        var e = Assert.Throws<CheckpointFormatException>(() => TokenizerLoader.FromDirectory(dir));
        Assert.Contains(Path.Combine(dir, file), e.Message);
        Assert.Contains(fragment, e.Message);
    }

    static void EditJson(string path, Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(node);
        File.WriteAllText(path, node.ToJsonString());
    }

    [Fact]
    public void MissingDirectoryOrFiles()
    {
        Assert.Throws<DirectoryNotFoundException>(() => TokenizerLoader.FromDirectory(Path.Combine(_root, "nope")));
        var empty = Path.Combine(_root, "empty");
        Directory.CreateDirectory(empty);
        var e = Assert.Throws<FileNotFoundException>(() => TokenizerLoader.FromDirectory(empty));
        Assert.Contains(empty, e.Message);
        Assert.Contains("spiece.model", e.Message);
    }

    [Fact]
    public void CorruptSentencePieceModels()
    {
        var good = File.ReadAllBytes(Path.Combine(TokenizerFixtureTests.Dir("t5"), "spiece.model"));
        var dir = Copy("t5");
        var path = Path.Combine(dir, "spiece.model");

        File.WriteAllBytes(path, good[..(good.Length / 2)]);
        AssertFails(dir, "spiece.model", "not a valid SentencePiece model");

        var rng = new Random(3);
        for (int trial = 0; trial < 20; trial++)
        {
            var junk = new byte[rng.Next(0, 600)];
            rng.NextBytes(junk);
            File.WriteAllBytes(path, junk);
            AssertFails(dir, "spiece.model", "SentencePiece model");
        }

        // Bit flips anywhere must never escape as anything but a format error (or load).
        for (int trial = 0; trial < 400; trial++)
        {
            var flipped = (byte[])good.Clone();
            for (int k = 0; k < 4; k++) flipped[rng.Next(flipped.Length)] ^= (byte)(1 << rng.Next(8));
            File.WriteAllBytes(path, flipped);
            try
            {
                var tok = TokenizerLoader.FromDirectory(dir);
                tok.Decode(tok.Encode("Hello world, café 敏捷"));
            }
            catch (CheckpointFormatException e)
            {
                Assert.Contains(path, e.Message);
            }
        }

        File.WriteAllBytes(path, []);
        AssertFails(dir, "spiece.model", "no pieces");
        // A length prefix far past the end of the file.
        File.WriteAllBytes(path, [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x01]);
        AssertFails(dir, "spiece.model", "runs past");
        // A tiktoken-style text file named tokenizer.model.
        File.Delete(path);
        File.WriteAllText(Path.Combine(dir, "tokenizer.model"), "IQ== 0\nIg== 1\n");
        AssertFails(dir, "tokenizer.model", "SentencePiece model");
    }

    [Fact]
    public void DamagedNormalizationTriesAreCaught()
    {
        var good = File.ReadAllBytes(Path.Combine(TokenizerFixtureTests.Dir("t5"), "spiece.model"));
        var (offset, length) = SentencePieceModelProto.Parse("t5", good).CharsMapSpan;
        Assert.True(offset > 0 && length > 64);
        var dir = Copy("t5");
        var path = Path.Combine(dir, "spiece.model");
        var rng = new Random(5);
        int rejected = 0;
        for (int trial = 0; trial < 200; trial++)
        {
            var bad = (byte[])good.Clone();
            // Scramble trie units (after the 4-byte size), or the size itself.
            if (trial % 10 == 0) bad[offset + rng.Next(4)] ^= (byte)rng.Next(1, 256);
            else for (int k = 0; k < 6; k++) bad[offset + 4 + rng.Next(length - 4)] = (byte)rng.Next(256);
            File.WriteAllBytes(path, bad);
            try
            {
                var tok = TokenizerLoader.FromDirectory(dir);
                tok.Encode("ＦＵＬＬ ｗｉｄｔｈ ﬁne ① e\u0301 Hello world 12345 ☃");
            }
            catch (CheckpointFormatException e)
            {
                Assert.Contains(path, e.Message);
                rejected++;
            }
        }
        Assert.True(rejected > 20);
    }

    [Fact]
    public void BadTokenizerJson()
    {
        var dir = Copy("gpt2");
        var path = Path.Combine(dir, "tokenizer.json");
        var good = File.ReadAllText(path);

        File.WriteAllText(path, good[..(good.Length / 2)]);
        AssertFails(dir, "tokenizer.json", "not valid JSON");
        File.WriteAllText(path, "[1, 2]");
        AssertFails(dir, "tokenizer.json", "not a JSON object");
        File.WriteAllText(path, "{}");
        AssertFails(dir, "tokenizer.json", "no 'model'");

        void Case(Action<JsonObject> edit, string fragment)
        {
            File.WriteAllText(path, good);
            EditJson(path, edit);
            AssertFails(dir, "tokenizer.json", fragment);
        }
        Case(j => j["model"]!["vocab"] = new JsonArray(), "not an object");
        Case(j => j["model"]!["vocab"]!["Ġ"] = -5, "not in [0,");
        Case(j => j["model"]!["vocab"]!["Ġ"] = 1 << 30, "not in [0,");
        Case(j => j["model"]!["vocab"]!["Ġ"] = "x", "not in [0,");
        Case(j => j["model"]!["vocab"]!["Ġ"] = 0, "given to two tokens");
        Case(j => j["model"]!["merges"]!.AsArray().Add("zz qq"), "missing from the vocabulary");
        Case(j => j["model"]!["merges"]!.AsArray().Add("abc"), "not two tokens");
        Case(j => j["model"]!["merges"]!.AsArray().Add(new JsonArray(1, 2)), "not a string");
        Case(j => j["model"]!["merges"] = 7, "not a list");
        Case(j => j["added_tokens"]!.AsArray().Add(new JsonObject { ["content"] = "<x>" }), "has no id");
        Case(j => j["pre_tokenizer"] = new JsonObject { ["type"] = "Whitespace" }, "'Whitespace' is not supported");
        Case(j => j["pre_tokenizer"] = JsonNode.Parse("""{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]}"""), "regex is not valid");
        Case(j => j["normalizer"] = new JsonObject { ["type"] = "Lowercase" }, "'Lowercase' is not supported");
        Case(j => j["model"]!["type"] = "Unigram", "'Unigram' is not supported");
    }

    [Fact]
    public void BadVocabJsonAndMergesTxt()
    {
        var dir = Copy("gpt2-files");
        File.AppendAllText(Path.Combine(dir, "merges.txt"), "a b c\n");
        AssertFails(dir, "merges.txt", "line");
        dir = Copy("gpt2-files");
        File.WriteAllText(Path.Combine(dir, "vocab.json"), "{\"a\": 0,");
        AssertFails(dir, "vocab.json", "not valid JSON");
    }

    [Fact]
    public void BadVocabTxt()
    {
        var dir = Copy("bert");
        var path = Path.Combine(dir, "vocab.txt");
        File.WriteAllLines(path, ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "hello"]);
        AssertFails(dir, "vocab.txt", "unk token '[UNK]'");
        File.WriteAllBytes(path, [0x5B, 0xFF, 0xFE, 0x0A]);
        AssertFails(dir, "vocab.txt", "UTF-8");
        File.WriteAllText(path, "");
        AssertFails(dir, "vocab.txt", "empty");
        // More lines than any vocabulary: refused after counting, before building anything.
        File.WriteAllBytes(path, Enumerable.Repeat((byte)'\n', (1 << 22) + 1).ToArray());
        AssertFails(dir, "vocab.txt", "lines exceeds");
    }

    [Fact]
    public void OversizedFilesAreRefusedBeforeReading()
    {
        var dir = Copy("gpt2");
        var path = Path.Combine(dir, "tokenizer.json");
        // Sparse: takes no disk space, but its length is over the limit.
        using (var fs = new FileStream(path, FileMode.Create)) fs.SetLength((256L << 20) + 1);
        AssertFails(dir, "tokenizer.json", "MB limit");
    }

    [Fact]
    public void BadSideFiles()
    {
        var dir = Copy("t5");
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{\"extra_ids\": ");
        AssertFails(dir, "tokenizer_config.json", "not valid JSON");
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{\"extra_ids\": -3}");
        AssertFails(dir, "tokenizer_config.json", "extra_ids");
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{\"added_tokens_decoder\": {\"x\": {\"content\": \"a\"}}}");
        AssertFails(dir, "tokenizer_config.json", "not a token id");
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{}");
        File.WriteAllText(Path.Combine(dir, "config.json"), "{\"decoder_start_token_id\": \"zero\"}");
        AssertFails(dir, "config.json", "not a token id");
        File.WriteAllText(Path.Combine(dir, "config.json"), "[]");
        AssertFails(dir, "config.json", "not a JSON object");
        File.WriteAllText(Path.Combine(dir, "config.json"), "{\"eos_token_id\": [1, 5]}");
        Assert.Equal(1, TokenizerLoader.FromDirectory(dir).EosId);
    }
}
