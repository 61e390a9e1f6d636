#!/usr/bin/python3
"""PyTorch peer of `encore bench peers`: greedy generation with a KV cache in eager mode, f32.

Reads the Hugging Face-layout checkpoint that `encore bench peers` writes (config.json with
"model_type" "t5" or "llama", model.safetensors in f32) with a hand-written safetensors reader, and
restates the model in plain torch after transformers' modeling_t5.py / modeling_llama.py:
- T5: RMS norm without bias (T5LayerNorm), unscaled q·kᵀ with one relative-position bias table per
  stack (block 0's; bidirectional buckets in the encoder, causal in the decoder), ReLU or gated
  tanh-GELU feed-forward, tied head rescaled by d_model**-0.5 or a separate lm_head. The encoder runs
  once; cross-attention keys/values are computed once; the decoder steps against a growing cache.
- Llama: RMSNorm, rotate-half RoPE on q and k, grouped-query attention, SwiGLU, untied or tied head;
  the prompt is prefilled in one pass, then one token per step against the cache.
For each prompt: one warm-up run, then --runs timed runs; prints one JSON object with the greedy
tokens and the medians of first-token seconds and decode tokens/s (tokens after the first).

Exit code 3 when torch cannot be imported (PythonPeer then tries the next interpreter).
"""
import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

try:
    import numpy as np
    import torch
except ImportError:
    sys.exit(3)


