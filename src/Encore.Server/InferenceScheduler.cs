// The continuous-batching scheduler: one thread owns the BatchDecoder and loops: admit queued requests
// whose sequences fit the free rows (all of them prefilled together), run one batch step, hand each
// token to its request. Requests leave the batch the step after they finish or are cancelled (client
// gone, timeout), so a slot freed at step k is refilled at step k + 1.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Encore.Generation;
using Encore.Models;

namespace Encore.Server;

/// <summary>One HTTP request's sequences on their way through the scheduler.</summary>
internal sealed class ScheduledRequest
{
    public ScheduledRequest(BatchSequence[] sequences, CancellationToken cancellationToken)
    {
        Sequences = sequences;
        CancellationToken = cancellationToken;
        foreach (var s in sequences) s.Tag = this;
    }

    public BatchSequence[] Sequences { get; }

    /// <summary>Choices each sequence answers: 1, or with superposed decoding the request's n (its best n drafts).</summary>
    public int ChoicesPerSequence { get; init; } = 1;

    /// <summary>Choices of the response: sequences × <see cref="ChoicesPerSequence"/>, choice i·n + j being sequence i's j-th.</summary>
    public int Choices => Sequences.Length * ChoicesPerSequence;

    /// <summary>
    /// The choices of sequence <paramref name="s"/> (finished): its own text and finish reason, or its best
    /// <see cref="ChoicesPerSequence"/> drafts (an empty one, "stop", for each draft fewer than asked).
    /// </summary>
    public IEnumerable<(string Text, FinishReason? Finish, int Tokens)> ChoicesOf(BatchSequence s)
    {
        if (s.Drafts is not { } drafts)
        {
            yield return (s.Text, s.Finish, s.GeneratedCount);
            yield break;
        }
        for (int j = 0; j < ChoicesPerSequence; j++)
            yield return j < drafts.Count ? (drafts[j].Text, drafts[j].Finish, drafts[j].Tokens.Length) : (string.Empty, FinishReason.Eos, 0);
    }

    /// <summary>Tokens of the choices answered (usage's completion_tokens); sequences still running count what they have.</summary>
    public int CompletionTokens => Sequences.Sum(s => s.Drafts != null ? ChoicesOf(s).Sum(c => c.Tokens) : s.GeneratedCount);

    public CancellationToken CancellationToken { get; }

    /// <summary>When the request arrived (Stopwatch ticks), for time to first token.</summary>
    public long ArrivedAt { get; } = Stopwatch.GetTimestamp();

    public bool FirstTokenSeen;

    /// <summary>Seconds from arrival to the first generated token (null until then).</summary>
    public double? FirstTokenSeconds;

    /// <summary>Events of this request's sequences, written by the scheduler thread; completed with an exception on failure.</summary>
    public Channel<BatchEvent> Events { get; } = Channel.CreateUnbounded<BatchEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
}

/// <summary>The scheduler thread and its bounded queue.</summary>
public sealed class InferenceScheduler : IDisposable
{
    readonly Generator _generator;
    readonly int _maxRows, _context, _maxQueue;
    readonly KvCacheDType _kvCacheDType;
    readonly EarlyExitOptions? _earlyExit;

    /// <summary>The layers the batch decoder has run under early exit (null without it).</summary>
    internal EarlyExitStats? ExitCounts => _decoder.ExitCounts;
    readonly ConcurrentQueue<ScheduledRequest> _queue = new();
    readonly SemaphoreSlim _signal = new(0);
    readonly Thread _thread;
    readonly CancellationTokenSource _stop = new();
    readonly HashSet<ScheduledRequest> _active = [];     // requests with sequences in the batch (scheduler thread only)
    BatchDecoder _decoder;
    int _queued;

    internal InferenceScheduler(Generator generator, int maxRows, int contextLength, int maxQueue, ServerMetrics metrics, KvCacheDType kvCacheDType = KvCacheDType.F32,
        EarlyExitOptions? earlyExit = null)
    {
        _kvCacheDType = kvCacheDType;
        _earlyExit = earlyExit;
        _generator = generator;
        _maxRows = maxRows;
        _context = contextLength;
        _maxQueue = maxQueue;
        Metrics = metrics;
        _decoder = new BatchDecoder(generator, maxRows, contextLength, kvCacheDType) { EarlyExit = earlyExit };
        metrics.KvCacheBytes = _decoder.CacheBytes;
        _thread = new Thread(Run) { IsBackground = true, Name = "encore-scheduler" };
        _thread.Start();
    }

    /// <summary>The figures the scheduler updates.</summary>
    public ServerMetrics Metrics { get; }

    /// <summary>Rows of the decode batch.</summary>
    public int MaxRows => _maxRows;

