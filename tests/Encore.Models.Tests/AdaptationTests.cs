using Encore.Autograd;
using Encore.Tensors.Kernels;

namespace Encore.Models.Tests;

/// <summary>Decoder-only → encoder–decoder adaptation (T5Gemma): where every weight comes from, and what refuses.</summary>
public class AdaptationTests
{
    // A Llama-like decoder (GQA, RoPE, SwiGLU, RMSNorm, untied head, q/k/v biases as Qwen2), a GPT-2-like
    // one (learned positions, LayerNorm, biases, tied head) and the tiny preset.
    public static TheoryData<string> Sources => ["tiny", "llama", "gpt2"];

    static ModelConfig Source(string kind, int layers = 3) => kind switch
    {
        "llama" => Presets.Get("tiny-decoder") with
        {
            DecoderLayers = layers, GatedFfn = true, Activation = ActivationKind.Silu, QkvBias = true, TieEmbeddings = false,
            BosTokenId = 2, DecoderPositions = new PositionConfig { Kind = PositionKind.Rope, RopeTheta = 500000, RopeLinearScale = 2 },
        },
        "gpt2" => Presets.Get("tiny-decoder") with
        {
            DecoderLayers = layers, Norm = NormKind.LayerNorm, QkvBias = true, OutputBias = true, MlpBias = true,
            DecoderPositions = new PositionConfig { Kind = PositionKind.Learned }, MaxPositions = 32,
        },
        _ => Presets.Get("tiny-decoder") with { DecoderLayers = layers },
    };

    static float[] Values(LanguageModel m, string name) => m.Parameters[name].Value.ToFloatArray();

    [Theory]
    [MemberData(nameof(Sources))]
    public void BalancedEncoderAndDecoderAreTheSourceBlocksAndCrossAttentionIsItsSelfAttention(string kind)
    {
        using var source = new DecoderOnlyModel(Source(kind), seed: 7);
        var (model, report) = ModelAdaptation.Adapt(source);
        using var _ = model;
        var c = model.Config;
        Assert.Equal(ModelFamily.EncoderDecoder, c.Family);
        Assert.Equal((3, 3), (c.EncoderLayers, c.DecoderLayers));
        Assert.Equal(source.Config.DecoderPositions, c.EncoderPositions);   // the source's positions, read bidirectionally
        Assert.Equal(source.Config.DecoderPositions, c.DecoderPositions);
        Assert.Equal(source.Config with { Family = ModelFamily.EncoderDecoder, EncoderLayers = 3, EncoderPositions = c.EncoderPositions, DecoderStartTokenId = c.DecoderStartTokenId }, c);
        Assert.Equal(source.Config.BosTokenId >= 0 ? source.Config.BosTokenId : source.Config.PadTokenId, c.DecoderStartTokenId);
        Assert.Equal(CrossAttentionInit.Copy, report.CrossAttention);
        Assert.Empty(report.Fresh);

        foreach (var p in model.Parameters.All)
        {
            string name = p.Name;
            string from = name.StartsWith("encoder.", StringComparison.Ordinal) ? "decoder." + name["encoder.".Length..]
                : name.Replace(".cross_attn_norm.", ".self_attn_norm.").Replace(".cross_attn.", ".self_attn.");
            Assert.True(source.Parameters.Contains(from), $"{name} has no source {from}");
            Assert.Equal(Values(source, from), p.Value.ToFloatArray());
        }
        // Spelled out for the parts the issue names.
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(Values(source, $"decoder.layers.{i}.mlp.up_proj.weight"), Values(model, $"encoder.layers.{i}.mlp.up_proj.weight"));
            Assert.Equal(Values(source, $"decoder.layers.{i}.self_attn.k_proj.weight"), Values(model, $"decoder.layers.{i}.self_attn.k_proj.weight"));
            foreach (var proj in new[] { "q_proj", "k_proj", "v_proj", "o_proj" })
                Assert.Equal(Values(model, $"decoder.layers.{i}.self_attn.{proj}.weight"), Values(model, $"decoder.layers.{i}.cross_attn.{proj}.weight"));
            Assert.Equal(Values(model, $"decoder.layers.{i}.self_attn_norm.weight"), Values(model, $"decoder.layers.{i}.cross_attn_norm.weight"));
        }
        if (kind == "gpt2") Assert.Equal(Values(source, "decoder.embed_positions.weight"), Values(model, "encoder.embed_positions.weight"));
        if (kind == "llama") Assert.Equal(Values(source, LanguageModel.LmHead), Values(model, LanguageModel.LmHead));
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void WithCrossAttentionSilencedTheDecoderIsTheSourceModel(string kind)
    {
        // The decoder's self-attention, feed-forward, positions, final norm and head are the source's:
        // with the cross-attention output zeroed it must give the source's logits on the same ids.
        using var source = new DecoderOnlyModel(Source(kind), seed: 11);
        var (model, _) = ModelAdaptation.Adapt(source);
        using var __ = model;
        foreach (var p in model.Parameters.All.Where(p => p.Name.Contains(".cross_attn.o_proj.", StringComparison.Ordinal)))
            p.Value.AsSpan<float>().Clear();
        var r = new Random(5);
        int b = 2, s = 6, t = 5;
        var src = Enumerable.Range(0, b * s).Select(_ => r.Next(3, 64)).ToArray();
        var tgt = Enumerable.Range(0, b * t).Select(_ => r.Next(3, 64)).ToArray();
        using var want = source.Forward(tgt, b);
        using var got = model.Forward(src, null, tgt, b);
        var w = want.Value.ToFloatArray();
        var g = got.Value.ToFloatArray();
        Assert.Equal(w.Length, g.Length);
        for (int i = 0; i < w.Length; i++) Assert.True(Math.Abs(w[i] - g[i]) <= 1e-4f * (1 + Math.Abs(w[i])), $"logit {i}: {g[i]} vs the source's {w[i]}");
        Assert.All(g, x => Assert.True(float.IsFinite(x)));
    }

