using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Encore.Tensors.Numerics;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

/// <summary>
/// Matrix–vector product for batch-1 decoding, y = W·x (+ bias), W (N, K) in any weight dtype.
/// Decoding is bound by reading W, so every weight row is streamed from memory once. F32, bf16 and
/// binary16 rows are widened to binary32 in registers (bf16 by a shift, binary16 by bit manipulation and
/// a power-of-two multiply), as ggml's <c>ggml_vec_dot_*</c> do, and x stays binary32: the result
/// matches <see cref="Gemm.LinearReference"/> to float rounding (about 1e-6·Σ|x·w|).
/// Q8_0 reads ~1.06 bytes per weight, so a core must take twice bf16's weights per second, and widening
/// every quant to binary32 could not keep up (two Zen 5 cores read 4096×4096 Q8_0 at ~67% of the
/// measured DRAM read bandwidth that way). With AVX-512BW, x is therefore quantized once per call to
/// int16 per block of 32 (dx_b = max|x_b|/32767, see <see cref="QuantizedActivationReference"/>) and each
/// block is one exact integer dot product (<c>vpmovsxbw</c> + <c>vpmaddwd</c>) scaled by dw_b·dx_b, with an
/// L2 prefetch far ahead: 1.26–1.31× the binary32-x kernel side by side on two loaded cores (~1.35× on
/// one), and on a quiet machine two cores read 4096×4096 Q8_0 at about the probed DRAM read bandwidth. llama.cpp quantizes x to int8 (Q8_0) instead; int16 keeps the
/// activation error at most (½ + 2⁻⁸)·dx_b per value, about 1.5e-5 of the block maximum, far below the
/// weights' own Q8_0 error: the result stays within Σ_b (½ + 2⁻⁸)·dx_b·‖w_b‖₁ (+ float rounding) of the
/// binary32-x product. Other vector widths keep binary32 x and the int8 → binary32 widening.
/// On 512-bit vectors, batches of two or more rows of binary32, bf16, f16 or Q8_0 weights take the wide
/// tiles instead (binary32 x, Q8_0 dequantized once per block; see <see cref="TakesWideTiles"/>), and Q8_0 then follows <see cref="Gemm.LinearReference"/> to float rounding.
/// Rows are split over the kernel pool; each y element is one task's dot product in a fixed order,
/// so results do not depend on the thread count (they do depend on the vector width, and one row sums in another
/// order than a batch).
/// </summary>
public static unsafe partial class Gemv
{
    /// <summary>
    /// Most rows of X that <see cref="Gemm.Linear(ReadOnlySpan{float}, int, WeightMatrix, Span{float}, ReadOnlySpan{float})"/>
    /// sends to the GEMV path (<see cref="LinearRows"/> gives the limit per vector width).
    /// </summary>
    public const int MaxRows = 16;

    /// <summary>
    /// Rows of X up to which the GEMV path beats the packed GEMM (measured at 4096×4096: 16 with
    /// 512-bit vectors, whose 4×4 tiles keep X traffic low; 8 with narrower ones).
    /// </summary>
    public static int LinearRows(SimdWidth width) => width == SimdWidth.V512 ? MaxRows : 8;

    /// <summary>X rows that share one widening of a weight vector (the accumulators of four rows fit the registers).</summary>
    const int Group = 4;

    /// <summary>Weights per task below which a GEMV task is not split further.</summary>
    const long MinTaskElements = 64 * 1024;

    /// <summary>Chunks each thread's region of rows is claimed in (see GemvTask.Execute).</summary>
    const int RegionChunks = 8;

    /// <summary>longs between two regions' cursors: one cache line each, so claiming a chunk does not take the other thread's line.</summary>
    const int CursorStride = 8;

