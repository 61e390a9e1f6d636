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
// its panel into its thread's scratch and runs it against every row of X, six rows per tile. X's quants
// are interleaved in groups of six rows by 4-byte quad, so a tile's six broadcasts read one pointer.
//
// Register budget (the reason for 6 × 16): the JIT gives vpdpbusd a destination in ymm0–15 only (sources
// may be ymm16–31), so a tile keeps at most 16 int32 accumulators live without register copies; 6 rows × 2
// vectors = 12, and the binary32 sums live in a 6 × 16 scratch in L1, not in registers, which left the low
// registers to the accumulators in the JIT's allocation. A block's accumulators start at −(128·Σw), so its
// exact dot needs no correction afterwards. On one Zen 5 core, where 12 independent vpdpbusd chains reach
// ~7.1 G/s (8 chains 6.4, 4 chains 3.5: latency 4), T5-base's encoder matrices at 512 rows ran at
// ~315 G int8 multiply-adds·2/s, against ~300 for the former 4 × 16 tile with four row pointers and
// ~300 for 8 × 16, whose 16 accumulators left the JIT copying registers.
//
// Without AVX-VNNI (.NET 10 exposes vpdpbusd only in its VEX form, which Zen 4 and Ice Lake lack), the same
// GEMM runs int16 tiles on AVX-512BW: X's quants are stored signed as int16, row-major, each
// panel block is widened to 16 pairs × 16 columns × int16 while packing, and vpmaddwd (32 multiply-adds per
// 512-bit instruction, against the binary32 FMA's 16) plus vpaddd accumulates the same exact int32 dot per
// block. vpmaddubsw would read the bytes as they are but saturates its int16 pair sums (255·127·2 > 2¹⁵).
// On one Zen 4 core, vpmaddwd alone issues one per cycle, as the FMA does, but with its vpaddd ~0.68 per
// cycle (both want the same pipes): ~22 multiply-adds per cycle, ~1.36× the FMA. A tile is 8 rows × 16
// columns, 16 accumulators in registers; broadcasting X from memory costs nothing measurable there, and two
// panels side by side (6 × 32) ran no faster. Both forms give the same int32 dots and the same binary32
// operations after them, hence the same bits.
//
// Determinism: every output is Σ over blocks in increasing order, independent of how rows and panels
// fall into tasks, so results are bit-identical across runs and thread counts.
public static unsafe partial class Gemm
{
    const int QPanel = 16;
    /// <summary>Rows of X per tile, and the stride of <see cref="QuantizeRowInterleaved"/>'s output.</summary>
    internal const int QRows = 6;
    /// <summary>Rows of X per int16 tile.</summary>
    internal const int QRows16 = 8;
    const int QBlockBytes = 8 * QPanel * 4 + QPanel * 4 + QPanel * 4; // quads, scales, corrections
    const int QBlockBytes16 = 16 * QPanel * 4 + QPanel * 4; // int16 pairs, scales

    [ThreadStatic] static bool t_int16Tiles;

    /// <summary>Whether int8 GEMMs called from this thread run the AVX-512BW int16 tiles (always where AVX-VNNI is absent).</summary>
    internal static bool Int16Tiles => t_int16Tiles || !AvxVnni.IsSupported;

    /// <summary>Runs int8 GEMMs called from this thread on the AVX-512BW int16 tiles until the result is disposed (tests of that path on a machine with AVX-VNNI).</summary>
    internal static IDisposable UseInt16Tiles()
    {
        bool previous = t_int16Tiles;
        t_int16Tiles = true;
        return new RestoreInt16(previous);
    }

    sealed class RestoreInt16(bool previous) : IDisposable
    {
        public void Dispose() => t_int16Tiles = previous;
    }

