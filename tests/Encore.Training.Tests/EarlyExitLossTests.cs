using Encore.Autograd;
using Encore.Models;
using Encore.Training.Objectives;

namespace Encore.Training.Tests;

/// <summary>
/// The early-exit loss: its value against the plain cross-entropies of models cut to fewer layers (their
/// parameters copied), which read layer l's output through the ordinary forward pass; its gradient against
/// central finite differences; and the trainer running it.
/// </summary>
public class EarlyExitLossTests
{
    const int V = 24;

    static ModelConfig EncDec => Presets.Get("tiny-encdec") with { VocabSize = V, EncoderLayers = 3, DecoderLayers = 2, TieEmbeddings = false, EosTokenId = 1, PadTokenId = 0, DecoderStartTokenId = 0 };

    static Batch MakeBatch(int seed)
    {
        var r = new Random(seed);
        int b = 3, s = 6, t = 4;
        var source = new int[b * s];
        var lengths = new int[b];
        var inputs = new int[b * t];
        var targets = Enumerable.Repeat(Labels.Ignore, b * t).ToArray();
        for (int i = 0; i < b; i++)
        {
            lengths[i] = r.Next(3, s + 1);
            for (int j = 0; j < lengths[i]; j++) source[i * s + j] = r.Next(2, V);
            int n = r.Next(2, t + 1);
            for (int j = 0; j < n; j++)
            {
                if (j > 0) inputs[i * t + j] = targets[i * t + j - 1];
                targets[i * t + j] = j == n - 1 ? 1 : r.Next(2, V);
            }
        }
        return new Batch { Size = b, SourceLength = s, Source = source, SourceLengths = lengths, InputLength = t, Inputs = inputs, InputLengths = [t, t, t], Targets = targets };
    }

    static T Cut<T>(T source, ModelConfig config) where T : LanguageModel
    {
        var cut = (T)LanguageModel.Create(config, 99);
        foreach (var p in cut.Parameters.All.ToArray()) cut.Parameters.Assign(p.Name, source.Parameters[p.Name].Value.Clone());
        return cut;
    }

    static double Scalar(Var v)
    {
        using (v) return v.Value.AsReadOnlySpan<float>()[0];
    }

    // The plain cross-entropy of a model on the batch, through the trainer's own logits.
    static double PlainLoss(LanguageModel m, Batch b) =>
        Scalar(Ops.CrossEntropy(Ops.Reshape(Trainer.Trainer.Logits(m, b), b.Size * b.InputLength, V), b.Targets));

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TheLossIsTheMeanOfTheCutModelsCrossEntropies(bool encoder)
    {
        using var m = new EncoderDecoderModel(EncDec, 5);
        var b = MakeBatch(1);
        ulong seed = 12345;
        int e = EarlyExitLoss.EncoderLayer(seed, EncDec.EncoderLayers);
        double Mean(int encoderLayers) => Enumerable.Range(1, EncDec.DecoderLayers).Average(l =>
        {
            using var cut = Cut(m, EncDec with { EncoderLayers = encoderLayers, DecoderLayers = l });
            return PlainLoss(cut, b);
        });
        double expected = encoder ? (Mean(EncDec.EncoderLayers) + Mean(e)) / 2 : Mean(EncDec.EncoderLayers);
        var r = EarlyExitLoss.Compute(m, b, new EarlyExitLossOptions { Encoder = encoder }, 0, seed);
        Assert.Equal(expected, Scalar(r.Loss), 5);
        Assert.Equal(PlainLoss(m, b), Scalar(Ops.CrossEntropy(Ops.Reshape(r.FinalLogits, b.Size * b.InputLength, V), b.Targets)), 5);
        // The layers differ, so the average is not the full model's loss.
        Assert.True(Math.Abs(expected - PlainLoss(m, b)) > 1e-3);
    }

