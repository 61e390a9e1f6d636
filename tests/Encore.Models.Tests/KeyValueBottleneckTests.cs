using Encore.Autograd;
using Encore.Tensors;

namespace Encore.Models.Tests;

/// <summary><see cref="KeyValueBottleneck"/>: nearest-key lookup, the EMA key update, freezing, the value read and its sparse gradient.</summary>
public class KeyValueBottleneckTests
{
    static float[] Random(int seed, int n)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1))];
    }

    [Fact]
    public void LookupFindsTheNearestKeyOfEachPart()
    {
        using var kv = new KeyValueBottleneck(6, new KeyValueBottleneckOptions { Codebooks = 2, Keys = 5, ValueDim = 3 }, seed: 1);
        var x = Random(2, 7 * 6);
        kv.InitializeKeys(Random(3, 20 * 6), 20);
        var slots = kv.Lookup(x, 7);
        var keys = kv.Keys.Value.ToFloatArray();
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 2; c++)
            {
                // Brute force in double.
                var d = Enumerable.Range(0, 5).Select(i => Enumerable.Range(0, 3).Sum(e => Math.Pow(x[r * 6 + c * 3 + e] - keys[(c * 5 + i) * 3 + e], 2))).ToArray();
                Assert.Equal(Array.IndexOf(d, d.Min()), slots[r * 2 + c]);
            }
    }

    [Fact]
    public void KeysStartAtSampledRowsAndAnEmaStepMovesThemToTheirMeans()
    {
        // One codebook of 2 keys over 1-D features; rows 0 and 10 start the keys (4 rows, drawn without replacement).
        var options = new KeyValueBottleneckOptions { Codebooks = 1, Keys = 2, ValueDim = 1, Decay = 0.5f, Epsilon = 1e-5f };
        using var kv = new KeyValueBottleneck(1, options, seed: 4);
        kv.InitializeKeys([0f, 10f], 2);
        var start = kv.Keys.Value.ToFloatArray().Order().ToArray();
        Assert.Equal(new float[] { 0, 10 }, start);
        // Rows 1, 3 go to the key at 0 and 8, 12 to the key at 10: counts 2 and 2, sums 4 and 20.
        // n ← 0.5·1 + 0.5·2 = 1.5, s ← 0.5·key + 0.5·sum: (0 + 4)/2 = 2 and (10 + 20)/2 = 15; key = s/n: 4/3 and 10.
        kv.UpdateKeys([1f, 3f, 8f, 12f], 4);
        var keys = kv.Keys.Value.ToFloatArray().Order().ToArray();
        Assert.Equal(4f / 3, keys[0], 1e-4f);
        Assert.Equal(10f, keys[1], 1e-4f);
        kv.FreezeKeys();
        Assert.True(kv.KeysFrozen);
        Assert.Throws<InvalidOperationException>(() => kv.UpdateKeys([1f], 1));
        Assert.False(kv.Keys.Trainable);
    }

    [Fact]
    public void ForwardFetchesTheNearestKeysValuesAndOnlyTheyTrain()
    {
        using var kv = new KeyValueBottleneck(4, new KeyValueBottleneckOptions { Codebooks = 2, Keys = 3, ValueDim = 2 }, seed: 5);
        kv.InitializeKeys(Random(6, 30 * 4), 30);
        var values = kv.Values.Value.AsSpan<float>();
        for (int i = 0; i < values.Length; i++) values[i] = i;
        var x = Random(7, 2 * 4);
        var slots = kv.Lookup(x, 2);
        using var input = Tensor.FromArray(x, 2, 4);
        kv.Values.ZeroGrad();
        using (var tape = Tape.Record())
        {
            var y = kv.Forward(Var.Constant(input, owned: false));
            var got = y.Value.ToFloatArray();
            for (int r = 0; r < 2; r++)
                for (int e = 0; e < 2; e++)
                    Assert.Equal(((0 * 3 + slots[r * 2]) * 2 + e + (1 * 3 + slots[r * 2 + 1]) * 2 + e) / 2f, got[r * 2 + e], 1e-6f);
            tape.Backward(y);
        }
        var g = kv.Values.Grad!.ToFloatArray();
        var fetched = new HashSet<int>();
        for (int r = 0; r < 2; r++)
            for (int c = 0; c < 2; c++) fetched.Add(c * 3 + slots[r * 2 + c]);
        for (int s = 0; s < 6; s++)
            if (!fetched.Contains(s)) Assert.Equal(new float[] { 0, 0 }, g[(s * 2)..(s * 2 + 2)]);
            else Assert.True(g[s * 2] > 0);
        Assert.Null(kv.Keys.Grad);
    }

    [Fact]
    public void BadSettingsNameTheSetting()
    {
        Assert.Contains("codebooks", Assert.Throws<ArgumentException>(() => new KeyValueBottleneckOptions { Codebooks = 0 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("decay", Assert.Throws<ArgumentException>(() => new KeyValueBottleneckOptions { Decay = 1 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("do not split", Assert.Throws<ArgumentException>(() => new KeyValueBottleneck(7, new KeyValueBottleneckOptions { Codebooks = 2 })).Message, StringComparison.Ordinal);
    }
}
