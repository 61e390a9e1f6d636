using Encore.Autograd;

namespace Encore.Models.Tests;

public class ContextCompressionTests
{
    // A tiny decoder-only model with RoPE from position 0, as the compressor's encoder source and its decoder.
    static ModelConfig Decoder(bool postNorm = false, PositionKind positions = PositionKind.Rope) => Presets.Get("tiny-decoder") with
    {
        DecoderLayers = 2,
        PostNorm = postNorm,
        DecoderPositions = new PositionConfig { Kind = positions },
        MaxPositions = 64,
    };

    static float[] Values(Var v) => v.Value.ToFloatArray();

    [Theory]
    [InlineData(false, PositionKind.Rope)]
    [InlineData(true, PositionKind.Rope)]
    [InlineData(false, PositionKind.Learned)]
    public void PoolingByOneEqualsTheNormalLastBlockExactly(bool postNorm, PositionKind positions)
    {
        using var source = new DecoderOnlyModel(Decoder(postNorm, positions), seed: 3);
        using var c = ContextCompressor.FromDecoder(source, source, pooling: 1);
        var rng = new Random(5);
        var ids = Enumerable.Range(0, 2 * 9).Select(_ => rng.Next(3, 64)).ToArray();
        using var x = Ops.Embedding(Var.Of(c.Parameters[ContextCompressor.EmbedTokens]), ids, 2, 9);
        using var plain = c.Encoder.Forward(x, null, null, null, null, 0);
        using var pooled = c.Encoder.Forward(x, null, null, null, null, 0, pooling: 1);
        Assert.Equal([2, 9, 32], pooled.Shape.ToArray());
        Assert.Equal(Values(plain), Values(pooled));
    }

    [Fact]
    public void PoolingChangesOnlyTheLastBlock()
    {
        // A one-block stack pooled by 2 is the block whose queries are the pair means: its output differs from the
        // unpooled block's mean of pairs (attention and the MLP are not linear), and has half the positions.
        using var source = new DecoderOnlyModel(Decoder(), seed: 3);
        using var c = ContextCompressor.FromDecoder(source, source, pooling: 2, dropLayers: 1);
        Assert.Equal(1, c.Encoder.Layers);
        int[] ids = [5, 9, 12, 7, 30, 41, 8, 3];
        using var x = Ops.Embedding(Var.Of(c.Parameters[ContextCompressor.EmbedTokens]), ids, 1, 8);
        using var pooled = c.Encoder.Forward(x, null, null, null, null, 0, pooling: 2);
        using var plain = c.Encoder.Forward(x, null, null, null, null, 0);
        using var meanOfPlain = Ops.GroupMean(plain, [2, 2, 2, 2]);
        Assert.Equal([1, 4, 32], pooled.Shape.ToArray());
        Assert.NotEqual(Values(meanOfPlain), Values(pooled));
    }

    [Fact]
    public void ThePooledBlockIsPooledQueriesAtCompactPositionsOverUnpooledKeys()
    {
        // A reference written op by op: one pre-norm block (the paper's last block), PF 2 over 6 positions.
        using var source = new DecoderOnlyModel(Decoder(), seed: 8);
        using var c = ContextCompressor.FromDecoder(source, source, pooling: 2, dropLayers: 1);
        var cfg = c.Config.Encoder;
        int[] ids = [5, 9, 12, 7, 30, 41];
        using var x = Ops.Embedding(Var.Of(c.Parameters[ContextCompressor.EmbedTokens]), ids, 1, 6);   // (1, 6, D)
        using var pooled = c.Encoder.Forward(x, null, null, null, null, 0, pooling: 2);                   // (1, 3, D)

        Var W(string name) => Var.Of(c.Parameters["encoder.layers.0." + name + ".weight"]);
        Var Norm(Var v, string name) => Ops.RmsNorm(v, W(name), cfg.NormEps);
        var rope = new Encore.Tensors.Kernels.RopeCache(cfg.HeadDim, 0, cfg.EncoderPositions.Rope);
        var xq = Ops.GroupMean(x, [2, 2, 2]);                                                            // (1, 3, D)
        var q = Ops.Rope(Ops.Linear(Norm(xq, "self_attn_norm"), W("self_attn.q_proj")), rope, cfg.Heads, [0f, 1, 2]);
        var k = Ops.Rope(Ops.Linear(Norm(x, "self_attn_norm"), W("self_attn.k_proj")), rope, cfg.KvHeads, [0f, 1, 2, 3, 4, 5]);
        var v = Ops.Linear(Norm(x, "self_attn_norm"), W("self_attn.v_proj"));
        var a = Ops.Attention(q, k, v, cfg.Heads, cfg.KvHeads, new Encore.Tensors.Kernels.AttentionOptions { Scale = cfg.AttentionScale });
        var h = Ops.Add(xq, Ops.Linear(a, W("self_attn.o_proj")));
        var u = Ops.Activation(Ops.Linear(Norm(h, "mlp_norm"), W("mlp.up_proj")), cfg.Activation);
        h = Ops.Add(h, Ops.Linear(u, W("mlp.down_proj")));
        var expected = Ops.RmsNorm(h, Var.Of(c.Parameters["encoder.final_norm.weight"]), cfg.NormEps);
        Assert.Equal(Values(expected), Values(pooled), new ToleranceComparer(1e-5f));
    }

