// ComRoPE (Yu et al., arXiv 2506.03737, CVPR 2025; reference code Longin-Yu/ComRoPE model.py): rotary
// positions whose rotation is the matrix exponential of a trainable block-diagonal skew-symmetric
// generator, R(p) = exp(p·A). The LD ("linearly dependent") variant: per kv head and block, a base
// S = P − Pᵀ (b × b) and a scalar λ, A = λ·S. All positions of one axis share A, so the rotations
// commute and R(x)ᵀR(y) = R(y − x): scores depend on the offset only (the "RoPE equation").
// For 1-D sequences (one axis) any block-diagonal skew-symmetric A commutes with itself, so AP and LD
// coincide up to the λ factor; what ComRoPE adds over RoPE in 1-D is that the rotation planes and
// angles are trained (RoPE fixes b = 2 planes and the angles θ^(−2i/d)).
//
// Block layout: block j of size b holds the head dimensions j·b/2 + m and hd/2 + j·b/2 + m for
// m in [0, b/2) (local indices m and b/2 + m), RoPE's half-split pairing, so b = 2 with the angles
// of RoPE is RoPE exactly. The exponential is computed in double by scaling and squaring a Taylor
// series; its backward uses the adjoint Fréchet derivative, read off the exponential of the block
// matrix [[Mᵀ, G], [0, Mᵀ]] (Najfeld and Havel 1995; Higham, Functions of Matrices §3.2).

namespace Encore.Tensors.Kernels;

/// <summary>
/// ComRoPE-LD kernels: rotations R(p) = exp(p·λ·(P − Pᵀ)) per kv head and block from the parameters,
/// their gradients, and the block rotation of queries and keys (see the file header for the layout).
/// Shapes: P (G, nb, b, b) and λ (G, nb) for G kv heads and nb = hd / b blocks; rotations
/// (slots, G, nb, b, b), one slot per distinct position.
/// </summary>
public static class ComRope
{
    /// <summary>Largest block size accepted: the exponential costs O(b³) per position, head and block.</summary>
    public const int MaxBlock = 16;

    /// <summary>Head dimension of local index <paramref name="local"/> of block <paramref name="block"/> (half-split layout).</summary>
    public static int Dimension(int headDim, int b, int block, int local)
        => local < b / 2 ? block * (b / 2) + local : headDim / 2 + block * (b / 2) + local - b / 2;

    /// <summary>Throws unless b is even, at most <see cref="MaxBlock"/>, and divides hd.</summary>
    public static void CheckBlock(int headDim, int b)
    {
        if (b < 2 || b % 2 != 0 || b > MaxBlock || headDim % b != 0)
            throw new ArgumentException($"ComRoPE: block size {b} must be even, in [2, {MaxBlock}], and divide head_dim {headDim}");
    }

    /// <summary>
    /// exp(A) of an n × n matrix (row-major, double) by scaling and squaring: A/2^s with ‖A/2^s‖₁ ≤ ½,
    /// a Taylor series to 20 terms (error below 2^−60·…, past double precision), then s squarings.
    /// </summary>
    public static void MatrixExp(ReadOnlySpan<double> a, Span<double> result, int n)
    {
        if (a.Length < n * n || result.Length < n * n) throw new ArgumentException($"MatrixExp: {n}×{n} needs {n * n} values");
        double norm = 0;
        for (int c = 0; c < n; c++)
        {
            double col = 0;
            for (int r = 0; r < n; r++) col += Math.Abs(a[r * n + c]);
            norm = Math.Max(norm, col);
        }
        if (!double.IsFinite(norm)) throw new ArgumentException("MatrixExp: the matrix is not finite");
        int s = norm > 0.5 ? Math.Min(1000, (int)Math.Ceiling(Math.Log2(norm / 0.5))) : 0;
        double scale = Math.ScaleB(1.0, -s);
        Span<double> x = n <= 16 ? stackalloc double[n * n] : new double[n * n];
        Span<double> term = n <= 16 ? stackalloc double[n * n] : new double[n * n];
        Span<double> next = n <= 16 ? stackalloc double[n * n] : new double[n * n];
        for (int i = 0; i < n * n; i++) x[i] = a[i] * scale;
        // result = I + X + X²/2! + …, term_k = term_{k−1}·X / k.
        var res = result[..(n * n)];
        res.Clear();
        term.Clear();
        for (int i = 0; i < n; i++) res[i * n + i] = term[i * n + i] = 1;
        for (int k = 1; k <= 20; k++)
        {
            MatMul(term, x, next, n);
            double inv = 1.0 / k, largest = 0;
            for (int i = 0; i < n * n; i++)
            {
                term[i] = next[i] * inv;
                res[i] += term[i];
                largest = Math.Max(largest, Math.Abs(term[i]));
            }
            if (largest < 1e-18) break;
        }
        for (int k = 0; k < s; k++)
        {
            MatMul(res, res, next, n);
            next.CopyTo(res);
        }
    }

