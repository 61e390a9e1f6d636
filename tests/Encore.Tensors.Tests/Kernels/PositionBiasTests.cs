using System.Text.Json;
using Encore.Tensors.Kernels;

namespace Encore.Tensors.Tests.Kernels;

public class PositionBiasTests
{
    static readonly JsonElement F = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "position_bias.json"))).RootElement;

    [Fact]
    public void T5BucketsMatchTheReferenceForEncoderAndDecoderSettings()
    {
        foreach (var c in F.GetProperty("t5").EnumerateArray())
        {
            bool bi = c.GetProperty("bidirectional").GetBoolean();
            int nb = c.GetProperty("num_buckets").GetInt32(), md = c.GetProperty("max_distance").GetInt32();
            var rel = c.GetProperty("relative").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            var want = c.GetProperty("buckets").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            for (int i = 0; i < rel.Length; i++)
                Assert.True(want[i] == PositionBias.T5Bucket(rel[i], bi, nb, md), $"bidirectional={bi} buckets={nb} max={md} relative={rel[i]}: want {want[i]}");
        }
    }

    [Fact]
    public void T5BucketsForAQueryOffsetSeeTheRightRelativePositions()
    {
        // Decoding query 0 of 1 against 5 cached keys (offset 4): relative positions −4..0.
        var b = new int[5];
        PositionBias.T5Buckets(b, 1, 5, bidirectional: false, queryOffset: 4);
        Assert.Equal(new[] { 4, 3, 2, 1, 0 }, b);
        // Encoder: key after the query lands in the upper half (16 + distance).
        Assert.Equal(16 + 1, PositionBias.T5Bucket(1, bidirectional: true));
        Assert.Equal(1, PositionBias.T5Bucket(-1, bidirectional: true));
    }

    [Fact]
    public void DistanceBiasIsTheGatheredBiasByDistance()
    {
        var rng = new Random(5);
        int heads = 3, nb = 32;
        var table = Enumerable.Range(0, nb * heads).Select(_ => (float)rng.NextDouble()).ToArray();
        foreach (var (t, s, bi, offset) in new[] { (1, 1, true, 0), (7, 7, true, 0), (300, 300, true, 0), (5, 9, false, 4), (1, 200, false, 199), (6, 3, true, 2) })
        {
            var buckets = new int[t * s];
            PositionBias.T5Buckets(buckets, t, s, bi, nb, 128, offset);
            var gathered = new float[heads * t * s];
            PositionBias.GatherBias(table, nb, heads, buckets, t, s, gathered);
            int width = t + s - 1;
            var distance = new float[heads * width];
            PositionBias.DistanceBias(table, nb, heads, t, s, bi, 128, offset, distance);
            for (int h = 0; h < heads; h++)
            for (int i = 0; i < t; i++)
            for (int j = 0; j < s; j++)
                Assert.Equal(gathered[(h * t + i) * s + j], distance[h * width + i - j + s - 1]);
        }
        Assert.Throws<ArgumentException>(() => PositionBias.DistanceBias(table, nb, heads, 4, 4, true, 128, 0, new float[heads * 7 - 1]));
    }

    [Fact]
    public void AlibiSlopesMatchTheReference()
    {
        foreach (var p in F.GetProperty("alibi").EnumerateObject())
        {
            var want = p.Value.EnumerateArray().Select(x => (float)x.GetDouble()).ToArray();
            Assert.Equal(want, PositionBias.AlibiSlopes(int.Parse(p.Name)));
        }
        Assert.Equal(new[] { 0.0625f, 0.00390625f }, PositionBias.AlibiSlopes(2));
    }

    [Fact]
    public void GatherAndItsBackwardAreTransposes()
    {
        // Table (3 buckets, 2 heads); buckets (T=2, S=2).
        float[] table = [10, 11, 20, 21, 30, 31];
        int[] buckets = [0, 2, 1, 0];
        var bias = new float[2 * 4];
        PositionBias.GatherBias(table, 3, 2, buckets, 2, 2, bias);
        Assert.Equal(new float[] { 10, 30, 20, 10, 11, 31, 21, 11 }, bias);
        var dTable = new float[6];
        PositionBias.GatherBiasBackward([1, 2, 3, 4, 5, 6, 7, 8], 2, buckets, 2, 2, dTable);
        // Bucket 0 collects (t,s) = (0,0) and (1,1): head 0 → 1 + 4, head 1 → 5 + 8.
        Assert.Equal(new float[] { 5, 13, 3, 7, 2, 6 }, dTable);
        Assert.Throws<ArgumentOutOfRangeException>(() => PositionBias.GatherBias(table, 3, 2, [0, 3, 0, 0], 2, 2, bias));
    }
}
