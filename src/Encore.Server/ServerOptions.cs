using Encore.Generation;
using Encore.Models;

namespace Encore.Server;

/// <summary>How the server listens and how much work it takes on. Each option has one documented default.</summary>
public sealed record ServerOptions
{
    /// <summary>Address to listen on: an IP address or "localhost". Default 127.0.0.1 (loopback only).</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (see <see cref="EncoreServer.BaseAddress"/>). Default 8080.</summary>
    public int Port { get; init; } = 8080;

    /// <summary>Name under which the model is served (<c>GET /v1/models</c>, the request's <c>model</c>). Default "encore".</summary>
    public string ModelName { get; init; } = "encore";

    /// <summary>Sequences decoded together at most (a request with n choices takes n). Default 32.</summary>
    public int MaxBatch { get; init; } = 32;

    /// <summary>Requests waiting for a batch row at most; one more is answered 429. Default 256.</summary>
    public int MaxQueue { get; init; } = 256;

    /// <summary>Decoder positions per sequence (and source tokens of an encoder–decoder). Default null: the model's max_positions, at most 1024.</summary>
    public int? ContextLength { get; init; }

    /// <summary>
    /// How the decode batch's KV caches store keys and values, for every request: f32, or int8 with one
    /// scale per head and position (about a quarter of the cache memory, so more rows or longer contexts
    /// fit). Default f32.
    /// </summary>
    public KvCacheDType KvCacheDType { get; init; } = KvCacheDType.F32;

    /// <summary>
    /// Token ids that end every request's sequences, e.g. a checkpoint's generation_config.json
    /// <c>eos_token_id</c> list, which <c>encore serve</c> reads (Llama 3 instruct models end a turn with
    /// &lt;|eot_id|&gt;, not the tokenizer's EOS). Default null: the model's and the tokenizer's EOS.
    /// </summary>
    public IReadOnlyList<int>? EosTokenIds { get; init; }

    /// <summary>
    /// Early exit of the encoder and decoder for every request (<see cref="GenerationOptions.EarlyExit"/>;
    /// <c>--exit-threshold</c>): one setting for the whole batch, since its rows step together. Default null (off).
    /// </summary>
    public EarlyExitOptions? EarlyExit { get; init; }

    /// <summary>
    /// Speculative decoding for every request with this draft model (a smaller model of the same family
    /// and tokenizer; see <see cref="GenerationOptions.DraftModel"/>). A sequence speculates in the decode
    /// steps where it is the only one in the batch (batch-1 decoding, where reading the weights bounds the
    /// rate and verifying several drafts costs little more than one step) and decodes in plain batched steps
    /// while it shares the batch; its output is the same either way (greedy: token for token; sampling: in
    /// distribution). Default null (off).
    /// </summary>
    public LanguageModel? DraftModel { get; init; }

    /// <summary>Speculative decoding for every request with prompt-lookup drafts (see <see cref="GenerationOptions.PromptLookup"/> and <see cref="DraftModel"/>). Default false.</summary>
    public bool PromptLookup { get; init; }

    /// <summary>Tokens drafted per verification pass (see <see cref="GenerationOptions.DraftTokens"/>). Default 4.</summary>
    public int DraftTokens { get; init; } = new GenerationOptions().DraftTokens;

    /// <summary>Longest n-gram prompt lookup matches (see <see cref="GenerationOptions.PromptLookupMaxNgram"/>). Default 3.</summary>
    public int PromptLookupMaxNgram { get; init; } = new GenerationOptions().PromptLookupMaxNgram;

    /// <summary>
    /// Superposed Decoding for every request (see <see cref="GenerationOptions.Superposed"/>): a request with n choices
    /// is decoded with max(<see cref="SuperposedOptions.Drafts"/>, n) drafts in one batch row, and its best n drafts
    /// are its choices, so n alternatives cost one sequence's decoder passes. The drafts are chosen deterministically:
    /// temperature, top_p and seed do not apply; a stream sends each choice's text when the drafts end. Not with
    /// speculative decoding. Default null (off).
    /// </summary>
    public SuperposedOptions? Superposed { get; init; }

    /// <summary>
    /// LoRA adapters served over the one base model, by name (each made for the served model): a request whose
    /// <c>model</c> is <c>NAME:ADAPTER</c> (<see cref="ModelName"/>, a colon, the adapter's name) decodes with that
    /// adapter, one without a colon with the base alone. Rows of different adapters share the decode batch, each
    /// with its own delta. Default none.
    /// </summary>
    public IReadOnlyDictionary<string, LoraAdapter> Adapters { get; init; } = new Dictionary<string, LoraAdapter>();

