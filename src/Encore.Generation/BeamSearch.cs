namespace Encore.Generation;

/// <summary>
/// Beam search as Hugging Face's BeamSearchScorer (generation/beam_search.py). Each request keeps
/// K beams; at every step each beam's scores are log-softmaxed, processed, and added to its running
/// sum; the best 2K (beam, token) candidates of the request are taken in order: an EOS candidate
/// ranked in the top K becomes a finished hypothesis scored sum / length^α (length = new tokens before
/// the EOS, at least 1), others become the next beams until K are chosen. A request is done when it
/// holds K hypotheses and either early_stopping is set or (HF's heuristic) the best running sum,
/// normalized at the current length, cannot beat the worst hypothesis. At max_new_tokens the live
/// beams are added as hypotheses. The KV caches follow the beams through
/// <see cref="GenerationSession.Reorder"/>. Nothing streams: the best beam is known only at the end.
/// </summary>
public sealed class BeamSearchStrategy : IDecodingStrategy
{
    readonly int _beams;
    readonly double _alpha;
    readonly bool _earlyStopping;
    readonly int _return;

    /// <summary>Beam search with <paramref name="beams"/> beams returning the best <paramref name="returnSequences"/>.</summary>
    public BeamSearchStrategy(int beams, float lengthPenalty = 1f, bool earlyStopping = false, int returnSequences = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(beams, 1);
        if (returnSequences < 1 || returnSequences > beams) throw new ArgumentOutOfRangeException(nameof(returnSequences));
        _beams = beams;
        _alpha = lengthPenalty;
        _earlyStopping = earlyStopping;
        _return = returnSequences;
    }

    /// <inheritdoc />
    public int RowsPerRequest => _beams;

    sealed class Hypotheses(int capacity)
    {
        public readonly List<(double Score, SequenceState Seq)> Items = [];
        public bool Done;
        public double Worst => Items.Count == 0 ? double.PositiveInfinity : Items.Min(h => h.Score);

        public void Add(SequenceState s, double score)
        {
            if (Items.Count < capacity) Items.Add((score, s));
            else if (score > Worst)
            {
                Items.RemoveAt(Items.FindIndex(h => h.Score == Worst));
                Items.Add((score, s));
            }
        }
    }

    double Normalize(double sum, int length) => sum / Math.Pow(Math.Max(1, length), _alpha);

    /// <inheritdoc />
    public IEnumerable<TokenEvent> Run(DecodingContext context, CancellationToken cancellationToken)
    {
        Decode(context, cancellationToken);
        return [];
    }

