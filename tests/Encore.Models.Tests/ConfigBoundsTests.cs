namespace Encore.Models.Tests;

/// <summary>Configurations are bounded before anything is allocated, with the numbers in the message.</summary>
public class ConfigBoundsTests
{
    static readonly ModelConfig s_tiny = Presets.Get("tiny-encdec");

    public static TheoryData<string, ModelConfig> Oversized => new()
    {
        { "vocab_size", s_tiny with { VocabSize = int.MaxValue } },
        { "d_model", s_tiny with { DModel = int.MaxValue } },
        { "ffn_dim", s_tiny with { FfnDim = 2_000_000_000 } },
        { "encoder_layers", s_tiny with { EncoderLayers = 1_000_000 } },
        // H·hd = 2^32 wrapped to 0 in int: "the configuration needs f32[0, 32]".
        { "heads", s_tiny with { Heads = 65536, KvHeads = 65536, HeadDim = 65536 } },
        { "heads × head_dim", s_tiny with { Heads = 4096, KvHeads = 4096, HeadDim = 4096 } },
        { "max_positions", s_tiny with { MaxPositions = -1 } },
        { "rope_theta", s_tiny with { DecoderPositions = new PositionConfig { RopeTheta = -1 } } },
        { "rope_theta", s_tiny with { DecoderPositions = new PositionConfig { RopeTheta = 1e-320 } } },
        { "rope_theta", s_tiny with { DecoderPositions = new PositionConfig { RopeTheta = double.PositiveInfinity } } },
        { "decoder_start_token_id", s_tiny with { DecoderStartTokenId = s_tiny.VocabSize } },
        { "parameters exceed", s_tiny with { VocabSize = ModelConfig.MaxVocabSize, DModel = ModelConfig.MaxWidth } },
    };

    [Theory]
    [MemberData(nameof(Oversized))]
    public void OversizedConfigurationsAreRefusedNamingTheField(string field, ModelConfig config)
    {
        var e = Assert.Throws<ArgumentException>(() => config.Validate());
        Assert.Contains(field, e.Message);
    }

    [Fact]
    public void AModelThatDoesNotFitTheMemoryIsRefusedWithTheNumbers()
    {
        var config = s_tiny with { VocabSize = 1 << 20, DModel = 4096 };
        long need = ParameterCounter.Count(config) * 4;
        var e = Assert.Throws<ArgumentException>(() => ModelMemory.EnsureFits(config, availableBytes: need - 1));
        Assert.Contains($"{ParameterCounter.Count(config):N0} parameters", e.Message);
        Assert.Contains("vocab_size × d_model", e.Message);
        ModelMemory.EnsureFits(config, availableBytes: need);
        Assert.Throws<ArgumentException>(() => ModelMemory.EnsureFits(config, cacheBytes: 1, availableBytes: need));
    }

    [Fact]
    public void CacheBytesCountKeysAndValuesOfEveryDecoderBlock()
    {
        var c = s_tiny;
        long perPosition = 2L * c.KvHeads * c.HeadDim * 4 * c.DecoderLayers;
        // Encoder–decoder: self-attention positions plus as many cross-attention source positions.
        Assert.Equal(perPosition * 2 * 100 * 3, ModelMemory.CacheBytes(c, sequences: 3, context: 100));
        Assert.Equal(perPosition * 100 * 3, ModelMemory.CacheBytes(c with { Family = ModelFamily.DecoderOnly }, 3, 100));
    }

    [Fact]
    public void EveryPresetStaysWithinTheBounds()
    {
        foreach (var (_, config) in Presets.All) config.Validate();
    }
}
