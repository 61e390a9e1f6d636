using System.Numerics.Tensors;
using Encore.Autograd;

namespace Encore.Models.Tests;

/// <summary>
/// Early exit (StackExit): checked against models cut to fewer layers (their parameters copied), which
/// compute the state after layer l by the ordinary forward pass; against a scalar computation of the
/// exit rule on those states; and against the same tokens decoded one at a time, together, and in a batch.
/// </summary>
public class EarlyExitTests
{
    static readonly ModelConfig Config = Presets.Get("tiny-encdec") with { EncoderLayers = 4, DecoderLayers = 3, TieEmbeddings = false, VocabSize = 64 };

    static EncoderDecoderModel Model() => new(Config, 11);

    /// <summary>A model of <paramref name="encoder"/> + <paramref name="decoder"/> layers holding <paramref name="source"/>'s parameters for them.</summary>
    static EncoderDecoderModel Cut(EncoderDecoderModel source, int encoder, int decoder, bool finalNorm = true)
    {
        var cut = new EncoderDecoderModel(source.Config with { EncoderLayers = encoder, DecoderLayers = decoder, FinalNorm = finalNorm }, 99);
        foreach (var p in cut.Parameters.All.ToArray()) cut.Parameters.Assign(p.Name, source.Parameters[p.Name].Value.Clone());
        return cut;
    }

    static readonly int[][] Sources = [[5, 9, 13, 17, 21, 8, 40, 1], [33, 2, 60, 1], [7, 7, 19, 44, 51, 1]];

    static (int[] Ids, int[] Lengths, int S) Padded(int[][] sources)
    {
        int s = sources.Max(x => x.Length);
        var ids = new int[sources.Length * s];
        for (int i = 0; i < sources.Length; i++) sources[i].CopyTo(ids, i * s);
        return (ids, sources.Select(x => x.Length).ToArray(), s);
    }

    static float[] Values(Var v)
    {
        using (v) return v.Value.AsReadOnlySpan<float>().ToArray();
    }

