using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Numerics;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

// The prefill GEMM of Q8_0 and Q4_0 weights: X quantized to int8 per block of 32 (ggml's Q8_0
// activations, as the Q4_0 GEMV on AVX-VNNI quantizes them) and multiplied with the weight quants by
// vpdpbusd, so the product runs in integer arithmetic at twice the multiply-adds per instruction of
// the binary32 GEMM, instead of widening every weight to binary32 while packing.
//
// vpdpbusd multiplies unsigned bytes by signed bytes. X's quants q ∈ [−127, 127] are stored as
// q + 128 (unsigned), and each block's dot product is corrected by 128·Σ w-quants of the block, a
// per-column integer the packing computes once. Per block the exact int32 dot is converted and added
// into binary32 accumulators with the scale dw·dx: one rounding for the scale, one for the add.
//
// Packing: W's rows are cut into panels of 16 (the output columns of one tile). Per panel and block
// of 32 inputs: 8 groups of 4 inputs × 16 columns × 4 bytes (the 64 bytes one k-quad of the tile
// reads as two 256-bit vectors), then 16 binary32 scales dw and 16 int32 corrections. A task packs
// its panel into its thread's scratch and runs it against every row of X, four rows per tile.
//
// Register budget (the reason for 4 × 16): the JIT encodes vpdpbusd with VEX, whose destination must
// be one of ymm0–15, so a tile keeps at most 16 int32 accumulators live; 4 rows × 2 vectors leaves room
// for the two weight vectors and the broadcast, and the binary32 accumulators live in zmm16–31.
// Measured on one Zen 5 core: 4 × 16 ≈ 340 G int8 multiply-adds·2/s, against 290–310 for 3 × 32,
// 2 × 32 and 5 × 16, and ≈ 175 GFLOP/s for the binary32 GEMM at the same shapes.
//
// Determinism: every output is Σ over blocks in increasing order, independent of how rows and panels
// fall into tasks, so results are bit-identical across runs and thread counts.
public static unsafe partial class Gemm
{
    const int QPanel = 16, QRows = 4;
    const int QBlockBytes = 8 * QPanel * 4 + QPanel * 4 + QPanel * 4; // quads, scales, corrections

    /// <summary>
    /// Whether <see cref="Linear(ReadOnlySpan{float}, int, WeightMatrix, Span{float}, ReadOnlySpan{float})"/>
    /// at <paramref name="width"/> multiplies more than <see cref="Gemv.LinearRows"/> rows of X with
    /// <paramref name="weights"/> in int8 (<see cref="Gemv.QuantizedActivationReference"/> with 8 activation
    /// bits is then its specification): Q8_0 or Q4_0 weights on 512-bit vectors with AVX-VNNI.
    /// </summary>
    internal static bool QuantizesActivations(SimdWidth width, DType weights)
        => weights is DType.Q8_0 or DType.Q4_0 && width == SimdWidth.V512 && AvxVnni.IsSupported && Avx512F.IsSupported && Avx512BW.IsSupported;

    /// <summary>Whether a Linear of <paramref name="m"/> rows with <paramref name="weights"/> runs the int8 GEMM on this machine.</summary>
    public static bool TakesInt8Path(DType weights, int m) => m > Gemv.LinearRows(Simd.Current) && QuantizesActivations(Simd.Current, weights);

    [ThreadStatic] static byte* t_qx;
    [ThreadStatic] static long t_qxCapacity;
    [ThreadStatic] static Gemv.AlignedOwner? t_qxOwner;
    [ThreadStatic] static byte* t_panel;
    [ThreadStatic] static long t_panelCapacity;
    [ThreadStatic] static Gemv.AlignedOwner? t_panelOwner;

