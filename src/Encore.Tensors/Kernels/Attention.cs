// Scaled dot-product attention, out = softmax(scale·Q·Kᵀ + bias + mask)·V, forward and backward.
// The fast paths follow FlashAttention-2 (Dao, arXiv 2307.08691): keys are visited in blocks with a
// running max and denominator per query row, so memory is O(T·hd), never O(T·S); the forward
// stores the log-sum-exp per row so the backward recomputes the probabilities instead of storing
// them. The semantics (masks, bias, GQA head mapping, log-sum-exp output) follow PyTorch's
// scaled_dot_product_attention and its flash/efficient backends.

namespace Encore.Tensors.Kernels;

/// <summary>
/// Sizes of one attention call: Q is (B, H, T, hd), K and V are (B, Hkv, S, hd), the output is
/// (B, H, T, hd). Query head h reads kv head h / (H / Hkv) (grouped-query and multi-query
/// attention when Hkv &lt; H).
/// </summary>
/// <param name="Batch">B.</param>
/// <param name="Heads">H, query heads; a multiple of <paramref name="KvHeads"/>.</param>
/// <param name="KvHeads">Hkv, key/value heads.</param>
/// <param name="QueryLength">T, queries per head.</param>
/// <param name="KeyLength">S, keys per head (the used length of a KV cache, not its capacity).</param>
/// <param name="HeadDim">hd, at least 1.</param>
public readonly record struct AttentionShape(int Batch, int Heads, int KvHeads, int QueryLength, int KeyLength, int HeadDim);

/// <summary>
/// Element strides of a (B, heads, length, hd) operand whose last dimension is contiguous. Views
/// need no copy: a KV cache of capacity C &gt; S has Position = hd and Head = C·hd; a fused QKV
/// projection output (B, L, 3·H·hd) gives Q, K and V with Position = 3·H·hd and Head = hd.
/// A stride of 0 broadcasts (e.g. Batch = 0 shares one K/V across the batch).
/// </summary>
/// <param name="Batch">Elements between batch items.</param>
/// <param name="Head">Elements between heads.</param>
/// <param name="Position">Elements between positions (rows).</param>
public readonly record struct AttentionStrides(int Batch, int Head, int Position)
{
    /// <summary>Packed (B, heads, length, hd), the PyTorch SDPA layout.</summary>
    public static AttentionStrides HeadMajor(int heads, int length, int headDim)
        => new(checked(heads * length * headDim), checked(length * headDim), headDim);

    /// <summary>Packed (B, length, heads, hd): a projection output split into heads without a transpose.</summary>
    public static AttentionStrides PositionMajor(int heads, int length, int headDim)
        => new(checked(length * heads * headDim), headDim, checked(heads * headDim));
}

/// <summary>Queries (B, H, T, hd), keys and values (B, Hkv, S, hd) of an attention call, each with its strides.</summary>
public readonly ref struct AttentionInputs(ReadOnlySpan<float> q, AttentionStrides qStrides, ReadOnlySpan<float> k, AttentionStrides kStrides,
    ReadOnlySpan<float> v, AttentionStrides vStrides)
{
    /// <summary>Queries.</summary>
    public ReadOnlySpan<float> Q { get; } = q;
    /// <summary>Strides of <see cref="Q"/>.</summary>
    public AttentionStrides QStrides { get; } = qStrides;
    /// <summary>Keys.</summary>
    public ReadOnlySpan<float> K { get; } = k;
    /// <summary>Strides of <see cref="K"/>.</summary>
    public AttentionStrides KStrides { get; } = kStrides;
    /// <summary>Values.</summary>
    public ReadOnlySpan<float> V { get; } = v;
    /// <summary>Strides of <see cref="V"/>.</summary>
    public AttentionStrides VStrides { get; } = vStrides;
}

/// <summary>The gradients an attention backward writes: dQ (B, H, T, hd), dK and dV (B, Hkv, S, hd), each with its strides.</summary>
public readonly ref struct AttentionGradients(Span<float> dq, AttentionStrides dqStrides, Span<float> dk, AttentionStrides dkStrides,
    Span<float> dv, AttentionStrides dvStrides)
{
    /// <summary>dQ.</summary>
    public Span<float> DQ { get; } = dq;
    /// <summary>Strides of <see cref="DQ"/>.</summary>
    public AttentionStrides DQStrides { get; } = dqStrides;
    /// <summary>dK.</summary>
    public Span<float> DK { get; } = dk;
    /// <summary>Strides of <see cref="DK"/>.</summary>
    public AttentionStrides DKStrides { get; } = dkStrides;
    /// <summary>dV.</summary>
    public Span<float> DV { get; } = dv;
    /// <summary>Strides of <see cref="DV"/>.</summary>
    public AttentionStrides DVStrides { get; } = dvStrides;
}

