using Encore.Autograd;
using Encore.Models;
using Encore.Tensors;
using Encore.Training.Data;
using Encore.Training.Objectives;
using Encore.Training.Runs;

namespace Encore.Training.Tests;

public class ContextCompressionTrainingTests
{
    const int I = Labels.Ignore;

    static ModelConfig TinyDecoder() => Presets.Get("tiny-decoder") with { DecoderLayers = 2, DecoderPositions = new PositionConfig { Kind = PositionKind.Rope }, MaxPositions = 64 };

    [Fact]
    public void ReconstructionRowsReproduceTheCompressedTokensAfterRec()
    {
        // n = 5 context tokens (→ G = 2 vectors at PF 4), m = 3 continuation tokens.
        int[][] chunks = [[11, 12, 13, 14, 15, 21, 22, 23], [31, 32, 33, 34, 35, 41, 42, 43]];
        var b = CompressionBatch.Build(CompressionTask.Reconstruction, chunks, 5, 2);
        Assert.Equal([11, 12, 13, 14, 15, 31, 32, 33, 34, 35], b.Compressed);
        Assert.Equal([11, 12, 13, 14, 31, 32, 33, 34], b.DecoderTokens);
        // c1 c2 <Rec> x1 x2 x3 x4 → − − x1 x2 x3 x4 x5
        Assert.Equal([I, I, 11, 12, 13, 14, 15, I, I, 31, 32, 33, 34, 35], b.Labels);
        Assert.Equal(2, b.Batch);
    }

    [Fact]
    public void ContinuationRowsContinueAfterCont()
    {
        int[][] chunks = [[11, 12, 13, 14, 15, 21, 22, 23]];
        var b = CompressionBatch.Build(CompressionTask.Continuation, chunks, 5, 2);
        Assert.Equal([11, 12, 13, 14, 15], b.Compressed);
        Assert.Equal([21, 22], b.DecoderTokens);
        // c1 c2 <Cont> y1 y2 → − − y1 y2 y3
        Assert.Equal([I, I, 21, 22, 23], b.Labels);
        Assert.Equal(CompressionTask.Continuation, b.Task);
        Assert.Throws<ArgumentException>(() => CompressionBatch.Build(CompressionTask.Continuation, [[1, 2, 3]], 5, 2));
    }

    [Fact]
    public void ChunksComeFromOneStreamAndTheHeldOutDocumentsStayApart()
    {
        var docs = Enumerable.Range(0, 40).Select(i => $"package number {i} provides tools for the {i % 7} stage of a build").ToList();
        var tok = BundledData.TrainTokenizer(docs.Select(d => new TextPair(d, "x")), 400);
        var chunks = new CompressionChunks(docs, tok, 6, 4, heldOutShare: 0.1);
        Assert.All(chunks.Train.Concat(chunks.HeldOut), c => Assert.Equal(10, c.Length));
        // The training stream is the first 36 documents, each followed by EOS, cut without overlap.
        var stream = docs.Take(36).SelectMany(d => tok.Encode(d, addSpecialTokens: false).Append(tok.EosId!.Value)).ToArray();
        Assert.Equal(stream.Length / 10, chunks.Train.Count);
        Assert.Equal(stream[..10], chunks.Train[0]);
        Assert.Equal(stream[10..20], chunks.Train[1]);
        var heldOut = docs.Skip(36).SelectMany(d => tok.Encode(d, addSpecialTokens: false).Append(tok.EosId!.Value)).ToArray();
        Assert.Equal(heldOut[..10], chunks.HeldOut[0]);
        var only = new CompressionChunks(docs, tok, 6, 4, heldOutShare: 0.1, heldOutOnly: true);
        Assert.Empty(only.Train);
        Assert.Equal(chunks.HeldOut, only.HeldOut);
    }

