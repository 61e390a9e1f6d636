using Encore.Autograd;
using Encore.Autograd.Optim;
using Encore.Tensors.Kernels;

namespace Encore.Models.Tests;

public class ModelTests
{
    [Theory]
    [InlineData("mu-330m", 325e6, 335e6)]
    [InlineData("decoder-330m", 325e6, 335e6)]
    [InlineData("mu-25m", 22e6, 27e6)]
    [InlineData("decoder-25m", 22e6, 27e6)]
    public void PresetParameterCountsAreTheirNames(string preset, double lo, double hi)
    {
        long n = ParameterCounter.Count(Presets.Get(preset));
        Assert.InRange(n, lo, hi);
    }

    [Fact]
    public void ParameterCounterAgreesWithABuiltModel()
    {
        foreach (var name in new[] { "tiny-encdec", "tiny-decoder", "tiny-encoder" })
        {
            using var m = LanguageModel.Create(Presets.Get(name));
            Assert.Equal(ParameterCounter.Count(m.Config), m.ParameterCount);
        }
    }

    static int[] Ids(Random r, int n, int v) => Enumerable.Range(0, n).Select(_ => r.Next(2, v)).ToArray();

    [Theory]
    [InlineData(PositionKind.Rope)]
    [InlineData(PositionKind.T5Relative)]
    [InlineData(PositionKind.Alibi)]
    [InlineData(PositionKind.Learned)]
    [InlineData(PositionKind.Sinusoidal)]
    [InlineData(PositionKind.None)]
    [InlineData(PositionKind.ComRope)]
    [InlineData(PositionKind.Urpe)]
    public void IncrementalDecodingWithCachesEqualsTheFullTrainingForward(PositionKind decoderPositions)
    {
        var cfg = Presets.Get("tiny-encdec") with
        {
            DecoderPositions = new PositionConfig { Kind = decoderPositions },
            MaxPositions = 64,
        };
        using var m = new EncoderDecoderModel(cfg, seed: 3);
        var r = new Random(1);
        int b = 2, s = 7, t = 5;
        var src = Ids(r, b * s, cfg.VocabSize);
        var tgt = Ids(r, b * t, cfg.VocabSize);
        int[] lengths = [7, 4];
        float[] full;
        using (var tape = Tape.Record())      // the training path (records, no cache)
            full = m.Forward(src, lengths, tgt, b).Value.ToFloatArray();
        using var memory = m.Encode(src, b, lengths);
        using var cache = m.CreateCache(b, capacity: 16, sourceLength: s);
        var steps = new List<float[]>();
        for (int i = 0; i < t; i++)
        {
            var step = new[] { tgt[i], tgt[t + i] };
            using var logits = m.Decode(memory, lengths, step, b, cache);
            steps.Add(logits.Value.ToFloatArray());
        }
        int v = cfg.VocabSize;
        for (int bi = 0; bi < b; bi++)
            for (int i = 0; i < t; i++)
                for (int j = 0; j < v; j++)
                    Assert.True(Math.Abs(full[(bi * t + i) * v + j] - steps[i][bi * v + j]) < 1e-4,
                        $"batch {bi}, position {i}, logit {j}: full {full[(bi * t + i) * v + j]} vs incremental {steps[i][bi * v + j]}");
        Assert.Equal(t, cache.Length);
    }

    [Fact]
    public void DecoderOnlyIncrementalEqualsFullForward() => AssertIncrementalEqualsFullForward(Presets.Get("tiny-decoder"));

    /// <summary>A decoder-only model of <paramref name="cfg"/>: 4 tokens then 2 through a cache give the logits of the 6 at once.</summary>
    internal static void AssertIncrementalEqualsFullForward(ModelConfig cfg)
    {
        using var m = new DecoderOnlyModel(cfg, seed: 4);
        var ids = Ids(new Random(2), 6, cfg.VocabSize);
        using var full = m.Forward(ids, 1);
        using var cache = m.CreateCache(1, 8);
        using var prefix = m.Forward(ids[..4], 1, cache: cache);
        using var next = m.Forward(ids[4..], 1, cache: cache);
        var f = full.Value.ToFloatArray();
        var inc = prefix.Value.ToFloatArray().Concat(next.Value.ToFloatArray()).ToArray();
        for (int i = 0; i < f.Length; i++) Assert.True(Math.Abs(f[i] - inc[i]) < 1e-4, $"logit {i}");
    }

    [Fact]
    public void ATinyEncoderDecoderMemorizesABatch()
    {
        using var m = new EncoderDecoderModel(Presets.Get("tiny-encdec"), seed: 5);
        var (first, last) = ShiftedBatch.Train(m, 60);
        Assert.True(last < first * 0.2f, $"loss on a fixed batch went from {first} to {last}");
    }

