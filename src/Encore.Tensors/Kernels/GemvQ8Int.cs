using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Numerics;

namespace Encore.Tensors.Kernels;

// Q8_0 and Q4_0 GEMV with x quantized to int16 per 32-value block (AVX-512BW): the integer block dot products
// replace the int8 → binary32 widening of every quant, which is what bounds the binary32-x kernels.
public static unsafe partial class Gemv
{
    /// <summary>Largest int16 quant of x: each block maps max|x_b| to ±32767.</summary>
    const float XQuantMax = 32767f;

    // With the integer block dot the batch-1 row outruns the 2 KiB L1 prefetch of the binary32-x kernel;
    // an L2 prefetch 16 KiB (about four 4096-wide rows) ahead measured best on Zen 5 at 4096×4096
    // (single thread ~1.35× the binary32-x kernel, near the one-thread read bandwidth; 8 KiB and L1
    // prefetches fell between). x86 only, like PrefetchAhead.
    const int PrefetchAheadX = 16384;

    // L2 prefetches at p for one step of a row stream that advances `bytes` per step (a constant at every call): one
    // per 64-byte line of the step, so every line of the stream is prefetched. One prefetch per 68- or 72-byte step
    // (Q8_0 pairs, Q4_0 quads; the octet kernel's steps are 288 bytes) left every ninth to seventeenth line to a demand miss from DRAM, which is what held the
    // Q4_0 tiles below the read bandwidth: Zen 4, 2 threads, 1024–4096-wide matrices from DRAM, 13.4–13.8 GB/s →
    // 18–26 GB/s with every line prefetched; Q8_0 22.4–22.8 → 20–26.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void PrefetchStep(byte* p, int bytes)
    {
        System.Diagnostics.Debug.Assert(bytes <= 320, "PrefetchStep covers at most five lines");
        Sse.Prefetch1(p);
        if (bytes > 64) Sse.Prefetch1(p + 64);
        if (bytes > 128) Sse.Prefetch1(p + 128);
        if (bytes > 192) Sse.Prefetch1(p + 192);
        if (bytes > 256) Sse.Prefetch1(p + 256);
    }

    /// <summary>
    /// Whether the GEMV path at <paramref name="width"/> takes Q8_0 or Q4_0 weights with int16-quantized x
    /// (<see cref="QuantizedActivationReference"/> is then its specification): 512-bit vectors with
    /// AVX-512BW, whose <c>vpmovsxbw</c> + <c>vpmaddwd</c> give 16 exact int32 partial sums of a block in
    /// two instructions.
    /// </summary>
    internal static bool QuantizesActivations(SimdWidth width, DType weights)
        => width == SimdWidth.V512 && Avx512BW.IsSupported && weights is DType.Q8_0 or DType.Q4_0;