    static void MatMul(ReadOnlySpan<double> a, ReadOnlySpan<double> b, Span<double> c, int n)
    {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int k = 0; k < n; k++) sum += a[i * n + k] * b[k * n + j];
                c[i * n + j] = sum;
            }
    }

    /// <summary>
    /// The rotations R(p) = exp(p·λ·(P − Pᵀ)) of every position, kv head and block:
    /// <paramref name="rotations"/> (positions, G, nb, b, b), computed in double and rounded once.
    /// </summary>
    public static void Rotations(ReadOnlySpan<float> basis, ReadOnlySpan<float> scale, int groups, int blocks, int b,
        ReadOnlySpan<float> positions, Span<float> rotations)
    {
        Check(basis, scale, groups, blocks, b);
        int bb = b * b;
        if (rotations.Length != (long)positions.Length * groups * blocks * bb)
            throw new ArgumentException($"ComRoPE: rotations have {rotations.Length} values, expected {(long)positions.Length * groups * blocks * bb}");
        Span<double> m = stackalloc double[bb];
        Span<double> r = stackalloc double[bb];
        for (int p = 0; p < positions.Length; p++)
        {
            double pos = positions[p];
            for (int gj = 0; gj < groups * blocks; gj++)
            {
                Generator(basis.Slice(gj * bb, bb), pos * scale[gj], b, m);
                MatrixExp(m, r, b);
                var dst = rotations.Slice((p * groups * blocks + gj) * bb, bb);
                for (int i = 0; i < bb; i++) dst[i] = (float)r[i];
            }
        }
    }

    // M = c·(P − Pᵀ).
    static void Generator(ReadOnlySpan<float> p, double c, int b, Span<double> m)
    {
        for (int i = 0; i < b; i++)
            for (int j = 0; j < b; j++) m[i * b + j] = c * ((double)p[i * b + j] - p[j * b + i]);
    }

    /// <summary>
    /// Gradients of <see cref="Rotations"/>: from dR (positions, G, nb, b, b), adds dL/dP into
    /// <paramref name="dBasis"/> and dL/dλ into <paramref name="dScale"/> (either may be empty). With
    /// M = p·λ·S, dL/dM = L_exp(Mᵀ, dR), the upper-right block of exp([[Mᵀ, dR], [0, Mᵀ]]); then
    /// dλ = p·⟨dL/dM, S⟩, dS = p·λ·dL/dM and dP = dS − dSᵀ.
    /// </summary>
    public static void RotationsBackward(ReadOnlySpan<float> basis, ReadOnlySpan<float> scale, int groups, int blocks, int b,
        ReadOnlySpan<float> positions, ReadOnlySpan<float> dRotations, Span<float> dBasis, Span<float> dScale)
    {
        Check(basis, scale, groups, blocks, b);
        int bb = b * b, n2 = 2 * b;
        if (dRotations.Length != (long)positions.Length * groups * blocks * bb)
            throw new ArgumentException($"ComRoPE: dRotations has {dRotations.Length} values, expected {(long)positions.Length * groups * blocks * bb}");
        if (!dBasis.IsEmpty && dBasis.Length != basis.Length) throw new ArgumentException("ComRoPE: dBasis must match the basis");
        if (!dScale.IsEmpty && dScale.Length != scale.Length) throw new ArgumentException("ComRoPE: dScale must match the scale");
        var dP = new double[basis.Length];
        var dL = new double[scale.Length];
        Span<double> s = stackalloc double[bb];
        Span<double> big = stackalloc double[n2 * n2];
        Span<double> e = stackalloc double[n2 * n2];
        for (int gj = 0; gj < groups * blocks; gj++)
        {
            Generator(basis.Slice(gj * bb, bb), 1, b, s);
            double lambda = scale[gj];
            for (int p = 0; p < positions.Length; p++)
            {
                var g = dRotations.Slice((p * groups * blocks + gj) * bb, bb);
                double gmax = 0;
                for (int i = 0; i < bb; i++) gmax = Math.Max(gmax, Math.Abs(g[i]));
                if (gmax == 0) continue;
                double pos = positions[p], c = pos * lambda;
                // [[Mᵀ, G/gmax], [0, Mᵀ]]: the Fréchet derivative is linear in G, so G is normalized
                // to keep the block's norm (and the number of squarings) that of M.
                big.Clear();
                for (int i = 0; i < b; i++)
                    for (int j = 0; j < b; j++)
                    {
                        double mt = c * s[j * b + i];
                        big[i * n2 + j] = mt;
                        big[(b + i) * n2 + b + j] = mt;
                        big[i * n2 + b + j] = g[i * b + j] / gmax;
                    }
                MatrixExp(big, e, n2);
                double dot = 0;
                for (int i = 0; i < b; i++)
                    for (int j = 0; j < b; j++)
                    {
                        double dm = e[i * n2 + b + j] * gmax;   // dL/dM[i, j]
                        dot += dm * s[i * b + j];
                        // dS = c·dM; dP = dS − dSᵀ.
                        dP[gj * bb + i * b + j] += c * dm;
                        dP[gj * bb + j * b + i] -= c * dm;
                    }
                dL[gj] += pos * dot;
            }
        }
        if (!dBasis.IsEmpty) for (int i = 0; i < dP.Length; i++) dBasis[i] += (float)dP[i];
        if (!dScale.IsEmpty) for (int i = 0; i < dL.Length; i++) dScale[i] += (float)dL[i];
    }

    static void Check(ReadOnlySpan<float> basis, ReadOnlySpan<float> scale, int groups, int blocks, int b)
    {
        if (groups < 1 || blocks < 1 || b < 2 || b > MaxBlock)
            throw new ArgumentException($"ComRoPE: {groups} kv heads, {blocks} blocks of {b}");
        if (basis.Length != groups * blocks * b * b) throw new ArgumentException($"ComRoPE: basis has {basis.Length} values, expected G·nb·b·b = {groups * blocks * b * b}");
        if (scale.Length != groups * blocks) throw new ArgumentException($"ComRoPE: scale has {scale.Length} values, expected G·nb = {groups * blocks}");
    }

    /// <summary>
    /// y = R·x per block: x and y (rows, heads, hd) row-major, row r rotated by the rotations of slot
    /// <paramref name="slots"/>[r] (positions, G, nb, b, b); head h uses kv head h / (heads / G).
    /// <paramref name="transpose"/> applies Rᵀ = R⁻¹ (the backward to x). y must not overlap x.
    /// </summary>
    public static void Apply(ReadOnlySpan<float> x, Span<float> y, int rows, int heads, int headDim, int groups, int b,
        ReadOnlySpan<float> rotations, ReadOnlySpan<int> slots, bool transpose = false)
    {
        CheckApply(x.Length, y.Length, rows, heads, headDim, groups, b, rotations.Length, slots);
        int blocks = headDim / b, bb = b * b, per = heads / groups, half = b / 2, hh = headDim / 2;
        for (int r = 0; r < rows; r++)
        {
            int slot = slots[r];
            for (int h = 0; h < heads; h++)
            {
                var xr = x.Slice((r * heads + h) * headDim, headDim);
                var yr = y.Slice((r * heads + h) * headDim, headDim);
                int g = h / per;
                for (int j = 0; j < blocks; j++)
                {
                    var rot = rotations.Slice(((slot * groups + g) * blocks + j) * bb, bb);
                    int lo = j * half, hi = hh + j * half;
                    for (int i = 0; i < b; i++)
                    {
                        float sum = 0;
                        for (int k = 0; k < b; k++)
                        {
                            float w = transpose ? rot[k * b + i] : rot[i * b + k];
                            sum += w * xr[k < half ? lo + k : hi + k - half];
                        }
                        yr[i < half ? lo + i : hi + i - half] = sum;
                    }
                }
            }
        }
    }

    /// <summary>
    /// Adds dR += dy·xᵀ per block into <paramref name="dRotations"/> (positions, G, nb, b, b), for y = R·x
    /// as <see cref="Apply"/> computes it, summed over the rows of each slot and the heads of each kv head.
    /// </summary>
    public static void ApplyBackwardRotations(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, int rows, int heads, int headDim, int groups, int b,
        Span<float> dRotations, ReadOnlySpan<int> slots)
    {
        CheckApply(x.Length, dy.Length, rows, heads, headDim, groups, b, dRotations.Length, slots);
        int blocks = headDim / b, bb = b * b, per = heads / groups, half = b / 2, hh = headDim / 2;
        for (int r = 0; r < rows; r++)
        {
            int slot = slots[r];
            for (int h = 0; h < heads; h++)
            {
                var xr = x.Slice((r * heads + h) * headDim, headDim);
                var gr = dy.Slice((r * heads + h) * headDim, headDim);
                int g = h / per;
                for (int j = 0; j < blocks; j++)
                {
                    var dr = dRotations.Slice(((slot * groups + g) * blocks + j) * bb, bb);
                    int lo = j * half, hi = hh + j * half;
                    for (int i = 0; i < b; i++)
                    {
                        float gi = gr[i < half ? lo + i : hi + i - half];
                        for (int k = 0; k < b; k++) dr[i * b + k] += gi * xr[k < half ? lo + k : hi + k - half];
                    }
                }
            }
        }
    }

    static void CheckApply(int xLength, int yLength, int rows, int heads, int headDim, int groups, int b, int rotationsLength, ReadOnlySpan<int> slots)
    {
        CheckBlock(headDim, b);
        if (groups < 1 || heads % groups != 0) throw new ArgumentException($"ComRoPE: {heads} heads do not split into {groups} kv heads");
        long n = (long)rows * heads * headDim;
        if (xLength != n || yLength != n) throw new ArgumentException($"ComRoPE: x and y must hold rows·heads·hd = {n} values, got {xLength} and {yLength}");
        if (slots.Length != rows) throw new ArgumentException($"ComRoPE: {slots.Length} slots for {rows} rows");
        long perSlot = (long)groups * (headDim / b) * b * b;
        if (rotationsLength % perSlot != 0) throw new ArgumentException($"ComRoPE: rotations of {rotationsLength} values are not whole slots of {perSlot}");
        long count = rotationsLength / perSlot;
        foreach (int s in slots)
            if (s < 0 || s >= count) throw new ArgumentException($"ComRoPE: slot {s} is outside [0, {count})");
    }

    /// <summary>
    /// P of a generator that reproduces RoPE: in block j, S[m, b/2 + m] = −θ_i and S[b/2 + m, m] = θ_i
    /// for the pair i = j·b/2 + m of inverse frequency θ_i, written as P = S/2 (so P − Pᵀ = S), λ = 1.
    /// exp(p·S) then turns the pair (x_i, x_{i+hd/2}) by p·θ_i, as <see cref="Rope"/> does.
    /// </summary>
    public static void RopeBasis(Span<float> basis, int groups, int headDim, int b, ReadOnlySpan<double> inverseFrequencies)
    {
        CheckBlock(headDim, b);
        int blocks = headDim / b, half = b / 2, bb = b * b;
        if (basis.Length != groups * blocks * bb) throw new ArgumentException($"ComRoPE: basis has {basis.Length} values, expected {groups * blocks * bb}");
        if (inverseFrequencies.Length != headDim / 2) throw new ArgumentException($"ComRoPE: {inverseFrequencies.Length} frequencies for head_dim {headDim}");
        basis.Clear();
        for (int g = 0; g < groups; g++)
            for (int j = 0; j < blocks; j++)
            {
                var p = basis.Slice((g * blocks + j) * bb, bb);
                for (int m = 0; m < half; m++)
                {
                    float theta = (float)inverseFrequencies[j * half + m];
                    p[m * b + half + m] = -theta / 2;
                    p[(half + m) * b + m] = theta / 2;
                }
            }
    }
}
