using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

/// <summary>
/// Records operations for reverse-mode differentiation. Ops check <see cref="Current"/> (one
/// thread-static read): with no tape they only compute, so inference pays nothing for autograd.
/// Each op that produces a var needing a gradient appends its backward step; the list is a
/// topological order by construction, so <see cref="Backward"/> runs it in reverse.
/// The tape owns every var made while it is current and frees them when disposed: one training
/// step = one tape, and its activations are released as soon as the step is done.
/// </summary>
public sealed class Tape : IDisposable
{
    [ThreadStatic] static Tape? s_current;

    readonly Tape? _previous;
    readonly List<Action> _backward = [];
    readonly List<Var> _owned = [];
    Var? _loss;
    bool _disposed;

    /// <summary>
    /// Free each activation as soon as backward is done with it, so the peak memory of a step is
    /// the forward's activations, not forward plus all gradients. Default true; turn it off to read
    /// intermediate values (other than the loss) after <see cref="Backward"/>.
    /// </summary>
    public bool ReleaseActivations { get; set; } = true;

    Tape()
    {
        _previous = s_current;
        s_current = this;
    }

    /// <summary>The tape recording on this thread, or null.</summary>
    public static Tape? Current => s_current;

    /// <summary>Starts recording on this thread until the tape is disposed.</summary>
    public static Tape Record() => new();

    /// <summary>Backward steps recorded so far.</summary>
    public int Count => _backward.Count;

    internal void Own(Var v) => _owned.Add(v);

    /// <summary>
    /// Records the backward step of an op whose output <paramref name="output"/> needs a gradient.
    /// The step reads the output's gradient through <see cref="Var.Grad"/>; afterwards the output's
    /// gradient (and, with <see cref="ReleaseActivations"/>, its value) is freed.
    /// </summary>
    internal void Record(Var output, Action<Var> backward) => _backward.Add(() =>
    {
        if (output.Grad != null) backward(output);
        output.Release(ReleaseActivations && output != _loss);
    });

    /// <summary>
    /// Back-propagates from <paramref name="loss"/> (a scalar, or any shape with the seed gradient
    /// <paramref name="seed"/>, default all ones), accumulating into every var's and parameter's
    /// gradient. Recording stops during the pass. Can be called once per tape.
    /// </summary>
    public void Backward(Var loss, float seed = 1f)
    {
        if (_disposed) throw new ObjectDisposedException(nameof(Tape));
        if (!loss.RequiresGrad) throw new InvalidOperationException("the loss does not depend on any trainable parameter recorded on this tape");
        _loss = loss;
        var g = loss.GradBuffer().AsSpan<float>();
        g.Fill(seed);
        var saved = s_current;
        s_current = null;
        try
        {
            for (int i = _backward.Count - 1; i >= 0; i--)
            {
                _backward[i]();
                _backward[i] = null!;
            }
        }
        finally
        {
            s_current = saved;
            _backward.Clear();
        }
    }

    /// <summary>Stops recording and frees every var made under this tape.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (s_current == this) s_current = _previous;
        foreach (var v in _owned) v.Dispose();
        _owned.Clear();
        _backward.Clear();
    }

    /// <summary>Runs <paramref name="body"/> with recording off (nested inside a tape: its vars are still owned by nobody).</summary>
    public static T NoGrad<T>(Func<T> body)
    {
        var saved = s_current;
        s_current = null;
        try { return body(); }
        finally { s_current = saved; }
    }
}

/// <summary>Adds into a var's gradient.</summary>
internal static class GradExtensions
{
    /// <summary>The gradient span to accumulate into, or empty when the var needs none.</summary>
    public static Span<float> GradSpan(this Var v) => v.RequiresGrad ? v.GradBuffer().AsSpan<float>() : default;

    /// <summary>The output gradient as a read-only span.</summary>
    public static ReadOnlySpan<float> OutGrad(this Var v) => v.Grad!.AsReadOnlySpan<float>();

    /// <summary>The value as a read-only span (must be F32 contiguous).</summary>
    public static ReadOnlySpan<float> Data(this Var v) => v.Value.AsReadOnlySpan<float>();

}