/// <summary>Scalar settings of an attention call; every one has a documented default.</summary>
public readonly record struct AttentionOptions
{
    /// <summary>Settings with every default.</summary>
    public AttentionOptions() { }

    /// <summary>Multiplier of Q·Kᵀ. Default null: 1/√hd. T5 uses 1 (its scaling is folded into the weights).</summary>
    public float? Scale { get; init; }

    /// <summary>
    /// Causal masking: query t sits at absolute position t + <see cref="QueryOffset"/> and sees the
    /// keys at positions ≤ that. Default false (every key visible).
    /// </summary>
    public bool Causal { get; init; }

    /// <summary>
    /// Absolute position of query 0 among the keys, used by <see cref="Causal"/> and ALiBi. Default 0
    /// (self-attention over a whole sequence); decoding T new tokens against a cache of S keys uses S − T.
    /// </summary>
    public int QueryOffset { get; init; }

    /// <summary>
    /// Keys per block of the online softmax. Default 0: 64, which keeps a K and a V block of
    /// hd ≤ 128 in L1. Any value gives the same result up to rounding.
    /// </summary>
    public int KeyBlock { get; init; }

    /// <summary>
    /// Soft-capping of the scaled scores, s → c·tanh(s/c), before the bias and the masks (Gemma 2's
    /// <c>attn_logit_softcapping</c>, modeling_gemma2.py eager_attention_forward). Default 0: none.
    /// </summary>
    public float SoftCap { get; init; }

    /// <summary>
    /// Sliding window W: query position i sees key j only where i − j &lt; W, and, without <see cref="Causal"/>,
    /// also j − i &lt; W (Gemma 2's sliding_window layers; T5Gemma's bidirectional encoder). With
    /// <see cref="Causal"/> the query position is the last key it sees, so rows of a batch cache at their own
    /// lengths (<see cref="AttentionMask.KeyLengths"/>) keep their own windows. Default 0: no window.
    /// </summary>
    public int Window { get; init; }

    internal float ResolveScale(int headDim) => Scale ?? 1f / MathF.Sqrt(headDim);
    internal int ResolveKeyBlock() => KeyBlock > 0 ? KeyBlock : 64;
}

/// <summary>
/// Masks and additive biases applied to the scores; every part is optional (empty span = absent)
/// and they combine. A key hidden by any mask gets probability 0; a query row that sees no key
/// at all outputs zeros and has log-sum-exp −∞ (PyTorch's SDPA would give NaN there).
/// </summary>
public readonly ref struct AttentionMask
{
    /// <summary>(B): batch item b sees only keys j &lt; KeyLengths[b] (right padding). Each value in [0, S].</summary>
    public ReadOnlySpan<int> KeyLengths { get; init; }

    /// <summary>(B, S) packed: key j of batch item b is visible where the byte is nonzero. A bool span converts with <c>MemoryMarshal.Cast&lt;bool, byte&gt;</c>.</summary>
    public ReadOnlySpan<byte> KeyMask { get; init; }

    /// <summary>
    /// Added to the scaled scores: (H, T, S) packed, shared by the batch (T5 relative position
    /// bias), or (B, H, T, S) packed; the layout is told by the length (they coincide when B = 1).
    /// −∞ entries act as a mask.
    /// </summary>
    public ReadOnlySpan<float> Bias { get; init; }

    /// <summary>
    /// (H, T + S − 1) packed, shared by the batch: an additive bias that depends only on how far a key is
    /// from a query. Query t and key j of head h get <c>DistanceBias[h·(T + S − 1) + t − j + S − 1]</c>. This is
    /// the Toeplitz form of T5's relative position bias: H·(T + S − 1) values instead of the H·T·S of
    /// <see cref="Bias"/>, read with contiguous loads. It adds to <see cref="Bias"/> when both are given.
    /// Forward kernels only: the backward and entropy kernels refuse it (train through <see cref="Bias"/>).
    /// </summary>
    public ReadOnlySpan<float> DistanceBias { get; init; }

    /// <summary>
    /// (H): ALiBi slopes (Press et al., arXiv 2108.12409); adds slope[h]·(key position − query
    /// position) to the scores without materializing a bias tensor. Query positions include
    /// <see cref="AttentionOptions.QueryOffset"/>.
    /// </summary>
    public ReadOnlySpan<float> AlibiSlopes { get; init; }
}