    [Fact]
    public void EncoderOnlyGivesHiddenStatesAndMaskedLmLogits()
    {
        using var m = new EncoderOnlyModel(Presets.Get("tiny-encoder") with { TypeVocabSize = 2, EmbeddingNorm = true, PostNorm = true, Norm = NormKind.LayerNorm });
        using var h = m.Forward(Ids(new Random(3), 10, 64), 2, [5, 3]);
        Assert.Equal(new[] { 2, 5, 32 }, h.Shape.ToArray());
        using var logits = m.MaskedLmLogits(h);
        Assert.Equal(new[] { 2, 5, 64 }, logits.Shape.ToArray());
    }

    [Fact]
    public void ABareEncoderHasNoHeadAndTheSameHiddenStates()
    {
        var c = Presets.Get("tiny-encoder") with { TypeVocabSize = 2, EmbeddingNorm = true, PostNorm = true, Norm = NormKind.LayerNorm, TieEmbeddings = false };
        using var full = new EncoderOnlyModel(c);
        using var bare = new EncoderOnlyModel(c with { MaskedLmHead = false });
        Assert.True(full.HasMaskedLmHead);
        Assert.False(bare.HasMaskedLmHead);
        // The head's parameters (dense, norm, output bias, and the untied projection) are all that differ.
        Assert.Equal(full.Parameters.All.Select(p => p.Name).Except(EncoderOnlyModel.MaskedLmHeadParameters), bare.Parameters.All.Select(p => p.Name));
        Assert.Equal(ParameterCounter.Count(bare.Config), bare.ParameterCount);
        Assert.Equal(ParameterCounter.Count(full.Config), full.ParameterCount);
        var ids = Ids(new Random(4), 8, 64);
        using var a = full.Forward(ids, 2, [4, 3]);
        using var b = bare.Forward(ids, 2, [4, 3]);
        Assert.Equal(a.Value.ToFloatArray(), b.Value.ToFloatArray());
        Assert.Throws<InvalidOperationException>(() => bare.MaskedLmLogits(b));
        Assert.False(ModelConfigJson.Deserialize(ModelConfigJson.Serialize(bare.Config)).MaskedLmHead);
    }

    [Fact]
    public void InvalidConfigsAreRejectedNamingTheField()
    {
        Assert.Contains("kv_heads", Assert.Throws<ArgumentException>(() => new ModelConfig { Heads = 6, KvHeads = 4 }.Validate()).Message);
        Assert.Contains("centered", Assert.Throws<ArgumentException>(() => new ModelConfig { DecoderPositions = new PositionConfig { RopeCentered = true } }.Validate()).Message);
        Assert.Contains("unknown preset", Assert.Throws<ArgumentException>(() => Presets.Get("nope")).Message);
    }
}

public class RopeLinearScaleTests
{
    [Fact]
    public void LinearScaleDividesDecoderPositionsAndRoundTrips()
    {
        var baseCfg = Presets.Get("tiny-decoder");
        var scaled = baseCfg with { DecoderPositions = baseCfg.DecoderPositions with { RopeLinearScale = 2 } };
        int[] ids = [5, 9, 3, 7];
        float[] Logits(ModelConfig c)
        {
            using var m = new DecoderOnlyModel(c, seed: 4);
            return m.Forward(ids, 1).Value.ToFloatArray();
        }
        var a = Logits(baseCfg);
        var b = Logits(scaled);
        int v = baseCfg.VocabSize;
        // Position 0 has angle 0 under any scale; later positions turn by half the angle.
        Assert.Equal(a[..v], b[..v]);
        Assert.True(a.Skip(v).Zip(b.Skip(v)).Max(p => Math.Abs(p.First - p.Second)) > 1e-4f);
        Assert.Equal(2, scaled.DecoderPositions.Rope.LinearScale);
        Assert.Equal(scaled, ModelConfigJson.Deserialize(ModelConfigJson.Serialize(scaled)));
        var bad = baseCfg with { DecoderPositions = baseCfg.DecoderPositions with { RopeLinearScale = 0 } };
        Assert.Contains("rope_linear_scale", Assert.Throws<ArgumentException>(() => bad.Validate()).Message);
    }
}

public class ModelConfigJsonTests
{
    [Fact]
    public void EveryPresetRoundTripsThroughConfigJson()
    {
        foreach (var (name, c) in Presets.All)
        {
            var json = ModelConfigJson.Serialize(c);
            Assert.StartsWith("{\n  \"model_type\": \"encore\"", json.Replace("\r", ""));
            Assert.Equal(c, ModelConfigJson.Deserialize(json, name));
        }
        Assert.Contains("\"d_model\": 1024", ModelConfigJson.Serialize(Presets.Get("mu-330m")));
    }