    /// <summary>Y (m, N) = X (m, K)·Wᵀ + bias with X quantized to int8 per block; arguments validated.</summary>
    static void LinearQuantized(KernelPool pool, float* x, int m, in WeightMatrix w, float* y, float* bias)
    {
        int k = w.Cols, blocks = k / DTypes.Q8BlockSize;
        // X as m rows of k unsigned quants (q + 128), then m·blocks binary32 scales.
        long quantBytes = ((long)m * k + 63) & ~63L;
        byte* qx = Gemv.ThreadScratch(ref t_qx, ref t_qxCapacity, ref t_qxOwner, quantBytes + (long)m * blocks * sizeof(float));
        var dx = (float*)(qx + quantBytes);
        var quantize = new QuantizeTask { X = x, K = k, Q = qx, DX = dx, Tasks = Partition.Tasks(m, Math.Max(1, 16384 / k), pool), M = m };
        if (quantize.Tasks <= 1) quantize.Execute(0);
        else pool.Run(quantize.Tasks, ref quantize);

        int panels = (w.Rows + QPanel - 1) / QPanel;
        long perPanel = (long)m * k * QPanel;
        var task = new PanelTask { W = w, QX = qx, DX = dx, M = m, Y = y, Bias = bias, Panels = panels };
        task.Tasks = Partition.Tasks(panels, Math.Max(1, (2L << 20) / Math.Max(1, perPanel)), pool);
        if (task.Tasks <= 1) task.Execute(0);
        else pool.Run(task.Tasks, ref task);
    }

    struct QuantizeTask : IParallelTask
    {
        public float* X, DX;
        public byte* Q;
        public int K, M, Tasks;

        public void Execute(int index)
        {
            var (r0, r1) = Partition.Range(M, Tasks, index);
            int blocks = K / DTypes.Q8BlockSize;
            for (int i = r0; i < r1; i++) QuantizeRowUnsigned(X + (nint)i * K, blocks, Q + (nint)i * K, DX + (nint)i * blocks);
        }
    }

    /// <summary>
    /// One row of X → unsigned quants q + 128 and block scales, q and dx exactly those of
    /// <see cref="Gemv.QuantizeX8Reference"/> (ggml's quantize_row_q8_0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void QuantizeRowUnsigned(float* x, int blocks, byte* q, float* dx)
    {
        var offset = Vector512.Create(128);
        for (int b = 0; b < blocks; b++, x += DTypes.Q8BlockSize, q += DTypes.Q8BlockSize)
        {
            var v0 = Vector512.Load(x);
            var v1 = Vector512.Load(x + 16);
            float amax = Gemv.BlockAbsMax(v0, v1);
            dx[b] = Half16.ToSingle(Half16.FromSingle(amax / 127f));
            var id = Vector512.Create(amax != 0 ? 127f / amax : 0f);
            // |quant| ≤ 127, so q + 128 ∈ [1, 255] and vpmovdb's truncation keeps it.
            var i0 = Vector512.ConvertToInt32(Vector512.Round(v0 * id)) + offset;
            var i1 = Vector512.ConvertToInt32(Vector512.Round(v1 * id)) + offset;
            Avx512F.ConvertToVector128Byte(i0).Store(q);
            Avx512F.ConvertToVector128Byte(i1).Store(q + 16);
        }
    }

    /// <summary>Scalar twin of <see cref="QuantizeRowUnsigned"/>.</summary>
    internal static void QuantizeRowUnsignedReference(float* x, int blocks, byte* q, float* dx)
    {
        var quants = new short[DTypes.Q8BlockSize];
        for (int b = 0; b < blocks; b++)
        {
            fixed (short* pq = quants)
                Gemv.QuantizeX8Reference(x + b * DTypes.Q8BlockSize, 1, pq, dx + b);
            for (int j = 0; j < DTypes.Q8BlockSize; j++) q[b * DTypes.Q8BlockSize + j] = (byte)(quants[j] + 128);
        }
    }

    struct PanelTask : IParallelTask
    {
        public WeightMatrix W;
        public byte* QX;
        public float* DX, Y, Bias;
        public int M, Panels, Tasks;

