using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Encore.Tensors.Kernels;

/// <summary>
/// A float vector of one fixed width, so a row kernel is written once, generic over
/// <see cref="V128"/>, <see cref="V256"/> and <see cref="V512"/>, and the JIT compiles one
/// specialized copy per width (the wrappers are single-field structs and vanish after inlining).
/// System.Runtime.Intrinsics' own ISimdVector is not public, hence this small twin of it.
/// The generic row loops are marked AggressiveOptimization: their tier-0 code (wrappers not yet
/// inlined) runs tens of times slower, and a decode step calls each kernel only a few times per layer.
/// </summary>
internal unsafe interface IVec<TV> where TV : unmanaged, IVec<TV>
{
    static abstract int Count { get; }
    static abstract TV Load(float* p);
    static abstract void Store(TV v, float* p);
    static abstract TV Splat(float x);
    static abstract TV operator +(TV a, TV b);
    static abstract TV operator -(TV a, TV b);
    static abstract TV operator *(TV a, TV b);
    static abstract TV operator /(TV a, TV b);
    /// <summary>a·b + c with one rounding.</summary>
    static abstract TV Fma(TV a, TV b, TV c);
    static abstract TV Max(TV a, TV b);
    static abstract TV Min(TV a, TV b);
    static abstract TV Abs(TV a);
    /// <summary>Square root, correctly rounded (as <see cref="MathF.Sqrt"/>).</summary>
    static abstract TV Sqrt(TV a);
    static abstract TV Exp(TV a);
    /// <summary>Rounds to the nearest integer, ties to even.</summary>
    static abstract TV Round(TV a);
    /// <summary>2ⁿ for lanes n holding integers in the normal exponent range, built in the exponent field.</summary>
    static abstract TV Pow2(TV n);
    /// <summary>All-ones lanes where a &lt; b.</summary>
    static abstract TV LessThan(TV a, TV b);
    /// <summary>Lanes of <paramref name="a"/> where <paramref name="mask"/> is set, else of <paramref name="b"/>.</summary>
    static abstract TV Select(TV mask, TV a, TV b);
    /// <summary>The magnitude of <paramref name="mag"/> with the sign of <paramref name="sign"/>.</summary>
    static abstract TV CopySign(TV mag, TV sign);
    /// <summary>Swaps lanes 2i and 2i+1 (for interleaved RoPE pairs).</summary>
    static abstract TV SwapPairs(TV a);
    /// <summary>erf by <see cref="VectorMath.Erf(double)"/>, evaluated in double lanes.</summary>
    static abstract TV Erf(TV a);
    /// <summary>Widens Count signed bytes.</summary>
    static abstract TV LoadSBytes(sbyte* p);
    /// <summary>Widens Count bf16 values (exact).</summary>
    static abstract TV LoadBFloat16(ushort* p);
    /// <summary>
    /// <see cref="OptimizerSteps.RoundingBits(ulong, long)"/> of elements index0 … index0 + Count − 1 under the seed
    /// (seedLo, seedHi), as the lanes' bit patterns.
    /// </summary>
    static abstract TV RoundingBits(uint seedLo, uint seedHi, int index0);
    /// <summary>
    /// Stores the lanes of <paramref name="x"/> as bfloat16 bits, each rounded by <see cref="OptimizerSteps.RoundStochastic"/>
    /// with the random bits (lane of <paramref name="random"/>) &gt;&gt; <paramref name="shift"/>.
    /// </summary>
    static abstract void StoreBFloat16Stochastic(TV x, TV random, int shift, ushort* p);
    /// <summary>
    /// Widens Count binary16 values (exact) by <see cref="Widen"/>'s bit manipulation; NaNs come out
    /// quiet, as System.Half's conversion makes them.
    /// </summary>
    static abstract TV LoadHalf(ushort* p);
    static abstract float Sum(TV a);
    static abstract float MaxAcross(TV a);
}