    /// <summary>y = W·x + bias: x has W.Cols values, y has W.Rows.</summary>
    public static void Multiply(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, ReadOnlySpan<float> bias = default)
    {
        if (x.Length != w.Cols) throw new ArgumentException($"GEMV: x has {x.Length} values for {w.Cols} columns", nameof(x));
        if (y.Length < w.Rows) throw new ArgumentException($"GEMV: y has {y.Length} values for {w.Rows} rows", nameof(y));
        if (!bias.IsEmpty && bias.Length != w.Rows) throw new ArgumentException($"GEMV: bias has {bias.Length} values for {w.Rows} rows", nameof(bias));
        if (w.Rows == 0) return;
        fixed (float* px = x)
        fixed (float* py = y)
        fixed (float* pb = bias)
            Run(Simd.Current, w, px, 1, py, bias.IsEmpty ? null : pb);
    }

    /// <summary>
    /// Scalar reference of <see cref="Multiply"/> with binary32 x (widen each row, accumulate in double); for
    /// Q8_0 weights on AVX-512BW the kernel follows <see cref="QuantizedActivationReference"/> instead.
    /// </summary>
    public static void Reference(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, ReadOnlySpan<float> bias = default)
        => Gemm.LinearReference(x, 1, w, y, bias);

    /// <summary>One weight matrix of a shared-input GEMV (<see cref="RunParts"/>), with its output and bias.</summary>
    internal struct Part(WeightMatrix w, float* y, float* bias)
    {
        public WeightMatrix W = w;
        public float* Y = y, Bias = bias;
        public int RowStart; // first row in the parts' joint row space (a multiple of 4)
    }

    /// <summary>Y (m, N) = X (m, K)·Wᵀ + bias, 1 ≤ m ≤ <see cref="MaxRows"/>, all arguments validated.</summary>
    /// <remarks><paramref name="regions"/> (tests) sets the number of regions instead of one per thread; with a one-thread pool the one
    /// thread then streams the first region and takes every other region's chunks from their back ends.</remarks>
    internal static void Run(SimdWidth width, in WeightMatrix w, float* x, int m, float* y, float* bias, KernelPool? pool = null, int regions = 0)
    {
        var part = new Part(w, y, bias);
        RunParts(width, &part, 1, x, m, pool, regions);
    }

    /// <summary>
    /// Y_i = X·W_iᵀ + bias_i for <paramref name="count"/> matrices of one dtype and width: X is quantized once and one
    /// dispatch streams their rows one after another, each matrix's rows starting a new tile, so every row sums
    /// exactly as in its own <see cref="Run"/>.
    /// </summary>
    internal static void RunParts(SimdWidth width, Part* parts, int count, float* x, int m, KernelPool? pool = null, int regions = 0)
    {
        var w = parts[0].W;
        int rows = 0;
        for (int i = 0; i < count; i++)
        {
            parts[i].RowStart = rows;
            rows += (parts[i].W.Rows + 3) / 4 * 4;
        }
        long perRow = Math.Max(1, (long)w.Cols * m);
        pool ??= KernelPool.Default;
        // X is read once per weight row; a 512-bit load that straddles two cache lines costs two, which
        // took a third off the Q8_0 and bf16 rates, so a misaligned X is copied to an aligned buffer.
        short* xq = null;
        float* dx = null;
        byte* x8 = null;
        bool quantizedX = !TakesWideTiles(width, w.DType, m); // the wide tiles take binary32 x
        if (quantizedX && QuantizesActivationsToInt8Octet(width, w.DType)) x8 = OctetInt8Copy(x, m, w.Cols);
        else if (quantizedX && QuantizesActivationsToInt8Quad(width, w.DType)) x8 = QuadInt8Copy(x, m, w.Cols);
        else if (quantizedX && QuantizesActivationsToInt8(width, w.DType)) x8 = PairedInt8Copy(x, m, w.Cols);
        else if (quantizedX && QuantizesActivations(width, w.DType)) xq = QuantizedCopy(x, m, w.Cols, out dx);
        else if (((nint)x & 63) != 0 && w.Cols >= 64) x = AlignedCopy(x, (long)m * w.Cols);
        int tasks = regions > 0 ? regions : Math.Min(Partition.Tasks(rows, Math.Max(1, MinTaskElements / perRow), pool), pool.ThreadCount);
        long* cursors = stackalloc long[Math.Max(1, tasks) * CursorStride + CursorStride];
        cursors = (long*)(((nint)cursors + 63) & ~(nint)63); // one cache line per region's cursor
        var task = new GemvTask
        {
            W = w, X = x, XQ = xq, DX = dx, X8 = x8, M = m, Width = width, Tasks = tasks, Cursors = cursors,
            Parts = parts, PartCount = count, TotalRows = rows,
        };
        if (tasks <= 1) task.Execute(0);
        else
        {
            task.Chunks = RegionChunks;
            for (int t = 0; t < tasks; t++) cursors[t * CursorStride] = (long)RegionChunks << 32; // front 0, back RegionChunks
            pool.Run(tasks, ref task);
        }
    }

