using System.Numerics.Tensors;
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
        loss.GradBuffer().AsSpan<float>().Fill(seed);
        RunBackward(loss);
    }

    /// <summary>
    /// Runs the recorded backward steps from <paramref name="output"/> with <paramref name="outputGrad"/>
    /// as its gradient (a segment's backward inside a larger one: activation checkpointing).
    /// </summary>
    internal void BackwardFrom(Var output, ReadOnlySpan<float> outputGrad)
    {
        if (_disposed) throw new ObjectDisposedException(nameof(Tape));
        if (!output.RequiresGrad) return;
        outputGrad.CopyTo(output.GradBuffer().AsSpan<float>());
        RunBackward(output);
    }

    // The recorded steps in reverse, with recording off; the tape is spent afterwards.
    void RunBackward(Var loss)
    {
        _loss = loss;
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

    /// <summary>
    /// The gradient span a writer of v's whole gradient contribution fills: v's gradient itself,
    /// new and not zero-filled, when v has none yet (<paramref name="accumulate"/> false: overwrite it);
    /// otherwise v's gradient to add into (<paramref name="accumulate"/> true). Empty when v needs none.
    /// </summary>
    public static Span<float> GradTarget(this Var v, out bool accumulate)
    {
        accumulate = false;
        if (!v.RequiresGrad) return default;
        if (v.GradStarted)
        {
            accumulate = true;
            return v.GradBuffer().AsSpan<float>();
        }
        return v.StartGrad(zero: false).AsSpan<float>();
    }

    /// <summary>
    /// Starts a whole gradient contribution to v from a kernel that overwrites its output: see
    /// <see cref="GradWrite"/>. Call <see cref="GradWrite.Commit"/> once the kernel has written it.
    /// </summary>
    public static GradWrite BeginGrad(this Var v) => new(v);

    /// <summary>Adds <paramref name="g"/> into v's gradient (a copy when v has none yet); nothing when v needs none.</summary>
    public static void AddGrad(this Var v, ReadOnlySpan<float> g)
    {
        var target = v.GradTarget(out bool accumulate);
        if (!v.RequiresGrad) return;
        if (accumulate) TensorPrimitives.Add(target, g, target);
        else g.CopyTo(target);
    }

    /// <summary>Passes the output's gradient on to <paramref name="input"/> (same element count): adopted without a copy when the input has none yet, else added.</summary>
    public static void PassGrad(this Var input, Var output)
    {
        if (!input.RequiresGrad) return;
        if (!input.GradStarted) input.AdoptGrad(output.Grad!);
        else TensorPrimitives.Add(input.GradBuffer().AsSpan<float>(), output.OutGrad(), input.GradBuffer().AsSpan<float>());
    }
}

/// <summary>
/// Where a backward kernel writes a gradient contribution it computes whole: the input's own
/// gradient buffer when it has none yet (no zero-fill, no extra pass), otherwise a scratch tensor
/// that <see cref="Commit"/> adds in. For an input that needs no gradient the scratch is dropped.
/// </summary>
public ref struct GradWrite
{
    readonly Var _v;
    Tensor? _scratch;

    internal GradWrite(Var v)
    {
        _v = v;
        if (v.RequiresGrad && !v.GradStarted)
        {
            Span = v.StartGrad(zero: false).AsSpan<float>();
            return;
        }
        _scratch = Tensor.Empty(DType.F32, (int)v.Value.Length);
        Span = _scratch.AsSpan<float>();
    }

    /// <summary>The span to write, one element per element of the input.</summary>
    public Span<float> Span { get; }

    /// <summary>Adds the scratch into the input's gradient when one was needed, and frees it.</summary>
    public void Commit()
    {
        if (_scratch is null) return;
        if (_v.RequiresGrad)
        {
            var g = _v.GradBuffer().AsSpan<float>();
            TensorPrimitives.Add(g, _scratch.AsReadOnlySpan<float>(), g);
        }
        _scratch.Dispose();
        _scratch = null;
    }

}