    void Decode(DecodingContext context, CancellationToken ct)
    {
        var session = context.Session;
        int k = _beams, v = session.VocabSize, requests = context.Requests;
        if (session.Rows != requests * k) throw new ArgumentException($"the session has {session.Rows} rows, beam search needs {requests}×{k}");
        var beams = new SequenceState[session.Rows];
        var sums = new double[session.Rows];
        for (int r = 0; r < session.Rows; r++)
        {
            beams[r] = new SequenceState(session.InitialTokens(r));
            // Only the first beam is live at the start, so the first step does not pick K copies of one token (HF: beam_scores[:, 1:] = -1e9).
            sums[r] = r % k == 0 ? 0 : -1e9;
        }
        var hyps = Enumerable.Range(0, requests).Select(_ => new Hypotheses(k)).ToArray();
        var scores = new float[v];
        var candScores = new double[k * v];
        var parents = new int[session.Rows];
        var tokens = new int[session.Rows];
        var newSums = new double[session.Rows];
        int maxNew = context.Stop.MaxNewTokens;

        for (int step = 1; ; step++)
        {
            ct.ThrowIfCancellationRequested();
            for (int q = 0; q < requests; q++)
            {
                int first = q * k;
                if (hyps[q].Done)
                {
                    for (int j = 0; j < k; j++)
                    {
                        parents[first + j] = first + j;
                        tokens[first + j] = context.PadTokenId;
                        newSums[first + j] = sums[first + j];
                    }
                    continue;
                }
                for (int j = 0; j < k; j++)
                {
                    int r = first + j;
                    var logits = session.Logits.AsSpan(r * v, v);
                    double lse = Sampling.StepLogSumExp(logits);
                    for (int t = 0; t < v; t++) scores[t] = (float)(logits[t] - lse);
                    context.Process(beams[r], scores);
                    for (int t = 0; t < v; t++) candScores[j * v + t] = sums[r] + scores[t];
                }
                var top = TopIndices(candScores, 2 * k);
                int chosen = 0;
                for (int rank = 0; rank < top.Length && chosen < k; rank++)
                {
                    int idx = top[rank], j = idx / v, token = idx % v;
                    double sum = candScores[idx];
                    if (double.IsNegativeInfinity(sum)) break;
                    if (context.Stop.IsEos(token))
                    {
                        if (rank >= k) continue;
                        var done = beams[first + j].Clone();
                        done.Append(token);
                        done.Finish = FinishReason.Eos;
                        hyps[q].Add(done, Normalize(sum, done.GeneratedCount - 1));
                        continue;
                    }
                    parents[first + chosen] = first + j;
                    tokens[first + chosen] = token;
                    newSums[first + chosen] = sum;
                    chosen++;
                }
                for (; chosen < k; chosen++)
                {
                    // Fewer than K live continuations (tiny vocabularies, banned tokens): dead rows follow beam 0.
                    parents[first + chosen] = first;
                    tokens[first + chosen] = context.PadTokenId;
                    newSums[first + chosen] = double.NegativeInfinity;
                }
                if (hyps[q].Items.Count >= k)
                {
                    if (_earlyStopping) hyps[q].Done = true;
                    else
                    {
                        // HF is_done: the best candidate sum normalized at the length before this step's token.
                        double best = top.Length > 0 ? candScores[top[0]] : double.NegativeInfinity;
                        hyps[q].Done = hyps[q].Worst >= Normalize(best, step - 1);
                    }
                }
            }

            var next = new SequenceState[session.Rows];
            for (int r = 0; r < session.Rows; r++)
            {
                var s = beams[parents[r]].Clone();
                if (!hyps[r / k].Done) s.Append(tokens[r]);
                next[r] = s;
            }
            beams = next;
            Array.Copy(newSums, sums, sums.Length);
            if (hyps.All(h => h.Done) || step >= maxNew) break;
            ct.ThrowIfCancellationRequested();
            session.Reorder(parents);
            session.Advance(tokens);
        }

        for (int q = 0; q < requests; q++)
        {
            if (!hyps[q].Done)
                for (int j = 0; j < k; j++)
                {
                    int r = q * k + j;
                    if (double.IsNegativeInfinity(sums[r])) continue;
                    beams[r].Finish = FinishReason.Length;
                    hyps[q].Add(beams[r], Normalize(sums[r], beams[r].GeneratedCount));
                }
            context.Results[q] = hyps[q].Items
                .OrderByDescending(h => h.Score)
                .Take(_return)
                .Select(h => context.Stop.ToResult(h.Seq, h.Score))
                .ToArray();
        }
    }

    /// <summary>Indices of the <paramref name="n"/> largest values, largest first (ties to the smaller index, like a stable sort).</summary>
    internal static int[] TopIndices(double[] values, int n)
    {
        n = Math.Min(n, values.Length);
        // A min-heap of the best n so far: O(len · log n) rather than sorting all K·V candidates.
        var heap = new PriorityQueue<int, (double, int)>(n + 1, Comparer<(double Value, int Index)>.Create((a, b) =>
            a.Value != b.Value ? a.Value.CompareTo(b.Value) : b.Index.CompareTo(a.Index)));
        for (int i = 0; i < values.Length; i++)
        {
            heap.Enqueue(i, (values[i], i));
            if (heap.Count > n) heap.Dequeue();
        }
        var result = new int[heap.Count];
        for (int i = result.Length - 1; i >= 0; i--) result[i] = heap.Dequeue();
        return result;
    }
}
