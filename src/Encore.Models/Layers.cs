// The building blocks shared by the three families, bottom-up: linear, norm, feed-forward,
// attention (self or cross, with KV cache), block, stack. One definition serves training (a Tape
// records the ops) and inference (no tape; caches hold keys and values). Optional sublayers absorb
// the variants (biases, gated FFN, pre/post norm, cross-attention) instead of subclasses.
using Encore.Autograd;
using Encore.Tensors;
using Encore.Tensors.Kernels;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Models;

/// <summary>
/// Initial weight scales of from-scratch models. Projections that read the residual stream start
/// at fan-in (LeCun) scale, std = 1/√in, so attention scores and FFN pre-activations start at unit
/// scale whatever the width: a fixed std of 0.02 (GPT-2's, tuned for D ≈ 768) leaves a D = 128
/// model's attention almost uniform, and an encoder that attends uniformly receives the same
/// gradient at every position and collapses to one vector, which the decoder then cannot read.
/// Projections that write back into the stream (o_proj, down_proj) are further divided by
/// √(2·layers) (GPT-2 §2.3), so the stream's scale does not grow with depth.
/// </summary>
internal static class InitScale
{
    /// <summary>std of a projection reading <paramref name="fanIn"/> features.</summary>
    public static float Input(int fanIn) => 1f / MathF.Sqrt(fanIn);

    /// <summary>std of a projection writing into the residual stream of a model of configuration <paramref name="c"/> (all its blocks counted).</summary>
    public static float Output(int fanIn, ModelConfig c) => Input(fanIn) / MathF.Sqrt(2f * Math.Max(1, c.EncoderLayers * (c.Family == ModelFamily.DecoderOnly ? 0 : 1) + c.DecoderLayers));
}

/// <summary>
/// y = x·Wᵀ + b; W (out, in) as <c>nn.Linear</c>. With a low-rank adapter active on the model
/// (<see cref="LoraAdapters"/>), y gains each row's adapter delta (alpha/r)·B·A·x.
/// </summary>
public sealed class LinearLayer
{
    readonly ParameterSet _ps;
    readonly string _w;
    readonly string? _b;
    readonly int _index;

    internal LinearLayer(ParameterSet ps, string scope, int inFeatures, int outFeatures, bool bias, float std)
    {
        _ps = ps;
        _index = ps.RegisterLinear(scope, inFeatures, outFeatures);
        _w = scope + ".weight";
        ps.Create(_w, [outFeatures, inFeatures], ParameterSet.Init.Normal, std);
        if (bias)
        {
            _b = scope + ".bias";
            ps.Create(_b, [outFeatures], ParameterSet.Init.Zeros);
        }
    }

    /// <summary>
    /// Applies the layer to x (…, in) → (…, out); <paramref name="dropoutSeed"/> seeds an adapter's
    /// dropout in training (the pass's seed; each layer derives its own from it).
    /// </summary>
    public Var Forward(Var x, ulong dropoutSeed = 0)
    {
        var y = Ops.Linear(x, Var.Of(_ps[_w]), _b is null ? null : Var.Of(_ps[_b]));   // (…, out)
        return _ps.Lora is { } lora ? lora.Apply(_index, x, y, dropoutSeed) : y;
    }

    /// <summary>
    /// a, b and c applied to the same x, as their <see cref="Forward"/>s would give them. With no adapter active, the three
    /// run as one shared-input product (<see cref="Ops.LinearShared"/>: one quantization of x and one dispatch, which at
    /// batch-1 decoding is much of a small matrix's time); the results are the same either way.
    /// </summary>
    internal static (Var A, Var B, Var C) ForwardShared(LinearLayer a, LinearLayer b, LinearLayer c, Var x, ulong dropoutSeed = 0)
    {
        if (a._ps.Lora != null || b._ps.Lora != null || c._ps.Lora != null)
            return (a.Forward(x, dropoutSeed), b.Forward(x, dropoutSeed), c.Forward(x, dropoutSeed));
        return Ops.LinearShared(x, a.Weight, a.Bias, b.Weight, b.Bias, c.Weight, c.Bias);
    }

