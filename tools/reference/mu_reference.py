#!/usr/bin/python3
"""Writes tests/Encore.Formats.Tests/Fixtures/mu/: a tiny random-weight Mu encoder–decoder as
Encore stores it (config.json with "model_type": "encore", model.safetensors under Encore's
parameter names), the logits of one (input_ids, decoder_input_ids) pair and of each of 32 greedy
decoding steps (expected.safetensors), and the ids (expected.json).

Mu is the encoder–decoder of "Return of the Encoder" (arXiv 2501.16273, §3) in the shape family of
Encore's "mu-330m" preset, in miniature: pre-norm RMSNorm blocks and a final norm per stack; a
narrow attention (H·hd < D) with grouped-query heads and the usual 1/sqrt(hd) scaling; RoPE in the
half-split layout (HF rotate_half) with encoder positions centered on the source,
p_i = i - (S-1)/2, and integer positions 0, 1, … in the decoder's self-attention; cross-attention
without positions; a tanh-GELU feed-forward; the LM head tied to the token embedding without a
rescale. The model is built from the config.json it writes, read back, so the file's fields are
the ones that drive it. Greedy decoding starts from decoder_start_token_id and recomputes the whole
prefix every step.

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/mu_reference.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F

from refio import greedy_seq2seq
from t5_reference import HERE, STEPS, write_safetensors

torch.set_num_threads(1)

# Encore's config.json (ModelConfigJson: the ModelConfig record in snake_case), every field stated.
CONFIG = {
    "model_type": "encore", "family": "EncoderDecoder",
    "vocab_size": 64, "d_model": 24, "encoder_layers": 3, "decoder_layers": 2,
    "heads": 2, "kv_heads": 1, "head_dim": 8, "ffn_dim": 48,
    "activation": "GeluTanh", "gated_ffn": False, "norm": "RmsNorm", "post_norm": False, "norm_eps": 1e-6,
    "qkv_bias": False, "output_bias": False, "mlp_bias": False,
    "tie_embeddings": True, "scale_tied_logits": False, "attention_scale": None,
    "encoder_positions": {"kind": "Rope", "rope_theta": 10000, "rope_ntk_scale": 1, "rope_centered": True,
                          "relative_buckets": 32, "relative_max_distance": 128},
    "decoder_positions": {"kind": "Rope", "rope_theta": 10000, "rope_ntk_scale": 1, "rope_centered": False,
                          "relative_buckets": 32, "relative_max_distance": 128},
    "max_positions": 2048, "type_vocab_size": 0, "embedding_norm": False, "final_norm": True, "dropout": 0,
    "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": -1, "decoder_start_token_id": 0,
}


def check(cfg):
    # The settings this reference implements; anything else would make the fixture lie.
    want = {"family": "EncoderDecoder", "activation": "GeluTanh", "gated_ffn": False, "norm": "RmsNorm",
            "post_norm": False, "qkv_bias": False, "output_bias": False, "mlp_bias": False, "tie_embeddings": True,
            "scale_tied_logits": False, "attention_scale": None, "type_vocab_size": 0, "embedding_norm": False,
            "final_norm": True}
    for k, v in want.items():
        assert cfg[k] == v, (k, cfg[k])
    for stack, centered in (("encoder_positions", True), ("decoder_positions", False)):
        p = cfg[stack]
        assert p["kind"] == "Rope" and p["rope_centered"] == centered and p["rope_ntk_scale"] == 1, (stack, p)


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, theta):
    # x (B, L, heads, hd), half-split pairs (x[i], x[i + hd/2]); pos (L,) float, angles in float64.
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = pos.to(torch.float64)[:, None] * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1).float()[None, :, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1).float()[None, :, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def attention(w, prefix, x, kv, cfg, q_pos=None, k_pos=None, theta=None, causal=False):
    b, t, _ = x.shape
    s = kv.shape[1]
    h, hkv, hd = cfg["heads"], cfg["kv_heads"], cfg["head_dim"]
    q = (x @ w[prefix + ".q_proj.weight"].T).view(b, t, h, hd)
    k = (kv @ w[prefix + ".k_proj.weight"].T).view(b, s, hkv, hd)
    v = (kv @ w[prefix + ".v_proj.weight"].T).view(b, s, hkv, hd)
    if q_pos is not None:
        q, k = rope(q, q_pos, theta), rope(k, k_pos, theta)
    # GQA: query head j reads kv head j // (H / Hkv) (HF repeat_kv).
    k = k.repeat_interleave(h // hkv, dim=2)
    v = v.repeat_interleave(h // hkv, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
    if causal:
        scores = scores.masked_fill(~torch.tril(torch.ones(t, s, dtype=torch.bool)), float("-inf"))
    o = torch.einsum("bhts,bshd->bthd", scores.softmax(-1), v).reshape(b, t, h * hd)
    return o @ w[prefix + ".o_proj.weight"].T


def mlp(w, prefix, x):
    return F.gelu(x @ w[prefix + ".up_proj.weight"].T, approximate="tanh") @ w[prefix + ".down_proj.weight"].T


def encode(w, cfg, ids):
    eps, theta = cfg["norm_eps"], cfg["encoder_positions"]["rope_theta"]
    s = ids.shape[1]
    pos = torch.arange(s, dtype=torch.float32) - (s - 1) / 2          # centered: i - (S-1)/2
    x = w["embed_tokens.weight"][ids]
    for i in range(cfg["encoder_layers"]):
        p = f"encoder.layers.{i}"
        n = rms(x, w[p + ".self_attn_norm.weight"], eps)
        x = x + attention(w, p + ".self_attn", n, n, cfg, pos, pos, theta)
        x = x + mlp(w, p + ".mlp", rms(x, w[p + ".mlp_norm.weight"], eps))
    return rms(x, w["encoder.final_norm.weight"], eps)


def decode(w, cfg, memory, dec_ids):
    eps, theta = cfg["norm_eps"], cfg["decoder_positions"]["rope_theta"]
    t = dec_ids.shape[1]
    pos = torch.arange(t, dtype=torch.float32)
    y = w["embed_tokens.weight"][dec_ids]
    for i in range(cfg["decoder_layers"]):
        p = f"decoder.layers.{i}"
        n = rms(y, w[p + ".self_attn_norm.weight"], eps)
        y = y + attention(w, p + ".self_attn", n, n, cfg, pos, pos, theta, causal=True)
        y = y + attention(w, p + ".cross_attn", rms(y, w[p + ".cross_attn_norm.weight"], eps), memory, cfg)
        y = y + mlp(w, p + ".mlp", rms(y, w[p + ".mlp_norm.weight"], eps))
    y = rms(y, w["decoder.final_norm.weight"], eps)
    return y @ w["embed_tokens.weight"].T                             # tied, no rescale


def init_weights(cfg, seed, embed_std, out_gain):
    # embed_std and out_gain: a tiny random model with a tied head otherwise keeps repeating one
    # token (its own embedding dominates the tied logits), which would leave the greedy check weak.
    g = torch.Generator().manual_seed(seed)
    d, h, hkv, hd, ff, v = (cfg[k] for k in ("d_model", "heads", "kv_heads", "head_dim", "ffn_dim", "vocab_size"))

    def mat(o, i, gain=1.0):
        return gain * torch.randn(o, i, generator=g) / math.sqrt(i)

    def norm():
        return 1.0 + 0.1 * torch.randn(d, generator=g)

    def attn(p):
        return {p + ".q_proj.weight": mat(h * hd, d), p + ".k_proj.weight": mat(hkv * hd, d),
                p + ".v_proj.weight": mat(hkv * hd, d), p + ".o_proj.weight": mat(d, h * hd, out_gain)}

    w = {"embed_tokens.weight": embed_std * torch.randn(v, d, generator=g)}
    for stack, layers in (("encoder", cfg["encoder_layers"]), ("decoder", cfg["decoder_layers"])):
        for i in range(layers):
            p = f"{stack}.layers.{i}"
            w.update(attn(p + ".self_attn"))
            w[p + ".self_attn_norm.weight"] = norm()
            if stack == "decoder":
                w.update(attn(p + ".cross_attn"))
                w[p + ".cross_attn_norm.weight"] = norm()
            w[p + ".mlp.up_proj.weight"] = mat(ff, d)
            w[p + ".mlp.down_proj.weight"] = mat(d, ff, out_gain)
            w[p + ".mlp_norm.weight"] = norm()
        w[stack + ".final_norm.weight"] = norm()
    return w


def greedy(w, cfg, ids):
    return greedy_seq2seq(encode, decode, w, cfg, ids, STEPS)


def main(seed=37, embed_std=0.2, out_gain=6.0):
    out = os.path.join(HERE, "mu")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    check(cfg)
    w = init_weights(cfg, seed, embed_std, out_gain)
    input_ids = [7, 22, 41, 3, 58, 14, 30, 9, 50, 1]                  # even S: half-integer positions ±0.5 … ±4.5
    decoder_input_ids = [0, 19, 44, 5, 27, 61]
    with torch.no_grad():
        ids = torch.tensor([input_ids])
        logits = decode(w, cfg, encode(w, cfg, ids), torch.tensor([decoder_input_ids]))[0]
        greedy_ids, step_logits, margin = greedy(w, cfg, ids)
    # A near tie would make the greedy comparison depend on rounding, not on the model.
    assert margin > 1e-2, f"greedy top-2 margin {margin} too small; pick another seed"
    write_safetensors(os.path.join(out, "model.safetensors"), w)
    write_safetensors(os.path.join(out, "expected.safetensors"), {"logits": logits, "greedy_logits": step_logits})
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"input_ids": input_ids, "decoder_input_ids": decoder_input_ids, "greedy_ids": greedy_ids,
                   "greedy_min_margin": margin}, f)
    print(f"wrote {os.path.normpath(out)}: greedy {greedy_ids}, min top-2 margin {margin:.4f}")


if __name__ == "__main__":
    main()
