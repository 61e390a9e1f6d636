#!/usr/bin/python3
"""PyTorch peer of `encore bench train`: the same encoder–decoder (read from Encore's config.json),
trained eagerly on the same batch shape with AdamW, timed the same way. Prints one JSON object.

Usage: torch_train.py --config CONFIG.json --batch 8 --source-length 128 --target-length 128
                      --threads 2 --runs 5 --steps-per-run 2
Exit code 3 when torch cannot be imported (the caller tries another interpreter).
"""
import argparse
import json
import math
import os
import resource
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--batch", type=int, default=8)
parser.add_argument("--source-length", type=int, default=128)
parser.add_argument("--target-length", type=int, default=128)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--runs", type=int, default=5)
parser.add_argument("--steps-per-run", type=int, default=2)
args = parser.parse_args()

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[var] = str(args.threads)
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit(3)
torch.set_num_threads(args.threads)
torch.manual_seed(0)

c = json.load(open(args.config))
D, H, HKV, HD, FF, V = c["d_model"], c["heads"], c["kv_heads"], c["head_dim"], c["ffn_dim"], c["vocab_size"]
EPS = c["norm_eps"]
ACT = {"GeluTanh": lambda x: F.gelu(x, approximate="tanh"), "GeluErf": F.gelu, "Silu": F.silu, "Relu": F.relu}[c["activation"]]
GATED = c["gated_ffn"]
if c["family"] != "EncoderDecoder" or c["norm"] != "RmsNorm" or c["post_norm"]:
    print(json.dumps({"error": "the train peer implements pre-RMSNorm encoder–decoders only"}))
    sys.exit(0)
if c["encoder_positions"]["kind"] != "Rope" or c["decoder_positions"]["kind"] != "Rope":
    print(json.dumps({"error": "the train peer implements RoPE positions only"}))
    sys.exit(0)


def linear(i, o):
    return torch.nn.Parameter(torch.randn(o, i) * 0.02)


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = linear(D, H * HD), linear(D, HKV * HD), linear(D, HKV * HD), linear(H * HD, D)

    def forward(self, x, mem, cos, sin, causal, key_ok):
        B, T, _ = x.shape
        S = mem.shape[1]
        q = (x @ self.q.T).view(B, T, H, HD).transpose(1, 2)
        k = (mem @ self.k.T).view(B, S, HKV, HD).transpose(1, 2)
        v = (mem @ self.v.T).view(B, S, HKV, HD).transpose(1, 2)
        if cos is not None:
            q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(H // HKV, dim=1)
        v = v.repeat_interleave(H // HKV, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
        if causal:
            s = s.masked_fill(~torch.tril(torch.ones(T, S, dtype=torch.bool)), float("-inf"))
        p = s.softmax(-1)
        return (p @ v).transpose(1, 2).reshape(B, T, H * HD) @ self.o.T


def rope(x, cos, sin):
    x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def rope_tables(pos, theta):
    inv = 1.0 / (theta ** (torch.arange(0, HD, 2, dtype=torch.float64) / HD))
    ang = pos.to(torch.float64)[:, None] * inv[None, :]
    return torch.cat([ang.cos(), ang.cos()], -1).float(), torch.cat([ang.sin(), ang.sin()], -1).float()


class RMSNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(D))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.w


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = linear(D, FF), linear(FF, D)
        self.gate = linear(D, FF) if GATED else None

    def forward(self, x):
        h = ACT(x @ self.gate.T) * (x @ self.up.T) if GATED else ACT(x @ self.up.T)
        return h @ self.down.T


class Block(torch.nn.Module):
    def __init__(self, cross):
        super().__init__()
        self.sa, self.sa_norm = Attention(), RMSNorm()
        self.ca, self.ca_norm = (Attention(), RMSNorm()) if cross else (None, None)
        self.mlp, self.mlp_norm = MLP(), RMSNorm()

    def forward(self, x, mem, cos, sin, causal):
        n = self.sa_norm(x)
        x = x + self.sa(n, n, cos, sin, causal, None)
        if self.ca is not None:
            x = x + self.ca(self.ca_norm(x), mem, None, None, False, None)
        return x + self.mlp(self.mlp_norm(x))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Parameter(torch.randn(V, D) / math.sqrt(D))
        self.enc = torch.nn.ModuleList([Block(False) for _ in range(c["encoder_layers"])])
        self.dec = torch.nn.ModuleList([Block(True) for _ in range(c["decoder_layers"])])
        self.enc_norm, self.dec_norm = RMSNorm(), RMSNorm()

    def forward(self, src, tgt_in, labels):
        S, T = src.shape[1], tgt_in.shape[1]
        enc_pos = torch.arange(S, dtype=torch.float32) - (S - 1) / 2 if c["encoder_positions"]["rope_centered"] else torch.arange(S, dtype=torch.float32)
        ec, es = rope_tables(enc_pos, c["encoder_positions"]["rope_theta"])
        dc, ds = rope_tables(torch.arange(T, dtype=torch.float32), c["decoder_positions"]["rope_theta"])
        x = self.embed[src]
        for b in self.enc:
            x = b(x, None, ec, es, False)
        mem = self.enc_norm(x)
        y = self.embed[tgt_in]
        for b in self.dec:
            y = b(y, mem, dc, ds, True)
        y = self.dec_norm(y)
        logits = y @ self.embed.T
        return F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1))


model = Model()
n_params = sum(p.numel() for p in model.parameters())
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
B, S, T = args.batch, args.source_length, args.target_length
src = torch.randint(2, V, (B, S))
tgt = torch.randint(2, V, (B, T + 1))


def step():
    opt.zero_grad()
    loss = model(src, tgt[:, :-1], tgt[:, 1:])
    loss.backward()
    opt.step()
    return loss.item()


step()  # warm-up
times = []
for _ in range(args.runs):
    t0 = time.perf_counter()
    for _ in range(args.steps_per_run):
        step()
    times.append((time.perf_counter() - t0) / args.steps_per_run)
times.sort()
median = times[len(times) // 2]
print(json.dumps({
    "torch_version": torch.__version__, "threads": args.threads, "parameters": n_params,
    "seconds_per_step": median, "tokens_per_second": B * (S + T) / median,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
