using Encore.Autograd;

namespace Encore.Models.Tests;

/// <summary>
/// Batch caches (continuous batching): rows loaded from separate prefills at different lengths decode
/// together, each exactly as its own uniform cache decodes it.
/// </summary>
public class BatchCacheTests
{
    public static TheoryData<string, KvCacheDType> Positions
    {
        get
        {
            var data = new TheoryData<string, KvCacheDType>();
            foreach (var dtype in new[] { KvCacheDType.F32, KvCacheDType.Int8 })
                foreach (var kind in new[] { "rope", "t5", "alibi", "learned", "sinusoidal", "none", "comrope", "urpe" }) data.Add(kind, dtype);
            return data;
        }
    }

    static PositionConfig Position(string kind) => new()
    {
        Kind = kind switch
        {
            "rope" => PositionKind.Rope,
            "t5" => PositionKind.T5Relative,
            "alibi" => PositionKind.Alibi,
            "learned" => PositionKind.Learned,
            "sinusoidal" => PositionKind.Sinusoidal,
            "comrope" => PositionKind.ComRope,
            "urpe" => PositionKind.Urpe,
            _ => PositionKind.None,
        },
    };

    static float[] Last(Var logits, int row)
    {
        int t = logits.Shape[1], v = logits.Shape[2];
        return logits.Value.AsReadOnlySpan<float>().Slice((row * t + t - 1) * v, v).ToArray();
    }

    static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4f, $"logit {i}: {expected[i]} vs {actual[i]}");
    }

    [Theory]
    [MemberData(nameof(Positions))]
    public void DecoderOnlyRowsOfDifferentLengthsDecodeAsAlone(string kind, KvCacheDType dtype)
    {
        using var m = new DecoderOnlyModel(Presets.Get("tiny-decoder") with { DecoderPositions = Position(kind), MaxPositions = 64 }, 3);
        int[][] prompts = [[5, 6, 7], [8, 9, 10, 11, 12, 13], [14]];
        int[][] next = [[20, 21, 22, 23], [24, 25, 26, 27], [28, 29, 30, 31]];
        using var batch = m.CreateBatchCache(4, 32, dtype);
        var alone = new DecoderCache[prompts.Length];
        try
        {
            for (int r = 0; r < prompts.Length; r++)
            {
                alone[r] = m.CreateCache(1, 32, dtype);
                m.Forward(prompts[r], 1, null, alone[r]).Dispose();
                batch.LoadRow(r, alone[r], 0);
            }
            batch.ActiveRows = prompts.Length;
            for (int step = 0; step < 4; step++)
            {
                using var together = m.DecodeStep(next.Select(n => n[step]).ToArray(), batch);       // (3, 1, V)
                for (int r = 0; r < prompts.Length; r++)
                {
                    using var one = m.Forward([next[r][step]], 1, null, alone[r]);                    // (1, 1, V)
                    AssertClose(Last(one, 0), Last(together, r));
                }
                Assert.Equal(prompts.Select(p => p.Length + step + 1), batch.RowLengths!.Take(prompts.Length));
            }
            // Row 0 leaves: row 2 moves into its place and goes on as before.
            batch.MoveRow(0, 2);
            batch.ActiveRows = 2;
            using var after = m.DecodeStep([40, 41], batch);
            using var row2 = m.Forward([40], 1, null, alone[2]);
            AssertClose(Last(row2, 0), Last(after, 0));
        }
        finally
        {
            foreach (var c in alone) c?.Dispose();
        }
    }

    [Theory]
    [InlineData(KvCacheDType.F32)]
    [InlineData(KvCacheDType.Int8)]
    public void EncoderDecoderRowsKeepTheirOwnSources(KvCacheDType dtype)
    {
        using var m = new EncoderDecoderModel(Presets.Get("tiny-encdec") with { DecoderPositions = Position("t5") }, 5);
        int[][] sources = [[5, 6, 7, 8, 9, 10, 11], [12, 13]];
        using var batch = m.CreateBatchCache(2, 16, 16, dtype);
        var alone = new DecoderCache[2];
        var memories = new Var[2];
        try
        {
            for (int r = 0; r < 2; r++)
            {
                memories[r] = m.Encode(sources[r], 1);
                alone[r] = m.CreateCache(1, 16, sources[r].Length, dtype);
                m.Decode(memories[r], null, [0], 1, alone[r]).Dispose();
                batch.LoadRow(r, alone[r], 0, sources[r].Length);
            }
            batch.ActiveRows = 2;
            for (int step = 0; step < 3; step++)
            {
                using var together = m.DecodeStep([3 + step, 30 + step], batch);
                for (int r = 0; r < 2; r++)
                {
                    using var one = m.Decode(memories[r], null, [r == 0 ? 3 + step : 30 + step], 1, alone[r]);
                    AssertClose(Last(one, 0), Last(together, r));
                }
            }
        }
        finally
        {
            foreach (var c in alone) c?.Dispose();
            foreach (var v in memories) v?.Dispose();
        }
    }

    [Fact]
    public void MisuseIsRefused()
    {
        using var m = new DecoderOnlyModel(Presets.Get("tiny-decoder"), 3);
        using var uniform = m.CreateCache(1, 8);
        using var batch = m.CreateBatchCache(2, 4);
        Assert.Throws<InvalidOperationException>(() => uniform.ActiveRows = 1);
        Assert.Throws<ArgumentException>(() => m.DecodeStep([1], uniform));
        m.Forward([1, 2, 3, 4], 1, null, uniform).Dispose();
        Assert.Throws<ArgumentException>(() => batch.LoadRow(0, uniform, 0));      // 4 positions fill a capacity of 4
        batch.ActiveRows = 2;
        Assert.Throws<ArgumentException>(() => m.DecodeStep([1], batch));           // one token for two rows
    }
}
