// The entry point: text or ids in, generated sequences out, batched or streamed. A batch becomes
// one session for an encoder–decoder (sources right-padded, lengths passed); decoder-only prompts
// are grouped by length, one session per group, since the decoder cache keeps one length for all
// rows and the attention API has no left-padding mask — so each output equals its batch-of-one.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Encore.Formats.Tokenization;
using Encore.Models;

namespace Encore.Generation;

/// <summary>Generates text with an encoder–decoder or decoder-only model.</summary>
public sealed class Generator
{
    /// <summary>A generator for <paramref name="model"/>; without a tokenizer only the id methods work.</summary>
    public Generator(LanguageModel model, TextTokenizer? tokenizer = null)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        if (model is not (EncoderDecoderModel or DecoderOnlyModel)) throw new ArgumentException($"{model.GetType().Name} does not generate text (it has no decoder)");
        Tokenizer = tokenizer;
        if (tokenizer != null && tokenizer.VocabSize > model.Config.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens but the model only {model.Config.VocabSize}");
    }

    /// <summary>The model.</summary>
    public LanguageModel Model { get; }

    /// <summary>The tokenizer, or null.</summary>
    public TextTokenizer? Tokenizer { get; }

    /// <summary>
    /// The ids of <paramref name="prompt"/> as the model expects them: the text's ids followed by EOS
    /// for an encoder–decoder source (T5's convention), or preceded by BOS for a decoder-only prompt
    /// when the tokenizer has one (Llama's) — the layouts Encore's training objectives use.
    /// </summary>
    public int[] EncodePrompt(string prompt)
    {
        var tok = Tokenizer ?? throw new InvalidOperationException("text prompts need a tokenizer");
        // The prompt is built as the training objectives build their rows (Encore.Training:
        // Seq2SeqObjective, CausalLmObjective), from the text's ids without the tokenizer's own
        // prefix or suffix, so a model generates from the sequences it was trained on.
        var ids = tok.Encode(prompt, addSpecialTokens: false);
        var config = Model.Config;
        if (Model is EncoderDecoderModel)
        {
            int eos = tok.EosId ?? config.EosTokenId;
            if (ids.Length == 0 || ids[^1] != eos) ids = [.. ids, eos];
        }
        else if (Model is DecoderOnlyModel)
        {
            int bos = tok.BosId ?? config.BosTokenId;
            if (bos >= 0 && (ids.Length == 0 || ids[0] != bos)) ids = [bos, .. ids];
        }
        if (ids.Length == 0) throw new ArgumentException("the prompt is empty and the model has no BOS token to start from");
        return ids;
    }

    /// <summary>
    /// The ids of a chat prompt <paramref name="template"/> rendered. A template that prints the special
    /// tokens itself (<see cref="ChatTemplate.RendersSpecialTokens"/>: a checkpoint's Jinja template) gives a
    /// decoder-only prompt tokenized as it stands, as transformers' apply_chat_template(tokenize=True) does, so
    /// BOS is neither added twice nor added where the template leaves it out; an encoder–decoder's source
    /// still ends with EOS. Any other prompt is encoded by <see cref="EncodePrompt"/>.
    /// </summary>
    public int[] EncodeChatPrompt(string prompt, ChatTemplate template)
    {
        ArgumentNullException.ThrowIfNull(template);
        if (!template.RendersSpecialTokens || Model is not DecoderOnlyModel) return EncodePrompt(prompt);
        var tok = Tokenizer ?? throw new InvalidOperationException("text prompts need a tokenizer");
        var ids = tok.Encode(prompt, addSpecialTokens: false);
        if (ids.Length == 0) throw new ArgumentException("the chat template rendered an empty prompt");
        return ids;
    }