    static float MaxDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        float worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
        return worst;
    }

    [Fact]
    public void EncoderExitsPerExampleWhereTheMeanCosineFirstReachesTheThreshold()
    {
        using var m = Model();
        int d = Config.DModel, layers = Config.EncoderLayers;
        // The scalar rule on the raw states: h_0 is the embedding (RoPE adds nothing to the stream), h_l the
        // output of a model cut to l layers without its final norm.
        var embed = m.Parameters[LanguageModel.EmbedTokens].Value.AsReadOnlySpan<float>().ToArray();
        var cosines = new double[Sources.Length][];
        for (int e = 0; e < Sources.Length; e++)
        {
            var src = Sources[e];
            var previous = src.SelectMany(id => embed.AsSpan(id * d, d).ToArray()).ToArray();
            cosines[e] = new double[layers - 1];
            for (int l = 1; l < layers; l++)
            {
                using var raw = Cut(m, l, 1, finalNorm: false);
                var h = Values(raw.Encode(src, 1));
                double sum = 0;
                for (int p = 0; p < src.Length; p++)
                {
                    double dot = 0, nx = 0, ny = 0;
                    for (int k = 0; k < d; k++)
                    {
                        double x = previous[p * d + k], y = h[p * d + k];
                        dot += x * y;
                        nx += x * x;
                        ny += y * y;
                    }
                    sum += dot / Math.Sqrt(nx * ny);
                }
                cosines[e][l - 1] = sum / src.Length;
                previous = h;
            }
        }
        // A threshold between the examples' similarities, so they exit at different layers.
        var all = cosines.SelectMany(c => c).Order().ToArray();
        float tau = (float)((all[all.Length / 2] + all[all.Length / 2 - 1]) / 2);
        var depth = cosines.Select(c => { int i = Array.FindIndex(c, x => x >= tau); return i < 0 ? layers : i + 1; }).ToArray();
        Assert.True(depth.Distinct().Count() > 1, $"the examples all exit at layer {depth[0]}; the test needs them apart");

        var (ids, lengths, s) = Padded(Sources);
        var exit = new StackExit(tau, Sources.Length);
        var memory = Values(m.Encode(ids, Sources.Length, lengths, exit));
        Assert.Equal(depth.Select(x => (long)x), exit.LayersByRow);
        Assert.All(exit.UnitsByRow, u => Assert.Equal(1, u));
        for (int e = 0; e < Sources.Length; e++)
        {
            using var cut = Cut(m, depth[e], 1);
            var expected = Values(cut.Encode(Sources[e], 1));
            float diff = MaxDiff(expected, memory.AsSpan(e * s * d, Sources[e].Length * d));
            Assert.True(diff < 1e-5f, $"example {e} (exit after {depth[e]}): memory differs by {diff:G3}");
        }
    }

    [Fact]
    public void ThresholdsAtOrBelowZeroExitAfterTheFirstLayerAndAtOrAboveOneNever()
    {
        using var m = Model();
        using var one = Cut(m, 1, 1);
        var (ids, lengths, s) = Padded(Sources);
        int[] targets = [4, 20, 31, 9];
        foreach (float tau in new[] { 0f, -0.5f })
        {
            var enc = new StackExit(tau, Sources.Length);
            using var memory = m.Encode(ids, Sources.Length, lengths, enc);
            using var reference = one.Encode(ids, Sources.Length, lengths);
            Assert.True(MaxDiff(reference.Value.AsReadOnlySpan<float>(), memory.Value.AsReadOnlySpan<float>()) < 1e-6f);
            Assert.Equal([1L, 1, 1], enc.LayersByRow);
            // Every token leaves the decoder after its first layer: the logits are the one-layer decoder's.
            using var cache = m.CreateCache(Sources.Length, 8, s);
            cache.Exit = new StackExit(tau, Sources.Length);
            using var oneCache = one.CreateCache(Sources.Length, 8, s);
            foreach (int t in targets)
            {
                var step = Enumerable.Repeat(t, Sources.Length).ToArray();
                var got = Values(m.Decode(memory, lengths, step, Sources.Length, cache));
                var want = Values(one.Decode(reference, lengths, step, Sources.Length, oneCache));
                Assert.True(MaxDiff(want, got) < 1e-5f, $"τ {tau}, token {t}");
            }
            Assert.Equal(Enumerable.Repeat((long)targets.Length, 3), cache.Exit.LayersByRow);
            Assert.Equal(Enumerable.Repeat((long)targets.Length, 3), cache.Exit.UnitsByRow);
        }
        foreach (float tau in new[] { 1f, 1.5f })
        {
            var enc = new StackExit(tau, Sources.Length);
            var got = Values(m.Encode(ids, Sources.Length, lengths, enc));
            var plain = Values(m.Encode(ids, Sources.Length, lengths));
            Assert.Equal(plain, got);
            Assert.Equal([4L, 4, 4], enc.LayersByRow);
        }
    }

    // Logits of the tokens fed one step at a time (B rows, one token each per step) under decoder threshold τ.
    static (float[][] Logits, StackExit Exit) Steps(EncoderDecoderModel m, int[][] sources, int[][] tokens, float tau)
    {
        var (ids, lengths, s) = Padded(sources);
        using var memory = m.Encode(ids, sources.Length, lengths);
        using var cache = m.CreateCache(sources.Length, 16, s);
        cache.Exit = new StackExit(tau, sources.Length);
        var logits = new List<float[]>();
        for (int i = 0; i < tokens[0].Length; i++)
            logits.Add(Values(m.Decode(memory, lengths, tokens.Select(t => t[i]).ToArray(), sources.Length, cache)));
        return (logits.ToArray(), cache.Exit);
    }

    static readonly int[] Tokens = [0, 30, 31, 7, 44, 12, 3, 60, 25, 9];

    // A decoder threshold at which some tokens exit early and some run the whole decoder.
    static float MixedThreshold(EncoderDecoderModel m)
    {
        foreach (float tau in Enumerable.Range(0, 200).Select(i => 0.5f + i * 0.0025f))
        {
            var (_, exit) = Steps(m, [Sources[0]], [Tokens], tau);
            if (exit.Layers > Tokens.Length + 2 && exit.Layers < Tokens.Length * Config.DecoderLayers - 2) return tau;
        }
        throw new InvalidOperationException("no threshold mixes early and late exits on this model");
    }

    [Fact]
    public void SkippedLayersKeysFromTheExitStateMatchBetweenStepsOnePassAndABatch()
    {
        using var m = Model();
        float tau = MixedThreshold(m);
        var (steps, stepExit) = Steps(m, [Sources[0]], [Tokens], tau);

        // All tokens in one pass: there a token that exits keeps its state through the later blocks, which
        // compute its keys from it; a lone step instead only writes those keys. Both must agree.
        var (ids, lengths, s) = Padded([Sources[0]]);
        using var memory = m.Encode(ids, 1, lengths);
        using var cache = m.CreateCache(1, 16, s);
        cache.Exit = new StackExit(tau, 1);
        var once = Values(m.Decode(memory, lengths, Tokens, 1, cache));
        int v = Config.VocabSize;
        for (int i = 0; i < Tokens.Length; i++)
        {
            float diff = MaxDiff(steps[i], once.AsSpan(i * v, v));
            Assert.True(diff < 1e-5f, $"token {i}: one pass differs from steps by {diff:G3}");
        }
        Assert.Equal(stepExit.Layers, cache.Exit.Layers);

        // Rows that exit at different layers decode together as each alone.
        int[][] tokens = [Tokens, [.. Tokens.Reverse()], [.. Tokens.Select(t => (t * 7 + 3) % v)]];
        var (batch, batchExit) = Steps(m, Sources, tokens, tau);
        for (int r = 0; r < Sources.Length; r++)
        {
            var (alone, aloneExit) = Steps(m, [Sources[r]], [tokens[r]], tau);
            for (int i = 0; i < Tokens.Length; i++)
                Assert.True(MaxDiff(alone[i], batch[i].AsSpan(r * v, v)) < 1e-5f, $"row {r}, token {i}");
            Assert.Equal(aloneExit.Layers, batchExit.LayersByRow[r]);
        }

        // And an early exit changes the logits: the rule is not a no-op.
        var (plain, _) = Steps(m, [Sources[0]], [Tokens], 1f);
        Assert.True(Enumerable.Range(0, Tokens.Length).Max(i => MaxDiff(plain[i], steps[i])) > 1e-3f);
    }

    [Fact]
    public void LayerOutputsAreTheFinalNormOfEachLayerThroughTheSharedHead()
    {
        using var m = Model();
        var (ids, lengths, _) = Padded(Sources);
        int[] inputs = [.. Enumerable.Range(0, Sources.Length * 4).Select(i => (i * 5 + 1) % 64)];
        var memories = m.EncodeLayers(ids, Sources.Length, lengths);
        Assert.Equal(Config.EncoderLayers, memories.Count);
        var logits = m.DecodeLayers(memories[1], lengths, inputs, Sources.Length);
        Assert.Equal(Config.DecoderLayers, logits.Count);
        for (int l = 1; l <= Config.EncoderLayers; l++)
        {
            using var cut = Cut(m, l, Config.DecoderLayers);
            Assert.True(MaxDiff(Values(cut.Encode(ids, Sources.Length, lengths)), memories[l - 1].Value.AsReadOnlySpan<float>()) < 1e-5f, $"encoder layer {l}");
        }
        for (int l = 1; l <= Config.DecoderLayers; l++)
        {
            using var cut = Cut(m, Config.EncoderLayers, l);
            var want = Values(cut.Decode(memories[1], lengths, inputs, Sources.Length));
            Assert.True(MaxDiff(want, logits[l - 1].Value.AsReadOnlySpan<float>()) < 1e-5f, $"decoder layer {l}");
        }
    }

    [Fact]
    public void BadThresholdsAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StackExit(float.NaN, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new StackExit(float.PositiveInfinity, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new StackExit(0.9f, 0));
        using var m = Model();
        var (ids, lengths, _) = Padded(Sources);
        using var tape = Tape.Record();
        Assert.Throws<InvalidOperationException>(() => m.Encode(ids, Sources.Length, lengths, new StackExit(0.5f, Sources.Length)));
    }
}
