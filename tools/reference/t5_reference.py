#!/usr/bin/python3
"""Writes tests/Encore.Formats.Tests/Fixtures/t5_v1_0/ and t5_v1_1/: tiny random-weight T5
checkpoints in the layout Hugging Face publishes (config.json with "model_type": "t5",
model.safetensors under HF's tensor names), the logits of one (input_ids, decoder_input_ids) pair
and of each of 32 greedy decoding steps (expected.safetensors), and the ids (expected.json).

The model is T5 restated in plain torch after transformers' models/t5/modeling_t5.py:
- T5LayerNorm: RMS norm without mean or bias, the variance taken in float32;
- T5Attention: no 1/sqrt(d) scaling of q·kᵀ (folded into the initialization), no biases, the
  relative-position bias computed once per stack from block 0's table and added in every layer
  (bidirectional buckets in the encoder, causal ones in the decoder), cross-attention without it;
- T5DenseActDense (v1.0, "relu": wi → act → wo) or T5DenseGatedActDense (v1.1 / Flan-T5,
  "gated-gelu": act(wi_0 x) * wi_1 x → wo, act = gelu_new, the tanh approximation);
- T5ForConditionalGeneration: with tie_word_embeddings the decoder output is rescaled by
  d_model**-0.5 before the tied head; otherwise a separate lm_head.
Greedy decoding starts from decoder_start_token_id and recomputes the whole prefix every step.

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/t5_reference.py
"""
import json
import math
import os

import torch

from refio import greedy_seq2seq, t5_relative_position_bucket as relative_position_bucket, write_safetensors

torch.set_num_threads(1)
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/Encore.Formats.Tests/Fixtures")
STEPS = 32



def position_bias(table, q_len, k_len, bidirectional, cfg):
    # T5Attention.compute_bias: relative_position = memory_position - context_position → (1, H, q, k)
    context = torch.arange(q_len)[:, None]
    memory = torch.arange(k_len)[None, :]
    buckets = relative_position_bucket(memory - context, bidirectional, cfg["relative_attention_num_buckets"],
                                       cfg.get("relative_attention_max_distance", 128))
    return table[buckets].permute(2, 0, 1).unsqueeze(0)


def layer_norm(x, w, eps):
    variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(variance + eps))


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACT = {"relu": torch.relu, "gelu_new": gelu_new}


def attention(w, prefix, x, kv, bias, cfg):
    # x (B, T, D), kv (B, S, D), bias (1 or B, H, T, S) additive (positions and masks)
    b, t, _ = x.shape
    s = kv.shape[1]
    h, dk = cfg["num_heads"], cfg["d_kv"]
    q = (x @ w[prefix + ".q.weight"].T).view(b, t, h, dk).transpose(1, 2)
    k = (kv @ w[prefix + ".k.weight"].T).view(b, s, h, dk).transpose(1, 2)
    v = (kv @ w[prefix + ".v.weight"].T).view(b, s, h, dk).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) + bias                      # no 1/sqrt(d_kv)
    p = torch.softmax(scores.float(), dim=-1).type_as(scores)
    o = (p @ v).transpose(1, 2).reshape(b, t, h * dk)
    return o @ w[prefix + ".o.weight"].T


def ffn(w, prefix, x, cfg):
    proj = cfg.get("feed_forward_proj", "relu")
    if proj.startswith("gated-"):
        act = ACT["gelu_new" if proj == "gated-gelu" else proj[len("gated-"):]]
        h = act(x @ w[prefix + ".wi_0.weight"].T) * (x @ w[prefix + ".wi_1.weight"].T)
    else:
        h = ACT[proj](x @ w[prefix + ".wi.weight"].T)
    return h @ w[prefix + ".wo.weight"].T


def encode(w, cfg, ids):
    eps = cfg["layer_norm_epsilon"]
    x = w["shared.weight"][ids]
    s = ids.shape[1]
    bias = position_bias(w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], s, s, True, cfg)
    for i in range(cfg["num_layers"]):
        p = f"encoder.block.{i}"
        n = layer_norm(x, w[p + ".layer.0.layer_norm.weight"], eps)
        x = x + attention(w, p + ".layer.0.SelfAttention", n, n, bias, cfg)
        x = x + ffn(w, p + ".layer.1.DenseReluDense", layer_norm(x, w[p + ".layer.1.layer_norm.weight"], eps), cfg)
    return layer_norm(x, w["encoder.final_layer_norm.weight"], eps)


