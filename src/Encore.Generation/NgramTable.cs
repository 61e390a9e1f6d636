// An n-gram count table over a model's tokenizer, built from a corpus, for the n-gram interpolation of
// Superposed Decoding (Shen et al. 2024, arXiv 2405.18400; RAIVNLab/SuperposedDecoding builds bigram …
// six-gram tables from RedPajama with the Llama tokenizer, superposed/ngrams/). Counts only, no
// discounting: P_n(v | context) = count(context, v) / count(context, ·), the maximum-likelihood estimate
// the reference's NGram.prob returns. Interpolation mixes the orders whose context was seen.
//
// File (little-endian): "ENCNGRM1", u32 version, u32 order N, u32 vocab V, u32 reserved, u64 tokenizer
// fingerprint, u64 tokens; unigram counts V × u32; then per order n = 2 … N: u32 contexts C, u32 entries E,
// C × (n − 1) u32 context tokens (strictly increasing, lexicographic), C × u32 entries per context,
// E × u32 next tokens (strictly increasing within a context), E × u32 counts; last a u64 FNV-1a hash of
// every byte before it. Every count and size is checked against the bytes left before anything is allocated.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Encore.Formats;
using Encore.Formats.Tokenization;

namespace Encore.Generation;

/// <summary>
/// Counts of 1- to N-grams of token ids with interpolated next-token probabilities. Build one with
/// <see cref="Build"/> (or <c>encore ngram build</c>), keep it with <see cref="Save"/> and <see cref="Load"/>.
/// Immutable once built: one table may serve many requests at once.
/// </summary>
public sealed class NgramTable
{
    /// <summary>Longest order a table may have.</summary>
    public const int MaxOrder = 8;

    /// <summary>Largest vocabulary a table may have.</summary>
    public const int MaxVocabSize = 1 << 24;

    const ulong Magic = 0x314D52474E434E45UL;   // "ENCNGRM1" read as a little-endian u64
    const uint Version = 1;
    const int HeaderBytes = 8 + 4 * 4 + 8 + 8;

    readonly uint[] _unigrams;                  // (V) counts
    readonly Level[] _levels;                   // orders 2 … N

    /// <summary>The contexts of one order n and what followed each: a sorted table searched by bisection.</summary>
    sealed class Level(int contextLength, uint[] contexts, int[] starts, uint[] next, uint[] counts, long[] totals)
    {
        public readonly int ContextLength = contextLength;    // n − 1
        public readonly uint[] Contexts = contexts;           // (C, n − 1), strictly increasing
        public readonly int[] Starts = starts;                // (C + 1) offsets into Next and Counts
        public readonly uint[] Next = next;                   // (E) increasing within a context
        public readonly uint[] Counts = counts;               // (E)
        public readonly long[] Totals = totals;               // (C) sum of a context's counts

        public int ContextCount => Totals.Length;

        /// <summary>The index of <paramref name="context"/> (n − 1 tokens), or −1 when it was never seen.</summary>
        public int Find(ReadOnlySpan<int> context)
        {
            int lo = 0, hi = ContextCount - 1, m = ContextLength;
            while (lo <= hi)
            {
                int mid = (lo + hi) >>> 1;
                int c = Compare(Contexts.AsSpan(mid * m, m), context);
                if (c == 0) return mid;
                if (c < 0) lo = mid + 1;
                else hi = mid - 1;
            }
            return -1;
        }

        /// <summary>count(context c, token) / count(context c, ·).</summary>
        public double Probability(int c, int token)
        {
            int i = Array.BinarySearch(Next, Starts[c], Starts[c + 1] - Starts[c], (uint)token);
            return i < 0 ? 0 : (double)Counts[i] / Totals[c];
        }

        static int Compare(ReadOnlySpan<uint> a, ReadOnlySpan<int> b)
        {
            for (int i = 0; i < a.Length; i++)
                if (a[i] != (uint)b[i]) return a[i] < (uint)b[i] ? -1 : 1;
            return 0;
        }
    }

    NgramTable(int order, int vocabSize, ulong fingerprint, long tokens, uint[] unigrams, Level[] levels, string? path)
    {
        Order = order;
        VocabSize = vocabSize;
        TokenizerFingerprint = fingerprint;
        TokenCount = tokens;
        _unigrams = unigrams;
        _levels = levels;
        Path = path;
    }

    /// <summary>N: the longest n-gram counted (contexts of up to N − 1 tokens).</summary>
    public int Order { get; }