        public void Execute(int index)
        {
            var (p0, p1) = Partition.Range(Panels, Tasks, index);
            int k = W.Cols, blocks = k / DTypes.Q8BlockSize, n = W.Rows;
            byte* panel = Gemv.ThreadScratch(ref t_panel, ref t_panelCapacity, ref t_panelOwner, (long)blocks * QBlockBytes + 2 * QRows * QPanel * sizeof(float) + 64);
            float* edge = (float*)(panel + (long)blocks * QBlockBytes);      // QRows × QPanel outputs of a narrow panel
            float* edgeBias = edge + QRows * QPanel;                          // its padded bias
            for (int p = p0; p < p1; p++)
            {
                int c0 = p * QPanel, cols = Math.Min(QPanel, n - c0);
                PackPanel(W, c0, cols, panel);
                float* bias = Bias == null ? null : Bias + c0;
                if (bias != null && cols < QPanel)
                {
                    new Span<float>(edgeBias, QPanel).Clear();
                    new Span<float>(bias, cols).CopyTo(new Span<float>(edgeBias, QPanel));
                    bias = edgeBias;
                }
                for (int i = 0; i < M; i += QRows)
                {
                    int rows = Math.Min(QRows, M - i);
                    // Rows past M repeat the last row; their outputs go to the edge buffer and are dropped.
                    byte* a0 = QX + (nint)i * k;
                    byte* a1 = QX + (nint)Math.Min(i + 1, M - 1) * k;
                    byte* a2 = QX + (nint)Math.Min(i + 2, M - 1) * k;
                    byte* a3 = QX + (nint)Math.Min(i + 3, M - 1) * k;
                    float* d0 = DX + (nint)i * blocks;
                    float* d1 = DX + (nint)Math.Min(i + 1, M - 1) * blocks;
                    float* d2 = DX + (nint)Math.Min(i + 2, M - 1) * blocks;
                    float* d3 = DX + (nint)Math.Min(i + 3, M - 1) * blocks;
                    bool direct = cols == QPanel && rows == QRows;
                    float* c = direct ? Y + (nint)i * n + c0 : edge;
                    nint ldc = direct ? n : QPanel;
                    Tile(a0, a1, a2, a3, d0, d1, d2, d3, blocks, panel, bias, c, ldc);
                    if (!direct)
                        for (int r = 0; r < rows; r++)
                            new Span<float>(edge + r * QPanel, cols).CopyTo(new Span<float>(Y + (nint)(i + r) * n + c0, cols));
                }
            }
        }
    }

    // Rows c0 … c0+cols−1 of W → one panel (columns past cols are zero weights with scale 0).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackPanel(in WeightMatrix w, int c0, int cols, byte* panel)
    {
        int blocks = w.Cols / DTypes.Q8BlockSize;
        bool q8 = w.DType == DType.Q8_0;
        var low = Vector128.Create((byte)0x0F);
        var eight = Vector256.Create((sbyte)8);
        var flip = Vector256.Create((byte)0x80);
        int* unpacked = stackalloc int[8];
        // Column by column, so each weight row streams in order.
        for (int c = 0; c < QPanel; c++)
        {
            for (int b = 0; b < blocks; b++)
            {
                byte* dst = panel + (long)b * QBlockBytes;
                var scales = (float*)(dst + 8 * QPanel * 4);
                var corrections = (int*)(dst + 8 * QPanel * 4 + QPanel * 4);
                if (c >= cols)
                {
                    for (int g = 0; g < 8; g++) *(int*)(dst + g * QPanel * 4 + c * 4) = 0;
                    scales[c] = 0;
                    corrections[c] = 0;
                    continue;
                }
                int* words;
                Vector256<sbyte> q;
                ushort d;
                if (q8)
                {
                    var blk = (BlockQ8_0*)w.Row(c0 + c) + b;
                    d = blk->D;
                    words = (int*)blk->Qs;
                    q = Vector256.Load(blk->Qs);
                }
                else
                {
                    var blk = (BlockQ4_0*)w.Row(c0 + c) + b;
                    d = blk->D;
                    var v = Vector128.Load(blk->Qs);
                    // Byte j: value j in the low nibble, value j + 16 in the high one; value = nibble − 8.
                    q = Vector256.Create(v & low, Vector128.ShiftRightLogical(v, 4)).AsSByte() - eight;
                    q.Store((sbyte*)unpacked);
                    words = unpacked;
                }
                // Σ q = Σ (q + 128) − 32·128, the byte sums from vpsadbw against zero.
                var sums = Avx2.SumAbsoluteDifferences((q.AsByte() ^ flip), Vector256<byte>.Zero).AsInt64();
                corrections[c] = 128 * ((int)(sums[0] + sums[1] + sums[2] + sums[3]) - 32 * 128);
                for (int g = 0; g < 8; g++) *(int*)(dst + g * QPanel * 4 + c * 4) = words[g];
                scales[c] = Widen.Half(d);
            }
        }
    }

