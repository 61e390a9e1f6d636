// Superposed Decoding (Shen, Fan, Pratt, Park, Wallingford, Kakade, Holtzman, Krishna, Farhadi and Kusupati
// 2024, "Superposed Decoding: Multiple Generations from a Single Autoregressive Inference Pass",
// arXiv 2405.18400; reference code RAIVNLab/SuperposedDecoding, superposed/llama/superpose.py): k drafts
// for the price of one decoder pass per step. The decoder is fed one input per step, the superposition
// Σ_d w_d · E[last token of draft d] with w = normalize(exp(ℓ_d)) over the drafts' scores ℓ_d, so one
// KV cache row holds the superposed states of all k drafts. From the one distribution that comes out,
// every draft takes the same top-n tokens as candidates (the processors see each draft's own tokens):
//   log p(v)  = log softmax(scores / T) renormalized over the top n tokens (superpose.py get_top_k);
//   log q_d(v) = (1 − α) log p(v) + α log p_ng(v | draft d), p_ng the n-gram table's interpolation; when
//               no candidate of a draft has an n-gram probability, (1 − α) log p(v) − 200 (superpose.py's penalty);
//   score     = ℓ_d + log q_d(v) over the k × n (draft, token) candidates; the best k that do not end
//               become the next drafts (on the first step only the prompt's own row is expanded).
// Bookkeeping follows beam search (tensor2tensor's, as the reference's; HF BeamSearchScorer's rule that a
// finishing candidate counts only among the best k): the best 2k candidates are taken in order, an EOS or
// stop-string candidate within the best k joins the finished drafts (the best k kept), the others continue.
// Decoding ends when no draft continues, at max_new_tokens (running drafts then finish by length), or once
// k drafts have finished and the best running score cannot beat the worst finished one (scores never
// rise: log q ≤ 0). With k = 1 and no n-gram table this is greedy decoding, token for token: one draft,
// weight 1, its input the token's own embedding, and the best candidate the argmax.
using Encore.Models;

namespace Encore.Generation;

/// <summary>
/// The settings of Superposed Decoding (see the file header; docs/decoding.md). Defaults are those of the
/// reference's <c>params/p15_d3_mixed.json</c>, the configuration of the paper's main results.
/// </summary>
public sealed record SuperposedOptions
{
    /// <summary>k: drafts decoded together and returned, best first. Default 3 (p15_d3_mixed n_drafts).</summary>
    public int Drafts { get; init; } = 3;

    /// <summary>
    /// n: the model's most likely next tokens every draft takes as candidates (the reference's n_token_sample;
    /// the paper's text describes n = k). At least k are taken. Default 9.
    /// </summary>
    public int Tokens { get; init; } = 9;

    /// <summary>
    /// T of softmax(scores / T), from which the candidates' probabilities, the drafts' scores and so their
    /// superposition weights come; a small T weights the leading draft heavily. Must be &gt; 0. Default 0.06.
    /// </summary>
    public float Temperature { get; init; } = 0.06f;

    /// <summary>The n-gram table of the interpolation, built with the model's tokenizer; null turns interpolation off. Default null.</summary>
    public NgramTable? Ngrams { get; init; }

    /// <summary>α, the weight of the n-gram distribution against the model's in log space (with <see cref="Ngrams"/>). Default 0.54.</summary>
    public float NgramAlpha { get; init; } = 0.54f;

    /// <summary>
    /// Interpolation weights of the bigram, trigram, … (context lengths 1, 2, …), renormalized over the orders
    /// whose context the table has seen (see <see cref="NgramTable.Probability"/>); orders past the table's are
    /// unused. Default [0.01, 0.04, 0.15, 0.18, 0.12] (bigram to six-gram, p15_d3_mixed i_weights).
    /// </summary>
    public IReadOnlyList<float> NgramWeights { get; init; } = [0.01f, 0.04f, 0.15f, 0.18f, 0.12f];

    /// <summary>Subtracted from the scores of a draft none of whose candidates the n-gram table has seen (superpose.py's penalty).</summary>
    public const double UnseenPenalty = 200;

    /// <summary>Most drafts.</summary>
    public const int MaxDrafts = 64;