    /// <summary>V of the tokenizer the table was built with.</summary>
    public int VocabSize { get; }

    /// <summary>The <see cref="Fingerprint"/> of that tokenizer (0 when built from ids without one).</summary>
    public ulong TokenizerFingerprint { get; }

    /// <summary>Tokens counted.</summary>
    public long TokenCount { get; }

    /// <summary>The file it was loaded from or saved to (error messages name it); null for a table only built in memory.</summary>
    public string? Path { get; private set; }

    /// <summary>What error messages call the table: its file, or "the n-gram table".</summary>
    public string Name => Path is null ? "the n-gram table" : $"n-gram table {Path}";

    /// <summary>Distinct contexts of order <paramref name="order"/> (2 … N).</summary>
    public int ContextCount(int order) => _levels[order - 2].ContextCount;

    /// <summary>
    /// Counts the n-grams of <paramref name="documents"/> (token ids; an n-gram never spans two documents)
    /// up to <paramref name="order"/>, for a vocabulary of <paramref name="vocabSize"/>.
    /// <paramref name="tokenizerFingerprint"/> records the tokenizer (see <see cref="Fingerprint"/>).
    /// </summary>
    public static NgramTable Build(IEnumerable<int[]> documents, int vocabSize, int order, ulong tokenizerFingerprint = 0)
    {
        ArgumentNullException.ThrowIfNull(documents);
        if (order is < 1 or > MaxOrder) throw new ArgumentOutOfRangeException(nameof(order), order, $"the n-gram order must be in [1, {MaxOrder}]");
        if (vocabSize is < 1 or > MaxVocabSize) throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, $"the vocabulary size must be in [1, {MaxVocabSize}]");
        // Documents laid end to end; an n-gram starting at p is counted when it ends inside p's document.
        var tokens = new List<int>();
        var docEnd = new List<int>();
        foreach (var doc in documents)
        {
            if (doc.Length == 0) continue;
            if ((long)tokens.Count + doc.Length > int.MaxValue / 2) throw new ArgumentException($"the corpus holds more than {int.MaxValue / 2} tokens");
            foreach (int id in doc)
                if ((uint)id >= (uint)vocabSize) throw new ArgumentException($"token {id} is outside the vocabulary [0, {vocabSize})");
            tokens.AddRange(doc);
            docEnd.Add(tokens.Count);
        }
        if (tokens.Count == 0) throw new ArgumentException("the corpus has no tokens");
        var all = tokens.ToArray();
        var end = new int[all.Length];              // end of the document of each position
        for (int d = 0, p = 0; d < docEnd.Count; d++)
            for (; p < docEnd[d]; p++) end[p] = docEnd[d];