    /// <summary>
    /// Swift/super routing (E-LANG, arXiv 2203.00748; see <see cref="RoutedGenerator"/>): the served model is the swift
    /// one, and a request whose score under <see cref="Routing"/> (read from the swift model's first decoding step, before
    /// anything is streamed) is above the threshold is decoded by this larger model instead, in a decode batch of its own.
    /// It must share the served model's tokenizer; a request must fit both models' contexts. The response's
    /// <c>X-Encore-Routed-To</c> header and the request log say which model answered, and <c>/metrics</c> counts both.
    /// Not with speculative or superposed decoding or adapters. Default null (off).
    /// </summary>
    public LanguageModel? SuperModel { get; init; }

    /// <summary>How requests are sent to <see cref="SuperModel"/>: signal, temperature, threshold; the span must be the first step. Default: energy at the first step, nothing routed.</summary>
    public RoutingOptions Routing { get; init; } = new() { Span = RoutingSpan.FirstStep };

    /// <summary>True when the server routes between the served model and <see cref="SuperModel"/>.</summary>
    public bool Routes => SuperModel != null;

    /// <summary>The model id of adapter <paramref name="adapter"/>: <c>ModelName:adapter</c>.</summary>
    public string AdapterModelId(string adapter) => ModelName + ":" + adapter;

    /// <summary>
    /// Lexical-unit decoding for every request (see <see cref="GenerationOptions.LexicalUnits"/>), for a model
    /// fine-tuned for it: a sequence fixes several tokens per pass while it is the only one decoding, one per
    /// step of the batch otherwise. Default null (off).
    /// </summary>
    public LexicalUnitOptions? LexicalUnits { get; init; }

    /// <summary>True when the server may fix several tokens of a sequence per pass (speculative or lexical-unit decoding).</summary>
    public bool Speculates => DraftModel != null || PromptLookup || LexicalUnits != null;

    /// <summary>
    /// The template that flattens /v1/chat/completions messages into a prompt (see <see cref="Generation.ChatTemplate"/>).
    /// Default null: the one the tokenizer's checkpoint ships (chat_template.jinja or tokenizer_config.json's
    /// chat_template), else the plain-text "User:/Assistant:" default.
    /// </summary>
    public ChatTemplate? ChatTemplate { get; init; }

    /// <summary>A request still running after this long is cancelled. Default 300 s.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>Largest request body accepted (bytes); a larger one gets 413. Default 1 MiB.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;

    /// <summary>Most choices (<c>n</c>) one request may ask for. Default 16 (and never more than <see cref="MaxBatch"/>, or with <see cref="Superposed"/> the most drafts, 64).</summary>
    public int MaxChoices { get; init; } = 16;

    /// <summary>max_tokens of a chat request that gives none (capped by the context). Default 256.</summary>
    public int DefaultChatMaxTokens { get; init; } = 256;

    /// <summary>max_tokens of a completion request that gives none (OpenAI's default). Default 16.</summary>
    public int DefaultCompletionMaxTokens { get; init; } = 16;

    /// <summary>
    /// Characters a prompt may have per context position, checked before the prompt is tokenized so an
    /// oversized prompt costs no tokenizer time: a prompt (or a chat's formatted conversation) of more
    /// than <see cref="MaxPromptCharacters"/> = this × the context length is answered 400
    /// (context_length_exceeded). Published tokenizers average 3 to 6 characters of text per token;
    /// 32 leaves room for long runs of whitespace or repeated symbols. Default 32.
    /// </summary>
    public int PromptCharactersPerPosition { get; init; } = 32;

    /// <summary>
    /// A key clients must send as <c>Authorization: Bearer &lt;key&gt;</c>; a request without it or with
    /// another gets 401. <c>GET /health</c> stays open for liveness probes. Default null (no key asked).
    /// </summary>
    public string? ApiKey { get; init; }

    /// <summary>
    /// How <c>POST /v1/embeddings</c> embeds: pooling, normalization, length limit and batch size (a
    /// request's <c>dimensions</c> may cut the vectors further). Default: mean pooling, unit length, the
    /// model's positions; <c>encore serve</c> sets the checkpoint's sentence-transformers settings.
    /// </summary>
    public EmbeddingOptions Embedding { get; init; } = new();

