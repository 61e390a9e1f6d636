using Encore.Autograd;
using Encore.Tensors;

namespace Encore.Models.Tests;

/// <summary>
/// Int8 KV caches against f32 ones on tiny random models: memory, logits of the same token
/// sequences, greedy agreement, and the misuse that is refused.
/// </summary>
public class Int8CacheTests
{
    /// <summary>
    /// Largest |logit(int8) − logit(f32)| accepted at any step, teacher-forced on the f32 greedy tokens.
    /// Measured on these models and prompts: 0.0022 (encoder–decoder) and 0.0036 (decoder-only), against
    /// a logit spread (standard deviation over the vocabulary) of about 0.14. The bound leaves a 2.8×
    /// margin over the worst case seen and stays near 7% of the spread, so a cache that lost its scales
    /// or misplaced a position (errors of the order of the spread) fails.
    /// </summary>
    const float LogitBound = 0.01f;

    // The library's own initialization, which starts attention scores at unit scale (InitScale):
    // attention is neither uniform nor saturated. Scaling the projections up sharpens it, and the
    // logit error grows with the square of that factor (measured: about 4× at 2×, 15–50× at 4×), as
    // a score's error is the query's size times the key's rounding.
    static LanguageModel Create(string family, ulong seed = 7)
    {
        var config = Presets.Get(family == "encdec" ? "tiny-encdec" : "tiny-decoder") with { TieEmbeddings = false, MaxPositions = 128 };
        return family == "encdec" ? new EncoderDecoderModel(config, seed) : new DecoderOnlyModel(config, seed);
    }