    /// <summary>
    /// Whether <see cref="Linear(ReadOnlySpan{float}, int, WeightMatrix, Span{float}, ReadOnlySpan{float})"/>
    /// at <paramref name="width"/> multiplies more than <see cref="Gemv.LinearRows"/> rows of X with
    /// <paramref name="weights"/> in int8 (<see cref="Gemv.QuantizedActivationReference"/> with 8 activation
    /// bits is then its specification): Q8_0, Q4_0 or Q4_0R8 weights on 512-bit vectors with AVX-512BW (vpdpbusd tiles
    /// with AVX-VNNI, vpmaddwd tiles without).
    /// </summary>
    internal static bool QuantizesActivations(SimdWidth width, DType weights)
        => weights is DType.Q8_0 or DType.Q4_0 or DType.Q4_0R8 && width == SimdWidth.V512 && Avx512F.IsSupported && Avx512BW.IsSupported;

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
        bool wide = Int16Tiles;
        int k = w.Cols, blocks = k / DTypes.Q8BlockSize, rows = wide ? QRows16 : QRows, groups = (m + rows - 1) / rows;
        // X's quants (q + 128) in groups of QRows rows, interleaved by quad: group g, quad j (inputs 4j … 4j+3),
        // row r at g·k·QRows + (j·QRows + r)·4, so a tile's broadcasts of one quad are adjacent. For the int16
        // tiles, the signed quants as int16, row-major (row i at 2k·i), in groups of QRows16 rows that a tile reads
        // as eight streams. Rows past m in the last group are zero quants with scale 0; their outputs are
        // dropped. Then the scales, (groups, blocks, rows per group).
        long groupBytes = (long)k * rows * (wide ? 2 : 1), interleaved = groups * groupBytes;
        byte* qx = Gemv.ThreadScratch(ref t_qx, ref t_qxCapacity, ref t_qxOwner, interleaved + (long)groups * blocks * rows * sizeof(float));
        var dx = (float*)(qx + interleaved);
        var quantize = new QuantizeTask { X = x, K = k, Q = qx, DX = dx, M = m, Groups = groups, Wide = wide, R = rows };
        quantize.Tasks = Partition.Tasks(groups, Math.Max(1, 16384 / (k * rows)), pool);
        if (quantize.Tasks <= 1) quantize.Execute(0);
        else pool.Run(quantize.Tasks, ref quantize);

