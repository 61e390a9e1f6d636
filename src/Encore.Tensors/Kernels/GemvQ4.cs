using System.Runtime.CompilerServices;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

// Q4_0 dot products with binary32 x: the widths without the int16-x kernels (QuantizesActivations).
public static unsafe partial class Gemv
{
    // Per block: the 32 nibbles unpacked to int8 (nibble − 8), the products q·x summed in binary32, then
    // scaled by d; two accumulators over alternate blocks, as DotQ8.
    internal static float DotQ4(BlockQ4_0* row, float* x, int blocks, SimdWidth width) => width switch
    {
        SimdWidth.V512 => DotQ4<V512>(row, x, blocks),
        SimdWidth.V256 => DotQ4<V256>(row, x, blocks),
        SimdWidth.V128 => DotQ4<V128>(row, x, blocks),
        _ => DotQ4Scalar(row, x, blocks),
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float DotQ4<TV>(BlockQ4_0* row, float* x, int blocks) where TV : unmanaged, IVec<TV>
    {
        sbyte* q = stackalloc sbyte[DTypes.Q4BlockSize];
        float* table = Widen.HalfTable;
        int n = TV.Count;
        TV a0 = TV.Splat(0f), a1 = a0;
        for (int b = 0; b < blocks; b++, row++, x += DTypes.Q4BlockSize)
        {
            Q4.Unpack(row, q);
            TV t = TV.LoadSBytes(q) * TV.Load(x);
            for (int j = n; j < DTypes.Q4BlockSize; j += n) t = TV.Fma(TV.LoadSBytes(q + j), TV.Load(x + j), t);
            if ((b & 1) == 0) a0 = TV.Fma(TV.Splat(table[row->D]), t, a0);
            else a1 = TV.Fma(TV.Splat(table[row->D]), t, a1);
        }
        return TV.Sum(a0 + a1);
    }

    // The scalar twin: per block Σ q·x in binary32, times d.
    static float DotQ4Scalar(BlockQ4_0* row, float* x, int blocks)
    {
        sbyte* q = stackalloc sbyte[DTypes.Q4BlockSize];
        float s = 0;
        for (int b = 0; b < blocks; b++, row++, x += DTypes.Q4BlockSize)
        {
            Q4.UnpackReference(row, q);
            float t = 0;
            for (int j = 0; j < DTypes.Q4BlockSize; j++) t += q[j] * x[j];
            s += Half16.ToSingle(row->D) * t;
        }
        return s;
    }
}