    [Theory]
    [InlineData("""{"model_type":"t5"}""", "expected 'encore'")]
    [InlineData("""{"model_type":"encore","d_modle":5}""", "d_modle")]
    [InlineData("""{"model_type":"encore","heads":6,"kv_heads":4}""", "kv_heads")]
    [InlineData("""{"model_type":"encore","d_model":"wide"}""", "d_model")]
    [InlineData("""[1]""", "config.json")]
    public void BadConfigsFailNamingTheProblem(string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() => ModelConfigJson.Deserialize(json));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("config.json", e.Message);
    }
}

public class AllocationTests
{
    [Theory]
    [InlineData("tiny-encdec", null)]
    [InlineData("tiny-decoder", null)]
    [InlineData("tiny-encdec", PositionKind.ComRope)]
    [InlineData("tiny-decoder", PositionKind.ComRope)]
    public void SteadyStateDecodeStepsAllocateNothing(string preset, PositionKind? decoderPositions)
    {
        var cfg = Presets.Get(preset);
        if (decoderPositions is PositionKind kind) cfg = cfg with { DecoderPositions = cfg.DecoderPositions with { Kind = kind } };
        using var model = LanguageModel.Create(cfg, seed: 1);
        int b = 2, s = 6, steps = 64, warmup = 4;
        var src = Enumerable.Range(0, b * s).Select(i => 2 + i % 50).ToArray();
        int[] lengths = [6, 4];
        var ids = new int[b];
        using var ws = new Workspace();
        Var? memory = null;
        DecoderCache cache;
        if (model is EncoderDecoderModel ed)
        {
            memory = ed.Encode(src, b, lengths);
            cache = ed.CreateCache(b, steps + warmup + 1, s);
        }
        else
        {
            cache = ((DecoderOnlyModel)model).CreateCache(b, steps + warmup + 1);
        }
        void Step()
        {
            using (ws.Use())
            {
                var logits = model is EncoderDecoderModel e
                    ? e.Decode(memory!, lengths, ids, b, cache)
                    : ((DecoderOnlyModel)model).Forward(ids, b, cache: cache);
                var l = logits.Value.AsReadOnlySpan<float>();
                for (int i = 0; i < b; i++)
                {
                    // Greedy: feed back the argmax.
                    int best = 0;
                    for (int j = 1; j < cfg.VocabSize; j++) if (l[i * cfg.VocabSize + j] > l[i * cfg.VocabSize + best]) best = j;
                    ids[i] = best;
                }
            }
        }
        for (int i = 0; i < warmup; i++) Step();
        // Two windows: a steady-state allocation shows in both, a one-off of the runtime (a method recompiled in
        // the background under load) in one.
        long Window()
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < steps / 2; i++) Step();
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }
        long first = Window(), second = Window();
        Assert.True(first == 0 || second == 0, $"two windows of {steps / 2} decode steps allocated {first} and {second} bytes");
        Assert.Equal(warmup + steps / 2 * 2, cache.Length);
        cache.Dispose();
        memory?.Dispose();
    }
}

public class ShippedConfigTests
{
    [Fact]
    public void EveryPresetShipsAsAConfigJsonEqualToTheCode()
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "configs");
        foreach (var (name, preset) in Presets.All)
        {
            var path = Path.Combine(dir, name + ".json");
            Assert.True(File.Exists(path), $"configs/{name}.json is missing (regenerate with: encore config --preset {name})");
            Assert.Equal(preset, ModelConfigJson.Deserialize(File.ReadAllText(path), path));
        }
        Assert.Equal(Presets.All.Count, Directory.GetFiles(dir, "*.json").Length);
    }
}

public class ModelFlopsTests
{
    [Fact]
    public void TrainingFlopsFollowTheAccountingWrittenOutByHand()
    {
        // mu-25m, 8 × (128 + 128): d 256, attention 4×64 = 256, kv 2×64 = 128, FFN 1024, 14 + 7 layers, vocab 32128.
        var c = Presets.Get("mu-25m");
        double self = 256.0 * 256 + 2 * 256 * 128 + 256 * 256 + 2 * 256 * 1024;     // q, k+v, o, FFN
        double attn = 4.0 * 128 * 128 * 256;                                          // 2·2·T·S·a
        double encoder = 14 * (2 * self * 128 + attn);
        double decoder = 7 * (2 * (self + 2 * 256 * 256) * 128 + 2 * (2 * 256 * 128) * 128 + 2 * attn);
        double head = 2.0 * 32128 * 256 * 128;
        double expected = 3 * 8 * (encoder + decoder + head);
        Assert.Equal(expected, ModelFlops.TrainingStep(c, 8, 128, 128), 6);
        Assert.InRange(expected / 1e9, 163, 164.5);

        // A decoder-only model reads S + T tokens through every matrix.
        var d = Presets.Get("decoder-25m");
        double n = 256;
        double expectedDecoder = 3 * 8 * (23 * (2 * self * n + 4 * n * n * 256) + 2 * 32128.0 * 256 * n);
        Assert.Equal(expectedDecoder, ModelFlops.TrainingStep(d, 8, 128, 128), 6);
    }
}
