using System.Text.Json;
using Encore.Formats.Tokenization;

namespace Encore.Formats.Tests.Tokenization;

public class BpeTrainerTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-bpe-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static (List<string> Corpus, int VocabSize, List<string> Specials, List<string> Merges) Reference()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TokenizerFixtureTests.Dir("bpe_trainer.json")));
        var r = doc.RootElement;
        List<string> Strings(string name) => r.GetProperty(name).EnumerateArray().Select(x => x.GetString()!).ToList();
        return (Strings("corpus"), r.GetProperty("vocab_size").GetInt32(), Strings("special_tokens"), Strings("merges"));
    }

    [Fact]
    public void LearnsTheSameMergesAsThePythonReference()
    {
        var (corpus, vocabSize, specials, merges) = Reference();
        var tok = BpeTrainer.Train(corpus, vocabSize, specials);
        Assert.Equal(merges, tok.Merges.Select(m => m.Left + " " + m.Right).ToList());
        Assert.Equal(vocabSize, tok.VocabSize);
        Assert.Equal(0, tok.TokenToId("<|endoftext|>"));
        Assert.Equal(1, tok.TokenToId("!"));
        Assert.Equal(1 + 256, tok.TokenToId(merges[0].Replace(" ", "")));
    }

    static IEnumerable<string> SyntheticCorpus(int seed, int docs)
    {
        var rng = new Random(seed);
        string[] words = ["the", "model", "encoder", "decoder", "token", "naïve", "café", "狐狸", "学习", "🙂", "Привет", "мир", "2026", "a", "of", "ünïcödé", "x"];
        string[] syllables = ["ka", "to", "ri", "mon", "el", "stra", "qu", "ß", "ée", "中", "语", "ло", "ви", "z", "ph", "ing", "ed"];
        for (int d = 0; d < docs; d++)
        {
            var sb = new System.Text.StringBuilder();
            int n = rng.Next(5, 40);
            for (int i = 0; i < n; i++)
            {
                // Known words, or new ones built of syllables, so merges never run out.
                var w = rng.Next(3) == 0 ? words[rng.Next(words.Length)]
                    : string.Concat(Enumerable.Range(0, rng.Next(1, 4)).Select(_ => syllables[rng.Next(syllables.Length)]));
                sb.Append(rng.Next(4) == 0 ? char.ToUpperInvariant(w[0]) + w[1..] : w);
                sb.Append(rng.Next(6) switch { 0 => ", ", 1 => ". ", 2 => "  ", _ => " " });
            }
            yield return sb.ToString();
        }
    }

    [Fact]
    public void IsDeterministicRespectsTheVocabSizeAndRoundTrips()
    {
        var corpus = SyntheticCorpus(7, 400).ToList();
        var a = BpeTrainer.Train(corpus, 400, ["<pad>", "</s>"], new SpecialTokenRoles(Eos: "</s>", Pad: "<pad>"));
        var b = BpeTrainer.Train(corpus, 400, ["<pad>", "</s>"], new SpecialTokenRoles(Eos: "</s>", Pad: "<pad>"));
        Assert.Equal(a.Merges, b.Merges);
        Assert.Equal(400, a.VocabSize);
        Assert.Equal(400 - 2 - 256, a.Merges.Count);
        Assert.Equal(1, a.EosId);
        Assert.Equal(0, a.PadId);
        Assert.Null(a.BosId);
        foreach (var s in corpus.Take(50).Append("unseen: ☃ 𝔘 ǅ\t\n"))
        {
            var ids = a.Encode(s, false);
            Assert.Equal(b.Encode(s, false), ids);
            Assert.Equal(s, a.Decode(ids));
        }
        // Merges must have learnt the frequent words: far fewer tokens than bytes.
        var text = string.Join("", corpus.Take(50));
        Assert.True(a.Encode(text, false).Length * 2 < System.Text.Encoding.UTF8.GetByteCount(text));
        // Special tokens in the text are single ids; in training they were never merged.
        Assert.Equal([1], a.Encode("</s>", false));
        Assert.Equal("model", a.Decode(a.Encode("model</s>", false)));
    }

    /// <summary>The specification: recount every pair of every word at each step (what the Python reference does).</summary>
    static List<string> NaiveMerges(IEnumerable<string> corpus, int merges)
    {
        var words = new Dictionary<string, long>();
        foreach (var doc in corpus)
            foreach (System.Text.RegularExpressions.Match m in ByteLevel.Gpt2Regex.Matches(doc))
                words[m.Value] = words.GetValueOrDefault(m.Value) + 1;
        var ids = ByteLevel.Alphabet.Select((c, i) => (c.ToString(), i)).ToDictionary(x => x.Item1, x => x.i);
        var split = words.Select(kv => (Syms: ByteLevel.Encode(kv.Key).Select(c => c.ToString()).ToList(), F: kv.Value)).ToList();
        var result = new List<string>();
        for (int step = 0; step < merges; step++)
        {
            var counts = new Dictionary<(string, string), long>();
            foreach (var (syms, f) in split)
                for (int i = 0; i + 1 < syms.Count; i++) counts[(syms[i], syms[i + 1])] = counts.GetValueOrDefault((syms[i], syms[i + 1])) + f;
            if (counts.Count == 0) break;
            var best = counts.OrderByDescending(kv => kv.Value).ThenBy(kv => ids[kv.Key.Item1]).ThenBy(kv => ids[kv.Key.Item2]).First().Key;
            ids.TryAdd(best.Item1 + best.Item2, ids.Count);
            result.Add(best.Item1 + " " + best.Item2);
            foreach (var (syms, _) in split)
                for (int i = 0; i + 1 < syms.Count; i++)
                    if (syms[i] == best.Item1 && syms[i + 1] == best.Item2)
                    {
                        syms[i] = best.Item1 + best.Item2;
                        syms.RemoveAt(i + 1);
                    }
        }
        return result;
    }

    [Fact]
    public void IncrementalCountsGiveTheSameMergesAsRecountingEveryStep()
    {
        var corpus = SyntheticCorpus(3, 150).ToList();
        var tok = BpeTrainer.Train(corpus, 256 + 150, []);
        Assert.Equal(NaiveMerges(corpus, 150), tok.Merges.Select(m => m.Left + " " + m.Right).ToList());
    }

    [Fact]
    public void StopsWhenNoPairIsLeft()
    {
        var tok = BpeTrainer.Train(["ab ab ab"], 1000, []);
        // Words "ab" and " ab": merges a+b, Ġ+ab, then nothing is left to merge.
        Assert.Equal(["a b", "Ġ ab"], tok.Merges.Select(m => m.Left + " " + m.Right));
        Assert.Equal(258, tok.VocabSize);
    }

    [Fact]
    public void SaveThenLoadGivesTheSameTokenizer()
    {
        var corpus = SyntheticCorpus(11, 300).ToList();
        var tok = BpeTrainer.Train(corpus, 380, ["<|endoftext|>", "<|pad|>"], new SpecialTokenRoles(Bos: "<|endoftext|>", Eos: "<|endoftext|>", Pad: "<|pad|>"));
        tok.Save(_dir);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
        var back = (ByteLevelBpeTextTokenizer)TokenizerLoader.FromDirectory(_dir);
        Assert.Equal(tok.VocabSize, back.VocabSize);
        Assert.Equal(tok.Merges, back.Merges);
        Assert.Equal(tok.Pattern, back.Pattern);
        Assert.Equal((tok.BosId, tok.EosId, tok.PadId, tok.UnkId), (back.BosId, back.EosId, back.PadId, back.UnkId));
        for (int id = 0; id < tok.VocabSize; id++) Assert.Equal(tok.IdToToken(id), back.IdToToken(id));
        foreach (var s in corpus.Take(40).Append("<|endoftext|>héllo 🚀<|pad|>"))
        {
            Assert.Equal(tok.Encode(s), back.Encode(s));
            Assert.Equal(tok.Decode(tok.Encode(s), false), back.Decode(back.Encode(s), false));
        }
        // Saving again over the same directory replaces the files in place.
        tok.Save(_dir);
        Assert.Equal(2, Directory.GetFiles(_dir).Length);
    }

    [Fact]
    public void RejectsBadArguments()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => BpeTrainer.Train(["x"], 255, []));
        Assert.Throws<ArgumentOutOfRangeException>(() => BpeTrainer.Train(["x"], 257, ["a", "b"]));
        Assert.Throws<ArgumentException>(() => BpeTrainer.Train(["x"], 300, ["a", "a"]));
        Assert.Throws<ArgumentException>(() => BpeTrainer.Train(["x"], 300, [""]));
        Assert.Throws<ArgumentException>(() => BpeTrainer.Train(["x"], 300, ["<s>"], new SpecialTokenRoles(Eos: "</s>")));
    }
}