def read_safetensors(path):
    # The format: u64 LE header length, JSON header {name: {dtype, shape, data_offsets}}, raw data.
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} is {info['dtype']}; this peer reads F32 checkpoints")
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.array(raw[a:b]).view(np.float32).reshape(info["shape"]))
    return out


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def t5_bucket(relative_position, bidirectional, num_buckets, max_distance):
    # modeling_t5.py T5Attention._relative_position_bucket
    buckets = 0
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    large = max_exact + (torch.log(relative_position.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, relative_position, large)


class T5:
    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, w
        self.h, self.dk = cfg["num_heads"], cfg["d_kv"]
        self.eps = cfg.get("layer_norm_epsilon", 1e-6)
        self.gated = cfg.get("is_gated_act", cfg.get("feed_forward_proj", "relu").startswith("gated-"))
        self.act = gelu_new if self.gated else torch.relu
        self.enc_layers = cfg["num_layers"]
        self.dec_layers = cfg.get("num_decoder_layers", self.enc_layers)
        self.tied = cfg.get("tie_word_embeddings", True)
        self.buckets = cfg.get("relative_attention_num_buckets", 32)
        self.max_distance = cfg.get("relative_attention_max_distance", 128)
        self.start = cfg.get("decoder_start_token_id", 0)

    def bias(self, table, q_pos, k_len, bidirectional):
        ctx = q_pos[:, None]
        mem = torch.arange(k_len)[None, :]
        b = t5_bucket(mem - ctx, bidirectional, self.buckets, self.max_distance)
        return table[b].permute(2, 0, 1)                      # (H, q, k)

    def heads(self, x):
        return x.view(x.shape[0], self.h, self.dk).transpose(0, 1)   # (H, T, dk)

    def ffn(self, p, x):
        w = self.w
        if self.gated:
            h = self.act(x @ w[p + ".wi_0.weight"].T) * (x @ w[p + ".wi_1.weight"].T)
        else:
            h = self.act(x @ w[p + ".wi.weight"].T)
        return h @ w[p + ".wo.weight"].T

    def encode(self, ids):
        w = self.w
        x = w["shared.weight"][ids]                           # (S, D)
        s = len(ids)
        bias = self.bias(w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], torch.arange(s), s, True)
        for i in range(self.enc_layers):
            p = f"encoder.block.{i}.layer"
            n = rms_norm(x, w[p + ".0.layer_norm.weight"], self.eps)
            a = p + ".0.SelfAttention"
            q, k, v = (self.heads(n @ w[f"{a}.{m}.weight"].T) for m in "qkv")
            att = torch.softmax(q @ k.transpose(1, 2) + bias, dim=-1) @ v      # (H, S, dk)
            x = x + att.transpose(0, 1).reshape(s, -1) @ w[a + ".o.weight"].T
            x = x + self.ffn(p + ".1.DenseReluDense", rms_norm(x, w[p + ".1.layer_norm.weight"], self.eps))
        return rms_norm(x, w["encoder.final_layer_norm.weight"], self.eps)

    def generate(self, ids, new_tokens):
        w = self.w
        t0 = time.perf_counter()
        memory = self.encode(torch.tensor(ids))
        cross = []
        for i in range(self.dec_layers):
            a = f"decoder.block.{i}.layer.1.EncDecAttention"
            cross.append((self.heads(memory @ w[a + ".k.weight"].T), self.heads(memory @ w[a + ".v.weight"].T)))
        table = w["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        cache = [[None, None] for _ in range(self.dec_layers)]
        token, out, first = self.start, [], 0.0
        for t in range(new_tokens):
            x = w["shared.weight"][token][None, :]             # (1, D)
            bias = self.bias(table, torch.tensor([t]), t + 1, False)
            for i in range(self.dec_layers):
                p = f"decoder.block.{i}.layer"
                n = rms_norm(x, w[p + ".0.layer_norm.weight"], self.eps)
                a = p + ".0.SelfAttention"
                q, k, v = (self.heads(n @ w[f"{a}.{m}.weight"].T) for m in "qkv")
                c = cache[i]
                c[0] = k if c[0] is None else torch.cat([c[0], k], dim=1)
                c[1] = v if c[1] is None else torch.cat([c[1], v], dim=1)
                att = torch.softmax(q @ c[0].transpose(1, 2) + bias, dim=-1) @ c[1]
                x = x + att.transpose(0, 1).reshape(1, -1) @ w[a + ".o.weight"].T
                n = rms_norm(x, w[p + ".1.layer_norm.weight"], self.eps)
                a = p + ".1.EncDecAttention"
                q = self.heads(n @ w[a + ".q.weight"].T)
                att = torch.softmax(q @ cross[i][0].transpose(1, 2), dim=-1) @ cross[i][1]
                x = x + att.transpose(0, 1).reshape(1, -1) @ w[a + ".o.weight"].T
                x = x + self.ffn(p + ".2.DenseReluDense", rms_norm(x, w[p + ".2.layer_norm.weight"], self.eps))
            y = rms_norm(x, w["decoder.final_layer_norm.weight"], self.eps)
            logits = (y * self.cfg["d_model"] ** -0.5) @ w["shared.weight"].T if self.tied else y @ w["lm_head.weight"].T
            token = int(torch.argmax(logits[0]))
            out.append(token)
            if t == 0:
                first = time.perf_counter() - t0
        return out, first, time.perf_counter() - t0


class Llama:
    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, w
        self.h = cfg["num_attention_heads"]
        self.hkv = cfg.get("num_key_value_heads") or self.h
        self.hd = cfg.get("head_dim") or cfg["hidden_size"] // self.h
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.layers = cfg["num_hidden_layers"]
        theta = cfg.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        head = "lm_head.weight" if "lm_head.weight" in w else "model.embed_tokens.weight"
        self.head = w[head]

    def rope(self, x, pos):
        # modeling_llama.py apply_rotary_pos_emb with rotate_half: x·cos + rotate_half(x)·sin
        f = pos[:, None].float() * self.inv_freq[None, :]     # (T, hd/2)
        emb = torch.cat([f, f], dim=-1)
        cos, sin = emb.cos(), emb.sin()
        half = self.hd // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rot * sin

    def forward(self, ids, pos0, cache):
        w = self.w
        t = len(ids)
        x = w["model.embed_tokens.weight"][torch.tensor(ids)]  # (T, D)
        pos = torch.arange(pos0, pos0 + t)
        mask = None
        if t > 1:
            mask = torch.full((t, pos0 + t), float("-inf")).triu(pos0 + 1)
        for i in range(self.layers):
            p = f"model.layers.{i}"
            n = rms_norm(x, w[p + ".input_layernorm.weight"], self.eps)
            q = (n @ w[p + ".self_attn.q_proj.weight"].T).view(t, self.h, self.hd).transpose(0, 1)
            k = (n @ w[p + ".self_attn.k_proj.weight"].T).view(t, self.hkv, self.hd).transpose(0, 1)
            v = (n @ w[p + ".self_attn.v_proj.weight"].T).view(t, self.hkv, self.hd).transpose(0, 1)
            q, k = self.rope(q, pos), self.rope(k, pos)
            c = cache[i]
            c[0] = k if c[0] is None else torch.cat([c[0], k], dim=1)
            c[1] = v if c[1] is None else torch.cat([c[1], v], dim=1)
            rep = self.h // self.hkv
            kk, vv = c[0].repeat_interleave(rep, dim=0), c[1].repeat_interleave(rep, dim=0)
            s = q @ kk.transpose(1, 2) / math.sqrt(self.hd)
            if mask is not None:
                s = s + mask
            att = torch.softmax(s, dim=-1) @ vv
            x = x + att.transpose(0, 1).reshape(t, -1) @ w[p + ".self_attn.o_proj.weight"].T
            n = rms_norm(x, w[p + ".post_attention_layernorm.weight"], self.eps)
            g = torch.nn.functional.silu(n @ w[p + ".mlp.gate_proj.weight"].T) * (n @ w[p + ".mlp.up_proj.weight"].T)
            x = x + g @ w[p + ".mlp.down_proj.weight"].T
        y = rms_norm(x[-1:], w["model.norm.weight"], self.eps)
        return y @ self.head.T

    def generate(self, ids, new_tokens):
        t0 = time.perf_counter()
        cache = [[None, None] for _ in range(self.layers)]
        logits = self.forward(ids, 0, cache)
        out, first, pos = [], 0.0, len(ids)
        for t in range(new_tokens):
            token = int(torch.argmax(logits[0]))
            out.append(token)
            if t == 0:
                first = time.perf_counter() - t0
            if t + 1 < new_tokens:
                logits = self.forward([token], pos, cache)
                pos += 1
        return out, first, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="checkpoint directory (config.json + model.safetensors, f32)")
    ap.add_argument("--prompts", required=True, help="JSON file: a list of prompts, each a list of token ids")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    weights = read_safetensors(os.path.join(a.model, "model.safetensors"))
    kind = cfg["model_type"]
    model = T5(cfg, weights) if kind == "t5" else Llama(cfg, weights) if kind == "llama" else None
    if model is None:
        raise SystemExit(f"model_type {kind} is not supported (t5, llama)")
    with open(a.prompts) as f:
        prompts = json.load(f)
    results = []
    with torch.inference_mode():
        for ids in prompts:
            tokens, _, _ = model.generate(ids, a.new_tokens)          # warm-up
            firsts, rates = [], []
            for _ in range(a.runs):
                _, first, total = model.generate(ids, a.new_tokens)
                firsts.append(first)
                rates.append((a.new_tokens - 1) / (total - first))
            results.append({"input_length": len(ids), "tokens": tokens,
                            "first_token_seconds": statistics.median(firsts),
                            "decode_tokens_per_second": statistics.median(rates)})
    print(json.dumps({"torch_version": torch.__version__, "threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