    [ThreadStatic] static float* t_x;
    [ThreadStatic] static long t_xCapacity;
    [ThreadStatic] static AlignedOwner? t_xOwner;

    static float* AlignedCopy(float* x, long count)
    {
        if (t_xCapacity < count)
        {
            long capacity = Math.Max(count, 4096);
            var p = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(capacity * sizeof(float)), 64);
            t_xOwner = new AlignedOwner(p); // the previous owner's finalizer frees the old buffer
            t_x = p;
            t_xCapacity = capacity;
        }
        Buffer.MemoryCopy(x, t_x, count * sizeof(float), count * sizeof(float));
        return t_x;
    }

    internal sealed class AlignedOwner(float* p)
    {
        ~AlignedOwner() => System.Runtime.InteropServices.NativeMemory.AlignedFree(p);
    }

    struct GemvTask : IParallelTask
    {
        public WeightMatrix W;
        public float* X, Y, Bias;
        public short* XQ; // X quantized to int16 per block of 32 (Q8_0 or Q4_0 weights on AVX-512BW), else null
        public float* DX; // its block scales
        public byte* X8;  // X quantized to int8: Q4_0R8 weights in the octet layout; Q4_0 in the quad layout (QuantizesActivationsToInt8Quad), else the paired one (AVX-VNNI); else null
        public int M, Tasks;
        public SimdWidth Width;

        public Part* Parts;   // the matrices, their outputs and biases (W, Y and Bias are set per part)
        public int PartCount, TotalRows;
        public long* Cursors; // per region: the next chunk from the front (low half) and the end of what is left (high half)
        public int Chunks;    // chunks per region (0: one task does everything)

        // One task per thread, each a contiguous region of the rows that it streams front to back in
        // chunks; a thread done with its region takes the other regions' chunks from their back ends.
        // Regions keep each thread's stream unbroken. With four times as many tasks as threads, taken in
        // turn from a shared counter, each thread jumped to a new place in W at every task: on the mu-330m
        // decoder's matrices, two threads, four interleaved rounds on a busy host, that streamed Q4_0 at
        // 30–38 GB/s and Q8_0 at 41–46 against 37–41 and 49–57 with regions. Stealing keeps a late or
        // preempted thread from holding up the call.
        public void Execute(int index)
        {
            if (Chunks == 0)
            {
                ExecuteRange(0, TotalRows);
                return;
            }
            int tiles = TotalRows / 4;
            RunChunks(index, tiles, own: true);
            for (int other = 1; other < Tasks; other++) RunChunks((index + other) % Tasks, tiles, own: false);
        }

        void RunChunks(int region, int tiles, bool own)
        {
            var (t0, t1) = Partition.Range(tiles, Tasks, region);
            ref long cursor = ref Cursors[region * CursorStride];
            while (true)
            {
                long state = Volatile.Read(ref cursor);
                int front = (int)state, back = (int)(state >> 32);
                if (front >= back) return;
                int chunk = own ? front : back - 1;
                long next = own ? state + 1 : state - (1L << 32);
                if (Interlocked.CompareExchange(ref cursor, next, state) != state) continue;
                var (c0, c1) = Partition.Range(t1 - t0, Chunks, chunk);
                if (c1 > c0) ExecuteRange((t0 + c0) * 4, (t0 + c1) * 4);
            }
        }

        // Joint rows [g0, g1), a multiple of 4 apart from each part's start: each part's share, in whole blocks of four
        // rows except at the end of its W, so which rows form a tile (and so the rounding) does not depend on how the
        // rows were split or which matrices share the call.
        void ExecuteRange(int g0, int g1)
        {
            for (int p = 0; p < PartCount; p++)
            {
                ref var part = ref Parts[p];
                int a = Math.Max(g0, part.RowStart), b = Math.Min(g1, part.RowStart + part.W.Rows);
                if (a >= b) continue;
                var one = this;
                one.W = part.W;
                one.Y = part.Y;
                one.Bias = part.Bias;
                one.RowsOf(a - part.RowStart, b - part.RowStart);
            }
        }

        // Rows [r0, r1) of W.
        void RowsOf(int r0, int r1)
        {
            switch (W.DType)
            {
                case DType.F32: Rows<LoadF32>(r0, r1); break;
                case DType.BF16: Rows<LoadBF16>(r0, r1); break;
                case DType.F16: Rows<LoadF16>(r0, r1); break;
                case DType.Q4_0 when X8 != null: RowsQ4Int8(r0, r1); break;
                case DType.Q4_0 when XQ != null: RowsX<Q4Block>(r0, r1); break;
                case DType.Q4_0: RowsQ4(r0, r1); break;
                case DType.Q4_0R8 when X8 != null: RowsQ4Octet(r0, r1); break;
                case DType.Q4_0R8: RowsQ4R8(r0, r1); break;
                default: RowsQ8(r0, r1); break;
            }
        }

        // Each weight row is read from memory once. Batches of 2+ rows on 512-bit vectors take the wide tiles; otherwise
        // X rows take a weight row in groups of four, the later groups finding it in L1.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Rows<TL>(int r0, int r1) where TL : ILoad
        {
            if (TakesWideTiles(Width, W.DType, M))
            {
                RowsWide<TL>(r0, r1);
                return;
            }
            int k = W.Cols, n = W.Rows;
            float* sums = stackalloc float[Group * 4];
            int j = r0;
            for (; j < r1; j++)
            {
                byte* row = W.Row(j);
                float b = Bias == null ? 0 : Bias[j];
                for (int g = 0; g < M; g += Group)
                {
                    int mg = Math.Min(Group, M - g);
                    DotRows<TL>(row, X + (nint)g * k, k, mg, k, Width, sums);
                    for (int i = 0; i < mg; i++) Y[(nint)(g + i) * n + j] = sums[i] + b;
                }
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void RowsQ8(int r0, int r1)
        {
            if (TakesWideTiles(Width, W.DType, M))
            {
                RowsWide<LoadF32>(r0, r1);
                return;
            }
            int k = W.Cols, n = W.Rows, blocks = k / DTypes.Q8BlockSize;
            float* sums = stackalloc float[Group * 4];
            int j = r0;
            if (XQ != null)
            {
                RowsX<Q8Block>(r0, r1);
                return;
            }
            for (; j < r1; j++)
            {
                var row = (BlockQ8_0*)W.Row(j);
                float b = Bias == null ? 0 : Bias[j];
                for (int g = 0; g < M; g += Group)
                {
                    int mg = Math.Min(Group, M - g);
                    DotQ8Rows(row, X + (nint)g * k, k, mg, blocks, Width, sums);
                    for (int i = 0; i < mg; i++) Y[(nint)(g + i) * n + j] = sums[i] + b;
                }
            }
        }

        // Batches that take the wide tiles (TakesWideTiles): two weight rows against up to WidePass X rows per pass
        // (Tile2, or Tile2Q8 for Q8_0, whose TL is unused); a lone last row is paired with itself. Past WidePass rows,
        // the rows go in blocks of about WideBlockBytes: the first pass streams a block from memory, the later passes
        // find it in L2, so W is read from memory once whatever the batch.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void RowsWide<TL>(int r0, int r1) where TL : ILoad
        {
            int k = W.Cols, n = W.Rows, blocks = k / DTypes.Q8BlockSize;
            bool q8 = W.DType == DType.Q8_0;
            float* table = Widen.HalfTable;
            float* sums = stackalloc float[2 * WidePass];
            nint aheadStep = 2 * 16 * (W.DType == DType.F32 ? 4 : 2); // two rows' bytes per 16-value step
            int blockRows = M <= WidePass ? r1 - r0 : (int)Math.Max(2, WideBlockBytes / W.RowStrideBytes & ~1L);
            for (int b0 = r0; b0 < r1; b0 += blockRows)
            {
                int b1 = Math.Min(r1, b0 + blockRows);
                for (int g = 0; g < M; g += WidePass)
                {
                    int mg = Math.Min(WidePass, M - g);
                    for (int j = b0; j < b1; j += 2)
                    {
                        int pair = Math.Min(2, b1 - j);
                        byte* w0 = W.Row(j), w1 = pair == 2 ? W.Row(j + 1) : w0;
                        // The first pass prefetches the next pair as one stream into L2 (past the end is harmless); later passes find the
                        // block in L2. Into L1 instead, a pair's 6–16 KiB outran L1's miss buffers: binary32 at 8 rows streamed DRAM at
                        // 15.5–18 GB/s on Zen 4 against 28–32 into L2 (3072 × 768 and 768 × 768, 2 threads).
                        byte* ahead = g == 0 ? w0 + 2 * W.RowStrideBytes : w0;
                        if (q8) Tile2Q8((BlockQ8_0*)w0, (BlockQ8_0*)w1, ahead, X + (nint)g * k, k, mg, blocks, table, sums);
                        else Tile2<TL>(w0, w1, ahead, aheadStep, X + (nint)g * k, k, mg, k, sums);
                        for (int r = 0; r < mg; r++)
                            for (int s = 0; s < pair; s++)
                                Y[(nint)(g + r) * n + j + s] = sums[r * 2 + s] + (Bias == null ? 0 : Bias[j + s]);
                    }
                }
            }
        }

        // Quantized weights against int16 x (QuantizesActivations): 4×4 tiles for batches, one dot per row otherwise.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void RowsX<TB>(int r0, int r1) where TB : IQuantBlock
        {
            int k = W.Cols, n = W.Rows, blocks = k / DTypes.Q8BlockSize;
            float* sums = stackalloc float[Group * 4];
            float* table = Widen.HalfTable;
            int j = r0;
            if (M > 1)
            {
                for (; j + 4 <= r1; j += 4)
                {
                    for (int g = 0; g < M; g += Group)
                    {
                        int mg = Math.Min(Group, M - g);
                        Tile4X<TB>(W.Row(j), W.Row(j + 1), W.Row(j + 2), W.Row(j + 3),
                            XQ + (nint)g * k, DX + (nint)g * blocks, k, mg, blocks, table, sums);
                        StoreTile(sums, g, mg, j, n);
                    }
                }
            }
            else
            {
                // One X row: four weight rows per pass (DotX4, each row with DotX's bits).
                for (; j + 4 <= r1; j += 4)
                {
                    DotX4<TB>(W.Row(j), W.Row(j + 1), W.Row(j + 2), W.Row(j + 3), XQ, DX, blocks, table, sums);
                    for (int s = 0; s < 4; s++) Y[j + s] = sums[s] + (Bias == null ? 0 : Bias[j + s]);
                }
            }
            for (; j < r1; j++)
            {
                byte* row = W.Row(j);
                float b = Bias == null ? 0 : Bias[j];
                for (int g = 0; g < M; g += Group)
                {
                    int mg = Math.Min(Group, M - g);
                    DotRowsX<TB>(row, XQ + (nint)g * k, DX + (nint)g * blocks, k, mg, blocks, table, sums);
                    for (int i = 0; i < mg; i++) Y[(nint)(g + i) * n + j] = sums[i] + b;
                }
            }
        }

        // Q4_0 against int8 x: four weight rows per X row at a time (DotQ4Quad4 on 512-bit vectors with VBMI, else
        // DotQ4Vnni4, whose rows round as the one-row kernels' DotQ4Quad and DotQ4Vnni), the rows staying in L1 for the
        // later X rows; the last rows one at a time. X8 is in the quad or the paired layout accordingly. On the quad
        // path at batch 2 and up, four and then two X rows at a time share each weight group's unpacking
        // (DotQ4QuadX) and only a last odd X row takes the tiles, each tile's rows still read once.
        void RowsQ4Int8(int r0, int r1)
        {
            bool quad = QuantizesActivationsToInt8Quad(Width, W.DType);
            int k = W.Cols, n = W.Rows, blocks = k / DTypes.Q4BlockSize, rowBytes = quad ? QuadRowBytes(blocks) : PairRowBytes(blocks);
            float* table = Widen.HalfTable;
            var quants = quad ? QuadIndex.Quants : default;
            var scales = quad ? QuadIndex.Scales : default;
            float* sums = stackalloc float[4];
            int i0 = quad ? M / 2 * 2 : 0; // X rows [0, i0) share unpacking
            int j0 = r0;
            for (; j0 + 4 <= r1; j0 += 4)
            {
                for (int j = j0; j < j0 + 4 && i0 > 0; j++) SharedRowsQ4(j, i0, blocks, rowBytes, quants, scales, sums);
                for (int i = i0; i < M; i++)
                {
                    byte* xrow = X8 + (nint)i * rowBytes;
                    if (quad) DotQ4Quad4(W.Row(j0), W.Row(j0 + 1), W.Row(j0 + 2), W.Row(j0 + 3), xrow, blocks, sums, quants, scales);
                    else DotQ4Vnni4(W.Row(j0), W.Row(j0 + 1), W.Row(j0 + 2), W.Row(j0 + 3), xrow, blocks, table, sums);
                    for (int s = 0; s < 4; s++) Y[(nint)i * n + j0 + s] = sums[s] + (Bias == null ? 0 : Bias[j0 + s]);
                }
            }
            for (int j = j0; j < r1; j++)
            {
                if (i0 > 0) SharedRowsQ4(j, i0, blocks, rowBytes, quants, scales, sums);
                byte* row = W.Row(j);
                float b = Bias == null ? 0 : Bias[j];
                for (int i = i0; i < M; i++)
                {
                    byte* xrow = X8 + (nint)i * rowBytes;
                    Y[(nint)i * n + j] = (quad ? DotQ4Quad(row, xrow, blocks, quants, scales) : DotQ4Vnni(row, xrow, blocks, table)) + b;
                }
            }
        }

        // Weight row j against X rows [0, xRows) (an even count, quad layout): four at a time, then two.
        void SharedRowsQ4(int j, int xRows, int blocks, int rowBytes, Vector512<byte> quants, Vector512<byte> scales, float* sums)
        {
            byte* row = W.Row(j);
            float b = Bias == null ? 0 : Bias[j];
            int n = W.Rows, i = 0;
            for (; i + 4 <= xRows; i += 4)
            {
                DotQ4QuadX<R4>(row, X8 + (nint)i * rowBytes, rowBytes, blocks, sums, quants, scales);
                for (int s = 0; s < 4; s++) Y[(nint)(i + s) * n + j] = sums[s] + b;
            }
            if (i < xRows)
            {
                DotQ4QuadX<R2>(row, X8 + (nint)i * rowBytes, rowBytes, blocks, sums, quants, scales);
                for (int s = 0; s < 2; s++) Y[(nint)(i + s) * n + j] = sums[s] + b;
            }
        }

        // Q4_0R8 against int8 x in the octet layout, as RowsQ4Int8 on the quad path: four weight rows per X row at a
        // time, or one weight row for four and then two X rows at a time; a last odd X row takes the tiles.
        void RowsQ4Octet(int r0, int r1)
        {
            int n = W.Rows, groups = W.Cols / DTypes.Q4R8GroupSize, rowBytes = OctetRowBytes(groups);
            float* sums = stackalloc float[4];
            int i0 = M / 2 * 2; // X rows [0, i0) share unpacking
            int j0 = r0;
            for (; j0 + 4 <= r1; j0 += 4)
            {
                for (int j = j0; j < j0 + 4 && i0 > 0; j++) SharedRowsQ4Octet(j, i0, groups, rowBytes, sums);
                for (int i = i0; i < M; i++)
                {
                    DotQ4Octet4(W.Row(j0), W.Row(j0 + 1), W.Row(j0 + 2), W.Row(j0 + 3), X8 + (nint)i * rowBytes, groups, sums);
                    for (int s = 0; s < 4; s++) Y[(nint)i * n + j0 + s] = sums[s] + (Bias == null ? 0 : Bias[j0 + s]);
                }
            }
            for (int j = j0; j < r1; j++)
            {
                if (i0 > 0) SharedRowsQ4Octet(j, i0, groups, rowBytes, sums);
                float b = Bias == null ? 0 : Bias[j];
                for (int i = i0; i < M; i++) Y[(nint)i * n + j] = DotQ4Octet(W.Row(j), X8 + (nint)i * rowBytes, groups) + b;
            }
        }

        // Weight row j against X rows [0, xRows) (an even count, octet layout): four at a time, then two.
        void SharedRowsQ4Octet(int j, int xRows, int groups, int rowBytes, float* sums)
        {
            byte* row = W.Row(j);
            float b = Bias == null ? 0 : Bias[j];
            int n = W.Rows, i = 0;
            for (; i + 4 <= xRows; i += 4)
            {
                DotQ4OctetX<R4>(row, X8 + (nint)i * rowBytes, rowBytes, groups, sums);
                for (int s = 0; s < 4; s++) Y[(nint)(i + s) * n + j] = sums[s] + b;
            }
            if (i < xRows)
            {
                DotQ4OctetX<R2>(row, X8 + (nint)i * rowBytes, rowBytes, groups, sums);
                for (int s = 0; s < 2; s++) Y[(nint)(i + s) * n + j] = sums[s] + b;
            }
        }

        // Q4_0R8 without the octet kernel: each row put back into Q4_0 blocks, then RowsQ4's binary32-x dot.
        void RowsQ4R8(int r0, int r1)
        {
            int k = W.Cols, n = W.Rows, blocks = k / DTypes.Q4BlockSize;
            // The row put back into Q4_0 blocks (the same bytes as its groups): on the stack up to 1,024 blocks (18 KB).
            GroupQ4_0R8* small = stackalloc GroupQ4_0R8[blocks <= 1024 ? blocks / DTypes.Q4R8Blocks : 0];
            var large = blocks <= 1024 ? null : new GroupQ4_0R8[blocks / DTypes.Q4R8Blocks];
            fixed (GroupQ4_0R8* pl = large)
            {
                var pr = (BlockQ4_0*)(large == null ? small : pl);
                for (int j = r0; j < r1; j++)
                {
                    Q4R8.Ungroup(new ReadOnlySpan<GroupQ4_0R8>(W.Row(j), blocks / DTypes.Q4R8Blocks), new Span<BlockQ4_0>(pr, blocks));
                    float bias = Bias == null ? 0 : Bias[j];
                    for (int i = 0; i < M; i++) Y[(nint)i * n + j] = DotQ4(pr, X + (nint)i * k, blocks, Width) + bias;
                }
            }
        }

        // Q4_0 with binary32 x (vector widths below 512 bits, or no AVX-512BW): one dot per (row, X row).
        void RowsQ4(int r0, int r1)
        {
            int k = W.Cols, n = W.Rows, blocks = k / DTypes.Q4BlockSize;
            for (int j = r0; j < r1; j++)
            {
                var row = (BlockQ4_0*)W.Row(j);
                float b = Bias == null ? 0 : Bias[j];
                for (int i = 0; i < M; i++) Y[(nint)i * n + j] = DotQ4(row, X + (nint)i * k, blocks, Width) + b;
            }
        }

        void StoreTile(float* sums, int g, int mg, int j, int n)
        {
            for (int r = 0; r < mg; r++)
                for (int s = 0; s < 4; s++)
                    Y[(nint)(g + r) * n + j + s] = sums[r * 4 + s] + (Bias == null ? 0 : Bias[j + s]);
        }
    }
}