    Var Weight => Var.Of(_ps[_w]);
    Var? Bias => _b is null ? null : Var.Of(_ps[_b]);
}

/// <summary>RMSNorm or LayerNorm over the last dimension, or none (the identity); RMSNorm optionally scaled by 1 + w (Gemma, <see cref="ModelConfig.NormUnitOffset"/>).</summary>
public sealed class NormLayer
{
    readonly ParameterSet _ps;
    readonly NormKind _kind;
    readonly string _w;
    readonly string? _b;
    readonly float _eps;
    readonly bool _unitOffset;

    internal NormLayer(ParameterSet ps, string scope, int width, NormKind kind, float eps, bool unitOffset = false)
    {
        _ps = ps;
        _kind = kind;
        _eps = eps;
        _unitOffset = unitOffset;
        _w = scope + ".weight";
        if (kind == NormKind.None) return;
        ps.Create(_w, [width], unitOffset ? ParameterSet.Init.Zeros : ParameterSet.Init.Ones);
        if (kind == NormKind.LayerNorm)
        {
            _b = scope + ".bias";
            ps.Create(_b, [width], ParameterSet.Init.Zeros);
        }
    }

    /// <summary>Normalizes x (…, D).</summary>
    public Var Forward(Var x) => _kind switch
    {
        NormKind.RmsNorm => Ops.RmsNorm(x, _unitOffset ? Ops.AddScalar(Var.Of(_ps[_w]), 1) : Var.Of(_ps[_w]), _eps),
        NormKind.LayerNorm => Ops.LayerNorm(x, Var.Of(_ps[_w]), Var.Of(_ps[_b!]), _eps),
        _ => x,
    };

    /// <summary>The norm of configuration <paramref name="c"/> at <paramref name="scope"/> over D.</summary>
    internal static NormLayer Of(ParameterSet ps, string scope, ModelConfig c) => new(ps, scope, c.DModel, c.Norm, c.NormEps, c.NormUnitOffset);
}

/// <summary>
/// The position-wise feed-forward: down(act(up(x))), or down(act(gate(x))⊙up(x)) when gated
/// (GeGLU/SwiGLU, Shazeer arXiv 2002.05202; T5 v1.1, Llama).
/// </summary>
public sealed class FeedForward
{
    readonly LinearLayer? _gate;
    readonly LinearLayer _up;
    readonly LinearLayer _down;
    readonly ActivationKind _act;

    internal FeedForward(ParameterSet ps, string scope, ModelConfig c)
    {
        _act = c.Activation;
        float std = InitScale.Input(c.DModel);
        if (c.GatedFfn) _gate = new LinearLayer(ps, scope + ".gate_proj", c.DModel, c.FfnDim, c.MlpBias, std);
        _up = new LinearLayer(ps, scope + ".up_proj", c.DModel, c.FfnDim, c.MlpBias, std);
        _down = new LinearLayer(ps, scope + ".down_proj", c.FfnDim, c.DModel, c.MlpBias, InitScale.Output(c.FfnDim, c));
    }

    /// <summary>x (…, D) → (…, D); <paramref name="dropoutSeed"/> seeds adapter dropout in training.</summary>
    public Var Forward(Var x, ulong dropoutSeed = 0)
    {
        var u = _up.Forward(x, dropoutSeed);                                // (…, F)
        Var h;
        if (_gate is null) h = Ops.Activation(u, _act);
        else
        {
            var g = _gate.Forward(x, dropoutSeed);
            h = Ops.Gated(g, u, _act);
            ReleaseUnlessRecorded(g);
        }
        ReleaseUnlessRecorded(u);
        var y = _down.Forward(h, dropoutSeed);
        ReleaseUnlessRecorded(h);
        return y;
    }

