// Continuous batching (Orca, Yu et al. OSDI 2022, "iteration-level scheduling"): sequences join the
// running decode batch at the next step and leave as soon as they finish, instead of a batch running
// until its longest member ends. New sequences are prefilled together in a uniform session (the
// encoder runs once over their padded sources; decoder-only prompts of one length share a prefill),
// then their cache rows are copied into one batch cache whose rows each keep their own length
// (DecoderCache.RowLengths), so every step decodes all active rows at once, each at its own position.
using Encore.Autograd;
using Encore.Models;

namespace Encore.Generation;

/// <summary>
/// One sequence of a <see cref="BatchDecoder"/>: a prompt, its options and, when sampling, the
/// index of its sample stream (OpenAI's <c>n</c> choices are sequences 0 … n−1 of one seed, the
/// same streams <see cref="SamplingStrategy"/> draws for num_return_sequences).
/// </summary>
public sealed class BatchSequence
{
    /// <summary>A sequence continuing <paramref name="prompt"/> with <paramref name="options"/> (one sequence: num_beams and num_return_sequences are ignored).</summary>
    public BatchSequence(int[] prompt, GenerationOptions options, int sampleIndex = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegative(sampleIndex);
        Prompt = prompt;
        Options = options;
        SampleIndex = sampleIndex;
        CancellationToken = cancellationToken;
    }

    /// <summary>The prompt ids (the source of an encoder–decoder).</summary>
    public int[] Prompt { get; }

    /// <summary>The options.</summary>
    public GenerationOptions Options { get; }

    /// <summary>Which sample stream of the seed this sequence draws from.</summary>
    public int SampleIndex { get; }

    /// <summary>Cancels the sequence: it leaves the batch at the next step.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>Anything the caller wants to find again in events.</summary>
    public object? Tag { get; set; }

    /// <summary>
    /// The LoRA adapter this sequence decodes with (made for the decoder's model); rows of different adapters share
    /// the batch, each seeing its own. Null: the model's <see cref="LoraAdapters.Active"/> adapter, if any.
    /// </summary>
    public LoraAdapter? Adapter { get; init; }

    /// <summary>Why it ended (with superposed decoding, why its best draft did), or null while running (or when cancelled).</summary>
    public FinishReason? Finish => Drafts is { Count: > 0 } d ? d[0].Finish : State?.Finish;

    /// <summary>True when it left the batch through its cancellation token.</summary>
    public bool Cancelled { get; internal set; }

    /// <summary>Tokens generated so far (with superposed decoding: the steps so far, then the tokens of all its drafts).</summary>
    public int GeneratedCount => Drafts?.Sum(d => d.Tokens.Length) ?? Superposer?.Steps ?? State?.GeneratedCount ?? 0;

    /// <summary>The generated tokens (a final EOS included); with superposed decoding, its best draft's once finished.</summary>
    public int[] Tokens => Drafts is { Count: > 0 } d ? d[0].Tokens : Superposer != null ? [] : State?.Generated.ToArray() ?? [];

    /// <summary>
    /// With superposed options (<see cref="GenerationOptions.Superposed"/>), its k drafts, best first, once finished;
    /// else null. <see cref="Text"/> is then the best draft's text.
    /// </summary>
    public IReadOnlyList<GeneratedSequence>? Drafts { get; internal set; }

    /// <summary>With superposed options, the decoder passes that fed its drafts so far (see <see cref="GenerationResult.SuperposedPasses"/>); else null.</summary>
    public int? SuperposedPasses => Superposer?.Passes;

    /// <summary>The final text (cut before a stop string); valid once finished.</summary>
    public string Text { get; internal set; } = string.Empty;

    /// <summary>
    /// With speculative options, what speculative decoding did for this sequence so far (its rounds run in
    /// steps where it is the only active sequence); else null.
    /// </summary>
    public SpeculativeStats? Speculative => Speculator?.Stats;

    internal SequenceState? State;
    internal MultiTokenDecoder? Speculator;
    internal SuperposedDecoder? Superposer;
    internal IReadOnlyList<ILogitsProcessor> Processors = [];
    internal IReadOnlyList<ILogitsProcessor> Warpers = [];
    internal Xoshiro256? Rng;
    internal StopCriteria? Stop;
    internal StreamingText? Stream;
}