    /// <summary>Generates from one text prompt.</summary>
    public GenerationResult Generate(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
        => Generate([prompt], options, cancellationToken)[0];

    /// <summary>Generates from a batch of text prompts; results in input order.</summary>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<string> prompts, GenerationOptions? options = null, CancellationToken cancellationToken = default)
        => GenerateIds(prompts.Select(EncodePrompt).ToArray(), options, cancellationToken);

    /// <summary>Generates from a batch of prompts given as ids; results in input order.</summary>
    public IReadOnlyList<GenerationResult> GenerateIds(IReadOnlyList<int[]> prompts, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        options = (options ?? new GenerationOptions()).Validate();
        if (prompts.Count == 0) return [];
        if (options.Speculates) return prompts.Select(p => GenerateSpeculatively(p, options, cancellationToken)).ToArray();
        var strategy = DecodingStrategies.FromOptions(options);
        var results = new GenerationResult[prompts.Count];
        foreach (var group in Groups(prompts))
        {
            var ctx = Start(group.Select(i => prompts[i]).ToArray(), options, strategy, out var session);
            using (session)
            {
                foreach (var _ in strategy.Run(ctx, cancellationToken)) { }
                for (int g = 0; g < group.Length; g++)
                    results[group[g]] = new GenerationResult(ctx.Results[g])
                    {
                        SuperposedPasses = (strategy as SuperposedStrategy)?.Passes[g],
                        EarlyExit = session.ExitStats(g, strategy.RowsPerRequest),
                    };
            }
        }
        return results;
    }

    /// <summary>
    /// Speculative decoding extends one sequence at a time: each prompt, and each of its
    /// num_return_sequences samples (stream k of the seed, as plain sampling draws them), runs alone.
    /// </summary>
    GenerationResult GenerateSpeculatively(int[] prompt, GenerationOptions options, CancellationToken cancellationToken)
    {
        ulong seed = options.Seed ?? (ulong)Random.Shared.NextInt64();
        var sequences = new GeneratedSequence[options.NumReturnSequences];
        var stats = new SpeculativeStats();
        EarlyExitStats? exits = null;
        for (int k = 0; k < sequences.Length; k++)
        {
            var strategy = Speculative(options, k, seed);
            var ctx = Start([prompt], options, strategy, out var session);
            using (session)
            {
                foreach (var _ in strategy.Run(ctx, cancellationToken)) { }
                if (session.ExitStats(0, 1) is { } e) exits = exits is { } sum ? sum + e : e;
            }
            sequences[k] = ctx.Results[0][0];
            stats += strategy.Stats;
        }
        return new GenerationResult(sequences) { Speculative = stats, EarlyExit = exits };
    }

    /// <summary>The speculative strategy of sample stream <paramref name="sampleIndex"/> of <paramref name="seed"/>; checks the draft model against this one.</summary>
    SpeculativeStrategy Speculative(GenerationOptions options, int sampleIndex, ulong seed)
    {
        if (options.DraftModel is { } draft) SpeculativeDecoding.CheckDraft(Model, draft);
        return new SpeculativeStrategy(Model, options, options.DecoderStartTokenId ?? Model.Config.DecoderStartTokenId, EosIds(options), sampleIndex, seed);
    }

    /// <summary>Streams the generation of one text prompt (greedy or sampling; one sequence).</summary>
    public IAsyncEnumerable<GenerationChunk> StreamAsync(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
        => StreamIdsAsync(EncodePrompt(prompt), options, cancellationToken);

    /// <summary>
    /// Streams the generation of one prompt given as ids: one chunk per token with the text it
    /// completed. Text goes through the tokenizer's <see cref="StreamingDecoder"/>, so a multi-byte
    /// character is never split; with stop strings, the text that could still become one is held
    /// back. The pieces concatenate to <see cref="GeneratedSequence.Text"/>. Cancellation stops before
    /// the next model step.
    /// </summary>
    public async IAsyncEnumerable<GenerationChunk> StreamIdsAsync(int[] prompt, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options = (options ?? new GenerationOptions()).Validate();
        if (options.NumBeams > 1 || options.NumReturnSequences > 1) throw new ArgumentException("streaming returns one sequence: num_beams and num_return_sequences must be 1");
        if (options.Superposed != null) throw new ArgumentException("superposed decoding does not stream: its k drafts are known only at the end");
        var strategy = options.Speculates ? Speculative(options, 0, options.Seed ?? (ulong)Random.Shared.NextInt64()) : DecodingStrategies.FromOptions(options);
        var ctx = Start([prompt], options, strategy, out var session);
        using (session)
        {
            var text = new StreamingText(ctx.Stop, Tokenizer, options.SkipSpecialTokens);
            foreach (var e in strategy.Run(ctx, cancellationToken))
            {
                yield return new GenerationChunk(e.Token, text.Push(e.Token)) { Speculative = (strategy as SpeculativeStrategy)?.Stats };
                await Task.Yield();
                cancellationToken.ThrowIfCancellationRequested();
            }
            string rest = text.Finish(ctx.Results[0][0].Text);
            if (rest.Length > 0) yield return new GenerationChunk(-1, rest);
        }
    }

    /// <summary>One timed batch-1 generation (see <see cref="GenerationTiming.Measure(Generator, int[], GenerationOptions)"/>).</summary>
    internal GenerationTiming Time(int[] prompt, GenerationOptions options)
    {
        options = options.Validate();
        if (options.NumBeams > 1 || options.NumReturnSequences > 1 || options.Superposed != null)
            throw new ArgumentException("a timed generation returns one sequence: num_beams and num_return_sequences must be 1, superposed decoding off");
        var sw = Stopwatch.StartNew();
        var strategy = options.Speculates ? Speculative(options, 0, options.Seed ?? (ulong)Random.Shared.NextInt64()) : DecodingStrategies.FromOptions(options);
        var ctx = Start([prompt], options, strategy, out var session);
        var tokens = new List<int>(options.MaxNewTokens);
        double first = 0;
        EarlyExitStats? exits;
        using (session)
        {
            foreach (var e in strategy.Run(ctx, default))
            {
                if (tokens.Count == 0) first = sw.Elapsed.TotalSeconds;
                tokens.Add(e.Token);
            }
            exits = session.ExitStats(0, 1);
        }
        double total = sw.Elapsed.TotalSeconds;
        return new GenerationTiming(first, total - first, tokens.Count - 1, [.. tokens]) { Speculative = (strategy as SpeculativeStrategy)?.Stats, EarlyExit = exits };
    }

    /// <summary>Builds the session and decoding context of one group of prompts.</summary>
    internal DecodingContext Start(int[][] prompts, GenerationOptions options, IDecodingStrategy strategy, out GenerationSession session)
    {
        var config = Model.Config;
        options.ValidateIds(config.VocabSize);
        var eos = options.EosTokenIds?.ToArray() ?? DefaultEos();
        if (options.StopStrings.Count > 0 && Tokenizer is null) throw new ArgumentException("stop strings need a tokenizer");
        options.Superposed?.Ngrams?.CheckFits(config.VocabSize, Tokenizer);
        int start = options.DecoderStartTokenId ?? config.DecoderStartTokenId;
        session = GenerationSession.Create(Model, prompts, strategy.RowsPerRequest, options.MaxNewTokens, start, options.KvCacheDType, options.EarlyExit);
        var stop = new StopCriteria(eos, options.StopStrings, options.MaxNewTokens, Tokenizer, options.SkipSpecialTokens);
        return new DecodingContext(session, prompts.Length, LogitsProcessors.FromOptions(options, eos), stop, config.PadTokenId);
    }

    /// <summary>The EOS ids of a request: its own, else the model's and the tokenizer's.</summary>
    internal int[] EosIds(GenerationOptions options) => options.EosTokenIds?.ToArray() ?? DefaultEos();

    int[] DefaultEos()
    {
        var set = new SortedSet<int> { Model.Config.EosTokenId };
        if (Tokenizer?.EosId is { } e && e < Model.Config.VocabSize) set.Add(e);
        return [.. set];
    }

    /// <summary>Index groups decoded together: all of them (encoder–decoder), or equal-length prompts (decoder-only).</summary>
    int[][] Groups(IReadOnlyList<int[]> prompts)
    {
        var all = Enumerable.Range(0, prompts.Count);
        return Model is EncoderDecoderModel
            ? [all.ToArray()]
            : all.GroupBy(i => prompts[i].Length).Select(g => g.ToArray()).ToArray();
    }
}
