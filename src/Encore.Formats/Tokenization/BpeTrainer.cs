namespace Encore.Formats.Tokenization;

/// <summary>Which of a trained tokenizer's special tokens play the model roles.</summary>
/// <param name="Bos">Beginning of sequence, or null.</param>
/// <param name="Eos">End of sequence, or null.</param>
/// <param name="Pad">Padding, or null.</param>
/// <param name="Unk">Unknown, or null (byte-level BPE never produces one).</param>
public sealed record SpecialTokenRoles(string? Bos = null, string? Eos = null, string? Pad = null, string? Unk = null);

/// <summary>
/// Trains a GPT-2-style byte-level BPE (Sennrich et al. 2016, "Neural Machine Translation of Rare
/// Words with Subword Units"; byte-level alphabet from GPT-2). The corpus is split by GPT-2's regex
/// into words counted once each; the vocabulary starts as the special tokens then the 256 byte
/// symbols, and each step merges the most frequent adjacent pair, ties going to the smallest
/// (left id, right id), so training is deterministic. Pair counts are updated only for the words a
/// merge touches (a posting list per pair, a lazily invalidated max-heap), so a step costs the size
/// of the affected words rather than a pass over the corpus.
/// </summary>
public static class BpeTrainer
{
    /// <summary>
    /// Learns merges from <paramref name="corpus"/> (each string a document) until the vocabulary
    /// holds <paramref name="vocabSize"/> tokens (specials and 256 bytes included) or no adjacent pair is left.
    /// </summary>
    public static ByteLevelBpeTextTokenizer Train(IEnumerable<string> corpus, int vocabSize, IEnumerable<string> specialTokens, SpecialTokenRoles? roles = null)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentNullException.ThrowIfNull(specialTokens);
        var specials = specialTokens.ToList();
        if (specials.Any(string.IsNullOrEmpty)) throw new ArgumentException("special tokens must be non-empty strings", nameof(specialTokens));
        if (specials.Distinct(StringComparer.Ordinal).Count() != specials.Count) throw new ArgumentException("special tokens repeat", nameof(specialTokens));
        if (vocabSize < specials.Count + 256)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), $"vocabSize {vocabSize} is below the {specials.Count} special tokens + 256 bytes");
        if (vocabSize > TokenizerFiles.MaxVocabSize)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), $"vocabSize {vocabSize} exceeds {TokenizerFiles.MaxVocabSize}");

        var tokens = new List<string>(vocabSize);
        var ids = new Dictionary<string, int>(vocabSize, StringComparer.Ordinal);
        tokens.AddRange(specials);
        foreach (char c in ByteLevel.Alphabet)
        {
            ids[c.ToString()] = tokens.Count;
            tokens.Add(c.ToString());
        }
        var byteId = new int[256];
        for (int b = 0; b < 256; b++) byteId[b] = ids[ByteLevel.ByteToChar((byte)b).ToString()];

        var (words, freq) = CountWords(corpus, specials, byteId);
        var merges = Merge(words, freq, tokens, ids, vocabSize);

        var vocab = new Dictionary<string, int>(ids, StringComparer.Ordinal);
        var added = specials.Select((s, i) => new AddedToken(s, i, true)).ToList();
        var data = new ByteLevelBpeData(vocab, merges, added, ByteLevel.Gpt2Pattern, false, false);
        roles ??= new SpecialTokenRoles();
        int? Role(string? name, string what) => name is null ? null
            : specials.IndexOf(name) is int i and >= 0 ? i : throw new ArgumentException($"the {what} token '{name}' is not one of the special tokens", nameof(roles));
        var special = new SpecialTokenIds
        {
            Bos = Role(roles.Bos, "bos"), Eos = Role(roles.Eos, "eos"), Pad = Role(roles.Pad, "pad"), Unk = Role(roles.Unk, "unk"),
            Added = added.ToDictionary(a => a.Content, a => a.Id, StringComparer.Ordinal),
            SpecialIds = new HashSet<int>(added.Select(a => a.Id)),
        };
        return new ByteLevelBpeTextTokenizer("trainer", data, special);
    }

    static (List<int[]> Words, List<long> Freq) CountWords(IEnumerable<string> corpus, List<string> specials, int[] byteId)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        var split = specials.Count == 0 ? null
            : new System.Text.RegularExpressions.Regex(string.Join('|', specials.OrderByDescending(s => s.Length).Select(System.Text.RegularExpressions.Regex.Escape)));
        foreach (var doc in corpus)
        {
            if (string.IsNullOrEmpty(doc)) continue;
            foreach (var part in split is null ? [doc] : split.Split(doc))
                for (var m = ByteLevel.Gpt2Regex.Match(part); m.Success; m = m.NextMatch())
                    counts[m.Value] = counts.GetValueOrDefault(m.Value) + 1;
        }
        var words = new List<int[]>(counts.Count);
        var freq = new List<long>(counts.Count);
        // Ordinal order makes the word list, and so every tie, independent of hash order.
        foreach (var (w, f) in counts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(w);
            var syms = new int[bytes.Length];
            for (int i = 0; i < bytes.Length; i++) syms[i] = byteId[bytes[i]];
            words.Add(syms);
            freq.Add(f);
        }
        return (words, freq);
    }

    static long Key(int a, int b) => (long)a << 32 | (uint)b;

    static List<(string, string)> Merge(List<int[]> words, List<long> freq, List<string> tokens, Dictionary<string, int> ids, int vocabSize)
    {
        var counts = new Dictionary<long, long>();
        var postings = new Dictionary<long, List<int>>();
        for (int w = 0; w < words.Count; w++)
        {
            var s = words[w];
            for (int i = 0; i + 1 < s.Length; i++)
            {
                long k = Key(s[i], s[i + 1]);
                counts[k] = counts.GetValueOrDefault(k) + freq[w];
                if (!postings.TryGetValue(k, out var list)) postings[k] = list = [];
                if (list.Count == 0 || list[^1] != w) list.Add(w);
            }
        }
        // Max-heap by count, ties to the smallest (left, right); entries whose count changed are stale and skipped.
        var heap = new PriorityQueue<long, (long NegCount, int A, int B)>();
        foreach (var (k, c) in counts) heap.Enqueue(k, (-c, (int)(k >> 32), (int)k));

        var merges = new List<(string, string)>();
        var seen = new int[words.Count];
        int stamp = 0;
        var changed = new HashSet<long>();
        var buffer = new List<int>();
        while (tokens.Count < vocabSize && heap.TryDequeue(out long key, out var prio))
        {
            long count = counts.GetValueOrDefault(key);
            if (count != -prio.NegCount || count <= 0) continue;
            int a = prio.A, b = prio.B;
            string merged = tokens[a] + tokens[b];
            if (!ids.TryGetValue(merged, out int id))
            {
                id = tokens.Count;
                ids[merged] = id;
                tokens.Add(merged);
            }
            merges.Add((tokens[a], tokens[b]));

            stamp++;
            changed.Clear();
            foreach (int w in postings[key])
            {
                if (seen[w] == stamp) continue;
                seen[w] = stamp;
                var s = words[w];
                long f = freq[w];
                buffer.Clear();
                bool hit = false;
                for (int i = 0; i < s.Length; i++)
                {
                    if (i + 1 < s.Length && s[i] == a && s[i + 1] == b)
                    {
                        buffer.Add(id);
                        i++;
                        hit = true;
                    }
                    else
                    {
                        buffer.Add(s[i]);
                    }
                }
                if (!hit) continue;
                for (int i = 0; i + 1 < s.Length; i++)
                {
                    long k = Key(s[i], s[i + 1]);
                    counts[k] -= f;
                    changed.Add(k);
                }
                var ns = buffer.ToArray();
                words[w] = ns;
                for (int i = 0; i + 1 < ns.Length; i++)
                {
                    long k = Key(ns[i], ns[i + 1]);
                    counts[k] = counts.GetValueOrDefault(k) + f;
                    changed.Add(k);
                    if (!postings.TryGetValue(k, out var list)) postings[k] = list = [];
                    if (list.Count == 0 || list[^1] != w) list.Add(w);
                }
            }
            counts.Remove(key);
            postings.Remove(key);
            foreach (long k in changed)
            {
                if (k == key) continue;
                long c = counts.GetValueOrDefault(k);
                if (c > 0) heap.Enqueue(k, (-c, (int)(k >> 32), (int)k));
                else
                {
                    counts.Remove(k);
                    postings.Remove(k);
                }
            }
        }
        return merges;
    }
}