        var unigrams = new uint[vocabSize];
        foreach (int id in all) unigrams[id]++;
        var levels = new Level[order - 1];
        for (int n = 2; n <= order; n++) levels[n - 2] = CountLevel(all, end, n);
        return new NgramTable(order, vocabSize, tokenizerFingerprint, all.Length, unigrams, levels, null);
    }

    static Level CountLevel(int[] all, int[] end, int n)
    {
        var starts = new List<int>();
        for (int p = 0; p + n <= all.Length; p++)
            if (p + n <= end[p]) starts.Add(p);
        var order = starts.ToArray();
        // Lexicographic order of the n-token windows: contexts come out grouped and sorted, next tokens sorted within each.
        Array.Sort(order, (a, b) =>
        {
            for (int i = 0; i < n; i++)
                if (all[a + i] != all[b + i]) return all[a + i].CompareTo(all[b + i]);
            return 0;
        });
        var contexts = new List<uint>();
        var ctxStarts = new List<int>();
        var next = new List<uint>();
        var counts = new List<uint>();
        for (int i = 0; i < order.Length;)
        {
            int p = order[i];
            if (i == 0 || !all.AsSpan(p, n - 1).SequenceEqual(all.AsSpan(order[i - 1], n - 1)))
            {
                for (int j = 0; j < n - 1; j++) contexts.Add((uint)all[p + j]);
                ctxStarts.Add(next.Count);
            }
            int same = i + 1;
            while (same < order.Length && all.AsSpan(order[same], n).SequenceEqual(all.AsSpan(p, n))) same++;
            next.Add((uint)all[p + n - 1]);
            counts.Add((uint)(same - i));
            i = same;
        }
        ctxStarts.Add(next.Count);
        return MakeLevel(n - 1, contexts.ToArray(), ctxStarts.ToArray(), next.ToArray(), counts.ToArray());
    }

    static Level MakeLevel(int contextLength, uint[] contexts, int[] starts, uint[] next, uint[] counts)
    {
        var totals = new long[starts.Length - 1];
        for (int c = 0; c < totals.Length; c++)
            for (int i = starts[c]; i < starts[c + 1]; i++) totals[c] += counts[i];
        return new Level(contextLength, contexts, starts, next, counts, totals);
    }

    /// <summary>
    /// The interpolated probability of <paramref name="token"/> after <paramref name="history"/> (the tokens so
    /// far, oldest first): Σ_i w_i · P_{i+1}(token | last i tokens) / Σ_i w_i over the context lengths i = 1 … N − 1
    /// with <paramref name="weights"/>[i − 1] &gt; 0, i ≤ the history's length and the context seen in the corpus;
    /// the unigram distribution when there is none. Summed over the vocabulary it is 1.
    /// </summary>
    public double Probability(ReadOnlySpan<int> history, int token, IReadOnlyList<float> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if ((uint)token >= (uint)VocabSize) return 0;
        double sum = 0, norm = 0;
        int levels = Math.Min(Math.Min(_levels.Length, weights.Count), history.Length);
        for (int i = 1; i <= levels; i++)
        {
            float w = weights[i - 1];
            if (!(w > 0)) continue;
            var level = _levels[i - 1];
            int c = level.Find(history[^i..]);
            if (c < 0) continue;
            sum += w * level.Probability(c, token);
            norm += w;
        }
        return norm > 0 ? sum / norm : (double)_unigrams[token] / TokenCount;
    }

    /// <summary>The whole distribution of <see cref="Probability"/> over the vocabulary, into <paramref name="probabilities"/> (V).</summary>
    public void Distribution(ReadOnlySpan<int> history, IReadOnlyList<float> weights, Span<double> probabilities)
    {
        if (probabilities.Length != VocabSize) throw new ArgumentException($"{probabilities.Length} probabilities for a vocabulary of {VocabSize}");
        for (int v = 0; v < VocabSize; v++) probabilities[v] = Probability(history, v, weights);
    }

    /// <summary>
    /// A 64-bit fingerprint of a tokenizer: FNV-1a over its vocabulary size and every token's string (computed
    /// once per tokenizer). A table built with one tokenizer and used with another is refused by it.
    /// </summary>
    public static ulong Fingerprint(TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return s_fingerprints.GetValue(tokenizer, t =>
        {
            var h = new Fnv1a();
            var four = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(four, t.VocabSize);
            h.Add(four);
            for (int id = 0; id < t.VocabSize; id++)
            {
                var piece = t.IdToToken(id);
                BinaryPrimitives.WriteInt32LittleEndian(four, piece?.Length ?? -1);
                h.Add(four);
                if (piece != null) h.Add(System.Text.Encoding.UTF8.GetBytes(piece));
            }
            return new StrongBox<ulong>(h.Value);
        }).Value;
    }

    static readonly ConditionalWeakTable<TextTokenizer, StrongBox<ulong>> s_fingerprints = [];

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming the table's file and the field unless it fits a model of
    /// <paramref name="modelVocabSize"/> tokens and (when given) <paramref name="tokenizer"/>.
    /// </summary>
    public void CheckFits(int modelVocabSize, TextTokenizer? tokenizer)
    {
        if (tokenizer != null)
        {
            if (tokenizer.VocabSize != VocabSize)
                throw new ArgumentException($"{Name}: vocab_size {VocabSize} differs from the tokenizer's {tokenizer.VocabSize}; build the table with the model's tokenizer (encore ngram build)");
            ulong f = Fingerprint(tokenizer);
            if (TokenizerFingerprint != f)
                throw new ArgumentException($"{Name}: tokenizer_fingerprint {TokenizerFingerprint:x16} differs from the model's tokenizer ({f:x16}): it was built with another tokenizer; build it with the model's (encore ngram build)");
        }
        if (VocabSize > modelVocabSize)
            throw new ArgumentException($"{Name}: vocab_size {VocabSize} exceeds the model's {modelVocabSize}");
    }

    /// <summary>Writes the table to <paramref name="path"/> (atomically: a temporary file renamed), which it then names.</summary>
    public void Save(string path)
    {
        AtomicFile.Write(path, stream =>
        {
            var w = new Writer(new BufferedStream(stream, 1 << 20));
            w.U64(Magic);
            w.U32(Version);
            w.U32((uint)Order);
            w.U32((uint)VocabSize);
            w.U32(0);
            w.U64(TokenizerFingerprint);
            w.U64((ulong)TokenCount);
            w.U32s(_unigrams);
            foreach (var level in _levels)
            {
                w.U32((uint)level.ContextCount);
                w.U32((uint)level.Next.Length);
                w.U32s(level.Contexts);
                for (int c = 0; c < level.ContextCount; c++) w.U32((uint)(level.Starts[c + 1] - level.Starts[c]));
                w.U32s(level.Next);
                w.U32s(level.Counts);
            }
            w.Finish();
        });
        Path = path;
    }

    /// <summary>
    /// Reads a table written by <see cref="Save"/>. A file that is not one, is truncated, corrupt or
    /// inconsistent throws <see cref="CheckpointFormatException"/> naming the file and the field.
    /// </summary>
    public static NgramTable Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"{path}: no such n-gram table file", path);
        if (info.Length > int.MaxValue) throw new CheckpointFormatException($"{path}: {info.Length} bytes; an n-gram table holds at most {int.MaxValue}");
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Reads a table from the bytes of its file; <paramref name="name"/> names it in errors and becomes its <see cref="Path"/>.</summary>
    public static NgramTable Parse(ReadOnlySpan<byte> bytes, string name)
    {
        var r = new Reader(bytes, name);
        if (bytes.Length < 8 || BinaryPrimitives.ReadUInt64LittleEndian(bytes) != Magic)
            throw new CheckpointFormatException($"{name}: not an Encore n-gram table (no \"ENCNGRM1\" magic at the start)");
        if (bytes.Length < HeaderBytes + 8) throw r.Fail("header", $"the file has {bytes.Length} bytes, fewer than the {HeaderBytes + 8} of a header and checksum (truncated)");
        r.Skip(8);
        uint version = r.U32("version");
        if (version != Version) throw r.Fail("version", $"version {version} is not supported (this build reads {Version})");
        uint order = r.U32("order");
        if (order is < 1 or > MaxOrder) throw r.Fail("order", $"{order} is outside [1, {MaxOrder}]");
        uint vocab = r.U32("vocab_size");
        if (vocab is < 1 or > MaxVocabSize) throw r.Fail("vocab_size", $"{vocab} is outside [1, {MaxVocabSize}]");
        r.U32("reserved");
        ulong fingerprint = r.U64("tokenizer_fingerprint");
        ulong tokens = r.U64("tokens");
        if (tokens is 0 or > int.MaxValue) throw r.Fail("tokens", $"{tokens} is outside [1, {int.MaxValue}]");
        // The checksum before the body: a flipped bit anywhere reads as corruption, not as whichever field it lands in.
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(bytes[^8..]);
        var h = new Fnv1a();
        h.Add(bytes[..^8]);
        if (h.Value != stored)
            throw new CheckpointFormatException($"{name}: checksum {stored:x16} does not match the contents ({h.Value:x16}): the file is corrupt or truncated");
        int body = bytes.Length - 8;
        var unigrams = r.U32Array("unigram_counts", vocab, body);
        ulong unigramTotal = 0;
        foreach (uint c in unigrams) unigramTotal += c;
        if (unigramTotal != tokens) throw r.Fail("unigram_counts", $"they sum to {unigramTotal}, not the header's {tokens} tokens");
        var levels = new Level[order - 1];
        for (int n = 2; n <= order; n++)
        {
            string field = $"order {n}";
            int m = n - 1;
            uint contexts = r.U32($"{field} contexts"), entries = r.U32($"{field} entries");
            long need = (long)contexts * m * 4 + contexts * 4L + entries * 8L;
            if (need > body - r.Offset) throw r.Fail(field, $"{contexts} contexts and {entries} entries need {need} bytes; {body - r.Offset} are left (truncated)");
            if (entries < contexts) throw r.Fail(field, $"{entries} entries for {contexts} contexts: every context has at least one");
            var ctx = r.U32Array($"{field} contexts", contexts * (uint)m, body);
            var perContext = r.U32Array($"{field} entries per context", contexts, body);
            var next = r.U32Array($"{field} next tokens", entries, body);
            var counts = r.U32Array($"{field} counts", entries, body);
            var starts = new int[contexts + 1];
            long offset = 0;
            for (int c = 0; c < contexts; c++)
            {
                if (perContext[c] == 0) throw r.Fail($"{field} entries per context", $"context {c} has none");
                starts[c] = (int)offset;
                offset += perContext[c];
                if (offset > entries) throw r.Fail($"{field} entries per context", $"they sum past the {entries} entries");
            }
            if (offset != entries) throw r.Fail($"{field} entries per context", $"they sum to {offset}, not {entries}");
            starts[contexts] = (int)offset;
            foreach (uint t in ctx)
                if (t >= vocab) throw r.Fail($"{field} contexts", $"token {t} is outside the vocabulary [0, {vocab})");
            for (int c = 1; c < contexts; c++)
                if (ctx.AsSpan((c - 1) * m, m).SequenceCompareTo(ctx.AsSpan(c * m, m)) >= 0)
                    throw r.Fail($"{field} contexts", $"context {c} is not after context {c - 1} (they must be strictly increasing)");
            for (int c = 0; c < contexts; c++)
                for (int i = starts[c]; i < starts[c + 1]; i++)
                {
                    if (next[i] >= vocab) throw r.Fail($"{field} next tokens", $"token {next[i]} is outside the vocabulary [0, {vocab})");
                    if (i > starts[c] && next[i] <= next[i - 1]) throw r.Fail($"{field} next tokens", $"entry {i} is not after entry {i - 1} within its context");
                    if (counts[i] == 0) throw r.Fail($"{field} counts", $"entry {i} has a count of 0");
                }
            levels[n - 2] = MakeLevel(m, ctx, starts, next, counts);
        }
        if (r.Offset != body) throw r.Fail("checksum", $"{body - r.Offset} bytes follow the last order before the checksum");
        return new NgramTable((int)order, (int)vocab, fingerprint, (long)tokens, unigrams, levels, name);
    }

    /// <summary>A cursor over the file's bytes whose failures name the file, the field and the offset.</summary>
    ref struct Reader(ReadOnlySpan<byte> bytes, string name)
    {
        readonly ReadOnlySpan<byte> _bytes = bytes;
        readonly string _name = name;

        public int Offset { get; private set; }

        public readonly CheckpointFormatException Fail(string field, string problem) => new($"{_name}: {field} (at byte {Offset}): {problem}");

        public void Skip(int n) => Offset += n;

        public uint U32(string field)
        {
            if (_bytes.Length - Offset < 4) throw Fail(field, "the file ends here (truncated)");
            uint x = BinaryPrimitives.ReadUInt32LittleEndian(_bytes[Offset..]);
            Offset += 4;
            return x;
        }

        public ulong U64(string field)
        {
            if (_bytes.Length - Offset < 8) throw Fail(field, "the file ends here (truncated)");
            ulong x = BinaryPrimitives.ReadUInt64LittleEndian(_bytes[Offset..]);
            Offset += 8;
            return x;
        }

        // Checked against the bytes before `limit` before the array is allocated.
        public uint[] U32Array(string field, uint count, int limit)
        {
            if (count * 4L > limit - Offset) throw Fail(field, $"{count} values need {count * 4L} bytes; {Math.Max(0, limit - Offset)} are left (truncated)");
            var a = new uint[count];
            for (int i = 0; i < a.Length; i++) a[i] = BinaryPrimitives.ReadUInt32LittleEndian(_bytes[(Offset + 4 * i)..]);
            Offset += (int)(count * 4);
            return a;
        }
    }

    /// <summary>Little-endian writes that keep the checksum of everything written.</summary>
    sealed class Writer(BufferedStream stream)
    {
        readonly byte[] _b = new byte[8];
        Fnv1a _h = new();

        void Put(int n)
        {
            _h.Add(_b.AsSpan(0, n));
            stream.Write(_b, 0, n);
        }

        public void U32(uint x)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_b, x);
            Put(4);
        }

        public void U64(ulong x)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(_b, x);
            Put(8);
        }

        public void U32s(ReadOnlySpan<uint> values)
        {
            foreach (uint x in values) U32(x);
        }

        /// <summary>Appends the checksum and flushes.</summary>
        public void Finish()
        {
            BinaryPrimitives.WriteUInt64LittleEndian(_b, _h.Value);
            stream.Write(_b, 0, 8);
            stream.Flush();
        }
    }

    /// <summary>64-bit FNV-1a (Fowler, Noll, Vo): a checksum that catches flipped and truncated bytes, not an attacker.</summary>
    struct Fnv1a()
    {
        ulong _h = 14695981039346656037UL;

        public readonly ulong Value => _h;

        public void Add(ReadOnlySpan<byte> bytes)
        {
            ulong h = _h;
            foreach (byte b in bytes) h = (h ^ b) * 1099511628211UL;
            _h = h;
        }
    }
}
