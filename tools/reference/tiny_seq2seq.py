#!/usr/bin/python3
"""Writes tests/Encore.Models.Tests/Fixtures/tiny_seq2seq.json: Encore's EncoderDecoderModel in
miniature written out in plain torch ops, under Encore's parameter names (the Return-of-the-Encoder
layout: one encoder and one decoder block, RMSNorm pre-norm with a final norm per stack, RoPE with
centered positions in the encoder and integer positions in the decoder self-attention,
grouped-query attention, no positions in cross-attention, a gated GELU-tanh feed-forward
down(gelu(gate(x)) * up(x)), tied embeddings without rescale), its random weights, one batch, the
loss and every gradient of one step, and the losses of 10 AdamW steps.

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/tiny_seq2seq.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)
V, D, H, HKV, HD, FF, EPS, THETA = 11, 8, 2, 1, 4, 16, 1e-6, 10000.0

E, DEC = "encoder.layers.0.", "decoder.layers.0."


def attn(prefix):
    return {prefix + "q_proj.weight": (H * HD, D), prefix + "k_proj.weight": (HKV * HD, D),
            prefix + "v_proj.weight": (HKV * HD, D), prefix + "o_proj.weight": (D, H * HD)}


def mlp(prefix):
    return {prefix + "gate_proj.weight": (FF, D), prefix + "up_proj.weight": (FF, D), prefix + "down_proj.weight": (D, FF)}


# In EncoderDecoderModel's creation order, the order its checkpoint lists them.
shapes = {"embed_tokens.weight": (V, D)}
shapes.update(attn(E + "self_attn.")); shapes[E + "self_attn_norm.weight"] = (D,)
shapes.update(mlp(E + "mlp.")); shapes[E + "mlp_norm.weight"] = (D,)
shapes["encoder.final_norm.weight"] = (D,)
shapes.update(attn(DEC + "self_attn.")); shapes[DEC + "self_attn_norm.weight"] = (D,)
shapes.update(attn(DEC + "cross_attn.")); shapes[DEC + "cross_attn_norm.weight"] = (D,)
shapes.update(mlp(DEC + "mlp.")); shapes[DEC + "mlp_norm.weight"] = (D,)
shapes["decoder.final_norm.weight"] = (D,)
params = {}
for name, shape in shapes.items():
    if len(shape) == 1:
        params[name] = (1.0 + 0.1 * torch.randn(shape)).requires_grad_(True)
    else:
        params[name] = (torch.randn(shape) / math.sqrt(shape[-1])).requires_grad_(True)

src = torch.tensor([[3, 5, 7, 2, 9], [4, 6, 1, 0, 0]])
src_len = torch.tensor([5, 3])
dec_in = torch.tensor([[0, 8, 2, 6], [0, 3, 3, 10]])
labels = torch.tensor([[8, 2, 6, 1], [3, 3, 10, -100]])


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope(x, pos):
    # x (B, L, heads, hd), half-split layout (HF rotate_half); pos (L,) float
    inv = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.float64) / HD))
    ang = pos.to(torch.float64)[:, None] * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1).float()[None, :, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1).float()[None, :, None, :]
    x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def attention(q, k, v, mask):
    # q (B, T, H, hd); k, v (B, S, HKV, hd); mask (B, T, S) bool of visible keys
    k = k.repeat_interleave(H // HKV, dim=2)
    v = v.repeat_interleave(H // HKV, dim=2)
    s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(HD)
    s = s.masked_fill(~mask[:, None], float("-inf"))
    p = s.softmax(-1)
    return torch.einsum("bhts,bshd->bthd", p, v).reshape(q.shape[0], q.shape[1], H * HD)


def project(x, w, heads):
    return (x @ w.T).view(x.shape[0], x.shape[1], heads, HD)


def block_attention(p, prefix, x, kv, pos, mask):
    q = project(x, p[prefix + "q_proj.weight"], H)
    k = project(kv, p[prefix + "k_proj.weight"], HKV)
    v = project(kv, p[prefix + "v_proj.weight"], HKV)
    if pos is not None:
        q, k = rope(q, pos), rope(k, pos)
    return attention(q, k, v, mask) @ p[prefix + "o_proj.weight"].T


def feed_forward(p, prefix, x):
    gate = F.gelu(x @ p[prefix + "gate_proj.weight"].T, approximate="tanh")
    return (gate * (x @ p[prefix + "up_proj.weight"].T)) @ p[prefix + "down_proj.weight"].T


def forward(p):
    B, S = src.shape
    T = dec_in.shape[1]
    x = p["embed_tokens.weight"][src]                                          # (B, S, D)
    enc_pos = torch.arange(S, dtype=torch.float32) - (S - 1) / 2
    key_ok = torch.arange(S)[None, :] < src_len[:, None]                      # (B, S)
    n = rms(x, p[E + "self_attn_norm.weight"])
    x = x + block_attention(p, E + "self_attn.", n, n, enc_pos, key_ok[:, None, :].expand(B, S, S))
    x = x + feed_forward(p, E + "mlp.", rms(x, p[E + "mlp_norm.weight"]))
    mem = rms(x, p["encoder.final_norm.weight"])                               # (B, S, D)

    y = p["embed_tokens.weight"][dec_in]                                       # (B, T, D)
    dec_pos = torch.arange(T, dtype=torch.float32)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))[None].expand(B, T, T)
    n = rms(y, p[DEC + "self_attn_norm.weight"])
    y = y + block_attention(p, DEC + "self_attn.", n, n, dec_pos, causal)
    n = rms(y, p[DEC + "cross_attn_norm.weight"])
    y = y + block_attention(p, DEC + "cross_attn.", n, mem, None, key_ok[:, None, :].expand(B, T, S))
    y = y + feed_forward(p, DEC + "mlp.", rms(y, p[DEC + "mlp_norm.weight"]))
    y = rms(y, p["decoder.final_norm.weight"])
    logits = y @ p["embed_tokens.weight"].T                                    # tied head: (B, T, V)
    return F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100, label_smoothing=0.1)


init = {k: v.detach().clone() for k, v in params.items()}
loss = forward(params)
loss.backward()
grads = {k: v.grad.flatten().tolist() for k, v in params.items()}

decay = [v for k, v in params.items() if v.dim() >= 2]
no_decay = [v for k, v in params.items() if v.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-2)
opt.zero_grad()
losses = []
for _ in range(10):
    opt.zero_grad()
    l = forward(params)
    l.backward()
    opt.step()
    losses.append(l.item())

fixture = {
    "config": {"V": V, "D": D, "H": H, "HKV": HKV, "HD": HD, "FF": FF, "eps": EPS, "theta": THETA},
    "shapes": {k: list(s) for k, s in shapes.items()},
    "params": {k: v.flatten().tolist() for k, v in init.items()},
    "src": src.tolist(), "src_len": src_len.tolist(), "dec_in": dec_in.tolist(), "labels": labels.tolist(),
    "loss": loss.item(), "grads": grads, "adamw_losses": losses,
}
out = os.path.join(os.path.dirname(__file__), "../../tests/Encore.Models.Tests/Fixtures/tiny_seq2seq.json")
with open(out, "w") as f:
    json.dump(fixture, f)
print("wrote", os.path.normpath(out), "loss", loss.item(), "final", losses[-1])