    [Fact]
    public void ADecoderOnlyModelAveragesItsLayers()
    {
        var config = Presets.Get("tiny-decoder") with { VocabSize = V, TieEmbeddings = false };
        using var m = new DecoderOnlyModel(config, 3);
        var b = MakeBatch(2) with { Source = [], SourceLengths = [], SourceLength = 0 };
        double expected = Enumerable.Range(1, config.DecoderLayers).Average(l =>
        {
            using var cut = Cut(m, config with { DecoderLayers = l });
            return PlainLoss(cut, b);
        });
        Assert.Equal(expected, Scalar(EarlyExitLoss.Compute(m, b, new EarlyExitLossOptions()).Loss), 5);
    }

    [Fact]
    public void EveryIntermediateEncoderLayerIsDrawn()
    {
        var drawn = Enumerable.Range(0, 400).Select(i => EarlyExitLoss.EncoderLayer((ulong)i * 7919, 5)).ToArray();
        Assert.All(drawn, l => Assert.InRange(l, 1, 4));
        Assert.All(Enumerable.Range(1, 4), l => Assert.InRange(drawn.Count(x => x == l), 60, 140));
        Assert.Throws<ArgumentOutOfRangeException>(() => EarlyExitLoss.EncoderLayer(1, 1));
    }

    /// <summary>
    /// Central differences (f(w+h) − f(w−h))/2h in binary32 with h = 1e-2 (truncation and rounding errors
    /// both near 1e-4 on a loss of about 3), on entries of the parameters the loss reaches by different
    /// paths: the embeddings, the head, the first encoder layer (through every encoder exit), the
    /// decoder's layers and final norm (read at every decoder exit).
    /// </summary>
    [Fact]
    public void TheGradientMatchesFiniteDifferences()
    {
        using var m = new EncoderDecoderModel(EncDec, 7);
        var b = MakeBatch(3);
        const ulong seed = 99;
        var options = new EarlyExitLossOptions();
        foreach (var p in m.Parameters.All) p.ZeroGrad();
        using (var tape = Tape.Record())
            tape.Backward(EarlyExitLoss.Compute(m, b, options, 0, seed).Loss);
        string[] names =
        [
            LanguageModel.EmbedTokens, LanguageModel.LmHead, "encoder.layers.0.mlp.up_proj.weight", "encoder.layers.1.self_attn.q_proj.weight",
            "decoder.layers.0.cross_attn.v_proj.weight", "decoder.layers.0.mlp.down_proj.weight", "decoder.layers.1.self_attn.o_proj.weight",
            "decoder.final_norm.weight", "encoder.final_norm.weight",
        ];
        var r = new Random(4);
        const double h = 1e-2;
        int checkedEntries = 0;
        foreach (var name in names)
        {
            var p = m.Parameters[name];
            var grad = p.Grad!.ToFloatArray();
            for (int k = 0; k < 4; k++)
            {
                int i = r.Next((int)p.Length);
                var w = p.Value.AsSpan<float>();
                float keep = w[i];
                w[i] = keep + (float)h;
                double up = Scalar(EarlyExitLoss.Compute(m, b, options, 0, seed).Loss);
                p.Value.AsSpan<float>()[i] = keep - (float)h;
                double down = Scalar(EarlyExitLoss.Compute(m, b, options, 0, seed).Loss);
                p.Value.AsSpan<float>()[i] = keep;
                double numeric = (up - down) / (2 * h);
                Assert.True(Math.Abs(grad[i] - numeric) <= 2e-3 * (1 + Math.Abs(numeric)), $"d/d {name}[{i}]: analytic {grad[i]}, finite difference {numeric}");
                if (Math.Abs(numeric) > 1e-4) checkedEntries++;
            }
        }
        Assert.True(checkedEntries > names.Length, "too few entries with a gradient for the check to mean anything");
    }

    [Fact]
    public void AnEncoderOnlyModelIsRefused()
    {
        using var m = new EncoderOnlyModel(Presets.Get("tiny-encoder") with { VocabSize = V }, 1);
        Assert.Throws<ArgumentException>(() => EarlyExitLoss.Compute(m, MakeBatch(1), new EarlyExitLossOptions()));
    }
}