    [Fact]
    public void TrainingLeavesTheDecoderUnchangedAndLowersTheLoss()
    {
        using var decoder = new DecoderOnlyModel(TinyDecoder(), seed: 1);
        var before = decoder.Parameters.All.ToDictionary(p => p.Name, p => p.Value.ToFloatArray());
        using var compressor = ContextCompressor.FromDecoder(decoder, decoder, pooling: 2, seed: 3);
        var encoderBefore = compressor.Parameters["encoder.layers.0.self_attn.q_proj.weight"].Value.ToFloatArray();
        var rng = new Random(2);
        var chunks = Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, 12).Select(_ => rng.Next(3, 64)).ToArray()).ToArray();
        var batch = CompressionBatch.Build(CompressionTask.Reconstruction, chunks, 8, compressor.CompressedLength(8));
        double Loss() => ContextCompressionTraining.Loss(compressor, decoder, batch).Value.AsReadOnlySpan<float>()[0];
        double first = Loss();
        using (var training = new ContextCompressionTraining(compressor, decoder, new ContextCompressionOptions { Steps = 30, Batch = 4, ReconstructionShare = 1, WarmupSteps = 0, LearningRate = 3e-3, ProjectorLearningRate = 3e-3 }))
        {
            int logs = 0;
            training.OnLog = _ => logs++;
            training.Run(chunks, 8);
            Assert.Equal(30, training.Step);
            Assert.True(logs >= 1);
        }
        Assert.All(decoder.Parameters.All, p =>
        {
            Assert.False(p.Trainable, p.Name);
            Assert.Equal(before[p.Name], p.Value.ToFloatArray());
        });
        Assert.NotEqual(encoderBefore, compressor.Parameters["encoder.layers.0.self_attn.q_proj.weight"].Value.ToFloatArray());
        Assert.True(Loss() < first - 0.5, $"the reconstruction loss went from {first} to {Loss()}");
    }

    [Fact]
    public void EvaluationScoresTheBaselinesOnTheSameTokens()
    {
        using var decoder = new DecoderOnlyModel(TinyDecoder(), seed: 1);
        using var compressor = ContextCompressor.FromDecoder(decoder, decoder, pooling: 4, seed: 3);
        var rng = new Random(4);
        var chunks = Enumerable.Range(0, 5).Select(_ => Enumerable.Range(0, 14).Select(_ => rng.Next(3, 64)).ToArray()).ToArray();
        var r = ContextCompressionEval.Run(compressor, decoder, chunks, 8, bos: 2, batch: 2, timedChunks: 2, timingRepeats: 1);
        Assert.Equal((5, 8, 6, 2), (r.Chunks, r.ContextTokens, r.ContinuationTokens, r.CompressedVectors));
        Assert.InRange(r.ReconstructionAccuracy, 0, 1);
        // An untrained random decoder: every loss near ln V, and all finite.
        foreach (var loss in new[] { r.ReconstructionLoss, r.CompressedLoss, r.NoContextLoss, r.FullContextLoss })
            Assert.InRange(loss, 2.5, 6);
        Assert.True(r.FullPrefillMs > 0 && r.CompressedPrefillMs > 0 && r.DecoderPrefillMs > 0);
        // Every position is scored once per chunk, so the positions' mean is the overall accuracy.
        Assert.Equal(8, r.ReconstructionByPosition.Count);
        Assert.Equal(8, r.CopyByPosition.Count);
        Assert.Equal(r.ReconstructionAccuracy, r.ReconstructionByPosition.Average(), 12);
        Assert.Equal(r.CopyAccuracy, r.CopyByPosition.Average(), 12);
    }

    [Fact]
    public void PerPositionHitsCountEachRowsLabelledPositionsInOrder()
    {
        // Two rows of five positions over three ids; the last three positions of each row are labelled.
        int[] labels = [-100, -100, 0, 1, 2, -100, -100, 2, 2, 2];
        Assert.Equal(-100, Labels.Ignore);
        int[] argmax = [1, 1, 0, 2, 2, 0, 0, 1, 2, 2];       // row 0 right at its 1st and 3rd, row 1 at its 2nd and 3rd
        var logits = new float[10 * 3];
        for (int i = 0; i < 10; i++) logits[i * 3 + argmax[i]] = 1;
        var hits = new double[3];
        using var v = Var.Constant(Tensor.FromArray(logits, 2, 5, 3));
        var (correct, count, _) = ContextCompressionEval.Score(v, labels, hits);
        Assert.Equal((4.0, 6.0), (correct, count));
        Assert.Equal([1.0, 1.0, 2.0], hits);
    }

    [Fact]
    public void ReconstructionBySlotAveragesThePlacesOfTheNearEqualGroups()
    {
        // 10 positions at PF 4 are groups of 4, 3 and 3 (TransformerStack.PoolingGroups).
        var byPosition = Enumerable.Range(0, 10).Select(i => i / 10.0).ToArray();
        var r = new ContextCompressionReport(1, 10, 4, 3, byPosition.Average(), 0, 0, 0, 0, 0, 0, 0, 0.5, byPosition, [0.0, 1.0, 1.0]);
        var slots = r.ReconstructionBySlot(4);
        Assert.Equal(4, slots.Length);
        Assert.Equal((0.0 + 0.4 + 0.7) / 3, slots[0], 12);
        Assert.Equal((0.1 + 0.5 + 0.8) / 3, slots[1], 12);
        Assert.Equal((0.2 + 0.6 + 0.9) / 3, slots[2], 12);
        Assert.Equal(0.3, slots[3], 12);
        Assert.Equal(1.0, r.CopyAccuracyAfterFirst);
    }
}
