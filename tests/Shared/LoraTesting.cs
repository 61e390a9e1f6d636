using Encore.Models;

namespace Encore.Testing;

/// <summary>LoRA adapters with every value random (B ≠ 0), so an adapter changes what the model computes.</summary>
internal static class LoraTesting
{
    /// <summary>Overwrites every A and B value with a uniform draw from [−width/2, width/2) (seeded).</summary>
    public static void Randomize(LoraAdapter adapter, int seed, double width = 1.0)
    {
        var r = new Random(seed);
        foreach (var p in adapter.Parameters.All)
        {
            var s = p.Value.AsSpan<float>();
            for (int i = 0; i < s.Length; i++) s[i] = (float)((r.NextDouble() - 0.5) * width);
        }
    }

    /// <summary>A new adapter of <paramref name="rank"/> (alpha 2·rank) on <paramref name="targets"/>, randomized with width 0.6.</summary>
    public static LoraAdapter RandomAdapter(LanguageModel model, int seed, LoraTargets targets, int rank)
    {
        var a = LoraAdapter.Create(model, new LoraOptions { Rank = rank, Alpha = 2 * rank, Targets = targets }, (ulong)seed);
        Randomize(a, seed, 0.6);
        return a;
    }
}