    // The (…, F) intermediates are the largest values of a forward pass. With no tape recording
    // (inference), nothing reads them after the next op, so their buffers go back at once (to the
    // buffer pool when one is enabled) rather than waiting for a collection: a prefill of hundreds
    // of positions otherwise faults in fresh pages for every layer. A workspace's pooled vars ignore this.
    static void ReleaseUnlessRecorded(Var v)
    {
        if (Tape.Current == null) v.Dispose();
    }
}

/// <summary>What every attention layer of one stack sees in one forward pass.</summary>
internal sealed class StackContext
{
    public int Batch;
    public int Length;                         // T, new positions this pass
    public int Offset;                         // positions already in the self-attention cache
    public RopeCache? Rope;
    public float[]? RopePositions;             // (B·T)
    public float[]? QueryRopePositions;        // (B·G) a pooled block's queries (see Block.ForwardPooled); null otherwise
    public float[]? ComRopePositions;          // (P) ComRoPE: the distinct positions of this pass
    public int[]? ComRopeSlots;                // (B·T) ComRoPE: each row's index into ComRopePositions
    public Var? SelfBias;                      // (H, T, Offset+T) T5 relative bias
    public AttentionMaskOptions SelfMasks = AttentionMaskOptions.None;
    public AttentionOptions SelfOptions;
    public AttentionMaskOptions CrossMasks = AttentionMaskOptions.None;
    public AttentionOptions CrossOptions;
    public Var? Memory;                        // (B, S, D) encoder output, for cross-attention
    public int[]? RowOffsets;                  // (B) batch-cache step: positions already cached per row; null when uniform
    public Tensor? Sinusoids;                  // (B, T, D) sinusoidal positions kept across a session's steps
    public int CrossKeys;                      // ragged step: cross-attention keys read (longest source); 0 when uniform
    public ulong DropoutSeed;
    public bool Training;
    public AttentionEntropyProbe? Entropy;     // collects each attention layer's entropy (passes without a cache)
    public CodebookProbe? Codes;               // collects which codes each codebook chose
}

/// <summary>Multi-head attention with separate q, k, v, o projections (self- or cross-attention).</summary>
public sealed class AttentionLayer
{
    readonly LinearLayer _q, _k, _v, _o;
    readonly int _heads, _kvHeads;
    readonly bool _cross;
    readonly ParameterSet _ps;
    readonly string? _comBasis, _comScale;   // ComRoPE: P (Hkv, nb, b, b) and λ (Hkv, nb)
    readonly string? _urpe;                  // URPE: Toeplitz coefficients (H, width)
    readonly bool _urpeBidirectional;
    readonly string _scope;
    readonly int _window;                    // sliding window of this self-attention layer; 0: global

    /// <remarks><paramref name="memoryWidth"/>: the width of the memory cross-attention reads (the encoder's D); 0: D.</remarks>
    internal AttentionLayer(ParameterSet ps, string scope, ModelConfig c, bool cross, PositionConfig? positions = null, bool causal = false, int window = 0, int memoryWidth = 0)
    {
        _ps = ps;
        _scope = scope;
        _window = cross ? 0 : window;
        _heads = c.Heads;
        _kvHeads = c.KvHeads;
        _cross = cross;
        float std = InitScale.Input(c.DModel);
        // Keys and values read x, or in cross-attention the encoder output, which may be wider or narrower (T5Gemma 9B-2B).
        int kvInput = cross && memoryWidth > 0 ? memoryWidth : c.DModel;
        _q = new LinearLayer(ps, scope + ".q_proj", c.DModel, c.AttentionDim, c.QkvBias, std);
        _k = new LinearLayer(ps, scope + ".k_proj", kvInput, c.KvHeads * c.HeadDim, c.QkvBias, InitScale.Input(kvInput));
        _v = new LinearLayer(ps, scope + ".v_proj", kvInput, c.KvHeads * c.HeadDim, c.QkvBias, InitScale.Input(kvInput));
        _o = new LinearLayer(ps, scope + ".o_proj", c.AttentionDim, c.DModel, c.OutputBias, InitScale.Output(c.AttentionDim, c));
        if (positions?.Kind == PositionKind.ComRope && !cross)
        {
            // Per kv head, so a query head and the keys it reads turn alike under GQA. Starts at RoPE
            // (λ = 1, P = S/2 with RoPE's angles), plus optional noise; no weight decay (it would pull
            // the angles to 0, i.e. towards no positions).
            int b = positions.ComRopeBlock, nb = c.HeadDim / b, hd = c.HeadDim, hkv = c.KvHeads;
            var freq = RopeCache.InverseFrequencies(new RopeOptions { Theta = positions.RopeTheta }, hd);
            float noise = (float)positions.ComRopeInitStd;
            _comBasis = scope + ".comrope.basis";
            _comScale = scope + ".comrope.scale";
            ps.CreateF32Table(_comBasis, [hkv, nb, b, b], (values, seed) =>
            {
                ComRope.RopeBasis(values, hkv, hd, b, freq);
                if (noise > 0) ParameterSet.AddNormal(values, noise, seed);
            }).Decay = false;
            ps.CreateF32Table(_comScale, [hkv, nb], ParameterSet.Init.Ones).Decay = false;
        }
        if (positions?.Kind == PositionKind.Urpe && !cross)
        {
            // C = 1: URPE starts as the plain relative-position attention (arXiv 2205.13401); no weight decay (it would pull C to 0).
            _urpe = scope + ".urpe.weight";
            _urpeBidirectional = !causal;
            ps.CreateF32Table(_urpe, [c.Heads, ParameterCounter.UrpeWidth(positions, causal)], ParameterSet.Init.Ones).Decay = false;
        }
    }

