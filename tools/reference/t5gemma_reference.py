#!/usr/bin/python3
"""Writes a tiny random T5Gemma checkpoint in the published Hugging Face layout (config.json +
model.safetensors) and its reference logits and greedy continuation, under
tests/Encore.Formats.Tests/Fixtures/t5gemma/.

The model math restates transformers' modeling_t5gemma.py in plain torch, with the Gemma 2 pieces of
gemma2_reference.py (RMSNorm with 1 + w, RoPE, soft-capped scaled scores, GeGLU):
  T5GemmaEncoder:  model.encoder.embed_tokens(ids) * hidden_size**0.5; layers of
                   x + post_self_attn_layernorm(self_attn(pre_self_attn_layernorm(x))),
                   x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)));
                   bidirectional attention over the source's valid keys, the sliding layers also limited to
                   |i - j| < sliding_window (sliding_window_bidirectional_mask_function); norm
  T5GemmaDecoder:  model.decoder.embed_tokens(ids) * hidden_size**0.5; causal self-attention (sliding layers:
                   i - j < sliding_window), then x + post_cross_attn_layernorm(cross_attn(pre_cross_attn_layernorm(x)))
                   over the encoder output (no RoPE, the same scaling and soft cap, the source's valid keys), then the MLP; norm
  T5GemmaForConditionalGeneration: lm_head.out_proj tied to model.decoder.embed_tokens; logits soft-capped by
                   decoder.final_logit_softcapping; decoding starts from decoder.bos_token_id (_shift_right)

Greedy ids come from full recomputation of the decoder at each step (no cache). The script asserts that
the greedy margins are wide enough for float32 and that the windows and caps change the logits.

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/t5gemma_reference.py
"""
import json
import os

import torch

from gemma2_reference import HERE, attention, layer_is_sliding, mlp, rms_norm, rope
from refio import write_safetensors


def encode(cfg, w, ids, lengths):
    e = cfg["encoder"]
    d, eps = e["hidden_size"], e["rms_norm_eps"]
    b, s = ids.shape
    cos, sin = rope(s, e["head_dim"], e["rope_theta"])
    neg = torch.tensor(float("-inf"))
    valid = torch.arange(s)[None, :] < torch.tensor(lengths)[:, None]                 # (B, S) keys
    i, j = torch.arange(s)[:, None], torch.arange(s)[None, :]
    near = (i - j).abs() < e["sliding_window"]
    full = torch.where(valid[:, None, None, :], torch.tensor(0.0), neg)                 # (B, 1, 1, S)
    sliding = torch.where(valid[:, None, None, :] & near[None, None], torch.tensor(0.0), neg)   # (B, 1, S, S)
    x = w["model.encoder.embed_tokens.weight"][ids] * torch.tensor(d ** 0.5, dtype=torch.float32)
    for k in range(e["num_hidden_layers"]):
        p = f"model.encoder.layers.{k}."
        n = rms_norm(x, w[p + "pre_self_attn_layernorm.weight"], eps)
        a = attention(e, w, p + "self_attn.", n, n, sliding if layer_is_sliding(e, k) else full, (cos, sin), (cos, sin))
        x = x + rms_norm(a, w[p + "post_self_attn_layernorm.weight"], eps)
        m = mlp(e, w, p + "mlp.", rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], eps))
        x = x + rms_norm(m, w[p + "post_feedforward_layernorm.weight"], eps)
    return rms_norm(x, w["model.encoder.norm.weight"], eps)


