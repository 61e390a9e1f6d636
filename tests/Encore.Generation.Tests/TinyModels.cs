using Encore.Formats.Tokenization;
using Encore.Models;

namespace Encore.Generation.Tests;

/// <summary>Seeded tiny models whose vocabulary is a byte-level BPE trained on a few sentences.</summary>
internal static class TinyModels
{
    static readonly Lazy<ByteLevelBpeTextTokenizer> s_tokenizer = new(() => BpeTrainer.Train(
        [
            "The quick brown fox jumps over the lazy dog.",
            "Encoder–decoder models encode the source once and decode one token at a time.",
            "Ça coûte 5 €, déjà payé — naïve café crème.",
            "Streaming must never split a multi-byte character: 日本語のテキスト.",
        ],
        320, ["<pad>", "</s>", "<s>"], new SpecialTokenRoles(Bos: "<s>", Eos: "</s>", Pad: "<pad>")));

    /// <summary>The shared tokenizer: pad 0, eos 1, bos 2 (the model config's defaults).</summary>
    public static ByteLevelBpeTextTokenizer Tokenizer => s_tokenizer.Value;

    // Untied: with a tied head a freshly initialized decoder mostly predicts its own input token, so
    // greedy output from the start token would be constant and the comparisons weak.
    // Projections are scaled up from their 0.02 init so the source visibly steers the output
    // (otherwise different prompts give the same greedy text and batch tests prove little).
    /// <summary>
    /// The tiny encoder–decoder with sharpened projections; <paramref name="wideEncoder"/> gives it a 48-wide encoder
    /// (6 heads of 8, FFN 96) of its own token table under the 32-wide decoder (an unbalanced model).
    /// </summary>
    public static EncoderDecoderModel EncDec(ulong seed = 7, int? vocab = null, bool wideEncoder = false)
    {
        var c = Presets.Get("tiny-encdec") with { VocabSize = vocab ?? Tokenizer.VocabSize, TieEmbeddings = false };
        if (wideEncoder) c = c with { EncoderEmbeddings = true, EncoderShape = new StackShape { DModel = 48, Heads = 6, KvHeads = 2, HeadDim = 8, FfnDim = 96 } };
        var m = new EncoderDecoderModel(c, seed);
        foreach (var p in m.Parameters.All)
            if (p.Name.Contains("_proj.weight"))
                foreach (ref float x in p.Value.AsSpan<float>()) x *= ProjectionScale;
        return m;
    }

    public const float ProjectionScale = 8f;

    public static DecoderOnlyModel Decoder(ulong seed = 7, int? vocab = null) =>
        new(Presets.Get("tiny-decoder") with { VocabSize = vocab ?? Tokenizer.VocabSize, BosTokenId = 2 }, seed);

    /// <summary>Log-softmax of the last position's logits of every row of (B, T, V).</summary>
    public static double[][] LastLogProbs(Encore.Autograd.Var logits)
    {
        int b = logits.Shape[0], t = logits.Shape[1], v = logits.Shape[2];
        var s = logits.Value.AsReadOnlySpan<float>();
        var rows = new double[b][];
        for (int i = 0; i < b; i++)
        {
            var row = s.Slice((i * t + t - 1) * v, v);
            double lse = Sampling.LogSumExp(row);
            rows[i] = new double[v];
            for (int j = 0; j < v; j++) rows[i][j] = row[j] - lse;
        }
        return rows;
    }

    /// <summary>Log-softmax at every position of row 0 of (B, T, V): [t][token].</summary>
    public static double[][] AllLogProbs(Encore.Autograd.Var logits, int row)
    {
        int t = logits.Shape[1], v = logits.Shape[2];
        var s = logits.Value.AsReadOnlySpan<float>();
        var result = new double[t][];
        for (int p = 0; p < t; p++)
        {
            var x = s.Slice((row * t + p) * v, v);
            double lse = Sampling.LogSumExp(x);
            result[p] = new double[v];
            for (int j = 0; j < v; j++) result[p][j] = x[j] - lse;
        }
        return result;
    }
}