    /// <summary>x (B, T, D) → (B, T, D). Cross-attention reads ctx.Memory and carries no positions.</summary>
    internal Var Forward(Var x, StackContext ctx, LayerCache? cache)
    {
        Var q, ks = null!, vs = null!;
        if (_cross) q = _q.Forward(x, ctx.DropoutSeed);                     // (B, T, H·hd)
        else (q, ks, vs) = LinearLayer.ForwardShared(_q, _k, _v, x, ctx.DropoutSeed); // and (B, T, Hkv·hd) twice
        if (_cross)
        {
            // Cross K/V depend only on the encoder output: computed once per request and cached.
            if (cache != null)
            {
                if (cache.Length == 0)
                {
                    var km = _k.Forward(ctx.Memory!, ctx.DropoutSeed);      // (B, S, Hkv·hd)
                    var vm = _v.Forward(ctx.Memory!, ctx.DropoutSeed);
                    cache.Append(km, vm);
                    cache.Length = km.Shape[1];
                }
                int keys = ctx.CrossKeys > 0 ? ctx.CrossKeys : cache.Length;
                return _o.Forward(cache.Attend(q, keys, _heads, _kvHeads, ctx.CrossOptions, ctx.CrossMasks), ctx.DropoutSeed);
            }
            var k = _k.Forward(ctx.Memory!, ctx.DropoutSeed);
            var v = _v.Forward(ctx.Memory!, ctx.DropoutSeed);
            ctx.Entropy?.Add(_scope, true, q, k, _heads, _kvHeads, ctx.CrossOptions, ctx.CrossMasks, null, ctx.SelfMasks.KeyLengths);
            return _o.Forward(Ops.Attention(q, k, v, _heads, _kvHeads, ctx.CrossOptions, ctx.CrossMasks), ctx.DropoutSeed);
        }
        if (ctx.Rope != null)
        {
            q = Ops.Rope(q, ctx.Rope, _heads, ctx.RopePositions);
            ks = Ops.Rope(ks, ctx.Rope, _kvHeads, ctx.RopePositions);
        }
        if (_comBasis != null)
        {
            var rotations = Ops.ComRopeRotations(Var.Of(_ps[_comBasis]), Var.Of(_ps[_comScale!]), ctx.ComRopePositions);   // (P, Hkv, nb, b, b)
            q = Ops.ComRope(q, rotations, _heads, ctx.ComRopeSlots);
            ks = Ops.ComRope(ks, rotations, _kvHeads, ctx.ComRopeSlots);
        }
        var options = _window > 0 ? ctx.SelfOptions with { Window = _window } : ctx.SelfOptions;
        if (cache == null) ctx.Entropy?.Add(_scope, false, q, ks, _heads, _kvHeads, options, ctx.SelfMasks, ctx.SelfBias, ctx.SelfMasks.KeyLengths);
        if (_urpe != null) return _o.Forward(AttendUrpe(q, ks, vs, ctx, cache), ctx.DropoutSeed);
        Var a;
        if (cache != null)
        {
            // A batch-cache step writes each row at its own position (keys past a row's length are
            // masked); a uniform cache appends every row at its length.
            if (ctx.RowOffsets != null) cache.AppendAt(ks, vs, ctx.RowOffsets);
            else
            {
                cache.Append(ks, vs);
                cache.Length += ctx.Length;
            }
            a = cache.Attend(q, ctx.Offset + ctx.Length, _heads, _kvHeads, options, ctx.SelfMasks, ctx.SelfBias);
        }
        else
        {
            a = Ops.Attention(q, ks, vs, _heads, _kvHeads, options, ctx.SelfMasks, ctx.SelfBias);   // (B, T, H·hd)
        }
        return _o.Forward(a, ctx.DropoutSeed);
    }

