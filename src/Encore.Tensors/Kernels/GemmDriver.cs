using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Encore.Tensors.Threading;

namespace Encore.Tensors.Kernels;

// The blocked GEMM driver, GotoBLAS/BLIS style (Goto & van de Geijn, "Anatomy of High-Performance
// Matrix Multiplication", TOMS 2008): loop jc over NC-wide column blocks of C, pc over KC-deep slices
// of K (B slice packed into KC×32 panels, kept in L3/L2), ic over MC-tall row blocks (A block packed
// into MR×KC micro-panels, kept in L2), then the micro-kernel over MR×NR tiles with the B micro-panel
// in L1. Every width packs B into 32-wide panels (narrower kernels walk a panel in NR-wide strips),
// so a matrix pre-packed once (PackedMatrix) serves every width.
//
// Determinism: an element of C is always the sum over K slices in increasing order, each slice's
// partial sum accumulated by the same kernel in increasing p; tile boundaries do not change the
// rounding (see GemmKernels.cs). So results are bit-identical across runs and thread counts.
public static partial class Gemm
{
    /// <summary>Depth of a packed K slice (floats). Fixed, as the summation order depends on it.</summary>
    internal const int KC = 256;

    /// <summary>Columns of one packed B panel.</summary>
    internal const int PanelWidth = 32;

    /// <summary>Rows of a packed A block (a multiple of every kernel's MR).</summary>
    const int MC = 144;

    /// <summary>How many rows of A ahead packing of op(A) = Aᵀ prefetches.</summary>
    const int PrefetchRows = 8;

    /// <summary>Columns of a packed B block.</summary>
    const int NC = 2048;

    /// <summary>Below this m·n·k the unpacked loop is faster than packing.</summary>
    internal const long SmallWork = 32 * 1024;

    /// <summary>Below this m·n·k one thread does the work (measured: two threads win from about 150³ up).</summary>
    const long ParallelWork = 4L * 1024 * 1024;

    /// <summary>Where packing reads op(B) from.</summary>
    internal enum BKind { Strided, WeightRows, Packed }

    /// <summary>op(B) (K×N): F32 with element (p, j) at P[p·Rs + j·Cs]; or Wᵀ of a weight matrix; or pre-packed panels.</summary>
    internal unsafe struct BSource
    {
        public BKind Kind;
        public float* P;
        public nint Rs, Cs;
        public WeightMatrix W;
        public int PaddedN;
    }

    [ThreadStatic] static unsafe float* t_scratch;
    [ThreadStatic] static ScratchOwner? t_scratchOwner;

    /// <summary>The per-thread area that row-source packing widens weight rows into (PanelWidth × KC floats).</summary>
    static unsafe float* RowScratch() => Scratch() + MC * KC + KC * NC + 512;

    // Per-thread packing buffers (about 2.2 MB), allocated on a thread's first GEMM and kept: the
    // kernel pool's threads live as long as the process. The owner object is thread-static, so a
    // thread that exits drops it and its finalizer frees the buffer.
    internal static unsafe float* Scratch()
    {
        if (t_scratch == null)
        {
            nuint floats = (nuint)(MC * KC + KC * NC + 512 + PanelWidth * KC);
            t_scratch = (float*)NativeMemory.AlignedAlloc(floats * sizeof(float), 64);
            t_scratchOwner = new ScratchOwner(t_scratch);
        }
        return t_scratch;
    }

    sealed unsafe class ScratchOwner(float* p)
    {
        float* _p = p;

        /// <summary>Frees the buffer now (it is being replaced).</summary>
        public void Free()
        {
            NativeMemory.AlignedFree(_p);
            _p = null;
            GC.SuppressFinalize(this);
        }

        ~ScratchOwner() => NativeMemory.AlignedFree(_p);
    }

