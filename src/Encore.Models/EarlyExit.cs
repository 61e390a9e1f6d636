// Early exit of a transformer stack at inference, after MuE ("You Need Multiple Exiting", Tang et al.
// 2023, arXiv 2211.11152): a layer whose output is nearly its input ("saturated") stops the stack, and
// the state it reached goes on through the stack's final norm. MuE decides on layer-wise input
// similarity rather than on output confidence, so the encoder, which has no output to be confident
// about, exits too. See docs/adaptive-compute.md.
using System.Numerics.Tensors;

namespace Encore.Models;

/// <summary>
/// The early-exit rule of one stack and the layers it ran. After block l (0-based, not the last) a unit
/// exits when cos(h_{l+1}, h_l) ≥ <see cref="Threshold"/>, with h_l the block's input and h_{l+1} its
/// output on the residual stream. A unit is an example in a bidirectional stack (the encoder: the cosine
/// is the mean over its valid positions, so the whole row stops, as MuE decides once per modality group)
/// and a token in a causal stack (the decoder: each new position decides alone). An exited unit keeps the
/// state it reached; a decoder layer it skips still writes the keys and values of that state into its
/// cache (state propagation, as CALM, Schuster et al. 2022, arXiv 2207.07061), so later tokens find an
/// entry at every layer. The skipped layers' self-attention, cross-attention and feed-forward are not
/// run. In a batch whose rows exit at different layers the batch goes on until every unit has exited and
/// exited rows keep their state, so each row gets the result it would get alone; the time saved is then
/// only what every row saves.
/// </summary>
public sealed class StackExit
{
    /// <summary>A rule with threshold τ counting layers for up to <paramref name="rows"/> rows.</summary>
    /// <param name="threshold">
    /// τ: ≥ 1 never exits (the stack runs whole; a cosine reaches 1 only for parallel states, and rounding
    /// could make a nearly parallel pair read as 1); ≤ 0 exits after the first layer whatever the
    /// similarity; in between, the first layer whose cosine reaches τ.
    /// </param>
    /// <param name="rows">Rows of the passes (B); the counts are kept per row.</param>
    public StackExit(float threshold, int rows)
    {
        if (!float.IsFinite(threshold)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "an exit threshold must be a finite number");
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        Threshold = threshold;
        LayersByRow = new long[rows];
        UnitsByRow = new long[rows];
    }

    /// <summary>τ (see the constructor).</summary>
    public float Threshold { get; }

    /// <summary>True when τ ≥ 1: no unit ever exits, and no similarity is computed.</summary>
    public bool Never => Threshold >= 1f;

    /// <summary>Per row: blocks run, summed over the row's units (an exited unit counts the layers up to its exit).</summary>
    public long[] LayersByRow { get; }

    /// <summary>Per row: units that went through the stack (examples in the encoder, tokens in the decoder).</summary>
    public long[] UnitsByRow { get; }

    /// <summary>Blocks run over all rows.</summary>
    public long Layers => LayersByRow.Sum();

    /// <summary>Units over all rows.</summary>
    public long Units => UnitsByRow.Sum();

    /// <summary>Clears the counts.</summary>
    public void Reset()
    {
        Array.Clear(LayersByRow);
        Array.Clear(UnitsByRow);
    }

    /// <summary>True when a unit whose layer changed its state by <paramref name="cosine"/> exits.</summary>
    public bool Exits(float cosine) => !Never && (Threshold <= 0f || cosine >= Threshold);

    /// <summary>
    /// The decision after block <paramref name="layer"/> (none after the last: <paramref name="decide"/> false) of a pass of <paramref name="units"/> units of
    /// <paramref name="unitLength"/> positions each (D values a position): copies the kept state of units
    /// that exited before into <paramref name="output"/>, marks the units that exit now in
    /// <paramref name="depth"/> (0: still running; else the blocks the unit ran), and returns the units
    /// still running. <paramref name="valid"/> gives each unit's valid positions (null: all).
    /// </summary>
    internal int Decide(ReadOnlySpan<float> input, Span<float> output, int layer, bool decide, int units, int unitLength, int d, int[]? valid, int[] depth)
    {
        int running = 0, stride = unitLength * d;
        for (int u = 0; u < units; u++)
        {
            var x = input.Slice(u * stride, stride);
            var y = output.Slice(u * stride, stride);
            if (depth[u] > 0)
            {
                x.CopyTo(y);
                continue;
            }
            if (decide && Exits(MeanCosine(x, y, valid?[u] ?? unitLength, d))) depth[u] = layer + 1;
            else running++;
        }
        return running;
    }

    /// <summary>Adds a finished pass: each unit ran depth[u] blocks (0: all <paramref name="layers"/>); unit u belongs to row u / <paramref name="unitsPerRow"/>.</summary>
    internal void Count(int[] depth, int units, int unitsPerRow, int layers)
    {
        for (int u = 0; u < units; u++)
        {
            int row = u / unitsPerRow;
            LayersByRow[row] += depth[u] == 0 ? layers : depth[u];
            UnitsByRow[row]++;
        }
    }

    // Mean over the first `positions` positions of cos(x_p, y_p); a zero state gives NaN, which exits nothing.
    static float MeanCosine(ReadOnlySpan<float> x, ReadOnlySpan<float> y, int positions, int d)
    {
        if (positions <= 0) return float.NaN;
        float sum = 0;
        for (int p = 0; p < positions; p++) sum += TensorPrimitives.CosineSimilarity(x.Slice(p * d, d), y.Slice(p * d, d));
        return sum / positions;
    }
}