    // Four rows of X against one packed panel: C (4 × 16, row stride ldc) = Σ_b (dot_b − corr_b)·dw_b·dx_b (+ bias).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile(byte* a0, byte* a1, byte* a2, byte* a3, float* d0, float* d1, float* d2, float* d3,
        int blocks, byte* panel, float* bias, float* c, nint ldc)
    {
        var f0 = Vector512<float>.Zero;
        var f1 = Vector512<float>.Zero;
        var f2 = Vector512<float>.Zero;
        var f3 = Vector512<float>.Zero;
        for (int b = 0; b < blocks; b++)
        {
            byte* pb = panel + (nint)b * QBlockBytes;
            var i00 = Vector256<int>.Zero; var i01 = Vector256<int>.Zero;
            var i10 = Vector256<int>.Zero; var i11 = Vector256<int>.Zero;
            var i20 = Vector256<int>.Zero; var i21 = Vector256<int>.Zero;
            var i30 = Vector256<int>.Zero; var i31 = Vector256<int>.Zero;
            nint o = (nint)b * DTypes.Q8BlockSize;
            for (int g = 0; g < 8; g++, o += 4)
            {
                var w0 = Vector256.Load((sbyte*)(pb + g * 64));
                var w1 = Vector256.Load((sbyte*)(pb + g * 64 + 32));
                var x = Vector256.Create(*(int*)(a0 + o)).AsByte();
                i00 = AvxVnni.MultiplyWideningAndAdd(i00, x, w0);
                i01 = AvxVnni.MultiplyWideningAndAdd(i01, x, w1);
                x = Vector256.Create(*(int*)(a1 + o)).AsByte();
                i10 = AvxVnni.MultiplyWideningAndAdd(i10, x, w0);
                i11 = AvxVnni.MultiplyWideningAndAdd(i11, x, w1);
                x = Vector256.Create(*(int*)(a2 + o)).AsByte();
                i20 = AvxVnni.MultiplyWideningAndAdd(i20, x, w0);
                i21 = AvxVnni.MultiplyWideningAndAdd(i21, x, w1);
                x = Vector256.Create(*(int*)(a3 + o)).AsByte();
                i30 = AvxVnni.MultiplyWideningAndAdd(i30, x, w0);
                i31 = AvxVnni.MultiplyWideningAndAdd(i31, x, w1);
            }
            var scale = Vector512.Load((float*)(pb + 8 * QPanel * 4));
            var correction = Vector512.Load((int*)(pb + 8 * QPanel * 4 + QPanel * 4));
            f0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Vector512.Create(i00, i01) - correction), scale * d0[b], f0);
            f1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Vector512.Create(i10, i11) - correction), scale * d1[b], f1);
            f2 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Vector512.Create(i20, i21) - correction), scale * d2[b], f2);
            f3 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Vector512.Create(i30, i31) - correction), scale * d3[b], f3);
        }
        if (bias != null)
        {
            var bv = Vector512.Load(bias);
            f0 += bv; f1 += bv; f2 += bv; f3 += bv;
        }
        f0.Store(c);
        f1.Store(c + ldc);
        f2.Store(c + 2 * ldc);
        f3.Store(c + 3 * ldc);
    }
}
