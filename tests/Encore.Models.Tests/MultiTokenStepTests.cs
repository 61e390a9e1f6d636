using Encore.Autograd;

namespace Encore.Models.Tests;

/// <summary>
/// Several tokens fed to a cache in one decoder pass (the verification pass of speculative decoding):
/// the logits after each equal those of feeding the tokens one step at a time, for every position
/// scheme and both cache dtypes, and a truncated cache continues as if the dropped tokens had never
/// been fed. Uniform caches and a lone row of a batch cache.
/// </summary>
public class MultiTokenStepTests
{
    /// <summary>
    /// Largest |Δlogit| accepted: the two paths differ only in how the kernels group rows (one GEMV row
    /// against a tile of k rows sums in another order), a rounding of about 1e-6 on these unit-scale logits.
    /// </summary>
    const float Tolerance = 1e-5f;

    public static TheoryData<string, string, KvCacheDType> Cases
    {
        get
        {
            var data = new TheoryData<string, string, KvCacheDType>();
            foreach (var family in new[] { "encdec", "decoder" })
                foreach (var dtype in new[] { KvCacheDType.F32, KvCacheDType.Int8 })
                    foreach (var kind in new[] { "rope", "t5", "learned", "alibi", "sinusoidal", "none" }) data.Add(family, kind, dtype);
            return data;
        }
    }

    static LanguageModel Create(string family, string kind)
    {
        var position = new PositionConfig
        {
            Kind = kind switch
            {
                "rope" => PositionKind.Rope,
                "t5" => PositionKind.T5Relative,
                "learned" => PositionKind.Learned,
                "alibi" => PositionKind.Alibi,
                "sinusoidal" => PositionKind.Sinusoidal,
                _ => PositionKind.None,
            },
            // Short buckets put the test's distances in both the exact and the logarithmic ranges.
            RelativeBuckets = 8,
            RelativeMaxDistance = 12,
        };
        var config = Presets.Get(family == "encdec" ? "tiny-encdec" : "tiny-decoder") with { DecoderPositions = position, MaxPositions = 64, TieEmbeddings = false };
        return family == "encdec" ? new EncoderDecoderModel(config, 5) : new DecoderOnlyModel(config, 5);
    }

    static readonly int[] Prompt = [5, 9, 13, 17, 21, 8, 40];

    /// <summary>A uniform cache with the prompt consumed: prefilled (decoder-only) or encoded with the start token decoded.</summary>
    sealed class Run : IDisposable
    {
        readonly LanguageModel _model;
        readonly Var? _memory;
        public readonly DecoderCache Cache;

        public Run(LanguageModel model, KvCacheDType dtype)
        {
            _model = model;
            if (model is EncoderDecoderModel ed)
            {
                _memory = ed.Encode(Prompt, 1);
                Cache = ed.CreateCache(1, 32, Prompt.Length, dtype);
                Feed([0]).Dispose();
            }
            else
            {
                Cache = ((DecoderOnlyModel)model).CreateCache(1, Prompt.Length + 32, dtype);
                ((DecoderOnlyModel)model).Prefill(Prompt, 1, Cache).Dispose();
            }
        }

        /// <summary>Logits (1, t, V) after each of <paramref name="tokens"/>, fed in one pass.</summary>
        public Var Feed(int[] tokens) => _model is EncoderDecoderModel ed
            ? ed.Decode(_memory!, null, tokens, 1, Cache)
            : ((DecoderOnlyModel)_model).Forward(tokens, 1, null, Cache);

        public void Dispose()
        {
            Cache.Dispose();
            _memory?.Dispose();
        }
    }

    static List<float[]> Rows(Var logits)
    {
        using (logits)
        {
            int t = logits.Shape[1], v = logits.Shape[2];
            var all = logits.Value.AsReadOnlySpan<float>().ToArray();
            return Enumerable.Range(0, t).Select(p => all.AsSpan(p * v, v).ToArray()).ToList();
        }
    }

    /// <summary>Logits after each token, every token its own step.</summary>
    static List<float[]> OneAtATime(LanguageModel m, KvCacheDType dtype, int[] tokens)
    {
        using var run = new Run(m, dtype);
        return tokens.SelectMany(t => Rows(run.Feed([t]))).ToList();
    }