        int panels = (w.Rows + QPanel - 1) / QPanel;
        long perPanel = (long)m * k * QPanel;
        var task = new PanelTask { W = w, QX = qx, DX = dx, M = m, Y = y, Bias = bias, Panels = panels, Wide = wide, R = rows };
        task.Tasks = Partition.Tasks(panels, Math.Max(1, (2L << 20) / Math.Max(1, perPanel)), pool);
        if (task.Tasks <= 1) task.Execute(0);
        else pool.Run(task.Tasks, ref task);
    }

    struct QuantizeTask : IParallelTask
    {
        public float* X, DX;
        public byte* Q;
        public int K, M, Groups, Tasks, R;
        public bool Wide;

        public void Execute(int index)
        {
            var (g0, g1) = Partition.Range(Groups, Tasks, index);
            int blocks = K / DTypes.Q8BlockSize, words = Wide ? K / 2 : K / 4;
            int zero = unchecked((int)0x80808080);   // four quants 0, stored + 128
            for (int g = g0; g < g1; g++)
            {
                var group = (int*)(Q + (long)g * words * 4 * R);
                float* scales = DX + (long)g * blocks * R;
                for (int r = 0; r < R; r++)
                {
                    int i = g * R + r;
                    if (Wide)
                    {
                        var row = (short*)(group + r * words);
                        if (i < M) QuantizeRowInt16(X + (nint)i * K, blocks, row, scales + r);
                        else new Span<short>(row, K).Clear();
                    }
                    else if (i < M) QuantizeRowInterleaved(X + (nint)i * K, blocks, group + r, scales + r);
                    else for (int j = 0; j < words; j++) group[j * R + r] = zero;
                    if (i >= M)
                        for (int b = 0; b < blocks; b++) scales[b * R + r] = 0;
                }
            }
        }
    }

    /// <summary>
    /// One row of X → unsigned quants q + 128 and block scales, q and dx exactly those of
    /// <see cref="Gemv.QuantizeX8Reference"/> (ggml's quantize_row_q8_0), written for the tiles: quad j of the
    /// row (as an int) to quads[j·QRows], block b's scale to scales[b·QRows].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void QuantizeRowInterleaved(float* x, int blocks, int* quads, float* scales)
    {
        for (int b = 0; b < blocks; b++, x += DTypes.Q8BlockSize, quads += 8 * QRows)
        {
            var (lo, hi) = QuantizeBlockUnsigned(x, out scales[b * QRows]);
            var l = lo.AsInt32();
            var h = hi.AsInt32();
            quads[0] = l.GetElement(0);
            quads[QRows] = l.GetElement(1);
            quads[2 * QRows] = l.GetElement(2);
            quads[3 * QRows] = l.GetElement(3);
            quads[4 * QRows] = h.GetElement(0);
            quads[5 * QRows] = h.GetElement(1);
            quads[6 * QRows] = h.GetElement(2);
            quads[7 * QRows] = h.GetElement(3);
        }
    }

    /// <summary>
    /// One row of X → its quants (those of <see cref="QuantizeRowInterleaved"/>, signed) as int16 for the int16 tiles:
    /// k values in order to q, block b's scale to scales[b·QRows16].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void QuantizeRowInt16(float* x, int blocks, short* q, float* scales)
    {
        for (int b = 0; b < blocks; b++, x += DTypes.Q8BlockSize, q += DTypes.Q8BlockSize)
        {
            var (i0, i1) = QuantizeBlock(x, out scales[b * QRows16]);
            Avx512F.ConvertToVector256Int16(i0).Store(q);
            Avx512F.ConvertToVector256Int16(i1).Store(q + 16);
        }
    }

    // One block of 32 values → its quants + 128 (values 0–15, 16–31) and its scale.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Vector128<byte> Lo, Vector128<byte> Hi) QuantizeBlockUnsigned(float* x, out float dx)
    {
        var (i0, i1) = QuantizeBlock(x, out dx);
        var offset = Vector512.Create(128);
        // |quant| ≤ 127, so q + 128 ∈ [1, 255] and vpmovdb's truncation keeps it.
        return (Avx512F.ConvertToVector128Byte(i0 + offset), Avx512F.ConvertToVector128Byte(i1 + offset));
    }

    // One block of 32 values → its quants (values 0–15, 16–31) and its scale, as ggml's quantize_row_q8_0.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Vector512<int> Lo, Vector512<int> Hi) QuantizeBlock(float* x, out float dx)
    {
        var v0 = Vector512.Load(x);
        var v1 = Vector512.Load(x + 16);
        float amax = Gemv.BlockAbsMax(v0, v1);
        dx = Half16.ToSingle(Half16.FromSingle(amax / 127f));
        var id = Vector512.Create(amax != 0 ? 127f / amax : 0f);
        return (Vector512.ConvertToInt32(Vector512.Round(v0 * id)), Vector512.ConvertToInt32(Vector512.Round(v1 * id)));
    }

    /// <summary>Scalar twin of <see cref="QuantizeRowInterleaved"/>, written row-major: q (k bytes) and dx (blocks).</summary>
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
        public int M, Panels, Tasks, R;
        public bool Wide;

        public void Execute(int index)
        {
            var (p0, p1) = Partition.Range(Panels, Tasks, index);
            int k = W.Cols, blocks = k / DTypes.Q8BlockSize, n = W.Rows;
            long panelBytes = (long)blocks * (Wide ? QBlockBytes16 : QBlockBytes), groupBytes = (long)k * R * (Wide ? 2 : 1);
            byte* panel = Gemv.ThreadScratch(ref t_panel, ref t_panelCapacity, ref t_panelOwner, panelBytes + (QRows16 + 1) * QPanel * sizeof(float) + 64);
            float* edge = (float*)(panel + panelBytes);                       // R × QPanel outputs of a partial tile
            float* edgeBias = edge + QRows16 * QPanel;                        // a narrow panel's padded bias
            for (int p = p0; p < p1; p++)
            {
                int c0 = p * QPanel, cols = Math.Min(QPanel, n - c0);
                PackPanel(W, c0, cols, panel, Wide);
                float* bias = Bias == null ? null : Bias + c0;
                if (bias != null && cols < QPanel)
                {
                    new Span<float>(edgeBias, QPanel).Clear();
                    new Span<float>(bias, cols).CopyTo(new Span<float>(edgeBias, QPanel));
                    bias = edgeBias;
                }
                for (int i = 0, g = 0; i < M; i += R, g++)
                {
                    int rows = Math.Min(R, M - i);
                    bool direct = cols == QPanel && rows == R;
                    float* c = direct ? Y + (nint)i * n + c0 : edge;
                    nint ldc = direct ? n : QPanel;
                    byte* xg = QX + g * groupBytes;
                    float* dx = DX + (long)g * blocks * R;
                    if (Wide) Tile16(xg, 2L * k, dx, blocks, panel, bias, c, ldc);
                    else Tile(xg, dx, blocks, panel, bias, c, ldc);
                    if (!direct)
                        for (int r = 0; r < rows; r++)
                            new Span<float>(edge + r * QPanel, cols).CopyTo(new Span<float>(Y + (nint)(i + r) * n + c0, cols));
                }
            }
        }
    }

    // Rows c0 … c0+cols−1 of W → one panel (columns past cols are zero weights with scale 0). Per block, the
    // 16 columns' quants are read as eight pairs (column i | column i + 8) of 32 bytes and transposed as 8 × 8
    // int32 in each 256-bit half (unpacks by 32 and 64 bits, then vpermt2q across 128-bit lanes), so group g
    // (inputs 4g … 4g+3) of every column lands in one 64-byte store; the corrections come from the same
    // vectors (vpmaddubsw against ones, summed over the groups, then vpmaddwd). For the int16 tiles (wide), each
    // group is sign-extended and split into its two pairs (inputs 4g, 4g+1 and 4g+2, 4g+3), 16 columns × int16
    // pair per 64-byte line, and the block's scales follow its 16 pairs.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackPanel(in WeightMatrix w, int c0, int cols, byte* panel, bool wide)
    {
        int blocks = w.Cols / DTypes.Q8BlockSize;
        bool q8 = w.DType == DType.Q8_0, r8 = w.DType == DType.Q4_0R8;
        byte** rows = stackalloc byte*[QPanel];
        for (int c = 0; c < QPanel; c++) rows[c] = c < cols ? (byte*)w.Row(c0 + c) : null;
        uint* halves = stackalloc uint[QPanel];
        var lowLanes = Vector512.Create(0L, 1, 8, 9, 4, 5, 12, 13);
        var highLanes = Vector512.Create(2L, 3, 10, 11, 6, 7, 14, 15);
        var ones = Vector512.Create((byte)1);
        var onePairs = Vector512.Create((short)1);
        int blockBytes = wide ? QBlockBytes16 : QBlockBytes, quantBytes = wide ? 16 * QPanel * 4 : 8 * QPanel * 4;
        for (int b = 0; b < blocks; b++)
        {
            byte* dst = panel + (long)b * blockBytes;
            var z0 = Pair(rows, 0, b, q8, r8, halves);
            var z1 = Pair(rows, 1, b, q8, r8, halves);
            var z2 = Pair(rows, 2, b, q8, r8, halves);
            var z3 = Pair(rows, 3, b, q8, r8, halves);
            var z4 = Pair(rows, 4, b, q8, r8, halves);
            var z5 = Pair(rows, 5, b, q8, r8, halves);
            var z6 = Pair(rows, 6, b, q8, r8, halves);
            var z7 = Pair(rows, 7, b, q8, r8, halves);
            var t0 = Avx512F.UnpackLow(z0, z1).AsInt64();
            var t1 = Avx512F.UnpackHigh(z0, z1).AsInt64();
            var t2 = Avx512F.UnpackLow(z2, z3).AsInt64();
            var t3 = Avx512F.UnpackHigh(z2, z3).AsInt64();
            var t4 = Avx512F.UnpackLow(z4, z5).AsInt64();
            var t5 = Avx512F.UnpackHigh(z4, z5).AsInt64();
            var t6 = Avx512F.UnpackLow(z6, z7).AsInt64();
            var t7 = Avx512F.UnpackHigh(z6, z7).AsInt64();
            var u0 = Avx512F.UnpackLow(t0, t2);
            var u1 = Avx512F.UnpackHigh(t0, t2);
            var u2 = Avx512F.UnpackLow(t1, t3);
            var u3 = Avx512F.UnpackHigh(t1, t3);
            var u4 = Avx512F.UnpackLow(t4, t6);
            var u5 = Avx512F.UnpackHigh(t4, t6);
            var u6 = Avx512F.UnpackLow(t5, t7);
            var u7 = Avx512F.UnpackHigh(t5, t7);
            // Group g of columns 0–3, 4–7, 8–11, 12–15: u_(g mod 4) holds columns 0–3 and 8–11, u_(g mod 4 + 4) the others.
            var sum = Vector512<short>.Zero;
            sum += Store(dst, 0, Avx512F.PermuteVar8x64x2(u0, lowLanes, u4), ones, wide);
            sum += Store(dst, 1, Avx512F.PermuteVar8x64x2(u1, lowLanes, u5), ones, wide);
            sum += Store(dst, 2, Avx512F.PermuteVar8x64x2(u2, lowLanes, u6), ones, wide);
            sum += Store(dst, 3, Avx512F.PermuteVar8x64x2(u3, lowLanes, u7), ones, wide);
            sum += Store(dst, 4, Avx512F.PermuteVar8x64x2(u0, highLanes, u4), ones, wide);
            sum += Store(dst, 5, Avx512F.PermuteVar8x64x2(u1, highLanes, u5), ones, wide);
            sum += Store(dst, 6, Avx512F.PermuteVar8x64x2(u2, highLanes, u6), ones, wide);
            sum += Store(dst, 7, Avx512F.PermuteVar8x64x2(u3, highLanes, u7), ones, wide);
            Widen.HalfBits(Vector512.Load(halves)).Store((float*)(dst + quantBytes));
            if (!wide) (Avx512BW.MultiplyAddAdjacent(sum, onePairs) << 7).Store((int*)(dst + quantBytes + QPanel * 4));   // 128·Σ quants
        }
    }

    // Columns i and i + 8 of block b as one vector of 16 int32 (4 quants each), their scales' bits into halves.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> Pair(byte** rows, int i, int b, bool q8, bool r8, uint* halves)
        => Avx512F.InsertVector256(Quants(rows[i], b, q8, r8, halves + i).AsInt32().ToVector512Unsafe(), Quants(rows[i + 8], b, q8, r8, halves + i + 8).AsInt32(), 1);

    // The 32 quants of block b of a weight row (zeros and scale 0 for a column past the matrix).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<sbyte> Quants(byte* row, int b, bool q8, bool r8, uint* half)
    {
        if (row == null)
        {
            *half = 0;
            return Vector256<sbyte>.Zero;
        }
        if (q8)
        {
            var blk = (BlockQ8_0*)row + b;
            *half = blk->D;
            return Vector256.Load(blk->Qs);
        }
        BlockQ4_0 scratch;
        var q4 = Q4R8.BlockOf(row, b, r8, &scratch);
        *half = q4->D;
        var v = Vector128.Load(q4->Qs);
        // Byte j: value j in the low nibble, value j + 16 in the high one; value = nibble − 8.
        return Vector256.Create(v & Vector128.Create((byte)0x0F), Vector128.ShiftRightLogical(v, 4)).AsSByte() - Vector256.Create((sbyte)8);
    }

    // Stores group g (16 columns × 4 quants; wide: its pairs 2g and 2g + 1, 16 columns × 2 int16 each) and
    // gives its pairwise quant sums (vpmaddubsw against ones).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> Store(byte* dst, int g, Vector512<long> group, Vector512<byte> ones, bool wide)
    {
        if (wide)
        {
            // Columns 0–7 and 8–15 sign-extended: int of index 2c holds column c's inputs 4g, 4g+1, 2c+1 its 4g+2, 4g+3.
            var lo = Avx512BW.ConvertToVector512Int16(group.GetLower().AsSByte()).AsInt32();
            var hi = Avx512BW.ConvertToVector512Int16(group.GetUpper().AsSByte()).AsInt32();
            var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            Avx512F.PermuteVar16x32x2(lo, even, hi).Store((int*)(dst + 2 * g * 64));
            Avx512F.PermuteVar16x32x2(lo, even + Vector512<int>.One, hi).Store((int*)(dst + (2 * g + 1) * 64));
            return default;   // the int16 tiles need no corrections (their X quants are signed)
        }
        group.Store((long*)(dst + g * 64));
        return Avx512BW.MultiplyAddAdjacent(ones, group.AsSByte());
    }

    // QRows rows of X (one interleaved group, its scales dx (blocks, QRows)) against one packed panel:
    // C (QRows × 16, row stride ldc) = Σ_b (dot_b − corr_b)·dw_b·dx_b (+ bias). Each int32 accumulator starts
    // at −corr_b, so the block's exact dot minus its correction needs no subtraction.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile(byte* xg, float* dx, int blocks, byte* panel, float* bias, float* c, nint ldc)
    {
        float* acc = stackalloc float[QRows * QPanel];
        new Span<float>(acc, QRows * QPanel).Clear();
        for (int b = 0; b < blocks; b++, dx += QRows)
        {
            byte* pb = panel + (nint)b * QBlockBytes;
            var corr = (int*)(pb + 8 * QPanel * 4 + QPanel * 4);
            var n0 = -Vector256.Load(corr);
            var n1 = -Vector256.Load(corr + 8);
            Vector256<int> i00 = n0, i01 = n1, i10 = n0, i11 = n1, i20 = n0, i21 = n1;
            Vector256<int> i30 = n0, i31 = n1, i40 = n0, i41 = n1, i50 = n0, i51 = n1;
            byte* xb = xg + (nint)b * 8 * 4 * QRows;
            for (int g = 0; g < 8; g++, xb += 4 * QRows)
            {
                var w0 = Vector256.Load((sbyte*)(pb + g * 64));
                var w1 = Vector256.Load((sbyte*)(pb + g * 64 + 32));
                var x = Vector256.Create(*(int*)xb).AsByte();
                i00 = AvxVnni.MultiplyWideningAndAdd(i00, x, w0);
                i01 = AvxVnni.MultiplyWideningAndAdd(i01, x, w1);
                x = Vector256.Create(*(int*)(xb + 4)).AsByte();
                i10 = AvxVnni.MultiplyWideningAndAdd(i10, x, w0);
                i11 = AvxVnni.MultiplyWideningAndAdd(i11, x, w1);
                x = Vector256.Create(*(int*)(xb + 8)).AsByte();
                i20 = AvxVnni.MultiplyWideningAndAdd(i20, x, w0);
                i21 = AvxVnni.MultiplyWideningAndAdd(i21, x, w1);
                x = Vector256.Create(*(int*)(xb + 12)).AsByte();
                i30 = AvxVnni.MultiplyWideningAndAdd(i30, x, w0);
                i31 = AvxVnni.MultiplyWideningAndAdd(i31, x, w1);
                x = Vector256.Create(*(int*)(xb + 16)).AsByte();
                i40 = AvxVnni.MultiplyWideningAndAdd(i40, x, w0);
                i41 = AvxVnni.MultiplyWideningAndAdd(i41, x, w1);
                x = Vector256.Create(*(int*)(xb + 20)).AsByte();
                i50 = AvxVnni.MultiplyWideningAndAdd(i50, x, w0);
                i51 = AvxVnni.MultiplyWideningAndAdd(i51, x, w1);
            }
            var scale = Vector512.Load((float*)(pb + 8 * QPanel * 4));
            Accumulate(acc, i00, i01, scale * dx[0]);
            Accumulate(acc + 16, i10, i11, scale * dx[1]);
            Accumulate(acc + 32, i20, i21, scale * dx[2]);
            Accumulate(acc + 48, i30, i31, scale * dx[3]);
            Accumulate(acc + 64, i40, i41, scale * dx[4]);
            Accumulate(acc + 80, i50, i51, scale * dx[5]);
        }
        var bv = bias != null ? Vector512.Load(bias) : Vector512<float>.Zero;
        for (int r = 0; r < QRows; r++) (Vector512.Load(acc + r * QPanel) + bv).Store(c + r * ldc);
    }

    // The int16 form of Tile: QRows16 rows of X (int16 quants, ldx bytes apart) against one panel packed wide. Per
    // block, 16 pair steps of one vpmaddwd and one vpaddd per row give the exact int32 dot (no correction, the
    // quants are signed); then, as in Tile, one rounding for dw·dx and one for the fused add, so the same bits.
    // Eight int32 and eight binary32 accumulators stay in registers (EVEX instructions reach zmm16–31); each row's
    // pair is broadcast from its own stream.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tile16(byte* xg, long ldx, float* dx, int blocks, byte* panel, float* bias, float* c, nint ldc)
    {
        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
        byte* x0 = xg, x1 = x0 + ldx, x2 = x1 + ldx, x3 = x2 + ldx, x4 = x3 + ldx, x5 = x4 + ldx, x6 = x5 + ldx, x7 = x6 + ldx;
        for (int b = 0; b < blocks; b++, dx += QRows16)
        {
            byte* pb = panel + (nint)b * QBlockBytes16;
            Vector512<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            nint o = (nint)b * 64;
            for (int p = 0; p < 16 * 64; p += 64, o += 4)
            {
                var w = Vector512.Load((short*)(pb + p));
                a0 += Avx512BW.MultiplyAddAdjacent(w, Vector512.Create(*(int*)(x0 + o)).AsInt16());
                a1 += Avx512BW.MultiplyAddAdjacent(w, Vector512.Create(*(int*)(x1 + o)).AsInt16());
                a2 += Avx512BW.MultiplyAddAdjacent(w, Vector512.Create(*(int*)(x2 + o)).AsInt16());
                a3 += Avx512BW.MultiplyAddAdjacent(w, Vector512.Create(*(int*)(x3 + o)).AsInt16());
                a4 += Avx512BW.MultiplyAddAdjacent(w, Vector512.Create(*(int*)(x4 + o)).AsInt16());
                a5 += Avx512BW.MultiplyAddAdjacent(w, Vector512.Create(*(int*)(x5 + o)).AsInt16());
                a6 += Avx512BW.MultiplyAddAdjacent(w, Vector512.Create(*(int*)(x6 + o)).AsInt16());
                a7 += Avx512BW.MultiplyAddAdjacent(w, Vector512.Create(*(int*)(x7 + o)).AsInt16());
            }
            var scale = Vector512.Load((float*)(pb + 16 * QPanel * 4));
            s0 = Scaled(a0, scale, dx[0], s0);
            s1 = Scaled(a1, scale, dx[1], s1);
            s2 = Scaled(a2, scale, dx[2], s2);
            s3 = Scaled(a3, scale, dx[3], s3);
            s4 = Scaled(a4, scale, dx[4], s4);
            s5 = Scaled(a5, scale, dx[5], s5);
            s6 = Scaled(a6, scale, dx[6], s6);
            s7 = Scaled(a7, scale, dx[7], s7);
        }
        var bv = bias != null ? Vector512.Load(bias) : Vector512<float>.Zero;
        (s0 + bv).Store(c);
        (s1 + bv).Store(c + ldc);
        (s2 + bv).Store(c + 2 * ldc);
        (s3 + bv).Store(c + 3 * ldc);
        (s4 + bv).Store(c + 4 * ldc);
        (s5 + bv).Store(c + 5 * ldc);
        (s6 + bv).Store(c + 6 * ldc);
        (s7 + bv).Store(c + 7 * ldc);
    }

    // sum + dot·(dw·dx): the block's one rounding for the scale and one for the fused add.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Scaled(Vector512<int> dot, Vector512<float> dw, float dx, Vector512<float> sum)
        => Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(dot), dw * dx, sum);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Accumulate(float* acc, Vector256<int> lo, Vector256<int> hi, Vector512<float> scale)
        => Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512F.InsertVector256(lo.ToVector512Unsafe(), hi, 1)), scale, Vector512.Load(acc)).Store(acc);
}
