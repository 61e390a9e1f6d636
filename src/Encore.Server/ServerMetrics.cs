using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Encore.Server;

/// <summary>
/// The figures <c>GET /metrics</c> reports, in the Prometheus text exposition format (version 0.0.4):
/// queue length, active sequences, generated tokens (a counter and a rate over the last 10 s),
/// batch steps, embedded inputs and tokens, requests by status, and a time-to-first-token histogram. Updated by the scheduler
/// thread and the request handlers; read under one lock.
/// </summary>
public sealed class ServerMetrics
{
    /// <summary>Upper bounds (seconds) of the time-to-first-token histogram buckets.</summary>
    public static readonly double[] TtftBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    const int RateWindowSeconds = 10;

    readonly object _lock = new();
    readonly long[] _ttftCounts = new long[TtftBuckets.Length];
    readonly long[] _tokensPerSecond = new long[RateWindowSeconds + 1];
    readonly long[] _secondOf = new long[RateWindowSeconds + 1];
    readonly Dictionary<int, long> _requests = [];
    double _ttftSum;
    long _ttftCount, _tokens, _steps, _embeddedInputs, _embeddedTokens;
    Generation.SpeculativeStats _speculative;

    /// <summary>True when the server decodes speculatively: the speculative counters are reported.</summary>
    public bool Speculates { get; init; }

    /// <summary>The speculative counts of the sequences finished so far.</summary>
    public Generation.SpeculativeStats Speculative { get { lock (_lock) return _speculative; } }

    /// <summary>Adds a finished sequence's speculative counts.</summary>
    internal void RecordSpeculative(Generation.SpeculativeStats stats)
    {
        lock (_lock) _speculative += stats;
    }

    /// <summary>True when the server routes between a swift and a super model: the routing counters are reported.</summary>
    public bool Routes { get; init; }

    /// <summary>With routing, the figures of the super model's scheduler (its batch, tokens and time to first token); else null.</summary>
    public ServerMetrics? Super { get; internal set; }

    long _routedSwift, _routedSuper;

    /// <summary>Requests the swift model answered (routing only).</summary>
    public long RoutedToSwift { get { lock (_lock) return _routedSwift; } }

    /// <summary>Requests the super model answered (routing only).</summary>
    public long RoutedToSuper { get { lock (_lock) return _routedSuper; } }

    /// <summary>Records which model a request was sent to.</summary>
    internal void RecordRouted(Generation.RoutedModel model)
    {
        lock (_lock)
        {
            if (model == Generation.RoutedModel.Super) _routedSuper++;
            else _routedSwift++;
        }
    }

    /// <summary>Requests waiting for a row.</summary>
    public int QueueLength { get; internal set; }

    /// <summary>Sequences in the decode batch.</summary>
    public int ActiveSequences { get; internal set; }

    /// <summary>Bytes held by the decode batch's KV caches (allocated once, for every row and the whole context).</summary>
    public long KvCacheBytes { get; internal set; }

    /// <summary>Tokens generated since start.</summary>
    public long GeneratedTokens { get { lock (_lock) return _tokens; } }

    /// <summary>Records one batch step that generated <paramref name="tokens"/> tokens.</summary>
    internal void RecordStep(int tokens)
    {
        long second = Stopwatch.GetTimestamp() / Stopwatch.Frequency;
        lock (_lock)
        {
            _steps++;
            _tokens += tokens;
            int slot = (int)(second % _tokensPerSecond.Length);
            if (_secondOf[slot] != second)
            {
                _secondOf[slot] = second;
                _tokensPerSecond[slot] = 0;
            }
            _tokensPerSecond[slot] += tokens;
        }
    }

    /// <summary>Records one request's time to first token.</summary>
    internal void RecordTimeToFirstToken(double seconds)
    {
        lock (_lock)
        {
            _ttftSum += seconds;
            _ttftCount++;
            for (int i = 0; i < TtftBuckets.Length; i++)
                if (seconds <= TtftBuckets[i]) _ttftCounts[i]++;
        }
    }

    /// <summary>Records one embeddings request's inputs and the tokens the encoder read for them.</summary>
    internal void RecordEmbeddings(int inputs, long tokens)
    {
        lock (_lock)
        {
            _embeddedInputs += inputs;
            _embeddedTokens += tokens;
        }
    }

    /// <summary>Records a finished request by its HTTP status.</summary>
    internal void RecordRequest(int status)
    {
        lock (_lock) _requests[status] = _requests.GetValueOrDefault(status) + 1;
    }

