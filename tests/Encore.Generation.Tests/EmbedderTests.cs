using Encore.Models;
using Microsoft.Extensions.AI;

namespace Encore.Generation.Tests;

/// <summary>
/// The Embedder on seeded tiny models: every vector against a double-precision re-computation from the
/// encoder's own hidden states of the input alone (no padding), so batching, padding masks, pooling,
/// dimension cuts and normalization are each checked; and the IEmbeddingGenerator over it.
/// </summary>
public class EmbedderTests
{
    static readonly string[] s_texts =
    [
        "The quick brown fox jumps over the lazy dog.",
        "the fox",
        "Encoder–decoder models encode the source once and decode one token at a time.",
        "dog",
        "Ça coûte 5 €, déjà payé — naïve café crème.",
        "Streaming must never split a multi-byte character.",
    ];

    /// <summary>A bare BERT-shaped encoder (post-norm LayerNorm, token types, learned positions, no head).</summary>
    internal static EncoderOnlyModel Encoder(ulong seed = 5)
    {
        var c = Presets.Get("tiny-encoder") with
        {
            VocabSize = TinyModels.Tokenizer.VocabSize, TypeVocabSize = 2, EmbeddingNorm = true, PostNorm = true, Norm = NormKind.LayerNorm,
            QkvBias = true, OutputBias = true, MlpBias = true, MaskedLmHead = false, MaxPositions = 64,
        };
        var m = new EncoderOnlyModel(c, seed);
        foreach (var p in m.Parameters.All)
            if (p.Name.Contains("_proj.weight"))
                foreach (ref float x in p.Value.AsSpan<float>()) x *= TinyModels.ProjectionScale;
        return m;
    }

    static LanguageModel Model(string family) => family switch
    {
        "encoder" => Encoder(),
        "decoder" => TinyModels.Decoder(),
        _ => TinyModels.EncDec(),
    };

    // The pooled (and optionally normalized) vector of one input from its batch-of-one hidden states, in double.
    static double[] Reference(LanguageModel model, int[] ids, PoolingMode mode, bool normalize, int? dimensions = null)
    {
        using var h = model switch
        {
            EncoderOnlyModel enc => enc.Forward(ids, 1),
            EncoderDecoderModel ed => ed.Encode(ids, 1),
            DecoderOnlyModel dec => dec.Hidden(ids, 1),
            _ => throw new ArgumentException("not a model with hidden states"),
        };
        var x = h.Value.ToFloatArray();
        int d = model.Config.DModel, n = ids.Length;
        var o = new double[dimensions ?? d];
        for (int k = 0; k < o.Length; k++)
        {
            double acc = mode == PoolingMode.Max ? double.NegativeInfinity : 0;
            for (int p = mode == PoolingMode.Last ? n - 1 : 0; p < (mode == PoolingMode.Cls ? 1 : n); p++)
                acc = mode == PoolingMode.Max ? Math.Max(acc, x[p * d + k]) : acc + x[p * d + k];
            o[k] = mode == PoolingMode.Mean ? acc / n : acc;
        }
        if (normalize)
        {
            double norm = Math.Sqrt(o.Sum(v => v * v));
            for (int k = 0; k < o.Length; k++) o[k] /= norm;
        }
        return o;
    }

