// Low-rank adapters (LoRA; Hu et al. 2021, arXiv 2106.09685) on a model's linear layers: a frozen
// W (out, in) gains a trainable delta (alpha/r)·B·A with A (r, in) and B (out, r), so that
// y = x·Wᵀ + b + (alpha/r)·(dropout(x)·Aᵀ)·Bᵀ. A starts random and B at zero (PEFT's
// init_lora_weights=True: A from kaiming_uniform(a=√5), i.e. variance 1/(3·in)), so a new adapter
// leaves the model exactly as it was. Names and scaling follow PEFT (src/peft/tuners/lora/layer.py),
// whose file layout Encore.Formats reads and writes (PeftAdapter).
//
// One base serves many adapters: an adapter is a small parameter set of its own over the base's
// LinearLayers, and which adapter a row sees is chosen per forward pass, either one for every row
// (LoraAdapters.Active: training, `generate --adapter`) or one per batch row (RowSelection: the
// server's continuous batch, where rows of different requests share one pass). The base runs once
// for all rows; each run of consecutive rows with the same adapter adds its delta with two small GEMMs.
using System.Numerics.Tensors;
using Encore.Autograd;
using Encore.Tensors;
using Encore.Tensors.Kernels;

namespace Encore.Models;

/// <summary>A linear layer of a model: its scope (the weight's name without ".weight") and its sizes.</summary>
public sealed record LinearModule(string Scope, int InFeatures, int OutFeatures)
{
    /// <summary>The last part of the scope, e.g. <c>q_proj</c>.</summary>
    public string Leaf => Scope[(Scope.LastIndexOf('.') + 1)..];
}

/// <summary>Which linear layers an adapter targets (in self- and cross-attention alike).</summary>
[Flags]
public enum LoraTargets
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>Attention query projections (q_proj).</summary>
    Q = 1,
    /// <summary>Attention key projections (k_proj).</summary>
    K = 2,
    /// <summary>Attention value projections (v_proj).</summary>
    V = 4,
    /// <summary>Attention output projections (o_proj).</summary>
    O = 8,
    /// <summary>The gate projection of a gated feed-forward (gate_proj).</summary>
    Gate = 16,
    /// <summary>The feed-forward's up projection (up_proj).</summary>
    Up = 32,
    /// <summary>The feed-forward's down projection (down_proj).</summary>
    Down = 64,
    /// <summary>Every feed-forward projection.</summary>
    Ffn = Gate | Up | Down,
    /// <summary>Every attention projection.</summary>
    Attention = Q | K | V | O,
    /// <summary>Every projection of the blocks.</summary>
    All = Attention | Ffn,
}

/// <summary>How a new adapter is shaped and scaled; PEFT's <c>LoraConfig</c> fields of the same meaning.</summary>
public sealed record LoraOptions
{
    /// <summary>r, the rank of A (r, in) and B (out, r). Default 8 (PEFT's).</summary>
    public int Rank { get; init; } = 8;

    /// <summary>lora_alpha: the delta is scaled by alpha/r. Default 8 (PEFT's), i.e. scale 1 at rank 8.</summary>
    public float Alpha { get; init; } = 8;

    /// <summary>lora_dropout: dropout on the adapter's input in training. Default 0.</summary>
    public float Dropout { get; init; }

    /// <summary>The layers adapted. Default q and v (PEFT's default for T5 and Llama).</summary>
    public LoraTargets Targets { get; init; } = LoraTargets.Q | LoraTargets.V;

    /// <summary>use_rslora: scale by alpha/√r instead of alpha/r (Kalajdzievski 2023, arXiv 2312.03732). Default false.</summary>
    public bool RankStabilized { get; init; }

    /// <summary>The factor of the delta: alpha/r, or alpha/√r when rank-stabilized.</summary>
    public float Scale => RankStabilized ? Alpha / MathF.Sqrt(Rank) : Alpha / Rank;

    /// <summary>Largest rank accepted.</summary>
    public const int MaxRank = 4096;