    /// <summary>Tokens per second over the last 10 whole seconds.</summary>
    public double TokensPerSecond
    {
        get
        {
            long now = Stopwatch.GetTimestamp() / Stopwatch.Frequency;
            lock (_lock)
            {
                long sum = 0;
                for (int i = 0; i < _tokensPerSecond.Length; i++)
                    if (_secondOf[i] < now && _secondOf[i] >= now - RateWindowSeconds) sum += _tokensPerSecond[i];
                return sum / (double)RateWindowSeconds;
            }
        }
    }

    /// <summary>The Prometheus text of every metric.</summary>
    public string ToPrometheusText()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        void Metric(string name, string type, string help, string value)
        {
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            sb.Append(name).Append(' ').Append(value).Append('\n');
        }
        double rate = TokensPerSecond;
        lock (_lock)
        {
            Metric("encore_queue_length", "gauge", "Requests waiting for a batch row.", QueueLength.ToString(inv));
            Metric("encore_active_sequences", "gauge", "Sequences in the decode batch.", ActiveSequences.ToString(inv));
            Metric("encore_kv_cache_bytes", "gauge", "Bytes held by the decode batch's KV caches.", KvCacheBytes.ToString(inv));
            Metric("encore_tokens_per_second", "gauge", "Generated tokens per second over the last 10 s.", rate.ToString("R", inv));
            Metric("encore_generated_tokens_total", "counter", "Tokens generated since start.", _tokens.ToString(inv));
            Metric("encore_batch_steps_total", "counter", "Decode steps run since start.", _steps.ToString(inv));
            if (Speculates)
            {
                Metric("encore_speculative_tokens_total", "counter", "Tokens of finished speculatively decoded sequences.", _speculative.Tokens.ToString(inv));
                Metric("encore_speculative_target_passes_total", "counter", "Passes of the model those tokens took (a speculative round is one pass; a plain step shared with other sequences counts one for each).", _speculative.TargetPasses.ToString(inv));
                Metric("encore_speculative_drafted_tokens_total", "counter", "Draft tokens proposed for verification.", _speculative.Drafted.ToString(inv));
                Metric("encore_speculative_accepted_tokens_total", "counter", "Draft tokens the model accepted.", _speculative.Accepted.ToString(inv));
            }
            if (Routes)
            {
                sb.Append("# HELP encore_routed_requests_total Generation requests by the model they were routed to (swift: the served model; super: --super-model).\n# TYPE encore_routed_requests_total counter\n");
                sb.Append("encore_routed_requests_total{model=\"swift\"} ").Append(_routedSwift.ToString(inv)).Append('\n');
                sb.Append("encore_routed_requests_total{model=\"super\"} ").Append(_routedSuper.ToString(inv)).Append('\n');
                if (Super is { } super)
                {
                    Metric("encore_super_queue_length", "gauge", "Requests waiting for a row of the super model's batch.", super.QueueLength.ToString(inv));
                    Metric("encore_super_active_sequences", "gauge", "Sequences in the super model's decode batch.", super.ActiveSequences.ToString(inv));
                    Metric("encore_super_kv_cache_bytes", "gauge", "Bytes held by the super model's KV caches.", super.KvCacheBytes.ToString(inv));
                    Metric("encore_super_generated_tokens_total", "counter", "Tokens the super model generated since start.", super.GeneratedTokens.ToString(inv));
                }
            }
            Metric("encore_embedded_inputs_total", "counter", "Inputs embedded since start.", _embeddedInputs.ToString(inv));
            Metric("encore_embedded_tokens_total", "counter", "Tokens the encoder read for embeddings since start.", _embeddedTokens.ToString(inv));
            sb.Append("# HELP encore_requests_total Finished HTTP generation requests by status code.\n# TYPE encore_requests_total counter\n");
            foreach (var (code, n) in _requests.OrderBy(kv => kv.Key))
                sb.Append("encore_requests_total{code=\"").Append(code.ToString(inv)).Append("\"} ").Append(n.ToString(inv)).Append('\n');
            sb.Append("# HELP encore_time_to_first_token_seconds Time from a request's arrival to its first generated token.\n");
            sb.Append("# TYPE encore_time_to_first_token_seconds histogram\n");
            for (int i = 0; i < TtftBuckets.Length; i++)
                sb.Append("encore_time_to_first_token_seconds_bucket{le=\"").Append(TtftBuckets[i].ToString("R", inv)).Append("\"} ").Append(_ttftCounts[i].ToString(inv)).Append('\n');
            sb.Append("encore_time_to_first_token_seconds_bucket{le=\"+Inf\"} ").Append(_ttftCount.ToString(inv)).Append('\n');
            sb.Append("encore_time_to_first_token_seconds_sum ").Append(_ttftSum.ToString("R", inv)).Append('\n');
            sb.Append("encore_time_to_first_token_seconds_count ").Append(_ttftCount.ToString(inv)).Append('\n');
        }
        return sb.ToString();
    }
}
