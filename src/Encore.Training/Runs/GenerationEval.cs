using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Metrics;

namespace Encore.Training.Runs;

/// <summary>
/// Evaluates a model by generating (greedy) from validation sources and scoring against the
/// references: exact match, token F1, ROUGE-1/2/L, chrF and BLEU. Prompts are built as the training
/// objectives build them: source + EOS for an encoder–decoder, BOS + source for a decoder-only model.
/// </summary>
/// <remarks>
/// <paramref name="decoding"/> sets the decoding's other options (lexical-unit decoding, say); its
/// max_new_tokens and KV cache type are the ones given here.
/// </remarks>
public sealed class GenerationEval(TextTokenizer tokenizer, IReadOnlyList<TextPair> examples, int maxNewTokens = 32, int batchSize = 16, KvCacheDType kvCache = KvCacheDType.F32,
    GenerationOptions? decoding = null)
{
    /// <summary>The prompt ids of <paramref name="source"/> for <paramref name="model"/>'s family (see <see cref="Generator.EncodePrompt"/>).</summary>
    public static int[] PromptIds(LanguageModel model, TextTokenizer tokenizer, string source) => new Generator(model, tokenizer).EncodePrompt(source);

    /// <summary>Greedy outputs for the examples, in order.</summary>
    public IReadOnlyList<string> Predict(LanguageModel model)
    {
        var generator = new Generator(model, tokenizer);
        var options = (decoding ?? new GenerationOptions()) with { MaxNewTokens = maxNewTokens, KvCacheDType = kvCache };
        var outputs = new List<string>(examples.Count);
        SpeculativeStats? stats = null;
        for (int i = 0; i < examples.Count; i += batchSize)
        {
            var prompts = examples.Skip(i).Take(batchSize).Select(e => PromptIds(model, tokenizer, e.Source)).ToArray();
            foreach (var r in generator.GenerateIds(prompts, options))
            {
                outputs.Add(r.Sequences[0].Text.Trim());
                if (r.Speculative is { } s) stats = (stats ?? new SpeculativeStats()) + s;
            }
        }
        LastPasses = stats;
        return outputs;
    }

    /// <summary>Tokens and passes of the last <see cref="Predict"/> when its decoding fixes several tokens per pass (speculative or lexical-unit); else null.</summary>
    public SpeculativeStats? LastPasses { get; private set; }

    /// <summary>The examples scored.</summary>
    public IReadOnlyList<TextPair> Examples => examples;

    /// <summary>The outputs of the last <see cref="Evaluate"/>, in example order.</summary>
    public IReadOnlyList<string> LastPredictions { get; private set; } = [];

    /// <summary>The metrics (0–100, see <see cref="TextMetrics.All"/>) of <paramref name="model"/> on the examples.</summary>
    public IReadOnlyDictionary<string, double> Evaluate(LanguageModel model)
    {
        var predictions = Predict(model);
        LastPredictions = predictions;
        return TextMetrics.All(predictions, examples.Select(e => e.Target.Trim()).ToList());
    }
}
