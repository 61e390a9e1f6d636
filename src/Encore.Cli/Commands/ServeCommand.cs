using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Server;
using Encore.Tensors.Threading;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore serve</c>: an OpenAI-compatible HTTP server for a checkpoint (see <see cref="EncoreServer"/>),
/// on loopback unless told otherwise. Runs until Ctrl+C. An encoder-only checkpoint (BERT, a
/// sentence-transformers directory) serves /v1/embeddings only; an encoder–decoder serves both.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var d = new ServerOptions();
        var model = new Option<string>("--model", "-m") { Description = "Checkpoint directory (config.json, model.safetensors and tokenizer files), a sentence-transformers directory, a training run folder, or a Hugging Face model id org/name[@revision] (fetched into the hub cache; docs/hub.md).", Required = true };
        var host = new Option<string>("--host") { Description = "Address to listen on (an IP address or localhost); 0.0.0.0 exposes the server to the network.", DefaultValueFactory = _ => d.Host };
        var port = new Option<int>("--port") { Description = "TCP port (0: a free one, printed at start).", DefaultValueFactory = _ => d.Port };
        var maxBatch = new Option<int>("--max-batch") { Description = "Sequences decoded together at most.", DefaultValueFactory = _ => d.MaxBatch };
        var kvDType = new Option<string>("--kv-dtype") { Description = "KV cache storage: f32, or int8 (a quarter of the cache memory).", DefaultValueFactory = _ => d.KvCacheDType.Name() };
        var maxQueue = new Option<int>("--max-queue") { Description = "Requests waiting for a batch row at most; more get 429.", DefaultValueFactory = _ => d.MaxQueue };
        var context = new Option<int?>("--context") { Description = "Decoder positions per sequence (default: the model's max_positions, at most 1024)." };
        var name = new Option<string?>("--model-name") { Description = "Model name clients send (default: the checkpoint directory's name)." };
        var timeout = new Option<double>("--request-timeout") { Description = "Seconds after which a request is cancelled.", DefaultValueFactory = _ => d.RequestTimeout.TotalSeconds };
        var maxBody = new Option<long>("--max-body-bytes") { Description = "Largest request body accepted.", DefaultValueFactory = _ => d.MaxRequestBodyBytes };
        var apiKey = new Option<string?>("--api-key")
        {
            Description = "Require 'Authorization: Bearer <key>' on every request but GET /health (401 otherwise). Default: the ENCORE_API_KEY environment variable, else no key.",
        };
        var draftModel = new Option<string?>("--draft-model")
        {
            Description = "Speculative decoding for every request: a smaller checkpoint (or run folder) with the same tokenizer drafts tokens the model verifies in one pass, in the steps where one sequence is decoding (see docs/decoding.md).",
        };
        var promptLookup = new Option<bool>("--prompt-lookup") { Description = "Speculative decoding for every request with drafts copied from the prompt (no draft model), in the steps where one sequence is decoding." };
        var draftTokens = new Option<int>("--draft-tokens") { Description = "Tokens drafted per verification pass (with --draft-model or --prompt-lookup).", DefaultValueFactory = _ => d.DraftTokens };
        var lookupNgram = new Option<int>("--prompt-lookup-ngram") { Description = "Longest n-gram --prompt-lookup matches.", DefaultValueFactory = _ => d.PromptLookupMaxNgram };
        var superposed = new SuperposedCli("Superposed decoding for every request with K drafts (arXiv 2405.18400): a request's n choices are its best n of max(K, n) drafts, decoded in one batch row with one pass of the model per step; temperature, top_p and seed do not apply (see docs/decoding.md).");
        var pooling = new Option<string?>("--pooling") { Description = "Pooling of /v1/embeddings: mean, cls, max or last (default: the checkpoint's sentence-transformers pooling, else mean)." };
        var normalize = new Option<bool?>("--normalize") { Description = "Unit-length embeddings, true or false (default: the checkpoint's Normalize module; true without a sentence-transformers pipeline)." };
        var dtype = Common.WeightDTypeOption();
        var tokenizerDir = Common.TokenizerOption();
        var threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var adapters = new Option<string[]>("--adapter")
        {
            Description = "A LoRA adapter served over the model, NAME=DIR or DIR (named after its directory); repeatable. A request picks one with \"model\": \"MODEL:NAME\" (without the colon: the model alone); rows of different adapters share the batch.",
        };
        var routing = new RoutingCli();
        var chatTemplate = new Option<string?>("--chat-template")
        {
            Description = "Jinja chat template file for /v1/chat/completions, in place of the checkpoint's own (chat_template.jinja or tokenizer_config.json's chat_template); 'default' for the plain User:/Assistant: template.",
        };
        var cmd = new Command("serve", "Serve a checkpoint over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/embeddings, /v1/models, /health, /metrics).")
        {
            model, host, port, maxBatch, kvDType, maxQueue, context, name, timeout, maxBody, apiKey, draftModel, promptLookup, draftTokens, lookupNgram, pooling, normalize, dtype, tokenizerDir, threads, adapters, chatTemplate,
        };
        foreach (var option in superposed.All) cmd.Options.Add(option);
        var lexicalUnits = new LexicalUnitCli();
        foreach (var option in lexicalUnits.All) cmd.Options.Add(option);
        foreach (var option in routing.All) cmd.Options.Add(option);
        var exit = new ExitThresholdOptions();
        foreach (var option in exit.All) cmd.Options.Add(option);
        cmd.SetAction(async (parse, ct) =>
        {
            var kvCache = KvCacheDTypes.Parse(parse.GetValue(kvDType)!, "--kv-dtype");
            string dir = parse.GetValue(model)!;
            var poolingMode = parse.GetValue(pooling) is { } p ? Pooling.Parse(p, "--pooling") : (PoolingMode?)null;
            double seconds = parse.GetValue(timeout);
            if (!double.IsFinite(seconds) || seconds <= 0 || seconds > 86_400) throw new ArgumentException($"--request-timeout must be in (0, 86400] seconds, got {seconds}");
            var options = new ServerOptions
            {
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                MaxBatch = parse.GetValue(maxBatch),
                KvCacheDType = kvCache,
                EarlyExit = exit.Parse(parse),
                MaxQueue = parse.GetValue(maxQueue),
                ContextLength = parse.GetValue(context),
                ModelName = parse.GetValue(name) ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir))),
                RequestTimeout = TimeSpan.FromSeconds(seconds),
                MaxRequestBodyBytes = parse.GetValue(maxBody),
                // The environment keeps the key out of the process list, where --api-key is visible.
                ApiKey = parse.GetValue(apiKey) ?? (Environment.GetEnvironmentVariable("ENCORE_API_KEY") is { Length: > 0 } env ? env : null),
                PromptLookup = parse.GetValue(promptLookup),
                DraftTokens = parse.GetValue(draftTokens),
                PromptLookupMaxNgram = parse.GetValue(lookupNgram),
            }.Validate();
            string? draftPath = parse.GetValue(draftModel);
            if (draftPath != null && options.PromptLookup) throw new ArgumentException("give one of --draft-model and --prompt-lookup");
            if (parse.GetValue(superposed.Drafts) != null && (draftPath != null || options.PromptLookup))
                throw new ArgumentException("--superposed does not combine with --draft-model or --prompt-lookup");
            // The n-gram table is read once, at start, and shared by every request.
            options = (options with { Superposed = superposed.Parse(parse), LexicalUnits = lexicalUnits.Parse(parse) }).Validate();
            KernelPool.Default = new KernelPool(Common.Threads(parse, threads));
            var (m, checkpoint, tokenizer, embedding) = Common.LoadEmbedding(dir, parse.GetValue(dtype), parse.GetValue(tokenizerDir));
            using var owned = m;
            var served = new Dictionary<string, LoraAdapter>(StringComparer.Ordinal);
            using var disposeAdapters = new AdapterList(served.Values);
            foreach (var spec in parse.GetValue(adapters) ?? [])
            {
                int eq = spec.IndexOf('=', StringComparison.Ordinal);
                string adapterDir = eq > 0 ? spec[(eq + 1)..] : spec;
                var adapter = Common.LoadAdapter(adapterDir, m, checkpoint);
                string adapterName = eq > 0 ? spec[..eq] : adapter.Name;
                if (!served.TryAdd(adapterName, adapter))
                {
                    adapter.Dispose();
                    throw new ArgumentException($"--adapter: two adapters are named '{adapterName}'; name them with NAME=DIR");
                }
                adapter.Name = adapterName;
            }
            options = options with { Adapters = served };
            options.Validate();
            using var draft = draftPath is null ? null : Common.LoadDraft(draftPath, parse.GetValue(dtype), m, dir, tokenizer);
            using var super = routing.LoadSuper(parse, parse.GetValue(dtype), m, dir, tokenizer, out var routingOptions, out string? routingNote);
            options = options with
            {
                DraftModel = draft,
                LexicalUnits = lexicalUnits.Resolve(parse, options.LexicalUnits, tokenizer),
                SuperModel = super,
                Routing = routingOptions,
                Embedding = embedding with { Pooling = poolingMode ?? embedding.Pooling, Normalize = parse.GetValue(normalize) ?? embedding.Normalize },
            };
            if (m is not EncoderOnlyModel)
            {
                // The checkpoint's generation_config.json may list several ids that end a turn.
                if (GenerationConfigFile.Read(checkpoint, m is EncoderDecoderModel) is { Options.EosTokenIds: { } eosIds } generation)
                {
                    if (eosIds.FirstOrDefault(id => id >= m.Config.VocabSize, -1) is int outside and >= 0)
                        throw new ArgumentException($"{generation.Source}: eos_token_id {outside} is outside the model's vocabulary of {m.Config.VocabSize}");
                    options = (options with { EosTokenIds = eosIds }).Validate();
                    Console.Error.WriteLine($"encore: sequences end at token ids {string.Join(", ", eosIds)} (eos_token_id of {generation.Source})");
                }
                try
                {
                    options = options with
                    {
                        ChatTemplate = parse.GetValue(chatTemplate) is { } templateFile
                            ? ChatTemplate.FromFile(templateFile, parse.GetValue(tokenizerDir) ?? checkpoint)
                            : ChatTemplate.ForTokenizer(tokenizer),
                    };
                }
                catch (ChatTemplateException e)
                {
                    throw new ArgumentException($"{e.Message} (--chat-template FILE serves another template, --chat-template default the plain one)", e);
                }
            }
            await using var server = await EncoreServer.StartAsync(m, tokenizer, options, cancellationToken: ct);
            string speculative = draft != null ? $", speculative decoding with draft model {draftPath} ({options.DraftTokens} drafts per pass)"
                : options.PromptLookup ? $", speculative decoding with prompt lookup ({options.DraftTokens} drafts per pass)"
                : options.LexicalUnits is { } lu ? $", lexical-unit decoding (up to {lu.Span} tokens per pass, β {lu.Beta.ToString(CultureInfo.InvariantCulture)})"
                : options.Superposed is { } sp ? $", superposed decoding with {sp.Drafts} drafts{(sp.Ngrams is { } t ? $" and n-gram table {t.Path}" : "")}" : "";
            string serves = m switch
            {
                EncoderOnlyModel => $"embeddings ({options.Embedding.Pooling.Name()} pooling{(options.Embedding.Normalize ? ", unit length" : "")})",
                EncoderDecoderModel => $"completions, chat and embeddings (max batch {options.MaxBatch}, {options.KvCacheDType.Name()} KV cache{speculative})",
                _ => $"completions and chat (max batch {options.MaxBatch}, {options.KvCacheDType.Name()} KV cache{speculative})",
            };
            Console.WriteLine($"encore: serving '{options.ModelName}' at {server.BaseAddress}: {serves}, queue {options.MaxQueue}{(options.ApiKey is null ? "" : ", API key required")}; Ctrl+C stops");
            if (routingNote != null) Console.WriteLine($"encore: {routingNote}");
            if (options.ChatTemplate is { IsDefault: false } template) Console.WriteLine($"encore: chat template from {template.Origin}");
            foreach (var (adapterName, adapter) in served)
                Console.WriteLine($"encore: adapter '{options.AdapterModelId(adapterName)}': LoRA rank {adapter.Options.Rank} on {adapter.Modules.Count} layers ({adapter.ParameterCount:N0} parameters)");
            await server.WaitForShutdownAsync(ct);
            return 0;
        });
        return cmd;
    }

    // Disposes the adapters loaded so far, whatever happens after.
    sealed class AdapterList(IEnumerable<LoraAdapter> adapters) : IDisposable
    {
        public void Dispose()
        {
            foreach (var a in adapters) a.Dispose();
        }
    }
}
