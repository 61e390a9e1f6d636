using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Encore.Tensors.Kernels;

/// <summary>
/// The vector operations the attention kernels are written against, one struct per width, so a
/// single generic driver (specialized by the JIT for each struct) serves Scalar, Vector128/256/512
/// (STYLE §4). <typeparamref name="TV"/> is the register type: <c>float</c> for the scalar path.
/// </summary>
internal unsafe interface IAttentionIsa<TV> where TV : struct
{
    /// <summary>Lanes per register.</summary>
    static abstract int Count { get; }
    static abstract TV Zero { get; }
    static abstract TV Load(float* p);
    /// <summary>Count int8 values widened to binary32 (exact: int8 → int32 → binary32).</summary>
    static abstract TV LoadInt8(sbyte* p);
    static abstract void Store(float* p, TV v);
    /// <summary>Count values <paramref name="stride"/> floats apart: p[0], p[stride], … (a gather where the CPU has one).</summary>
    static abstract TV LoadStrided(float* p, int stride);
    static abstract TV Splat(float x);
    static abstract TV Add(TV a, TV b);
    static abstract TV Sub(TV a, TV b);
    static abstract TV Mul(TV a, TV b);
    /// <summary>a·b + c, fused where the hardware has FMA.</summary>
    static abstract TV MulAdd(TV a, TV b, TV c);
    static abstract TV Max(TV a, TV b);
    /// <summary>
    /// e^x for x ≤ 0 by <see cref="VectorMath.ExpNonPositive(float)"/>, the same bits at every width: every exponent
    /// here is a score minus its row's running max or log-sum-exp (a rounding above 0 in the backward's
    /// recomputation is still within the formula's range).
    /// </summary>
    static abstract TV Exp(TV x);
    /// <summary>tanh x; the vector paths as 1 − 2/(e^{2x} + 1), exact at ±∞ (e^{2x} = ∞ gives 1, 0 gives −1).</summary>
    static abstract TV Tanh(TV x);
    static abstract float Sum(TV v);
    /// <summary>[Σa, Σb, Σc, Σd] into dst[0..4), the bits of four <see cref="Sum"/>s, in one shared reduction where the width allows it.</summary>
    static abstract void Sum4(TV a, TV b, TV c, TV d, float* dst);
    static abstract float MaxAcross(TV v);
    /// <summary>The running max used as the exponent's origin: −∞ (a row with nothing visible yet) becomes 0, so exp(−∞ − origin) is 0, not NaN.</summary>
    static abstract TV Origin(TV m);
    /// <summary>1/l where l &gt; 0, else 0: a fully masked row (l = 0) gives zeros, not NaN.</summary>
    static abstract TV ReciprocalOrZero(TV l);
}

