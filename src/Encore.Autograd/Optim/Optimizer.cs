using Encore.Tensors;

namespace Encore.Autograd.Optim;

/// <summary>
/// Updates parameters from their gradients. The learning rate is set per step (from a
/// <see cref="LrSchedule"/>); the state (moments, step count) is saved and restored with a
/// checkpoint through <see cref="SaveState"/> and <see cref="LoadState"/>, so a resumed run
/// continues bit-identically.
/// </summary>
public abstract class Optimizer : IDisposable
{
    readonly Dictionary<string, Tensor> _state = new(StringComparer.Ordinal);

    protected Optimizer(IEnumerable<Parameter> parameters)
    {
        Parameters = parameters.ToArray();
        var dup = Parameters.GroupBy(p => p.Name).FirstOrDefault(g => g.Count() > 1);
        if (dup != null) throw new ArgumentException($"parameter name '{dup.Key}' appears twice", nameof(parameters));
    }

    /// <summary>The parameters updated.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Optimizer steps taken so far.</summary>
    public long Step { get; private set; }

    /// <summary>Learning rate of the next step.</summary>
    public double LearningRate { get; set; }

    /// <summary>
    /// Applies one update to every trainable parameter that has a gradient. A parameter that is not
    /// trainable in this step (frozen, e.g. during a cross-attention-only warm-up) is left as it is
    /// and counts the step as sat out (<see cref="StepOf"/>).
    /// </summary>
    public void Update()
    {
        Step++;
        foreach (var p in Parameters)
        {
            if (!p.Trainable)
            {
                State(p, FrozenSteps, 1)[0]++;
                continue;
            }
            if (p.Grad == null) continue;
            Update(p, p.Value.AsSpan<float>(), p.Grad.AsReadOnlySpan<float>());
        }
    }

    // State slot counting the steps a parameter sat out frozen; one f32 (exact up to 2^24 steps), saved with the moments.
    const string FrozenSteps = "frozen_steps";

    /// <summary>
    /// The updates <paramref name="p"/> has had, this one included: <see cref="Step"/> less the steps it
    /// sat out frozen. Bias corrections count these, as PyTorch's per-parameter <c>state["step"]</c>
    /// does, so a parameter unfrozen after k steps starts its moments as a fresh one would instead of
    /// taking an uncorrected first step about 3× too large (AdamW: m̂/√v̂ = 0.1·g / √(0.001·g²)).
    /// </summary>
    protected long StepOf(Parameter p) => HasState(p, FrozenSteps) ? Step - (long)State(p, FrozenSteps, 1)[0] : Step;

    /// <summary>Updates one parameter; <see cref="Step"/> already counts this step (1-based).</summary>
    protected abstract void Update(Parameter p, Span<float> w, ReadOnlySpan<float> g);

    /// <summary>Zeroes every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters) p.ZeroGrad();
    }

    /// <summary>A state tensor named <paramref name="slot"/> for parameter <paramref name="p"/>, zero-filled on first use.</summary>
    protected Span<float> State(Parameter p, string slot, params int[] shape) => StateTensor(p, slot, DType.F32, shape).AsSpan<float>();

    /// <summary>
    /// A bfloat16 state tensor (its bits) of the parameter's shape, zero-filled on first use. One restored
    /// from a checkpoint in binary32 is rounded to nearest once (and a bfloat16 one asked for as
    /// binary32 by <see cref="State"/> is widened exactly), so a run can resume with the other storage.
    /// </summary>
    protected Span<ushort> StateBFloat16(Parameter p, string slot) => StateTensor(p, slot, DType.BF16, []).AsSpan<ushort>();

    Tensor StateTensor(Parameter p, string slot, DType dtype, int[] shape)
    {
        string key = p.Name + "." + slot;
        if (!_state.TryGetValue(key, out var t))
        {
            t = Tensor.Zeros(dtype, shape.Length == 0 ? p.Value.Shape.ToArray() : shape);
            _state[key] = t;
        }
        else if (t.DType != dtype)
        {
            var converted = t.To(dtype);
            t.Dispose();
            _state[key] = t = converted;
        }
        return t;
    }

    /// <summary>True once <paramref name="slot"/> exists for <paramref name="p"/>.</summary>
    protected bool HasState(Parameter p, string slot) => _state.ContainsKey(p.Name + "." + slot);

    /// <summary>The state to checkpoint: the step count, and each state tensor by "parameter.slot" name.</summary>
    public (long Step, IReadOnlyDictionary<string, Tensor> Tensors) SaveState() => (Step, _state);

    /// <summary>Restores what <see cref="SaveState"/> returned (the tensors are copied).</summary>
    public void LoadState(long step, IReadOnlyDictionary<string, Tensor> tensors)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        var names = new HashSet<string>(Parameters.Select(p => p.Name), StringComparer.Ordinal);
        foreach (var (key, t) in tensors)
        {
            int dot = key.LastIndexOf('.');
            if (dot <= 0 || !names.Contains(key[..dot]))
                throw new ArgumentException($"optimizer state '{key}' does not belong to any parameter of this model");
            if (t.DType is not (DType.F32 or DType.BF16)) throw new ArgumentException($"optimizer state '{key}' must be f32 or bf16, got {t.Describe()}");
        }
        foreach (var t in _state.Values) t.Dispose();
        _state.Clear();
        foreach (var (key, t) in tensors) _state[key] = t.Clone();
        Step = step;
    }

    /// <summary>Frees the state.</summary>
    public void Dispose()
    {
        foreach (var t in _state.Values) t.Dispose();
        _state.Clear();
        GC.SuppressFinalize(this);
    }
}