def decode(cfg, w, memory, lengths, ids):
    dc = cfg["decoder"]
    d, eps = dc["hidden_size"], dc["rms_norm_eps"]
    b, t = ids.shape
    s = memory.shape[1]
    cos, sin = rope(t, dc["head_dim"], dc["rope_theta"])
    neg = torch.tensor(float("-inf"))
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    full = torch.where(j <= i, torch.tensor(0.0), neg)
    sliding = torch.where((j <= i) & (i - j < dc["sliding_window"]), torch.tensor(0.0), neg)
    valid = torch.arange(s)[None, :] < torch.tensor(lengths)[:, None]
    cross = torch.where(valid[:, None, None, :], torch.tensor(0.0), neg)                # (B, 1, 1, S)
    x = w["model.decoder.embed_tokens.weight"][ids] * torch.tensor(d ** 0.5, dtype=torch.float32)
    for k in range(dc["num_hidden_layers"]):
        p = f"model.decoder.layers.{k}."
        n = rms_norm(x, w[p + "pre_self_attn_layernorm.weight"], eps)
        a = attention(dc, w, p + "self_attn.", n, n, sliding if layer_is_sliding(dc, k) else full, (cos, sin), (cos, sin))
        x = x + rms_norm(a, w[p + "post_self_attn_layernorm.weight"], eps)
        n = rms_norm(x, w[p + "pre_cross_attn_layernorm.weight"], eps)
        c = attention(dc, w, p + "cross_attn.", n, memory, cross)
        x = x + rms_norm(c, w[p + "post_cross_attn_layernorm.weight"], eps)
        m = mlp(dc, w, p + "mlp.", rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], eps))
        x = x + rms_norm(m, w[p + "post_feedforward_layernorm.weight"], eps)
    x = rms_norm(x, w["model.decoder.norm.weight"], eps)
    logits = x @ w["model.decoder.embed_tokens.weight"].T
    cap = dc.get("final_logit_softcapping")
    return torch.tanh(logits / cap) * cap if cap is not None else logits


def make_weights(cfg, gen):
    """Each stack at its own widths; the decoder's cross-attention k and v read the encoder's hidden_size."""
    def rnd(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    e, v = cfg["encoder"], cfg["encoder"]["vocab_size"]
    # As gemma2_reference.py: q and k at twice the fan-in scale (the caps' non-linear range), small
    # embeddings and post-norms near 2 so the tied head does not just repeat its input.
    w = {"model.encoder.embed_tokens.weight": rnd(v, e["hidden_size"], std=0.05),
         "model.decoder.embed_tokens.weight": rnd(v, cfg["decoder"]["hidden_size"], std=0.05)}
    for stack in ("encoder", "decoder"):
        m = cfg[stack]
        d, f = m["hidden_size"], m["intermediate_size"]
        h, kvh, hd = m["num_attention_heads"], m["num_key_value_heads"], m["head_dim"]
        for i in range(m["num_hidden_layers"]):
            p = f"model.{stack}.layers.{i}."
            for a, kv_in in (("self_attn.", d),) + ((("cross_attn.", e["hidden_size"]),) if stack == "decoder" else ()):
                w[p + a + "q_proj.weight"] = rnd(h * hd, d, std=2 * d ** -0.5)
                w[p + a + "k_proj.weight"] = rnd(kvh * hd, kv_in, std=2 * kv_in ** -0.5)
                w[p + a + "v_proj.weight"] = rnd(kvh * hd, kv_in, std=kv_in ** -0.5)
                w[p + a + "o_proj.weight"] = rnd(d, h * hd, std=(h * hd) ** -0.5)
            w[p + "mlp.gate_proj.weight"] = rnd(f, d, std=d ** -0.5)
            w[p + "mlp.up_proj.weight"] = rnd(f, d, std=d ** -0.5)
            w[p + "mlp.down_proj.weight"] = rnd(d, f, std=f ** -0.5)
            pres = ["pre_self_attn_layernorm", "pre_feedforward_layernorm"] + (["pre_cross_attn_layernorm"] if stack == "decoder" else [])
            posts = ["post_self_attn_layernorm", "post_feedforward_layernorm"] + (["post_cross_attn_layernorm"] if stack == "decoder" else [])
            for n in pres:
                w[p + n + ".weight"] = rnd(d, std=0.3)
            for n in posts:
                w[p + n + ".weight"] = 1.0 + rnd(d, std=0.3)
        w[f"model.{stack}.norm.weight"] = rnd(d, std=0.3)
    return w


def greedy(cfg, w, source, steps):
    memory = encode(cfg, w, torch.tensor([source]), [len(source)])
    seq, margins = [cfg["decoder"]["bos_token_id"]], []
    for _ in range(steps):
        logits = decode(cfg, w, memory, [len(source)], torch.tensor([seq]))[0, -1]
        top = torch.topk(logits, 2).values
        margins.append(float(top[0] - top[1]))
        seq.append(int(logits.argmax()))
    return seq[1:], min(margins)


def build(name, cfg, seed):
    gen = torch.Generator().manual_seed(seed)
    w = make_weights(cfg, gen)
    v = cfg["encoder"]["vocab_size"]
    source = torch.randint(3, v, (2, 12), generator=gen)
    lengths = [12, 9]
    source[1, 9:] = cfg["decoder"]["pad_token_id"]
    target = torch.randint(3, v, (2, 10), generator=gen)
    target[:, 0] = cfg["decoder"]["bos_token_id"]
    with torch.no_grad():
        memory = encode(cfg, w, source, lengths)
        logits = decode(cfg, w, memory, lengths, target)
        for change in ({"sliding_window": 10 ** 6}, {"attn_logit_softcapping": None}, {"final_logit_softcapping": None}):
            other = dict(cfg, encoder=dict(cfg["encoder"], **change), decoder=dict(cfg["decoder"], **change))
            assert (logits - decode(other, w, encode(other, w, source, lengths), lengths, target)).abs().max() > 1e-2, change
        out, margin = greedy(cfg, w, source[0].tolist(), 32)
    assert margin > 1e-3, f"{name}: greedy margin {margin} too small for a float32 parity test"
    assert len(set(out)) >= 8, f"{name}: greedy output {out} hardly varies"
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), w)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"source_ids": source.tolist(), "source_lengths": lengths, "decoder_input_ids": target.tolist(),
                   "logits": [round(float(x), 7) for x in logits.flatten()],
                   "greedy_source": source[0].tolist(), "greedy": out, "min_greedy_margin": margin}, f)
    print(name, "min greedy margin", round(margin, 4), "greedy", out)