    // Largest difference, relative to the largest value when that is above 1 (unnormalized vectors).
    static double MaxError(double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = Math.Max(1, expected.Max(Math.Abs));
        return expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) / scale;
    }

    [Theory]
    [InlineData("encoder", PoolingMode.Mean, true)]
    [InlineData("encoder", PoolingMode.Cls, false)]
    [InlineData("encoder", PoolingMode.Max, true)]
    [InlineData("encdec", PoolingMode.Mean, true)]
    [InlineData("encdec", PoolingMode.Max, false)]
    [InlineData("decoder", PoolingMode.Mean, true)]
    [InlineData("decoder", PoolingMode.Last, false)]
    public void BatchedVectorsAreThePooledStatesOfEachInputAlone(string family, PoolingMode mode, bool normalize)
    {
        using var model = Model(family);
        var embedder = new Embedder(model, TinyModels.Tokenizer, new EmbeddingOptions { Pooling = mode, Normalize = normalize, BatchSize = 3 });
        var batch = embedder.Embed(s_texts);
        Assert.Equal(s_texts.Length, batch.Vectors.Length);
        Assert.Equal(0, batch.TruncatedInputs);
        long tokens = 0;
        double worst = 0;
        for (int i = 0; i < s_texts.Length; i++)
        {
            var ids = embedder.Tokenize(s_texts[i]).Ids;
            tokens += ids.Length;
            worst = Math.Max(worst, MaxError(Reference(model, ids, mode, normalize), batch.Vectors[i]));
        }
        Assert.Equal(tokens, batch.Tokens);
        // Float rounding only: the encoder–decoder's centered RoPE angles shift with the padded length, and
        // the tiny models' scaled-up projections make attention sharp. Pooled padding would be off by ~0.1.
        Assert.InRange(worst, 0, 1e-4);
        if (normalize) Assert.All(batch.Vectors, v => Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 1e-5));
    }

    [Fact]
    public void InputsAreWrappedAsTheModelReadsThem()
    {
        using var enc = Encoder();
        using var ed = TinyModels.EncDec();
        var tok = TinyModels.Tokenizer;
        var body = tok.Encode("the fox", addSpecialTokens: false);
        // BERT-style encoders: the tokenizer's own wrapping; encoder–decoders: the text then EOS, as generation encodes sources.
        Assert.Equal(tok.Encode("the fox"), new Embedder(enc, tok).Tokenize("the fox").Ids);
        Assert.Equal([.. body, tok.EosId!.Value], new Embedder(ed, tok).Tokenize("the fox").Ids);
        Assert.Equal(new Generator(ed, tok).EncodePrompt("the fox"), new Embedder(ed, tok).Tokenize("the fox").Ids);
        Assert.Equal(new Embedder(ed, tok).Tokenize("the fox").Ids, new Embedder(ed, tok).Wrap(body).Ids);
        // Decoder-only models: BOS then the text, as generation builds a prompt and causal LM training a row.
        using var dec = TinyModels.Decoder();
        Assert.Equal([tok.BosId!.Value, .. body], new Embedder(dec, tok).Tokenize("the fox").Ids);
        Assert.Equal(new Generator(dec, tok).EncodePrompt("the fox"), new Embedder(dec, tok).Tokenize("the fox").Ids);
        // An empty text is the special tokens alone; with none to add, there is nothing to read.
        Assert.Equal([tok.EosId!.Value], new Embedder(ed, tok).Tokenize("").Ids);
        Assert.Contains("the input is empty", Assert.Throws<ArgumentException>(() => new Embedder(enc, tok).Tokenize("")).Message);
        Assert.Equal(new Embedder(ed, tok).Tokenize("the fox").Ids, new Embedder(ed, tok, new EmbeddingOptions { LowercaseInput = true }).Tokenize("THE FOX").Ids);
    }

    [Fact]
    public void LongInputsAreCutKeepingTheSpecialTokensOrRefused()
    {
        using var ed = TinyModels.EncDec();
        var embedder = new Embedder(ed, TinyModels.Tokenizer, new EmbeddingOptions { MaxLength = 6 });
        var full = new Embedder(ed, TinyModels.Tokenizer).Tokenize(s_texts[2]);
        var cut = embedder.Tokenize(s_texts[2]);
        Assert.Equal(6, cut.Ids.Length);
        Assert.True(cut.Truncated);
        Assert.Equal(full.Ids.Length, cut.Tokens);
        Assert.Equal([.. full.Ids[..5], TinyModels.Tokenizer.EosId!.Value], cut.Ids);
        var batch = embedder.Embed(s_texts[..3]);
        Assert.Equal(2, batch.TruncatedInputs);
        Assert.InRange(MaxError(Reference(ed, cut.Ids, PoolingMode.Mean, true), batch.Vectors[2]), 0, 2e-5);

        var e = Assert.Throws<EmbeddingInputException>(() => embedder.Embed(["dog", s_texts[2]], embedder.DefaultOptions with { Truncate = false }));
        Assert.Equal(1, e.Index);
        Assert.Contains($"the input has {full.Ids.Length} tokens; this model reads at most 6", e.Message);
        Assert.Throws<ArgumentException>(() => embedder.Wrap([TinyModels.Tokenizer.VocabSize + 5]));
    }

    [Fact]
    public void DimensionsKeepTheFirstValuesThenNormalize()
    {
        using var enc = Encoder();
        var embedder = new Embedder(enc, TinyModels.Tokenizer);
        var v = embedder.Embed([s_texts[0]], embedder.DefaultOptions with { Dimensions = 8 }).Vectors[0];
        Assert.Equal(8, v.Length);
        Assert.InRange(MaxError(Reference(enc, embedder.Tokenize(s_texts[0]).Ids, PoolingMode.Mean, true, dimensions: 8), v), 0, 2e-5);
        Assert.Throws<ArgumentException>(() => embedder.Embed(["x"], embedder.DefaultOptions with { Dimensions = 33 }));
    }

    [Fact]
    public void ADecoderOnlyModelEmbedsTheStatesItsLmHeadReads()
    {
        // Hidden's states are the LM head's input: the head applied to them gives Forward's logits at every position.
        using var dec = TinyModels.Decoder();
        var ids = new Embedder(dec, TinyModels.Tokenizer).Tokenize(s_texts[0]).Ids;
        using var hidden = dec.Hidden(ids, 1);
        Assert.Equal([1, ids.Length, dec.Config.DModel], hidden.Shape.ToArray());
        using var viaHead = dec.Logits(hidden);
        using var logits = dec.Forward(ids, 1);
        var a = viaHead.Value.ToFloatArray();
        var b = logits.Value.ToFloatArray();
        Assert.Equal(b.Length, a.Length);
        for (int i = 0; i < a.Length; i++) Assert.Equal(b[i], a[i], 1e-5f);
    }

    [Fact]
    public async Task TheEmbeddingGeneratorGivesTheEmbeddersVectorsAndUsage()
    {
        using var enc = Encoder();
        var embedder = new Embedder(enc, TinyModels.Tokenizer);
        IEmbeddingGenerator<string, Embedding<float>> generator = new EncoreEmbeddingGenerator(embedder, "tiny");
        var expected = embedder.Embed(s_texts);
        var result = await generator.GenerateAsync(s_texts);
        Assert.Equal(s_texts.Length, result.Count);
        for (int i = 0; i < s_texts.Length; i++)
        {
            Assert.Equal(expected.Vectors[i], result[i].Vector.ToArray());
            Assert.Equal("tiny", result[i].ModelId);
        }
        Assert.Equal(expected.Tokens, result.Usage!.InputTokenCount);
        Assert.Equal(expected.Tokens, result.Usage.TotalTokenCount);

        var cut = await generator.GenerateAsync(["the fox"], new EmbeddingGenerationOptions { Dimensions = 4 });
        Assert.Equal(embedder.Embed(["the fox"], embedder.DefaultOptions with { Dimensions = 4 }).Vectors[0], cut[0].Vector.ToArray());
        await Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateAsync(["x"], new EmbeddingGenerationOptions { Dimensions = 33 }));

        // The abstraction's own helpers work over it.
        var one = await generator.GenerateVectorAsync("the fox");
        Assert.Equal(embedder.Embed(["the fox"]).Vectors[0], one.ToArray());
        var metadata = generator.GetService<EmbeddingGeneratorMetadata>()!;
        Assert.Equal(("encore", "tiny", 32), (metadata.ProviderName, metadata.DefaultModelId, metadata.DefaultModelDimensions));
        Assert.Same(embedder, generator.GetService<Embedder>());
    }
}