    /// <summary>Throws naming the first option out of range; returns this.</summary>
    public LoraOptions Validate()
    {
        if (Rank is < 1 or > MaxRank) throw new ArgumentException($"the LoRA rank must be in [1, {MaxRank}], got {Rank}");
        if (!float.IsFinite(Alpha) || Alpha <= 0) throw new ArgumentException($"lora_alpha must be a positive number, got {Alpha}");
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentException($"lora_dropout must be in [0, 1), got {Dropout}");
        if (Targets == LoraTargets.None || (Targets & ~LoraTargets.All) != 0) throw new ArgumentException($"LoRA targets {Targets} name no known layer");
        return this;
    }

    /// <summary>The target of a layer by its leaf name (q_proj → Q), or None for a layer adapters do not target.</summary>
    public static LoraTargets TargetOf(string leaf) => leaf switch
    {
        "q_proj" => LoraTargets.Q,
        "k_proj" => LoraTargets.K,
        "v_proj" => LoraTargets.V,
        "o_proj" => LoraTargets.O,
        "gate_proj" => LoraTargets.Gate,
        "up_proj" => LoraTargets.Up,
        "down_proj" => LoraTargets.Down,
        _ => LoraTargets.None,
    };

    /// <summary>Parses a comma-separated list: q, k, v, o, gate, up, down, ffn (gate, up, down), attn (q, k, v, o), all.</summary>
    public static LoraTargets ParseTargets(string list)
    {
        ArgumentNullException.ThrowIfNull(list);
        var t = LoraTargets.None;
        foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            t |= part.ToLowerInvariant() switch
            {
                "q" => LoraTargets.Q,
                "k" => LoraTargets.K,
                "v" => LoraTargets.V,
                "o" => LoraTargets.O,
                "gate" => LoraTargets.Gate,
                "up" => LoraTargets.Up,
                "down" => LoraTargets.Down,
                "ffn" or "mlp" => LoraTargets.Ffn,
                "attn" or "attention" => LoraTargets.Attention,
                "all" => LoraTargets.All,
                _ => throw new ArgumentException($"unknown LoRA target '{part}' (q, k, v, o, gate, up, down, ffn, attn, all)"),
            };
        }
        if (t == LoraTargets.None) throw new ArgumentException("no LoRA target given (q, k, v, o, gate, up, down, ffn, attn, all)");
        return t;
    }
}

/// <summary>
/// One low-rank adapter over the linear layers of one model: A (r, in) and B (out, r) per adapted
/// layer, named <c>SCOPE.lora_A.weight</c> and <c>SCOPE.lora_B.weight</c> in its own
/// <see cref="Parameters"/>. Made for a model (<see cref="Create(LanguageModel, LoraOptions, ulong)"/>), it applies to that model only,
/// when chosen through <see cref="LanguageModel.Adapters"/>.
/// </summary>
public sealed class LoraAdapter : IDisposable
{
    readonly (Parameter A, Parameter B)?[] _pairs;   // by the base's linear index
    readonly List<LinearModule> _modules = [];
    readonly List<int> _indices = [];                // the base's linear index of each of _modules

    LoraAdapter(ParameterSet baseSet, LoraOptions options, IEnumerable<int> modules, ulong seed)
    {
        Base = baseSet;
        Options = options.Validate();
        Scale = options.Scale;
        Parameters = new ParameterSet(seed);
        _pairs = new (Parameter, Parameter)?[baseSet.Linears.Count];
        foreach (int i in modules.Order().Distinct())
        {
            var m = baseSet.Linears[i];
            // A as PEFT's kaiming_uniform_(a=√5): U(±1/√in), variance 1/(3·in); drawn normal with that variance.
            var a = Parameters.Create(AName(m.Scope), [options.Rank, m.InFeatures], ParameterSet.Init.Normal, 1f / MathF.Sqrt(3f * m.InFeatures));
            var b = Parameters.Create(BName(m.Scope), [m.OutFeatures, options.Rank], ParameterSet.Init.Zeros);
            // No weight decay: it would pull the delta towards zero, i.e. towards the base (PEFT trains them with the
            // optimizer's decay, but a decayed adapter forgets what it learned; small adapters need no regularizer).
            a.Decay = b.Decay = false;
            _pairs[i] = (a, b);
            _modules.Add(m);
            _indices.Add(i);
        }
        if (_modules.Count == 0) throw new ArgumentException($"the model has no linear layer that LoRA targets {options.Targets} select");
    }

