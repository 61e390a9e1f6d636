// The router over two generators (see Routing.cs for the method). The swift pass is the plain generator's
// own: the same session, processors and strategy as Generator.Generate, observed between steps, so an input
// the swift model keeps gets exactly its plain output, and a routed one the super model's plain output.
using System.Diagnostics;
using Encore.Formats.Tokenization;

namespace Encore.Generation;

/// <summary>
/// Sends each prompt to the swift or the super generator by the swift model's confidence
/// (<see cref="RoutingOptions"/>). The two must share a tokenizer (a request's token ids, logit biases and
/// stop ids mean the same to both); their families may differ, each prompt being laid out for its own.
/// </summary>
public sealed class RoutedGenerator
{
    /// <summary>A router from <paramref name="swift"/> to <paramref name="super"/>; throws when they do not share a tokenizer.</summary>
    public RoutedGenerator(Generator swift, Generator super, RoutingOptions? options = null, string swiftName = "the swift model", string superName = "the super model")
    {
        Swift = swift ?? throw new ArgumentNullException(nameof(swift));
        Super = super ?? throw new ArgumentNullException(nameof(super));
        Options = (options ?? new RoutingOptions()).Validate();
        CheckPair(swift, super, swiftName, superName);
    }

    /// <summary>The small model, whose logits decide.</summary>
    public Generator Swift { get; }

    /// <summary>The large model, for the inputs the swift model is unsure of.</summary>
    public Generator Super { get; }

    /// <summary>How the router decides.</summary>
    public RoutingOptions Options { get; }

    /// <summary>
    /// Checks that <paramref name="swift"/> and <paramref name="super"/> can be routed between: both have
    /// tokenizers, the same vocabulary size, and the same tokenizer (every id's piece and the special ids).
    /// Throws <see cref="ArgumentException"/> naming both.
    /// </summary>
    public static void CheckPair(Generator swift, Generator super, string swiftName = "the swift model", string superName = "the super model")
    {
        ArgumentNullException.ThrowIfNull(swift);
        ArgumentNullException.ThrowIfNull(super);
        if (swift.Tokenizer is null || super.Tokenizer is null)
            throw new ArgumentException($"{(swift.Tokenizer is null ? swiftName : superName)} has no tokenizer: routing reads text prompts");
        int sv = swift.Model.Config.VocabSize, pv = super.Model.Config.VocabSize;
        if (sv != pv)
            throw new ArgumentException($"{swiftName} has a vocabulary of {sv} tokens and {superName} one of {pv}: swift and super models must share a tokenizer");
        if (TokenizerDifference(swift.Tokenizer, super.Tokenizer) is { } difference)
            throw new ArgumentException($"{swiftName} and {superName} have different tokenizers ({difference}): swift and super models must share a tokenizer");
    }