    /// <summary>
    /// Self-attention of pooled queries over unpooled keys (ARC-Encoder's last block, arXiv 2510.20535):
    /// queries from <paramref name="xq"/> (B, G, D) at positions ctx.QueryRopePositions, keys and values
    /// from <paramref name="x"/> (B, T, D) at the stack's positions → (B, G, D). Bidirectional, no cache;
    /// RoPE or absolute positions only (a relative bias or ComRoPE/URPE table has no pooled form here).
    /// </summary>
    internal Var ForwardPooled(Var xq, Var x, StackContext ctx)
    {
        if (_cross || _comBasis != null || _urpe != null || ctx.SelfBias != null)
            throw new NotSupportedException($"{_scope}: pooled queries need RoPE or absolute positions");
        var q = _q.Forward(xq, ctx.DropoutSeed);                            // (B, G, H·hd)
        var ks = _k.Forward(x, ctx.DropoutSeed);                            // (B, T, Hkv·hd)
        var vs = _v.Forward(x, ctx.DropoutSeed);
        if (ctx.Rope != null)
        {
            q = Ops.Rope(q, ctx.Rope, _heads, ctx.QueryRopePositions);
            ks = Ops.Rope(ks, ctx.Rope, _kvHeads, ctx.RopePositions);
        }
        var options = _window > 0 ? ctx.SelfOptions with { Window = _window } : ctx.SelfOptions;
        return _o.Forward(Ops.Attention(q, ks, vs, _heads, _kvHeads, options, ctx.SelfMasks), ctx.DropoutSeed);   // (B, G, H·hd) → (B, G, D)
    }

    /// <summary>
    /// Writes the self-attention keys and values of x (B, T, D) into <paramref name="cache"/> without
    /// attending: a decoder layer an exited token skips still leaves the entries later tokens read
    /// (see <see cref="StackExit"/>). The positions are those of this pass, as in <see cref="Forward"/>.
    /// </summary>
    internal void AppendKeys(Var x, StackContext ctx, LayerCache cache)
    {
        var ks = _k.Forward(x, ctx.DropoutSeed);                            // (B, T, Hkv·hd)
        var vs = _v.Forward(x, ctx.DropoutSeed);
        if (ctx.Rope != null) ks = Ops.Rope(ks, ctx.Rope, _kvHeads, ctx.RopePositions);
        if (_comBasis != null)
        {
            var rotations = Ops.ComRopeRotations(Var.Of(_ps[_comBasis]), Var.Of(_ps[_comScale!]), ctx.ComRopePositions);   // (P, Hkv, nb, b, b)
            ks = Ops.ComRope(ks, rotations, _kvHeads, ctx.ComRopeSlots);
        }
        if (ctx.RowOffsets != null) cache.AppendAt(ks, vs, ctx.RowOffsets);
        else
        {
            cache.Append(ks, vs);
            cache.Length += ctx.Length;
        }
    }

