using System.Runtime.CompilerServices;

namespace Encore.Tensors.Kernels;

/// <summary>Which dimensions of a head RoPE rotates together.</summary>
public enum RopeLayout
{
    /// <summary>
    /// Pairs (x[i], x[i + d/2]): HF Llama, GPT-NeoX and Qwen's <c>rotate_half</c>, the layout of
    /// checkpoints converted to HF. The default.
    /// </summary>
    HalfSplit = 0,
    /// <summary>Adjacent pairs (x[2i], x[2i+1]): GPT-J and Meta's original Llama code (complex multiply).</summary>
    Interleaved = 1,
}

/// <summary>
/// Rotary position embedding settings (Su et al. 2021, RoFormer). Pair i of the d rotary dimensions
/// turns by the angle (p / <see cref="LinearScale"/>)·θ'^(−2i/d), θ' = <see cref="Theta"/>·s^(d/(d−2))
/// with s = <see cref="NtkScale"/>. <c>default</c> is plain RoPE with θ = 10000 over the whole head.
/// </summary>
public readonly record struct RopeOptions
{
    readonly double _theta, _ntk, _linear;

    /// <summary>θ, the base of the frequencies. Default 10000 (Llama 3 uses 500000, Qwen2 1000000).</summary>
    public double Theta { get => _theta == 0 ? 10000 : _theta; init => _theta = value; }

    /// <summary>d, the leading dimensions of each head that rotate (partial rotary, e.g. GPT-J, Phi); the rest pass through. Default 0: the whole head.</summary>
    public int RotaryDims { get; init; }

    /// <summary>Pairing of dimensions. Default <see cref="RopeLayout.HalfSplit"/>.</summary>
    public RopeLayout Layout { get; init; }

    /// <summary>
    /// s of NTK-aware scaling (bloc97, 2023): the base becomes θ·s^(d/(d−2)), stretching the low
    /// frequencies by about s while keeping the highest one. Default 1 (none).
    /// </summary>
    public double NtkScale { get => _ntk == 0 ? 1 : _ntk; init => _ntk = value; }

    /// <summary>Linear position interpolation (Chen et al. 2023; HF <c>rope_scaling {"type": "linear"}</c>): positions are divided by this. Default 1.</summary>
    public double LinearScale { get => _linear == 0 ? 1 : _linear; init => _linear = value; }
}

/// <summary>
/// Rotary position embedding applied in place to x of shape (rows, heads, headDim), row-major, where
/// every row is one token with its own position (rows = T, or B·T with positions per token; a (T, D)
/// input is heads = 1). The first d = RotaryDims values of each head rotate, the rest are untouched.
/// The forward rotation turns by +angle; the inverse (the backward pass, dx = R(−angle)·dy) by −angle.
/// Rotations use separate multiplies and adds (no FMA), so every SIMD width is bit-identical to the
/// scalar path.
/// </summary>
public static unsafe class Rope
{
    /// <summary>Rotates x in place by the angles of integer <paramref name="positions"/> (one per row), from the cache.</summary>
    public static void Apply(RopeCache cache, Span<float> x, int rows, int heads, ReadOnlySpan<int> positions)
        => Run(cache, x, rows, heads, positions, default, 1f);

    /// <summary>Inverse of <see cref="Apply(RopeCache, Span{float}, int, int, ReadOnlySpan{int})"/> (rotation by −angle), the RoPE backward.</summary>
    public static void ApplyInverse(RopeCache cache, Span<float> x, int rows, int heads, ReadOnlySpan<int> positions)
        => Run(cache, x, rows, heads, positions, default, -1f);

    /// <summary>
    /// Rotates x in place by the angles of fractional <paramref name="positions"/> (one per row), computed
    /// per row from the cache's inverse frequencies (in double, as the tables are); for positions such as
    /// <see cref="CenteredPositions"/>. The cache's tables are not used, so its MaxPositions may be 0.
    /// To reuse the angles across calls, build a cache of the positions themselves
    /// (<see cref="RopeCache(int, ReadOnlySpan{float}, RopeOptions)"/>) and pass row indices.
    /// </summary>
    public static void Apply(RopeCache cache, Span<float> x, int rows, int heads, ReadOnlySpan<float> positions)
        => Run(cache, x, rows, heads, default, positions, 1f);

    /// <summary>Inverse of <see cref="Apply(RopeCache, Span{float}, int, int, ReadOnlySpan{float})"/>.</summary>
    public static void ApplyInverse(RopeCache cache, Span<float> x, int rows, int heads, ReadOnlySpan<float> positions)
        => Run(cache, x, rows, heads, default, positions, -1f);