/// <summary>Scaled dot-product attention kernels (see the file header for the algorithm and its sources).</summary>
public static unsafe partial class Attention
{
    /// <summary>
    /// out = softmax(scale·Q·Kᵀ + bias + masks)·V. Writes the log-sum-exp of each query row,
    /// (B, H, T) packed, into <paramref name="logSumExp"/> when it is not empty (the backward needs
    /// it). A query row that sees no key outputs zeros and log-sum-exp −∞. The output must not
    /// overlap the inputs. Allocates nothing after a thread's first call; the result is
    /// bit-identical from run to run whatever the thread count (it depends on the SIMD width and
    /// <see cref="AttentionOptions.KeyBlock"/> only).
    /// </summary>
    public static void Forward(in AttentionShape shape, in AttentionInputs inputs,
        Span<float> output, AttentionStrides outputStrides,
        in AttentionOptions options = default, in AttentionMask mask = default,
        Span<float> logSumExp = default)
    {
        ReadOnlySpan<float> q = inputs.Q, k = inputs.K, v = inputs.V;
        AttentionStrides qStrides = inputs.QStrides, kStrides = inputs.KStrides, vStrides = inputs.VStrides;
        CheckForward(shape, q, qStrides, k, kStrides, v, vStrides, output, outputStrides, options, mask, logSumExp);
        var width = Simd.Current;
        fixed (float* pq = q, pk = k, pv = v, po = output, plse = logSumExp, pbias = mask.Bias, palibi = mask.AlibiSlopes, pdist = mask.DistanceBias)
        fixed (int* plen = mask.KeyLengths)
        fixed (byte* pmask = mask.KeyMask)
        {
            var p = MakeProblem(shape, options, mask, plen, pmask, pbias, palibi, pdist);
            p.Q = pq; p.Qs = qStrides;
            p.K = pk; p.Ks = kStrides;
            p.V = pv; p.Vs = vStrides;
            p.O = po; p.Os = outputStrides;
            p.Lse = plse;
            RunForward(ref p, width);
        }
    }

    /// <summary>
    /// Gradients of <see cref="Forward"/>: from dOut and the forward's output and log-sum-exp,
    /// writes dQ (B, H, T, hd), dK and dV (B, Hkv, S, hd) (overwritten, not accumulated) and, when
    /// <paramref name="dBias"/> is not empty, dBias in the layout of <see cref="AttentionMask.Bias"/>
    /// (summed over the batch for a (H, T, S) bias); ALiBi slopes get no gradient. Masks, bias and
    /// options must be the forward's; the output is used only for D = rowsum(dOut∘out). The
    /// gradients must not overlap each other or the inputs. Deterministic: each gradient element
    /// is summed in a fixed order whatever the thread count.
    /// </summary>
    public static void Backward(in AttentionShape shape, in AttentionInputs inputs,
        ReadOnlySpan<float> output, AttentionStrides outputStrides,
        ReadOnlySpan<float> dOutput, AttentionStrides dOutputStrides,
        ReadOnlySpan<float> logSumExp, in AttentionGradients gradients,
        in AttentionOptions options = default, in AttentionMask mask = default,
        Span<float> dBias = default)
    {
        ReadOnlySpan<float> q = inputs.Q, k = inputs.K, v = inputs.V;
        AttentionStrides qStrides = inputs.QStrides, kStrides = inputs.KStrides, vStrides = inputs.VStrides;
        Span<float> dq = gradients.DQ, dk = gradients.DK, dv = gradients.DV;
        AttentionStrides dqStrides = gradients.DQStrides, dkStrides = gradients.DKStrides, dvStrides = gradients.DVStrides;
        CheckForward(shape, q, qStrides, k, kStrides, v, vStrides, default, default, options, mask, default, checkOutput: false);
        CheckBackward(shape, output, outputStrides, dOutput, dOutputStrides, logSumExp, dq, dqStrides, dk, dkStrides, dv, dvStrides, mask, dBias);
        RefuseDistanceBias(mask, "Backward");
        var width = Simd.Current;
        fixed (float* pq = q, pk = k, pv = v, po = output, pdo = dOutput, plse = logSumExp, pbias = mask.Bias, palibi = mask.AlibiSlopes)
        fixed (float* pdq = dq, pdk = dk, pdv = dv, pdb = dBias)
        fixed (int* plen = mask.KeyLengths)
        fixed (byte* pmask = mask.KeyMask)
        {
            var p = MakeProblem(shape, options, mask, plen, pmask, pbias, palibi);
            p.Q = pq; p.Qs = qStrides;
            p.K = pk; p.Ks = kStrides;
            p.V = pv; p.Vs = vStrides;
            p.O = po; p.Os = outputStrides;
            p.Lse = plse;
            p.DO = pdo; p.DOs = dOutputStrides;
            p.DQ = pdq; p.DQs = dqStrides;
            p.DK = pdk; p.DKs = dkStrides;
            p.DV = pdv; p.DVs = dvStrides;
            p.DBias = pdb;
            RunBackward(ref p, width);
        }
    }