/// <summary>What one step did to one sequence: the token it chose and the text that became final.</summary>
/// <param name="Sequence">The sequence.</param>
/// <param name="Token">The token, or −1 when the sequence was cancelled.</param>
/// <param name="Text">Text now final (the last event of a sequence includes any text held back).</param>
/// <param name="Finished">True for the sequence's last event.</param>
public readonly record struct BatchEvent(BatchSequence Sequence, int Token, string Text, bool Finished);

/// <summary>
/// Decodes many independent sequences in one batch that changes every step: <see cref="Add"/> prefills
/// new ones, <see cref="Step"/> fixes one token for every active sequence, retires the finished and
/// cancelled, and runs one model step for the rest. Each sequence decodes exactly as it would alone
/// (its own positions, keys, processors and sample stream). A sequence whose options speculate
/// (<see cref="GenerationOptions.Speculates"/>) runs a speculative round in a step where it is the only
/// active sequence, which fixes up to draft_tokens + 1 tokens in one pass of the model, and plain steps
/// while it shares the batch: batch-1 decoding reads every weight for one token and is where drafts pay.
/// A sequence with superposed options (<see cref="GenerationOptions.Superposed"/>) takes one row too, fed the
/// superposition of its drafts' embeddings at every step (the other rows' inputs are their tokens, as a mixture
/// of one); it reports the leading draft's newest token each step, no text, and its drafts when it finishes.
/// Not thread-safe: one thread drives it.
/// </summary>
public sealed class BatchDecoder : IDisposable
{
    readonly Generator _generator;
    readonly LanguageModel _model;
    readonly DecoderCache _cache;
    readonly BatchSequence?[] _rows;
    readonly float[] _logits;              // (MaxRows, V): next-token scores of each active row
    readonly float[] _scores;              // (V) one row being processed
    readonly int[]?[] _tokens;             // per active-row count, the step's token array
    readonly Workspace _workspace = new();
    readonly LoneRowTarget _loneRow;
    readonly List<int> _fixed = [];
    readonly LoraAdapter?[] _rowAdapters;  // (MaxRows) each active row's adapter in a step with a per-row choice
    int[] _mixIds = [];                    // (active rows · M) the inputs of a step with superposed rows …
    float[] _mixWeights = [];              // … and their weights
    int _active;