    static void AssertClose(IReadOnlyList<float[]> expected, IReadOnlyList<float[]> actual, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        float worst = 0;
        for (int p = 0; p < expected.Count; p++)
            for (int i = 0; i < expected[p].Length; i++) worst = Math.Max(worst, Math.Abs(expected[p][i] - actual[p][i]));
        Assert.True(worst <= Tolerance, $"{what}: logits differ by up to {worst:G3}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SeveralTokensInOnePassGiveTheLogitsOfSingleSteps(string family, string kind, KvCacheDType dtype)
    {
        using var m = Create(family, kind);
        int[] tokens = [30, 31, 7, 44, 12, 3, 60, 25];
        var expected = OneAtATime(m, dtype, tokens);
        Assert.True(expected[2].Zip(expected[5]).Max(x => Math.Abs(x.First - x.Second)) > 0.01, "positions too alike for the comparison to mean anything");

        using var run = new Run(m, dtype);
        var actual = new List<float[]>();
        actual.AddRange(Rows(run.Feed(tokens[..2])));     // from the prompt's end
        actual.AddRange(Rows(run.Feed(tokens[2..7])));    // at an offset
        actual.AddRange(Rows(run.Feed(tokens[7..])));     // a single step after them
        AssertClose(expected, actual, $"{family} {kind} {dtype.Name()}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TruncatedCacheContinuesAsIfTheDroppedTokensWereNeverFed(string family, string kind, KvCacheDType dtype)
    {
        using var m = Create(family, kind);
        int[] kept = [30, 31, 7], dropped = [44, 12, 3], after = [50, 51, 52];
        var expected = OneAtATime(m, dtype, [.. kept, .. after]);

        using var run = new Run(m, dtype);
        int start = run.Cache.Length;
        var actual = Rows(run.Feed([.. kept, .. dropped]))[..kept.Length];
        run.Cache.Truncate(start + kept.Length);
        Assert.Equal(start + kept.Length, run.Cache.Length);
        actual.AddRange(Rows(run.Feed(after)));
        AssertClose(expected, actual, $"{family} {kind} {dtype.Name()}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LoneBatchRowTakesSeveralTokensAndTruncates(string family, string kind, KvCacheDType dtype)
    {
        using var m = Create(family, kind);
        int[] kept = [30, 31, 7], dropped = [44, 12], after = [50, 51, 52, 53];
        var expected = OneAtATime(m, dtype, [.. kept, .. after]);

        using var batch = m is EncoderDecoderModel e ? e.CreateBatchCache(3, 32, 16, dtype) : ((DecoderOnlyModel)m).CreateBatchCache(3, Prompt.Length + 32, dtype);
        using (var run = new Run(m, dtype))
            batch.LoadRow(0, run.Cache, 0, m is EncoderDecoderModel ? Prompt.Length : 0);
        batch.ActiveRows = 1;
        Var Step(int[] tokens) => m is EncoderDecoderModel ed ? ed.DecodeStep(tokens, batch) : ((DecoderOnlyModel)m).DecodeStep(tokens, batch);
        int start = batch.RowLengths![0];
        var actual = Rows(Step([.. kept, .. dropped]))[..kept.Length];
        Assert.Equal(start + kept.Length + dropped.Length, batch.RowLengths[0]);
        batch.TruncateRow(0, start + kept.Length);
        actual.AddRange(Rows(Step(after[..1])));
        actual.AddRange(Rows(Step(after[1..])));
        AssertClose(expected, actual, $"{family} {kind} {dtype.Name()}");
    }

    [Fact]
    public void SeveralTokensPerRowNeedALoneRowAndTruncationStaysInsideTheCache()
    {
        using var m = Create("decoder", "rope");
        var dec = (DecoderOnlyModel)m;
        using var batch = dec.CreateBatchCache(2, 16);
        using (var run = new Run(m, KvCacheDType.F32))
        {
            batch.LoadRow(0, run.Cache, 0);
            batch.LoadRow(1, run.Cache, 0);
            Assert.Throws<InvalidOperationException>(() => run.Cache.TruncateRow(0, 1));
            Assert.Throws<ArgumentOutOfRangeException>(() => run.Cache.Truncate(run.Cache.Length + 1));
        }
        batch.ActiveRows = 2;
        var e = Assert.Throws<ArgumentException>(() => dec.DecodeStep([1, 2, 3, 4], batch));
        Assert.Contains("lone active row", e.Message);
        Assert.Throws<InvalidOperationException>(() => batch.Truncate(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => batch.TruncateRow(0, batch.RowLengths![0] + 1));
        batch.ActiveRows = 1;
        // Past the capacity the append refuses before writing.
        Assert.Throws<InvalidOperationException>(() => dec.DecodeStep(Enumerable.Range(3, 16 - Prompt.Length + 1).ToArray(), batch));
    }
}