    static AttentionProblem MakeProblem(in AttentionShape shape, in AttentionOptions options, in AttentionMask mask,
        int* lengths, byte* keyMask, float* bias, float* alibi, float* distanceBias = null)
    {
        long perHead = (long)shape.Heads * shape.QueryLength * shape.KeyLength;
        return new AttentionProblem
        {
            B = shape.Batch, H = shape.Heads, Hkv = shape.KvHeads, T = shape.QueryLength, S = shape.KeyLength, Hd = shape.HeadDim,
            Group = shape.KvHeads > 0 ? shape.Heads / shape.KvHeads : 1,
            Scale = options.ResolveScale(shape.HeadDim),
            Causal = options.Causal,
            Offset = options.QueryOffset,
            KeyBlock = options.ResolveKeyBlock(),
            SoftCap = options.SoftCap,
            Window = options.Window,
            KeyLengths = mask.KeyLengths.IsEmpty ? null : lengths,
            KeyMask = mask.KeyMask.IsEmpty ? null : keyMask,
            Bias = mask.Bias.IsEmpty ? null : bias,
            BiasBatchStride = mask.Bias.Length > perHead ? perHead : 0,
            Alibi = mask.AlibiSlopes.IsEmpty ? null : alibi,
            DistBias = mask.DistanceBias.IsEmpty ? null : distanceBias,
            DistWidth = shape.QueryLength + shape.KeyLength - 1,
        };
    }

    // ---- argument checks -------------------------------------------------------------------

