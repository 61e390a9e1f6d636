#!/usr/bin/python3
"""Writes tests/Encore.Autograd.Tests/Fixtures/tiny_seq2seq.json: a tiny encoder–decoder built from
plain torch ops (the Return-of-the-Encoder layout in miniature: RMSNorm pre-norm, RoPE with
centered positions in the encoder and integer positions in the decoder self-attention,
grouped-query attention, no positions in cross-attention, GELU-tanh MLP in the encoder, SwiGLU in
the decoder, tied embeddings), its random weights, one batch, the loss and every gradient of one
step, and the losses of 10 AdamW steps.

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

shapes = {
    "embed": (V, D),
    "enc.attn_norm": (D,), "enc.q": (H * HD, D), "enc.k": (HKV * HD, D), "enc.v": (HKV * HD, D), "enc.o": (D, H * HD),
    "enc.mlp_norm": (D,), "enc.fc1": (FF, D), "enc.fc2": (D, FF), "enc.final_norm": (D,),
    "dec.self_norm": (D,), "dec.sq": (H * HD, D), "dec.sk": (HKV * HD, D), "dec.sv": (HKV * HD, D), "dec.so": (D, H * HD),
    "dec.cross_norm": (D,), "dec.cq": (H * HD, D), "dec.ck": (HKV * HD, D), "dec.cv": (HKV * HD, D), "dec.co": (D, H * HD),
    "dec.mlp_norm": (D,), "dec.gate": (FF, D), "dec.up": (FF, D), "dec.down": (D, FF), "dec.final_norm": (D,),
}
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


def forward(p):
    B, S = src.shape
    T = dec_in.shape[1]
    x = p["embed"][src]
    enc_pos = torch.arange(S, dtype=torch.float32) - (S - 1) / 2
    key_ok = torch.arange(S)[None, :] < src_len[:, None]                      # (B, S)
    n = rms(x, p["enc.attn_norm"])
    q = rope((n @ p["enc.q"].T).view(B, S, H, HD), enc_pos)
    k = rope((n @ p["enc.k"].T).view(B, S, HKV, HD), enc_pos)
    v = (n @ p["enc.v"].T).view(B, S, HKV, HD)
    x = x + attention(q, k, v, key_ok[:, None, :].expand(B, S, S)) @ p["enc.o"].T
    n = rms(x, p["enc.mlp_norm"])
    x = x + F.gelu(n @ p["enc.fc1"].T, approximate="tanh") @ p["enc.fc2"].T
    mem = rms(x, p["enc.final_norm"])

    y = p["embed"][dec_in]
    dec_pos = torch.arange(T, dtype=torch.float32)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))[None].expand(B, T, T)
    n = rms(y, p["dec.self_norm"])
    q = rope((n @ p["dec.sq"].T).view(B, T, H, HD), dec_pos)
    k = rope((n @ p["dec.sk"].T).view(B, T, HKV, HD), dec_pos)
    v = (n @ p["dec.sv"].T).view(B, T, HKV, HD)
    y = y + attention(q, k, v, causal) @ p["dec.so"].T
    n = rms(y, p["dec.cross_norm"])
    q = (n @ p["dec.cq"].T).view(B, T, H, HD)
    k = (mem @ p["dec.ck"].T).view(B, S, HKV, HD)
    v = (mem @ p["dec.cv"].T).view(B, S, HKV, HD)
    y = y + attention(q, k, v, key_ok[:, None, :].expand(B, T, S)) @ p["dec.co"].T
    n = rms(y, p["dec.mlp_norm"])
    y = y + (F.silu(n @ p["dec.gate"].T) * (n @ p["dec.up"].T)) @ p["dec.down"].T
    y = rms(y, p["dec.final_norm"])
    logits = y @ p["embed"].T
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
out = os.path.join(os.path.dirname(__file__), "../../tests/Encore.Autograd.Tests/Fixtures/tiny_seq2seq.json")
with open(out, "w") as f:
    json.dump(fixture, f)
print("wrote", os.path.normpath(out), "loss", loss.item(), "final", losses[-1])