    /// <summary>
    /// The quantized-activation reference of the Q8_0 GEMV path: each row of X is cut into blocks of 32,
    /// block b gets dx_b = max|x_b|/32767 and quants round-half-even(x·(1/dx_b)) in int16 (the rounding
    /// llama.cpp's Q8_0 activations use, with 16 bits instead of 8); y = Σ_b dw_b·dx_b·Σ_j qw_j·qx_j in
    /// binary64. With <paramref name="activationBits"/> 8 the quants are int8 as ggml's Q8_0 activations:
    /// dx_b = max|x_b|/127 rounded to binary16, quants round-half-even(x·(127/max|x_b|)); the specification of
    /// the Q4_0 paths with int8 x (AVX-VNNI, quad, octet). X is (m, K), Y is (m, N), W must be Q8_0, Q4_0 or Q4_0R8 (whose quants are nibble − 8).
    /// </summary>
    public static void QuantizedActivationReference(WeightMatrix w, ReadOnlySpan<float> x, int m, Span<float> y, ReadOnlySpan<float> bias = default, int activationBits = 16)
    {
        if (w.DType is not (DType.Q8_0 or DType.Q4_0 or DType.Q4_0R8)) throw new ArgumentException($"GEMV quantized-activation reference: weights are {w.DType}, not Q8_0, Q4_0 or Q4_0R8", nameof(w));
        int n = w.Rows, k = w.Cols, blocks = k / DTypes.Q8BlockSize;
        if ((long)m * k > x.Length) throw new ArgumentException($"GEMV: X needs {(long)m * k} values, got {x.Length}", nameof(x));
        if ((long)m * n > y.Length) throw new ArgumentException($"GEMV: Y needs {(long)m * n} values, got {y.Length}", nameof(y));
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"GEMV: bias has {bias.Length} values for {n} rows", nameof(bias));
        var q = new short[k];
        var dx = new float[blocks];
        sbyte* qw = stackalloc sbyte[DTypes.Q8BlockSize];
        for (int i = 0; i < m; i++)
        {
            fixed (float* px = x.Slice(i * k, k))
            fixed (short* pq = q)
            fixed (float* pd = dx)
            {
                if (activationBits == 8) QuantizeX8Reference(px, blocks, pq, pd);
                else QuantizeXReference(px, blocks, pq, pd);
            }
            for (int j = 0; j < n; j++)
            {
                byte* row = w.Row(j);
                double s = 0;
                for (int b = 0; b < blocks; b++)
                {
                    ushort dw = BlockQuants(w.DType, row, b, qw);
                    long dot = 0;
                    for (int t = 0; t < DTypes.Q8BlockSize; t++) dot += qw[t] * q[b * DTypes.Q8BlockSize + t];
                    s += (double)Widen.Half(dw) * dx[b] * dot;
                }
                y[i * n + j] = (float)(s + (bias.IsEmpty ? 0 : bias[j]));
            }
        }
    }

    // Block b of a Q8_0 or Q4_0 row: its 32 signed quants into q, its binary16 scale returned.
    static ushort BlockQuants(DType dtype, byte* row, int b, sbyte* q)
    {
        if (dtype == DType.Q8_0)
        {
            var blk = (BlockQ8_0*)row + b;
            for (int t = 0; t < DTypes.Q8BlockSize; t++) q[t] = blk->Qs[t];
            return blk->D;
        }
        BlockQ4_0 scratch;
        var b4 = Q4R8.BlockOf(row, b, dtype == DType.Q4_0R8, &scratch);
        Q4.UnpackReference(b4, q);
        return b4->D;
    }

    // The int8 quantization of the Q4_0 VNNI path, which is ggml's quantize_row_q8_0 (AVX2): d = max|x_b|/127
    // stored as binary16, quants round-half-even(x·(127/max|x_b|)). Matching llama.cpp's activations keeps
    // the two engines' greedy tokens together on the same Q4_0 weights.
    internal static void QuantizeX8Reference(float* x, int blocks, short* q, float* dx)
    {
        for (int b = 0; b < blocks; b++, x += DTypes.Q8BlockSize, q += DTypes.Q8BlockSize)
        {
            float amax = 0;
            for (int j = 0; j < DTypes.Q8BlockSize; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
            float id = amax != 0 ? 127f / amax : 0f;
            dx[b] = Half16.ToSingle(Half16.FromSingle(amax / 127f));
            for (int j = 0; j < DTypes.Q8BlockSize; j++) q[j] = (short)MathF.Round(x[j] * id, MidpointRounding.ToEven);
        }
    }

    // Scalar twin of QuantizeX (and its specification).
    internal static void QuantizeXReference(float* x, int blocks, short* q, float* dx)
    {
        for (int b = 0; b < blocks; b++, x += DTypes.Q8BlockSize, q += DTypes.Q8BlockSize)
        {
            float amax = 0;
            for (int j = 0; j < DTypes.Q8BlockSize; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
            float d = amax / XQuantMax;
            float id = d != 0 ? 1f / d : 0f;
            dx[b] = d;
            // |x·id| ≤ 32767 up to one rounding of the product, so the int16 never overflows.
            for (int j = 0; j < DTypes.Q8BlockSize; j++) q[j] = (short)MathF.Round(x[j] * id, MidpointRounding.ToEven);
        }
    }

    /// <summary>max |x| over a block of 32 values held as two 512-bit vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float BlockAbsMax(Vector512<float> v0, Vector512<float> v1)
    {
        var m512 = Vector512.Max(Vector512.Abs(v0), Vector512.Abs(v1));
        var m256 = Vector256.Max(m512.GetLower(), m512.GetUpper());
        var m128 = Vector128.Max(m256.GetLower(), m256.GetUpper());
        return MathF.Max(MathF.Max(m128[0], m128[1]), MathF.Max(m128[2], m128[3]));
    }

    // x (blocks·32 values) → int16 quants q and block scales dx, bit-identical to QuantizeXReference.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void QuantizeX(float* x, int blocks, short* q, float* dx)
    {
        for (int b = 0; b < blocks; b++, x += DTypes.Q8BlockSize, q += DTypes.Q8BlockSize)
        {
            var v0 = Vector512.Load(x);
            var v1 = Vector512.Load(x + 16);
            float amax = BlockAbsMax(v0, v1);
            float d = amax / XQuantMax;
            float id = d != 0 ? 1f / d : 0f;
            dx[b] = d;
            var vid = Vector512.Create(id);
            var i0 = Vector512.ConvertToInt32(Vector512.Round(v0 * vid));
            var i1 = Vector512.ConvertToInt32(Vector512.Round(v1 * vid));
            Vector512.Narrow(i0, i1).Store(q);
        }
    }

    // One block of 32 weight quants (as int16) against 32 int16 x: 16 int32 pair sums (|sum| ≤ 2·127·32767,
    // and the block's 16 lanes total ≤ 32·127·32767 < 2³¹, so nothing overflows), as binary32.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> BlockDot(Vector512<short> w, short* xq)
        => Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(w, Vector512.Load(xq)));

    // A quantized block format for the int16-x kernels: its size, its binary16 scale, and its 32 quants
    // widened to int16 in element order.
    internal interface IQuantBlock
    {
        static abstract int Bytes { get; }
        static abstract ushort Scale(byte* block);
        static abstract Vector512<short> Quants(byte* block);
    }

    internal readonly struct Q8Block : IQuantBlock
    {
        public static int Bytes => DTypes.Q8BlockBytes;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static ushort Scale(byte* block) => ((BlockQ8_0*)block)->D;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<short> Quants(byte* block) => Avx512BW.ConvertToVector512Int16(Vector256.Load(((BlockQ8_0*)block)->Qs));
    }

    // Low nibbles are values 0–15 and high nibbles 16–31, so [low | high] zero-extended is the block in
    // order; minus 8 gives the signed quants.
    internal readonly struct Q4Block : IQuantBlock
    {
        public static int Bytes => DTypes.Q4BlockBytes;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static ushort Scale(byte* block) => ((BlockQ4_0*)block)->D;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<short> Quants(byte* block)
        {
            var b = Vector128.Load(((BlockQ4_0*)block)->Qs);
            var mask = Vector128.Create((byte)0x0F);
            var nibbles = Vector256.Create(b & mask, Vector128.ShiftRightLogical(b, 4) & mask);
            return Avx512BW.ConvertToVector512Int16(nibbles).AsInt16() - Vector512.Create((short)8);
        }
    }

    // Batch 1: per block the 16 pair sums times dw·dx into one of two accumulators (alternate blocks).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotX<TB>(byte* row, short* xq, float* dx, int blocks, float* table) where TB : IQuantBlock
    {
        Vector512<float> a0 = default, a1 = default;
        int b = 0, size = TB.Bytes;
        for (; b + 2 <= blocks; b += 2, row += 2 * size, xq += 64)
        {
            PrefetchStep(row + PrefetchAheadX, 2 * TB.Bytes);
            a0 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(row), xq), Vector512.Create(table[TB.Scale(row)] * dx[b]), a0);
            a1 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(row + size), xq + 32), Vector512.Create(table[TB.Scale(row + size)] * dx[b + 1]), a1);
        }
        if (b < blocks) a0 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(row), xq), Vector512.Create(table[TB.Scale(row)] * dx[b]), a0);
        return Vector512.Sum(a0 + a1);
    }

    // DotX for four weight rows at once, each row's arithmetic exactly DotX's (even blocks into one accumulator, odd
    // into another, then Vector512.Sum of their sum), so the bits are DotX's; the four rows' chains overlap and share
    // x's loads, and the four reductions share one (Sum4).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotX4<TB>(byte* w0, byte* w1, byte* w2, byte* w3, short* xq, float* dx, int blocks, float* table, float* sums) where TB : IQuantBlock
    {
        Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
        int b = 0, size = TB.Bytes;
        for (; b + 2 <= blocks; b += 2, w0 += 2 * size, w1 += 2 * size, w2 += 2 * size, w3 += 2 * size, xq += 64)
        {
            PrefetchStep(w0 + PrefetchAheadX, 2 * TB.Bytes);
            PrefetchStep(w1 + PrefetchAheadX, 2 * TB.Bytes);
            PrefetchStep(w2 + PrefetchAheadX, 2 * TB.Bytes);
            PrefetchStep(w3 + PrefetchAheadX, 2 * TB.Bytes);
            float e = dx[b], o = dx[b + 1];
            a0 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w0), xq), Vector512.Create(table[TB.Scale(w0)] * e), a0);
            a1 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w1), xq), Vector512.Create(table[TB.Scale(w1)] * e), a1);
            a2 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w2), xq), Vector512.Create(table[TB.Scale(w2)] * e), a2);
            a3 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w3), xq), Vector512.Create(table[TB.Scale(w3)] * e), a3);
            b0 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w0 + size), xq + 32), Vector512.Create(table[TB.Scale(w0 + size)] * o), b0);
            b1 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w1 + size), xq + 32), Vector512.Create(table[TB.Scale(w1 + size)] * o), b1);
            b2 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w2 + size), xq + 32), Vector512.Create(table[TB.Scale(w2 + size)] * o), b2);
            b3 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w3 + size), xq + 32), Vector512.Create(table[TB.Scale(w3 + size)] * o), b3);
        }
        if (b < blocks)
        {
            float e = dx[b];
            a0 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w0), xq), Vector512.Create(table[TB.Scale(w0)] * e), a0);
            a1 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w1), xq), Vector512.Create(table[TB.Scale(w1)] * e), a1);
            a2 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w2), xq), Vector512.Create(table[TB.Scale(w2)] * e), a2);
            a3 = Vector512.FusedMultiplyAdd(BlockDot(TB.Quants(w3), xq), Vector512.Create(table[TB.Scale(w3)] * e), a3);
        }
        VectorMath.Sum4(a0 + b0, a1 + b1, a2 + b2, a3 + b3, sums);
    }

    // m ≤ Group X rows (k·… apart in xq, blocks apart in dx) against one weight row: each block widened once.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotRowsX<TB>(byte* row, short* xq, float* dx, nint ldx, int m, int blocks, float* table, float* sums) where TB : IQuantBlock
    {
        if (m == 1)
        {
            sums[0] = DotX<TB>(row, xq, dx, blocks, table);
            return;
        }
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < blocks; b++, row += TB.Bytes, xq += 32)
        {
            var q = TB.Quants(row);
            float d = table[TB.Scale(row)];
            a0 = Vector512.FusedMultiplyAdd(BlockDot(q, xq), Vector512.Create(d * dx[b]), a0);
            a1 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + ldx), Vector512.Create(d * dx[blocks + b]), a1);
            if (m > 2) a2 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + 2 * ldx), Vector512.Create(d * dx[2 * blocks + b]), a2);
            if (m > 3) a3 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + 3 * ldx), Vector512.Create(d * dx[3 * blocks + b]), a3);
        }
        sums[0] = Vector512.Sum(a0);
        sums[1] = Vector512.Sum(a1);
        if (m > 2) sums[2] = Vector512.Sum(a2);
        if (m > 3) sums[3] = Vector512.Sum(a3);
    }

    // Tile4 on int16 x: 4 weight rows × m ≤ 4 X rows; sums[r·4 + s] = W_s · X_r.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Tile4X<TB>(byte* w0, byte* w1, byte* w2, byte* w3, short* xq, float* dx, nint ldx, int m, int blocks, float* table, float* sums) where TB : IQuantBlock
    {
        Vector512<float> a00 = default; Vector512<float> a01 = default; Vector512<float> a02 = default; Vector512<float> a03 = default;
        Vector512<float> a10 = default; Vector512<float> a11 = default; Vector512<float> a12 = default; Vector512<float> a13 = default;
        Vector512<float> a20 = default; Vector512<float> a21 = default; Vector512<float> a22 = default; Vector512<float> a23 = default;
        Vector512<float> a30 = default; Vector512<float> a31 = default; Vector512<float> a32 = default; Vector512<float> a33 = default;
        int size = TB.Bytes;
        for (int b = 0; b < blocks; b++, xq += 32, w0 += size, w1 += size, w2 += size, w3 += size)
        {
            float d0 = dx[b], d1 = m > 1 ? dx[blocks + b] : 0, d2 = m > 2 ? dx[2 * blocks + b] : 0, d3 = m > 3 ? dx[3 * blocks + b] : 0;
            {
                var q = TB.Quants(w0); float d = table[TB.Scale(w0)];
                a00 = Vector512.FusedMultiplyAdd(BlockDot(q, xq), Vector512.Create(d * d0), a00);
                if (m > 1) a10 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + ldx), Vector512.Create(d * d1), a10);
                if (m > 2) a20 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + 2 * ldx), Vector512.Create(d * d2), a20);
                if (m > 3) a30 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + 3 * ldx), Vector512.Create(d * d3), a30);
            }
            {
                var q = TB.Quants(w1); float d = table[TB.Scale(w1)];
                a01 = Vector512.FusedMultiplyAdd(BlockDot(q, xq), Vector512.Create(d * d0), a01);
                if (m > 1) a11 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + ldx), Vector512.Create(d * d1), a11);
                if (m > 2) a21 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + 2 * ldx), Vector512.Create(d * d2), a21);
                if (m > 3) a31 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + 3 * ldx), Vector512.Create(d * d3), a31);
            }
            {
                var q = TB.Quants(w2); float d = table[TB.Scale(w2)];
                a02 = Vector512.FusedMultiplyAdd(BlockDot(q, xq), Vector512.Create(d * d0), a02);
                if (m > 1) a12 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + ldx), Vector512.Create(d * d1), a12);
                if (m > 2) a22 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + 2 * ldx), Vector512.Create(d * d2), a22);
                if (m > 3) a32 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + 3 * ldx), Vector512.Create(d * d3), a32);
            }
            {
                var q = TB.Quants(w3); float d = table[TB.Scale(w3)];
                a03 = Vector512.FusedMultiplyAdd(BlockDot(q, xq), Vector512.Create(d * d0), a03);
                if (m > 1) a13 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + ldx), Vector512.Create(d * d1), a13);
                if (m > 2) a23 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + 2 * ldx), Vector512.Create(d * d2), a23);
                if (m > 3) a33 = Vector512.FusedMultiplyAdd(BlockDot(q, xq + 3 * ldx), Vector512.Create(d * d3), a33);
            }
        }
        sums[0] = Vector512.Sum(a00); sums[1] = Vector512.Sum(a01); sums[2] = Vector512.Sum(a02); sums[3] = Vector512.Sum(a03);
        if (m > 1) { sums[4] = Vector512.Sum(a10); sums[5] = Vector512.Sum(a11); sums[6] = Vector512.Sum(a12); sums[7] = Vector512.Sum(a13); }
        if (m > 2) { sums[8] = Vector512.Sum(a20); sums[9] = Vector512.Sum(a21); sums[10] = Vector512.Sum(a22); sums[11] = Vector512.Sum(a23); }
        if (m > 3) { sums[12] = Vector512.Sum(a30); sums[13] = Vector512.Sum(a31); sums[14] = Vector512.Sum(a32); sums[15] = Vector512.Sum(a33); }
    }

    [ThreadStatic] static byte* t_xq;
    [ThreadStatic] static long t_xqCapacity;
    [ThreadStatic] static AlignedOwner? t_xqOwner;

    // A 64-byte aligned buffer of at least `bytes` kept per thread in the given slots: grows once, then reuses
    // (the previous owner's finalizer frees the old buffer).
    internal static byte* ThreadScratch(ref byte* buffer, ref long capacity, ref AlignedOwner? owner, long bytes)
    {
        if (capacity < bytes)
        {
            long size = Math.Max(bytes, 16384);
            var p = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)size, 64);
            owner = new AlignedOwner((float*)p);
            buffer = p;
            capacity = size;
        }
        return buffer;
    }

    // Quantizes the m rows of X (k apart) into this thread's scratch: m·k int16 quants (64-byte aligned,
    // a block per cache line) followed by m·k/32 block scales. Grows once, then reuses.
    static short* QuantizedCopy(float* x, int m, int k, out float* dx)
    {
        int blocks = k / DTypes.Q8BlockSize;
        long bytes = (long)m * k * sizeof(short) + (long)m * blocks * sizeof(float);
        var q = (short*)ThreadScratch(ref t_xq, ref t_xqCapacity, ref t_xqOwner, bytes);
        var d = (float*)(q + (long)m * k);
        for (int i = 0; i < m; i++) QuantizeX(x + (nint)i * k, blocks, q + (nint)i * k, d + (nint)i * blocks);
        dx = d;
        return q;
    }
}
