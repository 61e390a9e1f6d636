using Encore.Autograd;
using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Models;

/// <summary>
/// The parameters of a model by checkpoint name. Layers register their parameters here while they
/// are built (scope + ".q_proj.weight"); loading and saving go through the same names.
/// </summary>
public sealed class ParameterSet : IDisposable
{
    readonly Dictionary<string, Parameter> _byName = new(StringComparer.Ordinal);
    readonly List<Parameter> _ordered = [];
    readonly HashSet<string> _f32Tables = new(StringComparer.Ordinal);
    readonly ulong _seed;
    readonly Dictionary<string, (Init Init, float Std)> _pending = new(StringComparer.Ordinal);
    readonly Dictionary<string, Filler> _fillers = new(StringComparer.Ordinal);
    bool _defer;

    /// <summary>
    /// An empty set whose new parameters are initialized from <paramref name="seed"/>; with
    /// <paramref name="deferInitialization"/>, they are allocated untouched until
    /// <see cref="InitializeRemaining"/> (those assigned before then never are).
    /// </summary>
    public ParameterSet(ulong seed = 0, bool deferInitialization = false)
    {
        _seed = seed;
        _defer = deferInitialization;
    }

    /// <summary>
    /// Initializes the parameters registered under deferred initialization that have not been assigned
    /// since, exactly as a set without deferral would have, and ends the deferral.
    /// </summary>
    public void InitializeRemaining()
    {
        foreach (var (name, (init, std)) in _pending) Fill(_byName[name].Value.AsSpan<float>(), init, std, name);
        _pending.Clear();
        _defer = false;
    }

    /// <summary>Parameters in registration order.</summary>
    public IReadOnlyList<Parameter> All => _ordered;

    /// <summary>The parameter named <paramref name="name"/>.</summary>
    public Parameter this[string name] => _byName.TryGetValue(name, out var p) ? p
        : throw new KeyNotFoundException($"the model has no parameter '{name}'");

    /// <summary>True when a parameter named <paramref name="name"/> exists.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Total number of values.</summary>
    public long Count => _ordered.Sum(p => p.Length);

    readonly List<LinearModule> _linears = [];

    /// <summary>
    /// The linear layers built on this set, in build order: what low-rank adapters can target
    /// (<see cref="LoraAdapter"/>). Index i is the layer's own index.
    /// </summary>
    public IReadOnlyList<LinearModule> Linears => _linears;

    /// <summary>Registers a linear layer's module; returns its index in <see cref="Linears"/>.</summary>
    internal int RegisterLinear(string scope, int inFeatures, int outFeatures)
    {
        _linears.Add(new LinearModule(scope, inFeatures, outFeatures));
        return _linears.Count - 1;
    }

    /// <summary>The adapters of the model built on this set (null until one is made for it).</summary>
    internal LoraAdapters? Lora;

    /// <summary>How a new parameter starts.</summary>
    public enum Init
    {
        /// <summary>Normal(0, std).</summary>
        Normal,
        /// <summary>All ones (norm gains).</summary>
        Ones,
        /// <summary>All zeros (biases).</summary>
        Zeros,
    }

    /// <summary>Registers a new F32 parameter.</summary>
    public Parameter Create(string name, int[] shape, Init init, float std = 0.02f)
    {
        if (_byName.ContainsKey(name)) throw new InvalidOperationException($"parameter '{name}' is registered twice");
        var t = Tensor.Empty(DType.F32, shape);
        if (_defer) _pending[name] = (init, std);
        else Fill(t.AsSpan<float>(), init, std, name);
        var p = new Parameter(name, t);
        _byName[name] = p;
        _ordered.Add(p);
        return p;
    }

    void Fill(Span<float> s, Init init, float std, string name)
    {
        if (_fillers.TryGetValue(name, out var filler))
        {
            filler(s, _seed ^ Hash(name));
            return;
        }
        switch (init)
        {
            case Init.Ones: s.Fill(1); break;
            case Init.Zeros: s.Clear(); break;
            default: FillNormal(s, std, _seed ^ Hash(name)); break;
        }
    }

