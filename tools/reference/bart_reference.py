#!/usr/bin/python3
"""Writes tests/Encore.Formats.Tests/Fixtures/bart/, mbart/ and marian/: tiny random-weight checkpoints
in the layout Hugging Face publishes (config.json with "model_type" bart / mbart / marian,
model.safetensors under HF's tensor names), the logits of one (input_ids, decoder_input_ids) pair and of
each of 32 greedy decoding steps (expected.safetensors), and the ids (expected.json).

The three models restated in plain torch after transformers' modeling_bart.py, modeling_mbart.py and
modeling_marian.py (no transformers import):
- embeddings: embed_tokens(ids) * sqrt(d_model) when scale_embedding (BartScaledWordEmbedding), plus
  positions: BART / mBART a learned table of max_position_embeddings + 2 rows read at position + 2
  (BartLearnedPositionalEmbedding's offset); Marian fixed sinusoids, the sines of every frequency in the
  first half and the cosines in the second, read at the position itself (MarianSinusoidalPositionalEmbedding);
  then layernorm_embedding (BART, mBART; not Marian);
- attention: q, k, v, out_proj with biases, q scaled by head_dim**-0.5, causal in the decoder;
- BART and Marian layers are post-norm: x = LN(x + f(x)) after self-attention (self_attn_layer_norm),
  cross-attention (encoder_attn_layer_norm) and fc2(act(fc1(x))) (final_layer_norm);
  mBART layers are pre-norm, x = x + f(LN(x)), with a final layer_norm after each stack;
- every LayerNorm is nn.LayerNorm's, eps 1e-5, written out here as (x - mean) / sqrt(var + eps) * w + b;
- ACT2FN: "gelu" is the exact erf GELU, "swish" / "silu" x * sigmoid(x);
- logits: lm_head (tied to model.shared unless tie_word_embeddings is false) + final_logits_bias.
Greedy decoding starts from decoder_start_token_id (mBART's config leaves it out: generate then uses
bos_token_id) and recomputes the whole prefix every step.

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/bart_reference.py
"""
import json
import math
import os

import torch

from refio import greedy_seq2seq, write_safetensors

torch.set_num_threads(1)
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/Encore.Formats.Tests/Fixtures")
STEPS = 32
OFFSET = 2          # BartLearnedPositionalEmbedding / MBartLearnedPositionalEmbedding
EPS = 1e-5          # nn.LayerNorm's default


def layer_norm(x, w, b):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + EPS) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def swish(x):
    return x * torch.sigmoid(x)


ACT = {"gelu": gelu, "swish": swish, "silu": swish}


def linear(w, prefix, x):
    return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]


def ln(w, prefix, x):
    return layer_norm(x, w[prefix + ".weight"], w[prefix + ".bias"])


def attention(w, prefix, x, kv, heads, causal):
    b, t, d = x.shape
    s = kv.shape[1]
    hd = d // heads
    q = (linear(w, prefix + ".q_proj", x) * hd ** -0.5).view(b, t, heads, hd).transpose(1, 2)
    k = linear(w, prefix + ".k_proj", kv).view(b, s, heads, hd).transpose(1, 2)
    v = linear(w, prefix + ".v_proj", kv).view(b, s, heads, hd).transpose(1, 2)
    scores = q @ k.transpose(-1, -2)
    if causal:
        scores = scores + torch.triu(torch.full((t, s), float("-inf")), diagonal=1)
    o = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
    return linear(w, prefix + ".out_proj", o)