    /// <summary>Longest prompt accepted.</summary>
    public int MaxPromptLength => _decoder.MaxPromptLength;

    /// <summary>Most new tokens a prompt of <paramref name="promptLength"/> tokens can get.</summary>
    public int MaxNewTokens(int promptLength) => _decoder.MaxNewTokens(promptLength);

    /// <summary>Queues a request; false when the queue is full (the caller answers 429).</summary>
    internal bool TryEnqueue(ScheduledRequest request)
    {
        if (request.Sequences.Length > _maxRows) throw new ArgumentException($"{request.Sequences.Length} sequences exceed the batch of {_maxRows}");
        if (Interlocked.Increment(ref _queued) > _maxQueue)
        {
            Interlocked.Decrement(ref _queued);
            return false;
        }
        _queue.Enqueue(request);
        Metrics.QueueLength = Volatile.Read(ref _queued);
        _signal.Release();
        return true;
    }

    void Run()
    {
        var events = new List<BatchEvent>();
        var admitted = new List<ScheduledRequest>();
        var sequences = new List<BatchSequence>();
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                Admit(admitted, sequences);
                Metrics.QueueLength = Volatile.Read(ref _queued);
                Metrics.ActiveSequences = _decoder.ActiveCount;
                if (_decoder.ActiveCount == 0)
                {
                    // Idle: sleep until a request arrives (the timeout only re-checks shutdown).
                    _signal.Wait(200, _stop.Token);
                    continue;
                }
                events.Clear();
                _decoder.Step(events);
                int tokens = 0;
                foreach (var e in events)
                {
                    var r = (ScheduledRequest)e.Sequence.Tag!;
                    if (e.Token >= 0)
                    {
                        tokens++;
                        if (!r.FirstTokenSeen)
                        {
                            r.FirstTokenSeen = true;
                            r.FirstTokenSeconds = Stopwatch.GetElapsedTime(r.ArrivedAt).TotalSeconds;
                            Metrics.RecordTimeToFirstToken(r.FirstTokenSeconds.Value);
                        }
                    }
                    if (e.Finished && e.Sequence.Speculative is { } speculative) Metrics.RecordSpeculative(speculative);
                    r.Events.Writer.TryWrite(e);
                }
                Metrics.RecordStep(tokens);
                Metrics.ActiveSequences = _decoder.ActiveCount;
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // A failure inside the model fails the requests in the batch, never the server: the
                // batch starts over empty.
                FailActive(e);
            }
        }
        FailActive(ShuttingDown());
    }

    void Admit(List<ScheduledRequest> admitted, List<BatchSequence> sequences)
    {
        _active.RemoveWhere(r => r.Sequences.All(s => s.Finish != null || s.Cancelled));
        admitted.Clear();
        sequences.Clear();
        while (_queue.TryPeek(out var r))
        {
            if (r.CancellationToken.IsCancellationRequested)
            {
                _queue.TryDequeue(out _);
                Interlocked.Decrement(ref _queued);
                r.Events.Writer.TryComplete(new OperationCanceledException(r.CancellationToken));
                continue;
            }
            if (sequences.Count + r.Sequences.Length > _decoder.FreeRows) break;
            _queue.TryDequeue(out _);
            Interlocked.Decrement(ref _queued);
            admitted.Add(r);
            sequences.AddRange(r.Sequences);
        }
        if (admitted.Count == 0) return;
        try
        {
            _decoder.Add(sequences);
            _active.UnionWith(admitted);
        }
        catch (ArgumentException)
        {
            // One bad request must not keep the others out: add them one at a time.
            foreach (var r in admitted)
            {
                try
                {
                    _decoder.Add(r.Sequences);
                    _active.Add(r);
                }
                catch (ArgumentException e)
                {
                    r.Events.Writer.TryComplete(e);
                }
            }
        }
    }

    static ApiException ShuttingDown() => new(503, "the server is shutting down", null, "server_error", "shutting_down");

    void FailActive(Exception e)
    {
        foreach (var r in _active) r.Events.Writer.TryComplete(e);
        _active.Clear();
        try
        {
            _decoder.Dispose();
            if (!_stop.IsCancellationRequested) _decoder = new BatchDecoder(_generator, _maxRows, _context, _kvCacheDType) { EarlyExit = _earlyExit };
        }
        catch (Exception)
        {
            // Nothing more to do on the way out.
        }
    }

    /// <summary>Stops the thread, fails what is still queued or running, and frees the batch.</summary>
    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _thread.Join(TimeSpan.FromSeconds(30));
        while (_queue.TryDequeue(out var r)) r.Events.Writer.TryComplete(ShuttingDown());
        _stop.Dispose();
        _signal.Dispose();
    }
}
