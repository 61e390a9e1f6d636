using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Autograd;

/// <summary>
/// Reusable outputs for repeated inference passes of the same shapes (a decode step): while a
/// workspace is in use and no tape records, every op takes its output var and scratch arrays from
/// numbered slots instead of allocating, so a steady-state decode loop allocates nothing. Slot i of
/// one pass is slot i of the next; a slot whose shape changed is reallocated. Values from the
/// previous pass are overwritten by the next, so read a pass's results before starting another.
/// Vars from a workspace belong to it: disposing them does nothing; disposing the workspace frees them.
/// </summary>
public sealed class Workspace : IDisposable
{
    [ThreadStatic] static Workspace? s_current;

    readonly List<Var> _vars = [];
    readonly List<float[]> _floats = [];
    readonly List<int[]> _ints = [];
    int _nextVar, _nextFloat, _nextInt;
    Workspace? _previous;
    bool _inUse;

    /// <summary>The workspace ops on this thread draw from, or null.</summary>
    public static Workspace? Current => s_current;

    /// <summary>Bytes of native memory held by the pooled outputs.</summary>
    public long Bytes => _vars.Sum(v => v.Value.ByteLength);

    /// <summary>Starts a pass: slots are handed out from the first again. Dispose the result to end the pass.</summary>
    public Pass Use()
    {
        if (_inUse) throw new InvalidOperationException("this workspace is already in use");
        _inUse = true;
        _nextVar = _nextFloat = _nextInt = 0;
        _previous = s_current;
        s_current = this;
        return new Pass(this);
    }

    /// <summary>The scope of one pass (a struct: starting and ending a pass allocates nothing).</summary>
    public readonly struct Pass(Workspace owner) : IDisposable
    {
        /// <summary>Ends the pass.</summary>
        public void Dispose()
        {
            owner._inUse = false;
            s_current = owner._previous;
            owner._previous = null;
        }
    }

    internal Var Rent(ReadOnlySpan<int> shape)
    {
        if (_nextVar < _vars.Count)
        {
            var v = _vars[_nextVar];
            if (v.Value.Shape.SequenceEqual(shape))
            {
                _nextVar++;
                return v;
            }
            v.DisposePooled();
            v = NewPooled(shape);
            _vars[_nextVar++] = v;
            return v;
        }
        var created = NewPooled(shape);
        _vars.Add(created);
        _nextVar++;
        return created;
    }

    static Var NewPooled(ReadOnlySpan<int> shape) => new(Tensor.Empty(DType.F32, shape.ToArray()), requiresGrad: false, parameter: null, ownsValue: true, pooled: true);

    internal float[] Floats(int length) => Take(_floats, ref _nextFloat, length);

    internal int[] Ints(int length) => Take(_ints, ref _nextInt, length);

    /// <summary>A float array of <paramref name="length"/>: the current workspace's next slot when one is in use and no tape records, else a new array.</summary>
    public static float[] RentFloats(int length) => Tape.Current == null && s_current is { } ws ? ws.Floats(length) : new float[length];

    /// <summary>An int array of <paramref name="length"/>: the current workspace's next slot when one is in use and no tape records, else a new array.</summary>
    public static int[] RentInts(int length) => Tape.Current == null && s_current is { } ws ? ws.Ints(length) : new int[length];

    static T[] Take<T>(List<T[]> slots, ref int next, int length)
    {
        if (next < slots.Count)
        {
            if (slots[next].Length != length) slots[next] = new T[length];
            return slots[next++];
        }
        var a = new T[length];
        slots.Add(a);
        next++;
        return a;
    }

    /// <summary>Frees every pooled output.</summary>
    public void Dispose()
    {
        foreach (var v in _vars) v.DisposePooled();
        _vars.Clear();
        _floats.Clear();
        _ints.Clear();
    }
}