def module(layers):
    return {
        "vocab_size": 96, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": layers,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 128, "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0, "attention_bias": False, "attention_dropout": 0.0, "query_pre_attn_scalar": 24,
        "sliding_window": 4, "attn_logit_softcapping": 5.0, "final_logit_softcapping": 3.0,
        "tie_word_embeddings": True, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
    }


# Balanced: 4 encoder layers and 3 decoder layers of the same width; windows of 4 (the even layers),
# a 12-token source (one padded to 9), soft caps 5 and 3.
t5gemma = {
    "architectures": ["T5GemmaForConditionalGeneration"], "model_type": "t5gemma",
    "encoder": module(4), "decoder": dict(module(3), cross_attention_hidden_size=64, is_decoder=True),
    "is_encoder_decoder": True, "dropout_rate": 0.0, "attention_dropout": 0.0, "tie_word_embeddings": True,
    "vocab_size": 96, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
    "torch_dtype": "float32", "transformers_version": "4.53.0",
}

# Unbalanced, as T5Gemma 9B-2B: a wider encoder (64, 4 heads of 16, FFN 96) than decoder (48, 2 query heads and
# 1 kv head of 24, FFN 64); the decoder's cross-attention k and v read the encoder's 64 features.
t5gemma_unbalanced = dict(t5gemma, encoder=module(3), decoder=dict(
    module(2), hidden_size=48, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1, head_dim=24,
    cross_attention_hidden_size=64, is_decoder=True))

if __name__ == "__main__":
    torch.manual_seed(0)
    build("t5gemma", t5gemma, seed=31)
    build("t5gemma-unbalanced", t5gemma_unbalanced, seed=41)