def marian_sinusoids(n_pos, dim):
    # MarianSinusoidalPositionalEmbedding._init_weight, in float64 then float32.
    enc = torch.tensor([[pos / math.pow(10000, 2 * (j // 2) / dim) for j in range(dim)] for pos in range(n_pos)], dtype=torch.float64)
    out = torch.empty(n_pos, dim)
    sentinel = dim // 2 if dim % 2 == 0 else dim // 2 + 1
    out[:, :sentinel] = torch.sin(enc[:, 0::2]).float()
    out[:, sentinel:] = torch.cos(enc[:, 1::2]).float()
    return out


def embed(w, cfg, stack, ids):
    t = ids.shape[1]
    scale = math.sqrt(cfg["d_model"]) if cfg.get("scale_embedding", False) else 1.0
    x = w["model.shared.weight"][ids] * scale
    if cfg["model_type"] == "marian":
        x = x + marian_sinusoids(cfg["max_position_embeddings"], cfg["d_model"])[:t]
    else:
        x = x + w[f"model.{stack}.embed_positions.weight"][torch.arange(t) + OFFSET]
        x = ln(w, f"model.{stack}.layernorm_embedding", x)
    return x


def sublayer(cfg, x, norm, f):
    # Post-norm (BART, Marian): LN(x + f(x)); pre-norm (mBART): x + f(LN(x)).
    if cfg["model_type"] == "mbart":
        return x + f(norm(x))
    return norm(x + f(x))


def encode(w, cfg, ids):
    x = embed(w, cfg, "encoder", ids)
    act = ACT[cfg.get("activation_function", "gelu")]
    heads = cfg["encoder_attention_heads"]
    for i in range(cfg["encoder_layers"]):
        p = f"model.encoder.layers.{i}"
        x = sublayer(cfg, x, lambda h: ln(w, p + ".self_attn_layer_norm", h), lambda h: attention(w, p + ".self_attn", h, h, heads, False))
        x = sublayer(cfg, x, lambda h: ln(w, p + ".final_layer_norm", h), lambda h: linear(w, p + ".fc2", act(linear(w, p + ".fc1", h))))
    if cfg["model_type"] == "mbart":
        x = ln(w, "model.encoder.layer_norm", x)
    return x


def decode(w, cfg, memory, dec_ids):
    y = embed(w, cfg, "decoder", dec_ids)
    act = ACT[cfg.get("activation_function", "gelu")]
    heads = cfg["decoder_attention_heads"]
    for i in range(cfg["decoder_layers"]):
        p = f"model.decoder.layers.{i}"
        y = sublayer(cfg, y, lambda h: ln(w, p + ".self_attn_layer_norm", h), lambda h: attention(w, p + ".self_attn", h, h, heads, True))
        y = sublayer(cfg, y, lambda h: ln(w, p + ".encoder_attn_layer_norm", h), lambda h: attention(w, p + ".encoder_attn", h, memory, heads, False))
        y = sublayer(cfg, y, lambda h: ln(w, p + ".final_layer_norm", h), lambda h: linear(w, p + ".fc2", act(linear(w, p + ".fc1", h))))
    if cfg["model_type"] == "mbart":
        y = ln(w, "model.decoder.layer_norm", y)
    head = w["model.shared.weight"] if cfg.get("tie_word_embeddings", True) else w["lm_head.weight"]
    return y @ head.T + w["final_logits_bias"]


def init_weights(cfg, seed, embed_gain=1.0):
    # embed_gain: Marian's smooth sinusoids leave a tiny random model repeating one token unless the
    # token embeddings weigh more (which would leave the greedy check weak).
    g = torch.Generator().manual_seed(seed)
    d, f, v = cfg["d_model"], cfg["encoder_ffn_dim"], cfg["vocab_size"]

    def rnd(*shape, std):
        return torch.randn(*shape, generator=g) * std

    def dense(name, out, inp):
        w[name + ".weight"] = rnd(out, inp, std=inp ** -0.5)
        w[name + ".bias"] = rnd(out, std=0.1)

    def norm(name):
        w[name + ".weight"] = 1 + rnd(d, std=0.1)
        w[name + ".bias"] = rnd(d, std=0.1)

    def attn(p):
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            dense(f"{p}.{proj}", d, d)

    marian = cfg["model_type"] == "marian"
    w = {"final_logits_bias": rnd(1, v, std=0.5), "model.shared.weight": rnd(v, d, std=embed_gain * d ** -0.5)}
    if marian:
        # Converted opus-mt checkpoints keep the pad token's embedding at zero (it starts every decoding).
        w["model.shared.weight"][cfg["pad_token_id"]] = 0
    for stack, layers in (("encoder", cfg["encoder_layers"]), ("decoder", cfg["decoder_layers"])):
        if marian:
            # Stored by save_pretrained as the state dict holds them; Encore computes the table instead.
            w[f"model.{stack}.embed_positions.weight"] = marian_sinusoids(cfg["max_position_embeddings"], d)
        else:
            w[f"model.{stack}.embed_positions.weight"] = rnd(cfg["max_position_embeddings"] + OFFSET, d, std=1.0)
            norm(f"model.{stack}.layernorm_embedding")
        for i in range(layers):
            p = f"model.{stack}.layers.{i}"
            attn(p + ".self_attn")
            norm(p + ".self_attn_layer_norm")
            if stack == "decoder":
                attn(p + ".encoder_attn")
                norm(p + ".encoder_attn_layer_norm")
            dense(p + ".fc1", f, d)
            dense(p + ".fc2", d, f)
            norm(p + ".final_layer_norm")
        if cfg["model_type"] == "mbart":
            norm(f"model.{stack}.layer_norm")
    if not cfg.get("tie_word_embeddings", True):
        w["lm_head.weight"] = rnd(v, d, std=d ** -0.5)
    return w


def build(name, cfg, seed, input_ids, decoder_input_ids, **init):
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    w = init_weights(cfg, seed, **init)
    # generate's fallback when config.json has no decoder_start_token_id: bos_token_id.
    run = dict(cfg, decoder_start_token_id=cfg.get("decoder_start_token_id", cfg.get("bos_token_id")))
    with torch.no_grad():
        ids = torch.tensor([input_ids])
        logits = decode(w, run, encode(w, run, ids), torch.tensor([decoder_input_ids]))[0]
        greedy_ids, step_logits, margin = greedy_seq2seq(encode, decode, w, run, ids, STEPS)
    # A near tie would make the greedy comparison depend on rounding, not on the model.
    assert margin > 1e-2, f"{name}: greedy top-2 margin {margin} too small; pick another seed"
    assert len(set(greedy_ids)) >= 4, f"{name}: greedy ids {greedy_ids} barely vary; pick another seed"
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(out, "model.safetensors"), w)
    write_safetensors(os.path.join(out, "expected.safetensors"), {"logits": logits, "greedy_logits": step_logits})
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"input_ids": input_ids, "decoder_input_ids": decoder_input_ids, "greedy_ids": greedy_ids,
                   "decoder_start_token_id": run["decoder_start_token_id"], "greedy_min_margin": margin}, f)
    print(f"wrote {os.path.normpath(out)}: greedy {greedy_ids}, min top-2 margin {margin:.4f}")


COMMON = {
    "vocab_size": 96, "max_position_embeddings": 40, "dropout": 0.1, "attention_dropout": 0.0,
    "activation_dropout": 0.0, "init_std": 0.02, "is_encoder_decoder": True, "use_cache": True,
}
# facebook/bart-base's config.json in miniature: post-norm, gelu, no embedding scale, tied head,
# pad 1 / bos 0 / eos 2 and decoding from </s> (2).
BART = dict(COMMON, **{
    "architectures": ["BartForConditionalGeneration"], "model_type": "bart",
    "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
    "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
    "activation_function": "gelu", "scale_embedding": False, "pad_token_id": 1, "bos_token_id": 0,
    "eos_token_id": 2, "decoder_start_token_id": 2, "forced_eos_token_id": 2,
})
# mbart-large-cc25's shape in miniature: pre-norm with final layer norms, scale_embedding; here with
# an untied lm_head, more decoder than encoder layers, and no decoder_start_token_id (generate uses bos).
MBART = dict(COMMON, **{
    "architectures": ["MBartForConditionalGeneration"], "model_type": "mbart",
    "d_model": 32, "encoder_layers": 2, "decoder_layers": 3, "encoder_attention_heads": 2,
    "decoder_attention_heads": 2, "encoder_ffn_dim": 48, "decoder_ffn_dim": 48,
    "activation_function": "gelu", "scale_embedding": True, "tie_word_embeddings": False,
    "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "forced_eos_token_id": 2,
})
# Helsinki-NLP/opus-mt-*'s config.json in miniature: swish, scale_embedding, sinusoids, pad = the last id
# = decoder start, eos 0, the legacy fields old conversions wrote (ignored by transformers); here with an
# untied lm_head (opus-mt ties it; the bart fixture covers the tied head).
MARIAN = dict(COMMON, **{
    "architectures": ["MarianMTModel"], "model_type": "marian",
    "d_model": 48, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
    "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
    "activation_function": "swish", "scale_embedding": True, "tie_word_embeddings": False, "pad_token_id": 95, "eos_token_id": 0,
    "decoder_start_token_id": 95, "decoder_vocab_size": 96, "share_encoder_decoder_embeddings": True,
    "static_position_embeddings": True, "normalize_before": False, "normalize_embedding": False,
    "add_bias_logits": False, "bad_words_ids": [[95]],
})

if __name__ == "__main__":
    build("bart", BART, 39, [0, 17, 33, 5, 48, 9, 61, 70, 2], [2, 0, 12, 40, 7, 3, 22])
    build("mbart", MBART, 11, [44, 8, 3, 59, 14, 27, 40, 6, 2, 90], [0, 30, 11, 2, 45, 63, 9])
    build("marian", MARIAN, 1, [12, 50, 3, 77, 31, 8, 0], [95, 30, 11, 4, 45, 63, 9, 20], embed_gain=3.0)