    [Fact]
    public void EncoderAndDecoderTakeTheFirstBlocksAsked()
    {
        using var source = new DecoderOnlyModel(Source("tiny", layers: 4), seed: 3);
        var (model, _) = ModelAdaptation.Adapt(source, options: new AdaptationOptions { EncoderLayers = 3, DecoderLayers = 2 });
        using var _ = model;
        Assert.Equal((3, 2), (model.Config.EncoderLayers, model.Config.DecoderLayers));
        Assert.False(model.Parameters.Contains("encoder.layers.3.mlp.up_proj.weight"));
        Assert.False(model.Parameters.Contains("decoder.layers.2.mlp.up_proj.weight"));
        Assert.Equal(Values(source, "decoder.layers.2.self_attn.q_proj.weight"), Values(model, "encoder.layers.2.self_attn.q_proj.weight"));
        Assert.Equal(Values(source, "decoder.layers.1.mlp.down_proj.weight"), Values(model, "decoder.layers.1.mlp.down_proj.weight"));
        Assert.Equal(Values(source, "decoder.final_norm.weight"), Values(model, "encoder.final_norm.weight"));
    }

    [Fact]
    public void UnbalancedDecoderComesFromTheSmallerModelWithFreshCrossAttention()
    {
        using var big = new DecoderOnlyModel(Source("llama", layers: 4), seed: 1);
        using var small = new DecoderOnlyModel(Source("llama", layers: 2), seed: 2);
        var (model, report) = ModelAdaptation.Adapt(big, small, new AdaptationOptions { Seed = 9 });
        using var _ = model;
        Assert.True(report.Unbalanced);
        Assert.Equal(CrossAttentionInit.Fresh, report.CrossAttention);
        Assert.Equal((4, 2), (model.Config.EncoderLayers, model.Config.DecoderLayers));
        for (int i = 0; i < 4; i++)
            Assert.Equal(Values(big, $"decoder.layers.{i}.self_attn.v_proj.weight"), Values(model, $"encoder.layers.{i}.self_attn.v_proj.weight"));
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(Values(small, $"decoder.layers.{i}.self_attn.v_proj.weight"), Values(model, $"decoder.layers.{i}.self_attn.v_proj.weight"));
            Assert.NotEqual(Values(small, $"decoder.layers.{i}.self_attn.q_proj.weight"), Values(model, $"decoder.layers.{i}.cross_attn.q_proj.weight"));
            Assert.All(Values(model, $"decoder.layers.{i}.cross_attn_norm.weight"), x => Assert.Equal(1f, x));
        }
        Assert.Equal(Values(small, LanguageModel.EmbedTokens), Values(model, LanguageModel.EmbedTokens));
        Assert.Equal(Values(small, LanguageModel.LmHead), Values(model, LanguageModel.LmHead));
        Assert.Equal(Values(small, "decoder.final_norm.weight"), Values(model, "decoder.final_norm.weight"));
        // Fresh = exactly the cross-attention, initialized as a new model of this seed would be.
        Assert.All(report.Fresh, n => Assert.Contains(".cross_attn", n));
        Assert.Equal(2 * 8, report.Fresh.Count);   // per block: q, k, v (weights and biases), o, norm
        using var fresh = new EncoderDecoderModel(model.Config, seed: 9);
        Assert.Equal(Values(fresh, "decoder.layers.1.cross_attn.k_proj.weight"), Values(model, "decoder.layers.1.cross_attn.k_proj.weight"));
        // Copying can be asked for all the same.
        var (copied, copiedReport) = ModelAdaptation.Adapt(big, small, new AdaptationOptions { CrossAttention = CrossAttentionInit.Copy });
        using (copied)
        {
            Assert.Empty(copiedReport.Fresh);
            Assert.Equal(Values(small, "decoder.layers.0.self_attn.q_proj.weight"), Values(copied, "decoder.layers.0.cross_attn.q_proj.weight"));
        }
    }

    [Fact]
    public void ANarrowerDecoderSourceLeavesTheEncoderItsWidthsAndTableAndStartsCrossAttentionFresh()
    {
        // T5Gemma 9B-2B in miniature: a 48-wide encoder source (6 heads of 8 over 2 kv heads, FFN 96) and a 32-wide
        // decoder source (4 heads of 8 over 2, FFN 64) of one vocabulary and block layout.
        using var big = new DecoderOnlyModel(Source("llama", layers: 3) with { DModel = 48, Heads = 6, KvHeads = 2, HeadDim = 8, FfnDim = 96 }, seed: 1);
        using var small = new DecoderOnlyModel(Source("llama", layers: 2) with { HeadDim = 8, Heads = 4, KvHeads = 2 }, seed: 2);
        var (model, report) = ModelAdaptation.Adapt(big, small, new AdaptationOptions { Seed = 9 });
        using var _ = model;
        var c = model.Config;
        Assert.True(report.Unbalanced);
        Assert.Equal(CrossAttentionInit.Fresh, report.CrossAttention);
        Assert.Equal(StackShape.Of(big.Config), c.EncoderShape);
        Assert.Equal(StackShape.Of(small.Config), StackShape.Of(c));
        Assert.True(c.EncoderEmbeddings);
        Assert.Equal((48, 32), (c.EncoderDModel, c.DModel));
        // The encoder is the big model's, its token table included; the decoder, shared table and head the small one's.
        Assert.Equal(Values(big, LanguageModel.EmbedTokens), Values(model, EncoderDecoderModel.EncoderEmbedTokens));
        Assert.Equal(Values(small, LanguageModel.EmbedTokens), Values(model, LanguageModel.EmbedTokens));
        Assert.Equal(Values(small, LanguageModel.LmHead), Values(model, LanguageModel.LmHead));
        for (int i = 0; i < 3; i++)
            Assert.Equal(Values(big, $"decoder.layers.{i}.mlp.down_proj.weight"), Values(model, $"encoder.layers.{i}.mlp.down_proj.weight"));
        Assert.Equal(Values(big, "decoder.final_norm.weight"), Values(model, "encoder.final_norm.weight"));
        for (int i = 0; i < 2; i++)
            Assert.Equal(Values(small, $"decoder.layers.{i}.self_attn.k_proj.weight"), Values(model, $"decoder.layers.{i}.self_attn.k_proj.weight"));
        // Cross-attention's keys and values read the encoder's 48 features into the decoder's 2 kv heads of 8.
        Assert.Equal([16, 48], model.Parameters["decoder.layers.0.cross_attn.k_proj.weight"].Value.Shape.ToArray());
        Assert.Equal([32, 32], model.Parameters["decoder.layers.0.cross_attn.q_proj.weight"].Value.Shape.ToArray());
        Assert.All(report.Fresh, n => Assert.Contains(".cross_attn", n));
        Assert.Equal(report.FromSource + report.FromDecoderSource + report.Fresh.Count, model.Parameters.All.Count());
        Assert.Equal(ParameterCounter.Count(c), model.ParameterCount);

        // It computes: the encoder's memory is 48 wide, and training lowers the loss.
        int[] src = [5, 6, 7, 8, 9, 10], inputs = [2, 11, 12, 13], targets = [11, 12, 13, 1];
        using (var memory = model.Encode(src, 1)) Assert.Equal([1, 6, 48], memory.Shape.ToArray());
        AssertTrains(model, src, inputs, targets);

        var e = Assert.Throws<ArgumentException>(() => ModelAdaptation.Adapt(big, small, new AdaptationOptions { CrossAttention = CrossAttentionInit.Copy },
            sourceName: "big/config.json", decoderSourceName: "small/config.json"));
        Assert.Contains("cross-attention cannot be copied from self-attention", e.Message);
        Assert.Contains("48 features (big/config.json's d_model)", e.Message);
    }

    [Fact]
    public void WhatDoesNotFitIsRefusedNamingTheField()
    {
        using var source = new DecoderOnlyModel(Source("tiny"), seed: 1);
        using var words = new DecoderOnlyModel(Source("tiny") with { VocabSize = 80 }, seed: 2);
        var e = Assert.Throws<ArgumentException>(() => ModelAdaptation.Adapt(source, words, sourceName: "big/config.json", decoderSourceName: "small/config.json"));
        Assert.Contains("small/config.json does not fit big/config.json", e.Message);
        Assert.Contains("vocab_size (64 vs 80)", e.Message);

        using var gated = new DecoderOnlyModel(Source("tiny") with { FfnDim = 96, GatedFfn = true }, seed: 2);
        e = Assert.Throws<ArgumentException>(() => ModelAdaptation.Adapt(source, gated));
        Assert.Contains("gated_ffn (False vs True)", e.Message);
        Assert.DoesNotContain("ffn_dim", e.Message);   // widths may differ

        e = Assert.Throws<ArgumentException>(() => ModelAdaptation.AdaptedConfig(Presets.Get("tiny-encoder"), null, sourceName: "bert/config.json"));
        Assert.Contains("bert/config.json is an encoder-only model", e.Message);
        e = Assert.Throws<ArgumentException>(() => ModelAdaptation.AdaptedConfig(Presets.Get("tiny-encdec"), null));
        Assert.Contains("already an encoder–decoder", e.Message);
        e = Assert.Throws<ArgumentException>(() => ModelAdaptation.AdaptedConfig(source.Config, null, new AdaptationOptions { EncoderLayers = 4 }));
        Assert.Contains("encoder_layers 4 is outside the blocks of the source: give 1 … 3", e.Message);
        e = Assert.Throws<ArgumentException>(() => ModelAdaptation.AdaptedConfig(source.Config, null, new AdaptationOptions { DecoderLayers = 0 }));
        Assert.Contains("decoder_layers 0", e.Message);
    }

    [Fact]
    public void AnAdaptedModelTrains()
    {
        using var source = new DecoderOnlyModel(Source("llama"), seed: 4);
        var (model, _) = ModelAdaptation.Adapt(source);
        using var _ = model;
        AssertTrains(model, [5, 6, 7, 8, 9, 10], [2, 11, 12, 13], [11, 12, 13, 1]);
    }

    // 20 AdamW steps on one example must at least halve its loss.
    static void AssertTrains(EncoderDecoderModel model, int[] src, int[] inputs, int[] targets)
    {
        var opt = new Encore.Autograd.Optim.AdamW(model.Parameters.All, new Encore.Autograd.Optim.AdamWOptions { WeightDecay = 0 }) { LearningRate = 3e-3 };
        float first = 0, last = 0;
        for (int step = 0; step < 20; step++)
        {
            opt.ZeroGrad();
            using var tape = Tape.Record();
            var logits = model.Forward(src, null, inputs, 1);
            var loss = Ops.CrossEntropy(Ops.Reshape(logits, targets.Length, model.Config.VocabSize), targets);
            if (step == 0) first = loss.Value.ToFloatArray()[0];
            last = loss.Value.ToFloatArray()[0];
            tape.Backward(loss);
            opt.Update();
        }
        Assert.True(last < 0.5f * first, $"loss {first} → {last}");
        opt.Dispose();
    }
}