    /// <summary>Most inputs one <c>POST /v1/embeddings</c> request may hold; more is a 400. Default 2048 (OpenAI's limit).</summary>
    public int MaxEmbeddingInputs { get; init; } = 2048;

    /// <summary>Most characters of one prompt for a context of <paramref name="contextLength"/> positions.</summary>
    public long MaxPromptCharacters(int contextLength) => (long)PromptCharactersPerPosition * contextLength;

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the option.</summary>
    public ServerOptions Validate()
    {
        if (EosTokenIds is { } eos && (eos.Count == 0 || eos.Any(id => id < 0)))
            throw new ArgumentException("server EOS token ids: give at least one, each non-negative");
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Check(!string.IsNullOrWhiteSpace(Host), "--host must not be empty");
        Check(Port is >= 0 and <= 65535, $"--port must be in [0, 65535], got {Port}");
        Check(!string.IsNullOrWhiteSpace(ModelName), "the model name must not be empty");
        Check(Adapters is not null, "the adapters must be set (empty for none)");
        foreach (var (name, adapter) in Adapters!)
        {
            Check(name.Length is >= 1 and <= 256 && !name.Contains(':') && name.All(c => c > ' '), $"adapter name '{name}' must be 1 to 256 characters without spaces or ':'");
            Check(adapter is not null, $"adapter '{name}' is null");
        }
        Check(MaxBatch is >= 1 and <= 1024, $"--max-batch must be in [1, 1024], got {MaxBatch}");
        Check(MaxQueue is >= 0 and <= 1_000_000, $"--max-queue must be in [0, 1000000], got {MaxQueue}");
        Check(ContextLength is null or (>= 2 and <= 1 << 20), $"--context must be in [2, 1048576], got {ContextLength}");
        Check(Enum.IsDefined(KvCacheDType), $"--kv-dtype must be f32 or int8, got {(int)KvCacheDType}");
        EarlyExit?.Validate();
        Check(RequestTimeout > TimeSpan.Zero, $"--request-timeout must be positive, got {RequestTimeout}");
        Check(MaxRequestBodyBytes is >= 1024 and <= 1L << 30, $"--max-body-bytes must be in [1024, 2^30], got {MaxRequestBodyBytes}");
        Check(MaxChoices >= 1, $"max choices must be ≥ 1, got {MaxChoices}");
        Check(DefaultChatMaxTokens >= 1 && DefaultCompletionMaxTokens >= 1, "default max_tokens must be ≥ 1");
        Check(PromptCharactersPerPosition is >= 1 and <= 1024, $"prompt characters per position must be in [1, 1024], got {PromptCharactersPerPosition}");
        Check(DraftModel is null || !PromptLookup, "give one of --draft-model and --prompt-lookup");
        Check(DraftTokens is >= 1 and <= 64, $"--draft-tokens must be in [1, 64], got {DraftTokens}");
        Check(PromptLookupMaxNgram is >= 1 and <= 32, $"--prompt-lookup-ngram must be in [1, 32], got {PromptLookupMaxNgram}");
        Superposed?.Validate();
        Check(Superposed is null || !Speculates, "--superposed does not combine with --draft-model, --prompt-lookup or --lexical-units");
        LexicalUnits?.Validate();
        Check(LexicalUnits is null || (DraftModel is null && !PromptLookup), "--lexical-units does not combine with --draft-model or --prompt-lookup");
                Check(Routing is not null, "the routing options must be set");
        Routing!.Validate();
        if (SuperModel != null)
        {
            Check(Routing.Span == RoutingSpan.FirstStep, "a server routes on the swift model's first step (it decides before the first token is streamed); --route-span mean is for `encore generate`");
            Check(!Speculates && Superposed is null, "--super-model does not combine with --draft-model, --prompt-lookup, --lexical-units or --superposed");
            Check(Adapters.Count == 0, "--super-model does not combine with --adapter");
        }
        Check(Embedding is not null, "the embedding options must be set");
        Embedding!.Validate();
        Check(MaxEmbeddingInputs is >= 1 and <= 1 << 20, $"max embedding inputs must be in [1, 1048576], got {MaxEmbeddingInputs}");
        Check(ApiKey is null || (ApiKey.Length is >= 1 and <= 1024 && ApiKey.All(c => c is > ' ' and < '\u007f')),
            "--api-key must be 1 to 1024 printable ASCII characters without spaces");
        return this;
    }
}