def decode(w, cfg, memory, dec_ids):
    eps = cfg["layer_norm_epsilon"]
    y = w["shared.weight"][dec_ids]
    t = dec_ids.shape[1]
    causal = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
    bias = position_bias(w["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], t, t, False, cfg) + causal
    zero = torch.zeros(1, cfg["num_heads"], t, memory.shape[1])
    for i in range(cfg.get("num_decoder_layers", cfg["num_layers"])):
        p = f"decoder.block.{i}"
        n = layer_norm(y, w[p + ".layer.0.layer_norm.weight"], eps)
        y = y + attention(w, p + ".layer.0.SelfAttention", n, n, bias, cfg)
        n = layer_norm(y, w[p + ".layer.1.layer_norm.weight"], eps)
        y = y + attention(w, p + ".layer.1.EncDecAttention", n, memory, zero, cfg)
        y = y + ffn(w, p + ".layer.2.DenseReluDense", layer_norm(y, w[p + ".layer.2.layer_norm.weight"], eps), cfg)
    y = layer_norm(y, w["decoder.final_layer_norm.weight"], eps)
    if cfg.get("tie_word_embeddings", True):
        return (y * cfg["d_model"] ** -0.5) @ w["shared.weight"].T
    return y @ w["lm_head.weight"].T


def init_weights(cfg, seed, embed_std=1.0, out_gain=1.0):
    # embed_std and out_gain: a tiny random model with a tied head otherwise keeps repeating one
    # token (its own embedding dominates the tied logits), which would leave the greedy check weak.
    g = torch.Generator().manual_seed(seed)
    d, inner, ff, v = cfg["d_model"], cfg["num_heads"] * cfg["d_kv"], cfg["d_ff"], cfg["vocab_size"]
    gated = cfg.get("feed_forward_proj", "relu").startswith("gated-")

    def mat(o, i, gain=1.0):
        return gain * torch.randn(o, i, generator=g) / math.sqrt(i)

    def norm():
        return 1.0 + 0.1 * torch.randn(d, generator=g)

    def mlp(p):
        if gated:
            return {p + ".wi_0.weight": mat(ff, d), p + ".wi_1.weight": mat(ff, d), p + ".wo.weight": mat(d, ff, out_gain)}
        return {p + ".wi.weight": mat(ff, d), p + ".wo.weight": mat(d, ff, out_gain)}

    def attn(p):
        return {p + ".q.weight": mat(inner, d), p + ".k.weight": mat(inner, d), p + ".v.weight": mat(inner, d), p + ".o.weight": mat(d, inner, out_gain)}

    w = {"shared.weight": embed_std * torch.randn(v, d, generator=g)}
    for stack, layers in (("encoder", cfg["num_layers"]), ("decoder", cfg.get("num_decoder_layers", cfg["num_layers"]))):
        for i in range(layers):
            p = f"{stack}.block.{i}"
            w.update(attn(p + ".layer.0.SelfAttention"))
            if i == 0:
                w[p + ".layer.0.SelfAttention.relative_attention_bias.weight"] = \
                    0.5 * torch.randn(cfg["relative_attention_num_buckets"], cfg["num_heads"], generator=g)
            w[p + ".layer.0.layer_norm.weight"] = norm()
            ff_layer = 1
            if stack == "decoder":
                w.update(attn(p + ".layer.1.EncDecAttention"))
                w[p + ".layer.1.layer_norm.weight"] = norm()
                ff_layer = 2
            w.update(mlp(f"{p}.layer.{ff_layer}.DenseReluDense"))
            w[f"{p}.layer.{ff_layer}.layer_norm.weight"] = norm()
        w[stack + ".final_layer_norm.weight"] = norm()
    if not cfg.get("tie_word_embeddings", True):
        w["lm_head.weight"] = mat(v, d)
    return w



def greedy(w, cfg, ids):
    return greedy_seq2seq(encode, decode, w, cfg, ids, STEPS)


def build(name, cfg, seed, input_ids, decoder_input_ids, **init):
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    w = init_weights(cfg, seed, **init)
    with torch.no_grad():
        ids = torch.tensor([input_ids])
        logits = decode(w, cfg, encode(w, cfg, ids), torch.tensor([decoder_input_ids]))[0]
        greedy_ids, step_logits, margin = greedy(w, cfg, ids)
    # A near tie would make the greedy comparison depend on rounding, not on the model.
    assert margin > 1e-2, f"{name}: greedy top-2 margin {margin} too small; pick another seed"
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(out, "model.safetensors"), w)
    # expected.safetensors: "logits" (T, V) of decoder_input_ids; "greedy_logits" (32, V), the
    # last-position logits of each greedy step (to check the incremental path step by step).
    write_safetensors(os.path.join(out, "expected.safetensors"), {"logits": logits, "greedy_logits": step_logits})
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"input_ids": input_ids, "decoder_input_ids": decoder_input_ids, "greedy_ids": greedy_ids,
                   "greedy_min_margin": margin}, f)
    print(f"wrote {os.path.normpath(out)}: greedy {greedy_ids}, min top-2 margin {margin:.4f}")


# v1.0 (t5-small's config.json in miniature): relu FFN, tied embeddings with the rescale;
# num_decoder_layers and relative_attention_max_distance left to their defaults, as old configs do.
# The attention width num_heads·d_kv = 12 differs from d_model = 16.
V10 = {
    "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
    "d_model": 16, "d_kv": 6, "d_ff": 32, "num_layers": 2, "num_heads": 2,
    "relative_attention_num_buckets": 16, "dropout_rate": 0.1, "layer_norm_epsilon": 1e-6,
    "initializer_factor": 1.0, "feed_forward_proj": "relu", "is_encoder_decoder": True,
    "vocab_size": 64, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
    "n_positions": 512, "use_cache": True,
}
# v1.1 / Flan-T5: gated-gelu (gelu_new), untied lm_head, more decoder than encoder layers,
# a short max distance so the logarithmic buckets saturate within the 33 decoder positions.
V11 = {
    "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
    "d_model": 16, "d_kv": 4, "d_ff": 24, "num_layers": 2, "num_decoder_layers": 3, "num_heads": 3,
    "relative_attention_num_buckets": 8, "relative_attention_max_distance": 20, "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False, "is_encoder_decoder": True,
    "vocab_size": 64, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0, "use_cache": True,
}

if __name__ == "__main__":
    build("t5_v1_0", V10, 80, [5, 17, 33, 2, 48, 9, 61, 1], [0, 12, 40, 7, 3, 22], embed_std=0.5, out_gain=3.0)
    build("t5_v1_1", V11, 15, [8, 3, 59, 14, 27, 40, 6, 19, 33, 1], [0, 30, 11, 2, 45, 63, 9])
