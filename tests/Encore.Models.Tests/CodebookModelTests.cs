using Encore.Autograd;

namespace Encore.Models.Tests;

/// <summary>
/// <see cref="ModelConfig.Codebook"/> in the shared blocks: parameters and their count, the configuration's JSON, the codes
/// the probe reads, cached decoding, gradients by finite differences, and the model without codebooks untouched.
/// </summary>
public class CodebookModelTests
{
    static readonly CodebookConfig Small = new() { Size = 8, TopK = 2 };

    static int[] Ids(int seed, int n, int v)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => 2 + r.Next(v - 2))];
    }

    [Theory]
    [InlineData("tiny-decoder", true, true)]
    [InlineData("tiny-encdec", true, false)]
    [InlineData("tiny-encdec", false, true)]
    [InlineData("tiny-encoder", true, true)]
    public void CodebooksAreCountedAndNamedPerSublayer(string preset, bool attention, bool mlp)
    {
        var plain = Presets.Get(preset);
        var cfg = plain with { Codebook = Small with { Attention = attention, Mlp = mlp } };
        using var m = LanguageModel.Create(cfg, seed: 1);
        Assert.Equal(ParameterCounter.Count(cfg), m.ParameterCount);
        var names = m.Parameters.All.Select(p => p.Name).Where(n => n.Contains(".codebook.", StringComparison.Ordinal)).ToList();
        int blocks = cfg.Family switch { ModelFamily.DecoderOnly => cfg.DecoderLayers, ModelFamily.EncoderOnly => cfg.EncoderLayers, _ => cfg.EncoderLayers + cfg.DecoderLayers };
        int crossBlocks = cfg.Family == ModelFamily.EncoderDecoder ? cfg.DecoderLayers : 0;
        int expected = (attention ? blocks + crossBlocks : 0) + (mlp ? blocks : 0);
        Assert.Equal(expected, names.Count);
        Assert.Equal(expected * 8L * cfg.DModel, ParameterCounter.Count(cfg) - ParameterCounter.Count(plain));
        Assert.All(names, n => Assert.Equal([8, cfg.DModel], m.Parameters[n].Value.Shape.ToArray()));
        if (mlp) Assert.Contains(names, n => n.EndsWith(".layers.0.mlp.codebook.weight", StringComparison.Ordinal));
        if (attention && crossBlocks > 0) Assert.Contains("decoder.layers.0.cross_attn.codebook.weight", names);
    }

    [Fact]
    public void WithoutCodebooksTheModelAndItsJsonAreAsBefore()
    {
        var plain = Presets.Get("tiny-decoder");
        Assert.Null(plain.Codebook);
        Assert.DoesNotContain("codebook", ModelConfigJson.Serialize(plain), StringComparison.Ordinal);
        using var m = LanguageModel.Create(plain, seed: 2);
        Assert.DoesNotContain(m.Parameters.All, p => p.Name.Contains("codebook", StringComparison.Ordinal));
        // A model without codebooks records nothing in the probe and gives the same logits with it set.
        var ids = Ids(3, 6, plain.VocabSize);
        var d = (DecoderOnlyModel)m;
        using var before = d.Forward(ids, 1);
        var probe = new CodebookProbe();
        m.Codebooks = probe;
        using var after = d.Forward(ids, 1);
        Assert.Empty(probe.Records);
        Assert.Equal(before.Value.ToFloatArray(), after.Value.ToFloatArray());

        var cfg = plain with { Codebook = new CodebookConfig { Size = 32, TopK = 3, Attention = false, Commitment = 0.25f } };
        string json = ModelConfigJson.Serialize(cfg);
        Assert.Contains("\"top_k\": 3", json, StringComparison.Ordinal);
        Assert.Equal(cfg, ModelConfigJson.Deserialize(json));
    }

    [Theory]
    [InlineData(0, 2, "codebook size")]
    [InlineData(8, 9, "codebook top_k")]
    [InlineData(8, 0, "codebook top_k")]
    public void BadCodebookSettingsNameTheField(int size, int k, string field)
    {
        var cfg = Presets.Get("tiny-decoder") with { Codebook = new CodebookConfig { Size = size, TopK = k } };
        var e = Assert.Throws<ArgumentException>(() => cfg.Validate());
        Assert.Contains(field, e.Message, StringComparison.Ordinal);
        var none = Presets.Get("tiny-decoder") with { Codebook = new CodebookConfig { Attention = false, Mlp = false } };
        Assert.Contains("codebook needs attention or mlp", Assert.Throws<ArgumentException>(() => none.Validate()).Message, StringComparison.Ordinal);
        var beta = Presets.Get("tiny-decoder") with { Codebook = new CodebookConfig { Commitment = float.NaN } };
        Assert.Contains("codebook commitment", Assert.Throws<ArgumentException>(() => beta.Validate()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheProbeReadsTopKDistinctCodesPerPositionInEveryCodebook()
    {
        var cfg = Presets.Get("tiny-decoder") with { Codebook = Small };
        using var m = (DecoderOnlyModel)LanguageModel.Create(cfg, seed: 3);
        var probe = new CodebookProbe();
        m.Codebooks = probe;
        using var logits = m.Forward(Ids(4, 10, cfg.VocabSize), 2);
        Assert.Equal(2 * cfg.DecoderLayers, probe.Records.Count);
        Assert.Equal("decoder.layers.0.self_attn.codebook", probe.Records[0].Scope);
        Assert.Equal("decoder.layers.0.mlp.codebook", probe.Records[1].Scope);
        foreach (var r in probe.Records)
        {
            Assert.Equal(10, r.Rows);
            Assert.Equal(2, r.TopK);
            for (int i = 0; i < r.Rows; i++)
            {
                var codes = r.Codes.AsSpan(i * 2, 2).ToArray();
                Assert.All(codes, c => Assert.InRange(c, 0, 7));
                Assert.NotEqual(codes[0], codes[1]);
            }
        }
        // Several codes fire across the positions of some codebook: the choice depends on the input.
        Assert.Contains(probe.Records, r => r.Codes.Distinct().Count() > 2);
    }

    [Fact]
    public void CachedDecodingWithCodebooksEqualsTheFullForward() =>
        ModelTests.AssertIncrementalEqualsFullForward(Presets.Get("tiny-decoder") with { Codebook = Small });

    [Theory]
    [InlineData(ModelFamily.DecoderOnly)]
    [InlineData(ModelFamily.EncoderDecoder)]
    public void CodebookGradientsMatchFiniteDifferencesAndUnchosenCodesGetNone(ModelFamily family)
    {
        var cfg = (family == ModelFamily.DecoderOnly ? Presets.Get("tiny-decoder") : Presets.Get("tiny-encdec")) with
        {
            DModel = 16, FfnDim = 24, Heads = 2, KvHeads = 2, HeadDim = 8, VocabSize = 20, EncoderLayers = 1, DecoderLayers = 2, Codebook = Small,
        };
        using var m = LanguageModel.Create(cfg, seed: 7);
        int[] src = [3, 7, 1, 12, 4], tgt = [0, 5, 9, 11, 2], labels = [5, 9, 2, 3, 8];
        Var Loss() => Ops.CrossEntropy(m is EncoderDecoderModel ed ? ed.Forward(src, null, tgt, 1) : ((DecoderOnlyModel)m).Forward(tgt, 1), labels);

        foreach (var p in m.Parameters.All) p.ZeroGrad();
        var probe = new CodebookProbe();
        m.Codebooks = probe;
        using (var tape = Tape.Record()) tape.Backward(Loss());
        m.Codebooks = null;
        var checks = new List<(string Name, int[] Indices)>();
        foreach (var r in probe.Records)
        {
            var chosen = r.Codes.Distinct().ToArray();
            var grad = m.Parameters[r.Scope + ".weight"].Grad!.ToFloatArray();
            for (int c = 0; c < 8; c++)
                if (!chosen.Contains(c)) Assert.All(grad.AsSpan(c * 16, 16).ToArray(), g => Assert.Equal(0f, g));
            // Finite differences see a code's effect only where no later snap stands in its way: a later codebook is piecewise
            // constant in its input, while backward passes the gradient straight through it. The last block's feed-forward
            // codebook reaches the loss through the final norm and the head alone, so its gradient is exact there.
            if (r.Scope == "decoder.layers.1.mlp.codebook") checks.Add((r.Scope + ".weight", [chosen[0] * 16 + 3, chosen[^1] * 16 + 11, chosen[^1] * 16 + 15]));
        }
        Assert.Single(checks);
        checks.Add(("decoder.final_norm.weight", [0, 5]));
        FiniteDifferences.AssertGradients(m.Parameters, checks, Loss, h: 1e-3, tolerance: 1e-2);
    }
    [Fact]
    public void CodebooksStartFromDistinctInputRowsScaledByOneOverK()
    {
        var cfg = Presets.Get("tiny-decoder") with { Codebook = Small };
        using var m = (DecoderOnlyModel)LanguageModel.Create(cfg, seed: 5);
        var ids = Ids(6, 24, cfg.VocabSize);
        CodebookInitialization.FromInputs(m, () => m.Forward(ids, 2).Dispose(), seed: 1);
        Assert.Null(m.Codebooks);
        // Each codebook's inputs do not depend on it or on later ones, so a new pass sees the rows it was started from.
        var probe = new CodebookProbe { KeepInputs = true };
        m.Codebooks = probe;
        m.Forward(ids, 2).Dispose();
        Assert.Equal(2 * cfg.DecoderLayers, probe.Records.Count);
        int d = cfg.DModel;
        foreach (var r in probe.Records)
        {
            var w = m.Parameters[r.Scope + ".weight"].Value.ToFloatArray();
            var rows = Enumerable.Range(0, r.Rows).Select(i => r.Inputs!.AsSpan(i * d, d).ToArray()).ToList();
            var used = new HashSet<int>();
            for (int j = 0; j < 8; j++)
            {
                var code = w.AsSpan(j * d, d).ToArray().Select(x => x * 2).ToArray();
                // Rows drawn without replacement: each code matches an input row no other code took (equal rows count apart).
                Assert.True(rows.Any(x => x.SequenceEqual(code)), $"{r.Scope} code {j} is no input row / k");
                int row = Enumerable.Range(0, rows.Count).FirstOrDefault(i => !used.Contains(i) && rows[i].SequenceEqual(code), -1);
                Assert.True(row >= 0, $"{r.Scope} code {j} repeats a row");
                used.Add(row);
            }
        }
        using var plain = LanguageModel.Create(Presets.Get("tiny-decoder"));
        Assert.Throws<InvalidOperationException>(() => CodebookInitialization.FromInputs(plain, () => { }));
    }
}