internal readonly unsafe struct AttentionScalar : IAttentionIsa<float>
{
    public static int Count => 1;
    public static float Zero => 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* p) => *p;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LoadInt8(sbyte* p) => *p;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LoadStrided(float* p, int stride) => *p;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, float v) => *p = v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Splat(float x) => x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sub(float a, float b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Mul(float a, float b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MulAdd(float a, float b, float c) => a * b + c;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Max(float a, float b) => a > b ? a : b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Exp(float x) => VectorMath.ExpNonPositive(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Tanh(float x) => MathF.Tanh(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(float v) => v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(float a, float b, float c, float d, float* dst) { dst[0] = a; dst[1] = b; dst[2] = c; dst[3] = d; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(float v) => v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Origin(float m) => float.IsNegativeInfinity(m) ? 0f : m;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float ReciprocalOrZero(float l) => l > 0 ? 1f / l : 0f;
}

internal readonly unsafe struct AttentionV128 : IAttentionIsa<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> LoadInt8(sbyte* p) => Widen.I8x4(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> LoadStrided(float* p, int stride) => Avx2.IsSupported
        ? Avx2.GatherVector128(p, Vector128.Create(0, 1, 2, 3) * stride, 4)
        : Vector128.Create(p[0], p[stride], p[2 * stride], p[3 * stride]);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector128<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Splat(float x) => Vector128.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Sub(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Mul(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> MulAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Exp(Vector128<float> x) => VectorMath.ExpNonPositive(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Tanh(Vector128<float> x) => Vector128<float>.One - Vector128.Create(2f) / (Vector128.Exp(x + x) + Vector128<float>.One);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> v) => Vector128.Sum(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d, float* dst)
    {
        dst[0] = Vector128.Sum(a); dst[1] = Vector128.Sum(b); dst[2] = Vector128.Sum(c); dst[3] = Vector128.Sum(d);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector128<float> v)
    {
        var h = Vector128.Max(v, Vector128.Shuffle(v, Vector128.Create(2, 3, 0, 1)));
        h = Vector128.Max(h, Vector128.Shuffle(h, Vector128.Create(1, 0, 3, 2)));
        return h.ToScalar();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Origin(Vector128<float> m)
        => Vector128.ConditionalSelect(Vector128.Equals(m, Vector128.Create(float.NegativeInfinity)), Vector128<float>.Zero, m);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ReciprocalOrZero(Vector128<float> l)
        => Vector128.ConditionalSelect(Vector128.GreaterThan(l, Vector128<float>.Zero), Vector128<float>.One / l, Vector128<float>.Zero);
}

internal readonly unsafe struct AttentionV256 : IAttentionIsa<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> LoadInt8(sbyte* p) => Widen.I8x8(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadStrided(float* p, int stride) => Avx2.IsSupported
        ? Avx2.GatherVector256(p, Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) * stride, 4)
        : Vector256.Create(LoadStridedHalf(p, stride), LoadStridedHalf(p + 4 * stride, stride));

    static Vector128<float> LoadStridedHalf(float* p, int stride) => Vector128.Create(p[0], p[stride], p[2 * stride], p[3 * stride]);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector256<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Splat(float x) => Vector256.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Sub(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Mul(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> MulAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Exp(Vector256<float> x) => VectorMath.ExpNonPositive(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Tanh(Vector256<float> x) => Vector256<float>.One - Vector256.Create(2f) / (Vector256.Exp(x + x) + Vector256<float>.One);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> v) => Vector256.Sum(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d, float* dst) => VectorMath.Sum4(a, b, c, d, dst);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector256<float> v) => AttentionV128.MaxAcross(Vector128.Max(v.GetLower(), v.GetUpper()));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Origin(Vector256<float> m)
        => Vector256.ConditionalSelect(Vector256.Equals(m, Vector256.Create(float.NegativeInfinity)), Vector256<float>.Zero, m);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ReciprocalOrZero(Vector256<float> l)
        => Vector256.ConditionalSelect(Vector256.GreaterThan(l, Vector256<float>.Zero), Vector256<float>.One / l, Vector256<float>.Zero);
}

internal readonly unsafe struct AttentionV512 : IAttentionIsa<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> LoadInt8(sbyte* p) => Widen.I8x16(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadStrided(float* p, int stride)
        => Vector512.Create(AttentionV256.LoadStrided(p, stride), AttentionV256.LoadStrided(p + 8 * stride, stride));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector512<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Splat(float x) => Vector512.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Sub(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Mul(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> MulAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Exp(Vector512<float> x) => VectorMath.ExpNonPositive(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Tanh(Vector512<float> x) => Vector512<float>.One - Vector512.Create(2f) / (Vector512.Exp(x + x) + Vector512<float>.One);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> v) => Vector512.Sum(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d, float* dst) => VectorMath.Sum4(a, b, c, d, dst);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector512<float> v) => AttentionV256.MaxAcross(Vector256.Max(v.GetLower(), v.GetUpper()));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Origin(Vector512<float> m)
        => Vector512.ConditionalSelect(Vector512.Equals(m, Vector512.Create(float.NegativeInfinity)), Vector512<float>.Zero, m);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ReciprocalOrZero(Vector512<float> l)
        => Vector512.ConditionalSelect(Vector512.GreaterThan(l, Vector512<float>.Zero), Vector512<float>.One / l, Vector512<float>.Zero);
}

/// <summary>Row-vector helpers over a head dimension of any length: full registers, then a scalar tail.</summary>
internal static unsafe class AttentionMath
{
    /// <summary>Σ a[i]·b[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot<TIsa, TV>(float* a, float* b, int n) where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count, i = 0;
        float s = 0;
        if (c > 1)
        {
            TV acc0 = TIsa.Zero, acc1 = TIsa.Zero;
            for (; i + 2 * c <= n; i += 2 * c)
            {
                acc0 = TIsa.MulAdd(TIsa.Load(a + i), TIsa.Load(b + i), acc0);
                acc1 = TIsa.MulAdd(TIsa.Load(a + i + c), TIsa.Load(b + i + c), acc1);
            }
            for (; i + c <= n; i += c) acc0 = TIsa.MulAdd(TIsa.Load(a + i), TIsa.Load(b + i), acc0);
            s = TIsa.Sum(TIsa.Add(acc0, acc1));
        }
        for (; i < n; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>y[i] += alpha·x[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Axpy<TIsa, TV>(float alpha, float* x, float* y, int n) where TIsa : struct, IAttentionIsa<TV> where TV : struct
    {
        int c = TIsa.Count, i = 0;
        if (c > 1)
        {
            TV va = TIsa.Splat(alpha);
            for (; i + c <= n; i += c) TIsa.Store(y + i, TIsa.MulAdd(va, TIsa.Load(x + i), TIsa.Load(y + i)));
        }
        for (; i < n; i++) y[i] += alpha * x[i];
    }
}

/// <summary>
/// Per-thread scratch for the attention tiles. It lives on the pinned heap, grows on first use
/// and is then reused, so steady-state calls allocate nothing. One kernel unit at a time runs on a
/// thread, so a thread's buffer is never shared.
/// </summary>
internal static unsafe class AttentionScratch
{
    [ThreadStatic] static float[]? t_buffer;

    public static float* Get(long floats)
    {
        var b = t_buffer;
        if (b is null || b.Length < floats)
        {
            long size = Math.Max(floats, 4096);
            if (size > Array.MaxLength) throw new InvalidOperationException($"attention scratch of {size} floats is too large");
            b = GC.AllocateUninitializedArray<float>((int)size, pinned: true);
            t_buffer = b;
        }
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(b));
    }
}