    // URPE self-attention, (softmax(q·kᵀ·scale + T5 bias) ⊙ C)·v; query positions per row when a batch cache gives them.
    Var AttendUrpe(Var q, Var ks, Var vs, StackContext ctx, LayerCache? cache)
    {
        var c = Var.Of(_ps[_urpe!]);                                        // (H, width)
        if (cache is null)
            return Ops.ToeplitzAttention(q, ks, vs, c, _urpeBidirectional, _heads, _kvHeads, ctx.SelfOptions, ctx.SelfMasks, ctx.SelfBias);
        if (ctx.RowOffsets != null) cache.AppendAt(ks, vs, ctx.RowOffsets);
        else
        {
            cache.Append(ks, vs);
            cache.Length += ctx.Length;
        }
        return cache.AttendToeplitz(q, ctx.Offset + ctx.Length, c, _urpeBidirectional, _heads, _kvHeads, ctx.SelfOptions, ctx.SelfMasks, ctx.SelfBias, ctx.RowOffsets);
    }
}

/// <summary>
/// One transformer block: self-attention, optional cross-attention (decoder of an
/// encoder–decoder), feed-forward; each sublayer with its norm (pre-norm: x + f(norm(x)); post-norm:
/// norm(x + f(x))) and dropout on the residual branch in training.
/// </summary>
public sealed class Block
{
    readonly AttentionLayer _self;
    readonly NormLayer _selfNorm;
    readonly AttentionLayer? _cross;
    readonly NormLayer? _crossNorm;
    readonly FeedForward _mlp;
    readonly NormLayer _mlpNorm;
    readonly NormLayer? _selfPostNorm, _crossPostNorm, _mlpPostNorm;   // sandwich norms (Gemma 2)
    readonly CodebookLayer? _selfCodes, _crossCodes, _mlpCodes;       // codebook features (arXiv 2310.17230)
    readonly bool _postNorm;
    readonly float _dropout;
    readonly int _index;

    internal Block(ParameterSet ps, string scope, ModelConfig c, bool cross, int index, PositionConfig? positions = null, bool causal = false, int memoryWidth = 0)
    {
        _index = index;
        _postNorm = c.PostNorm;
        _dropout = c.Dropout;
        _self = new AttentionLayer(ps, scope + ".self_attn", c, cross: false, positions, causal, c.WindowOfLayer(index));
        _selfNorm = NormLayer.Of(ps, scope + ".self_attn_norm", c);
        if (c.SandwichNorms) _selfPostNorm = NormLayer.Of(ps, scope + ".self_attn_post_norm", c);
        if (cross)
        {
            _cross = new AttentionLayer(ps, scope + ".cross_attn", c, cross: true, memoryWidth: memoryWidth);
            _crossNorm = NormLayer.Of(ps, scope + ".cross_attn_norm", c);
            if (c.SandwichNorms) _crossPostNorm = NormLayer.Of(ps, scope + ".cross_attn_post_norm", c);
        }
        _mlp = new FeedForward(ps, scope + ".mlp", c);
        _mlpNorm = NormLayer.Of(ps, scope + ".mlp_norm", c);
        if (c.SandwichNorms) _mlpPostNorm = NormLayer.Of(ps, scope + ".mlp_post_norm", c);
        if (c.Codebook is { } cb)
        {
            if (cb.Attention)
            {
                _selfCodes = new CodebookLayer(ps, scope + ".self_attn.codebook", c.DModel, cb);
                if (cross) _crossCodes = new CodebookLayer(ps, scope + ".cross_attn.codebook", c.DModel, cb);
            }
            if (cb.Mlp) _mlpCodes = new CodebookLayer(ps, scope + ".mlp.codebook", c.DModel, cb);
        }
    }

    // A sandwich norm of a sublayer's output (Gemma 2: x + post_norm(f(pre_norm(x)))); f's output itself without one.
    static Var Post(NormLayer? norm, Var y) => norm is null ? y : norm.Forward(y);