    static void CheckForward(in AttentionShape s,
        ReadOnlySpan<float> q, AttentionStrides qs, ReadOnlySpan<float> k, AttentionStrides ks,
        ReadOnlySpan<float> v, AttentionStrides vs, ReadOnlySpan<float> o, AttentionStrides os,
        in AttentionOptions options, in AttentionMask mask, ReadOnlySpan<float> lse, bool checkOutput = true, bool checkKeyValues = true)
    {
        if (s.Batch < 0 || s.Heads < 0 || s.QueryLength < 0 || s.KeyLength < 0)
            throw new ArgumentException($"Attention: negative size in {s}");
        if (s.KvHeads < 1 || s.Heads % s.KvHeads != 0)
            throw new ArgumentException($"Attention: H = {s.Heads} must be a multiple of Hkv = {s.KvHeads} ≥ 1");
        if (s.HeadDim < 1) throw new ArgumentException($"Attention: head dim must be ≥ 1, got {s.HeadDim}");
        if (options.Scale is { } sc && !float.IsFinite(sc)) throw new ArgumentException($"Attention: scale {sc} is not finite");
        if (options.KeyBlock < 0 || options.KeyBlock > 65536) throw new ArgumentException($"Attention: key block {options.KeyBlock} is not in [0, 65536]");
        if (!(options.SoftCap >= 0 && float.IsFinite(options.SoftCap))) throw new ArgumentException($"Attention: soft cap {options.SoftCap} must be 0 (none) or positive and finite");
        if (options.Window < 0) throw new ArgumentException($"Attention: window {options.Window} must be 0 (none) or positive");
        CheckOperand("Q", q.Length, qs, s.Batch, s.Heads, s.QueryLength, s.HeadDim);
        if (checkKeyValues)
        {
            CheckOperand("K", k.Length, ks, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim);
            CheckOperand("V", v.Length, vs, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim);
        }
        if (checkOutput)
        {
            CheckOperand("output", o.Length, os, s.Batch, s.Heads, s.QueryLength, s.HeadDim, written: true);
            CheckLength("log-sum-exp", lse.Length, (long)s.Batch * s.Heads * s.QueryLength, allowEmpty: true);
        }
        if (!mask.KeyLengths.IsEmpty)
        {
            if (mask.KeyLengths.Length != s.Batch)
                throw new ArgumentException($"Attention: KeyLengths has {mask.KeyLengths.Length} values for B = {s.Batch}");
            for (int b = 0; b < s.Batch; b++)
                if ((uint)mask.KeyLengths[b] > (uint)s.KeyLength)
                    throw new ArgumentException($"Attention: KeyLengths[{b}] = {mask.KeyLengths[b]} is not in [0, S = {s.KeyLength}]");
        }
        if (!mask.KeyMask.IsEmpty && mask.KeyMask.Length != (long)s.Batch * s.KeyLength)
            throw new ArgumentException($"Attention: KeyMask has {mask.KeyMask.Length} values, expected B·S = {(long)s.Batch * s.KeyLength}");
        if (!mask.Bias.IsEmpty)
        {
            long perHead = (long)s.Heads * s.QueryLength * s.KeyLength;
            if (mask.Bias.Length != perHead && mask.Bias.Length != s.Batch * perHead)
                throw new ArgumentException($"Attention: Bias has {mask.Bias.Length} values, expected H·T·S = {perHead} or B·H·T·S = {s.Batch * perHead}");
        }
        if (!mask.AlibiSlopes.IsEmpty && mask.AlibiSlopes.Length != s.Heads)
            throw new ArgumentException($"Attention: AlibiSlopes has {mask.AlibiSlopes.Length} values for H = {s.Heads}");
        if (!mask.DistanceBias.IsEmpty && mask.DistanceBias.Length != (long)s.Heads * (s.QueryLength + s.KeyLength - 1))
            throw new ArgumentException($"Attention: DistanceBias has {mask.DistanceBias.Length} values, expected H·(T + S − 1) = {(long)s.Heads * Math.Max(0, s.QueryLength + s.KeyLength - 1)}");
    }

    /// <summary>Kernels with a gradient or another output than the forward's refuse <see cref="AttentionMask.DistanceBias"/>.</summary>
    static void RefuseDistanceBias(in AttentionMask mask, string kernel)
    {
        if (!mask.DistanceBias.IsEmpty)
            throw new ArgumentException($"Attention.{kernel}: DistanceBias is read by the forward kernels only; pass the (H, T, S) Bias instead");
    }

    static void CheckBackward(in AttentionShape s,
        ReadOnlySpan<float> o, AttentionStrides os, ReadOnlySpan<float> dO, AttentionStrides dos, ReadOnlySpan<float> lse,
        ReadOnlySpan<float> dq, AttentionStrides dqs, ReadOnlySpan<float> dk, AttentionStrides dks,
        ReadOnlySpan<float> dv, AttentionStrides dvs, in AttentionMask mask, ReadOnlySpan<float> dBias)
    {
        CheckOperand("output", o.Length, os, s.Batch, s.Heads, s.QueryLength, s.HeadDim);
        CheckOperand("dOutput", dO.Length, dos, s.Batch, s.Heads, s.QueryLength, s.HeadDim);
        CheckLength("log-sum-exp", lse.Length, (long)s.Batch * s.Heads * s.QueryLength, allowEmpty: false);
        CheckOperand("dQ", dq.Length, dqs, s.Batch, s.Heads, s.QueryLength, s.HeadDim, written: true);
        CheckOperand("dK", dk.Length, dks, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim, written: true);
        CheckOperand("dV", dv.Length, dvs, s.Batch, s.KvHeads, s.KeyLength, s.HeadDim, written: true);
        if (!dBias.IsEmpty && dBias.Length != mask.Bias.Length)
            throw new ArgumentException($"Attention: dBias has {dBias.Length} values, the bias has {mask.Bias.Length}");
    }

