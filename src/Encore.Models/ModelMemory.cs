namespace Encore.Models;

/// <summary>
/// Memory a model needs, from its configuration alone, checked against what this machine has before
/// anything is allocated: a configuration that would not fit is refused with the numbers instead of
/// ending the process with "Out of memory".
/// </summary>
public static class ModelMemory
{
    /// <summary>Bytes per parameter as a model is built (f32 weights).</summary>
    public const int BytesPerParameter = sizeof(float);

    /// <summary>Memory this process may use: the machine's or its container's limit, as the GC sees it.</summary>
    public static long AvailableBytes => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <summary>Bytes of the f32 parameters of <paramref name="config"/>.</summary>
    public static long ParameterBytes(ModelConfig config) => checked(ParameterCounter.Count(config) * BytesPerParameter);

    /// <summary>
    /// Bytes of the key/value caches of <paramref name="sequences"/> sequences of <paramref name="context"/>
    /// positions stored as <paramref name="dtype"/>: per decoder block 2·Hkv vectors of hd per position,
    /// plus the cross-attention keys and values of as many source positions in an encoder–decoder.
    /// </summary>
    public static long CacheBytes(ModelConfig config, int sequences, int context, KvCacheDType dtype = KvCacheDType.F32)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sequences);
        ArgumentOutOfRangeException.ThrowIfNegative(context);
        long perPosition = checked(2L * config.KvHeads * dtype.VectorBytes(config.HeadDim));
        long positions = config.Family == ModelFamily.EncoderDecoder ? 2L * context : context;
        return config.Family == ModelFamily.EncoderOnly ? 0 : checked(config.DecoderLayers * perPosition * positions * sequences);
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> with the numbers when the parameters of <paramref name="config"/>
    /// and <paramref name="cacheBytes"/> of caches exceed <paramref name="availableBytes"/> (default: <see cref="AvailableBytes"/>).
    /// </summary>
    public static void EnsureFits(ModelConfig config, long cacheBytes = 0, long? availableBytes = null)
    {
        long available = availableBytes ?? AvailableBytes;
        long parameters = ParameterCounter.Count(config);
        long need = checked(parameters * BytesPerParameter + cacheBytes);
        if (need <= available) return;
        string caches = cacheBytes > 0 ? $" and {Size(cacheBytes)} of key/value caches" : "";
        throw new ArgumentException($"model config: {parameters:N0} parameters ({Size(parameters * BytesPerParameter)} in f32){caches} do not fit the {Size(available)} of memory available ({LargestTerm(config)})");
    }

    /// <summary>The largest product of fields in the parameter count, named as config.json names them.</summary>
    public static string LargestTerm(ModelConfig c)
    {
        long width = Math.Max(Math.Max(c.DModel, c.FfnDim), (long)c.Heads * c.HeadDim);
        int layers = Math.Max(c.EncoderLayers, c.DecoderLayers);
        var terms = new (long Value, string Text)[]
        {
            ((long)c.VocabSize * c.DModel, $"vocab_size × d_model = {c.VocabSize:N0} × {c.DModel:N0}"),
            ((long)layers * c.DModel * width, $"layers × d_model × width = {layers:N0} × {c.DModel:N0} × {width:N0}"),
            ((long)c.MaxPositions * c.DModel, $"max_positions × d_model = {c.MaxPositions:N0} × {c.DModel:N0}"),
        };
        return "largest term " + terms.MaxBy(t => t.Value).Text;
    }

    static string Size(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.#} GiB" : $"{bytes / (double)(1L << 20):0.#} MiB";
}