    [Theory]
    [InlineData(64, 4, new[] { 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4 })]
    [InlineData(10, 4, new[] { 4, 3, 3 })]
    [InlineData(9, 8, new[] { 5, 4 })]
    [InlineData(3, 8, new[] { 3 })]
    [InlineData(5, 1, new[] { 1, 1, 1, 1, 1 })]
    public void PoolingGroupsAreNearEqualAndCoverEveryPosition(int n, int pf, int[] expected)
    {
        Assert.Equal(expected, TransformerStack.PoolingGroups(n, pf));
    }

    [Fact]
    public void GradientsThroughThePooledBlockAndTheFrozenDecoderMatchFiniteDifferences()
    {
        using var decoder = new DecoderOnlyModel(Decoder(), seed: 11);
        foreach (var p in decoder.Parameters.All) p.Trainable = false;
        using var c = ContextCompressor.FromDecoder(decoder, decoder, pooling: 3, projectorHidden: 24, seed: 2);
        // Special embeddings away from all-ones, so their gradient is not the same in every entry.
        var special = c.Parameters[ContextCompressor.SpecialTokens].Value.AsSpan<float>();
        for (int i = 0; i < special.Length; i++) special[i] = 1 + 0.1f * MathF.Sin(i);
        int[] context = [5, 9, 12, 7, 30, 41, 8];                  // n = 7 → groups 3, 2, 2
        int[] tokens = [17, 22, 4];
        int[] labels = [-100, -100, -100, 17, 22, 4, 50];          // G = 3 vectors, the special, then the tokens
        Var Loss()
        {
            var compressed = c.Compress(context, 1);
            var input = c.DecoderInput(decoder, compressed, CompressionTask.Continuation, tokens);
            return Ops.CrossEntropy(decoder.ForwardEmbeddings(input), labels);
        }
        foreach (var p in c.Parameters.All) p.ZeroGrad();
        using (var tape = Tape.Record()) tape.Backward(Loss());
        Assert.All(decoder.Parameters.All, p => Assert.True(p.Grad is null || p.Grad.ToFloatArray().All(g => g == 0), p.Name));
        FiniteDifferences.AssertGradients(c.Parameters,
        [
            ("encoder.layers.1.self_attn.q_proj.weight", [3, 100, 700]),    // pooled queries
            ("encoder.layers.1.self_attn.k_proj.weight", [5, 200]),         // unpooled keys
            ("encoder.layers.1.self_attn_norm.weight", [1, 20]),           // both
            ("encoder.layers.1.mlp.up_proj.weight", [9, 1000]),            // the pooled residual stream
            ("encoder.layers.0.mlp.down_proj.weight", [7, 900]),           // before the pooled block
            (ContextCompressor.EmbedTokens, [9 * 32 + 4, 41 * 32 + 30]),
            ("projector.0.weight", [0, 333]),
            ("projector.1.weight", [10, 700]),
            (ContextCompressor.SpecialTokens, [32 + 3, 32 + 31]),          // <Cont>
        ], Loss);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheDecoderFedItsOwnTokenEmbeddingsEqualsTheDecoderFedIds(bool scaled)
    {
        using var m = new DecoderOnlyModel(Decoder() with { ScaleEmbeddings = scaled }, seed: 4);
        int[] ids = [2, 5, 9, 12, 7, 30, 41, 8, 3, 60];
        using var fromIds = m.Forward(ids, 2);
        using var embeddings = m.TokenEmbeddings(ids, 2);
        using var fromEmbeddings = m.ForwardEmbeddings(embeddings);
        Assert.Equal(Values(fromIds), Values(fromEmbeddings));

        // Prefill from embeddings into a cache, then a step from ids, continues as the ids would.
        using var cache = m.CreateCache(1, 8);
        using var first = m.TokenEmbeddings(ids[..4], 1);
        using var last = m.PrefillEmbeddings(first, cache);
        using var step = m.Forward(ids[4..5], 1, cache: cache);
        using var whole = m.Forward(ids[..5], 1);
        var w = Values(whole);
        Assert.Equal(w.AsSpan(3 * 64, 64).ToArray(), Values(last), new ToleranceComparer(1e-5f));
        Assert.Equal(w.AsSpan(4 * 64, 64).ToArray(), Values(step), new ToleranceComparer(1e-5f));
    }

    [Fact]
    public void DecoderInputPutsTheVectorsThenTheSpecialEmbeddingThenTheTokens()
    {
        using var decoder = new DecoderOnlyModel(Decoder(), seed: 4);
        using var c = ContextCompressor.FromDecoder(decoder, decoder, pooling: 4);
        using var compressed = c.Compress([5, 9, 12, 7, 30, 41, 8, 3], 1);           // (1, 2, 32)
        using var input = c.DecoderInput(decoder, compressed, CompressionTask.Reconstruction, [17, 22]);
        using var tokens = decoder.TokenEmbeddings([17, 22], 1);
        var v = Values(input);
        Assert.Equal([1, 5, 32], input.Shape.ToArray());
        Assert.Equal(Values(compressed), v[..64]);
        Assert.All(v[64..96], x => Assert.Equal(1f, x));                            // <Rec> starts at ones
        Assert.Equal(Values(tokens), v[96..]);
        Assert.Throws<ArgumentException>(() => ContextCompressor.FromDecoder(decoder, decoder, pooling: 4, dropLayers: 2));
    }

    sealed class ToleranceComparer(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => MathF.Abs(a - b) <= tolerance * (1 + MathF.Abs(b));
        public int GetHashCode(float x) => 0;
    }
}