    /// <summary>
    /// The encoder positions of "Return of the Encoder" (arXiv 2501.16273): p_i = i − (S − 1)/2 for a
    /// source of length S, symmetric around the middle (half-integers for even S).
    /// </summary>
    public static void CenteredPositions(int length, Span<float> positions)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (positions.Length < length) throw new ArgumentException($"RoPE: {length} positions need a span of {length}, got {positions.Length}", nameof(positions));
        float center = (length - 1) / 2f;
        for (int i = 0; i < length; i++) positions[i] = i - center;
    }

    /// <summary>
    /// The scalar specification: each pair rotated in double by the angle computed from
    /// <paramref name="options"/> directly, without tables; <paramref name="inverse"/> turns by −angle.
    /// </summary>
    public static void Reference(RopeOptions options, int headDim, Span<float> x, int rows, int heads, ReadOnlySpan<float> positions, bool inverse)
    {
        int d = options.RotaryDims == 0 ? headDim : options.RotaryDims, half = d / 2;
        var inv = RopeCache.InverseFrequencies(options, d);
        double sign = inverse ? -1 : 1;
        for (int r = 0; r < rows; r++)
        {
            for (int h = 0; h < heads; h++)
            {
                var head = x.Slice((r * heads + h) * headDim, headDim);
                for (int i = 0; i < half; i++)
                {
                    double a = positions[r] / options.LinearScale * inv[i];
                    double c = Math.Cos(a), s = sign * Math.Sin(a);
                    int i0 = options.Layout == RopeLayout.Interleaved ? 2 * i : i;
                    int i1 = options.Layout == RopeLayout.Interleaved ? 2 * i + 1 : i + half;
                    double x0 = head[i0], x1 = head[i1];
                    head[i0] = (float)(x0 * c - x1 * s);
                    head[i1] = (float)(x1 * c + x0 * s);
                }
            }
        }
    }

    static void Run(RopeCache cache, Span<float> x, int rows, int heads, ReadOnlySpan<int> ipos, ReadOnlySpan<float> fpos, float sign)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(heads);
        long n = (long)rows * heads * cache.HeadDim;
        if (x.Length < n) throw new ArgumentException($"RoPE: x needs {n} values ({rows}×{heads}×{cache.HeadDim}), got {x.Length}", nameof(x));
        bool useInts = fpos.IsEmpty;
        int count = useInts ? ipos.Length : fpos.Length;
        if (count < rows) throw new ArgumentException($"RoPE: {rows} rows need {rows} positions, got {count}", "positions");
        for (int r = 0; r < rows; r++)
        {
            if (useInts && (uint)ipos[r] >= (uint)cache.MaxPositions)
                throw new ArgumentException($"RoPE: position {ipos[r]} (row {r}) is outside the cache's [0, {cache.MaxPositions})", "positions");
            if (!useInts && !float.IsFinite(fpos[r]))
                throw new ArgumentException($"RoPE: position {fpos[r]} (row {r}) is not finite", "positions");
        }
        fixed (float* px = x, pf = fpos, cos = cache.Cos, sin = cache.Sin, cos2 = cache.CosPairs, sin2 = cache.SinPairs)
        fixed (int* pi = ipos)
        {
            var rotate = new RotateRows
            {
                X = px, IntPos = useInts ? pi : null, FloatPos = pf, Cos = cos, Sin = sin, CosPairs = cos2, SinPairs = sin2, Cache = cache,
                Heads = heads, HeadDim = cache.HeadDim, Dims = cache.RotaryDims,
                Interleaved = cache.Options.Layout == RopeLayout.Interleaved, Sign = sign,
            };
            RowDriver.RunRows(rotate, rows, (long)heads * cache.HeadDim, Simd.Current);
        }
    }

    // Rows [r0, r1): each row's angles (from the tables, or computed for a float position into scratch
    // shared by the range), then every head of the row rotated by TRotation.
    struct RotateRows : IRangeOperator
    {
        public float* X, FloatPos, Cos, Sin, CosPairs, SinPairs;
        public int* IntPos;
        public RopeCache Cache;
        public int Heads, HeadDim, Dims;
        public bool Interleaved;
        public float Sign;

        public readonly void Range<TV>(int r0, int r1) where TV : unmanaged, IVec<TV> => Rows<VectorRotation<TV>>(r0, r1);

        public readonly void RangeScalar(int r0, int r1) => Rows<ScalarRotation>(r0, r1);

        readonly void Rows<TRotation>(int r0, int r1) where TRotation : struct, IRotation
        {
            int half = Dims / 2;
            FloatTables? tables = null;
            for (int r = r0; r < r1; r++)
            {
                float* cos, sin, cos2, sin2;
                if (IntPos != null)
                {
                    int p = IntPos[r];
                    cos = Cos + (long)p * half;
                    sin = Sin + (long)p * half;
                    cos2 = CosPairs + (long)p * Dims;
                    sin2 = SinPairs + (long)p * Dims;
                }
                else
                {
                    // Float positions: the cache's kept tables of this position (computed once, exactly as
                    // RopeCache computes its own), or, outside the kept range, tables computed once per
                    // call in this task's scratch.
                    cos = Cache.FloatRow(FloatPos[r]);
                    if (cos == null)
                    {
                        tables ??= (t_tables ??= new FloatTables()).Start(3 * Dims);
                        cos = tables.For(FloatPos[r], out bool fresh);
                        if (fresh) Cache.FillFloatRow(FloatPos[r], cos);
                    }
                    sin = cos + half;
                    cos2 = cos + Dims;
                    sin2 = cos + 2 * Dims;
                }
                float* row = X + (long)r * Heads * HeadDim;
                for (int h = 0; h < Heads; h++)
                    TRotation.Rotate(row + (long)h * HeadDim, Dims, Interleaved, cos, sin, cos2, sin2, Sign);
            }
        }
    }

    [ThreadStatic] static FloatTables? t_tables;

    // Angle tables of the distinct float positions one task has seen in the current call, in pinned
    // memory (one table of `stride` floats per position; at most MaxTables, then it starts over).
    sealed class FloatTables
    {
        const int MaxTables = 4096;
        readonly Dictionary<int, int> _slots = [];
        float[] _data = [];
        int _stride;

        public FloatTables Start(int stride)
        {
            _slots.Clear();
            _stride = stride;
            return this;
        }

        public float* For(float position, out bool fresh)
        {
            int key = BitConverter.SingleToInt32Bits(position);
            if (_slots.TryGetValue(key, out int slot))
            {
                fresh = false;
                return Base + (long)slot * _stride;
            }
            if (_slots.Count == MaxTables) _slots.Clear();
            slot = _slots.Count;
            long need = (long)(slot + 1) * _stride;
            if (_data.Length < need)
            {
                var grown = GC.AllocateUninitializedArray<float>((int)Math.Min((long)MaxTables * _stride, Math.Max(need, 2L * _data.Length)), pinned: true);
                _data.AsSpan().CopyTo(grown);
                _data = grown;
            }
            _slots[key] = slot;
            fresh = true;
            return Base + (long)slot * _stride;
        }

        float* Base => (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(_data));
    }

    // How one head turns: the vector path at one width, or the scalar twin.
    interface IRotation
    {
        static abstract void Rotate(float* x, int dims, bool interleaved, float* cos, float* sin, float* cos2, float* sin2, float sign);
    }

    readonly struct VectorRotation<TV> : IRotation where TV : unmanaged, IVec<TV>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Rotate(float* x, int dims, bool interleaved, float* cos, float* sin, float* cos2, float* sin2, float sign)
            => Rope.Rotate<TV>(x, dims, interleaved, cos, sin, cos2, sin2, sign);
    }

    readonly struct ScalarRotation : IRotation
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Rotate(float* x, int dims, bool interleaved, float* cos, float* sin, float* cos2, float* sin2, float sign)
            => RotateScalar(x, dims, interleaved, cos, sin, sign);
    }

    // out0 = x0·c − x1·(σs), out1 = x1·c + x0·(σs) with σ = ±1 (exact), each product rounded, then the sum:
    // the same operations in the same order at every width.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Rotate<TV>(float* x, int dims, bool interleaved, float* cos, float* sin, float* cos2, float* sin2, float sign)
        where TV : unmanaged, IVec<TV>
    {
        int n = TV.Count, i = 0;
        var vsign = TV.Splat(sign);
        if (interleaved)
        {
            // x·C + swap(x)·S with C = (c, c), S = (−s, s) per pair.
            for (; i + n <= dims; i += n)
            {
                var v = TV.Load(x + i);
                TV.Store(v * TV.Load(cos2 + i) + TV.SwapPairs(v) * (TV.Load(sin2 + i) * vsign), x + i);
            }
            for (i /= 2; i < dims / 2; i++)
            {
                float c = cos[i], s = sin[i] * sign, x0 = x[2 * i], x1 = x[2 * i + 1];
                x[2 * i] = x0 * c - x1 * s;
                x[2 * i + 1] = x1 * c + x0 * s;
            }
            return;
        }
        int half = dims / 2;
        float* hi = x + half;
        for (; i + n <= half; i += n)
        {
            var x0 = TV.Load(x + i);
            var x1 = TV.Load(hi + i);
            var c = TV.Load(cos + i);
            var s = TV.Load(sin + i) * vsign;
            TV.Store(x0 * c - x1 * s, x + i);
            TV.Store(x1 * c + x0 * s, hi + i);
        }
        for (; i < half; i++)
        {
            float c = cos[i], s = sin[i] * sign, x0 = x[i], x1 = hi[i];
            x[i] = x0 * c - x1 * s;
            hi[i] = x1 * c + x0 * s;
        }
    }

    static void RotateScalar(float* x, int dims, bool interleaved, float* cos, float* sin, float sign)
    {
        int half = dims / 2;
        for (int i = 0; i < half; i++)
        {
            int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
            float c = cos[i], s = sin[i] * sign, x0 = x[i0], x1 = x[i1];
            x[i0] = x0 * c - x1 * s;
            x[i1] = x1 * c + x0 * s;
        }
    }
}
