using System.Text.Json;
using Encore.Autograd;
using Encore.Autograd.Optim;
using Encore.Tensors;
using Encore.Tensors.Kernels;

namespace Encore.Models.Tests;

/// <summary>
/// A tiny <see cref="EncoderDecoderModel"/> against the same model written out in PyTorch
/// (tools/reference/tiny_seq2seq.py, under Encore's parameter names): loss, every gradient, and
/// 10 AdamW steps. Tolerances: gradients within 1e-4 absolute + 1e-3 relative (binary32 sums in a
/// different order over ~100 terms), losses within 1e-5 relative after one step and 1e-4 after ten.
/// </summary>
public class TinySeq2SeqParityTests
{
    sealed record Cfg(int V, int D, int H, int HKV, int HD, int FF, float Eps, double Theta);

    sealed record Fixture(Cfg Config, Dictionary<string, int[]> Shapes, Dictionary<string, float[]> Params,
        int[][] Src, int[] Src_len, int[][] Dec_in, int[][] Labels, double Loss, Dictionary<string, float[]> Grads, double[] Adamw_losses);

    static readonly Fixture F = JsonSerializer.Deserialize<Fixture>(
        File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "tiny_seq2seq.json")),
        new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;

    // The script's model: one block per stack, gated GELU-tanh, RMSNorm, RoPE (centered in the encoder), tied head.
    static EncoderDecoderModel MakeModel()
    {
        var c = F.Config;
        var model = new EncoderDecoderModel(new ModelConfig
        {
            VocabSize = c.V, DModel = c.D, EncoderLayers = 1, DecoderLayers = 1, Heads = c.H, KvHeads = c.HKV, HeadDim = c.HD,
            FfnDim = c.FF, Activation = ActivationKind.GeluTanh, GatedFfn = true, Norm = NormKind.RmsNorm, NormEps = c.Eps,
            TieEmbeddings = true, EosTokenId = 1, PadTokenId = 0,
            EncoderPositions = new PositionConfig { Kind = PositionKind.Rope, RopeTheta = c.Theta, RopeCentered = true },
            DecoderPositions = new PositionConfig { Kind = PositionKind.Rope, RopeTheta = c.Theta },
        });
        Assert.Equal(F.Shapes.Keys, model.Parameters.All.Select(p => p.Name));
        foreach (var (name, shape) in F.Shapes)
            model.Parameters.Assign(name, Tensor.FromArray((float[])F.Params[name].Clone(), shape));
        return model;
    }

    static Var Loss(EncoderDecoderModel model)
    {
        int b = F.Src.Length, t = F.Dec_in[0].Length;
        var logits = model.Forward(F.Src.SelectMany(r => r).ToArray(), F.Src_len, F.Dec_in.SelectMany(r => r).ToArray(), b);   // (B, T, V)
        return Ops.CrossEntropy(Ops.Reshape(logits, b * t, F.Config.V), F.Labels.SelectMany(r => r).ToArray(),
            new CrossEntropyOptions { LabelSmoothing = 0.1f });
    }

    [Fact]
    public void LossAndEveryGradientMatchPyTorch()
    {
        using var model = MakeModel();
        using (var tape = Tape.Record())
        {
            var loss = Loss(model);
            Assert.Equal(F.Loss, loss.Value.ToFloatArray()[0], 1e-5 * F.Loss);
            tape.Backward(loss);
        }
        foreach (var p in model.Parameters.All)
        {
            var got = p.Grad!.ToFloatArray();
            var want = F.Grads[p.Name];
            Assert.Equal(want.Length, got.Length);
            for (int i = 0; i < want.Length; i++)
                Assert.True(Math.Abs(got[i] - want[i]) <= 1e-4 + 1e-3 * Math.Abs(want[i]), $"d loss/d {p.Name}[{i}]: {got[i]} vs PyTorch {want[i]}");
        }
    }

    static double[] TrainTenSteps()
    {
        using var model = MakeModel();
        using var opt = new AdamW(model.Parameters.All, new AdamWOptions { WeightDecay = 0.01 }) { LearningRate = 1e-2 };
        var losses = new double[10];
        for (int step = 0; step < 10; step++)
        {
            opt.ZeroGrad();
            using var tape = Tape.Record();
            var loss = Loss(model);
            losses[step] = loss.Value.ToFloatArray()[0];
            tape.Backward(loss);
            opt.Update();
        }
        return losses;
    }

    [Fact]
    public void TenAdamWStepsFollowPyTorchAndRepeatBitForBit()
    {
        var losses = TrainTenSteps();
        for (int i = 0; i < 10; i++)
            Assert.True(Math.Abs(losses[i] - F.Adamw_losses[i]) <= 1e-4 * F.Adamw_losses[i], $"step {i + 1}: {losses[i]} vs PyTorch {F.Adamw_losses[i]}");
        Assert.True(losses[^1] < losses[0] * 0.7, "the tiny model should learn the batch");
        // Determinism: the same seed, data and thread count give bit-identical losses.
        Assert.Equal(losses, TrainTenSteps());
    }
}
