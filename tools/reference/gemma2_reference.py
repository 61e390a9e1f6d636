#!/usr/bin/python3
"""Writes a tiny random Gemma 2 checkpoint in the published Hugging Face layout (config.json +
model.safetensors) and its reference logits and greedy continuation, under
tests/Encore.Formats.Tests/Fixtures/gemma2/.

The model math restates transformers' modeling_gemma2.py in plain torch:
  Gemma2RMSNorm:      x * rsqrt(mean(x^2) + eps) * (1 + w), in float32, w stored
  embeddings:         embed_tokens(ids) * hidden_size**0.5 (the normalizer in the model dtype)
  Gemma2RotaryEmbedding / apply_rotary_pos_emb: as Llama (rotate_half, inv_freq = 1/theta^(arange(0, hd, 2)/hd))
  eager attention:    s = q k^T * query_pre_attn_scalar**-0.5; s = tanh(s / cap) * cap
                      (attn_logit_softcapping); + mask; softmax in float32; @ v; o_proj
  sliding layers:     layer_types[i] == "sliding_attention" (default: (i + 1) odd, the even layers); the
                      mask also hides key j from query i when i - j >= sliding_window
  Gemma2MLP:          down_proj(gelu_tanh(gate_proj(x)) * up_proj(x))
  Gemma2DecoderLayer: x + post_attention_layernorm(attn(input_layernorm(x)));
                      x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)))
  Gemma2Model:        norm after the layers; lm_head tied to embed_tokens;
  Gemma2ForCausalLM:  logits = tanh(logits / final_logit_softcapping) * final_logit_softcapping

Greedy ids come from full recomputation of the whole sequence at each step (no cache), so the C#
test's cached loop, which runs past the window, is checked against an independent path. The script
asserts that every greedy step's top-1/top-2 margin is wide enough for float32 differences not to flip it.

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/gemma2_reference.py
"""
import json
import os

import torch

from refio import write_safetensors

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/Encore.Formats.Tests/Fixtures")


