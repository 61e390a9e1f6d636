using Encore.Autograd;
using Encore.Autograd.Optim;

namespace Encore.Models.Tests;

/// <summary>ComRoPE and URPE as position kinds of the three families: equivalences at initialization, caches, training, configuration.</summary>
public class PositionKindTests
{
    static int[] Ids(Random r, int n, int v) => Enumerable.Range(0, n).Select(_ => r.Next(2, v)).ToArray();

    static void AssertClose(float[] expected, float[] actual, double tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol, $"{what} {i}: {expected[i]} vs {actual[i]}");
    }

    static float[] EncDecLogits(ModelConfig c, ulong seed, Action<ParameterSet>? edit = null)
    {
        using var m = new EncoderDecoderModel(c, seed);
        edit?.Invoke(m.Parameters);
        var r = new Random(11);
        int b = 2, s = 6, t = 5;
        using var y = m.Forward(Ids(r, b * s, c.VocabSize), [6, 4], Ids(r, b * t, c.VocabSize), b);
        return y.Value.ToFloatArray();
    }

    static float[] DecoderLogits(ModelConfig c, ulong seed)
    {
        using var m = new DecoderOnlyModel(c, seed);
        using var y = m.Forward(Ids(new Random(12), 2 * 7, c.VocabSize), 2, [7, 5]);
        return y.Value.ToFloatArray();
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void ComRopeStartsAsRope(int block)
    {
        // Started at RoPE's angles, ComRoPE is RoPE (b = 2: RoPE with trainable angles; larger b: the
        // same rotations embedded in larger blocks), with centered encoder positions too.
        var rope = Presets.Get("tiny-encdec") with
        {
            EncoderPositions = new PositionConfig { Kind = PositionKind.Rope, RopeCentered = true },
            DecoderPositions = new PositionConfig { Kind = PositionKind.Rope },
        };
        var com = rope with
        {
            EncoderPositions = new PositionConfig { Kind = PositionKind.ComRope, RopeCentered = true, ComRopeBlock = block },
            DecoderPositions = new PositionConfig { Kind = PositionKind.ComRope, ComRopeBlock = block },
        };
        AssertClose(EncDecLogits(rope, 5), EncDecLogits(com, 5), 1e-4, "logit");
        var ropeDecoder = Presets.Get("tiny-decoder");
        AssertClose(DecoderLogits(ropeDecoder, 6), DecoderLogits(ropeDecoder with { DecoderPositions = new PositionConfig { Kind = PositionKind.ComRope, ComRopeBlock = block } }, 6), 1e-4, "logit");
    }

    [Fact]
    public void UrpeStartsAsT5RelativeAttention()
    {
        var t5 = Presets.Get("tiny-encdec") with
        {
            EncoderPositions = new PositionConfig { Kind = PositionKind.T5Relative },
            DecoderPositions = new PositionConfig { Kind = PositionKind.T5Relative },
        };
        var urpe = t5 with
        {
            EncoderPositions = new PositionConfig { Kind = PositionKind.Urpe, UrpeMaxDistance = 3 },
            DecoderPositions = new PositionConfig { Kind = PositionKind.Urpe, UrpeMaxDistance = 3 },
        };
        AssertClose(EncDecLogits(t5, 7), EncDecLogits(urpe, 7), 1e-4, "logit");
        // Coefficients away from 1 change the output: the test above can fail.
        var moved = EncDecLogits(urpe, 7, ps => ps["decoder.layers.0.self_attn.urpe.weight"].Value.AsSpan<float>().Fill(0.5f));
        Assert.True(EncDecLogits(t5, 7).Zip(moved, (a, b) => Math.Abs(a - b)).Max() > 1e-3);
        var t5Decoder = Presets.Get("tiny-decoder") with { DecoderPositions = new PositionConfig { Kind = PositionKind.T5Relative } };
        AssertClose(DecoderLogits(t5Decoder, 8), DecoderLogits(t5Decoder with { DecoderPositions = new PositionConfig { Kind = PositionKind.Urpe } }, 8), 1e-4, "logit");
    }

    // Position parameters moved off their initial values, so caches and checkpoints are tested on trained-looking positions.
    internal static void Perturb(ParameterSet ps)
    {
        var r = new Random(3);
        foreach (var p in ps.All.Where(p => p.Name.Contains(".comrope.") || p.Name.Contains(".urpe.")))
        {
            var s = p.Value.AsSpan<float>();
            for (int i = 0; i < s.Length; i++) s[i] += (float)(r.NextDouble() - 0.5) * 0.6f;
        }
    }

    public static TheoryData<PositionKind, int> Kinds => new() { { PositionKind.ComRope, 2 }, { PositionKind.ComRope, 4 }, { PositionKind.Urpe, 0 } };

    static PositionConfig Position(PositionKind kind, int block) => new() { Kind = kind, ComRopeBlock = block == 0 ? 4 : block, UrpeMaxDistance = 3 };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void EncoderDecoderIncrementalDecodingEqualsTheFullTrainingForward(PositionKind kind, int block)
    {
        var cfg = Presets.Get("tiny-encdec") with { EncoderPositions = Position(kind, block), DecoderPositions = Position(kind, block) };
        using var m = new EncoderDecoderModel(cfg, seed: 3);
        Perturb(m.Parameters);
        var r = new Random(1);
        int b = 2, s = 7, t = 6;
        var src = Ids(r, b * s, cfg.VocabSize);
        var tgt = Ids(r, b * t, cfg.VocabSize);
        int[] lengths = [7, 4];
        float[] full;
        using (var tape = Tape.Record())
            full = m.Forward(src, lengths, tgt, b).Value.ToFloatArray();
        using var memory = m.Encode(src, b, lengths);
        using var cache = m.CreateCache(b, capacity: 16, sourceLength: s);
        int v = cfg.VocabSize;
        // Two tokens, then one at a time: multi-token steps and single steps both continue the cache.
        int done = 0;
        foreach (int n in new[] { 2, 1, 1, 2 })
        {
            var step = new int[b * n];
            for (int bi = 0; bi < b; bi++)
                for (int i = 0; i < n; i++) step[bi * n + i] = tgt[bi * t + done + i];
            using var logits = m.Decode(memory, lengths, step, b, cache);
            var y = logits.Value.ToFloatArray();
            for (int bi = 0; bi < b; bi++)
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < v; j++)
                        Assert.True(Math.Abs(full[(bi * t + done + i) * v + j] - y[(bi * n + i) * v + j]) < 1e-4, $"row {bi}, position {done + i}, logit {j}");
            done += n;
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void DecoderOnlyIncrementalDecodingEqualsTheFullForward(PositionKind kind, int block)
    {
        var cfg = Presets.Get("tiny-decoder") with { DecoderPositions = Position(kind, block) };
        using var m = new DecoderOnlyModel(cfg, seed: 4);
        Perturb(m.Parameters);
        var ids = Ids(new Random(2), 9, cfg.VocabSize);
        using var full = m.Forward(ids, 1);
        using var cache = m.CreateCache(1, 12);
        using var prefix = m.Forward(ids[..5], 1, cache: cache);
        using var one = m.Forward(ids[5..6], 1, cache: cache);
        using var rest = m.Forward(ids[6..], 1, cache: cache);
        var inc = prefix.Value.ToFloatArray().Concat(one.Value.ToFloatArray()).Concat(rest.Value.ToFloatArray()).ToArray();
        AssertClose(full.Value.ToFloatArray(), inc, 1e-4, "logit");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void ATinyModelWithTheKindLearnsAndItsPositionParametersTrain(PositionKind kind, int block)
    {
        var cfg = Presets.Get("tiny-encdec") with { EncoderPositions = Position(kind, block), DecoderPositions = Position(kind, block) };
        using var m = new EncoderDecoderModel(cfg, seed: 5);
        var positional = m.Parameters.All.Where(p => p.Name.Contains(".comrope.") || p.Name.Contains(".urpe.")).ToArray();
        Assert.NotEmpty(positional);
        Assert.All(positional, p => Assert.False(p.Decay));
        var initial = positional.Select(p => p.Value.ToFloatArray()).ToArray();
        var (first, last) = ShiftedBatch.Train(m, 40);
        Assert.True(last < first * 0.5f, $"loss on a fixed batch went from {first} to {last}");
        for (int i = 0; i < positional.Length; i++)
            Assert.True(positional[i].Value.ToFloatArray().Zip(initial[i], (a, c) => Math.Abs(a - c)).Max() > 1e-4, $"{positional[i].Name} did not move");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void TheParameterCounterAgreesWithABuiltModel(PositionKind kind, int block)
    {
        foreach (var name in new[] { "tiny-encdec", "tiny-decoder", "tiny-encoder" })
        {
            var c = Presets.Get(name) with { EncoderPositions = Position(kind, block), DecoderPositions = Position(kind, block) };
            using var m = LanguageModel.Create(c);
            Assert.Equal(ParameterCounter.Count(m.Config), m.ParameterCount);
        }
    }

    [Fact]
    public void TheNewFieldsRoundTripThroughConfigJsonAndBadValuesNameTheField()
    {
        var c = Presets.Get("tiny-encdec") with
        {
            EncoderPositions = new PositionConfig { Kind = PositionKind.Urpe, UrpeMaxDistance = 17, RelativeBuckets = 16 },
            DecoderPositions = new PositionConfig { Kind = PositionKind.ComRope, ComRopeBlock = 8, ComRopeInitStd = 0.01, RopeTheta = 500 },
        };
        var json = ModelConfigJson.Serialize(c);
        Assert.Contains("\"ComRope\"", json);
        Assert.Contains("\"com_rope_block\": 8", json);
        Assert.Contains("\"urpe_max_distance\": 17", json);
        Assert.Equal(c, ModelConfigJson.Deserialize(json));
        string Bad(string from, string to) => Assert.Throws<FormatException>(() => ModelConfigJson.Deserialize(json.Replace(from, to))).Message;
        Assert.Contains("com_rope_block", Bad("\"com_rope_block\": 8", "\"com_rope_block\": 3"));
        Assert.Contains("com_rope_block", Bad("\"com_rope_block\": 8", "\"com_rope_block\": 16"));   // does not divide head_dim 8
        Assert.Contains("urpe_max_distance", Bad("\"urpe_max_distance\": 17", "\"urpe_max_distance\": 0"));
        Assert.Contains("com_rope_init_std", Bad("\"com_rope_init_std\": 0.01", "\"com_rope_init_std\": -1"));
        Assert.Contains("com_rope_blok", Bad("\"com_rope_block\"", "\"com_rope_blok\""));
        Assert.Contains("encoder_positions.kind", Bad("\"Urpe\"", "\"Urpee\""));
    }

    [Fact]
    public void InitNoiseMovesTheGeneratorOffRope()
    {
        var plain = Presets.Get("tiny-decoder") with { DecoderPositions = new PositionConfig { Kind = PositionKind.ComRope } };
        using var a = new DecoderOnlyModel(plain, 1);
        using var b = new DecoderOnlyModel(plain with { DecoderPositions = plain.DecoderPositions with { ComRopeInitStd = 0.1 } }, 1);
        const string name = "decoder.layers.0.self_attn.comrope.basis";
        var pa = a.Parameters[name].Value.ToFloatArray();
        var pb = b.Parameters[name].Value.ToFloatArray();
        Assert.Contains(pa, x => x != 0);
        Assert.True(pa.Zip(pb, (x, y) => Math.Abs(x - y)).Max() > 0.01);
    }

    [Fact]
    public void AdaptingAUrpeDecoderMirrorsItsCausalTableForTheEncoder()
    {
        var cfg = Presets.Get("tiny-decoder") with { DecoderPositions = new PositionConfig { Kind = PositionKind.Urpe, UrpeMaxDistance = 3 } };
        using var source = new DecoderOnlyModel(cfg, 1);
        Perturb(source.Parameters);
        var (model, _) = ModelAdaptation.Adapt(source);
        using (model)
        {
            var c = source.Parameters["decoder.layers.1.self_attn.urpe.weight"].Value.ToFloatArray();    // (H, 4)
            var e = model.Parameters["encoder.layers.1.self_attn.urpe.weight"].Value.ToFloatArray();     // (H, 7)
            Assert.Equal(c, model.Parameters["decoder.layers.1.self_attn.urpe.weight"].Value.ToFloatArray());
            for (int h = 0; h < cfg.Heads; h++)
                for (int d = -3; d <= 3; d++) Assert.Equal(c[h * 4 + Math.Abs(d)], e[h * 7 + d + 3]);
        }
    }
}