    static int[][] Prompts(int count, int vocab, ulong seed)
    {
        var rng = new Random((int)seed);
        // Lengths up to 20 put decoder-only prompts through the prefill's tile path at every vector width.
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, rng.Next(3, 21)).Select(_ => rng.Next(3, vocab)).ToArray()).ToArray();
    }

    /// <summary>Logits (steps, V) of the last position after feeding the prompt and then each of <paramref name="forced"/>, or greedy tokens when forced is null.</summary>
    static (List<float[]> Logits, int[] Tokens) Decode(LanguageModel model, int[] prompt, int steps, KvCacheDType dtype, int[]? forced = null)
    {
        var logits = new List<float[]>();
        var tokens = new int[steps];
        int v = model.Config.VocabSize;
        DecoderCache cache;
        Var? memory = null;
        if (model is EncoderDecoderModel ed)
        {
            memory = ed.Encode(prompt, 1);
            cache = ed.CreateCache(1, steps + 1, prompt.Length, dtype);
        }
        else cache = ((DecoderOnlyModel)model).CreateCache(1, prompt.Length + steps, dtype);
        using (cache)
        using (memory)
        {
            int[] input = model is EncoderDecoderModel ? [0] : prompt;
            for (int step = 0; step < steps; step++)
            {
                using var y = model is EncoderDecoderModel e2 ? e2.Decode(memory!, null, input, 1, cache) : ((DecoderOnlyModel)model).Forward(input, 1, null, cache);
                int t = y.Shape[1];
                var last = y.Value.AsReadOnlySpan<float>().Slice((t - 1) * v, v).ToArray();
                logits.Add(last);
                tokens[step] = forced?[step] ?? Array.IndexOf(last, last.Max());
                input = [tokens[step]];
            }
        }
        return (logits, tokens);
    }

    [Theory]
    [InlineData("encdec")]
    [InlineData("decoder")]
    public void TeacherForcedLogitsStayWithinTheBoundAndGreedyTokensMostlyAgree(string family)
    {
        using var m = Create(family);
        var prompts = Prompts(16, m.Config.VocabSize, 3);
        const int steps = 12;
        double worst = 0, spread = 0;
        int agreeingPrompts = 0;
        foreach (var prompt in prompts)
        {
            var (f32, greedy) = Decode(m, prompt, steps, KvCacheDType.F32);
            var (int8, _) = Decode(m, prompt, steps, KvCacheDType.Int8, forced: greedy);
            for (int s = 0; s < steps; s++)
            {
                double mean = f32[s].Average();
                spread = Math.Max(spread, Math.Sqrt(f32[s].Average(x => (x - mean) * (x - mean))));
                for (int j = 0; j < f32[s].Length; j++) worst = Math.Max(worst, Math.Abs(f32[s][j] - int8[s][j]));
            }
            var (_, free) = Decode(m, prompt, steps, KvCacheDType.Int8);
            if (free.SequenceEqual(greedy)) agreeingPrompts++;
        }
        Assert.True(worst <= LogitBound, $"{family}: int8 logits differ by up to {worst:G3} > {LogitBound} (logit spread {spread:G3})");
        Assert.True(worst > 0, $"{family}: int8 logits equal the f32 ones exactly: the int8 cache was not used");
        Assert.True(spread > 10 * LogitBound, $"{family}: the logit spread {spread:G3} is too small for the bound to mean anything");
        // Near-ties flip now and then; most whole greedy sequences must survive.
        Assert.True(agreeingPrompts >= prompts.Length * 3 / 4, $"{family}: only {agreeingPrompts} of {prompts.Length} greedy sequences agree with f32");
    }

    [Theory]
    [InlineData("encdec")]
    [InlineData("decoder")]
    public void BytesCountQuantsAndScalesAndShrinkAtLeast18x(string family)
    {
        using var m = Create(family);
        var c = m.Config;
        using var f32 = m is EncoderDecoderModel ed ? ed.CreateCache(3, 20, 11) : ((DecoderOnlyModel)m).CreateCache(3, 20);
        using var int8 = m is EncoderDecoderModel ed2 ? ed2.CreateCache(3, 20, 11, KvCacheDType.Int8) : ((DecoderOnlyModel)m).CreateCache(3, 20, KvCacheDType.Int8);
        Assert.Equal(KvCacheDType.Int8, int8.DType);
        long vectors = 2L * 3 * c.KvHeads * 20 * c.DecoderLayers;                  // K and V, rows, heads, positions, layers
        Assert.Equal(vectors * (c.HeadDim + 4), int8.SelfBytes);
        Assert.Equal(vectors * c.HeadDim * 4, f32.SelfBytes);
        long f32Total = f32.SelfBytes + f32.CrossBytes, int8Total = int8.SelfBytes + int8.CrossBytes;
        Assert.True(f32Total >= 1.8 * int8Total, $"{f32Total} f32 bytes vs {int8Total} int8 bytes");
        if (m is EncoderDecoderModel) Assert.Equal(2L * 3 * c.KvHeads * 11 * c.DecoderLayers * (c.HeadDim + 4), int8.CrossBytes);
        // At hd = 64 an int8 vector is 68 bytes against 256.
        Assert.Equal(68, KvCacheDType.Int8.VectorBytes(64));
        Assert.Equal(256, KvCacheDType.F32.VectorBytes(64));
        Assert.Equal(ModelMemory.CacheBytes(c, 3, 20, KvCacheDType.Int8) * 4 * c.HeadDim, ModelMemory.CacheBytes(c, 3, 20) * (c.HeadDim + 4));
    }

    [Fact]
    public void MixedDTypesAndUnknownNamesAreRefused()
    {
        using var m = (DecoderOnlyModel)Create("decoder");
        using var f32 = m.CreateCache(1, 8);
        using var batch = m.CreateBatchCache(2, 16, KvCacheDType.Int8);
        m.Forward([4, 5, 6], 1, null, f32).Dispose();
        var ex = Assert.Throws<ArgumentException>(() => batch.LoadRow(0, f32, 0));
        Assert.Contains("f32", ex.Message);
        Assert.Contains("int8", ex.Message);
        Assert.Equal(KvCacheDType.Int8, KvCacheDTypes.Parse("INT8"));
        Assert.Equal(KvCacheDType.F32, KvCacheDTypes.Parse("f32"));
        ex = Assert.Throws<ArgumentException>(() => KvCacheDTypes.Parse("q4", "--kv-dtype"));
        Assert.Contains("--kv-dtype", ex.Message);
        Assert.Contains("q4", ex.Message);
    }

    [Fact]
    public void Int8HeadsWritesReadsAndCopiesVectors()
    {
        using var a = new Int8Heads(2, 3, 5, 4);
        using var b = new Int8Heads(1, 3, 7, 4);
        Assert.Equal(2L * 3 * 5 * (4 + 4), a.ByteLength);
        a.Write(1, 2, 3, [127f, -63.5f, 0.4f, 0f]);
        var x = new float[4];
        a.Read(1, 2, 3, x);
        Assert.Equal([127f, -64f, 0f, 0f], x);      // scale 1: −63.5 rounds away from zero
        b.CopyPositions(0, a, 1, 4);
        b.Read(0, 2, 3, x);
        Assert.Equal([127f, -64f, 0f, 0f], x);
        Assert.Throws<ArgumentOutOfRangeException>(() => a.Write(2, 0, 0, x));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.CopyPositions(0, a, 0, 6));
    }
}
