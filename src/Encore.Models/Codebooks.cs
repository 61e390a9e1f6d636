// Codebook Features (Tamkin, Taufeeque and Goodman, arXiv 2310.17230; reference code
// taufeeque9/codebook-features, models.py): a sublayer's output, before it joins the residual stream,
// is replaced by the sum of the k codes of a learned codebook most cosine-similar to it, so the stream
// carries a sparse, discrete choice of codes that can be read (which codes fire for what) and set.
using Encore.Autograd;

namespace Encore.Models;

/// <summary>
/// Codebooks in every block (<see cref="ModelConfig.Codebook"/>): after the attention sublayers (self and, in a
/// decoder of an encoder–decoder, cross), after the feed-forward, or both. Each has <see cref="Size"/> codes of the
/// stack's width D and snaps each position's output to the sum of its <see cref="TopK"/> nearest codes by cosine
/// similarity (<see cref="Ops.Codebook"/>).
/// </summary>
public sealed record CodebookConfig
{
    /// <summary>Codes per codebook (the paper's C; F ≫ k). Default 512.</summary>
    public int Size { get; init; } = 512;
    /// <summary>k, the codes summed per position. Default 4.</summary>
    public int TopK { get; init; } = 4;
    /// <summary>A codebook after each attention sublayer's output. Default true.</summary>
    public bool Attention { get; init; } = true;
    /// <summary>A codebook after the feed-forward's output. Default true.</summary>
    public bool Mlp { get; init; } = true;
    /// <summary>
    /// β of the commitment gradient added to the straight-through one in training (the reference code's "vqvae-β"
    /// loss and its β; see <see cref="Ops.Codebook"/>); 0 is its "base" loss, straight-through only, which in the lab's
    /// codebook study (docs/lab.md) lets the inputs drift from the codes and training fail. Default 0.25.
    /// </summary>
    public float Commitment { get; init; } = 0.25f;

    /// <summary>Largest <see cref="Size"/> accepted.</summary>
    public const int MaxSize = 1 << 20;

    /// <summary>Throws with a message naming the field when a setting is out of range.</summary>
    public CodebookConfig Validate()
    {
        if (Size < 1 || Size > MaxSize) throw new ArgumentException($"model config: codebook size must be in [1, {MaxSize}], got {Size}");
        if (TopK < 1 || TopK > Size) throw new ArgumentException($"model config: codebook top_k must be in [1, size {Size}], got {TopK}");
        if (!Attention && !Mlp) throw new ArgumentException("model config: codebook needs attention or mlp (or both) true");
        if (!(Commitment >= 0 && Commitment <= 100)) throw new ArgumentException($"model config: codebook commitment must be in [0, 100], got {Commitment}");
        return this;
    }
}

/// <summary>The codes one codebook chose in one forward pass (see <see cref="CodebookProbe"/>).</summary>
/// <param name="Scope">The codebook's checkpoint scope, e.g. <c>decoder.layers.1.mlp.codebook</c>.</param>
/// <param name="Codes">(N·k) each position's codes, best first; positions in the pass's (B, T) order, padding included.</param>
/// <param name="Rows">N, the positions of the pass (B·T).</param>
/// <param name="TopK">k.</param>
/// <param name="Inputs">(N, D) the rows the codebook snapped, when the probe keeps them (<see cref="CodebookProbe.KeepInputs"/>); else null.</param>
public sealed record CodebookRecord(string Scope, int[] Codes, int Rows, int TopK, float[]? Inputs = null);

/// <summary>
/// Collects which codes fire in every codebook a forward pass runs through, in the order they run. Set it with
/// <see cref="LanguageModel.Codebooks"/>. Not with activation checkpointing, whose recomputed blocks would record again.
/// </summary>
public sealed class CodebookProbe
{
    /// <summary>What the codebooks recorded, in order.</summary>
    public List<CodebookRecord> Records { get; } = [];

    /// <summary>Keep a copy of each codebook's input rows in <see cref="CodebookRecord.Inputs"/> too. Default false.</summary>
    public bool KeepInputs { get; init; }
}