    static Var Codes(CodebookLayer? codebook, Var y, StackContext ctx) => CodebookLayer.Apply(codebook, y, ctx);

    /// <summary>The self-attention cache entries of a block an exited token skips: keys and values of its kept state x (B, T, D).</summary>
    internal void AppendKeys(Var x, StackContext ctx, LayerCache selfCache) =>
        _self.AppendKeys(_postNorm ? x : _selfNorm.Forward(x), ctx, selfCache);

    internal Var Forward(Var x, StackContext ctx, LayerCache? selfCache, LayerCache? crossCache)
    {
        // Written out rather than through a helper taking a lambda: a capturing lambda would
        // allocate on every call of an inference step.
        // A codebook (Codes) snaps what a sublayer adds to the stream, after any sandwich norm and before dropout.
        ulong seed = ctx.DropoutSeed + (ulong)(_index * 4) * 0x632BE59BD9B4E019UL;
        if (_postNorm) x = _selfNorm.Forward(Ops.Add(x, Ops.Dropout(Codes(_selfCodes, _self.Forward(x, ctx, selfCache), ctx), _dropout, seed)));
        else x = Ops.Add(x, Ops.Dropout(Codes(_selfCodes, Post(_selfPostNorm, _self.Forward(_selfNorm.Forward(x), ctx, selfCache)), ctx), _dropout, seed));
        return Rest(x, ctx, crossCache, seed);
    }

    /// <summary>
    /// The block with pooled queries (ARC-Encoder, arXiv 2510.20535; <c>mean_pooled_queries</c>, <c>where: before</c>):
    /// the state x (B, T, D) is mean-pooled over consecutive <paramref name="groups"/> (sizes summing to T) and the
    /// pooled state (B, G, D) is the block's input, residual included, while self-attention's keys and values come from
    /// the unpooled state. Groups of one give <see cref="Forward"/>'s values exactly.
    /// </summary>
    internal Var ForwardPooled(Var x, ReadOnlySpan<int> groups, StackContext ctx)
    {
        ulong seed = ctx.DropoutSeed + (ulong)(_index * 4) * 0x632BE59BD9B4E019UL;
        var xq = Ops.GroupMean(x, groups);                                  // (B, G, D)
        if (_postNorm) xq = _selfNorm.Forward(Ops.Add(xq, Ops.Dropout(Codes(_selfCodes, _self.ForwardPooled(xq, x, ctx), ctx), _dropout, seed)));
        else xq = Ops.Add(xq, Ops.Dropout(Codes(_selfCodes, Post(_selfPostNorm, _self.ForwardPooled(_selfNorm.Forward(xq), _selfNorm.Forward(x), ctx)), ctx), _dropout, seed));
        return Rest(xq, ctx, null, seed);
    }

    // Cross-attention (when the block has it) and the feed-forward, after self-attention.
    Var Rest(Var x, StackContext ctx, LayerCache? crossCache, ulong seed)
    {
        if (_cross != null)
        {
            seed += 0x632BE59BD9B4E019UL;
            if (_postNorm) x = _crossNorm!.Forward(Ops.Add(x, Ops.Dropout(Codes(_crossCodes, _cross.Forward(x, ctx, crossCache), ctx), _dropout, seed)));
            else x = Ops.Add(x, Ops.Dropout(Codes(_crossCodes, Post(_crossPostNorm, _cross.Forward(_crossNorm!.Forward(x), ctx, crossCache)), ctx), _dropout, seed));
        }
        seed += 0x632BE59BD9B4E019UL;
        if (_postNorm) return _mlpNorm.Forward(Ops.Add(x, Ops.Dropout(Codes(_mlpCodes, _mlp.Forward(x, ctx.DropoutSeed), ctx), _dropout, seed)));
        return Ops.Add(x, Ops.Dropout(Codes(_mlpCodes, Post(_mlpPostNorm, _mlp.Forward(_mlpNorm.Forward(x), ctx.DropoutSeed)), ctx), _dropout, seed));
    }
}
