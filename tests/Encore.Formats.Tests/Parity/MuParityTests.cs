using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Tensors.Kernels;
using Xunit.Abstractions;

namespace Encore.Formats.Tests.Parity;

/// <summary>
/// The Mu encoder–decoder ("Return of the Encoder", arXiv 2501.16273) in Encore's own checkpoint
/// format against tools/reference/mu_reference.py: centered RoPE in the encoder, integer RoPE in the
/// decoder, GQA with a narrow attention, tanh-GELU, tied head without rescale.
/// </summary>
public class MuParityTests(ITestOutputHelper output)
{
    [Fact]
    public void LogitsAndGreedyIdsMatchTheReference()
    {
        var (logits, greedy) = Seq2SeqParity.Check(Seq2SeqParity.Fixture("mu"));
        output.WriteLine($"mu: max abs error {logits:E2} (teacher-forced logits), {greedy:E2} (32 greedy steps)");
    }

    [Fact]
    public void TheFixtureIsTheMuPresetFamilyInMiniature()
    {
        var (c, arch) = Checkpoint.ReadConfig(Seq2SeqParity.Fixture("mu"));
        Assert.IsType<EncoreArchitecture>(arch);
        // Everything but the sizes is as in mu-330m, so the parity covers the preset's math.
        var mu = Presets.Get("mu-330m");
        var sized = mu with
        {
            VocabSize = c.VocabSize, DModel = c.DModel, EncoderLayers = c.EncoderLayers, DecoderLayers = c.DecoderLayers,
            Heads = c.Heads, KvHeads = c.KvHeads, HeadDim = c.HeadDim, FfnDim = c.FfnDim,
        };
        Assert.Equal(sized, c);
        Assert.True(c.KvHeads < c.Heads && c.AttentionDim < c.DModel, "GQA and a narrow attention, as in Mu");
        Assert.Equal((ActivationKind.GeluTanh, false, null), (c.Activation, c.GatedFfn, c.AttentionScale));
        Assert.True(c.EncoderPositions.RopeCentered && !c.DecoderPositions.RopeCentered);
    }
}
