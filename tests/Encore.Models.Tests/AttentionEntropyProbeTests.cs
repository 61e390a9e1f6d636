using Encore.Autograd;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Models.Tests;

/// <summary>
/// <see cref="AttentionEntropyProbe"/> on a real model: which layers record, and the entropy penalty of arXiv 2501.03489
/// differentiated through the whole encoder–decoder against central differences.
/// </summary>
public class AttentionEntropyProbeTests
{
    static ModelConfig Config() => Presets.Get("tiny-encdec") with
    {
        EncoderPositions = new PositionConfig { Kind = PositionKind.T5Relative },
        DecoderPositions = new PositionConfig { Kind = PositionKind.T5Relative },
    };

    [Fact]
    public void EveryAttentionLayerRecordsInOrderWithItsValidRows()
    {
        using var m = new EncoderDecoderModel(Config(), seed: 3);
        var r = new Random(1);
        int b = 2, s = 5, t = 4, v = m.Config.VocabSize;
        var probe = new AttentionEntropyProbe();
        m.AttentionEntropy = probe;
        using (Tape.Record()) m.Forward([.. Enumerable.Range(0, b * s).Select(_ => r.Next(v))], [5, 3], [.. Enumerable.Range(0, b * t).Select(_ => r.Next(v))], b);
        m.AttentionEntropy = null;
        int le = m.Config.EncoderLayers, ld = m.Config.DecoderLayers;
        string[] expected = [.. Enumerable.Range(0, le).Select(i => $"encoder.layers.{i}.self_attn"),
            .. Enumerable.Range(0, ld).SelectMany(i => new[] { $"decoder.layers.{i}.self_attn", $"decoder.layers.{i}.cross_attn" })];
        Assert.Equal(expected, probe.Records.Select(x => x.Scope));
        var enc = probe.Records[0];
        Assert.Equal([b, m.Config.Heads, s], enc.Entropy.Shape.ToArray());
        Assert.Equal([5, 3], enc.QueryLengths!);
        // The encoder is bidirectional: every row of item 1 sees its 3 keys.
        Assert.All(enc.VisibleKeys.AsSpan(m.Config.Heads * s, s).ToArray(), n => Assert.Equal(3, n));
        var self = probe.Records[le];
        Assert.Equal([1, 2, 3, 4], self.VisibleKeys.AsSpan(0, t).ToArray());   // causal rows
        var cross = probe.Records[le + 1];
        Assert.True(cross.Cross);
        Assert.Equal(s, cross.KeyLength);
        Assert.Null(self.QueryLengths);
        // A decoding step with a cache records nothing.
        probe.Records.Clear();
        Assert.Null(m.AttentionEntropy);
    }

    [Fact]
    public void ThePenaltyThroughTheModelMatchesFiniteDifferences()
    {
        using var m = new EncoderDecoderModel(Config(), seed: 5);
        var r = new Random(2);
        int b = 2, s = 5, t = 4, v = m.Config.VocabSize, h = m.Config.Heads;
        var src = Enumerable.Range(0, b * s).Select(_ => r.Next(v)).ToArray();
        var tgt = Enumerable.Range(0, b * t).Select(_ => r.Next(v)).ToArray();
        using var theta = Var.Constant(Tensor.FromArray(Enumerable.Range(0, h).Select(i => 0.2f + 0.15f * i).ToArray(), h));
        // Margin 0: every row is penalized, so the loss is smooth and finite differences hold.
        Var Loss()
        {
            var probe = new AttentionEntropyProbe();
            m.AttentionEntropy = probe;
            m.Forward(src, [5, 3], tgt, b);
            m.AttentionEntropy = null;
            Var? total = null;
            foreach (var rec in probe.Records)
            {
                var p = Ops.EntropyPenalty(rec.Entropy, theta, MathF.Log(rec.KeyLength), 0f, rec.QueryLengths);
                total = total is null ? p : Ops.Add(total, p);
            }
            return total!;
        }
        foreach (var p in m.Parameters.All) p.ZeroGrad();
        using (var tape = Tape.Record()) tape.Backward(Loss());
        var checks = new (string Name, int[] Indices)[]
        {
            ("encoder.layers.0.self_attn.q_proj.weight", [0, 17, 40]),
            ("encoder.layers.0.self_attn.k_proj.weight", [3, 29]),
            ("encoder.relative_attention_bias.weight", [0, 5, 9]),
            ($"decoder.layers.{m.Config.DecoderLayers - 1}.self_attn.k_proj.weight", [1, 22]),
            ($"decoder.layers.{m.Config.DecoderLayers - 1}.cross_attn.q_proj.weight", [2, 31]),
            ($"encoder.layers.{m.Config.EncoderLayers - 1}.self_attn.v_proj.weight", [4, 13]),
        };
        foreach (var (name, _) in checks) Assert.Contains(m.Parameters[name].Grad!.ToFloatArray(), g => g != 0);
        FiniteDifferences.AssertGradients(m.Parameters, checks, Loss);
        // The last cross-attention's values feed no later attention: entropy gives them no gradient (its self-attention's
        // values do: they reach the cross-attention's queries).
        var last = m.Parameters[$"decoder.layers.{m.Config.DecoderLayers - 1}.cross_attn.v_proj.weight"].Grad?.ToFloatArray() ?? [];
        Assert.All(last, x => Assert.Equal(0f, x));
        Assert.Contains(m.Parameters[$"decoder.layers.{m.Config.DecoderLayers - 1}.self_attn.v_proj.weight"].Grad!.ToFloatArray(), x => x != 0);
    }

    [Fact]
    public void ANormFreeModelHasNoNormParametersAndCountsThemSo()
    {
        var c = Presets.Get("tiny-encdec") with { Norm = NormKind.None, Activation = Encore.Tensors.Kernels.ActivationKind.Identity };
        using var m = LanguageModel.Create(c, 1);
        Assert.DoesNotContain(m.Parameters.All, p => p.Name.Contains("norm", StringComparison.Ordinal));
        Assert.Equal(ParameterCounter.Count(c), m.ParameterCount);
        using var withNorms = LanguageModel.Create(c with { Norm = NormKind.RmsNorm }, 1);
        int norms = c.EncoderLayers * 2 + 1 + c.DecoderLayers * 3 + 1;   // per block (and cross), plus each stack's final norm
        Assert.Equal(m.ParameterCount + (long)norms * c.DModel, withNorms.ParameterCount);
    }
}
