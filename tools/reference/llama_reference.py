#!/usr/bin/python3
"""Writes tiny random Llama and Qwen2 checkpoints in the published Hugging Face layout
(config.json + model.safetensors, written by hand from the safetensors specification) and the
reference logits and greedy continuations, under tests/Encore.Formats.Tests/Fixtures/{llama,qwen2}/.

The model math restates transformers' modeling_llama.py / modeling_qwen2.py in plain torch:
  LlamaRMSNorm:      w * x * rsqrt(mean(x^2) + eps), computed in float32
  LlamaRotaryEmbedding: inv_freq = 1 / theta^(arange(0, hd, 2) / hd); "linear" rope_scaling divides
                     the positions (equivalently inv_freq) by the factor; emb = cat(freqs, freqs)
  apply_rotary_pos_emb: q*cos + rotate_half(q)*sin, rotate_half(x) = cat(-x2, x1)  (half split)
  repeat_kv:         kv head j serves query heads j*n_rep .. (j+1)*n_rep - 1
  eager attention:   softmax(q k^T * hd^-0.5 + causal mask) v, then o_proj
  LlamaMLP:          down_proj(act(gate_proj(x)) * up_proj(x))
  LlamaDecoderLayer: x + attn(input_layernorm(x)); x + mlp(post_attention_layernorm(x))
  LlamaModel:        embed_tokens, layers, norm; lm_head (tied to embed_tokens when tie_word_embeddings)
Qwen2 is the same with biases on q_proj, k_proj and v_proj (not o_proj).

Greedy ids are produced by full recomputation of the whole sequence at each step (no cache), so
the C# test's cached loop is checked against an independent path. The script asserts that every
greedy step's top-1/top-2 logit margin is wide enough for float32 differences not to flip it.

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/llama_reference.py
"""
import json
import math
import os

import torch

from refio import write_safetensors

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/Encore.Formats.Tests/Fixtures")