    /// <summary>The parameter set of the model adapted.</summary>
    internal ParameterSet Base { get; }

    /// <summary>Rank, alpha, dropout and targets.</summary>
    public LoraOptions Options { get; }

    /// <summary>The delta's factor (alpha/r).</summary>
    public float Scale { get; }

    /// <summary>The adapter's own parameters (A and B of every adapted layer), in layer order.</summary>
    public ParameterSet Parameters { get; }

    /// <summary>The layers adapted, in the model's order.</summary>
    public IReadOnlyList<LinearModule> Modules => _modules;

    /// <summary>A name for messages and for the server's model ids (e.g. the adapter directory's name).</summary>
    public string Name { get; set; } = "adapter";

    /// <summary>Number of adapter values.</summary>
    public long ParameterCount => Parameters.Count;

    /// <summary>The name of the A matrix of the layer at <paramref name="scope"/>.</summary>
    public static string AName(string scope) => scope + ".lora_A.weight";

    /// <summary>The name of the B matrix of the layer at <paramref name="scope"/>.</summary>
    public static string BName(string scope) => scope + ".lora_B.weight";

    /// <summary>A new adapter (A random from <paramref name="seed"/>, B zero) on the layers of <paramref name="model"/> that <see cref="LoraOptions.Targets"/> select.</summary>
    public static LoraAdapter Create(LanguageModel model, LoraOptions options, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Create(model.Parameters, options, seed);
    }

    internal static LoraAdapter Create(ParameterSet baseSet, LoraOptions options, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(options);
        var targets = options.Validate().Targets;
        var modules = Enumerable.Range(0, baseSet.Linears.Count).Where(i => (LoraOptions.TargetOf(baseSet.Linears[i].Leaf) & targets) != 0);
        return new LoraAdapter(baseSet, options, modules, seed);
    }