    /// <summary>C = α·op(A)·B + β·C over validated pointers: A element (i, p) at a[i·rsA + p·csA].</summary>
    internal static unsafe void Run(SimdWidth width, int m, int n, int k, float alpha,
        float* a, nint rsA, nint csA, in BSource b, float beta, float* c, nint ldc,
        KernelPool? pool = null, bool allowSmall = true)
    {
        pool ??= KernelPool.Default;
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
            return;
        }
        long work = (long)m * n * k;
        if (allowSmall && work < SmallWork && b.Kind == BKind.Strided)
        {
            Small(width, m, n, k, alpha, a, rsA, csA, b.P, b.Rs, b.Cs, beta, c, ldc);
            return;
        }
        switch (width)
        {
            case SimdWidth.V512: Dispatch<Kernel512>(pool, m, n, k, alpha, a, rsA, csA, b, beta, c, ldc); break;
            case SimdWidth.V256: Dispatch<Kernel256>(pool, m, n, k, alpha, a, rsA, csA, b, beta, c, ldc); break;
            case SimdWidth.V128: Dispatch<Kernel128>(pool, m, n, k, alpha, a, rsA, csA, b, beta, c, ldc); break;
            default: Dispatch<KernelScalar>(pool, m, n, k, alpha, a, rsA, csA, b, beta, c, ldc); break;
        }
    }

    static unsafe void Dispatch<TK>(KernelPool pool, int m, int n, int k, float alpha, float* a, nint rsA, nint csA,
        in BSource b, float beta, float* c, nint ldc) where TK : IMicroKernel
    {
        if ((long)m * n * k < ParallelWork || pool.ThreadCount == 1)
            Block<TK>(0, m, 0, n, k, alpha, a, rsA, csA, b, beta, c, ldc);
        else if (DeepAndNarrow(pool, m, n, k, b.Kind) is int tasks and > 0)
        {
            var rows = new RowBlocksTask<TK> { M = m, MUnits = (m + TK.MR - 1) / TK.MR, Tasks = tasks, N = n, K = k, Alpha = alpha, A = a, RsA = rsA, CsA = csA, B = b, Beta = beta, C = c, Ldc = ldc };
            pool.Run(tasks, ref rows);
        }
        else
            Parallel<TK>(pool, m, n, k, alpha, a, rsA, csA, b, beta, c, ldc);
    }

    // A product deep in K (many K slices) and narrow in N, such as the gradient dX = dY·W of a
    // language-model head (K = the vocabulary): the BLIS loops below would run two pool dispatches per
    // K slice and move each row chunk of C between cores from slice to slice. Instead each task takes
    // a fixed range of rows and runs the whole product over it (its own B slices packed in its own
    // scratch: a B slice of ≤ 512 columns costs little next to the rows' work), with C in its cache.
    // One task per thread: more tasks pack each B slice more times (measured on the 1024×256×32128
    // LM-head gradient, 2 threads: 58 ms with the loops below, 50 ms with 2 tasks, 57 ms with 4).
    // The summation order is Block's, the same as the parallel loops'. Returns the task count, or 0.
    static int DeepAndNarrow(KernelPool pool, int m, int n, int k, BKind kind)
    {
        if (kind == BKind.Packed || n > 512 || k < 8 * KC) return 0;
        int tasks = pool.ThreadCount;
        return m >= tasks * MC ? tasks : 0;
    }

    unsafe struct RowBlocksTask<TK> : IParallelTask where TK : IMicroKernel
    {
        public int M, MUnits, Tasks, N, K;
        public float Alpha, Beta;
        public float* A, C;
        public nint RsA, CsA, Ldc;
        public BSource B;

        public void Execute(int index)
        {
            var (u0, u1) = Partition.Range(MUnits, Tasks, index);
            int m0 = u0 * TK.MR, m1 = Math.Min(M, u1 * TK.MR);
            if (m0 < m1) Block<TK>(m0, m1, 0, N, K, Alpha, A, RsA, CsA, B, Beta, C, Ldc);
        }
    }

    // BLIS-style parallel loops: per (NC block, K slice) the threads first pack the shared B block
    // together (into the calling thread's scratch), then claim (row chunk × panel range) tasks, each
    // packing its own A block. Several tasks per thread balance a machine whose cores are shared.
    static unsafe void Parallel<TK>(KernelPool pool, int m, int n, int k, float alpha, float* a, nint rsA, nint csA,
        in BSource b, float beta, float* c, nint ldc) where TK : IMicroKernel
    {
        int target = 4 * pool.ThreadCount;
        int mUnits = (m + TK.MR - 1) / TK.MR;
        int mTasks = Math.Min(mUnits, (m + MC - 1) / MC);
        float* shared = Scratch() + MC * KC;
        var width = WidthOf<TK>();
        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            int nPanels = (nc + PanelWidth - 1) / PanelWidth;
            int nTasks = Math.Clamp((target + mTasks - 1) / mTasks, 1, nPanels);
            // When N is split too, the column tasks of a row chunk would each pack the same rows of A:
            // pack all of A's slice once, together with B, and let every task read it (M is then at
            // most target·MC rows, so the slice is at most target·MC·KC floats).
            float* aShared = nTasks > 1 ? SharedA((nint)mUnits * TK.MR * KC) : null;
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                float* bBlock = shared;
                bool packB = b.Kind != BKind.Packed;
                if (!packB) bBlock = b.P + (nint)pc * b.PaddedN + (nint)jc * kc;
                if (packB || aShared != null)
                {
                    var pack = new PackTask<TK>
                    {
                        B = b, Pc = pc, Kc = kc, Jc = jc, Nc = nc, NPanels = nPanels, BTasks = packB ? Math.Min(nPanels, target) : 0, Dst = shared, Width = width,
                        A = a, RsA = rsA, CsA = csA, M = m, MUnits = mUnits, ATasks = aShared != null ? Math.Min(mUnits, target) : 0, ADst = aShared,
                    };
                    pool.Run(pack.BTasks + pack.ATasks, ref pack);
                }
                var compute = new ComputeTask<TK>
                {
                    M = m, MUnits = mUnits, MTasks = mTasks, Nc = nc, NPanels = nPanels, NTasks = nTasks, Kc = kc, Pc = pc,
                    Alpha = alpha, Beta = pc == 0 ? beta : 1f, A = a, RsA = rsA, CsA = csA, APacked = aShared,
                    BBlock = bBlock, C = c + jc, Ldc = ldc,
                };
                pool.Run(mTasks * nTasks, ref compute);
            }
        }
    }

    [ThreadStatic] static unsafe float* t_sharedA;
    [ThreadStatic] static nint t_sharedALength;
    [ThreadStatic] static ScratchOwner? t_sharedAOwner;

    // The calling thread's area for a whole packed slice of A (grown on demand, kept like Scratch).
    static unsafe float* SharedA(nint floats)
    {
        if (t_sharedALength < floats)
        {
            t_sharedAOwner?.Free();
            t_sharedA = (float*)NativeMemory.AlignedAlloc((nuint)floats * sizeof(float), 64);
            t_sharedAOwner = new ScratchOwner(t_sharedA);
            t_sharedALength = floats;
        }
        return t_sharedA;
    }

    // Tasks [0, BTasks) pack panel ranges of the B block; tasks [BTasks, BTasks + ATasks) pack ranges
    // of A's MR-row micro-panels into ADst, laid out as PackA lays out one block of all M rows.
    unsafe struct PackTask<TK> : IParallelTask where TK : IMicroKernel
    {
        public BSource B;
        public int Pc, Kc, Jc, Nc, NPanels, BTasks;
        public float* Dst;
        public SimdWidth Width;
        public float* A, ADst;
        public nint RsA, CsA;
        public int M, MUnits, ATasks;

        public void Execute(int index)
        {
            if (index < BTasks)
            {
                var (q0, q1) = Partition.Range(NPanels, BTasks, index);
                int j0 = q0 * PanelWidth, j1 = Math.Min(Nc, q1 * PanelWidth);
                if (j0 < j1) PackB(B, Pc, Kc, Jc + j0, j1 - j0, Dst + (nint)j0 * Kc, Width);
                return;
            }
            var (u0, u1) = Partition.Range(MUnits, ATasks, index - BTasks);
            int m0 = u0 * TK.MR, m1 = Math.Min(M, u1 * TK.MR);
            if (m0 < m1) PackA<TK>(A, RsA, CsA, m0, m1 - m0, Pc, Kc, ADst + (nint)m0 * Kc);
        }
    }

    unsafe struct ComputeTask<TK> : IParallelTask where TK : IMicroKernel
    {
        public int M, MUnits, MTasks, Nc, NPanels, NTasks, Kc, Pc;
        public float Alpha, Beta;
        public float* A, APacked, BBlock, C;
        public nint RsA, CsA, Ldc;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            var (u0, u1) = Partition.Range(MUnits, MTasks, index / NTasks);
            var (q0, q1) = Partition.Range(NPanels, NTasks, index % NTasks);
            int m0 = u0 * TK.MR, m1 = Math.Min(M, u1 * TK.MR);
            int j0 = q0 * PanelWidth, j1 = Math.Min(Nc, q1 * PanelWidth);
            if (m0 >= m1 || j0 >= j1) return;
            float* scratch = Scratch();
            float* ap = scratch;
            float* tile = scratch + MC * KC + KC * NC;
            for (int ic = m0; ic < m1; ic += MC)
            {
                int mc = Math.Min(MC, m1 - ic);
                float* block = ap;
                if (APacked != null) block = APacked + (nint)ic * Kc;
                else PackA<TK>(A, RsA, CsA, ic, mc, Pc, Kc, ap);
                Macro<TK>(mc, j1 - j0, Kc, block, BBlock + (nint)j0 * Kc, C + ic * Ldc + j0, Ldc, Alpha, Beta, tile);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Block<TK>(int m0, int m1, int n0, int n1, int k, float alpha, float* a, nint rsA, nint csA,
        in BSource b, float beta, float* c, nint ldc) where TK : IMicroKernel
    {
        float* scratch = Scratch();
        float* ap = scratch;
        float* bp = scratch + MC * KC;
        float* tile = bp + KC * NC;
        var width = WidthOf<TK>();
        for (int jc = n0; jc < n1; jc += NC)
        {
            int nc = Math.Min(NC, n1 - jc);
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                float betaK = pc == 0 ? beta : 1f;
                float* bBlock = b.Kind == BKind.Packed ? b.P + (nint)pc * b.PaddedN + (nint)jc * kc : bp;
                if (b.Kind != BKind.Packed) PackB(b, pc, kc, jc, nc, bp, width);
                for (int ic = m0; ic < m1; ic += MC)
                {
                    int mc = Math.Min(MC, m1 - ic);
                    PackA<TK>(a, rsA, csA, ic, mc, pc, kc, ap);
                    Macro<TK>(mc, nc, kc, ap, bBlock, c + ic * ldc + jc, ldc, alpha, betaK, tile);
                }
            }
        }
    }

    static SimdWidth WidthOf<TK>() where TK : IMicroKernel =>
        typeof(TK) == typeof(Kernel512) ? SimdWidth.V512 :
        typeof(TK) == typeof(Kernel256) ? SimdWidth.V256 :
        typeof(TK) == typeof(Kernel128) ? SimdWidth.V128 : SimdWidth.Scalar;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Macro<TK>(int mc, int nc, int kc, float* ap, float* bp, float* c, nint ldc,
        float alpha, float beta, float* tile) where TK : IMicroKernel
    {
        int mr = TK.MR, nr = TK.NR;
        for (int jp = 0; jp < nc; jp += PanelWidth)
        {
            float* panel = bp + (nint)jp * kc;
            for (int js = 0; js < PanelWidth && jp + js < nc; js += nr)
            {
                int nEff = Math.Min(nr, nc - jp - js);
                for (int ir = 0; ir < mc; ir += mr)
                {
                    int mEff = Math.Min(mr, mc - ir);
                    float* ct = c + ir * ldc + jp + js;
                    float* apanel = ap + (nint)ir * kc;
                    if (mEff == mr && nEff == nr)
                    {
                        TK.Run(kc, apanel, panel + js, PanelWidth, ct, ldc, alpha, beta);
                        continue;
                    }
                    TK.Run(kc, apanel, panel + js, PanelWidth, tile, nr, 1f, 0f);
                    for (int i = 0; i < mEff; i++)
                    {
                        for (int j = 0; j < nEff; j++)
                        {
                            float t = tile[i * nr + j];
                            float* cij = ct + i * ldc + j;
                            *cij = beta == 0 ? t * alpha : Fused.Scalar(t, alpha, beta * *cij);
                        }
                    }
                }
            }
        }
    }

    // Packs rows [i0, i0+mc) × cols [p0, p0+kc) of op(A) into MR-row micro-panels: panel r holds, for
    // each p, the MR values A[i0+r·MR .. +MR, p]; rows past mc are zero.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void PackA<TK>(float* a, nint rs, nint cs, int i0, int mc, int p0, int kc, float* dst) where TK : IMicroKernel
    {
        int mr = TK.MR;
        if (cs != 1)
        {
            // op(A) = Aᵀ: a column of op(A) is a row of A; read each once across all micro-panels.
            for (int p = 0; p < kc; p++)
            {
                float* s = a + (p0 + p) * cs + i0 * rs;
                if (rs == 1 && p + PrefetchRows < kc && Sse.IsSupported)
                {
                    // The rows of A are far apart (a column of op(A) is a row of A, e.g. a weight
                    // gradient's dYᵀ), and each gives only mc values: the hardware prefetchers miss
                    // such short runs, so fetch the run of a row PrefetchRows ahead (measured on the
                    // 32128×256×1024 LM-head gradient: 60 → 53 ms on 2 threads).
                    byte* ahead = (byte*)(s + PrefetchRows * cs);
                    for (int o = 0; o < mc * sizeof(float); o += 64) Sse.Prefetch0(ahead + o);
                }
                for (int ir = 0; ir < mc; ir += mr)
                {
                    int mEff = Math.Min(mr, mc - ir);
                    float* dp = dst + (nint)ir * kc + p * mr;
                    int ii = 0;
                    if (rs == 1)
                    {
                        // The usual case (Aᵀ of a row-major A): the panel's values are contiguous.
                        float* sr = s + ir;
                        if (Vector256.IsHardwareAccelerated)
                            for (; ii + 8 <= mEff; ii += 8) Vector256.Store(Vector256.Load(sr + ii), dp + ii);
                        if (Vector128.IsHardwareAccelerated)
                            for (; ii + 4 <= mEff; ii += 4) Vector128.Store(Vector128.Load(sr + ii), dp + ii);
                    }
                    for (; ii < mEff; ii++) dp[ii] = s[(ir + ii) * rs];
                    for (; ii < mr; ii++) dp[ii] = 0;
                }
            }
            return;
        }
        float** rows = stackalloc float*[mr];
        for (int ir = 0; ir < mc; ir += mr)
        {
            int mEff = Math.Min(mr, mc - ir);
            for (int ii = 0; ii < mr; ii++) rows[ii] = ii < mEff ? a + (i0 + ir + ii) * rs + p0 : s_zeroRow;
            TransposeRows(rows, mr, kc, dst + (nint)ir * kc, mr);
        }
    }
}