    /// <summary>How two tokenizers differ (size, special ids, the first id whose piece differs), or null when they are the same.</summary>
    public static string? TokenizerDifference(TextTokenizer a, TextTokenizer b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.VocabSize != b.VocabSize) return $"{a.VocabSize} tokens against {b.VocabSize}";
        if (a.Kind != b.Kind) return $"{a.Kind} against {b.Kind}";
        if ((a.BosId, a.EosId, a.PadId) != (b.BosId, b.EosId, b.PadId))
            return $"special ids bos/eos/pad {a.BosId}/{a.EosId}/{a.PadId} against {b.BosId}/{b.EosId}/{b.PadId}";
        for (int i = 0; i < a.VocabSize; i++)
            if (a.IdToToken(i) != b.IdToToken(i)) return $"token {i} is '{a.IdToToken(i)}' against '{b.IdToToken(i)}'";
        return null;
    }

    /// <summary>Routes and generates one prompt.</summary>
    public RoutedResult Generate(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        options = (options ?? new GenerationOptions()).Validate();
        var ids = Swift.EncodePrompt(prompt);
        if (Options.Span == RoutingSpan.Mean)
        {
            var pass = RunSwift(ids, options, cancellationToken);
            double mean = Options.Score(pass.Trace);
            return Options.Routes(mean) ? new RoutedResult(Super.Generate(prompt, options, cancellationToken), RoutedModel.Super, mean) : new RoutedResult(pass.Result, RoutedModel.Swift, mean);
        }
        if (options.Speculates || options.Superposed != null)
        {
            // These strategies build their own sessions: score with a one-step session, then decode plainly.
            double s = ScorePrompt(ids, options);
            var chosen = Options.Routes(s) ? Super : Swift;
            return new RoutedResult(chosen.Generate(prompt, options, cancellationToken), Options.Routes(s) ? RoutedModel.Super : RoutedModel.Swift, s);
        }
        var strategy = DecodingStrategies.FromOptions(options);
        var ctx = Swift.Start([ids], options, strategy, out var session);
        double score;
        using (session)
        {
            score = RoutingScores.Uncertainty(Options.Signal, session.Logits.AsSpan(0, session.VocabSize), Options.Temperature);
            if (!Options.Routes(score))
            {
                foreach (var _ in strategy.Run(ctx, cancellationToken)) { }
                return new RoutedResult(new GenerationResult(ctx.Results[0]), RoutedModel.Swift, score);
            }
        }
        return new RoutedResult(Super.Generate(prompt, options, cancellationToken), RoutedModel.Super, score);
    }

    /// <summary>Routes and generates each prompt alone (batch 1), in input order.</summary>
    public IReadOnlyList<RoutedResult> Generate(IReadOnlyList<string> prompts, GenerationOptions? options = null, CancellationToken cancellationToken = default)
        => prompts.Select(p => Generate(p, options, cancellationToken)).ToArray();

    /// <summary>
    /// The first-step score of a prompt given as the swift model's ids (<see cref="Generator.EncodePrompt"/>):
    /// one session of one row, disposed after the first step's logits are read. The server scores this way
    /// before it hands a request to a batch.
    /// </summary>
    public double ScorePrompt(int[] swiftPrompt, GenerationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(swiftPrompt);
        options ??= new GenerationOptions();
        var model = Swift.Model;
        int start = options.DecoderStartTokenId ?? model.Config.DecoderStartTokenId;
        using var session = GenerationSession.Create(model, [swiftPrompt], 1, 1, start, options.KvCacheDType);
        return RoutingScores.Uncertainty(Options.Signal, session.Logits.AsSpan(0, session.VocabSize), Options.Temperature);
    }

    /// <summary>
    /// The swift model's plain generation of <paramref name="swiftPrompt"/> (its ids) with the confidence of every
    /// generated token and the time it took. One sequence, greedy or sampling: the trace follows the tokens as they
    /// are chosen.
    /// </summary>
    public SwiftPass RunSwift(int[] swiftPrompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(swiftPrompt);
        options = (options ?? new GenerationOptions()).Validate();
        if (options.NumBeams > 1 || options.NumReturnSequences > 1 || options.Speculates || options.Superposed != null)
            throw new ArgumentException("tracing the swift model follows one sequence token by token: greedy or sampling with num_beams and num_return_sequences 1, without speculative or superposed decoding");
        var sw = Stopwatch.StartNew();
        var strategy = DecodingStrategies.FromOptions(options);
        var ctx = Swift.Start([swiftPrompt], options, strategy, out var session);
        double scoreSeconds = sw.Elapsed.TotalSeconds;
        var energies = new List<double>(options.MaxNewTokens);
        var maxProbabilities = new List<double>(options.MaxNewTokens);
        using (session)
        {
            int v = session.VocabSize;
            // A token-by-token strategy reports a step's tokens before it advances the session, so the
            // session's logits are still the ones the reported token was chosen from.
            foreach (var e in strategy.Run(ctx, cancellationToken))
            {
                var logits = session.Logits.AsSpan(0, v);
                energies.Add(RoutingScores.Energy(logits, Options.Temperature));
                maxProbabilities.Add(RoutingScores.MaxProbability(logits));
            }
        }
        double seconds = sw.Elapsed.TotalSeconds;
        return new SwiftPass(new GenerationResult(ctx.Results[0]), new UncertaintyTrace([.. energies], [.. maxProbabilities], Options.Temperature), scoreSeconds, seconds);
    }
}