    /// <summary>
    /// Registers a small table that its op gathers from as f32 only (a relative-position bias): unlike
    /// the other matrices it stays f32 when the weights are converted or mapped for inference.
    /// </summary>
    public Parameter CreateF32Table(string name, int[] shape, Init init, float std = 0.02f)
    {
        var p = Create(name, shape, init, std);
        _f32Tables.Add(name);
        return p;
    }

    /// <summary>Writes a new parameter's initial values; <paramref name="seed"/> is the parameter's own (set seed and name).</summary>
    public delegate void Filler(Span<float> values, ulong seed);

    /// <summary>
    /// Registers a small f32 table (as <see cref="CreateF32Table(string, int[], Init, float)"/>) whose initial
    /// values <paramref name="fill"/> writes, deferred like every other initialization.
    /// </summary>
    public Parameter CreateF32Table(string name, int[] shape, Filler fill)
    {
        ArgumentNullException.ThrowIfNull(fill);
        _fillers[name] = fill;
        return CreateF32Table(name, shape, Init.Zeros);
    }

    /// <summary>Normal(0, <paramref name="std"/>) values from <paramref name="seed"/>, as <see cref="Init.Normal"/> draws them.</summary>
    public static void AddNormal(Span<float> values, float std, ulong seed)
    {
        var noise = new float[values.Length];
        FillNormal(noise, std, seed);
        for (int i = 0; i < values.Length; i++) values[i] += noise[i];
    }

    /// <summary>
    /// True for parameters that may stay in a compact dtype (bf16, f16, q8_0) for inference: the
    /// matrices read by linear layers and embedding lookups. Norm gains, biases and the tables of
    /// <see cref="CreateF32Table(string, int[], Init, float)"/> are small and read as f32.
    /// </summary>
    public bool MayStayCompact(string name) => this[name].Value.Rank == 2 && !_f32Tables.Contains(name);

    /// <summary>
    /// Replaces the values of <paramref name="name"/> with <paramref name="value"/> (same shape); the
    /// set owns the new tensor. A non-F32 tensor (e.g. memory-mapped bf16 weights) makes the
    /// parameter inference-only.
    /// </summary>
    public void Assign(string name, Tensor value)
    {
        var old = this[name];
        if (!old.Value.Shape.SequenceEqual(value.Shape))
            throw new ArgumentException($"parameter '{name}': checkpoint shape {value.Describe()} does not match the model's {old.Value.Describe()}");
        var p = new Parameter(name, value, old.Decay);
        _pending.Remove(name);
        _byName[name] = p;
        _ordered[_ordered.IndexOf(old)] = p;
        old.Dispose();
    }

    // Normal values from a counter-based generator: deterministic per (seed, name, index), and
    // independent of initialization order.
    static void FillNormal(Span<float> s, float std, ulong seed)
    {
        for (int i = 0; i < s.Length; i += 2)
        {
            ulong a = SplitMix(seed + (ulong)i * 0x9E3779B97F4A7C15UL);
            ulong b = SplitMix(a ^ 0xD1B54A32D192ED03UL);
            double u1 = ((a >> 11) + 1) * (1.0 / 9007199254740993.0);   // (0, 1]
            double u2 = (b >> 11) * (1.0 / 9007199254740992.0);
            double r = Math.Sqrt(-2 * Math.Log(u1));
            s[i] = (float)(std * r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < s.Length) s[i + 1] = (float)(std * r * Math.Sin(2 * Math.PI * u2));
        }
    }

    static ulong SplitMix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    static ulong Hash(string s)
    {
        ulong h = 14695981039346656037UL;   // FNV-1a
        foreach (char c in s) h = (h ^ c) * 1099511628211UL;
        return h;
    }

    /// <summary>Frees every parameter.</summary>
    public void Dispose()
    {
        foreach (var p in _ordered) p.Dispose();
        _ordered.Clear();
        _byName.Clear();
    }
}
