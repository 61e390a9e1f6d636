using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

public static partial class Ops
{
    // How an op makes its output. Under a tape: a new var owned by the tape, needing a gradient
    // when an input does. With no tape but a workspace: the workspace's next slot (no allocation).
    // Otherwise: a new var owned by the caller. Ops record their backward step from a separate
    // method, so the forward path never allocates a closure.

    internal static Var NewOutput(ReadOnlySpan<int> shape, bool requiresGrad)
    {
        var tape = Tape.Current;
        if (tape == null && Workspace.Current is { } ws) return ws.Rent(shape);
        var v = new Var(Tensor.Empty(DType.F32, shape.ToArray()), requiresGrad && tape != null, parameter: null, ownsValue: true);
        if (tape != null) tape.Own(v);
        else if (t_keepDepth > 0) t_kept!.Add(v);
        return v;
    }

    [ThreadStatic] static List<Var>? t_kept;
    [ThreadStatic] static int t_keepDepth;

    /// <summary>
    /// Until the returned scope ends, every output made on this thread outside a tape and a workspace stays reachable.
    /// Kernels read their inputs through raw spans, which do not keep the owner alive: an intermediate that its caller
    /// no longer references could otherwise be finalized, and its memory freed or handed to another thread, while an
    /// op or a cache copy still reads it. Stacks run each block of a tape-less pass (a prompt pass) inside one, so a
    /// block's intermediates live until the block ends (outputs disposed explicitly are still freed at once). Scopes
    /// nest; after the first, one allocates nothing.
    /// </summary>
    public static KeptOutputs KeepOutputs()
    {
        t_kept ??= [];
        t_keepDepth++;
        return new KeptOutputs(t_kept.Count);
    }

    /// <summary>The scope of <see cref="KeepOutputs"/>.</summary>
    public readonly struct KeptOutputs : IDisposable
    {
        readonly int _start;

        internal KeptOutputs(int start) => _start = start;

        /// <summary>Ends the scope: its outputs are kept only by whatever else references them.</summary>
        public void Dispose()
        {
            t_kept!.RemoveRange(_start, t_kept.Count - _start);
            t_keepDepth--;
        }
    }

    /// <summary>An output shaped like <paramref name="like"/>.</summary>
    internal static Var NewOutput(Var like, bool requiresGrad) => NewOutput(like.Value.Shape, requiresGrad);

    /// <summary>An output shaped like <paramref name="like"/> with its last dimension replaced.</summary>
    internal static Var NewOutputLast(Var like, int last, bool requiresGrad)
    {
        Span<int> shape = stackalloc int[like.Value.Rank];
        like.Value.Shape.CopyTo(shape);
        shape[^1] = last;
        return NewOutput(shape, requiresGrad);
    }

    /// <summary>Wraps an already computed tensor (a view) as an op output.</summary>
    internal static Var WrapOutput(Tensor value, bool requiresGrad)
    {
        var tape = Tape.Current;
        var v = new Var(value, requiresGrad && tape != null, parameter: null, ownsValue: true);
        if (tape != null) tape.Own(v);
        else if (t_keepDepth > 0) t_kept!.Add(v);
        return v;
    }

    static bool Grad(Var a) => Tape.Current != null && a.RequiresGrad;
    static bool Grad(Var a, Var b) => Tape.Current != null && (a.RequiresGrad || b.RequiresGrad);
    static bool Grad(Var a, Var b, Var? c) => Tape.Current != null && (a.RequiresGrad || b.RequiresGrad || c is { RequiresGrad: true });
    static bool Grad(Var a, Var b, Var c, Var? d) => Tape.Current != null && (a.RequiresGrad || b.RequiresGrad || c.RequiresGrad || d is { RequiresGrad: true });

    /// <summary>Scratch floats: a workspace slot when one is in use without a tape, else a new array (kept by backward).</summary>
    static float[] Scratch(int length) => Workspace.RentFloats(length);

    static void Record(Var output, Action<Var> backward) => Tape.Current!.Record(output, backward);
}
