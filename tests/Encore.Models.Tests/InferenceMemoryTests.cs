using Encore.Autograd;
using Encore.Models;
using Encore.Tensors.Storage;

namespace Encore.Models.Tests;

/// <summary>The buffer pool is process-wide: these tests run with no other test beside them.</summary>
[CollectionDefinition(nameof(InferenceMemoryTests), DisableParallelization = true)]
public sealed class BufferPoolCollection;

/// <summary>What an inference pass does with its intermediates.</summary>
[Collection(nameof(InferenceMemoryTests))]
public class InferenceMemoryTests
{
    // T·F floats per feed-forward intermediate: 64 × 1024 × 4 bytes = 256 KiB, above the pool's minimum.
    static readonly ModelConfig s_config = Presets.Get("tiny-encdec") with { FfnDim = 1024, MaxPositions = 128 };

    [Fact]
    public void AnInferencePassHandsItsFeedForwardIntermediatesBackAsItGoes()
    {
        using var model = new EncoderDecoderModel(s_config, seed: 3);
        var source = Enumerable.Range(0, 64).Select(i => 1 + i % (s_config.VocabSize - 1)).ToArray();
        using var pooled = BufferPool.Enable();
        BufferPool.Clear();
        using (var memory = model.Encode(source, 1)) { }
        // Each layer's up-projection and activation outputs (256 KiB each) went back to the pool when
        // the next op had read them, so the pool holds at least one of each (later layers reuse them).
        Assert.True(BufferPool.RetainedBytes >= 2 * 64 * 1024 * sizeof(float), $"retained {BufferPool.RetainedBytes} bytes");
    }

    [Fact]
    public void ARecordedPassKeepsItsIntermediatesForTheBackwardPass()
    {
        using var model = new EncoderDecoderModel(s_config, seed: 3);
        var source = Enumerable.Range(0, 64).Select(i => 1 + i % (s_config.VocabSize - 1)).ToArray();
        using var pooled = BufferPool.Enable();
        BufferPool.Clear();
        using var tape = Tape.Record();
        using var memory = model.Encode(source, 1);
        // Nothing is released while a tape records: the backward pass reads the intermediates.
        Assert.Equal(0, BufferPool.RetainedBytes);
    }
}