def rms_norm(x, w, eps):
    """Gemma2RMSNorm: the scale is 1 + w."""
    x32 = x.to(torch.float32)
    return x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w.float())


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope(t, hd, theta):
    """cos, sin (1, 1, T, hd) of positions 0..T-1."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    freqs = torch.arange(t).float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos()[None, None], emb.sin()[None, None]


def lin(w, x, name):
    y = x @ w[name + ".weight"].T
    return y + w[name + ".bias"] if name + ".bias" in w else y


def attention(cfg, w, p, x, kv, mask, rot_q=None, rot_k=None):
    """q from x (B, T, D), k and v from kv (B, S, D); RoPE when given; scaled, soft-capped, masked (T, S) scores."""
    h, kvh, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    b, t, s = x.shape[0], x.shape[1], kv.shape[1]
    q = lin(w, x, p + "q_proj").view(b, t, h, hd).transpose(1, 2)        # (B, H, T, hd)
    k = lin(w, kv, p + "k_proj").view(b, s, kvh, hd).transpose(1, 2)     # (B, Hkv, S, hd)
    v = lin(w, kv, p + "v_proj").view(b, s, kvh, hd).transpose(1, 2)
    if rot_q is not None:
        q = q * rot_q[0] + rotate_half(q) * rot_q[1]
        k = k * rot_k[0] + rotate_half(k) * rot_k[1]
    n_rep = h // kvh
    k = k[:, :, None].expand(b, kvh, n_rep, s, hd).reshape(b, h, s, hd)
    v = v[:, :, None].expand(b, kvh, n_rep, s, hd).reshape(b, h, s, hd)
    scores = q @ k.transpose(2, 3) * cfg["query_pre_attn_scalar"] ** -0.5
    cap = cfg.get("attn_logit_softcapping")
    if cap is not None:
        scores = torch.tanh(scores / cap) * cap
    a = torch.softmax((scores + mask).float(), dim=-1) @ v                 # (B, H, T, hd)
    return lin(w, a.transpose(1, 2).reshape(b, t, h * hd), p + "o_proj")


def mlp(cfg, w, p, x):
    assert cfg["hidden_activation"] == "gelu_pytorch_tanh"
    gate = torch.nn.functional.gelu(lin(w, x, p + "gate_proj"), approximate="tanh")
    return lin(w, gate * lin(w, x, p + "up_proj"), p + "down_proj")


def layer_is_sliding(cfg, i):
    types = cfg.get("layer_types")
    return types[i] == "sliding_attention" if types else bool((i + 1) % 2)


def causal_masks(t, window):
    """Additive (T, T) masks: causal, and causal within the window (i - j < window)."""
    i = torch.arange(t)[:, None]
    j = torch.arange(t)[None, :]
    neg = torch.tensor(float("-inf"))
    full = torch.where(j <= i, torch.tensor(0.0), neg)
    sliding = torch.where((j <= i) & (i - j < window), torch.tensor(0.0), neg)
    return full, sliding


def forward(cfg, w, ids):
    """Logits (B, T, V) of ids (B, T), positions 0..T-1."""
    d, eps = cfg["hidden_size"], cfg["rms_norm_eps"]
    b, t = ids.shape
    cos, sin = rope(t, cfg["head_dim"], cfg["rope_theta"])
    full, sliding = causal_masks(t, cfg["sliding_window"])
    x = w["model.embed_tokens.weight"][ids] * torch.tensor(d ** 0.5, dtype=torch.float32)   # (B, T, D)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        mask = sliding if layer_is_sliding(cfg, i) else full
        n = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        a = attention(cfg, w, p + "self_attn.", n, n, mask, (cos, sin), (cos, sin))
        x = x + rms_norm(a, w[p + "post_attention_layernorm.weight"], eps)
        m = mlp(cfg, w, p + "mlp.", rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], eps))
        x = x + rms_norm(m, w[p + "post_feedforward_layernorm.weight"], eps)
    x = rms_norm(x, w["model.norm.weight"], eps)
    logits = x @ w["model.embed_tokens.weight"].T
    cap = cfg.get("final_logit_softcapping")
    return torch.tanh(logits / cap) * cap if cap is not None else logits


def make_weights(cfg, gen):
    d, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    h, kvh, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    def rnd(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    # q and k at twice the fan-in scale, so the scores reach the soft cap's non-linear range; small
    # embeddings and post-norms above 1 (w around 1) so the blocks' writes outweigh the token's own
    # embedding and the tied head does not just repeat the input (a 1 + w of about 2).
    w = {"model.embed_tokens.weight": rnd(v, d, std=0.05)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "self_attn.q_proj.weight"] = rnd(h * hd, d, std=2 * d ** -0.5)
        w[p + "self_attn.k_proj.weight"] = rnd(kvh * hd, d, std=2 * d ** -0.5)
        w[p + "self_attn.v_proj.weight"] = rnd(kvh * hd, d, std=d ** -0.5)
        w[p + "self_attn.o_proj.weight"] = rnd(d, h * hd, std=(h * hd) ** -0.5)
        w[p + "mlp.gate_proj.weight"] = rnd(f, d, std=d ** -0.5)
        w[p + "mlp.up_proj.weight"] = rnd(f, d, std=d ** -0.5)
        w[p + "mlp.down_proj.weight"] = rnd(d, f, std=f ** -0.5)
        for n in ("input_layernorm", "pre_feedforward_layernorm"):
            w[p + n + ".weight"] = rnd(d, std=0.3)
        for n in ("post_attention_layernorm", "post_feedforward_layernorm"):
            w[p + n + ".weight"] = 1.0 + rnd(d, std=0.3)
    w["model.norm.weight"] = rnd(d, std=0.3)
    return w


def greedy(cfg, w, prompt, steps):
    seq, margins = list(prompt), []
    for _ in range(steps):
        logits = forward(cfg, w, torch.tensor([seq]))[0, -1]
        top = torch.topk(logits, 2).values
        margins.append(float(top[0] - top[1]))
        seq.append(int(logits.argmax()))
    return seq[len(prompt):], min(margins)


def build(name, cfg, seed):
    gen = torch.Generator().manual_seed(seed)
    w = make_weights(cfg, gen)
    ids = torch.randint(3, cfg["vocab_size"], (2, 24), generator=gen)
    prompt = ids[0, :5].tolist()
    with torch.no_grad():
        logits = forward(cfg, w, ids)
        # The window and both caps matter: without any of them the logits differ.
        for change in ({"sliding_window": 10 ** 6}, {"attn_logit_softcapping": None}, {"final_logit_softcapping": None}):
            assert (logits - forward(dict(cfg, **change), w, ids)).abs().max() > 1e-2, change
        out, margin = greedy(cfg, w, prompt, 32)
    assert margin > 1e-3, f"{name}: greedy margin {margin} too small for a float32 parity test"
    assert len(set(out)) >= 8, f"{name}: greedy output {out} hardly varies"
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), w)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"input_ids": ids.tolist(), "logits": [round(float(x), 7) for x in logits.flatten()],
                   "prompt": prompt, "greedy": out, "min_greedy_margin": margin}, f)
    print(name, "min greedy margin", round(margin, 4), "greedy", out)


# 4 layers (even ones sliding over 8 positions), GQA 4 heads over 2 kv heads of 16 (head_dim ≠ hidden/heads),
# scores scaled by 24^-0.5, soft caps 5 (scores) and 3 (logits), tied head.
gemma2 = {
    "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
    "vocab_size": 96, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "hidden_activation": "gelu_pytorch_tanh", "hidden_act": "gelu_pytorch_tanh",
    "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "attention_bias": False, "attention_dropout": 0.0, "query_pre_attn_scalar": 24,
    "sliding_window": 8, "attn_logit_softcapping": 5.0, "final_logit_softcapping": 3.0,
    "cache_implementation": "hybrid", "tie_word_embeddings": True,
    "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
    "initializer_range": 0.02, "use_cache": True, "torch_dtype": "float32", "transformers_version": "4.44.0",
}

if __name__ == "__main__":
    torch.manual_seed(0)
    build("gemma2", gemma2, seed=21)