/// <summary>
/// A data-driven start for a model's codebooks, as the reference code's initialization from activations: codebook by codebook in
/// the order they run, a forward pass the caller gives (over a sample of its data) records the
/// codebook's input rows, and its F codes become F of those rows drawn without replacement (with replacement when there are
/// fewer), scaled by 1/k so that the sum of the k codes nearest a typical row starts near the row. Later codebooks see the
/// outputs of the earlier ones already initialized. Meant for a trained model that gains codebooks and is then fine-tuned.
/// </summary>
public static class CodebookInitialization
{
    /// <summary>Initializes every codebook of <paramref name="model"/> (see the class), <paramref name="forward"/> running the model over its sample; rows drawn from <paramref name="seed"/>.</summary>
    public static void FromInputs(LanguageModel model, Action forward, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(forward);
        var config = model.Config.Codebook ?? throw new InvalidOperationException("the model has no codebooks (model config codebook)");
        var rng = new Random(unchecked((int)seed ^ (int)(seed >> 32) ^ 0x0C0DE));
        var previous = model.Codebooks;
        try
        {
            foreach (var p in model.Parameters.All.Where(p => p.Name.EndsWith(".codebook.weight", StringComparison.Ordinal)).ToList())
            {
                string scope = p.Name[..^".weight".Length];
                var probe = new CodebookProbe { KeepInputs = true };
                model.Codebooks = probe;
                forward();
                model.Codebooks = previous;
                var rows = probe.Records.Where(r => r.Scope == scope).ToList();
                int d = p.Value.Shape[1], f = p.Value.Shape[0], n = rows.Sum(r => r.Rows);
                if (n == 0) throw new InvalidOperationException($"the forward pass never ran codebook {scope}");
                var all = new float[(long)n * d];
                int at = 0;
                foreach (var r in rows)
                {
                    r.Inputs!.CopyTo(all, at);
                    at += r.Inputs!.Length;
                }
                var order = Enumerable.Range(0, n).ToArray();
                rng.Shuffle(order);
                var w = p.Value.AsSpan<float>();
                float scale = 1f / config.TopK;
                for (int j = 0; j < f; j++)
                {
                    int row = j < n ? order[j] : rng.Next(n);
                    for (int e = 0; e < d; e++) w[j * d + e] = all[(long)row * d + e] * scale;
                }
            }
        }
        finally { model.Codebooks = previous; }
    }
}

/// <summary>One codebook (F, D), parameter <c>{scope}.weight</c>: an F32 table that stays F32 when the matrices are converted.</summary>
public sealed class CodebookLayer
{
    readonly ParameterSet _ps;
    readonly string _scope;
    readonly string _w;
    readonly int _k;
    readonly float _commitment;

    internal CodebookLayer(ParameterSet ps, string scope, int width, CodebookConfig c)
    {
        _ps = ps;
        _scope = scope;
        _w = scope + ".weight";
        _k = c.TopK;
        _commitment = c.Commitment;
        // Codes of unit norm at the start: the output, a sum of k codes, starts at the scale of a normalized row.
        ps.CreateF32Table(_w, [c.Size, width], ParameterSet.Init.Normal, 1f / MathF.Sqrt(width));
    }

    /// <summary>a (…, D) → the sum of each row's k nearest codes (…, D); the pass's probe, if any, hears the codes.</summary>
    internal Var Forward(Var a, StackContext ctx)
    {
        var w = Var.Of(_ps[_w]);                                                                     // (F, D)
        if (ctx.Codes is not { } probe) return Ops.Codebook(a, w, _k, _commitment);
        int rows = (int)(a.Value.Length / a.Shape[^1]);
        var codes = new int[rows * _k];                                                               // (N·k)
        var y = Ops.Codebook(a, w, _k, _commitment, codes);
        probe.Records.Add(new CodebookRecord(_scope, codes, rows, _k, probe.KeepInputs ? a.Value.ToFloatArray() : null));
        return y;
    }

    /// <summary>The codebook after a sublayer: <paramref name="layer"/>'s snap of y, or y itself without one.</summary>
    internal static Var Apply(CodebookLayer? layer, Var y, StackContext ctx) => layer is null ? y : layer.Forward(y, ctx);
}