    /// <summary>Checks every setting and returns this; throws <see cref="ArgumentException"/> naming the setting.</summary>
    public SuperposedOptions Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Check(Drafts is >= 1 and <= MaxDrafts, $"superposed drafts (k) must be in [1, {MaxDrafts}], got {Drafts}");
        Check(Tokens is >= 1 and <= 1024, $"superposed candidate tokens (n) must be in [1, 1024], got {Tokens}");
        Check(float.IsFinite(Temperature) && Temperature > 0, $"the superposed temperature must be a finite number > 0, got {Temperature}");
        Check(float.IsFinite(NgramAlpha) && NgramAlpha is >= 0 and <= 1, $"the n-gram alpha must be in [0, 1], got {NgramAlpha}");
        Check(NgramWeights is not null && NgramWeights.Count <= NgramTable.MaxOrder - 1 && NgramWeights.All(w => float.IsFinite(w) && w >= 0),
            $"n-gram weights must be at most {NgramTable.MaxOrder - 1} finite numbers ≥ 0");
        Check(Ngrams is null || NgramWeights!.Take(Ngrams.Order - 1).Any(w => w > 0),
            $"{Ngrams?.Name}: none of the n-gram weights applies to its orders 2 … {Ngrams?.Order}: give a weight > 0 to one of them");
        return this;
    }
}

/// <summary>
/// The k drafts of one prompt while they decode (see the file header): each step takes the logits of the
/// superposed input, chooses the next drafts and gives the next superposition (<see cref="MixIds"/>,
/// <see cref="MixWeights"/>).
/// </summary>
internal sealed class SuperposedDecoder
{
    readonly SuperposedOptions _o;
    readonly int _k, _n, _vocab, _historyStart;
    readonly IReadOnlyList<ILogitsProcessor> _processors;
    readonly StopCriteria _stop;
    List<(SequenceState Seq, double Score)> _alive;
    List<(SequenceState Seq, double Score)> _next;
    readonly List<(SequenceState Seq, double Score)> _finished = [];
    readonly Stack<SequenceState> _spare;   // sequences of dropped drafts, reused for the next ones
    readonly float[] _scores;
    readonly int[] _top;                  // (n) a draft's candidate tokens, best first
    readonly double[] _logp;              // (n) their log p
    readonly double[] _logq;              // (n) their log q
    readonly double[] _candScore;         // (k·n)
    readonly int[] _candToken;            // (k·n)
    readonly bool[] _taken;               // (k·n)
    readonly int[] _mixIds;               // (k)
    readonly float[] _mixWeights;         // (k)

    /// <summary>Drafts of <paramref name="initial"/> (the prompt, or the decoder start token); the n-gram history starts at token <paramref name="historyStart"/>.</summary>
    public SuperposedDecoder(SequenceState initial, SuperposedOptions options, IReadOnlyList<ILogitsProcessor> processors, StopCriteria stop, int vocabSize, int historyStart)
    {
        _o = options;
        _k = options.Drafts;
        _n = Math.Min(Math.Max(options.Tokens, options.Drafts), vocabSize);
        _vocab = vocabSize;
        _historyStart = historyStart;
        _processors = processors;
        _stop = stop;
        _alive = [(initial, 0)];
        _next = new(_k);
        _spare = new(2 * _k);
        _scores = new float[vocabSize];
        _top = new int[_n];
        _logp = new double[_n];
        _logq = new double[_n];
        _candScore = new double[_k * _n];
        _candToken = new int[_k * _n];
        _taken = new bool[_k * _n];
        _mixIds = new int[_k];
        _mixWeights = new float[_k];
    }

    /// <summary>True once no draft continues.</summary>
    public bool Done { get; private set; }

    /// <summary>Decoder passes that gave this prompt's logits: the first (after the encoder or the prefill) and one per step fed.</summary>
    public int Passes { get; private set; } = 1;

    /// <summary>The token ids of the next input, one per draft (k; padded with the first draft's, weight 0).</summary>
    public ReadOnlySpan<int> MixIds => _mixIds;

    /// <summary>The superposition weights of <see cref="MixIds"/>: the drafts' normalized probabilities exp(ℓ_d) / Σ exp(ℓ), summing to 1.</summary>
    public ReadOnlySpan<float> MixWeights => _mixWeights;

    /// <summary>The running drafts, best first.</summary>
    public IReadOnlyList<(SequenceState Seq, double Score)> Alive => _alive;

    /// <summary>Steps taken: tokens in the longest draft.</summary>
    public int Steps { get; private set; }

    /// <summary>Counts a pass of the model with <see cref="MixIds"/> as its input.</summary>
    public void CountPass() => Passes++;

    /// <summary>
    /// One step: chooses the next drafts from <paramref name="logits"/> (V), the model's scores after the last
    /// superposed input. Returns <see cref="Done"/>; when false, <see cref="MixIds"/> and <see cref="MixWeights"/>
    /// hold the next input.
    /// </summary>
    public bool Step(ReadOnlySpan<float> logits)
    {
        if (Done) return true;
        Steps++;
        for (int d = 0; d < _alive.Count; d++)
        {
            var (seq, score) = _alive[d];
            // Without processors every draft sees the same scores: one selection serves them all.
            if (d == 0 || _processors.Count > 0) Candidates(logits, seq);
            Interpolate(seq, d, score);
        }
        Select(_alive.Count * _n);
        return Done;
    }