    static void CheckOperand(string name, int length, AttentionStrides st, int batch, int heads, int rows, int hd, bool written = false)
    {
        if (st.Batch < 0 || st.Head < 0 || st.Position < 0)
            throw new ArgumentException($"Attention: {name} strides {st} must not be negative");
        if (batch == 0 || heads == 0 || rows == 0) return;
        long last = (long)(batch - 1) * st.Batch + (long)(heads - 1) * st.Head + (long)(rows - 1) * st.Position + hd;
        if (last > length)
            throw new ArgumentException($"Attention: {name} ({batch}, {heads}, {rows}, {hd}) with strides {st} needs {last} values, got {length}");
        if (written)
        {
            // Elements of an output must not alias (a broadcast stride of 0 would race between tasks):
            // taken by increasing stride, each dimension must step past the extent of the ones inside it.
            Span<(long Stride, int Size)> dims = stackalloc (long, int)[] { (st.Batch, batch), (st.Head, heads), (st.Position, rows) };
            dims.Sort((x, y) => x.Stride.CompareTo(y.Stride));
            long extent = hd;
            foreach (var (stride, size) in dims)
            {
                if (size == 1) continue;
                if (stride < extent)
                    throw new ArgumentException($"Attention: {name} strides {st} make elements of ({batch}, {heads}, {rows}, {hd}) overlap");
                extent = (size - 1) * stride + extent;
            }
        }
    }

    static void CheckLength(string name, int length, long expected, bool allowEmpty)
    {
        if (allowEmpty && length == 0) return;
        if (length != expected) throw new ArgumentException($"Attention: {name} has {length} values, expected B·H·T = {expected}");
    }
}

/// <summary>Pointers and sizes of one call, shared read-only by all worker tasks.</summary>
internal unsafe struct AttentionProblem
{
    public int B, H, Hkv, T, S, Hd, Group, Offset, KeyBlock, Window;
    public float Scale, SoftCap;
    public bool Causal;
    public float* Q, K, V, O, Lse;
    public AttentionStrides Qs, Ks, Vs, Os;
    // Int8 keys and values (Ks and Vs stride the quants): value = scale·quant, one scale per position.
    public sbyte* K8, V8;
    public float* KScale, VScale;
    public AttentionStrides KScales, VScales;
    public int* KeyLengths;
    public byte* KeyMask;
    public float* Bias, Alibi;
    public long BiasBatchStride;
    // (H, DistWidth = T + S − 1): query t, key j of head h add DistBias[h·DistWidth + t − j + S − 1].
    public float* DistBias;
    public int DistWidth;
    // Backward only.
    public float* DO, DQ, DK, DV, DBias;
    public AttentionStrides DOs, DQs, DKs, DVs;

    /// <summary>Keys [0, KeyLimit) may be visible to batch item b (padding length).</summary>
    public readonly int KeyLimit(int b) => KeyLengths == null ? S : KeyLengths[b];

    /// <summary>One past the last key query row t can see: causality, padding and a bidirectional window.</summary>
    public readonly int KeyEnd(int b, int t)
    {
        int limit = KeyLimit(b);
        if (!Causal) return Window > 0 ? (int)Math.Clamp((long)t + Offset + Window, 0, limit) : limit;
        long end = (long)t + Offset + 1;
        return (int)Math.Clamp(end, 0, limit);
    }

    /// <summary>
    /// The first key query row t can see: 0 without a window; else W keys back from its position, which for a
    /// causal row is its last visible key (so a batch-cache row at its own length keeps its own window).
    /// </summary>
    public readonly int KeyStart(int b, int t)
    {
        if (Window == 0) return 0;
        long position = Causal ? KeyEnd(b, t) - 1L : (long)t + Offset;
        return (int)Math.Clamp(position - Window + 1, 0, S);
    }

    /// <summary>Whether the key mask hides all of keys [kb, kb + nk) (left padding): the block is skipped, as all its probabilities are 0.</summary>
    public readonly bool BlockMasked(int b, int kb, int nk)
        => KeyMask != null && new ReadOnlySpan<byte>(KeyMask + (long)b * S + kb, nk).IndexOfAnyExcept((byte)0) < 0;

    public readonly float* Row(float* basePtr, AttentionStrides st, int b, int h, int t)
        => basePtr + (long)b * st.Batch + (long)h * st.Head + (long)t * st.Position;

    public readonly float* BiasRow(int b, int h, int t)
        => Bias + b * BiasBatchStride + ((long)h * T + t) * S;

    /// <summary>Where query row t of head h reads key 0's distance bias; key j's is at index −j from it.</summary>
    public readonly float* DistanceRow(int h, int t)
        => DistBias + (long)h * DistWidth + t + S - 1;
}