    /// <summary>
    /// A decoder of up to <paramref name="maxRows"/> sequences at once, each with up to
    /// <paramref name="contextLength"/> decoder positions (an encoder–decoder also takes sources of up
    /// to that many tokens). The caches store keys and values as <paramref name="kvCacheDType"/>, for every
    /// sequence (their options' <see cref="GenerationOptions.KvCacheDType"/> is not read).
    /// </summary>
    public BatchDecoder(Generator generator, int maxRows, int contextLength, KvCacheDType kvCacheDType = KvCacheDType.F32)
    {
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        _model = generator.Model;
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);
        MaxRows = maxRows;
        ContextLength = contextLength;
        KvCacheDType = kvCacheDType;
        _cache = _model switch
        {
            EncoderDecoderModel ed => ed.CreateBatchCache(maxRows, contextLength, contextLength, kvCacheDType),
            DecoderOnlyModel dec => dec.CreateBatchCache(maxRows, contextLength, kvCacheDType),
            _ => throw new ArgumentException($"{_model.GetType().Name} does not generate text"),
        };
        _rows = new BatchSequence?[maxRows];
        VocabSize = _model.Config.VocabSize;
        _logits = new float[maxRows * VocabSize];
        _scores = new float[VocabSize];
        _tokens = new int[]?[maxRows + 1];
        _rowAdapters = new LoraAdapter?[maxRows];
        _loneRow = new LoneRowTarget(_model, _cache, _rowAdapters);
    }

    /// <summary>
    /// Early exit of the encoder and decoder for every sequence (<see cref="GenerationOptions.EarlyExit"/>; the
    /// sequences' own options are not read for it, as for the cache dtype): set before the first <see cref="Add"/>.
    /// Rows that exit at different layers of a step keep their own results (see <see cref="StackExit"/>). Default null (off).
    /// </summary>
    public EarlyExitOptions? EarlyExit
    {
        get => _earlyExit;
        set
        {
            if (_active > 0) throw new InvalidOperationException("set early exit before adding sequences");
            _earlyExit = value?.Validate();
            _cache.Exit = value is null ? null : new StackExit(value.DecoderThreshold, MaxRows);
            _encoderLayers = 0;
            _encoderExamples = 0;
        }
    }
    EarlyExitOptions? _earlyExit;
    long _encoderLayers, _encoderExamples;

    /// <summary>The layers run since <see cref="EarlyExit"/> was set (null without it): prompts encoded, and every step's tokens (a prefill's included).</summary>
    public EarlyExitStats? ExitCounts => _cache.Exit is { } d
        ? new EarlyExitStats(_encoderLayers, _encoderExamples, _model is EncoderDecoderModel ed ? ed.Encoder.Layers : 0, d.Layers, d.Units, _cache.Self.Length)
        : null;

    /// <summary>Sequences decoded together at most.</summary>
    public int MaxRows { get; }

    /// <summary>Decoder positions per sequence (and source tokens, for an encoder–decoder).</summary>
    public int ContextLength { get; }

    /// <summary>How the caches store keys and values.</summary>
    public KvCacheDType KvCacheDType { get; }

    /// <summary>V.</summary>
    public int VocabSize { get; }

    /// <summary>Sequences in the batch now.</summary>
    public int ActiveCount => _active;

    /// <summary>Rows free for new sequences.</summary>
    public int FreeRows => MaxRows - _active;

    /// <summary>Bytes held by the batch caches.</summary>
    public long CacheBytes => _cache.SelfBytes + _cache.CrossBytes;

    /// <summary>Longest prompt accepted: a decoder-only prompt leaves room for one new token.</summary>
    public int MaxPromptLength => _model is EncoderDecoderModel ? ContextLength : ContextLength - 1;

    /// <summary>Most new tokens a prompt of <paramref name="promptLength"/> tokens can get.</summary>
    public int MaxNewTokens(int promptLength) => _model is EncoderDecoderModel ? ContextLength - 1 : ContextLength - promptLength;

    /// <summary>
    /// Prefills <paramref name="sequences"/> and gives them rows; their first tokens are chosen at the
    /// next <see cref="Step"/>. Everything is checked before anything changes: a bad sequence throws
    /// <see cref="ArgumentException"/> and none is added.
    /// </summary>
    public void Add(IReadOnlyList<BatchSequence> sequences)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        if (sequences.Count == 0) return;
        if (sequences.Count > FreeRows) throw new InvalidOperationException($"{sequences.Count} sequences for {FreeRows} free rows");
        foreach (var s in sequences) Check(s);
        var config = _model.Config;
        // Sequences prefilled together: one encoder pass per decoder start token, or one prefill per prompt length.
        var groups = sequences.GroupBy(s => _model is EncoderDecoderModel ? s.Options.DecoderStartTokenId ?? config.DecoderStartTokenId : s.Prompt.Length);
        foreach (var group in groups)
        {
            var members = group.ToArray();
            int start = _model is EncoderDecoderModel ? group.Key : config.DecoderStartTokenId;
            // Prefilled into caches of the batch's dtype, so the rows copy as they are; each member's row with its adapter.
            var adapters = members.Select(m => m.Adapter ?? _model.Adapters.Active).ToArray();
            GenerationSession session;
            using (SelectAdapters(adapters, adapters.Length))
                session = GenerationSession.Create(_model, members.Select(m => m.Prompt).ToArray(), 1, 0, start, KvCacheDType, _earlyExit);
            using var owned = session;
            if (session.EncoderExit is { } encoded)
            {
                _encoderLayers += encoded.Layers;
                _encoderExamples += encoded.Units;
            }
            if (_earlyExit != null && _cache.Exit is { } decoded && session.Cache.Exit is { } prefilled)
                for (int i = 0; i < members.Length; i++)
                {
                    decoded.LayersByRow[0] += prefilled.LayersByRow[i];
                    decoded.UnitsByRow[0] += prefilled.UnitsByRow[i];
                }
            for (int i = 0; i < members.Length; i++)
            {
                int row = _active++;
                var s = members[i];
                _cache.LoadRow(row, session.Cache, i, _model is EncoderDecoderModel ? s.Prompt.Length : 0);
                session.Logits.AsSpan(i * VocabSize, VocabSize).CopyTo(_logits.AsSpan(row * VocabSize, VocabSize));
                Begin(s, session.InitialTokens(i), start);
                _rows[row] = s;
            }
        }
        _cache.ActiveRows = _active;
    }

    void Check(BatchSequence s)
    {
        if (s.State != null) throw new ArgumentException("this sequence was already added");
        var o = s.Options.Validate();
        o.ValidateIds(VocabSize);
        if (s.Prompt.Length == 0) throw new ArgumentException("the prompt is empty");
        if (s.Prompt.Length > MaxPromptLength) throw new ArgumentException($"the prompt has {s.Prompt.Length} tokens; this context holds at most {MaxPromptLength}");
        if (o.MaxNewTokens > MaxNewTokens(s.Prompt.Length))
            throw new ArgumentException($"{s.Prompt.Length} prompt tokens + {o.MaxNewTokens} new tokens exceed the context of {ContextLength}");
        foreach (int id in s.Prompt)
            if ((uint)id >= (uint)VocabSize) throw new ArgumentException($"prompt token {id} is outside the vocabulary [0, {VocabSize})");
        if (o.StopStrings.Count > 0 && _generator.Tokenizer is null) throw new ArgumentException("stop strings need a tokenizer");
        if (o.DraftModel is { } draft) SpeculativeDecoding.CheckDraft(_model, draft);
        _model.Adapters.Check(s.Adapter);
        o.Superposed?.Ngrams?.CheckFits(VocabSize, _generator.Tokenizer);
    }

    void Begin(BatchSequence s, int[] initial, int decoderStartTokenId)
    {
        var o = s.Options;
        var eos = _generator.EosIds(o);
        ulong seed = o.Seed ?? (ulong)Random.Shared.NextInt64();
        s.State = new SequenceState(initial, o.MaxNewTokens + 1);
        s.Processors = LogitsProcessors.FromOptions(o, eos);
        if (o.Samples)
        {
            s.Warpers = LogitsProcessors.WarpersFromOptions(o);
            s.Rng = new Xoshiro256(Xoshiro256.Derive(seed, s.SampleIndex));
        }
        s.Stop = new StopCriteria(eos, o.StopStrings, o.MaxNewTokens, _generator.Tokenizer, o.SkipSpecialTokens);
        s.Stream = new StreamingText(s.Stop, _generator.Tokenizer, o.SkipSpecialTokens);
        // Its choices go through the speculator in plain steps too: after a rejected draft, a sampled
        // sequence draws its next token from the residual distribution, whichever step that falls in.
        // A draft model's cache takes the batch's dtype too.
        if (o.Speculates) s.Speculator = SpeculativeDecoding.Create(_model, o with { KvCacheDType = KvCacheDType }, s.Prompt, decoderStartTokenId, eos, s.Stop, s.SampleIndex, seed);
        // An encoder–decoder's n-gram history is its output (the decoder start token is no text), as in SuperposedStrategy.
        if (o.Superposed is { } sp)
            s.Superposer = new SuperposedDecoder(new SequenceState(initial, o.MaxNewTokens + 1), sp, s.Processors, s.Stop, VocabSize, _model is EncoderDecoderModel ? initial.Length : 0);
    }

    /// <summary>
    /// Fixes the next token of every active sequence (processors, then greedy choice or a draw from
    /// its own stream), reports it in <paramref name="events"/>, retires the sequences that finished or
    /// were cancelled, and runs one model step for the others. Returns the number of events added.
    /// </summary>
    public int Step(List<BatchEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (_active == 1 && _rows[0] is { Speculator: { } speculator } lone && !lone.CancellationToken.IsCancellationRequested)
            return SpeculativeStep(lone, speculator, events);
        int added = 0, v = VocabSize;
        for (int r = 0; r < _active; r++)
        {
            var s = _rows[r]!;
            if (s.CancellationToken.IsCancellationRequested)
            {
                s.Cancelled = true;
                events.Add(new BatchEvent(s, -1, string.Empty, true));
                added++;
                continue;
            }
            if (s.Superposer is { } superposer)
            {
                events.Add(SuperposedEvent(s, superposer, _logits.AsSpan(r * v, v)));
                added++;
                continue;
            }
            var state = s.State!;
            int token = s.Speculator is { } sp ? sp.Choose(state, _logits.AsSpan(r * v, v)) : DecodeStep.Next(_logits.AsSpan(r * v, v), _scores, state, s.Processors, s.Warpers, s.Rng);
            bool done = s.Stop!.Update(state);
            string piece = s.Stream!.Push(token);
            if (done)
            {
                s.Text = s.Stop.Text(state.Generated);
                piece += s.Stream.Finish(s.Text);
            }
            events.Add(new BatchEvent(s, token, piece, done));
            added++;
        }
        Retire();
        if (_active == 0) return added;
        int mix = 0;
        for (int r = 0; r < _active; r++)
            if (_rows[r]!.Superposer is { } sp) mix = Math.Max(mix, sp.MixIds.Length);
        if (mix > 0)
        {
            StepMixed(mix);
            return added;
        }
        var tokens = _tokens[_active] ??= new int[_active];
        for (int r = 0; r < _active; r++)
        {
            var generated = _rows[r]!.State!.Generated;
            tokens[r] = generated[^1];
            _rows[r]!.Speculator?.CountPass();
        }
        using (_workspace.Use())
        using (SelectRowAdapters())
        {
            var output = _model is EncoderDecoderModel ed ? ed.DecodeStep(tokens, _cache) : ((DecoderOnlyModel)_model).DecodeStep(tokens, _cache);   // (b, 1, V)
            output.Value.AsReadOnlySpan<float>()[..(_active * v)].CopyTo(_logits);
        }
        return added;
    }

    // The active rows' adapters for one model step (a per-row choice only when some row differs from the model's active one).
    LoraAdapters.RowSelection SelectRowAdapters()
    {
        for (int r = 0; r < _active; r++) _rowAdapters[r] = _rows[r]!.Adapter ?? _model.Adapters.Active;
        return SelectAdapters(_rowAdapters, _active);
    }

    LoraAdapters.RowSelection SelectAdapters(LoraAdapter?[] adapters, int count)
    {
        var active = _model.Adapters.Active;
        for (int r = 0; r < count; r++)
            if (!ReferenceEquals(adapters[r], active)) return _model.Adapters.SelectRows(adapters, count);
        return default;   // every row sees the model's active adapter: no choice to make (disposing it changes nothing)
    }

    // One step of a superposed sequence: its drafts advance; the event carries the leading draft's newest token, and its drafts once it ends.
    static BatchEvent SuperposedEvent(BatchSequence s, SuperposedDecoder superposer, ReadOnlySpan<float> logits)
    {
        if (!superposer.Step(logits)) return new BatchEvent(s, superposer.Alive[0].Seq.Tokens[^1], string.Empty, false);
        s.Drafts = superposer.Results();
        s.Text = s.Drafts.Count > 0 ? s.Drafts[0].Text : string.Empty;
        return new BatchEvent(s, s.Drafts.Count > 0 && s.Drafts[0].Tokens.Length > 0 ? s.Drafts[0].Tokens[^1] : -1, string.Empty, true);
    }

    // A model step where some rows are superposed: every row's input is a mixture of M embeddings, a plain row's its token with weight 1.
    void StepMixed(int mix)
    {
        int n = _active * mix, v = VocabSize;
        if (_mixIds.Length != n)
        {
            _mixIds = new int[n];
            _mixWeights = new float[n];
        }
        for (int r = 0; r < _active; r++)
        {
            var s = _rows[r]!;
            var ids = _mixIds.AsSpan(r * mix, mix);
            var weights = _mixWeights.AsSpan(r * mix, mix);
            weights.Clear();
            if (s.Superposer is { } sp)
            {
                ids.Fill(sp.MixIds[0]);
                sp.MixIds.CopyTo(ids);
                sp.MixWeights.CopyTo(weights);
                sp.CountPass();
            }
            else
            {
                ids.Fill(s.State!.Generated[^1]);
                weights[0] = 1;
                s.Speculator?.CountPass();
            }
        }
        using (_workspace.Use())
        using (SelectRowAdapters())
        {
            var inputs = new TokenMixture(_mixIds, _mixWeights, mix);
            var output = _model is EncoderDecoderModel ed ? ed.DecodeStep(inputs, _cache) : ((DecoderOnlyModel)_model).DecodeStep(inputs, _cache);   // (b, 1, V)
            output.Value.AsReadOnlySpan<float>()[..(_active * v)].CopyTo(_logits);
        }
    }

    // Retires finished and cancelled rows; the last active row moves into each freed one so rows stay packed.
    void Retire()
    {
        int v = VocabSize;
        for (int r = _active - 1; r >= 0; r--)
        {
            var s = _rows[r]!;
            if (!s.Cancelled && s.Finish == null) continue;
            s.Speculator?.Dispose();
            int last = _active - 1;
            if (r != last)
            {
                _cache.MoveRow(r, last);
                _logits.AsSpan(last * v, v).CopyTo(_logits.AsSpan(r * v, v));
                _rows[r] = _rows[last];
            }
            _rows[last] = null;
            _active--;
        }
        _cache.ActiveRows = _active;
    }

    /// <summary>A speculative round of the only active sequence: its row of the batch cache takes the verification pass.</summary>
    int SpeculativeStep(BatchSequence s, MultiTokenDecoder speculator, List<BatchEvent> events)
    {
        var state = s.State!;
        _rowAdapters[0] = s.Adapter ?? _model.Adapters.Active;   // the lone row's adapter, read by _loneRow
        speculator.Round(state, _logits.AsSpan(0, VocabSize), _loneRow, _fixed);
        for (int i = 0; i < _fixed.Count; i++)
        {
            string piece = s.Stream!.Push(_fixed[i]);
            bool done = i == _fixed.Count - 1 && state.Finish != null;
            if (done)
            {
                s.Text = s.Stop!.Text(state.Generated);
                piece += s.Stream.Finish(s.Text);
            }
            events.Add(new BatchEvent(s, _fixed[i], piece, done));
        }
        Retire();
        return _fixed.Count;
    }

    /// <summary>Row 0 of the batch cache, when it is the only active row, as the model side of a speculative round.</summary>
    sealed class LoneRowTarget(LanguageModel model, DecoderCache cache, LoraAdapter?[] rowAdapters) : ISpeculativeTarget, IDisposable
    {
        readonly WorkspacesByLength _workspaces = new();
        readonly int[]?[] _tokens = new int[]?[WorkspacesByLength.MaxLength + 1];
        float[] _logits = [];

        public ReadOnlySpan<float> Feed(ReadOnlySpan<int> tokens)
        {
            int t = tokens.Length, v = model.Config.VocabSize;
            var ids = t <= WorkspacesByLength.MaxLength ? _tokens[t] ??= new int[t] : new int[t];
            tokens.CopyTo(ids);
            if (_logits.Length < t * v) _logits = new float[t * v];
            using (_workspaces.For(t).Use())
            using (ReferenceEquals(rowAdapters[0], model.Adapters.Active) ? default : model.Adapters.SelectRows(rowAdapters, 1))
            {
                var output = model is EncoderDecoderModel ed ? ed.DecodeStep(ids, cache) : ((DecoderOnlyModel)model).DecodeStep(ids, cache);   // (1, t, V)
                output.Value.AsReadOnlySpan<float>()[..(t * v)].CopyTo(_logits);
            }
            return _logits.AsSpan(0, t * v);
        }

        public void Forget(int count) => cache.TruncateRow(0, cache.RowLengths![0] - count);

        public void Dispose() => _workspaces.Dispose();
    }

    /// <summary>Frees the caches (the draft models' too).</summary>
    public void Dispose()
    {
        for (int r = 0; r < _active; r++) _rows[r]?.Speculator?.Dispose();
        _cache.Dispose();
        _workspace.Dispose();
        _loneRow.Dispose();
    }
}