internal readonly unsafe struct V128 : IVec<V128>
{
    readonly Vector128<float> _v;
    V128(Vector128<float> v) => _v = v;
    public static int Count => Vector128<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Load(float* p) => new(Vector128.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V128 v, float* p) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Splat(float x) => new(Vector128.Create(x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator +(V128 a, V128 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator -(V128 a, V128 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator *(V128 a, V128 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 operator /(V128 a, V128 b) => new(a._v / b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Fma(V128 a, V128 b, V128 c) => new(Vector128.FusedMultiplyAdd(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Max(V128 a, V128 b) => new(Vector128.Max(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Min(V128 a, V128 b) => new(Vector128.Min(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Abs(V128 a) => new(Vector128.Abs(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Sqrt(V128 a) => new(Vector128.Sqrt(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Exp(V128 a) => new(Vector128.Exp(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Round(V128 a) => new(Vector128.Round(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 Pow2(V128 n) => new(Vector128.ShiftLeft(Vector128.ConvertToInt32(n._v) + Vector128.Create(127), 23).AsSingle());
    /// <summary>The raw vector's <see cref="VectorMath.ExpNonPositive{TV}(TV)"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ExpNonPositive(Vector128<float> x) => VectorMath.ExpNonPositive(new V128(x))._v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 Erf(V128 a) => new(Vector128.Narrow(VectorMath.Erf(Vector128.WidenLower(a._v)), VectorMath.Erf(Vector128.WidenUpper(a._v))));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 LessThan(V128 a, V128 b) => new(Vector128.LessThan(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Select(V128 m, V128 a, V128 b) => new(Vector128.ConditionalSelect(m._v, a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 CopySign(V128 m, V128 s) => new(Vector128.CopySign(m._v, s._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 SwapPairs(V128 a) => new(Vector128.Shuffle(a._v, Vector128.Create(1, 0, 3, 2)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 LoadSBytes(sbyte* p) => new(Vector128.ConvertToSingle(Vector128.Create(p[0], p[1], p[2], p[3])));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 LoadBFloat16(ushort* p) => new(Widen.BF16x4(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 RoundingBits(uint seedLo, uint seedHi, int index0)
    {
        var x = (Vector128<uint>.Indices + Vector128.Create((uint)index0)) * Vector128.Create(OptimizerSteps.HashStep) + Vector128.Create(seedLo);
        x ^= Vector128.Create(seedHi);
        x ^= x >> 16; x *= Vector128.Create(OptimizerSteps.HashMix1);
        x ^= x >> 15; x *= Vector128.Create(OptimizerSteps.HashMix2);
        x ^= x >> 16;
        return new(x.AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreBFloat16Stochastic(V128 x, V128 random, int shift, ushort* p)
    {
        var bits = x._v.AsUInt32();
        var exponent = Vector128.Create(0x7F800000u);
        var special = Vector128.Equals(bits & exponent, exponent);
        var nan = special & ~Vector128.Equals(bits & Vector128.Create(0x007FFFFFu), Vector128<uint>.Zero);
        var kept = (bits >> 16) | (nan & Vector128.Create(0x40u));
        var rounded = (bits + ((random._v.AsUInt32() >> shift) & Vector128.Create(0xFFFFu))) >> 16;
        var halves = Vector128.Narrow(Vector128.ConditionalSelect(special, kept, rounded), Vector128<uint>.Zero);
        *(ulong*)p = halves.AsUInt64().ToScalar();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 LoadHalf(ushort* p)
    {
        var f = Widen.F16x4(p);
        return new((f.AsUInt32() | (~Vector128.Equals(f, f)).AsUInt32() & Vector128.Create(0x0040_0000u)).AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V128 a) => Vector128.Sum(a._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(V128 a)
    {
        var v = a._v;
        return MathF.Max(MathF.Max(v[0], v[1]), MathF.Max(v[2], v[3]));
    }
}

internal readonly unsafe struct V256 : IVec<V256>
{
    readonly Vector256<float> _v;
    V256(Vector256<float> v) => _v = v;
    public static int Count => Vector256<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Load(float* p) => new(Vector256.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V256 v, float* p) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Splat(float x) => new(Vector256.Create(x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator +(V256 a, V256 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator -(V256 a, V256 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator *(V256 a, V256 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 operator /(V256 a, V256 b) => new(a._v / b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Fma(V256 a, V256 b, V256 c) => new(Vector256.FusedMultiplyAdd(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Max(V256 a, V256 b) => new(Vector256.Max(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Min(V256 a, V256 b) => new(Vector256.Min(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Abs(V256 a) => new(Vector256.Abs(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Sqrt(V256 a) => new(Vector256.Sqrt(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Exp(V256 a) => new(Vector256.Exp(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Round(V256 a) => new(Vector256.Round(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Pow2(V256 n) => new(Vector256.ShiftLeft(Vector256.ConvertToInt32(n._v) + Vector256.Create(127), 23).AsSingle());
    /// <summary>The raw vector's <see cref="VectorMath.ExpNonPositive{TV}(TV)"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ExpNonPositive(Vector256<float> x) => VectorMath.ExpNonPositive(new V256(x))._v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 Erf(V256 a) => new(Vector256.Narrow(VectorMath.Erf(Vector256.WidenLower(a._v)), VectorMath.Erf(Vector256.WidenUpper(a._v))));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 LessThan(V256 a, V256 b) => new(Vector256.LessThan(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Select(V256 m, V256 a, V256 b) => new(Vector256.ConditionalSelect(m._v, a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 CopySign(V256 m, V256 s) => new(Vector256.CopySign(m._v, s._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 SwapPairs(V256 a) => new(Vector256.Shuffle(a._v, Vector256.Create(1, 0, 3, 2, 5, 4, 7, 6)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 LoadSBytes(sbyte* p)
    {
        var b = Vector128.CreateScalarUnsafe(*(long*)p).AsSByte();     // 8 bytes in the low half
        var s = Vector128.WidenLower(b);                                // 8 × int16
        var (lo, hi) = Vector128.Widen(s);                              // 2 × 4 × int32
        return new(Vector256.ConvertToSingle(Vector256.Create(lo, hi)));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 LoadBFloat16(ushort* p) => new(Widen.BF16x8(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 RoundingBits(uint seedLo, uint seedHi, int index0)
    {
        var x = (Vector256<uint>.Indices + Vector256.Create((uint)index0)) * Vector256.Create(OptimizerSteps.HashStep) + Vector256.Create(seedLo);
        x ^= Vector256.Create(seedHi);
        x ^= x >> 16; x *= Vector256.Create(OptimizerSteps.HashMix1);
        x ^= x >> 15; x *= Vector256.Create(OptimizerSteps.HashMix2);
        x ^= x >> 16;
        return new(x.AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreBFloat16Stochastic(V256 x, V256 random, int shift, ushort* p)
    {
        var bits = x._v.AsUInt32();
        var exponent = Vector256.Create(0x7F800000u);
        var special = Vector256.Equals(bits & exponent, exponent);
        var nan = special & ~Vector256.Equals(bits & Vector256.Create(0x007FFFFFu), Vector256<uint>.Zero);
        var kept = (bits >> 16) | (nan & Vector256.Create(0x40u));
        var rounded = (bits + ((random._v.AsUInt32() >> shift) & Vector256.Create(0xFFFFu))) >> 16;
        var halves = Vector256.Narrow(Vector256.ConditionalSelect(special, kept, rounded), Vector256<uint>.Zero);
        halves.GetLower().Store(p);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 LoadHalf(ushort* p)
    {
        var f = Widen.F16x8(p);
        return new((f.AsUInt32() | (~Vector256.Equals(f, f)).AsUInt32() & Vector256.Create(0x0040_0000u)).AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V256 a) => Vector256.Sum(a._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(V256 a)
    {
        var q = Vector128.Max(a._v.GetLower(), a._v.GetUpper());
        return MathF.Max(MathF.Max(q[0], q[1]), MathF.Max(q[2], q[3]));
    }
}

internal readonly unsafe struct V512 : IVec<V512>
{
    readonly Vector512<float> _v;
    V512(Vector512<float> v) => _v = v;
    public static int Count => Vector512<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Load(float* p) => new(Vector512.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V512 v, float* p) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Splat(float x) => new(Vector512.Create(x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator +(V512 a, V512 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator -(V512 a, V512 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator *(V512 a, V512 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 operator /(V512 a, V512 b) => new(a._v / b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Fma(V512 a, V512 b, V512 c) => new(Vector512.FusedMultiplyAdd(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Max(V512 a, V512 b) => new(Vector512.Max(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Min(V512 a, V512 b) => new(Vector512.Min(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Abs(V512 a) => new(Vector512.Abs(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Sqrt(V512 a) => new(Vector512.Sqrt(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Exp(V512 a) => new(Vector512.Exp(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Round(V512 a) => new(Vector512.Round(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Pow2(V512 n) => new(Vector512.ShiftLeft(Vector512.ConvertToInt32(n._v) + Vector512.Create(127), 23).AsSingle());
    /// <summary>The raw vector's <see cref="VectorMath.ExpNonPositive{TV}(TV)"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ExpNonPositive(Vector512<float> x) => VectorMath.ExpNonPositive(new V512(x))._v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 Erf(V512 a) => new(Vector512.Narrow(VectorMath.Erf(Vector512.WidenLower(a._v)), VectorMath.Erf(Vector512.WidenUpper(a._v))));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 LessThan(V512 a, V512 b) => new(Vector512.LessThan(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Select(V512 m, V512 a, V512 b) => new(Vector512.ConditionalSelect(m._v, a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 CopySign(V512 m, V512 s) => new(Vector512.CopySign(m._v, s._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 SwapPairs(V512 a) => new(Vector512.Shuffle(a._v, Vector512.Create(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 LoadSBytes(sbyte* p)
    {
        var b = Vector128.Load(p);                                      // 16 bytes
        var (s0, s1) = Vector128.Widen(b);                              // 2 × 8 × int16
        var w = Vector256.Widen(Vector256.Create(s0, s1));              // 2 × 8 × int32
        return new(Vector512.ConvertToSingle(Vector512.Create(w.Lower, w.Upper)));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 LoadBFloat16(ushort* p) => new(Widen.BF16x16(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 RoundingBits(uint seedLo, uint seedHi, int index0)
    {
        var x = (Vector512<uint>.Indices + Vector512.Create((uint)index0)) * Vector512.Create(OptimizerSteps.HashStep) + Vector512.Create(seedLo);
        x ^= Vector512.Create(seedHi);
        x ^= x >> 16; x *= Vector512.Create(OptimizerSteps.HashMix1);
        x ^= x >> 15; x *= Vector512.Create(OptimizerSteps.HashMix2);
        x ^= x >> 16;
        return new(x.AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreBFloat16Stochastic(V512 x, V512 random, int shift, ushort* p)
    {
        var bits = x._v.AsUInt32();
        var exponent = Vector512.Create(0x7F800000u);
        var special = Vector512.Equals(bits & exponent, exponent);
        var nan = special & ~Vector512.Equals(bits & Vector512.Create(0x007FFFFFu), Vector512<uint>.Zero);
        var kept = (bits >> 16) | (nan & Vector512.Create(0x40u));
        var rounded = (bits + ((random._v.AsUInt32() >> shift) & Vector512.Create(0xFFFFu))) >> 16;
        var halves = Vector512.Narrow(Vector512.ConditionalSelect(special, kept, rounded), Vector512<uint>.Zero);
        halves.GetLower().Store(p);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 LoadHalf(ushort* p)
    {
        var f = Widen.F16x16(p);
        return new((f.AsUInt32() | (~Vector512.Equals(f, f)).AsUInt32() & Vector512.Create(0x0040_0000u)).AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V512 a) => Vector512.Sum(a._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(V512 a)
    {
        var m = Vector256.Max(a._v.GetLower(), a._v.GetUpper());
        var q = Vector128.Max(m.GetLower(), m.GetUpper());
        return MathF.Max(MathF.Max(q[0], q[1]), MathF.Max(q[2], q[3]));
    }
}