    // The top-n tokens of `logits` processed for `seq`, and their tempered log-probabilities renormalized over them.
    void Candidates(ReadOnlySpan<float> logits, SequenceState seq)
    {
        logits.CopyTo(_scores);
        for (int i = 0; i < _processors.Count; i++) _processors[i].Process(seq.Tokens, seq.GeneratedCount, _scores);
        _perDraft = TopN(_scores, _top);
        if (_perDraft == 0) return;
        // log p = (s − s_max)/T − log Σ_top exp((s − s_max)/T), in double, so that the order of the float scores
        // is kept exactly (k = 1 then picks the argmax).
        double max = _scores[_top[0]], t = _o.Temperature, sum = 0;
        for (int j = 0; j < _perDraft; j++) sum += Math.Exp((_scores[_top[j]] - max) / t);
        double lse = Math.Log(sum);
        for (int j = 0; j < _perDraft; j++) _logp[j] = (_scores[_top[j]] - max) / t - lse;
    }

    // Draft d's candidates from the current top-n: score ℓ_d + log q, log q = (1 − α) log p + α log p_ng (log p without a table).
    void Interpolate(SequenceState seq, int d, double score)
    {
        int start = d * _n;
        var table = _o.Ngrams;
        if (table is null)
        {
            for (int j = 0; j < _perDraft; j++) _logq[j] = _logp[j];
        }
        else
        {
            var history = seq.Tokens[_historyStart..];
            double a = _o.NgramAlpha;
            bool any = false;
            for (int j = 0; j < _perDraft; j++)
            {
                double png = table.Probability(history, _top[j], _o.NgramWeights);
                any |= png > 0;
                _logq[j] = png > 0 ? (1 - a) * _logp[j] + a * Math.Log(png) : double.NegativeInfinity;
            }
            if (!any)
                for (int j = 0; j < _perDraft; j++) _logq[j] = (1 - a) * _logp[j] - SuperposedOptions.UnseenPenalty;
        }
        for (int j = 0; j < _perDraft; j++)
        {
            _candScore[start + j] = score + _logq[j];
            _candToken[start + j] = _top[j];
        }
        for (int j = _perDraft; j < _n; j++) _candScore[start + j] = double.NegativeInfinity;
    }

    int _perDraft;       // candidates this step (≤ n: fewer when fewer scores are finite)

    // The n highest finite scores, best first, ties to the smaller id (torch.argmax's order); returns how many.
    int TopN(ReadOnlySpan<float> scores, int[] top)
    {
        int m = 0;
        for (int v = 0; v < scores.Length; v++)
        {
            float x = scores[v];
            if (!float.IsFinite(x)) continue;
            if (m == top.Length && !(x > scores[top[m - 1]])) continue;
            int i = Math.Min(m, top.Length - 1);
            // Shift down the entries x beats (a later id never beats an equal score).
            while (i > 0 && x > scores[top[i - 1]])
            {
                top[i] = top[i - 1];
                i--;
            }
            top[i] = v;
            if (m < top.Length) m++;
        }
        return m;
    }

    // The best 2k candidates in order: finishing ones within the best k join the finished drafts, the best k others continue.
    void Select(int count)
    {
        Array.Clear(_taken);
        _next.Clear();
        for (int rank = 0; rank < 2 * _k; rank++)
        {
            int best = -1;
            for (int c = 0; c < count; c++)
                if (!_taken[c] && double.IsFinite(_candScore[c]) && (best < 0 || _candScore[c] > _candScore[best])) best = c;
            if (best < 0) break;
            _taken[best] = true;
            int token = _candToken[best];
            double score = _candScore[best];
            if (rank >= _k && _stop.IsEos(token)) continue;
            var parent = _alive[best / _n].Seq;
            SequenceState seq;
            if (_spare.TryPop(out var reused)) { reused.CopyFrom(parent); seq = reused; }
            else seq = parent.Clone();
            seq.Append(token);
            seq.LogProb = score;
            _stop.Update(seq);
            if (seq.Finish is FinishReason.Eos or FinishReason.StopString)
            {
                if (rank < _k) AddFinished(seq, score);
                continue;
            }
            _next.Add((seq, score));
            if (_next.Count == _k) break;
        }
        (_alive, _next) = (_next, _alive);
        // The last step's drafts are all copied into this step's or dropped: their storage serves the next step.
        foreach (var (old, _) in _next) _spare.Push(old);
        _next.Clear();
        if (_alive.Count == 0) Done = true;
        else if (_alive[0].Seq.Finish == FinishReason.Length)
        {
            // Every draft has as many tokens: all reached max_new_tokens.
            foreach (var a in _alive) AddFinished(a.Seq, a.Score);
            _alive.Clear();
            Done = true;
        }
        else if (_finished.Count >= _k && _alive[0].Score <= WorstFinished()) Done = true;
        if (!Done) Superpose();
    }