    /// <summary>
    /// An adapter on exactly the layers <paramref name="scopes"/> of <paramref name="model"/> (A random, B zero), for a
    /// loader that then writes every value into its parameters' tensors (the tensors, not the parameter objects, are
    /// replaced: the adapter keeps its parameters).
    /// </summary>
    public static LoraAdapter CreateForLoading(LanguageModel model, LoraOptions options, IEnumerable<string> scopes)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scopes);
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var linears = model.Parameters.Linears;
        for (int i = 0; i < linears.Count; i++) index[linears[i].Scope] = i;
        var modules = scopes.Select(s => index.TryGetValue(s, out int i) ? i : throw new ArgumentException($"the model has no linear layer '{s}'")).ToList();
        return new LoraAdapter(model.Parameters, options, modules, 0);
    }

    /// <summary>A and B of the layer at linear index <paramref name="index"/>, or null when it is not adapted.</summary>
    internal (Parameter A, Parameter B)? Pair(int index) => _pairs[index];

    /// <summary>
    /// Adds the delta into the base weights, W += (alpha/r)·B·A (PEFT's merge_and_unload): the model then
    /// computes without the adapter what it computed with it. The base weights must be writable f32.
    /// </summary>
    public void MergeIntoBase()
    {
        for (int j = 0; j < _modules.Count; j++)
        {
            var m = _modules[j];
            var w = Base[m.Scope + ".weight"];
            if (w.Value.DType != DType.F32 || w.Value.Storage.IsReadOnly)
                throw new InvalidOperationException($"merging needs writable f32 base weights; '{w.Name}' is {w.Value.Describe()}{(w.Value.Storage.IsReadOnly ? ", read-only" : "")}");
            var (a, b) = _pairs[_indices[j]]!.Value;
            int r = a.Value.Shape[0];
            // W (out, in) += s · B (out, r) · A (r, in)
            Gemm.Multiply(Transpose.No, Transpose.No, m.OutFeatures, m.InFeatures, r, Scale,
                b.Value.AsReadOnlySpan<float>(), r, a.Value.AsReadOnlySpan<float>(), m.InFeatures, 1f, w.Value.AsSpan<float>(), m.InFeatures);
        }
    }

    /// <summary>Frees the adapter's values.</summary>
    public void Dispose() => Parameters.Dispose();

    /// <summary>
    /// y + s·B(A·dropout(x)) for the layer at <paramref name="index"/>, output y (…, out) of input x (…, in), through
    /// differentiable ops (training: gradients reach A and B, and x; the frozen W gets none).
    /// </summary>
    internal Var AddTo(int index, Var x, Var y, ulong dropoutSeed)
    {
        if (_pairs[index] is not var (a, b)) return y;
        var xa = Options.Dropout > 0 ? Ops.Dropout(x, Options.Dropout, LayerSeed(dropoutSeed, index)) : x;
        var h = Ops.Linear(xa, Var.Of(a));                                  // (…, r)
        var delta = Ops.Linear(h, Var.Of(b));                               // (…, out)
        return Ops.Add(y, Ops.Scale(delta, Scale));
    }

    /// <summary>y[m, out] += s · (x[m, in]·Aᵀ)·Bᵀ over <paramref name="m"/> contiguous rows (inference; no tape).</summary>
    internal void AddInPlace(int index, ReadOnlySpan<float> x, int m, Span<float> y)
    {
        if (_pairs[index] is not var (a, b) || m == 0) return;
        int r = a.Value.Shape[0], k = a.Value.Shape[1], n = b.Value.Shape[0];
        var av = a.Value.AsReadOnlySpan<float>();                              // (r, in)
        var bv = b.Value.AsReadOnlySpan<float>();                              // (out, r)
        if (m <= DirectRows)
        {
            // Decoding: a few rows. Dot products straight from the weights; the GEMM driver's packing and
            // dispatch would cost more than the (m·r·(in + out)) multiply-adds themselves.
            Span<float> h = r <= 256 ? stackalloc float[r] : new float[r];        // (r)
            for (int i = 0; i < m; i++)
            {
                var xi = x.Slice(i * k, k);
                var yi = y.Slice(i * n, n);
                for (int j = 0; j < r; j++) h[j] = Scale * TensorPrimitives.Dot(xi, av.Slice(j * k, k));
                for (int o = 0; o < n; o++) yi[o] += TensorPrimitives.Dot(h, bv.Slice(o * r, r));
            }
            return;
        }
        var hs = Workspace.RentFloats(m * r).AsSpan(0, m * r);                 // (m, r)
        Gemm.Linear(x[..(m * k)], m, WeightMatrix.From(a.Value), hs);
        Gemm.Multiply(Transpose.No, Transpose.Yes, m, n, r, Scale, hs, r, bv, r, 1f, y[..(m * n)], n);
    }

    // Rows up to which AddInPlace takes dot products directly (a decode step of a batch) rather than two GEMMs.
    const int DirectRows = 16;

    // Each layer's dropout mask from the pass's seed and the layer's index (SplitMix64).
    static ulong LayerSeed(ulong seed, int index)
    {
        ulong z = seed ^ (0x4C6F5241UL + (ulong)index * 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>
/// The adapters applied to one model: <see cref="Active"/> for every row of every pass, unless a
/// <see cref="SelectRows"/> scope on the calling thread gives each batch row its own (or none).
/// </summary>
public sealed class LoraAdapters
{
    readonly ParameterSet _base;
    LoraAdapter? _active;

    // The calling thread's per-row choice (set by SelectRows, for one model at a time).
    [ThreadStatic] static LoraAdapters? t_owner;
    [ThreadStatic] static LoraAdapter?[]? t_rows;
    [ThreadStatic] static int t_count;

    internal LoraAdapters(ParameterSet baseSet) => _base = baseSet;

    /// <summary>The adapter every row sees (null: the base alone); it must have been made for this model.</summary>
    public LoraAdapter? Active
    {
        get => _active;
        set
        {
            Check(value);
            _active = value;
        }
    }

    /// <summary>Throws unless <paramref name="adapter"/> (when not null) was made for this model.</summary>
    public void Check(LoraAdapter? adapter)
    {
        if (adapter != null && !ReferenceEquals(adapter.Base, _base))
            throw new ArgumentException($"adapter '{adapter.Name}' was made for another model");
    }

    /// <summary>
    /// Until the scope is disposed, row i of every pass of this model on the calling thread (the first dimension
    /// of each layer's input) sees <paramref name="rows"/>[i] (null: the base alone), for i below
    /// <paramref name="count"/>, instead of <see cref="Active"/>. Inference only. The array is read, not copied,
    /// at every layer: keep it unchanged while the scope lasts.
    /// </summary>
    public RowSelection SelectRows(LoraAdapter?[] rows, int count)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if ((uint)count > (uint)rows.Length) throw new ArgumentOutOfRangeException(nameof(count), $"{count} rows of an array of {rows.Length}");
        for (int i = 0; i < count; i++) Check(rows[i]);
        var scope = new RowSelection(t_owner, t_rows, t_count);
        t_owner = this;
        t_rows = rows;
        t_count = count;
        return scope;
    }

    /// <summary>Restores the row choice that was in force before <see cref="SelectRows"/>; the default value restores nothing.</summary>
    public readonly struct RowSelection : IDisposable
    {
        readonly LoraAdapters? _owner;
        readonly LoraAdapter?[]? _rows;
        readonly int _count;
        readonly bool _made;

        internal RowSelection(LoraAdapters? owner, LoraAdapter?[]? rows, int count)
        {
            _owner = owner;
            _rows = rows;
            _count = count;
            _made = true;
        }

        /// <inheritdoc />
        public void Dispose()
        {
            if (!_made) return;
            t_owner = _owner;
            t_rows = _rows;
            t_count = _count;
        }
    }

    /// <summary>Layer <paramref name="index"/>'s output y (…, out) of input x (…, in) with the adapters in force added.</summary>
    internal Var Apply(int index, Var x, Var y, ulong dropoutSeed)
    {
        if (ReferenceEquals(t_owner, this)) return ApplyRows(index, x, y, t_rows!, t_count);
        var a = _active;
        if (a is null) return y;
        if (Tape.Current != null) return a.AddTo(index, x, y, dropoutSeed);
        int k = x.Shape[^1];
        int m = (int)(x.Value.Length / Math.Max(1, k));
        a.AddInPlace(index, x.Value.AsReadOnlySpan<float>(), m, y.Value.AsSpan<float>());
        return y;
    }

    // Each run of consecutive rows with the same adapter adds its delta in one go.
    static Var ApplyRows(int index, Var x, Var y, LoraAdapter?[] rows, int count)
    {
        if (Tape.Current != null) throw new InvalidOperationException("per-row adapters are for inference; train with LoraAdapters.Active");
        int b = x.Shape[0];
        if (b != count) throw new InvalidOperationException($"a pass of {b} rows under a selection of {count} rows' adapters");
        if (b == 0) return y;
        int k = x.Shape[^1], n = y.Shape[^1];
        int perRow = (int)(x.Value.Length / b / Math.Max(1, k));        // positions per row
        var xs = x.Value.AsReadOnlySpan<float>();
        var ys = y.Value.AsSpan<float>();
        for (int r0 = 0; r0 < b;)
        {
            var a = rows[r0];
            int r1 = r0 + 1;
            while (r1 < b && ReferenceEquals(rows[r1], a)) r1++;
            a?.AddInPlace(index, xs[(r0 * perRow * k)..], (r1 - r0) * perRow, ys[(r0 * perRow * n)..]);
            r0 = r1;
        }
        return y;
    }
}