def make_weights(cfg, qkv_bias, o_bias, gen, out_gain=1.0):
    d, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    h, kvh = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", d // h)

    def rnd(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    # Scales well above HF's 0.02 init so the tiny model's logits separate clearly (greedy margins);
    # out_gain strengthens the blocks' residual writes so a tied head does not just repeat the input.
    w = {"model.embed_tokens.weight": rnd(v, d, std=1.0)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "self_attn.q_proj.weight"] = rnd(h * hd, d, std=d ** -0.5)
        w[p + "self_attn.k_proj.weight"] = rnd(kvh * hd, d, std=d ** -0.5)
        w[p + "self_attn.v_proj.weight"] = rnd(kvh * hd, d, std=d ** -0.5)
        w[p + "self_attn.o_proj.weight"] = rnd(d, h * hd, std=out_gain * (h * hd) ** -0.5)
        if qkv_bias:
            w[p + "self_attn.q_proj.bias"] = rnd(h * hd, std=0.3)
            w[p + "self_attn.k_proj.bias"] = rnd(kvh * hd, std=0.3)
            w[p + "self_attn.v_proj.bias"] = rnd(kvh * hd, std=0.3)
        if o_bias:
            w[p + "self_attn.o_proj.bias"] = rnd(d, std=0.3)
        w[p + "mlp.gate_proj.weight"] = rnd(f, d, std=d ** -0.5)
        w[p + "mlp.up_proj.weight"] = rnd(f, d, std=d ** -0.5)
        w[p + "mlp.down_proj.weight"] = rnd(d, f, std=out_gain * f ** -0.5)
        w[p + "input_layernorm.weight"] = 1 + rnd(d, std=0.2)
        w[p + "post_attention_layernorm.weight"] = 1 + rnd(d, std=0.2)
    w["model.norm.weight"] = 1 + rnd(d, std=0.2)
    if not cfg.get("tie_word_embeddings", False):
        w["lm_head.weight"] = rnd(v, d, std=d ** -0.5 * 3)
    return w


def rms_norm(x, weight, eps):
    x32 = x.to(torch.float32)
    var = x32.pow(2).mean(-1, keepdim=True)
    return weight * (x32 * torch.rsqrt(var + eps))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def forward(cfg, w, ids):
    """Logits (B, T, V) of ids (B, T), positions 0..T-1."""
    d, h, kvh = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", d // h)
    eps = cfg["rms_norm_eps"]
    b, t = ids.shape
    act = {"silu": torch.nn.functional.silu}[cfg["hidden_act"]]

    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    rs = cfg.get("rope_scaling")
    if rs is not None:
        assert rs.get("rope_type", rs.get("type")) == "linear"
        inv_freq = inv_freq / rs["factor"]
    pos = torch.arange(t).float()
    freqs = pos[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]                  # (1, 1, T, hd)

    def lin(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    x = w["model.embed_tokens.weight"][ids]                                  # (B, T, D)
    causal = torch.full((t, t), float("-inf")).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        r = x
        x = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(x, p + "self_attn.q_proj").view(b, t, h, hd).transpose(1, 2)     # (B, H, T, hd)
        k = lin(x, p + "self_attn.k_proj").view(b, t, kvh, hd).transpose(1, 2)   # (B, Hkv, T, hd)
        v = lin(x, p + "self_attn.v_proj").view(b, t, kvh, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        n_rep = h // kvh
        k = k[:, :, None].expand(b, kvh, n_rep, t, hd).reshape(b, h, t, hd)
        v = v[:, :, None].expand(b, kvh, n_rep, t, hd).reshape(b, h, t, hd)
        s = q @ k.transpose(2, 3) * hd ** -0.5 + causal
        a = torch.softmax(s.float(), dim=-1) @ v                              # (B, H, T, hd)
        x = r + lin(a.transpose(1, 2).reshape(b, t, h * hd), p + "self_attn.o_proj")
        r = x
        x = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        x = r + lin(act(lin(x, p + "mlp.gate_proj")) * lin(x, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return x @ head.T


def greedy(cfg, w, prompt, steps):
    seq, margins = list(prompt), []
    for _ in range(steps):
        logits = forward(cfg, w, torch.tensor([seq]))[0, -1]
        top = torch.topk(logits, 2).values
        margins.append(float(top[0] - top[1]))
        seq.append(int(logits.argmax()))
    return seq[len(prompt):], min(margins)


def build(name, cfg, qkv_bias, o_bias, seed, out_gain=1.0):
    gen = torch.Generator().manual_seed(seed)
    w = make_weights(cfg, qkv_bias, o_bias, gen, out_gain)
    v = cfg["vocab_size"]
    ids = torch.randint(3, v, (2, 7), generator=gen)
    prompt = ids[0, :5].tolist()
    with torch.no_grad():
        logits = forward(cfg, w, ids)
        out, margin = greedy(cfg, w, prompt, 32)
    assert margin > 1e-3, f"{name}: greedy margin {margin} too small for a float32 parity test"
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), w)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"input_ids": ids.tolist(), "logits": [round(float(x), 7) for x in logits.flatten()],
                   "prompt": prompt, "greedy": out, "min_greedy_margin": margin}, f)
    print(name, "min greedy margin", round(margin, 4), "greedy", out)


# Llama: grouped-query attention (4 heads over 2 kv heads), untied head, linear RoPE scaling.
llama = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_act": "silu",
    "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "rope_scaling": {"type": "linear", "factor": 2.0}, "attention_bias": False, "mlp_bias": False,
    "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None,
    "initializer_range": 0.02, "attention_dropout": 0.0, "pretraining_tp": 1, "use_cache": True,
    "torch_dtype": "float32", "transformers_version": "4.44.0",
}
# Qwen2: multi-query attention (4 heads, 1 kv head), q/k/v biases, tied head, θ = 1e6.
qwen2 = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
    "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 1, "hidden_act": "silu",
    "max_position_embeddings": 64, "max_window_layers": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "rope_scaling": None, "sliding_window": 64, "use_sliding_window": False,
    "tie_word_embeddings": True, "bos_token_id": 60, "eos_token_id": 61,
    "initializer_range": 0.02, "attention_dropout": 0.0, "use_cache": True,
    "torch_dtype": "float32", "transformers_version": "4.44.0",
}

if __name__ == "__main__":
    torch.manual_seed(0)
    build("llama", llama, qkv_bias=False, o_bias=False, seed=11)
    build("qwen2", qwen2, qkv_bias=True, o_bias=False, seed=12, out_gain=6.0)