    double WorstFinished()
    {
        double worst = double.PositiveInfinity;
        foreach (var f in _finished) worst = Math.Min(worst, f.Score);
        return worst;
    }

    void AddFinished(SequenceState seq, double score)
    {
        if (_finished.Count < _k) _finished.Add((seq, score));
        else
        {
            int worst = 0;
            for (int i = 1; i < _finished.Count; i++) if (_finished[i].Score < _finished[worst].Score) worst = i;
            if (score > _finished[worst].Score) _finished[worst] = (seq, score);
        }
    }

    // w_d = exp(ℓ_d − ℓ_max) / Σ (superpose.py superposition_matrix: the drafts' probabilities, normalized).
    void Superpose()
    {
        double max = _alive[0].Score, sum = 0;
        foreach (var a in _alive) sum += Math.Exp(a.Score - max);
        for (int d = 0; d < _k; d++)
        {
            if (d < _alive.Count)
            {
                _mixIds[d] = _alive[d].Seq.Tokens[^1];
                _mixWeights[d] = (float)(Math.Exp(_alive[d].Score - max) / sum);
            }
            else
            {
                _mixIds[d] = _mixIds[0];
                _mixWeights[d] = 0;
            }
        }
    }

    /// <summary>The drafts, best first: the finished ones and (when decoding was cut short) the running ones, at most k.</summary>
    public GeneratedSequence[] Results()
    {
        var all = _finished.Concat(_alive).OrderByDescending(x => x.Score).Take(_k);
        return all.Select(x => _stop.ToResult(x.Seq, x.Score)).ToArray();
    }
}

/// <summary>
/// Superposed Decoding as a strategy: each request is one session row whose input at every step is the
/// superposition of its k drafts (see the file header); its result is the k drafts, best first, each scored
/// by ℓ, its sum of log q. Nothing streams: a draft may be replaced by a continuation of another until the end.
/// </summary>
public sealed class SuperposedStrategy : IDecodingStrategy
{
    readonly SuperposedOptions _options;

    /// <summary>A strategy with <paramref name="options"/>.</summary>
    public SuperposedStrategy(SuperposedOptions options) => _options = (options ?? throw new ArgumentNullException(nameof(options))).Validate();

    /// <inheritdoc />
    public int RowsPerRequest => 1;

    /// <summary>Per request of the last run, the decoder passes that fed it (see <see cref="SuperposedDecoder.Passes"/>).</summary>
    public int[] Passes { get; private set; } = [];

    /// <inheritdoc />
    public IEnumerable<TokenEvent> Run(DecodingContext context, CancellationToken cancellationToken)
    {
        Decode(context, cancellationToken);
        return [];
    }

    void Decode(DecodingContext context, CancellationToken ct)
    {
        var session = context.Session;
        int rows = session.Rows, v = session.VocabSize, k = _options.Drafts;
        if (rows != context.Requests) throw new ArgumentException($"the session has {rows} rows for {context.Requests} requests; superposed decoding needs one row per request");
        _options.Ngrams?.CheckFits(v, null);
        var decoders = new SuperposedDecoder[rows];
        for (int r = 0; r < rows; r++)
        {
            var initial = session.InitialTokens(r);
            // An encoder–decoder's n-gram history is its output (the decoder start token is no text); a decoder-only model's includes the prompt.
            int historyStart = session is EncoderDecoderSession ? initial.Length : 0;
            decoders[r] = new SuperposedDecoder(new SequenceState(initial, context.Stop.MaxNewTokens + 1), _options, context.Processors, context.Stop, v, historyStart);
        }
        var ids = new int[rows * k];
        var weights = new float[rows * k];
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            bool all = true;
            for (int r = 0; r < rows; r++)
                all &= decoders[r].Done || decoders[r].Step(session.Logits.AsSpan(r * v, v));
            if (all) break;
            for (int r = 0; r < rows; r++)
            {
                if (decoders[r].Done)
                {
                    // A finished row is fed padding until the others end.
                    ids.AsSpan(r * k, k).Fill(context.PadTokenId);
                    weights.AsSpan(r * k, k).Clear();
                    weights[r * k] = 1;
                    continue;
                }
                decoders[r].MixIds.CopyTo(ids.AsSpan(r * k, k));
                decoders[r].MixWeights.CopyTo(weights.AsSpan(r * k, k));
                decoders[r].CountPass();
            }
            ct.ThrowIfCancellationRequested();
            session.AdvanceMixed(ids, weights, k);
        }
        Passes = decoders.Select(d => d.Passes).ToArray();
        for (int q = 0; q < rows; q++) context.Results[q] = decoders[q].Results();
    }
}
